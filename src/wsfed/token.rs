//! The sign-in answer (MS-WSFED §2.2.4, `wresult`): a WS-Trust RequestSecurityTokenResponse
//! carrying a signed SAML 1.1 assertion (AD FS's default) or a SAML 2.0 one.

use serde::{Deserialize, Serialize};

use super::{NS_ADDRESSING, NS_POLICY, NS_SAML1, NS_TRUST, NS_WSU};
use crate::saml::response::{self, Issue, ResponseError};
use crate::saml::{NS_SAML, new_id, saml_time};
use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SigningKey, sign_enveloped_by};

/// Which assertion a WS-Federation relying party receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// SAML 1.1 (`urn:oasis:names:tc:SAML:1.0:assertion`), what AD FS issues by default.
    #[default]
    Saml11,
    /// SAML 2.0, for relying parties configured for it.
    Saml2,
}

impl TokenType {
    /// The `t:TokenType` URI (WS-Trust 2005/02 uses the assertion namespaces).
    pub fn uri(self) -> &'static str {
        match self {
            TokenType::Saml11 => NS_SAML1,
            TokenType::Saml2 => NS_SAML,
        }
    }

    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TokenType::Saml11 => "saml11",
            TokenType::Saml2 => "saml2",
        }
    }
}

/// `t:RequestType` Issue (WS-Trust 2005/02 §4).
const REQUEST_ISSUE: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue";
/// The bearer key type as the 2005/02 passive profile writes it (no proof key: whoever
/// holds the token presents it).
const KEY_BEARER: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey";
/// SAML 1.1 core §5.1: the bearer confirmation method.
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:1.0:cm:bearer";
/// The claim AD FS sends the authentication methods in; SAML 2.0 tokens carry `amr`.
const CLAIM_AMR: &str = "http://schemas.microsoft.com/claims/authnmethodsreferences";
/// SAML 1.1 needs an AttributeNamespace; a claim named without a `/` (a short name such as
/// `upn`) gets this one.
pub const BARE_NAMESPACE: &str = "urn:tessera:claims";

/// The RSTR for `i` (its `sp.entity_id` is the realm, `acs_url` the reply URL) with the
/// token `kind`, signed with `key`, as the XML that goes into `wresult`.
pub fn issue(i: &Issue, kind: TokenType, key: &SigningKey) -> Result<String, ResponseError> {
    let assertion = match kind {
        TokenType::Saml11 => saml11(i, key)?,
        TokenType::Saml2 => response::build_assertion(i, key)?,
    };
    Ok(c14n(&rstr(i, kind, assertion)))
}

fn t(local: &str) -> El {
    El::new("t", local, NS_TRUST)
}

fn saml1(local: &str) -> El {
    El::new("saml", local, NS_SAML1)
}

/// The WS-Trust envelope (WS-Trust 2005/02 §4.4 as AD FS shapes it for the passive profile).
fn rstr(i: &Issue, kind: TokenType, assertion: El) -> El {
    let wsu = |local: &str| El::new("wsu", local, NS_WSU);
    t("RequestSecurityTokenResponse")
        .child(
            t("Lifetime")
                .child(wsu("Created").text(saml_time(i.now)))
                .child(wsu("Expires").text(saml_time(i.now + i.lifetime))),
        )
        .child(
            El::new("wsp", "AppliesTo", NS_POLICY).child(
                El::new("wsa", "EndpointReference", NS_ADDRESSING)
                    .child(El::new("wsa", "Address", NS_ADDRESSING).text(i.sp.entity_id.clone())),
            ),
        )
        .child(t("RequestedSecurityToken").child(assertion))
        .child(t("TokenType").text(kind.uri()))
        .child(t("RequestType").text(REQUEST_ISSUE))
        .child(t("KeyType").text(KEY_BEARER))
}

/// SAML 1.1 `Subject` (SAML 1.1 core §2.4.2.1): the name and the bearer confirmation. A
/// persistent name carries our entity ID as NameQualifier (SAML 1.1 has no SPNameQualifier).
fn subject(name_id: &str, format: &str, qualifier: Option<&str>) -> El {
    let mut name = saml1("NameIdentifier").attr("Format", format);
    if let Some(q) = qualifier {
        name = name.attr("NameQualifier", q);
    }
    saml1("Subject")
        .child(name.text(name_id))
        .child(saml1("SubjectConfirmation").child(saml1("ConfirmationMethod").text(CM_BEARER)))
}

/// A claim URI as SAML 1.1 wants it: namespace and name, split at the last `/`.
fn split_claim(name: &str) -> (&str, &str) {
    match name.rsplit_once('/') {
        Some((ns, local)) if !ns.is_empty() && !local.is_empty() => (ns, local),
        _ => (BARE_NAMESPACE, name),
    }
}

fn attribute(name: &str, values: &[String]) -> El {
    let (ns, local) = split_claim(name);
    saml1("Attribute")
        .attr("AttributeName", local)
        .attr("AttributeNamespace", ns)
        .children(
            values
                .iter()
                .map(|v| saml1("AttributeValue").text(v.clone())),
        )
}

/// The signed SAML 1.1 assertion (SAML 1.1 core §2.3.2): audience = realm, an
/// AuthenticationStatement and the claims as an AttributeStatement; the signature comes
/// last (the schema puts ds:Signature after the statements) and references `AssertionID`.
fn saml11(i: &Issue, key: &SigningKey) -> Result<El, ResponseError> {
    let name_id = i.sp.name_id_text()?;
    let format = i.sp.name_id_format.as_str();
    let qualifier =
        i.sp.name_id_qualifiers
            .as_ref()
            .map(|q| q.name_qualifier.as_str());
    let conditions = saml1("Conditions")
        .attr("NotBefore", saml_time(i.now - i.skew))
        .attr("NotOnOrAfter", saml_time(i.now + i.lifetime))
        .child(
            saml1("AudienceRestrictionCondition")
                .child(saml1("Audience").text(i.sp.entity_id.clone())),
        );
    let mut attributes: Vec<El> =
        i.sp.attributes
            .iter()
            .filter(|a| !a.values.is_empty())
            .map(|a| attribute(&a.name, &a.values))
            .collect();
    if !i.amr.is_empty() {
        attributes.push(attribute(CLAIM_AMR, i.amr));
    }
    let mut a = saml1("Assertion")
        .attr("AssertionID", new_id())
        .attr("IssueInstant", saml_time(i.now))
        .attr("Issuer", i.idp_entity_id)
        .attr("MajorVersion", "1")
        .attr("MinorVersion", "1")
        .child(conditions);
    if !attributes.is_empty() {
        // SAML 1.1 core §2.4.4: an AttributeStatement holds at least one Attribute.
        a.push(
            saml1("AttributeStatement")
                .child(subject(&name_id, format, qualifier))
                .children(attributes),
        );
    }
    a.push(
        saml1("AuthenticationStatement")
            .attr("AuthenticationInstant", saml_time(i.authn_instant))
            .attr("AuthenticationMethod", i.authn_class)
            .child(subject(&name_id, format, qualifier)),
    );
    let last = a.child_count();
    sign_enveloped_by(&mut a, key, last, "AssertionID")?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::response::{Attribute, NameIdValue, Recipient};
    use crate::xml::{Limits, parse};
    use time::{Duration, OffsetDateTime};

    use crate::xmldsig::sign::test_signing_key as key;

    fn recipient(name_id: NameIdValue) -> Recipient {
        Recipient {
            entity_id: "urn:app:one".into(),
            sign_assertion: false,
            sign_response: false,
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into(),
            name_id,
            name_id_qualifiers: None,
            attributes: vec![
                Attribute {
                    name: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn".into(),
                    values: vec!["ann@corp.example".into()],
                },
                Attribute {
                    name: "groups".into(),
                    values: vec!["A & <B>".into(), "C".into()],
                },
                Attribute {
                    name: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name".into(),
                    values: vec![],
                },
            ],
        }
    }

    fn with<T>(sp: &Recipient, f: impl FnOnce(&Issue) -> T) -> T {
        let amr = vec!["pwd".to_owned()];
        let now = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        f(&Issue {
            idp_entity_id: "https://idp.example/adfs/services/trust",
            sp,
            acs_url: "https://app.example/",
            in_response_to: None,
            session_index: "_s",
            authn_instant: now - Duration::minutes(1),
            authn_class: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            now,
            skew: Duration::minutes(2),
            lifetime: Duration::minutes(5),
            session_not_on_or_after: None,
            amr: &amr,
        })
    }

    #[test]
    fn a_saml11_token_in_its_envelope() {
        let (k, _) = key();
        let sp = recipient(NameIdValue::Value("ann@corp.example".into()));
        let xml = with(&sp, |i| issue(i, TokenType::Saml11, &k)).unwrap();
        let root = parse(&xml, &Limits::default()).unwrap();
        assert!(root.is(NS_TRUST, "RequestSecurityTokenResponse"));
        let applies = root
            .child(NS_POLICY, "AppliesTo")
            .and_then(|a| a.child(NS_ADDRESSING, "EndpointReference"))
            .and_then(|e| e.child(NS_ADDRESSING, "Address"))
            .map(|a| a.text());
        assert_eq!(applies.as_deref(), Some("urn:app:one"));
        let text = |l: &str| root.child(NS_TRUST, l).map(|e| e.text());
        assert_eq!(text("TokenType").as_deref(), Some(NS_SAML1));
        assert_eq!(text("RequestType").as_deref(), Some(REQUEST_ISSUE));
        assert_eq!(text("KeyType").as_deref(), Some(KEY_BEARER));
        let a = root
            .child(NS_TRUST, "RequestedSecurityToken")
            .and_then(|t| t.child(NS_SAML1, "Assertion"))
            .expect("assertion");
        assert_eq!(a.attr("MajorVersion"), Some("1"));
        assert_eq!(a.attr("MinorVersion"), Some("1"));
        assert!(a.attr("AssertionID").is_some_and(|id| id.starts_with('_')));
        // The signature is the assertion's last child and names the AssertionID.
        let last = a.elements().last().expect("children");
        assert!(last.is(crate::saml::NS_DS, "Signature"));
        assert!(xml.contains(&format!("URI=\"#{}\"", a.attr("AssertionID").unwrap())));
        for needle in [
            "<saml:Audience>urn:app:one</saml:Audience>",
            "AttributeName=\"upn\" AttributeNamespace=\"http://schemas.xmlsoap.org/ws/2005/05/identity/claims\"",
            "AttributeName=\"groups\" AttributeNamespace=\"urn:tessera:claims\"><saml:AttributeValue>A &amp; &lt;B&gt;</saml:AttributeValue><saml:AttributeValue>C</saml:AttributeValue>",
            "AttributeName=\"authnmethodsreferences\" AttributeNamespace=\"http://schemas.microsoft.com/claims\"><saml:AttributeValue>pwd</saml:AttributeValue>",
            "AuthenticationMethod=\"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport\"",
            "<saml:NameIdentifier Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\">ann@corp.example</saml:NameIdentifier>",
            "<saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer</saml:ConfirmationMethod>",
            "<wsu:Created xmlns:wsu=",
        ] {
            assert!(xml.contains(needle), "missing {needle} in {xml}");
        }
        // A claim without values is left out, as in SAML 2.0 responses.
        assert!(!xml.contains("AttributeName=\"name\""));
    }

    #[test]
    fn a_saml2_token_verifies_and_names_the_realm_and_reply() {
        let (k, cert) = key();
        let sp = recipient(NameIdValue::Value("ann@corp.example".into()));
        let xml = with(&sp, |i| issue(i, TokenType::Saml2, &k)).unwrap();
        assert!(xml.contains(&format!("<t:TokenType>{NS_SAML}</t:TokenType>")));
        assert!(xml.contains("Recipient=\"https://app.example/\""));
        assert!(xml.contains("<saml:Audience>urn:app:one</saml:Audience>"));
        assert!(!xml.contains("InResponseTo"));
        // The assertion alone verifies with our own strict verifier.
        let start = xml.find("<saml:Assertion").unwrap();
        let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        let root = parse(&xml[start..end], &Limits::default()).unwrap();
        crate::xmldsig::verify::verify_root(&root, std::slice::from_ref(&cert)).unwrap();
    }

    #[test]
    fn a_persistent_saml11_name_carries_our_entity_id_as_qualifier() {
        let (k, _) = key();
        let mut sp = recipient(NameIdValue::Value("7f3a".into()));
        sp.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into();
        sp.name_id_qualifiers = Some(crate::saml::response::NameQualifiers {
            name_qualifier: "https://idp.example/adfs/services/trust".into(),
            sp_name_qualifier: "urn:app:one".into(),
        });
        let xml = with(&sp, |i| issue(i, TokenType::Saml11, &k)).unwrap();
        assert!(
            xml.contains("NameQualifier=\"https://idp.example/adfs/services/trust\">7f3a</saml:NameIdentifier>"),
            "{xml}"
        );
        assert!(
            !xml.contains("SPNameQualifier"),
            "no such attribute in SAML 1.1: {xml}"
        );
    }

    #[test]
    fn no_token_without_a_name() {
        let (k, _) = key();
        let sp = recipient(NameIdValue::Missing {
            user: "bob".into(),
            source_name: "upn".into(),
        });
        for kind in [TokenType::Saml11, TokenType::Saml2] {
            let r = with(&sp, |i| issue(i, kind, &k));
            assert!(matches!(r, Err(ResponseError::NoNameId { .. })), "{kind:?}");
        }
    }

    #[test]
    fn claims_split_at_the_last_slash() {
        assert_eq!(
            split_claim("http://schemas.xmlsoap.org/claims/Group"),
            ("http://schemas.xmlsoap.org/claims", "Group")
        );
        assert_eq!(split_claim("upn"), (BARE_NAMESPACE, "upn"));
        assert_eq!(split_claim("trailing/"), (BARE_NAMESPACE, "trailing/"));
        assert_eq!(split_claim("/lead"), (BARE_NAMESPACE, "/lead"));
    }
}
