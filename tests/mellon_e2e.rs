//! End to end against real peers: Apache mod_auth_mellon as the SP, OpenLDAP slapd as the
//! directory, Redis as the store. A scripted browser goes SP -> Tessera -> SP.

mod support {
    pub mod browser;
    pub mod mellon;
    pub mod mfa;
    pub mod redis;
    pub mod slapd;
    pub mod tessera;
}

use reqwest::StatusCode;
use support::browser::{Browser, form_action, input_value, join};
use support::mellon::{MellonOptions, MellonSp};
use support::redis::RedisServer;
use support::slapd::Slapd;
use support::tessera::{Tessera, TesseraBuilder};
use tessera::config::{DirectoryKind, StoreKind};

/// Seed passwords are "<uid>-Pass-1" (deploy/ldap/seed.ldif).
const ALICE_PASSWORD: &str = "alice-Pass-1";

struct Peers {
    slapd: Slapd,
    mellon: MellonSp,
    idp: Tessera,
    _redis: Option<RedisServer>,
}

/// Starts slapd, Tessera (LDAP directory; Redis store when asked) and mellon registered with
/// the NetScaler preset (both signatures, short attribute names).
async fn peers(post_binding: bool, redis: bool) -> Peers {
    let slapd = Slapd::start();
    let mut b = TesseraBuilder::new();
    b.config.directory.kind = DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    // Password-only here; the MFA story against mellon is in tests/mfa_browser.rs.
    b.config.mfa.enabled = false;
    let redis = redis.then(RedisServer::start);
    if let Some(r) = &redis {
        b.config.store.backend = StoreKind::Redis;
        b.config.store.redis_url = Some(r.url());
    }
    let mellon = MellonSp::start(MellonOptions {
        post_binding,
        ..MellonOptions::new(b.idp_metadata())
    });
    b.add_rp(
        "mellon",
        &mellon.sp_metadata(),
        "name = \"Mellon test SP\"\npreset = \"netscaler\"\n",
    );
    let idp = b.start().await;
    Peers {
        slapd,
        mellon,
        idp,
        _redis: redis,
    }
}

/// From the SP's protected page to Tessera's login page (following mellon's redirect or its
/// auto-POST form). Returns (login page URL, page).
async fn reach_login(browser: &Browser, p: &Peers) -> (String, String) {
    let (url, status, page) = browser.get(&p.mellon.protected_url()).await;
    assert_eq!(status, StatusCode::OK, "{page}\n{}", p.mellon.error_log());
    if page.contains("name=\"password\"") {
        assert!(url.starts_with(&p.idp.base), "{url}");
        return (url, page);
    }
    // POST binding: mellon's page carries a signed SAMLRequest for Tessera.
    let action = join(&url, &form_action(&page).expect("mellon form"));
    assert!(
        action.starts_with(&p.idp.base),
        "mellon posts to Tessera: {action}"
    );
    let req = input_value(&page, "SAMLRequest").expect("SAMLRequest");
    let rs = input_value(&page, "RelayState").unwrap_or_default();
    let (url, status, page) = browser
        .post(&action, &[("SAMLRequest", &req), ("RelayState", &rs)])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    (url, page)
}

/// Signs in and follows the auto-POST back to mellon; returns the protected page's text.
async fn complete(
    browser: &Browser,
    p: &Peers,
    login_url: &str,
    page: &str,
    user: &str,
    password: &str,
) -> String {
    let (_, status, page) = browser.sign_in(login_url, page, user, password).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let form = Browser::post_form(&page);
    assert_eq!(form.action, p.mellon.acs_url());
    let (_, status, body) = browser.submit(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", p.mellon.error_log());
    body
}

fn assert_alice(body: &str) {
    assert!(body.contains("REMOTE_USER=alice@corp.example"), "{body}");
    assert!(body.contains("MELLON_mail=alice@corp.example"), "{body}");
    let groups = body
        .lines()
        .find(|l| l.starts_with("MELLON_groups="))
        .expect("groups attribute");
    assert!(
        groups.contains("Gateway Users") && groups.contains("Staff"),
        "{groups}"
    );
}

#[tokio::test]
async fn mellon_signed_redirect_request_ldap_login_reaches_the_protected_page() {
    let p = peers(false, false).await;
    let browser = Browser::new();
    let (url, page) = reach_login(&browser, &p).await;
    let body = complete(&browser, &p, &url, &page, "alice", ALICE_PASSWORD).await;
    assert_alice(&body);
    // A second visit rides the SSO session and the SP's own session.
    let (_, status, again) = browser.get(&p.mellon.protected_url()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("REMOTE_USER=alice@corp.example"));
}

#[tokio::test]
async fn mellon_signed_post_request_with_redis_store_reaches_the_protected_page() {
    let p = peers(true, true).await;
    let browser = Browser::new();
    let (url, page) = reach_login(&browser, &p).await;
    let body = complete(
        &browser,
        &p,
        &url,
        &page,
        "alice@corp.example",
        ALICE_PASSWORD,
    )
    .await;
    assert_alice(&body);
}

#[tokio::test]
async fn ldap_refusals_show_clear_messages_and_injection_signs_nobody_in() {
    let p = peers(false, false).await;
    let browser = Browser::new();
    let cases = [
        ("*", "anything", "Incorrect user ID or password"),
        (
            "alice)(|(objectClass=*",
            ALICE_PASSWORD,
            "Incorrect user ID or password",
        ),
        (
            "*)(userPrincipalName=*",
            ALICE_PASSWORD,
            "Incorrect user ID or password",
        ),
        ("alice", "", "Incorrect user ID or password"),
        ("disabled1", "disabled1-Pass-1", "disabled"),
        ("locked1", "locked1-Pass-1", "locked"),
    ];
    for (user, pw, message) in cases {
        // A fresh flow per case: five failures in one flow end it.
        let (url, page) = reach_login(&browser, &p).await;
        let (_, status, next) = browser.sign_in(&url, &page, user, pw).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}: {next}");
        assert!(next.contains(message), "{user}: {next}");
        assert!(!next.contains("SAMLResponse"), "{user}");
    }
    // The directory itself still works for the real user afterwards.
    let (url, page) = reach_login(&browser, &p).await;
    let body = complete(&browser, &p, &url, &page, "alice", ALICE_PASSWORD).await;
    assert_alice(&body);
    assert!(!p.slapd.ldap_url().is_empty());
}

/// The metadata round trip through the admin console: mellon's SP metadata pasted into
/// /admin/rps, previewed, approved (no restart), and alice signs in to mellon through it.
#[tokio::test]
async fn mellon_added_in_the_admin_console_signs_alice_in_without_a_restart() {
    let slapd = Slapd::start();
    let mut b = TesseraBuilder::new();
    b.config.directory.kind = DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    // alice (in Staff) administers; the console always asks her for the second factor.
    b.config.admin.group = "Staff".into();
    let mellon = MellonSp::start(MellonOptions::new(b.idp_metadata()));
    let idp = b.start().await;
    support::mfa::enrol_all(&idp, "alice", tessera::mfa::Method::Oath, "+15550100230").await;
    let p = Peers {
        slapd,
        mellon,
        idp,
        _redis: None,
    };
    let (_, status, _) = Browser::new().get(&p.mellon.protected_url()).await;
    assert_ne!(status, StatusCode::OK, "mellon is not trusted yet");

    let admin = Browser::new();
    let (url, _, page) = admin.get(&format!("{}/admin", p.idp.base)).await;
    let flow = input_value(&page, "flow").expect("flow");
    admin.sign_in(&url, &page, "alice", ALICE_PASSWORD).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_, status, page) = admin
        .post(
            &format!("{}/adfs/ls/login", p.idp.base),
            &[
                ("flow", &flow),
                ("action", "code"),
                ("code", &support::mfa::code(now)),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = input_value(&page, "csrf").expect("admin session");
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("metadata", p.mellon.sp_metadata());
    let res = admin
        .http
        .post(format!("{}/admin/rps/import", p.idp.base))
        .multipart(form)
        .send()
        .await
        .expect("import");
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let preview = join(
        &p.idp.base,
        res.headers()["location"].to_str().expect("location"),
    );
    let (_, status, page) = admin
        .post(
            &preview,
            &[
                ("csrf", csrf.as_str()),
                ("name", "Mellon from the console"),
                ("preset", "netscaler"),
                ("sign", "both"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Mellon from the console"), "{page}");

    let browser = Browser::new();
    let (url, page) = reach_login(&browser, &p).await;
    let body = complete(&browser, &p, &url, &page, "alice", ALICE_PASSWORD).await;
    assert_alice(&body);
}
