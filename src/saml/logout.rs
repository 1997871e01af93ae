//! Single logout (SAML core §3.7): LogoutRequests in and out, LogoutResponses in and out,
//! over the HTTP-POST binding (enveloped signature) or the HTTP-Redirect binding (DEFLATE
//! and a signed query, SAML bindings §3.4.4.1).

use std::io::Write;

use base64::Engine;
use openssl::x509::X509;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::xml::Element;
use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SignError, SigningKey, sign_enveloped};

use super::request::{
    Binding, Header, Incoming, RequestError, Window, binding_signature, check_envelope, decode,
    read_header,
};
use super::{NS_SAML, NS_SAMLP, STATUS_SUCCESS, new_id, saml_time};

/// SAML core §3.7.3.2: the second-level status when not every session participant could be
/// signed out.
pub const STATUS_PARTIAL_LOGOUT: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";
/// The query signature algorithm we sign Redirect-binding messages with.
const SIG_ALG: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

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

/// One session participant to sign out (SAML core §3.7.1): the NameID exactly as it was
/// given to that SP, and the session it was given in.
pub struct LogoutOut<'a> {
    pub idp_entity_id: &'a str,
    pub destination: &'a str,
    pub name_id: &'a str,
    pub name_id_format: &'a str,
    pub session_index: &'a str,
    pub now: OffsetDateTime,
    /// How long the SP may still act on the request (its NotOnOrAfter).
    pub lifetime: time::Duration,
}

/// An unsigned LogoutRequest and its ID; `encode` signs it for the chosen binding.
pub fn logout_request(o: &LogoutOut<'_>) -> (String, El) {
    let id = new_id();
    let el = El::new("samlp", "LogoutRequest", NS_SAMLP)
        .attr("Destination", o.destination)
        .attr("ID", id.clone())
        .attr("IssueInstant", saml_time(o.now))
        .attr("NotOnOrAfter", saml_time(o.now + o.lifetime))
        .attr("Version", "2.0")
        .child(El::new("saml", "Issuer", NS_SAML).text(o.idp_entity_id))
        .child(
            El::new("saml", "NameID", NS_SAML)
                .attr("Format", o.name_id_format)
                .text(o.name_id),
        )
        .child(El::new("samlp", "SessionIndex", NS_SAMLP).text(o.session_index));
    (id, el)
}

/// An unsigned LogoutResponse answering `in_response_to` with `status` (and a second-level
/// `sub` status such as PartialLogout).
pub fn logout_response(
    idp_entity_id: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    sub: Option<&str>,
    now: OffsetDateTime,
) -> El {
    let mut code = El::new("samlp", "StatusCode", NS_SAMLP).attr("Value", status);
    if let Some(sub) = sub {
        code.push(El::new("samlp", "StatusCode", NS_SAMLP).attr("Value", sub));
    }
    El::new("samlp", "LogoutResponse", NS_SAMLP)
        .attr("Destination", destination)
        .attr("ID", new_id())
        .attr("InResponseTo", in_response_to)
        .attr("IssueInstant", saml_time(now))
        .attr("Version", "2.0")
        .child(El::new("saml", "Issuer", NS_SAML).text(idp_entity_id))
        .child(El::new("samlp", "Status", NS_SAMLP).child(code))
}

/// Which parameter a front-channel message travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    fn param(self) -> &'static str {
        match self {
            Kind::Request => "SAMLRequest",
            Kind::Response => "SAMLResponse",
        }
    }
}

/// A signed message ready for the browser: a form to auto-POST, or a URL to redirect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Post {
        url: String,
        fields: Vec<(&'static str, String)>,
    },
    Redirect(String),
}

/// Signs `el` for `binding` and packs it for the browser: POST gets an enveloped signature
/// (SAML bindings §3.5.4); Redirect carries none in the XML but signs the query (§3.4.4.1).
pub fn encode(
    mut el: El,
    kind: Kind,
    binding: Binding,
    destination: &str,
    relay_state: Option<&str>,
    key: &SigningKey,
) -> Result<Outbound, SignError> {
    match binding {
        Binding::Post => {
            sign_enveloped(&mut el, key, 1)?;
            let xml = c14n(&el);
            let mut fields = vec![(kind.param(), super::response::encode_post(&xml))];
            if let Some(rs) = relay_state {
                fields.push(("RelayState", rs.to_owned()));
            }
            Ok(Outbound::Post {
                url: destination.to_owned(),
                fields,
            })
        }
        Binding::Redirect => Ok(Outbound::Redirect(redirect_url(
            destination,
            kind,
            &c14n(&el),
            relay_state,
            key,
        )?)),
    }
}

/// SAML bindings §3.4.4.1: DEFLATE, base64, URL-encode; then sign the octets
/// `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as they appear in the URL.
pub fn redirect_url(
    destination: &str,
    kind: Kind,
    xml: &str,
    relay_state: Option<&str>,
    key: &SigningKey,
) -> Result<String, SignError> {
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = deflater.write_all(xml.as_bytes());
    let deflated = deflater.finish().unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(deflated);
    let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
    let mut query = format!("{}={}", kind.param(), enc(&b64));
    if let Some(rs) = relay_state {
        query.push_str(&format!("&RelayState={}", enc(rs)));
    }
    query.push_str(&format!("&SigAlg={}", enc(SIG_ALG)));
    let signature = key.sign_rsa_sha256(query.as_bytes())?;
    query.push_str(&format!(
        "&Signature={}",
        enc(&base64::engine::general_purpose::STANDARD.encode(signature))
    ));
    let joiner = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{joiner}{query}"))
}

/// The fields of a LogoutResponse we act on (SAML core §3.7.2 / §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub id: String,
    pub issuer: String,
    pub in_response_to: Option<String>,
    pub destination: Option<String>,
    pub issue_instant: String,
    pub status: String,
    pub sub_status: Option<String>,
}

impl LogoutResponse {
    /// SAML core §3.7.3.2: Success (with or without PartialLogout) means the SP ended its
    /// session; anything else is a failure for that participant.
    pub fn success(&self) -> bool {
        self.status == STATUS_SUCCESS
    }
}

pub fn read_logout_response(root: &Element) -> Result<LogoutResponse, RequestError> {
    let bad = |s: &str| RequestError::Malformed(s.to_owned());
    let Header {
        id,
        issuer,
        issue_instant,
    } = read_header(root, "LogoutResponse")?;
    let code = root
        .child(NS_SAMLP, "Status")
        .and_then(|s| s.child(NS_SAMLP, "StatusCode"))
        .ok_or_else(|| bad("Status missing"))?;
    Ok(LogoutResponse {
        id,
        issuer,
        in_response_to: root.attr("InResponseTo").map(str::to_owned),
        destination: root.attr("Destination").map(str::to_owned),
        issue_instant,
        status: code.attr("Value").unwrap_or_default().to_owned(),
        sub_status: code
            .child(NS_SAMLP, "StatusCode")
            .and_then(|c| c.attr("Value"))
            .map(str::to_owned),
    })
}

/// What we expect of the LogoutResponse to the LogoutRequest we sent.
pub struct Expected<'a> {
    /// The SP we asked (its entity ID) and the certificates it signs with.
    pub issuer: &'a str,
    pub certs: &'a [X509],
    /// The ID of our LogoutRequest.
    pub request_id: &'a str,
    /// Our endpoint URLs (a Destination must name one) and the accepted age, as for every
    /// inbound message (`request::Window`).
    pub window: &'a Window,
}

/// Why a LogoutResponse was not taken as an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unaccepted {
    /// Not the answer to the request we wait for (undecodable, malformed, or another
    /// InResponseTo): ignored, the run keeps waiting.
    Unrelated(String),
    /// It claims to answer our request but cannot be trusted (wrong Issuer, a missing or bad
    /// signature, another Destination, stale): the SP counts as not signed out.
    Untrusted(String),
}

/// Checks a LogoutResponse that came back to our SLO endpoint (Redirect or POST) against the
/// request we sent: InResponseTo, Issuer, signature (required when the SP has certificates,
/// checked against those only), Destination and freshness.
pub fn accept_response(
    incoming: &Incoming,
    binding: Binding,
    e: &Expected<'_>,
) -> Result<LogoutResponse, Unaccepted> {
    let unrelated = |m: String| Unaccepted::Unrelated(m);
    let root = decode(incoming, binding).map_err(|err| unrelated(err.to_string()))?;
    let r = read_logout_response(&root).map_err(|err| unrelated(err.to_string()))?;
    if r.in_response_to.as_deref() != Some(e.request_id) {
        return Err(unrelated(format!(
            "InResponseTo {:?} is not our request {}",
            r.in_response_to, e.request_id
        )));
    }
    let untrusted = |m: String| Err(Unaccepted::Untrusted(m));
    if r.issuer != e.issuer {
        return untrusted(format!("Issuer {:?} is not {}", r.issuer, e.issuer));
    }
    match binding_signature(incoming, &root, binding, e.certs) {
        Err(err) => return untrusted(err.to_string()),
        Ok(false) if !e.certs.is_empty() => {
            return untrusted("unsigned, but the SP has a certificate".into());
        }
        Ok(_) => {}
    }
    // Destination and IssueInstant as every inbound message is checked; our LogoutRequests
    // carry no RelayState, so there is none to bound here.
    if let Err(err) = check_envelope(None, r.destination.as_deref(), &r.issue_instant, e.window) {
        return untrusted(err.to_string());
    }
    Ok(r)
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

    use crate::xmldsig::sign::test_signing_key as key_and_cert;

    fn out(now: OffsetDateTime) -> LogoutOut<'static> {
        LogoutOut {
            idp_entity_id: "https://idp.example/adfs/services/trust",
            destination: "https://sp.example/slo",
            name_id: "alice@corp.example",
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            session_index: "_sess",
            now,
            lifetime: time::Duration::minutes(5),
        }
    }

    /// The POST-binding LogoutRequest is verified by xmlsec1, an independent implementation,
    /// and names the participant exactly as it was given (SAML core §3.7.1).
    #[test]
    fn post_logout_request_verifies_with_xmlsec1() {
        let (key, cert) = key_and_cert();
        let (id, el) = logout_request(&out(OffsetDateTime::now_utc()));
        let Outbound::Post { url, fields } = encode(
            el,
            Kind::Request,
            Binding::Post,
            "https://sp.example/slo",
            None,
            &key,
        )
        .expect("encode") else {
            panic!("POST binding");
        };
        assert_eq!(url, "https://sp.example/slo");
        assert_eq!(fields[0].0, "SAMLRequest");
        let xml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&fields[0].1)
                .expect("b64"),
        )
        .expect("utf8");
        for needle in [
            format!("ID=\"{id}\""),
            "NotOnOrAfter=\"".into(),
            "Destination=\"https://sp.example/slo\"".into(),
            "Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\">alice@corp.example</saml:NameID>".into(),
            "<samlp:SessionIndex>_sess</samlp:SessionIndex>".into(),
        ] {
            assert!(xml.contains(&needle), "{needle} in {xml}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (doc, pem) = (dir.path().join("req.xml"), dir.path().join("idp.pem"));
        std::fs::write(&doc, &xml).expect("write");
        std::fs::write(&pem, cert.to_pem().expect("pem")).expect("write");
        let run = |file: &std::path::Path| {
            std::process::Command::new("xmlsec1")
                .args(["--verify", "--trusted-pem"])
                .arg(&pem)
                .args([
                    "--id-attr:ID",
                    "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
                ])
                .arg(file)
                .output()
                .expect("xmlsec1 is installed (scripts/install-deps.sh)")
        };
        let verdict = run(&doc);
        assert!(
            verdict.status.success(),
            "{}",
            String::from_utf8_lossy(&verdict.stderr)
        );
        std::fs::write(&doc, xml.replace("alice@corp.example", "bob@corp.example")).expect("write");
        assert!(!run(&doc).status.success(), "a changed NameID breaks it");
    }

    /// SAML bindings §3.4.4.1 round trip: our signed query passes the inbound verifier of
    /// `saml::request`; a changed byte or another key does not.
    #[test]
    fn redirect_signature_round_trips_through_the_request_verifier() {
        let (key, cert) = key_and_cert();
        let (_, el) = logout_request(&out(OffsetDateTime::now_utc()));
        let dest = "https://sp.example/slo?tenant=a";
        let Outbound::Redirect(url) = encode(
            el,
            Kind::Request,
            Binding::Redirect,
            dest,
            Some("r s&x"),
            &key,
        )
        .expect("encode") else {
            panic!("Redirect binding");
        };
        let query = url
            .strip_prefix("https://sp.example/slo?tenant=a&")
            .expect("joined");
        let check = |q: &str, certs: &[X509]| {
            let inc = super::super::request::parse_redirect_query(q).expect("query");
            let root = decode(&inc, Binding::Redirect).expect("decode");
            assert!(
                root.child(crate::saml::NS_DS, "Signature").is_none(),
                "no XML signature"
            );
            binding_signature(&inc, &root, Binding::Redirect, certs)
        };
        assert_eq!(check(query, std::slice::from_ref(&cert)), Ok(true));
        let inc = super::super::request::parse_redirect_query(query).expect("query");
        assert_eq!(inc.relay_state.as_deref(), Some("r s&x"));
        let tampered = query.replace("RelayState=r", "RelayState=R");
        assert!(check(&tampered, std::slice::from_ref(&cert)).is_err());
        let (_, other) = key_and_cert();
        assert!(check(query, &[other]).is_err());

        // A LogoutResponse travels as SAMLResponse and verifies the same way.
        let el = logout_response(
            "https://idp",
            dest,
            "_r",
            STATUS_SUCCESS,
            None,
            OffsetDateTime::now_utc(),
        );
        let Outbound::Redirect(url) =
            encode(el, Kind::Response, Binding::Redirect, dest, None, &key).expect("encode")
        else {
            panic!("Redirect binding");
        };
        let query = url.split_once("tenant=a&").expect("joined").1;
        assert!(query.starts_with("SAMLResponse="));
        assert_eq!(check(query, std::slice::from_ref(&cert)), Ok(true));
    }

    #[test]
    fn a_logout_response_is_taken_only_from_the_sp_asked_for_our_request() {
        let (sp_key, sp_cert) = key_and_cert();
        let now = OffsetDateTime::now_utc();
        let ours = vec!["https://idp/adfs/ls/".to_owned()];
        let certs = [sp_cert];
        let expected = Expected {
            issuer: "https://sp",
            certs: &certs,
            request_id: "_ours",
            window: &Window {
                now,
                max_age: time::Duration::minutes(5),
                skew: time::Duration::minutes(1),
                sso_urls: ours,
                relay_state_max: 0,
            },
        };
        let posted = |issuer: &str, irt: &str, sub: Option<&str>, sign: bool| {
            let mut el = logout_response(
                issuer,
                "https://idp/adfs/ls/",
                irt,
                STATUS_SUCCESS,
                sub,
                now,
            );
            if sign {
                sign_enveloped(&mut el, &sp_key, 1).expect("sign");
            }
            Incoming {
                saml_request: base64::engine::general_purpose::STANDARD.encode(c14n(&el)),
                relay_state: None,
                raw_redirect: None,
            }
        };
        let r = accept_response(
            &posted("https://sp", "_ours", None, true),
            Binding::Post,
            &expected,
        )
        .expect("accepted");
        assert!(r.success());
        let partial = posted("https://sp", "_ours", Some(STATUS_PARTIAL_LOGOUT), true);
        let r = accept_response(&partial, Binding::Post, &expected).expect("accepted");
        assert_eq!(r.sub_status.as_deref(), Some(STATUS_PARTIAL_LOGOUT));
        let other_request = posted("https://sp", "_theirs", None, true);
        assert!(matches!(
            accept_response(&other_request, Binding::Post, &expected),
            Err(Unaccepted::Unrelated(_))
        ));
        for (issuer, sign) in [("https://other", true), ("https://sp", false)] {
            assert!(
                matches!(
                    accept_response(
                        &posted(issuer, "_ours", None, sign),
                        Binding::Post,
                        &expected
                    ),
                    Err(Unaccepted::Untrusted(_))
                ),
                "{issuer} signed={sign}"
            );
        }
        let garbage = Incoming {
            saml_request: "%%".into(),
            ..Default::default()
        };
        assert!(matches!(
            accept_response(&garbage, Binding::Post, &expected),
            Err(Unaccepted::Unrelated(_))
        ));
    }
}
