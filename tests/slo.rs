//! Single logout over HTTP against a real Tessera: SP-initiated over both bindings with
//! mod_auth_mellon (HTTP-Redirect, the only logout binding mellon 0.18 speaks) and with SPs
//! written here (HTTP-POST; their LogoutRequests checked with xmlsec1), across the
//! participants of one session, PartialLogout, LogoutRequests that name another session, and
//! hostile signatures; the sign-out page and WS-Fed cleanup; and the limits of one run.

mod support {
    pub mod browser;
    pub mod mellon;
    pub mod slapd;
    pub mod sp;
    pub mod tessera;
}

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::mellon::{MellonOptions, MellonSp};
use support::slapd::Slapd;
use support::sp::{NS_SAML, NS_SAMLP, TestSp};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::xmldsig::emit::{El, c14n};
use tessera::xmldsig::sign::{SigningKey, sign_enveloped};

const PASSWORD: &str = "Corr3ct horse!";
const LDAP_PASSWORD: &str = "alice-Pass-1";
const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
const PARTIAL: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

struct Setup {
    idp: Tessera,
    sps: Vec<TestSp>,
    cert: PathBuf,
}

/// Tessera (users file) with test SPs `one` and `two` (certificates registered, so their
/// LogoutRequests must be signed; SLO endpoints over HTTP-POST), plus `extra` config.
async fn setup(extra: impl FnOnce(&mut TesseraBuilder)) -> Setup {
    let mut b = TesseraBuilder::new();
    b.config.mfa.enabled = false;
    b.add_user(&[file_user("alice", PASSWORD), file_user("bob", PASSWORD)]);
    let sps: Vec<TestSp> = ["one", "two"].iter().map(|n| TestSp::new(n)).collect();
    b.add_rp("one", &sps[0].metadata(false), "name = \"App One\"\n");
    b.add_rp("two", &sps[1].metadata(false), "name = \"App Two\"\n");
    extra(&mut b);
    let cert = b.cert_pem_path();
    let idp = b.start().await;
    Setup { idp, sps, cert }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let at = s.find(start).unwrap_or_else(|| panic!("{start} in {s}")) + start.len();
    let stop = s[at..].find(end).expect("end") + at;
    &s[at..stop]
}

fn b64_xml(v: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v)
        .expect("base64");
    String::from_utf8(bytes).expect("utf8")
}

/// The value of query parameter `name` in `url`, as the SP would read it.
fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A Redirect-binding message (DEFLATE + base64) back to XML.
fn inflate_param(url: &str, name: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(query_param(url, name).expect("param"))
        .expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&bytes[..])
        .read_to_string(&mut xml)
        .expect("inflate");
    xml
}

/// Signs in at test SP `sp` in this browser (the password only when there is no session)
/// and returns the NameID and SessionIndex of the assertion it got.
async fn sign_in(browser: &Browser, idp: &Tessera, sp: &TestSp, user: &str) -> (String, String) {
    let q = sp.redirect_query(&sp.xml(&sp.req()), None, None);
    let (url, status, mut page) = browser.get(&format!("{}/adfs/ls/?{q}", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    if page.contains("name=\"password\"") {
        page = browser.sign_in(&url, &page, user, PASSWORD).await.2;
    }
    let form = Browser::post_form(&page);
    assert_eq!(form.action, sp.acs);
    let xml = form.xml();
    let element = between(&xml, "<saml:NameID", "</saml:NameID>");
    let name_id = &element[element.find('>').expect("tag end") + 1..];
    (
        name_id.to_owned(),
        between(&xml, "SessionIndex=\"", "\"").to_owned(),
    )
}

/// Whether this browser still has an SSO session (an AuthnRequest is answered at once).
async fn has_session(browser: &Browser, idp: &Tessera, sp: &TestSp) -> bool {
    let q = sp.redirect_query(&sp.xml(&sp.req()), None, None);
    let (_, _, page) = browser.get(&format!("{}/adfs/ls/?{q}", idp.base)).await;
    page.contains("SAMLResponse")
}

/// A LogoutRequest from `sp` (SAML core §3.7.1).
fn logout_el(sp: &TestSp, name_id: &str, format: Option<&str>, index: Option<&str>) -> El {
    let mut name = El::new("saml", "NameID", NS_SAML).text(name_id);
    if let Some(f) = format {
        name = name.attr("Format", f);
    }
    let mut e = El::new("samlp", "LogoutRequest", NS_SAMLP)
        .attr("ID", format!("_{}", tessera::saml::random_hex(16)))
        .attr(
            "IssueInstant",
            tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
        )
        .attr("Version", "2.0")
        .child(El::new("saml", "Issuer", NS_SAML).text(sp.entity_id.clone()))
        .child(name);
    if let Some(i) = index {
        e = e.child(El::new("samlp", "SessionIndex", NS_SAMLP).text(i));
    }
    e
}

fn signer(sp: &TestSp) -> SigningKey {
    SigningKey::new(sp.key.clone(), &sp.cert).expect("sp signer")
}

fn signed(sp: &TestSp, mut el: El) -> String {
    sign_enveloped(&mut el, &signer(sp), 1).expect("sign");
    c14n(&el)
}

/// POSTs a SAML message (HTTP-POST binding) to Tessera's SAML endpoint.
async fn post_saml(
    browser: &Browser,
    idp: &Tessera,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> (String, StatusCode, String) {
    let b64 = TestSp::post_b64(xml);
    let mut fields = vec![(param, b64.as_str())];
    if let Some(rs) = relay_state {
        fields.push(("RelayState", rs));
    }
    browser
        .post(&format!("{}/adfs/ls/", idp.base), &fields)
        .await
}

/// The test SP's LogoutResponse to `request_xml`, signed, with `status`.
fn logout_response(sp: &TestSp, idp: &Tessera, request_xml: &str, status: &str) -> String {
    let el = El::new("samlp", "LogoutResponse", NS_SAMLP)
        .attr("Destination", format!("{}/adfs/ls/", idp.base))
        .attr("ID", format!("_{}", tessera::saml::random_hex(16)))
        .attr("InResponseTo", between(request_xml, " ID=\"", "\""))
        .attr(
            "IssueInstant",
            tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
        )
        .attr("Version", "2.0")
        .child(El::new("saml", "Issuer", NS_SAML).text(sp.entity_id.clone()))
        .child(
            El::new("samlp", "Status", NS_SAMLP)
                .child(El::new("samlp", "StatusCode", NS_SAMLP).attr("Value", status)),
        );
    signed(sp, el)
}

/// xmlsec1 on the enveloped signature of a root `samlp:<local>`, trusting only `cert`.
fn xmlsec_verify(xml: &str, cert: &Path, local: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, xml).expect("write");
    let out = std::process::Command::new("xmlsec1")
        .args(["--verify", "--trusted-pem"])
        .arg(cert)
        .arg("--id-attr:ID")
        .arg(format!("urn:oasis:names:tc:SAML:2.0:protocol:{local}"))
        .arg("--node-xpath")
        .arg(format!(
            "/*[local-name()='{local}']/*[local-name()='Signature']"
        ))
        .arg(&file)
        .output()
        .expect("xmlsec1 is installed (scripts/install-deps.sh)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// On an auto-POST page to `sp`'s SLO endpoint: the LogoutRequest Tessera sends it, checked
/// as the SP would (xmlsec1, our certificate only) and for who it names.
fn our_logout_request(s: &Setup, page: &str, sp: &TestSp, name_id: &str, index: &str) -> String {
    assert_eq!(
        support::browser::form_action(page).as_deref(),
        Some(sp.slo().as_str()),
        "{page}"
    );
    let xml = b64_xml(&input_value(page, "SAMLRequest").expect("SAMLRequest"));
    xmlsec_verify(&xml, &s.cert, "LogoutRequest").expect("xmlsec1 verifies our LogoutRequest");
    assert!(
        xml.contains(&format!("Format=\"{UNSPECIFIED}\">{name_id}</saml:NameID>")),
        "{xml}"
    );
    assert!(xml.contains(&format!("<samlp:SessionIndex>{index}</samlp:SessionIndex>")));
    assert!(xml.contains(&format!("Destination=\"{}\"", sp.slo())));
    assert!(xml.contains("NotOnOrAfter=\""), "{xml}");
    xml
}

/// The LogoutResponse on an auto-POST page to `sp`: signed (xmlsec1), for `request_id`.
fn our_logout_response(s: &Setup, page: &str, sp: &TestSp, request_id: &str) -> String {
    let form = Browser::post_form(page);
    assert_eq!(form.action, sp.slo(), "{page}");
    let xml = form.xml();
    xmlsec_verify(&xml, &s.cert, "LogoutResponse").expect("xmlsec1 verifies our LogoutResponse");
    assert!(
        xml.contains(&format!("InResponseTo=\"{request_id}\"")),
        "{xml}"
    );
    xml
}

#[tokio::test]
async fn two_sps_in_one_session_are_both_signed_out_and_the_initiator_gets_success() {
    let s = setup(|_| {}).await;
    let (one, two) = (&s.sps[0], &s.sps[1]);
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    assert_eq!(
        sign_in(&browser, &s.idp, two, "alice").await.1,
        index,
        "one session"
    );

    let request = logout_el(one, &name_id, Some(UNSPECIFIED), Some(&index));
    let request_id = request.id().expect("id").to_owned();
    let (_, status, page) = post_saml(
        &browser,
        &s.idp,
        "SAMLRequest",
        &signed(one, request),
        Some("back to one"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // App Two is asked next, with the NameID it was given in this session.
    let to_two = our_logout_request(&s, &page, two, &name_id, &index);
    assert!(
        !has_session(&browser, &s.idp, one).await,
        "the IdP session ended at once"
    );

    let answer = logout_response(two, &s.idp, &to_two, SUCCESS);
    let (_, status, page) = post_saml(&browser, &s.idp, "SAMLResponse", &answer, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let xml = our_logout_response(&s, &page, one, &request_id);
    assert!(
        xml.contains(&format!(
            "<samlp:StatusCode Value=\"{SUCCESS}\"></samlp:StatusCode>"
        )),
        "plain Success, no PartialLogout: {xml}"
    );
    assert_eq!(
        Browser::post_form(&page).relay_state.as_deref(),
        Some("back to one")
    );

    // One audit event says who, who started it and what came of each participant.
    let log = s
        .idp
        .state
        .store
        .read_log(tessera::login::slo::LOG, 0, i64::MAX, 50)
        .await
        .expect("log");
    let events: Vec<String> = log
        .iter()
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("\"user\":\"alice\""), "{}", events[0]);
    assert!(events[0].contains(&format!("initiator={}", one.entity_id)));
    assert!(events[0].contains(&format!("signed_out=[\\\"{}\\\"]", two.entity_id)));
}

#[tokio::test]
async fn a_second_sp_that_fails_makes_the_answer_partial_logout() {
    let s = setup(|_| {}).await;
    let (one, two) = (&s.sps[0], &s.sps[1]);
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    sign_in(&browser, &s.idp, two, "alice").await;
    let request = logout_el(one, &name_id, None, None);
    let request_id = request.id().expect("id").to_owned();
    let (_, _, page) =
        post_saml(&browser, &s.idp, "SAMLRequest", &signed(one, request), None).await;
    let to_two = our_logout_request(&s, &page, two, &name_id, &index);
    let answer = logout_response(two, &s.idp, &to_two, RESPONDER);
    let (_, status, page) = post_saml(&browser, &s.idp, "SAMLResponse", &answer, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let xml = our_logout_response(&s, &page, one, &request_id);
    assert!(
        xml.contains(&format!(
            "<samlp:StatusCode Value=\"{SUCCESS}\"><samlp:StatusCode Value=\"{PARTIAL}\">"
        )),
        "{xml}"
    );
}

#[tokio::test]
async fn logout_requests_that_name_another_session_are_answered_requester_and_end_nothing() {
    let s = setup(|_| {}).await;
    let (one, two) = (&s.sps[0], &s.sps[1]);
    let alice = Browser::new();
    let (name_id, index) = sign_in(&alice, &s.idp, one, "alice").await;
    let bob = Browser::new();
    let (bob_name_id, bob_index) = sign_in(&bob, &s.idp, one, "bob").await;
    let cases = [
        // Another user's NameID (bob's own, valid in his session) through alice's browser.
        (one, logout_el(one, &bob_name_id, None, Some(&bob_index))),
        (one, logout_el(one, &bob_name_id, None, None)),
        (
            one,
            logout_el(one, &name_id, None, Some("_not_this_session")),
        ),
        (
            one,
            logout_el(
                one,
                &name_id,
                Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
                None,
            ),
        ),
        // An SP that received nothing in this session.
        (two, logout_el(two, &name_id, None, Some(&index))),
    ];
    for (sp, request) in cases {
        let request_id = request.id().expect("id").to_owned();
        let (_, status, page) =
            post_saml(&alice, &s.idp, "SAMLRequest", &signed(sp, request), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let xml = our_logout_response(&s, &page, sp, &request_id);
        assert!(xml.contains(&format!("Value=\"{REQUESTER}\"")), "{xml}");
        assert!(
            has_session(&alice, &s.idp, one).await,
            "alice still signed in"
        );
    }
    assert!(has_session(&bob, &s.idp, one).await, "bob still signed in");
    let log = s
        .idp
        .state
        .store
        .read_log(tessera::login::slo::LOG, 0, i64::MAX, 50)
        .await
        .expect("log");
    let refusals = log
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.value).contains("\"to\":\"refused\""))
        .count();
    assert_eq!(refusals, 5, "one audit event per refused LogoutRequest");
}

/// What a browser carrying `xml` as a POST-binding LogoutRequest is told, and whether the
/// session survived it.
async fn refused(s: &Setup, browser: &Browser, xml: &str) {
    let (_, status, page) = post_saml(browser, &s.idp, "SAMLRequest", xml, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}\n{page}");
    assert!(!page.contains("SAMLResponse") && !page.contains("SAMLRequest"));
    assert!(
        has_session(browser, &s.idp, &s.sps[0]).await,
        "nothing ended: {xml}"
    );
}

#[tokio::test]
async fn unsigned_and_hostile_logout_requests_are_refused_and_end_nothing() {
    let s = setup(|_| {}).await;
    let one = &s.sps[0];
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    let good = || logout_el(one, &name_id, None, Some(&index));

    // Unsigned, over POST and over Redirect: the SP has a certificate, so it must sign.
    refused(&s, &browser, &c14n(&good())).await;
    let q = one.redirect_query(&c14n(&good()), None, None);
    let (_, status, _) = browser.get(&format!("{}/adfs/ls/?{q}", s.idp.base)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(has_session(&browser, &s.idp, one).await);

    // Signature wrapping: a validly signed LogoutRequest (bob's) moved inside an unsigned
    // wrapper that names alice's session.
    let inner = signed(one, logout_el(one, "bob@corp.example", None, None));
    let wrapper = c14n(&good());
    let wrapped = wrapper.replacen(
        "<saml:NameID>",
        &format!("<samlp:Extensions>{inner}</samlp:Extensions><saml:NameID>"),
        1,
    );
    refused(&s, &browser, &wrapped).await;
    // …and with the signature lifted onto the wrapper, which takes the signed ID.
    let sig = between(&inner, "<ds:Signature", "</ds:Signature>");
    let sig = format!("<ds:Signature{sig}</ds:Signature>");
    let inner_id = between(&inner, " ID=\"", "\"");
    let lifted = wrapper
        .replacen(between(&wrapper, " ID=\"", "\""), inner_id, 1)
        .replacen(
            "<saml:NameID>",
            &format!(
                "{sig}<samlp:Extensions>{}</samlp:Extensions><saml:NameID>",
                inner.replace(&sig, "")
            ),
            1,
        );
    refused(&s, &browser, &lifted).await;

    // A Reference to an external URI: refused before anything is fetched.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let valid = signed(one, good());
    let id = between(&valid, " ID=\"", "\"").to_owned();
    let external = valid.replace(
        &format!("URI=\"#{id}\""),
        &format!("URI=\"http://127.0.0.1:{port}/doc.xml\""),
    );
    refused(&s, &browser, &external).await;
    assert!(listener.accept().is_err(), "nothing was fetched");

    // A second Signature beside the valid one.
    let sig = format!(
        "<ds:Signature{}</ds:Signature>",
        between(&valid, "<ds:Signature", "</ds:Signature>")
    );
    let doubled = valid.replacen(&sig, &format!("{sig}{sig}"), 1);
    refused(&s, &browser, &doubled).await;

    // The untouched, signed request still works: nothing above was refused for its content.
    let (_, status, page) = post_saml(&browser, &s.idp, "SAMLRequest", &valid, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("SAMLResponse"));
    assert!(!has_session(&browser, &s.idp, one).await);
}

/// A stand-in for a WS-Fed relying party's web server: records the request lines it gets.
struct Recorder {
    base: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                log.lock()
                    .expect("lock")
                    .push(head.lines().next().unwrap_or("").to_owned());
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Recorder { base, seen }
    }
}

/// The signed-in browser opens the WS-Fed application `realm`: the session answers at once
/// with a token (WS-Fed sign-in at `/adfs/ls/`), and the realm becomes a participant.
async fn sign_in_wsfed(browser: &Browser, idp: &Tessera, realm: &str) {
    let realm: String = url::form_urlencoded::byte_serialize(realm.as_bytes()).collect();
    let (_, status, page) = browser
        .get(&format!(
            "{}/adfs/ls/?wa=wsignin1.0&wtrealm={realm}",
            idp.base
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("name=\"wresult\""),
        "a token from the session: {page}"
    );
}

#[tokio::test]
async fn the_sign_out_page_lists_the_applications_and_signs_out_of_each() {
    let ws = Recorder::start();
    let ws_reply = format!("{}/app/", ws.base);
    let reply = ws_reply.clone();
    let s = setup(move |b| {
        b.config.relying_parties.push(tessera::rp::RpConfig {
            name: Some("Portal without SLO".into()),
            entity_id: Some("https://noslo.sp.test".into()),
            acs: vec!["https://noslo.sp.test/acs".into()],
            ..Default::default()
        });
        b.config.relying_parties.push(tessera::rp::RpConfig {
            name: Some("SharePoint".into()),
            entity_id: Some("urn:sharepoint:corp".into()),
            acs: vec![reply],
            protocol: Some(tessera::rp::Protocol::Wsfed),
            ..Default::default()
        });
    })
    .await;
    let one = &s.sps[0];
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp=https://noslo.sp.test",
            s.idp.base
        ))
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");
    sign_in_wsfed(&browser, &s.idp, "urn:sharepoint:corp").await;

    let logout = format!("{}/adfs/ls/logout", s.idp.base);
    let (_, status, page) = browser.get(&logout).await;
    assert_eq!(status, StatusCode::OK);
    for app in ["App One", "Portal without SLO", "SharePoint"] {
        assert!(page.contains(&format!("<li>{app}</li>")), "{app}: {page}");
    }
    let csrf = input_value(&page, "csrf").expect("csrf");
    // Another site's form (no token, or someone else's) ends nothing.
    for token in ["", "00", &csrf[..csrf.len() - 1]] {
        let (_, status, _) = browser.post(&logout, &[("csrf", token)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert!(has_session(&browser, &s.idp, one).await);

    let (_, status, page) = browser.post(&logout, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let to_one = our_logout_request(&s, &page, one, &name_id, &index);
    let answer = logout_response(one, &s.idp, &to_one, SUCCESS);
    let res = browser
        .http
        .post(format!("{}/adfs/ls/", s.idp.base))
        .form(&[("SAMLResponse", TestSp::post_b64(&answer))])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    let page = res.text().await.expect("body");
    assert!(page.contains("You have signed out."), "{page}");
    assert!(
        page.contains("<li>Portal without SLO</li>"),
        "no SLO endpoint: not signed out"
    );
    assert!(
        !page.contains("<li>App One</li>"),
        "App One answered Success"
    );
    // WS-Fed: a cleanup image at the reply URL; the CSP allows images from that origin only.
    let cleanup = format!("{ws_reply}?wa=wsignoutcleanup1.0");
    let src = between(&page, "<img class=\"cleanup\" src=\"", "\"");
    assert_eq!(support::browser::unescape(src), cleanup, "{page}");
    assert!(
        csp.contains(&format!("img-src 'self' data: {};", ws.base)),
        "{csp}"
    );
    let (_, status, _) = browser.get(&cleanup).await;
    assert_eq!(status, StatusCode::OK);
    let seen = ws.seen.lock().expect("lock").clone();
    assert_eq!(seen, ["GET /app/?wa=wsignoutcleanup1.0 HTTP/1.1"]);
    assert!(!has_session(&browser, &s.idp, one).await);
}

#[tokio::test]
async fn one_run_per_session_and_no_answer_advances_it_twice() {
    let s = setup(|_| {}).await;
    let (one, two) = (&s.sps[0], &s.sps[1]);
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    sign_in(&browser, &s.idp, two, "alice").await;
    let logout = format!("{}/adfs/ls/logout", s.idp.base);
    let (_, _, page) = browser.get(&logout).await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let (_, _, page) = browser.post(&logout, &[("csrf", &csrf)]).await;
    let to_one = our_logout_request(&s, &page, one, &name_id, &index);

    // While the browser is at App One: the same form again starts nothing (the session it
    // was bound to is gone), and skipping ahead is refused.
    let (_, status, again) = browser.post(&logout, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!again.contains("SAMLRequest"), "{again}");
    let (_, status, _) = browser.get(&format!("{logout}/continue")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let answer_one = logout_response(one, &s.idp, &to_one, SUCCESS);
    let (_, _, page) = post_saml(&browser, &s.idp, "SAMLResponse", &answer_one, None).await;
    let to_two = our_logout_request(&s, &page, two, &name_id, &index);
    // App One's answer, replayed, sends no second LogoutRequest anywhere.
    let (_, status, replay) = post_saml(&browser, &s.idp, "SAMLResponse", &answer_one, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!replay.contains("SAMLRequest"));
    // An answer to our request from the wrong SP is not taken as App Two's.
    let forged = logout_response(one, &s.idp, &to_two, SUCCESS);
    let (_, _, page) = post_saml(&browser, &s.idp, "SAMLResponse", &forged, None).await;
    assert!(
        page.contains("<li>App Two</li>"),
        "App Two is not known to be signed out: {page}"
    );
    let answer_two = logout_response(two, &s.idp, &to_two, SUCCESS);
    let (_, status, replay) = post_saml(&browser, &s.idp, "SAMLResponse", &answer_two, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the run is over");
    assert!(!replay.contains("SAMLRequest"));
}

struct MellonPeers {
    _slapd: Slapd,
    mellon: MellonSp,
    s: Setup,
}

/// slapd, Tessera on LDAP with test SP `one` and mod_auth_mellon (its SLO endpoint is
/// HTTP-Redirect only); `post_binding` makes mellon send its AuthnRequest over HTTP-POST.
async fn mellon_peers(post_binding: bool) -> MellonPeers {
    let slapd = Slapd::start();
    let mut b = TesseraBuilder::new();
    b.config.mfa.enabled = false;
    b.config.directory.kind = tessera::config::DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    let mellon = MellonSp::start(MellonOptions {
        post_binding,
        ..MellonOptions::new(b.idp_metadata())
    });
    b.add_rp("mellon", &mellon.sp_metadata(), "name = \"Mellon\"\n");
    let one = TestSp::new("one");
    b.add_rp("one", &one.metadata(false), "name = \"App One\"\n");
    let cert = b.cert_pem_path();
    let idp = b.start().await;
    MellonPeers {
        _slapd: slapd,
        mellon,
        s: Setup {
            idp,
            sps: vec![one],
            cert,
        },
    }
}

/// Signs alice in at mellon (through Tessera's login page) and then at App One (SSO).
async fn sign_in_both(browser: &Browser, p: &MellonPeers) -> (String, String) {
    let (url, status, page) = browser.get(&p.mellon.protected_url()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (url, page) = if page.contains("name=\"password\"") {
        (url, page)
    } else {
        let form = support::browser::form_action(&page).expect("mellon's POST form");
        let req = input_value(&page, "SAMLRequest").expect("SAMLRequest");
        let rs = input_value(&page, "RelayState").unwrap_or_default();
        let (url, _, page) = browser
            .post(
                &support::browser::join(&url, &form),
                &[("SAMLRequest", &req), ("RelayState", &rs)],
            )
            .await;
        (url, page)
    };
    let (_, _, page) = browser.sign_in(&url, &page, "alice", LDAP_PASSWORD).await;
    let (_, status, body) = browser.submit(&Browser::post_form(&page)).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", p.mellon.error_log());
    assert!(body.contains("REMOTE_USER=alice@corp.example"), "{body}");
    let q = p.s.sps[0].redirect_query(&p.s.sps[0].xml(&p.s.sps[0].req()), None, None);
    let (_, _, page) = browser.get(&format!("{}/adfs/ls/?{q}", p.s.idp.base)).await;
    let xml = Browser::post_form(&page).xml();
    (
        "alice@corp.example".into(),
        between(&xml, "SessionIndex=\"", "\"").to_owned(),
    )
}

/// Whether mellon still has a session for this browser (its protected page answers).
async fn mellon_signed_in(browser: &Browser, p: &MellonPeers) -> bool {
    let res = browser
        .http
        .get(p.mellon.protected_url())
        .send()
        .await
        .expect("get");
    res.status() == StatusCode::OK
}

/// mellon's `/mellon/logout` starts a logout across mellon and App One; App One answers
/// with `app_one_status`. Returns where Tessera sends the browser with mellon's answer, and
/// the ReturnTo mellon was given.
async fn mellon_initiated(
    p: &MellonPeers,
    browser: &Browser,
    app_one_status: &str,
) -> (String, String) {
    let one = &p.s.sps[0];
    let (name_id, index) = sign_in_both(browser, p).await;
    assert!(mellon_signed_in(browser, p).await);
    // mellon sends its signed Redirect LogoutRequest to Tessera, which sends App One its
    // LogoutRequest.
    let return_to = format!("{}/bye", p.mellon.base_url());
    let start = format!(
        "{}/mellon/logout?ReturnTo={}",
        p.mellon.base_url(),
        percent_encoding::utf8_percent_encode(&return_to, percent_encoding::NON_ALPHANUMERIC)
    );
    let (url, status, page) = browser.get(&start).await;
    assert_eq!(status, StatusCode::OK, "{page}\n{}", p.mellon.error_log());
    assert!(url.starts_with(&p.s.idp.base), "{url}");
    let to_one = our_logout_request(&p.s, &page, one, &name_id, &index);
    // App One answers; Tessera answers mellon over its binding, HTTP-Redirect, signed.
    let answer = logout_response(one, &p.s.idp, &to_one, app_one_status);
    let res = browser
        .http
        .post(format!("{}/adfs/ls/", p.s.idp.base))
        .form(&[("SAMLResponse", TestSp::post_b64(&answer))])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(location.starts_with(&p.mellon.slo_url()), "{location}");
    assert!(query_param(&location, "Signature").is_some());
    assert_eq!(
        query_param(&location, "RelayState").as_deref(),
        Some(return_to.as_str())
    );
    (location, return_to)
}

/// mellon takes our LogoutResponse (checking its signature), ends its session and sends the
/// browser to the logout's ReturnTo.
async fn mellon_accepts_and_returns(
    p: &MellonPeers,
    browser: &Browser,
    location: &str,
    return_to: &str,
) {
    let res = browser.http.get(location).send().await.expect("get");
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        p.mellon.error_log()
    );
    assert_eq!(
        res.headers()["location"].to_str().expect("location"),
        return_to
    );
    assert!(
        !mellon_signed_in(browser, p).await,
        "mellon's session ended"
    );
}

#[tokio::test]
async fn mellon_starts_logout_over_redirect_and_the_test_sp_is_signed_out_too() {
    let p = mellon_peers(false).await;
    let browser = Browser::new();
    let (location, return_to) = mellon_initiated(&p, &browser, SUCCESS).await;
    let xml = inflate_param(&location, "SAMLResponse");
    assert!(
        xml.contains(&format!(
            "<samlp:StatusCode Value=\"{SUCCESS}\"></samlp:StatusCode>"
        )),
        "{xml}"
    );
    // mellon accepts it (checking our signature) and sends the browser to its ReturnTo.
    mellon_accepts_and_returns(&p, &browser, &location, &return_to).await;
    assert!(
        !has_session(&browser, &p.s.idp, &p.s.sps[0]).await,
        "Tessera's too"
    );
}

#[tokio::test]
async fn mellon_is_told_partial_logout_when_the_test_sp_fails() {
    let p = mellon_peers(false).await;
    let browser = Browser::new();
    let (location, return_to) = mellon_initiated(&p, &browser, RESPONDER).await;
    let xml = inflate_param(&location, "SAMLResponse");
    assert!(
        xml.contains(&format!(
            "<samlp:StatusCode Value=\"{SUCCESS}\"><samlp:StatusCode Value=\"{PARTIAL}\">"
        )),
        "{xml}"
    );
    // mellon (lasso) takes a Success with PartialLogout below it as its own logout done.
    mellon_accepts_and_returns(&p, &browser, &location, &return_to).await;
}

#[tokio::test]
async fn the_test_sp_starts_logout_over_post_and_mellon_is_signed_out_over_redirect() {
    let p = mellon_peers(true).await;
    let one = &p.s.sps[0];
    let browser = Browser::new();
    let (name_id, index) = sign_in_both(&browser, &p).await;
    let request = logout_el(one, &name_id, Some(UNSPECIFIED), Some(&index));
    let request_id = request.id().expect("id").to_owned();
    let res = browser
        .http
        .post(format!("{}/adfs/ls/", p.s.idp.base))
        .form(&[("SAMLRequest", TestSp::post_b64(&signed(one, request)))])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to_mellon = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(to_mellon.starts_with(&p.mellon.slo_url()), "{to_mellon}");
    assert!(
        query_param(&to_mellon, "Signature").is_some(),
        "signed query"
    );
    let xml = inflate_param(&to_mellon, "SAMLRequest");
    assert!(
        xml.contains(&format!("<samlp:SessionIndex>{index}</samlp:SessionIndex>")),
        "{xml}"
    );
    assert!(
        !xml.contains("<ds:Signature"),
        "Redirect binding: no XML signature"
    );

    // mellon ends its session and answers over Redirect; Tessera checks it and answers App One.
    let (_, status, page) = browser.get(&to_mellon).await;
    assert_eq!(status, StatusCode::OK, "{page}\n{}", p.mellon.error_log());
    let xml = our_logout_response(&p.s, &page, one, &request_id);
    assert!(
        xml.contains(&format!(
            "<samlp:StatusCode Value=\"{SUCCESS}\"></samlp:StatusCode>"
        )),
        "mellon answered Success, so no PartialLogout: {xml}"
    );
    assert!(
        !mellon_signed_in(&browser, &p).await,
        "mellon's session ended"
    );
}

#[tokio::test]
async fn an_sp_initiated_logout_cleans_up_ws_fed_before_answering_the_sp() {
    let ws = Recorder::start();
    let reply = format!("{}/app/", ws.base);
    let s = setup(move |b| {
        b.config.relying_parties.push(tessera::rp::RpConfig {
            name: Some("SharePoint".into()),
            entity_id: Some("urn:sharepoint:corp".into()),
            acs: vec![reply],
            protocol: Some(tessera::rp::Protocol::Wsfed),
            ..Default::default()
        });
    })
    .await;
    let one = &s.sps[0];
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    sign_in_wsfed(&browser, &s.idp, "urn:sharepoint:corp").await;
    let request = logout_el(one, &name_id, None, Some(&index));
    let request_id = request.id().expect("id").to_owned();
    let (_, status, page) = post_saml(
        &browser,
        &s.idp,
        "SAMLRequest",
        &signed(one, request),
        Some("rs"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // First the cleanup page: the WS-Fed image, then on by itself to the end of the run.
    let src = between(&page, "<img class=\"cleanup\" src=\"", "\"");
    assert_eq!(
        support::browser::unescape(src),
        format!("{}/app/?wa=wsignoutcleanup1.0", ws.base)
    );
    // It goes on by script once its images have loaded (no timed refresh), or by its link.
    assert!(
        page.contains("<script src=\"/static/autosubmit.js\">"),
        "{page}"
    );
    assert!(!page.contains("http-equiv"), "{page}");
    assert!(
        page.contains(
            "href=\"&#x2f;adfs&#x2f;ls&#x2f;logout&#x2f;continue\" id=\"continue\" data-follow"
        ),
        "{page}"
    );
    let (_, status, page) = browser
        .get(&format!("{}/adfs/ls/logout/continue", s.idp.base))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let xml = our_logout_response(&s, &page, one, &request_id);
    assert!(xml.contains(&format!(
        "<samlp:StatusCode Value=\"{SUCCESS}\"></samlp:StatusCode>"
    )));
    assert_eq!(Browser::post_form(&page).relay_state.as_deref(), Some("rs"));
    let log = s
        .idp
        .state
        .store
        .read_log(tessera::login::slo::LOG, 0, i64::MAX, 5)
        .await
        .expect("log");
    let event = String::from_utf8_lossy(&log[0].value).into_owned();
    assert!(
        event.contains("wsfed_cleanup=[\\\"urn:sharepoint:corp\\\"]"),
        "{event}"
    );
    // The run is over: continuing again does nothing.
    let (_, status, _) = browser
        .get(&format!("{}/adfs/ls/logout/continue", s.idp.base))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hostile_logout_responses_change_nothing_or_count_as_not_signed_out() {
    let s = setup(|_| {}).await;
    let (one, two) = (&s.sps[0], &s.sps[1]);
    let browser = Browser::new();
    let (name_id, index) = sign_in(&browser, &s.idp, one, "alice").await;
    sign_in(&browser, &s.idp, two, "alice").await;
    let logout = format!("{}/adfs/ls/logout", s.idp.base);
    let (_, _, page) = browser.get(&logout).await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let (_, _, page) = browser.post(&logout, &[("csrf", &csrf)]).await;
    let to_one = our_logout_request(&s, &page, one, &name_id, &index);

    // Not answers to our request: refused, and the run still waits for App One.
    let huge = "A".repeat(200 * 1024);
    let (_, status, _) = browser
        .post(
            &format!("{}/adfs/ls/", s.idp.base),
            &[("SAMLResponse", &huge)],
        )
        .await;
    // Over the body limit (413) or over the SAML message limit (400): refused either way.
    assert!(
        [StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE].contains(&status),
        "{status}"
    );
    let mut bomb = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b' '; 2 * 1024 * 1024])
        .expect("deflate");
    let bomb = base64::engine::general_purpose::STANDARD.encode(bomb.finish().expect("finish"));
    let q = format!(
        "SAMLResponse={}",
        percent_encoding::utf8_percent_encode(&bomb, percent_encoding::NON_ALPHANUMERIC)
    );
    let (_, status, _) = browser.get(&format!("{}/adfs/ls/?{q}", s.idp.base)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let other = logout_response(one, &s.idp, " ID=\"_someone_elses\"", SUCCESS);
    let (_, status, _) = post_saml(&browser, &s.idp, "SAMLResponse", &other, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // App One's answer unsigned (it has a certificate): App One is not signed out, on to Two.
    let signed_answer = logout_response(one, &s.idp, &to_one, SUCCESS);
    let sig = format!(
        "<ds:Signature{}</ds:Signature>",
        between(&signed_answer, "<ds:Signature", "</ds:Signature>")
    );
    let unsigned = signed_answer.replace(&sig, "");
    let (_, _, page) = post_saml(&browser, &s.idp, "SAMLResponse", &unsigned, None).await;
    let to_two = our_logout_request(&s, &page, two, &name_id, &index);
    // App Two's answer with its signature pointing at an external document: not trusted.
    let answer = logout_response(two, &s.idp, &to_two, SUCCESS);
    let id = between(&answer, " ID=\"", "\"").to_owned();
    let external = answer.replace(
        &format!("URI=\"#{id}\""),
        "URI=\"http://127.0.0.1:9/doc.xml\"",
    );
    let (_, status, page) = post_saml(&browser, &s.idp, "SAMLResponse", &external, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for app in ["App One", "App Two"] {
        assert!(page.contains(&format!("<li>{app}</li>")), "{app}: {page}");
    }
}
