//! The load generator's own SAML service provider: its metadata, AuthnRequests sent with the
//! Redirect binding, and the checks every Response must pass.
//!
//! Every login's signatures are verified with Tessera's guarded verifier: the Assertion's as
//! its own root, the Response's with inner signatures allowed (`Nested::AllowInner`).
//! `xmlsec1_check` re-verifies a sample of Responses with an independent implementation.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::x509::X509;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tessera::saml::{NS_SAML, NS_SAMLP, STATUS_SUCCESS};
use tessera::xml::{Element, Limits};
use tessera::xmldsig::DSIG_NS;
use tessera::xmldsig::emit::{El, c14n};
use tessera::xmldsig::verify::{Nested, verify_root, verify_root_with};

pub const SP_ENTITY_ID: &str = "https://loadgen.bench.test/sp";
pub const SP_ACS: &str = "https://loadgen.bench.test/acs";

/// SP metadata for `tessera rp add --metadata` or SimpleSAMLphp's saml20-sp-remote.
pub fn metadata() -> String {
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP_ENTITY_ID}"><md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{SP_ACS}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>
"#
    )
}

/// A fresh AuthnRequest: its ID and the query string of the Redirect binding (unsigned).
/// `destination` is the IdP endpoint it is sent to (SAML core §3.2.1; SPs such as NetScaler
/// always send it, and the IdP must then check it).
pub fn redirect_request(relay_state: &str, destination: Option<&str>) -> (String, String) {
    let id = tessera::saml::new_id();
    let mut request = El::new("samlp", "AuthnRequest", NS_SAMLP);
    if let Some(d) = destination {
        request = request.attr("Destination", d);
    }
    let xml = c14n(
        &request
            .attr("ID", id.clone())
            .attr("Version", "2.0")
            .attr(
                "IssueInstant",
                tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
            )
            .attr("AssertionConsumerServiceURL", SP_ACS)
            .attr("ProtocolBinding", tessera::saml::BINDING_POST)
            .child(El::new("saml", "Issuer", NS_SAML).text(SP_ENTITY_ID)),
    );
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = deflate.write_all(xml.as_bytes());
    let b64 = STANDARD.encode(deflate.finish().unwrap_or_default());
    let query = format!(
        "SAMLRequest={}&RelayState={}",
        utf8_percent_encode(&b64, NON_ALPHANUMERIC),
        utf8_percent_encode(relay_state, NON_ALPHANUMERIC)
    );
    (id, query)
}

/// What the SP expects of a Response.
pub struct Expect<'a> {
    pub certs: &'a [X509],
    pub request_id: &'a str,
    pub relay_state: &'a str,
    /// Refuse a Response unless both it and its Assertion carry a signature.
    pub require_both: bool,
}

/// What was found in a Response that passed.
pub struct Checked {
    pub xml: String,
    pub response_signed: bool,
}

/// Every check an SP makes before trusting a Response (SAML profiles §4.1.4.3).
pub fn check_response(
    action: &str,
    saml_response: &str,
    relay_state: Option<&str>,
    e: &Expect,
) -> Result<Checked, String> {
    if action != SP_ACS {
        return Err(format!("form posts to {action}, not our ACS"));
    }
    if relay_state != Some(e.relay_state) {
        return Err(format!("RelayState {relay_state:?} is not what we sent"));
    }
    let bytes = STANDARD
        .decode(saml_response.split_whitespace().collect::<String>())
        .map_err(|err| format!("SAMLResponse is not base64: {err}"))?;
    let xml = String::from_utf8(bytes).map_err(|_| "SAMLResponse is not UTF-8".to_owned())?;
    let root =
        tessera::xml::parse(&xml, &Limits::default()).map_err(|err| format!("XML: {err}"))?;
    let assertion = check_envelope(&root, e)?;
    check_assertion(assertion, e)?;

    let response_signed = has_signature(&root);
    let assertion_signed = has_signature(assertion);
    if e.require_both && !(response_signed && assertion_signed) {
        return Err(format!(
            "signed: response {response_signed}, assertion {assertion_signed}; both required"
        ));
    }
    if !response_signed && !assertion_signed {
        return Err("neither Response nor Assertion is signed".into());
    }
    if assertion_signed {
        verify_root(assertion, e.certs).map_err(|err| format!("Assertion signature: {err}"))?;
    }
    if response_signed {
        // The outer signature covers the Assertion, its signature included.
        verify_root_with(&root, e.certs, Nested::AllowInner)
            .map_err(|err| format!("Response signature: {err}"))?;
    }
    Ok(Checked {
        xml,
        response_signed,
    })
}

fn check_envelope<'a>(root: &'a Element, e: &Expect) -> Result<&'a Element, String> {
    if !root.is(NS_SAMLP, "Response") {
        return Err(format!("root is {}, not samlp:Response", root.name));
    }
    expect_eq("Destination", root.attr("Destination"), SP_ACS)?;
    expect_eq("InResponseTo", root.attr("InResponseTo"), e.request_id)?;
    let status = root
        .child(NS_SAMLP, "Status")
        .and_then(|s| s.child(NS_SAMLP, "StatusCode"))
        .and_then(|c| c.attr("Value"));
    expect_eq("StatusCode", status, STATUS_SUCCESS)?;
    let mut assertions = root.children_named(NS_SAML, "Assertion");
    let assertion = assertions.next().ok_or("no (plain) Assertion")?;
    if assertions.next().is_some() {
        return Err("more than one Assertion".into());
    }
    Ok(assertion)
}

fn check_assertion(a: &Element, e: &Expect) -> Result<(), String> {
    let audience = a
        .child(NS_SAML, "Conditions")
        .and_then(|c| c.child(NS_SAML, "AudienceRestriction"))
        .and_then(|r| r.child(NS_SAML, "Audience"))
        .map(Element::text);
    expect_eq("Audience", audience.as_deref(), SP_ENTITY_ID)?;
    let subject_confirmation = a
        .child(NS_SAML, "Subject")
        .and_then(|s| s.child(NS_SAML, "SubjectConfirmation"))
        .ok_or("no SubjectConfirmation")?;
    expect_eq(
        "SubjectConfirmation Method",
        subject_confirmation.attr("Method"),
        "urn:oasis:names:tc:SAML:2.0:cm:bearer",
    )?;
    let confirmation = subject_confirmation
        .child(NS_SAML, "SubjectConfirmationData")
        .ok_or("no SubjectConfirmationData")?;
    expect_eq("Recipient", confirmation.attr("Recipient"), SP_ACS)?;
    // SAML profiles §4.1.4.2: a bearer assertion past its NotOnOrAfter must be refused.
    let not_on_or_after = confirmation
        .attr("NotOnOrAfter")
        .ok_or("no SubjectConfirmationData NotOnOrAfter")?;
    let expires = time::OffsetDateTime::parse(
        not_on_or_after,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|err| format!("NotOnOrAfter {not_on_or_after:?}: {err}"))?;
    if expires <= time::OffsetDateTime::now_utc() {
        return Err(format!("assertion expired at {not_on_or_after}"));
    }
    expect_eq(
        "SubjectConfirmationData InResponseTo",
        confirmation.attr("InResponseTo"),
        e.request_id,
    )
}

fn expect_eq(what: &str, got: Option<&str>, want: &str) -> Result<(), String> {
    match got {
        Some(g) if g.trim() == want => Ok(()),
        other => Err(format!("{what} is {other:?}, expected {want:?}")),
    }
}

fn has_signature(el: &Element) -> bool {
    el.elements().any(|c| c.is(DSIG_NS, "Signature"))
}

/// Verifies the Response-level signature with `xmlsec1` (the independent judge the test
/// suite uses), trusting only `cert_pem`.
pub fn xmlsec1_check(xml: &str, cert_pem: &Path, scratch: &Path) -> Result<(), String> {
    std::fs::write(scratch, xml).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .arg("--trusted-pem")
        .arg(cert_pem)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .args([
            "--node-xpath",
            "/*[local-name()='Response']/*[local-name()='Signature']",
        ])
        .arg(scratch)
        .output()
        .map_err(|e| format!("xmlsec1: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "xmlsec1 refused the Response signature: {}",
            err.lines().last().unwrap_or_default()
        ))
    }
}

/// Trusted IdP certificates from a PEM file (one or more certificates).
pub fn load_certs(pem: &Path) -> Result<Vec<X509>, String> {
    let bytes = std::fs::read(pem).map_err(|e| format!("{}: {e}", pem.display()))?;
    let certs = X509::stack_from_pem(&bytes).map_err(|e| format!("{}: {e}", pem.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", pem.display()));
    }
    Ok(certs)
}
