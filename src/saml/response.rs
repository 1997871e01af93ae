//! Outbound SAML Responses: assertion built in exclusive-c14n form and signed per RP choice.

use base64::Engine;
use time::{Duration, OffsetDateTime};

use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SignError, SigningKey, sign_enveloped};

use super::{NS_SAML, NS_SAMLP, STATUS_SUCCESS, new_id, saml_time};

/// The subject's NameID value (SAML core §2.2.3), as the layer that knows the user and the
/// SP's NameID source resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameIdValue {
    /// SAML core §8.3.8: a fresh opaque value in every assertion.
    Transient,
    /// SAML core §8.3.7: a pairwise identifier the registry keeps in the store. It must be
    /// resolved to a `Value` before an assertion is built; an unresolved one is refused, so
    /// no other value (a UPN) can ever go out under the persistent label.
    Persistent,
    /// The value from the SP's NameID source.
    Value(String),
    /// The user has no value for the SP's NameID source: no assertion can be issued.
    Missing {
        /// The user, for the log.
        user: String,
        /// The NameID source as configured (e.g. `upn`), for the log.
        source_name: String,
    },
}

/// One attribute released to the SP (SAML core §2.7.3.1), its values already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<String>,
}

/// What the response builder needs to know about the SP it answers and the subject it names.
/// The registry (`rp.rs`) builds it from a relying party and a user, so this module needs
/// neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The SP's entity ID: the assertion's Audience (SAML core §2.5.1.4).
    pub entity_id: String,
    /// Sign the assertion (NetScaler samlRejectUnsignedAssertion ON).
    pub sign_assertion: bool,
    /// Sign the Response (with `sign_assertion`: NetScaler STRICT).
    pub sign_response: bool,
    pub name_id_format: String,
    pub name_id: NameIdValue,
    /// NameQualifier and SPNameQualifier of the NameID (persistent identifiers).
    pub name_id_qualifiers: Option<NameQualifiers>,
    /// Attributes in release order; those without values are left out of the assertion.
    pub attributes: Vec<Attribute>,
}

/// SAML core §2.2.2, §8.3.7: the namespaces a persistent identifier lives in — the IdP's
/// entity ID and the SP's — so it can never be mistaken for another pair's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameQualifiers {
    pub name_qualifier: String,
    pub sp_name_qualifier: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the persistent NameID for {rp} was not resolved")]
    UnresolvedPersistent { rp: String },
    #[error("user {user} has no value for the NameID source {source_name} of {rp}")]
    NoNameId {
        user: String,
        source_name: String,
        rp: String,
    },
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
}

/// Everything a successful Response states (SAML core §2.3.3, Web SSO profile §4.1.4.2).
pub struct Issue<'a> {
    pub idp_entity_id: &'a str,
    pub sp: &'a Recipient,
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
    pub session_index: &'a str,
    pub authn_instant: OffsetDateTime,
    pub authn_class: &'a str,
    pub now: OffsetDateTime,
    /// NotBefore = now - skew, so an SP whose clock is slightly behind still accepts.
    pub skew: Duration,
    pub lifetime: Duration,
    pub session_not_on_or_after: Option<OffsetDateTime>,
    /// RFC 8176 method references of what was actually done, sent as the `amr` attribute.
    pub amr: &'a [String],
}

fn saml(local: &str) -> El {
    El::new("saml", local, NS_SAML)
}

fn samlp(local: &str) -> El {
    El::new("samlp", local, NS_SAMLP)
}

fn status(code: &str, sub: Option<&str>, message: Option<&str>) -> El {
    let mut sc = samlp("StatusCode").attr("Value", code);
    if let Some(s) = sub {
        sc.push(samlp("StatusCode").attr("Value", s));
    }
    let mut st = samlp("Status").child(sc);
    if let Some(m) = message {
        st.push(samlp("StatusMessage").text(m));
    }
    st
}

impl Recipient {
    /// The NameID text to write for this recipient, in any token (SAML 2.0 here, SAML 1.1 in
    /// `wsfed`): a persistent value left unresolved by the caller never goes out under a
    /// persistent label, and a missing one is no assertion at all.
    pub fn name_id_text(&self) -> Result<String, ResponseError> {
        match &self.name_id {
            NameIdValue::Transient => Ok(new_id()),
            NameIdValue::Value(v) => Ok(v.clone()),
            NameIdValue::Persistent => Err(ResponseError::UnresolvedPersistent {
                rp: self.entity_id.clone(),
            }),
            NameIdValue::Missing { user, source_name } => Err(ResponseError::NoNameId {
                user: user.clone(),
                source_name: source_name.clone(),
                rp: self.entity_id.clone(),
            }),
        }
    }
}

/// Builds the assertion (unsigned).
fn assertion(i: &Issue) -> Result<El, ResponseError> {
    let name_id = i.sp.name_id_text()?;
    let not_on_or_after = saml_time(i.now + i.lifetime);
    let mut scd = saml("SubjectConfirmationData")
        .attr("NotOnOrAfter", not_on_or_after.clone())
        .attr("Recipient", i.acs_url);
    if let Some(irt) = i.in_response_to {
        scd = scd.attr("InResponseTo", irt);
    }
    let mut name_id_el = saml("NameID").attr("Format", i.sp.name_id_format.clone());
    if let Some(q) = &i.sp.name_id_qualifiers {
        name_id_el = name_id_el
            .attr("NameQualifier", q.name_qualifier.clone())
            .attr("SPNameQualifier", q.sp_name_qualifier.clone());
    }
    let subject = saml("Subject").child(name_id_el.text(name_id)).child(
        saml("SubjectConfirmation")
            .attr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
            .child(scd),
    );
    let conditions = saml("Conditions")
        .attr("NotBefore", saml_time(i.now - i.skew))
        .attr("NotOnOrAfter", not_on_or_after)
        .child(saml("AudienceRestriction").child(saml("Audience").text(i.sp.entity_id.clone())));
    let mut authn = saml("AuthnStatement")
        .attr("AuthnInstant", saml_time(i.authn_instant))
        .attr("SessionIndex", i.session_index);
    if let Some(t) = i.session_not_on_or_after {
        authn = authn.attr("SessionNotOnOrAfter", saml_time(t));
    }
    let authn =
        authn.child(saml("AuthnContext").child(saml("AuthnContextClassRef").text(i.authn_class)));
    let mut a = saml("Assertion")
        .attr("ID", new_id())
        .attr("IssueInstant", saml_time(i.now))
        .attr("Version", "2.0")
        .child(saml("Issuer").text(i.idp_entity_id))
        .child(subject)
        .child(conditions)
        .child(authn);
    let mut attributes: Vec<El> =
        i.sp.attributes
            .iter()
            .filter(|attr| !attr.values.is_empty())
            .map(|attr| {
                // SAML core §8.2: a name that is a URI uses the uri name format, else basic.
                let format = if attr.name.contains(':') {
                    "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
                } else {
                    "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
                };
                saml("Attribute")
                    .attr("Name", attr.name.clone())
                    .attr("NameFormat", format)
                    .children(
                        attr.values
                            .iter()
                            .map(|v| saml("AttributeValue").text(v.clone())),
                    )
            })
            .collect();
    if !i.amr.is_empty() {
        attributes.push(
            saml("Attribute")
                .attr("Name", "amr")
                .attr(
                    "NameFormat",
                    "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                )
                .children(i.amr.iter().map(|v| saml("AttributeValue").text(v.clone()))),
        );
    }
    if !attributes.is_empty() {
        a.push(saml("AttributeStatement").children(attributes));
    }
    Ok(a)
}

fn response_shell(
    idp_entity_id: &str,
    destination: &str,
    in_response_to: Option<&str>,
    now: OffsetDateTime,
) -> El {
    let mut r = samlp("Response")
        .attr("Destination", destination)
        .attr("ID", new_id())
        .attr("IssueInstant", saml_time(now))
        .attr("Version", "2.0");
    if let Some(irt) = in_response_to {
        r = r.attr("InResponseTo", irt);
    }
    r.child(saml("Issuer").text(idp_entity_id))
}

/// A successful Response, signed as the RP asked (assertion, response or both), as XML.
pub fn build_success(i: &Issue, key: &SigningKey) -> Result<String, ResponseError> {
    let mut a = assertion(i)?;
    if i.sp.sign_assertion {
        // Signature goes right after saml:Issuer (SAML core §5.4.1 schema order).
        sign_enveloped(&mut a, key, 1)?;
    }
    let mut r = response_shell(i.idp_entity_id, i.acs_url, i.in_response_to, i.now)
        .child(status(STATUS_SUCCESS, None, None))
        .child(a);
    if i.sp.sign_response {
        sign_enveloped(&mut r, key, 1)?;
    }
    Ok(c14n(&r))
}

/// The signed assertion alone (Signature after Issuer, SAML core §5.4.1), for a protocol
/// that carries it in its own envelope: a WS-Federation RSTR (wsfed/token.rs). `i.acs_url`
/// is the Recipient; `i.in_response_to` is normally `None` there.
pub fn build_assertion(i: &Issue, key: &SigningKey) -> Result<El, ResponseError> {
    let mut a = assertion(i)?;
    sign_enveloped(&mut a, key, 1)?;
    Ok(a)
}

/// An error Response (e.g. NoPassive, NoAuthnContext), always signed so the SP can trust it.
#[allow(clippy::too_many_arguments)]
pub fn build_status(
    idp_entity_id: &str,
    destination: &str,
    in_response_to: Option<&str>,
    top: &str,
    sub: Option<&str>,
    message: Option<&str>,
    now: OffsetDateTime,
    key: &SigningKey,
) -> Result<String, ResponseError> {
    let mut r = response_shell(idp_entity_id, destination, in_response_to, now)
        .child(status(top, sub, message));
    sign_enveloped(&mut r, key, 1)?;
    Ok(c14n(&r))
}

/// HTTP-POST binding (SAML bindings §3.5.4): base64 of the XML, no deflate.
pub fn encode_post(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(name_id: NameIdValue, qualifiers: Option<NameQualifiers>) -> Recipient {
        Recipient {
            entity_id: "https://sp".into(),
            sign_assertion: true,
            sign_response: false,
            name_id_format: super::super::vocab::NAMEID_PERSISTENT.into(),
            name_id,
            name_id_qualifiers: qualifiers,
            attributes: Vec::new(),
        }
    }

    fn issue(sp: &Recipient) -> Result<String, ResponseError> {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t");
        assertion(&Issue {
            idp_entity_id: "https://idp",
            sp,
            acs_url: "https://sp/acs",
            in_response_to: None,
            session_index: "_s",
            authn_instant: now,
            authn_class: "urn:c",
            now,
            skew: Duration::minutes(1),
            lifetime: Duration::minutes(5),
            session_not_on_or_after: None,
            amr: &[],
        })
        .map(|a| c14n(&a))
    }

    #[test]
    fn a_persistent_name_id_carries_both_qualifiers_and_is_never_issued_unresolved() {
        let q = NameQualifiers {
            name_qualifier: "https://idp".into(),
            sp_name_qualifier: "https://sp".into(),
        };
        let xml = issue(&recipient(NameIdValue::Value("a1b2".into()), Some(q))).expect("built");
        assert!(
            xml.contains(
                r#"NameQualifier="https://idp" SPNameQualifier="https://sp">a1b2</saml:NameID>"#
            ),
            "{xml}"
        );
        let unresolved = issue(&recipient(NameIdValue::Persistent, None));
        assert!(matches!(
            unresolved,
            Err(ResponseError::UnresolvedPersistent { .. })
        ));
    }
}
