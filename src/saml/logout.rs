//! Single logout (SAML core §3.7, profiles §4.4): LogoutRequests in, signed LogoutResponses out.

use time::OffsetDateTime;

use crate::xml::Element;
use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SignError, SigningKey, sign_enveloped};

use super::request::{Header, RequestError, read_header};
use super::{NS_SAML, NS_SAMLP, STATUS_SUCCESS, new_id, saml_time};

/// The fields of a LogoutRequest we act on. NameID Format and SessionIndex are kept (some
/// libraries drop them; see reference/xml-signatures.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: String,
    pub issue_instant: String,
    pub destination: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_indexes: Vec<String>,
}

pub fn read_logout_request(root: &Element) -> Result<LogoutRequest, RequestError> {
    let bad = |s: &str| RequestError::Malformed(s.to_owned());
    let Header {
        id,
        issuer,
        issue_instant,
    } = read_header(root, "LogoutRequest")?;
    let name_id_el = root
        .child(NS_SAML, "NameID")
        .ok_or_else(|| bad("NameID missing (encrypted NameIDs are not supported)"))?;
    Ok(LogoutRequest {
        id,
        issuer,
        issue_instant,
        destination: root.attr("Destination").map(str::to_owned),
        name_id: name_id_el.text().trim().to_owned(),
        name_id_format: name_id_el.attr("Format").map(str::to_owned),
        session_indexes: root
            .children_named(NS_SAMLP, "SessionIndex")
            .map(|s| s.text().trim().to_owned())
            .collect(),
    })
}

/// A signed LogoutResponse with status Success (or `status` when given).
pub fn build_logout_response(
    idp_entity_id: &str,
    destination: &str,
    in_response_to: &str,
    status: Option<&str>,
    now: OffsetDateTime,
    key: &SigningKey,
) -> Result<String, SignError> {
    let mut r = El::new("samlp", "LogoutResponse", NS_SAMLP)
        .attr("Destination", destination)
        .attr("ID", new_id())
        .attr("InResponseTo", in_response_to)
        .attr("IssueInstant", saml_time(now))
        .attr("Version", "2.0")
        .child(El::new("saml", "Issuer", NS_SAML).text(idp_entity_id))
        .child(
            El::new("samlp", "Status", NS_SAMLP).child(
                El::new("samlp", "StatusCode", NS_SAMLP)
                    .attr("Value", status.unwrap_or(STATUS_SUCCESS)),
            ),
        );
    sign_enveloped(&mut r, key, 1)?;
    Ok(c14n(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse};

    #[test]
    fn reads_session_index_and_name_id_format() {
        let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l1" Version="2.0" IssueInstant="2026-11-23T10:00:00Z"><saml:Issuer>https://gw</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">alice@corp.example</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"#;
        let r = read_logout_request(&parse(xml, &Limits::default()).expect("xml")).expect("read");
        assert_eq!(r.name_id, "alice@corp.example");
        assert_eq!(r.session_indexes, vec!["_s1".to_string()]);
        assert!(r.name_id_format.is_some());
        let no_name = xml.replace(
            "<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\">alice@corp.example</saml:NameID>",
            "",
        );
        assert!(read_logout_request(&parse(&no_name, &Limits::default()).expect("xml")).is_err());
    }
}
