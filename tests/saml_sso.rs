//! SAML SSO over HTTP against a real Tessera: happy paths, signing variants checked by
//! xmlsec1, SSO sessions, and hostile requests that must be refused.

mod support {
    pub mod browser;
    pub mod sp;
    pub mod tessera;
    pub mod xmlsec;
}

use std::io::Write;

use reqwest::StatusCode;
use support::browser::{Browser, PostForm};
use support::sp::{RSA_SHA1, RSA_SHA256, TestSp};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::xmlsec::{Part, verify};

const PASSWORD: &str = "Corr3ct horse!";
const TRICKY_NAME: &str = "Zoë \"Q\" O'Brien & <Sons>\r\nLtd";

struct Setup {
    idp: Tessera,
    sps: Vec<TestSp>,
    cert: std::path::PathBuf,
}

/// Tessera with the users file and SPs `a` (assertion signed), `r` (response), `b` (both,
/// signed requests required) and `n` (NetScaler preset, strict AuthnContext off).
async fn setup() -> Setup {
    let mut b = TesseraBuilder::new();
    // These tests are about the SAML protocol: password only (tests/mfa_flow.rs covers MFA).
    b.config.mfa.enabled = false;
    let mut tricky = file_user("zoe", PASSWORD);
    tricky.display_name = Some(TRICKY_NAME.into());
    let mut disabled = file_user("dora", PASSWORD);
    disabled.disabled = true;
    b.add_user(&[file_user("alice", PASSWORD), tricky, disabled]);
    let sps: Vec<TestSp> = ["a", "r", "b", "n"]
        .iter()
        .map(|n| TestSp::new(n))
        .collect();
    b.add_rp("a", &sps[0].metadata(false), "sign = \"assertion\"\n");
    b.add_rp("r", &sps[1].metadata(false), "sign = \"response\"\n");
    b.add_rp("b", &sps[2].metadata(true), "sign = \"both\"\n");
    b.add_rp("n", &sps[3].metadata(false), "preset = \"netscaler\"\n");
    let cert = b.cert_pem_path();
    let idp = b.start().await;
    Setup { idp, sps, cert }
}

/// Runs the login for a Redirect-binding query and returns the auto-POST form.
async fn login(browser: &Browser, idp: &Tessera, query: &str, user: &str) -> PostForm {
    let (url, status, page) = browser.get(&format!("{}/adfs/ls/?{query}", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("name=\"password\""),
        "expected the login page, got {page}"
    );
    let (_, status, page) = browser.sign_in(&url, &page, user, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    Browser::post_form(&page)
}

fn attr<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("Name=\"{name}\"");
    let Some(at) = xml.find(&start) else {
        return vec![];
    };
    let end = xml[at..].find("</saml:Attribute>").expect("attribute end") + at;
    xml[at..end]
        .split("<saml:AttributeValue>")
        .skip(1)
        .map(|v| v.split("</saml:AttributeValue>").next().expect("value"))
        .collect()
}

#[tokio::test]
async fn sp_initiated_login_posts_a_correct_response_with_relaystate_verbatim() {
    let s = setup().await;
    let sp = &s.sps[0];
    let req = sp.req();
    let relay = "https://gw.corp.example/deep/link?a=1&b=ü \"x\" <y>+%20";
    let q = sp.redirect_query(&sp.xml(&req), Some(relay), None);
    let browser = Browser::new();
    let form = login(&browser, &s.idp, &q, "CORP\\alice").await;
    assert_eq!(form.action, sp.acs);
    assert_eq!(
        form.relay_state.as_deref(),
        Some(relay),
        "RelayState must come back byte for byte"
    );
    let xml = form.xml();
    for needle in [
        format!("Destination=\"{}\"", sp.acs),
        format!("InResponseTo=\"{}\"", req.id),
        format!("Recipient=\"{}\"", sp.acs),
        format!("<saml:Audience>{}</saml:Audience>", sp.entity_id),
        "<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified\">alice@corp.example</saml:NameID>".into(),
        "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into(),
        "SessionIndex=\"_".into(),
        "NotBefore=\"".into(),
    ] {
        assert!(xml.contains(&needle), "missing {needle} in {xml}");
    }
    assert_eq!(
        attr(&xml, "http://schemas.xmlsoap.org/claims/Group"),
        vec!["Gateway Users", "Staff"],
        "groups are one multi-valued attribute"
    );
    verify(&xml, &s.cert, Part::Assertion).expect("xmlsec1 verifies the assertion");
}

#[tokio::test]
async fn every_signing_variant_verifies_with_xmlsec1_even_with_markup_in_values() {
    let s = setup().await;
    let browser = Browser::new();
    let cases = [(0, true, false), (1, false, true), (2, true, true)];
    for (i, assertion_signed, response_signed) in cases {
        let sp = &s.sps[i];
        let q = if i == 2 {
            sp.redirect_query(&sp.xml(&sp.req()), None, Some((&sp.key, RSA_SHA256)))
        } else {
            sp.redirect_query(&sp.xml(&sp.req()), None, None)
        };
        let (url, _, page) = browser.get(&format!("{}/adfs/ls/?{q}", s.idp.base)).await;
        let page = if page.contains("name=\"password\"") {
            browser.sign_in(&url, &page, "zoe", PASSWORD).await.2
        } else {
            page // SSO session from the previous case
        };
        let xml = Browser::post_form(&page).xml();
        assert!(
            xml.contains("Zo\u{eb} &quot;Q&quot; O'Brien &amp; &lt;Sons&gt;&#xD;\nLtd")
                || xml.contains("Zoë \"Q\" O'Brien &amp; &lt;Sons&gt;&#xD;\nLtd"),
            "{xml}"
        );
        assert_eq!(
            xml.matches("<ds:Signature xmlns").count(),
            usize::from(assertion_signed) + usize::from(response_signed)
        );
        if assertion_signed {
            verify(&xml, &s.cert, Part::Assertion)
                .unwrap_or_else(|e| panic!("case {i} assertion: {e}\n{xml}"));
        }
        if response_signed {
            verify(&xml, &s.cert, Part::Response)
                .unwrap_or_else(|e| panic!("case {i} response: {e}\n{xml}"));
        }
        // The check has teeth: one changed character and xmlsec1 refuses.
        let tampered = xml.replacen("zoe@corp.example", "eve@corp.example", 1);
        let part = if assertion_signed {
            Part::Assertion
        } else {
            Part::Response
        };
        assert!(
            verify(&tampered, &s.cert, part).is_err(),
            "tampered case {i} verified"
        );
    }
}

#[tokio::test]
async fn sso_session_serves_a_second_sp_without_a_password_and_force_authn_asks_again() {
    let s = setup().await;
    let browser = Browser::new();
    let (a, r) = (&s.sps[0], &s.sps[1]);
    login(
        &browser,
        &s.idp,
        &a.redirect_query(&a.xml(&a.req()), None, None),
        "alice",
    )
    .await;
    let (_, status, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            r.redirect_query(&r.xml(&r.req()), None, None)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let form = Browser::post_form(&page);
    assert_eq!(form.action, r.acs);
    assert!(form.xml().contains("alice@corp.example"));

    let mut forced = r.req();
    forced.force_authn = true;
    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            r.redirect_query(&r.xml(&forced), None, None)
        ))
        .await;
    assert!(
        page.contains("name=\"password\""),
        "ForceAuthn must show the login page"
    );
}

#[tokio::test]
async fn is_passive_without_session_answers_no_passive() {
    let s = setup().await;
    let sp = &s.sps[0];
    let mut req = sp.req();
    req.is_passive = true;
    let (_, status, page) = Browser::new()
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            sp.redirect_query(&sp.xml(&req), Some("rs"), None)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let form = Browser::post_form(&page);
    let xml = form.xml();
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:status:NoPassive"),
        "{xml}"
    );
    assert!(
        !xml.contains("<saml:Assertion"),
        "no assertion without authentication"
    );
    assert_eq!(form.relay_state.as_deref(), Some("rs"));
    verify(&xml, &s.cert, Part::Response).expect("status response is signed");
}

#[tokio::test]
async fn requested_authn_context_strict_refuses_lenient_echoes() {
    let s = setup().await;
    let browser = Browser::new();
    let password_class = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password";
    let (a, n) = (&s.sps[0], &s.sps[3]);
    let mut req = a.req();
    req.context = Some(("exact", vec![password_class]));
    let (url, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            a.redirect_query(&a.xml(&req), None, None)
        ))
        .await;
    let (_, _, page) = browser.sign_in(&url, &page, "alice", PASSWORD).await;
    let form = Browser::post_form(&page);
    assert!(
        form.xml().contains("status:NoAuthnContext"),
        "strict RP: exact mismatch refused"
    );
    let mut req = n.req();
    req.context = Some(("exact", vec![password_class]));
    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            n.redirect_query(&n.xml(&req), None, None)
        ))
        .await;
    let xml = Browser::post_form(&page).xml();
    assert!(
        xml.contains(&format!("<saml:AuthnContextClassRef>{password_class}<")),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<ds:Signature xmlns").count(),
        2,
        "NetScaler preset signs both"
    );
}

#[tokio::test]
async fn idp_initiated_sign_on_posts_without_in_response_to() {
    let s = setup().await;
    let sp = &s.sps[0];
    let browser = Browser::new();
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}&RelayState=home",
        s.idp.base, sp.entity_id
    );
    let (url, _, page) = browser.get(&url).await;
    let (_, _, page) = browser.sign_in(&url, &page, "alice", PASSWORD).await;
    let form = Browser::post_form(&page);
    assert_eq!(form.relay_state.as_deref(), Some("home"));
    assert!(!form.xml().contains("InResponseTo"));
}

#[tokio::test]
async fn signed_redirect_requests_sha256_and_sha1_accepted_wrong_key_and_tampering_refused() {
    let s = setup().await;
    let sp = &s.sps[2]; // requires signed requests
    let base = &s.idp.base;
    for alg in [RSA_SHA256, RSA_SHA1] {
        let q = sp.redirect_query(&sp.xml(&sp.req()), Some("rs"), Some((&sp.key, alg)));
        let (_, status, page) = Browser::new().get(&format!("{base}/adfs/ls/?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {page}");
        assert!(page.contains("name=\"password\""));
    }
    let (evil_key, _) = tessera::keys::generate("evil", 1).expect("key");
    let bad = [
        sp.redirect_query(
            &sp.xml(&sp.req()),
            Some("rs"),
            Some((&evil_key, RSA_SHA256)),
        ),
        sp.redirect_query(&sp.xml(&sp.req()), Some("rs"), Some((&sp.key, RSA_SHA256)))
            .replace("RelayState=rs", "RelayState=rz"),
        sp.redirect_query(&sp.xml(&sp.req()), Some("rs"), None),
        sp.redirect_query(&sp.xml(&sp.req()), None, Some((&sp.key, RSA_SHA256)))
            .replace("&SigAlg=", "&SigAlg=x"),
    ];
    for q in bad {
        let (_, status, page) = Browser::new().get(&format!("{base}/adfs/ls/?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(page.contains("could not be verified"), "{page}");
    }
}

async fn post_request(base: &str, xml: &str) -> (StatusCode, String) {
    let (_, status, page) = Browser::new()
        .post(
            &format!("{base}/adfs/ls/"),
            &[
                ("SAMLRequest", &TestSp::post_b64(xml)),
                ("RelayState", "rs"),
            ],
        )
        .await;
    (status, page)
}

#[tokio::test]
async fn signed_post_requests_accepted_and_wrapping_or_tampering_refused() {
    let s = setup().await;
    let sp = &s.sps[2];
    let base = &s.idp.base;
    let signed = sp.signed_xml(&sp.req(), &sp.key, &sp.cert);
    let (status, page) = post_request(base, &signed).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("name=\"password\""));

    let evil_acs = "https://attacker.example/acs";
    let fresh = sp.signed_xml(&sp.req(), &sp.key, &sp.cert);
    // 1. Change the ACS of the signed root.
    let changed = fresh.replace(&sp.acs, evil_acs);
    // 2. Wrap: a new root with the attacker's ACS carrying the signed original inside.
    let inner_id = fresh
        .split("ID=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("id")
        .to_owned();
    let wrapped = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" AssertionConsumerServiceURL="{evil_acs}" ID="_evil" IssueInstant="{}" Version="2.0"><saml:Issuer>{}</saml:Issuer><samlp:Extensions>{fresh}</samlp:Extensions></samlp:AuthnRequest>"#,
        tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
        sp.entity_id
    );
    // 3. Same ID twice: the attacker's root reuses the signed element's ID.
    let dup_id = wrapped.replace("ID=\"_evil\"", &format!("ID=\"{inner_id}\""));
    // 4. Signed with a key the SP never registered.
    let (evil_key, evil_cert) = tessera::keys::generate("evil", 1).expect("key");
    let wrong_key = sp.signed_xml(&sp.req(), &evil_key, &evil_cert);
    // 5. Unsigned, though the SP registered AuthnRequestsSigned.
    let unsigned = sp.xml(&sp.req());
    for (name, xml) in [
        ("changed", changed),
        ("wrapped", wrapped),
        ("dup-id", dup_id),
        ("wrong-key", wrong_key),
        ("unsigned", unsigned),
    ] {
        let (status, page) = post_request(base, &xml).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {page}");
        assert!(
            !page.contains(evil_acs),
            "{name}: attacker ACS must never be used"
        );
        assert!(!page.contains("SAMLResponse"), "{name}: no response issued");
    }
}

#[tokio::test]
async fn external_references_and_xslt_are_refused_before_any_fetch() {
    let s = setup().await;
    let sp = &s.sps[2];
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("trap");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_url = format!("http://{}/x", trap.local_addr().expect("addr"));
    let signed = sp.signed_xml(&sp.req(), &sp.key, &sp.cert);
    let id = signed
        .split("ID=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("id")
        .to_owned();
    let external = signed.replace(&format!("URI=\"#{id}\""), &format!("URI=\"{trap_url}\""));
    let file = signed.replace(&format!("URI=\"#{id}\""), "URI=\"file:///dev/zero\"");
    let xslt = signed.replace(
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:Transform>",
        &format!("<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"><xsl:stylesheet xmlns:xsl=\"http://www.w3.org/1999/XSL/Transform\" version=\"1.0\"><xsl:template match=\"/\"><xsl:value-of select=\"document('{trap_url}')\"/></xsl:template></xsl:stylesheet></ds:Transform>"),
    );
    assert_ne!(
        xslt, signed,
        "the XSLT variant must differ from the original"
    );
    let doctype = format!(
        "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c SYSTEM \"{trap_url}\">]>{}",
        signed.replacen("<saml:Issuer>", "<saml:Issuer>&c;&b;", 1)
    );
    for (name, xml) in [
        ("external", external),
        ("file", file),
        ("xslt", xslt),
        ("doctype", doctype),
    ] {
        let (status, page) = post_request(&s.idp.base, &xml).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {page}");
    }
    assert!(
        trap.accept().is_err(),
        "the verifier must never fetch anything"
    );
}

#[tokio::test]
async fn malformed_unknown_and_oversize_requests_get_a_clear_page() {
    let s = setup().await;
    let sp = &s.sps[0];
    let base = &s.idp.base;
    let get = |q: String| async move { Browser::new().get(&format!("{base}/adfs/ls/?{q}")).await };

    let mut bomb = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b'<'; 8 * 1024 * 1024]).expect("bomb");
    let bomb = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        bomb.finish().expect("finish"),
    );
    let unknown = TestSp::new("unknown");
    let mut wrong_acs = sp.req();
    wrong_acs.acs = Some("https://attacker.example/acs".into());
    let mut stale = sp.req();
    stale.issue_instant = "2001-01-01T00:00:00Z".into();
    let mut wrong_dest = sp.req();
    wrong_dest.destination = Some("https://other-idp.example/sso".into());
    let replayed = sp.req();
    let first = sp.redirect_query(&sp.xml(&replayed), None, None);
    let (_, status, _) = get(first.clone()).await;
    assert_eq!(status, StatusCode::OK);

    let cases = [
        (
            "bad base64",
            "SAMLRequest=%%%%not-base64".to_owned(),
            "not valid",
        ),
        (
            "deflate bomb",
            format!(
                "SAMLRequest={}",
                percent_encoding::utf8_percent_encode(&bomb, percent_encoding::NON_ALPHANUMERIC)
            ),
            "not valid",
        ),
        (
            "unknown sp",
            unknown.redirect_query(&unknown.xml(&unknown.req()), None, None),
            "not registered with this sign-in service",
        ),
        (
            "unregistered acs",
            sp.redirect_query(&sp.xml(&wrong_acs), None, None),
            "not registered",
        ),
        (
            "stale",
            sp.redirect_query(&sp.xml(&stale), None, None),
            "expired or was already used",
        ),
        ("replayed", first, "expired or was already used"),
        (
            "wrong destination",
            sp.redirect_query(&sp.xml(&wrong_dest), None, None),
            "addressed to a different sign-in service",
        ),
        (
            "oversize relaystate",
            sp.redirect_query(&sp.xml(&sp.req()), Some(&"r".repeat(2000)), None),
            "too long",
        ),
        (
            "not xml",
            format!(
                "SAMLRequest={}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"\x01\x02")
            ),
            "not valid",
        ),
    ];
    for (name, q, message) in cases {
        let (_, status, page) = get(q).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(page.contains(message), "{name}: {page}");
        assert!(!page.contains("attacker.example"), "{name}");
    }
    let (_, status, page) = get("foo=bar".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("no sign-in request"), "{page}");
}

#[tokio::test]
async fn wrong_password_and_disabled_accounts_read_the_same_and_flows_bind_to_the_browser() {
    let s = setup().await;
    let sp = &s.sps[0];
    let browser = Browser::new();
    let q = sp.redirect_query(&sp.xml(&sp.req()), None, None);
    let (url, _, page) = browser.get(&format!("{}/adfs/ls/?{q}", s.idp.base)).await;
    let (_, status, again) = browser.sign_in(&url, &page, "alice", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(again.contains("Incorrect user ID or password"), "{again}");
    assert!(again.contains("value=\"alice\""), "the user name is kept");
    // A disabled account reads like a wrong password: the page does not tell an attacker
    // which accounts exist or their state (the sign-in log tells the help desk).
    let (_, status, again) = browser.sign_in(&url, &again, "dora", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(again.contains("Incorrect user ID or password"), "{again}");
    assert!(!again.contains("disabled"), "{again}");
    let (_, status, _) = browser.sign_in(&url, &again, "alice", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another browser (no flow cookie) cannot continue this flow.
    let (_, status, page) = Browser::new()
        .sign_in(&url, &again, "alice", PASSWORD)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(!page.contains("SAMLResponse"));
    // The owner still can.
    let (_, status, page) = browser.sign_in(&url, &again, "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("SAMLResponse"));
}

#[tokio::test]
async fn metadata_is_published_at_both_paths_and_signed() {
    let s = setup().await;
    let b = Browser::new();
    let (_, status, adfs) = b
        .get(&format!(
            "{}/FederationMetadata/2007-06/FederationMetadata.xml",
            s.idp.base
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, saml) = b.get(&format!("{}/saml/metadata", s.idp.base)).await;
    assert_eq!(adfs, saml);
    assert!(adfs.contains(&format!("Location=\"{}/adfs/ls/\"", s.idp.base)));
    assert!(adfs.contains(&s.idp.state.keys.file().cert_b64));
    verify(&adfs, &s.cert, Part::Metadata).expect("metadata signature verifies");
}

#[tokio::test]
async fn sp_initiated_logout_ends_the_session_and_answers_with_a_signed_logout_response() {
    let s = setup().await;
    let (a, b) = (&s.sps[0], &s.sps[2]);
    let browser = Browser::new();
    let form = login(
        &browser,
        &s.idp,
        &a.redirect_query(&a.xml(&a.req()), None, None),
        "alice",
    )
    .await;
    let xml = form.xml();
    let session_index = xml
        .split("SessionIndex=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("SessionIndex");

    // B requires signed requests: an unsigned LogoutRequest is refused and changes nothing.
    let unsigned = b.redirect_query(
        &b.logout_xml("alice@corp.example", session_index),
        None,
        None,
    );
    let (_, status, _) = browser
        .get(&format!("{}/adfs/ls/?{unsigned}", s.idp.base))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            a.redirect_query(&a.xml(&a.req()), None, None)
        ))
        .await;
    assert!(
        page.contains("SAMLResponse"),
        "session still alive after a refused logout"
    );

    // A has a certificate, so its LogoutRequest must be signed (SAML profiles §4.4.4.1).
    let q = a.redirect_query(
        &a.logout_xml("alice@corp.example", session_index),
        Some("bye"),
        Some((&a.key, RSA_SHA256)),
    );
    let (_, status, page) = browser.get(&format!("{}/adfs/ls/?{q}", s.idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let form = Browser::post_form(&page);
    assert_eq!(form.action, a.slo());
    assert_eq!(form.relay_state.as_deref(), Some("bye"));
    let xml = form.xml();
    assert!(
        xml.contains("<samlp:LogoutResponse") && xml.contains("status:Success"),
        "{xml}"
    );
    verify(&xml, &s.cert, Part::LogoutResponse).expect("LogoutResponse signature verifies");

    let (_, _, page) = browser
        .get(&format!(
            "{}/adfs/ls/?{}",
            s.idp.base,
            a.redirect_query(&a.xml(&a.req()), None, None)
        ))
        .await;
    assert!(
        page.contains("name=\"password\""),
        "after logout the password is asked again"
    );
}
