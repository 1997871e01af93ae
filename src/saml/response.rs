//! Outbound SAML Responses: assertion built in exclusive-c14n form and signed per RP choice.

use base64::Engine;
use time::{Duration, OffsetDateTime};

use crate::directory::UserInfo;
use crate::rp::{NAMEID_TRANSIENT, RelyingParty};
use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SignError, SigningKey, sign_enveloped};

use super::{NS_SAML, NS_SAMLP, STATUS_SUCCESS, new_id, saml_time};

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
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
    pub rp: &'a RelyingParty,
    pub acs_url: &'a str,
    pub in_response_to: Option<&'a str>,
    pub user: &'a UserInfo,
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

/// Builds the assertion (unsigned).
fn assertion(i: &Issue) -> Result<El, ResponseError> {
    let name_id = if i.rp.name_id_format == NAMEID_TRANSIENT {
        new_id()
    } else {
        i.rp.name_id_source
            .values(i.user)
            .into_iter()
            .next()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ResponseError::NoNameId {
                user: i.user.username.clone(),
                source_name: String::from(i.rp.name_id_source.clone()),
                rp: i.rp.entity_id.clone(),
            })?
    };
    let not_on_or_after = saml_time(i.now + i.lifetime);
    let mut scd = saml("SubjectConfirmationData")
        .attr("NotOnOrAfter", not_on_or_after.clone())
        .attr("Recipient", i.acs_url);
    if let Some(irt) = i.in_response_to {
        scd = scd.attr("InResponseTo", irt);
    }
    let subject = saml("Subject")
        .child(
            saml("NameID")
                .attr("Format", i.rp.name_id_format.clone())
                .text(name_id),
        )
        .child(
            saml("SubjectConfirmation")
                .attr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
                .child(scd),
        );
    let conditions = saml("Conditions")
        .attr("NotBefore", saml_time(i.now - i.skew))
        .attr("NotOnOrAfter", not_on_or_after)
        .child(saml("AudienceRestriction").child(saml("Audience").text(i.rp.entity_id.clone())));
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
        i.rp.attributes
            .iter()
            .filter_map(|rule| {
                let values = rule.source.values(i.user);
                if values.is_empty() {
                    return None;
                }
                // SAML core §8.2: a name that is a URI uses the uri name format, else basic.
                let format = if rule.name.contains(':') {
                    "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
                } else {
                    "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
                };
                Some(
                    saml("Attribute")
                        .attr("Name", rule.name.clone())
                        .attr("NameFormat", format)
                        .children(values.into_iter().map(|v| saml("AttributeValue").text(v))),
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
    if i.rp.sign.assertion() {
        // Signature goes right after saml:Issuer (SAML core §5.4.1 schema order).
        sign_enveloped(&mut a, key, 1)?;
    }
    let mut r = response_shell(i.idp_entity_id, i.acs_url, i.in_response_to, i.now)
        .child(status(STATUS_SUCCESS, None, None))
        .child(a);
    if i.rp.sign.response() {
        sign_enveloped(&mut r, key, 1)?;
    }
    Ok(c14n(&r))
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
