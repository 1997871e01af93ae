//! Proves the mod_auth_mellon SP fixture works on its own, with a throwaway IdP instead of Tessera.

#[path = "support/mellon.rs"]
mod mellon;

use std::io::Read;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mellon::{MellonOptions, MellonSp};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Verifier;
use openssl::x509::X509;
use reqwest::{StatusCode, Url, redirect};

const IDP_ENTITY_ID: &str = "http://127.0.0.1:1/idp";
const IDP_SSO_URL: &str = "http://127.0.0.1:1/adfs/ls/";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// A throwaway IdP: key and self-signed certificate, generated per test.
struct FakeIdp {
    key_pem: String,
    cert_b64: String,
}

impl FakeIdp {
    fn new() -> Self {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "fake-idp").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        FakeIdp {
            key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            cert_b64: openssl::base64::encode_block(&cert.to_der().unwrap()),
        }
    }

    /// IdP metadata with Redirect and POST SSO endpoints, like Tessera publishes.
    fn metadata(&self, want_signed_requests: bool) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY_ID}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="{want_signed_requests}" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO_URL}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{IDP_SSO_URL}"></md:SingleSignOnService>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
            cert = self.cert_b64
        )
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// GETs the protected page and follows the SP's own redirects (to /mellon/login); returns
/// the first response that leaves the SP or is not a redirect.
async fn start_login(sp: &MellonSp) -> reqwest::Response {
    let client = client();
    let first = client.get(sp.protected_url()).send().await.unwrap();
    assert_eq!(
        first.status(),
        StatusCode::SEE_OTHER,
        "protected page must redirect an anonymous user\n{}",
        sp.error_log()
    );
    let mut resp = first;
    for _ in 0..5 {
        let Some(location) = location(&resp) else {
            return resp;
        };
        if !location.starts_with(&sp.base_url()) {
            return resp;
        }
        resp = client.get(location).send().await.unwrap();
    }
    panic!("redirect loop inside the SP");
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Redirect binding: base64 of raw DEFLATE.
fn inflate_request(b64: &str) -> String {
    let raw = B64.decode(b64).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

/// The value of `attr="..."` on the first element carrying it.
fn attr(xml: &str, attr: &str) -> Option<String> {
    let needle = format!(" {attr}=\"");
    let start = xml.find(&needle)? + needle.len();
    Some(xml[start..start + xml[start..].find('"')?].to_string())
}

/// Text of the first `<...local>` element (any prefix).
fn element_text(xml: &str, local: &str) -> Option<String> {
    let open = xml.find(&format!(":{local}>"))? + local.len() + 2;
    Some(xml[open..open + xml[open..].find('<')?].to_string())
}

/// The value of a hidden form input in mellon's auto-submit page.
fn form_input(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    Some(html[start..start + html[start..].find('"')?].to_string())
}

fn assert_common_request(sp: &MellonSp, xml: &str) {
    assert!(xml.contains("<samlp:AuthnRequest"), "{xml}");
    assert_eq!(
        element_text(xml, "Issuer").as_deref(),
        Some(&*sp.entity_id())
    );
    assert_eq!(attr(xml, "Destination").as_deref(), Some(IDP_SSO_URL));
    assert_eq!(
        attr(xml, "AssertionConsumerServiceURL"),
        Some(sp.acs_url()),
        "{xml}"
    );
    assert!(attr(xml, "ID").unwrap().starts_with('_'), "{xml}");
    assert_eq!(attr(xml, "ForceAuthn").as_deref(), Some("false"));
    assert_eq!(attr(xml, "IsPassive").as_deref(), Some("false"));
    assert!(
        xml.contains(r#"<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" AllowCreate="true"/>"#),
        "{xml}"
    );
    assert!(!xml.contains("RequestedAuthnContext"), "{xml}");
}

fn sp_public_key(sp: &MellonSp) -> PKey<openssl::pkey::Public> {
    X509::from_pem(sp.sp_cert_pem().as_bytes())
        .unwrap()
        .public_key()
        .unwrap()
}

#[tokio::test]
async fn redirect_binding_sends_signed_request() {
    let idp = FakeIdp::new();
    let sp = MellonSp::start(MellonOptions::new(idp.metadata(false)));

    let resp = start_login(&sp).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", sp.error_log());
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with("mellon-cookie=cookietest"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("SameSite"), "{set_cookie}");

    let loc = location(&resp).unwrap();
    assert!(loc.starts_with(IDP_SSO_URL), "{loc}");
    let url = Url::parse(&loc).unwrap();
    assert_eq!(query_param(&url, "RelayState"), Some(sp.protected_url()));
    assert_eq!(query_param(&url, "SigAlg").as_deref(), Some(RSA_SHA256));
    let signature = B64.decode(query_param(&url, "Signature").unwrap()).unwrap();

    // The signature covers the raw query up to and including SigAlg, as sent.
    let raw_query = url.query().unwrap();
    let signed = &raw_query[..raw_query.find("&Signature=").unwrap()];
    let key = sp_public_key(&sp);
    let mut verifier = Verifier::new(MessageDigest::sha256(), &key).unwrap();
    verifier.update(signed.as_bytes()).unwrap();
    assert!(
        verifier.verify(&signature).unwrap(),
        "mellon must sign with the key in sp_metadata()"
    );

    let xml = inflate_request(&query_param(&url, "SAMLRequest").unwrap());
    assert_common_request(&sp, &xml);
    assert!(
        !xml.contains("Signature"),
        "Redirect binding signs the query, not the XML"
    );
}

#[tokio::test]
async fn post_binding_sends_xml_signed_request() {
    let idp = FakeIdp::new();
    let sp = MellonSp::start(MellonOptions {
        post_binding: true,
        ..MellonOptions::new(idp.metadata(false))
    });

    let resp = start_login(&sp).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", sp.error_log());
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"<form method="POST" action="{IDP_SSO_URL}">"#)),
        "{html}"
    );
    assert_eq!(form_input(&html, "RelayState"), Some(sp.protected_url()));
    let xml = String::from_utf8(
        B64.decode(form_input(&html, "SAMLRequest").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_common_request(&sp, &xml);
    assert!(
        xml.contains(r#"<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">"#),
        "{xml}"
    );
    assert!(xml.contains(&format!(r#"<SignatureMethod Algorithm="{RSA_SHA256}"/>"#)));
    assert!(xml.contains(r#"<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>"#));
    assert!(xml.contains(r##"<Reference URI="#_"##), "{xml}");
    // lasso wraps the base64 certificate at 64 columns.
    let unwrapped: String = xml.split_whitespace().collect();
    assert!(
        unwrapped.contains(&sp_cert_b64(&sp)),
        "KeyInfo carries the SP cert"
    );
}

#[tokio::test]
async fn unsigned_requests_even_when_idp_wants_them_signed() {
    let idp = FakeIdp::new();
    // WantAuthnRequestsSigned="true" would make lasso sign; the fixture neutralises it.
    let sp = MellonSp::start(MellonOptions {
        sign_requests: false,
        ..MellonOptions::new(idp.metadata(true))
    });
    let resp = start_login(&sp).await;
    let url = Url::parse(&location(&resp).unwrap()).unwrap();
    assert!(query_param(&url, "SAMLRequest").is_some());
    assert!(query_param(&url, "Signature").is_none(), "{url}");
    assert!(query_param(&url, "SigAlg").is_none(), "{url}");
    assert!(sp.sp_metadata().contains(r#"AuthnRequestsSigned="false""#));
    drop(sp);

    let sp = MellonSp::start(MellonOptions {
        sign_requests: false,
        post_binding: true,
        ..MellonOptions::new(idp.metadata(true))
    });
    let html = start_login(&sp).await.text().await.unwrap();
    let xml = String::from_utf8(
        B64.decode(form_input(&html, "SAMLRequest").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_common_request(&sp, &xml);
    assert!(!xml.contains("Signature"), "{xml}");
}

fn sp_cert_b64(sp: &MellonSp) -> String {
    let der = X509::from_pem(sp.sp_cert_pem().as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    openssl::base64::encode_block(&der)
}

#[tokio::test]
async fn sp_metadata_is_what_mellon_serves() {
    let idp = FakeIdp::new();
    let sp = MellonSp::start(MellonOptions::new(idp.metadata(true)));
    let md = sp.sp_metadata();

    // Well-formed XML, walked to the end.
    let mut reader = quick_xml::Reader::from_str(&md);
    let mut elements = Vec::new();
    loop {
        match reader
            .read_event()
            .expect("SP metadata must be well-formed XML")
        {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                elements.push(e.local_name().as_ref().to_string())
            }
            _ => {}
        }
    }
    for needed in [
        "EntityDescriptor",
        "SPSSODescriptor",
        "KeyDescriptor",
        "X509Certificate",
        "SingleLogoutService",
        "AssertionConsumerService",
    ] {
        assert!(
            elements.iter().any(|e| e == needed),
            "{needed} missing: {md}"
        );
    }
    assert_eq!(attr(&md, "entityID"), Some(sp.entity_id()));
    assert_eq!(sp.entity_id(), format!("{}/mellon/metadata", sp.base_url()));
    assert!(md.contains(&sp_cert_b64(&sp)));
    assert!(md.contains(r#"AuthnRequestsSigned="true" WantAssertionsSigned="true""#));
    assert!(md.contains(&format!(r#"Location="{}""#, sp.acs_url())));

    let served = client()
        .get(format!("{}/mellon/metadata", sp.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        served, md,
        "mellon must serve the metadata the fixture wrote"
    );
    assert!(sp.error_log().contains("resuming normal operations"));
}

#[test]
fn drop_stops_apache_and_removes_state() {
    let idp = FakeIdp::new();
    let sp = MellonSp::start(MellonOptions::new(idp.metadata(false)));
    let addr = sp.base_url().trim_start_matches("http://").to_string();
    let dir = sp.state_dir().to_path_buf();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    drop(sp);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "apache still listening"
    );
    assert!(!dir.exists(), "temp dir left behind");
}

/// UTC timestamp `now + offset_secs` in SAML's xs:dateTime form.
fn saml_time(offset_secs: i64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset_secs;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A Response whose Assertion is signed (RSA-SHA256, exc-c14n) by the fake IdP via xmlsec1.
fn signed_response(
    idp: &FakeIdp,
    sp: &MellonSp,
    assertion_id: &str,
    in_response_to: &str,
    audience: &str,
) -> String {
    let (now, before, later) = (saml_time(0), saml_time(-60), saml_time(300));
    let acs = sp.acs_url();
    let xml = format!(
        r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp{assertion_id}" Version="2.0" IssueInstant="{now}" Destination="{acs}" InResponseTo="{in_response_to}"><saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{assertion_id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{RSA_SHA256}"/><ds:Reference URI="#{assertion_id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">alice@example.test</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{in_response_to}" NotOnOrAfter="{later}" Recipient="{acs}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{before}" NotOnOrAfter="{later}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="_s{assertion_id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="mail"><saml:AttributeValue>alice@example.test</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups"><saml:AttributeValue>admins</saml:AttributeValue><saml:AttributeValue>staff</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"##
    );
    let dir = tempfile::tempdir().unwrap();
    let (tpl, key, out) = (
        dir.path().join("resp.xml"),
        dir.path().join("idp-key.pem"),
        dir.path().join("signed.xml"),
    );
    std::fs::write(&tpl, xml).unwrap();
    std::fs::write(&key, &idp.key_pem).unwrap();
    let status = Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem"])
        .arg(&key)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--output",
        ])
        .arg(&out)
        .arg(&tpl)
        .status()
        .expect("xmlsec1 missing: run `bash scripts/install-deps.sh`");
    assert!(status.success(), "xmlsec1 failed to sign the test Response");
    std::fs::read_to_string(out).unwrap()
}

async fn post_response(
    sp: &MellonSp,
    response_xml: &str,
    cookie: &str,
    relay_state: &str,
) -> reqwest::Response {
    client()
        .post(sp.acs_url())
        .header("cookie", cookie)
        .form(&[
            ("SAMLResponse", B64.encode(response_xml)),
            ("RelayState", relay_state.to_string()),
        ])
        .send()
        .await
        .unwrap()
}

/// The whole SP-initiated login, with xmlsec1 standing in for Tessera's signer: proves the
/// CGI sees REMOTE_USER and merged MELLON_* attributes, and that error_log() explains rejects.
#[tokio::test]
async fn full_login_reaches_protected_page() {
    let idp = FakeIdp::new();
    let sp = MellonSp::start(MellonOptions::new(idp.metadata(false)));

    let resp = start_login(&sp).await;
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let url = Url::parse(&location(&resp).unwrap()).unwrap();
    let request = inflate_request(&query_param(&url, "SAMLRequest").unwrap());
    let request_id = attr(&request, "ID").unwrap();
    let relay_state = query_param(&url, "RelayState").unwrap();

    // Wrong audience: rejected, and the error log says why.
    let bad = signed_response(&idp, &sp, "_a1", &request_id, "http://other.example/");
    let resp = post_response(&sp, &bad, &cookie, &relay_state).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(sp.error_log().contains("Invalid Audience in Conditions"));

    let good = signed_response(&idp, &sp, "_a2", &request_id, &sp.entity_id());
    let resp = post_response(&sp, &good, &cookie, &relay_state).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", sp.error_log());
    assert_eq!(location(&resp), Some(sp.protected_url()));
    let session = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let page = client()
        .get(sp.protected_url())
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{}", sp.error_log());
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = page.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    for expected in [
        "REMOTE_USER=alice@example.test",
        "MELLON_NAME_ID=alice@example.test",
        "MELLON_mail=alice@example.test",
        "MELLON_groups=admins;staff",
        "MELLON_ASSERTION_ID=_a2",
    ] {
        assert!(lines.contains(&expected), "{expected} missing in:\n{body}");
    }

    // Replaying the same assertion is refused.
    let resp = post_response(&sp, &good, &cookie, &relay_state).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(sp.error_log().contains("has already been used"));
}
