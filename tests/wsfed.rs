//! WS-Federation passive sign-in over HTTP against a real Tessera, with a relying party
//! written here: it reads the auto-POST form and the RSTR itself and has xmlsec1 check the
//! assertion's signature. Sign-in with SAML 1.1 and 2.0 tokens, claims, `wctx`, `wfresh`,
//! sign-out and cleanup, and the hostile requests that must never get a token.

mod support {
    pub mod browser;
    pub mod sp;
    pub mod tessera;
    pub mod xmlsec;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use support::browser::Browser;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::xmlsec::{Part, verify};

const PASSWORD: &str = "Corr3ct horse!";
const REALM11: &str = "urn:app:sharepoint";
const REALM2: &str = "urn:app:modern";
const REPLY: &str = "https://rp.example/signin";
const REPLY_ALT: &str = "https://rp.example/other";
const REPLY2: &str = "https://modern.example/wsfed";
const SAML1: &str = "urn:oasis:names:tc:SAML:1.0:assertion";

struct Setup {
    idp: Tessera,
    cert: PathBuf,
    saml_sp: TestSp,
}

/// An application's federation metadata, as SharePoint or a WIF app publishes it.
fn fed_metadata(realm: &str, replies: &[&str]) -> String {
    let endpoints: String = replies
        .iter()
        .map(|r| {
            format!(
                "<fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"><wsa:Address>{r}</wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint>"
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{realm}">
<RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706" xsi:type="fed:ApplicationServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706">{endpoints}</RoleDescriptor>
</EntityDescriptor>"#
    )
}

/// Tessera with a SAML 1.1 WS-Fed RP (two reply URLs), a SAML 2.0 one with its own claim
/// rule, and a SAML SP (whose entity ID is no WS-Fed realm).
async fn setup() -> Setup {
    let mut b = TesseraBuilder::new();
    // The protocol is under test here; tests/mfa_flow.rs covers the second factor.
    b.config.mfa.enabled = false;
    let mut zoe = file_user("zoe", PASSWORD);
    zoe.display_name = Some("Zoë \"Q\" O'Brien & <Sons>".into());
    b.add_user(&[file_user("alice", PASSWORD), zoe]);
    b.add_rp(
        "sharepoint",
        &fed_metadata(REALM11, &[REPLY, REPLY_ALT]),
        "name = \"SharePoint\"\n",
    );
    b.add_rp(
        "modern",
        &fed_metadata(REALM2, &[REPLY2]),
        "token = \"saml2\"\n[[attributes]]\nname = \"http://schemas.microsoft.com/ws/2008/06/identity/claims/role\"\nsource = \"groups\"\n",
    );
    let saml_sp = TestSp::new("plain");
    b.add_rp("plain", &saml_sp.metadata(false), "");
    let cert = b.cert_pem_path();
    let idp = b.start().await;
    Setup { idp, cert, saml_sp }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The passive request query for `realm` with extra `&k=v` already encoded.
fn signin(realm: &str, extra: &str) -> String {
    format!("wa=wsignin1.0&wtrealm={}{extra}", enc(realm))
}

// ---- the relying party's own reading of what comes back ----

/// HTML / XML character references as minijinja and c14n write them.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').expect("entity end") + at;
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).expect("hex")).expect("char")
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().expect("dec")).expect("char"),
            e => panic!("unknown entity {e}"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The attributes of one start tag (`<x a="1" b="2">`).
fn tag_attrs(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].rsplit(' ').next().expect("name").to_owned();
        let end = rest[eq + 2..].find('"').expect("value end") + eq + 2;
        out.push((name, unescape(&rest[eq + 2..end])));
        rest = &rest[end + 1..];
    }
    out
}

/// The auto-POST page as the RP receives it: the form's action and its fields.
struct Posted {
    action: String,
    fields: Vec<(String, String)>,
}

impl Posted {
    fn read(page: &str) -> Posted {
        let form = page.find("<form").expect("a form");
        let tag_end = page[form..].find('>').expect("tag end") + form;
        let action = tag_attrs(&page[form..tag_end])
            .into_iter()
            .find(|(k, _)| k == "action")
            .expect("action")
            .1;
        let fields = page[tag_end..]
            .split("<input ")
            .skip(1)
            .map(|i| {
                let attrs = tag_attrs(&i[..i.find('>').expect("input end")]);
                let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                (get("name").expect("name"), get("value").unwrap_or_default())
            })
            .collect();
        Posted { action, fields }
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One element of the RSTR: local name, attributes, its own text.
#[derive(Debug)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
}

/// Every element of a document in order (the RP's small reader for canonical XML).
fn nodes(xml: &str) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        if let Some(&top) = open.last() {
            out[top].text.push_str(&unescape(&rest[..lt]));
        }
        let gt = rest[lt..].find('>').expect("tag end") + lt;
        let tag = &rest[lt + 1..gt];
        if tag.starts_with('/') {
            open.pop();
        } else if !tag.starts_with('?') {
            let qname = tag.split([' ', '/']).next().expect("name");
            out.push(Node {
                name: qname.rsplit(':').next().expect("local").to_owned(),
                attrs: tag_attrs(tag),
                text: String::new(),
            });
            if !tag.ends_with('/') {
                open.push(out.len() - 1);
            }
        }
        rest = &rest[gt + 1..];
    }
    out
}

fn find<'a>(nodes: &'a [Node], name: &str) -> &'a Node {
    nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn attr<'a>(n: &'a Node, name: &str) -> &'a str {
    n.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{} has no {name}", n.name))
}

/// SAML 1.1 claims: (namespace/name, values).
fn saml11_claims(nodes: &[Node]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for n in nodes {
        if n.name == "Attribute" {
            let claim = format!(
                "{}/{}",
                attr(n, "AttributeNamespace"),
                attr(n, "AttributeName")
            );
            out.push((claim, Vec::new()));
        } else if n.name == "AttributeValue" {
            out.last_mut()
                .expect("value in attribute")
                .1
                .push(n.text.clone());
        }
    }
    out
}

/// xmlsec1 on the SAML 1.1 assertion's signature (its ID attribute is `AssertionID`).
fn verify_saml11(xml: &str, cert: &Path) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rstr.xml");
    std::fs::write(&file, xml).expect("write");
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .arg("--trusted-pem")
        .arg(cert)
        .arg("--id-attr:AssertionID")
        .arg(format!("{SAML1}:Assertion"))
        .arg("--node-xpath")
        .arg("//*[local-name()='Assertion']/*[local-name()='Signature']")
        .arg(&file)
        .output()
        .expect("xmlsec1 is installed (run scripts/install-deps.sh)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// GET the passive endpoint and sign in as `user` on the login page; the token page.
async fn sign_in(browser: &Browser, idp: &Tessera, query: &str, user: &str) -> Posted {
    let (url, status, page) = browser.get(&format!("{}/adfs/ls/?{query}", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("name=\"password\""),
        "expected the login page: {page}"
    );
    let (_, status, page) = browser.sign_in(&url, &page, user, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    Posted::read(&page)
}

/// The session records of the store, as JSON.
async fn sessions(idp: &Tessera) -> Vec<serde_json::Value> {
    let store = idp.state.store.as_ref();
    let mut out = Vec::new();
    for k in store.keys("sso:").await.expect("keys") {
        if let Some(v) = tessera::store::get_json::<serde_json::Value>(store, &k)
            .await
            .expect("get")
        {
            out.push(v);
        }
    }
    out
}

#[tokio::test]
async fn saml11_sign_in_posts_a_signed_rstr_with_the_claims_and_wctx_verbatim() {
    let s = setup().await;
    let browser = Browser::new();
    let wctx = "rm=0&id=passive&ru=/sites/a?b=1&c=\"q\" <x> 'y' Zoë 漢字 \u{1F510} %41+";
    let q = signin(
        REALM11,
        &format!("&wctx={}&wct=2026-12-05T18:00:00Z&whr=corp", enc(wctx)),
    );
    let form = sign_in(&browser, &s.idp, &q, "zoe").await;
    assert_eq!(form.action, REPLY, "no wreply: the default reply URL");
    assert_eq!(form.field("wa"), Some("wsignin1.0"));
    assert_eq!(
        form.field("wctx"),
        Some(wctx),
        "wctx comes back byte for byte"
    );
    let xml = form.field("wresult").expect("wresult").to_owned();
    verify_saml11(&xml, &s.cert).unwrap_or_else(|e| panic!("xmlsec1: {e}\n{xml}"));
    // The check has teeth: one changed character and xmlsec1 refuses.
    let tampered = xml.replacen("zoe@corp.example", "eve@corp.example", 1);
    assert!(verify_saml11(&tampered, &s.cert).is_err());

    let n = nodes(&xml);
    assert_eq!(n[0].name, "RequestSecurityTokenResponse");
    assert_eq!(find(&n, "Address").text, REALM11);
    assert_eq!(find(&n, "TokenType").text, SAML1);
    assert_eq!(
        find(&n, "RequestType").text,
        "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue"
    );
    assert!(find(&n, "KeyType").text.ends_with("/NoProofKey"));
    assert!(find(&n, "Created").text.ends_with('Z') && find(&n, "Expires").text.ends_with('Z'));
    let a = find(&n, "Assertion");
    assert_eq!(
        (attr(a, "MajorVersion"), attr(a, "MinorVersion")),
        ("1", "1")
    );
    assert_eq!(attr(a, "Issuer"), s.idp.state.config.entity_id());
    assert_eq!(find(&n, "Audience").text, REALM11);
    assert_eq!(find(&n, "NameIdentifier").text, "zoe@corp.example");
    assert_eq!(
        find(&n, "ConfirmationMethod").text,
        "urn:oasis:names:tc:SAML:1.0:cm:bearer"
    );
    assert_eq!(
        attr(find(&n, "AuthenticationStatement"), "AuthenticationMethod"),
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    );
    let claims = saml11_claims(&n);
    let claim = |c: &str| {
        claims
            .iter()
            .find(|(k, _)| k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no claim {c} in {claims:?}"))
    };
    assert_eq!(
        claim("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"),
        ["zoe@corp.example"]
    );
    assert_eq!(
        claim("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"),
        ["Zoë \"Q\" O'Brien & <Sons>"]
    );
    assert_eq!(
        claim("http://schemas.xmlsoap.org/claims/Group"),
        ["Gateway Users", "Staff"]
    );
    // The session remembers the realm, for single logout.
    let recorded = sessions(&s.idp).await;
    assert!(
        recorded.iter().any(
            |v| v["participants"].as_array().is_some_and(|ps| ps
                .iter()
                .any(|p| p["rp"] == REALM11
                    && p["protocol"] == "wsfed"
                    && p["name_id"] == "zoe@corp.example"))
        ),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn saml2_tokens_go_to_the_requested_reply_and_a_session_answers_at_once() {
    let s = setup().await;
    let browser = Browser::new();
    // A registered wreply other than the default is honoured.
    let q = signin(REALM11, &format!("&wreply={}", enc(REPLY_ALT)));
    let form = sign_in(&browser, &s.idp, &q, "alice").await;
    assert_eq!(form.action, REPLY_ALT);
    assert_eq!(form.field("wctx"), None, "no wctx asked, none sent");

    // The SSO session answers a second RP without a password, with a SAML 2.0 token, over
    // the POST form of the passive profile.
    let (_, status, page) = browser
        .post(
            &format!("{}/adfs/ls/", s.idp.base),
            &[("wa", "wsignin1.0"), ("wtrealm", REALM2), ("wctx", "a&b")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let form = Posted::read(&page);
    assert_eq!(form.action, REPLY2);
    assert_eq!(form.field("wctx"), Some("a&b"));
    let xml = form.field("wresult").expect("wresult").to_owned();
    verify(&xml, &s.cert, Part::Assertion).unwrap_or_else(|e| panic!("xmlsec1: {e}\n{xml}"));
    let n = nodes(&xml);
    assert_eq!(
        find(&n, "TokenType").text,
        "urn:oasis:names:tc:SAML:2.0:assertion"
    );
    assert_eq!(find(&n, "Audience").text, REALM2);
    assert_eq!(find(&n, "NameID").text, "alice@corp.example");
    let scd = find(&n, "SubjectConfirmationData");
    assert_eq!(attr(scd, "Recipient"), REPLY2);
    assert!(!xml.contains("InResponseTo"), "no request to answer");
    // The RP's own claim rule, not the defaults.
    assert!(xml.contains("Name=\"http://schemas.microsoft.com/ws/2008/06/identity/claims/role\""));
    assert!(!xml.contains("identity/claims/upn"));
}

#[tokio::test]
async fn wfresh_zero_asks_for_the_password_again_despite_a_session() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&browser, &s.idp, &signin(REALM11, ""), "alice").await;
    let (_, _, page) = browser
        .get(&format!("{}/adfs/ls/?{}", s.idp.base, signin(REALM11, "")))
        .await;
    assert!(page.contains("wresult"), "the session answers: {page}");
    let form = sign_in(&browser, &s.idp, &signin(REALM11, "&wfresh=0"), "alice").await;
    assert!(form.field("wresult").is_some());
    // A generous wfresh is met by the session.
    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            signin(REALM11, "&wfresh=60")
        ))
        .await;
    assert!(page.contains("wresult"), "{page}");
}

#[tokio::test]
async fn sign_out_goes_to_a_registered_reply_only_and_ends_the_session() {
    let s = setup().await;
    let browser = Browser::new();
    let base = &s.idp.base;
    sign_in(&browser, &s.idp, &signin(REALM11, ""), "alice").await;
    let res = browser
        .http
        .get(format!(
            "{base}/adfs/ls/?wa=wsignout1.0&wreply={}",
            enc(REPLY_ALT)
        ))
        .send()
        .await
        .expect("GET");
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"], REPLY_ALT);
    let (_, _, page) = browser
        .get(&format!("{base}/adfs/ls/?{}", signin(REALM11, "")))
        .await;
    assert!(page.contains("name=\"password\""), "signed out: {page}");

    // An address no RP registered is no place to send anyone.
    sign_in(&browser, &s.idp, &signin(REALM11, ""), "alice").await;
    let res = browser
        .http
        .get(format!(
            "{base}/adfs/ls/?wa=wsignout1.0&wreply={}",
            enc("https://evil.example/phish")
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.expect("body");
    assert!(page.contains("You have signed out."), "{page}");
    assert!(!page.contains("evil.example"), "{page}");
    let (_, _, page) = browser
        .get(&format!("{base}/adfs/ls/?{}", signin(REALM11, "")))
        .await;
    assert!(page.contains("name=\"password\""), "signed out: {page}");
}

#[tokio::test]
async fn wsignoutcleanup_ends_the_session() {
    let s = setup().await;
    let browser = Browser::new();
    sign_in(&browser, &s.idp, &signin(REALM11, ""), "alice").await;
    assert_eq!(sessions(&s.idp).await.len(), 1);
    let (_, status, page) = browser
        .get(&format!("{}/adfs/ls/?wa=wsignoutcleanup1.0", s.idp.base))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You have signed out."), "{page}");
    assert!(
        sessions(&s.idp).await.is_empty(),
        "the session record is gone"
    );
    let (_, _, page) = browser
        .get(&format!("{}/adfs/ls/?{}", s.idp.base, signin(REALM11, "")))
        .await;
    assert!(page.contains("name=\"password\""), "{page}");
}

/// A refused request: a 400 page saying why, no form, no token.
async fn refused(browser: &Browser, idp: &Tessera, query: &str, says: &str) {
    let (_, status, page) = browser.get(&format!("{}/adfs/ls/?{query}", idp.base)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {page}");
    assert!(page.contains(says), "{query}: {page}");
    assert!(
        !page.contains("wresult") && !page.contains("<form method=\"post\" action=\"http"),
        "{query}: {page}"
    );
}

#[tokio::test]
async fn foreign_reply_urls_unknown_realms_and_malformed_requests_get_no_token() {
    let s = setup().await;
    let browser = Browser::new();
    // With a live session, so a refusal cannot be mistaken for "please sign in".
    sign_in(&browser, &s.idp, &signin(REALM11, ""), "alice").await;
    let not_registered = "address that is not registered";
    for trick in [
        "https://evil.example/signin",
        "https://rp.example@evil.example/signin",
        "https://rp.example\\@evil.example/signin",
        "https://rp.example\\signin",
        "http://rp.example/signin",
        "https://rp.example./signin",
        "https://rp.exаmple/signin", // Cyrillic а
        "https://xn--rp-example/signin",
        "https://rp.example/%73ignin",
        "https%3A%2F%2Frp.example%2Fsignin",
        "https://RP.EXAMPLE/signin",
        "https://rp.example:443/signin",
        "https://rp.example/signin/../signin",
        "https://rp.example/signin?next=https://evil.example/",
        "https://rp.example/signin#x",
        "//rp.example/signin",
        "javascript:alert(1)//https://rp.example/signin",
        " https://rp.example/signin",
        REPLY2, // registered, but for another realm
    ] {
        refused(
            &browser,
            &s.idp,
            &signin(REALM11, &format!("&wreply={}", enc(trick))),
            not_registered,
        )
        .await;
    }
    let unknown = "not registered with this sign-in service";
    refused(&browser, &s.idp, &signin("urn:app:unknown", ""), unknown).await;
    // A SAML trust is no WS-Fed realm, though its entity ID is known.
    refused(&browser, &s.idp, &signin(&s.saml_sp.entity_id, ""), unknown).await;

    let too_long = "sign-in request that is too long";
    let big = "x".repeat(2049);
    refused(
        &browser,
        &s.idp,
        &signin(REALM11, &format!("&wctx={big}")),
        too_long,
    )
    .await;
    let invalid = "sign-in request from the application is not valid";
    for q in [
        format!("{}&wtrealm={}", signin(REALM11, ""), enc(REALM2)),
        format!(
            "{}&wreply={}&wreply={}",
            signin(REALM11, ""),
            enc(REPLY),
            enc(REPLY_ALT)
        ),
        format!("{}&wa=wsignout1.0", signin(REALM11, "")),
        format!("{}&wctx=a&wctx=b", signin(REALM11, "")),
        format!("wa=wsignin2.0&wtrealm={}", enc(REALM11)),
        "wa=wattr1.0".to_owned(),
        "wa=".to_owned(),
        "wa=wsignin1.0".to_owned(),
        format!("{}&wfresh=soon", signin(REALM11, "")),
        format!("{}&wctx=%FF", signin(REALM11, "")),
    ] {
        refused(&browser, &s.idp, &q, invalid).await;
    }
    // Each refusal is an audit event in the sign-in log, with the reason for the admin.
    let log = s
        .idp
        .state
        .store
        .read_log(tessera::audit::SIGNIN_LOG, 0, i64::MAX, 10_000)
        .await
        .expect("sign-in log");
    let refusals: Vec<serde_json::Value> = log
        .iter()
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.value).expect("json"))
        .filter(|e| e["from"] == "wsfed_request")
        .collect();
    let reason = |needle: &str, rp: &str| {
        refusals.iter().any(|e| {
            e["to"] == "denied"
                && e["outcome"] == "failure"
                && e["rp"] == rp
                && e["reason"].as_str().is_some_and(|r| r.contains(needle))
        })
    };
    assert!(
        reason("evil.example/signin\" is not registered", REALM11),
        "{refusals:?}"
    );
    assert!(
        reason("unknown WS-Federation realm", "urn:app:unknown"),
        "{refusals:?}"
    );
    assert!(reason("wctx is 2049 bytes", "-"), "{refusals:?}");
    assert!(
        reason("wtrealm appears more than once", "-"),
        "{refusals:?}"
    );

    // The same over POST.
    let (_, status, page) = browser
        .post(
            &format!("{}/adfs/ls/", s.idp.base),
            &[
                ("wa", "wsignin1.0"),
                ("wtrealm", REALM11),
                ("wreply", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains(not_registered) && !page.contains("wresult"),
        "{page}"
    );
}

#[tokio::test]
async fn our_metadata_has_a_signed_sts_role_with_the_passive_endpoint() {
    let s = setup().await;
    let (_, status, xml) = Browser::new()
        .get(&format!(
            "{}/FederationMetadata/2007-06/FederationMetadata.xml",
            s.idp.base
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    verify(&xml, &s.cert, Part::Metadata).unwrap_or_else(|e| panic!("xmlsec1: {e}\n{xml}"));
    let n = nodes(&xml);
    let names: Vec<&str> = n.iter().map(|n| n.name.as_str()).collect();
    let role = names
        .iter()
        .position(|n| *n == "RoleDescriptor")
        .expect("an STS role");
    let idp = names
        .iter()
        .position(|n| *n == "IDPSSODescriptor")
        .expect("the SAML role");
    assert!(
        role < idp,
        "RoleDescriptor comes before IDPSSODescriptor: {names:?}"
    );
    let r = &n[role];
    assert_eq!(attr(r, "xsi:type"), "fed:SecurityTokenServiceType");
    assert_eq!(
        attr(r, "xmlns:fed"),
        "http://docs.oasis-open.org/wsfed/federation/200706",
        "the type's prefix is bound where a reader resolves it"
    );
    assert_eq!(
        attr(r, "protocolSupportEnumeration"),
        "http://docs.oasis-open.org/wsfed/federation/200706"
    );
    let passive = names
        .iter()
        .position(|n| *n == "PassiveRequestorEndpoint")
        .expect("endpoint");
    assert!(passive > role && passive < idp);
    assert_eq!(n[passive + 2].name, "Address");
    assert_eq!(n[passive + 2].text, format!("{}/adfs/ls/", s.idp.base));
    // The token-signing certificate is the role's key.
    let cert_b64: String = std::fs::read_to_string(&s.cert)
        .expect("cert")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(n[role + 4].name, "X509Certificate");
    assert_eq!(n[role + 4].text, cert_b64);
    // Tampering with the role breaks the signature: it is covered.
    let tampered = xml.replacen("/adfs/ls/</wsa:Address>", "/evil/</wsa:Address>", 1);
    assert!(verify(&tampered, &s.cert, Part::Metadata).is_err());
}

/// An attacker sending garbage cannot fill the store through the sign-in log: one client
/// address gets at most 60 stored refusals a minute (audit::REFUSALS_PER_MINUTE), every request is still
/// refused with the page.
#[tokio::test]
async fn a_flood_of_refused_requests_stops_filling_the_sign_in_log() {
    let s = setup().await;
    let browser = Browser::new();
    let sent = 130;
    for i in 0..sent {
        let q = format!("wa=wsignin1.0&wtrealm=urn:app:unknown-{i}");
        refused(&browser, &s.idp, &q, "not registered").await;
    }
    let log = s
        .idp
        .state
        .store
        .read_log(tessera::audit::SIGNIN_LOG, 0, i64::MAX, 10_000)
        .await
        .expect("sign-in log");
    let stored = log
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.value).contains("wsfed_request"))
        .count();
    // The flood may straddle one minute boundary: two budgets at most.
    assert!(
        (60..=120).contains(&stored),
        "{stored} of {sent} refusals stored"
    );
}
