//! The admin console over HTTP: who gets in (the admin group, always with a second factor),
//! CSRF and session limits, the adapter settings page (bad input refused with a clear error
//! and nothing stored, changes logged with before / after) and a change made on one node
//! in force on another that shares its Redis.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod redis;
    pub mod sp;
    pub mod tessera;
}

use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, form_fields, input_value, set_field, unescape};
use support::mfa::{code, enrol_all};
use support::redis::RedisServer;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock, SystemClock};
use tessera::config::StoreKind;
use tessera::mfa::Method;
use tessera::mfa::live::OVERRIDES_KEY;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";

struct Env {
    idp: Tessera,
    clock: Arc<dyn Clock>,
    fixed: Option<Arc<FixedClock>>,
    sp: TestSp,
}

fn admin_user(name: &str) -> tessera::directory::file::FileUser {
    let mut u = file_user(name, PW);
    u.groups.push("Tessera Admins".into());
    u
}

async fn builder(tweak: impl FnOnce(&mut tessera::config::Config)) -> (TesseraBuilder, TestSp) {
    let mut b = TesseraBuilder::new();
    tweak(&mut b.config);
    b.add_user(&[
        admin_user("alice"),
        file_user("bob", PW),
        admin_user("carol"),
    ]);
    let sp = TestSp::new("admin");
    b.add_rp("admin", &sp.metadata(false), "");
    (b, sp)
}

async fn env(tweak: impl FnOnce(&mut tessera::config::Config)) -> Env {
    let (mut b, sp) = builder(tweak).await;
    let fixed = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = fixed.clone();
    let idp = b.start().await;
    for u in ["alice", "bob", "carol"] {
        enrol_all(&idp, u, Method::Oath, PHONE).await;
    }
    Env {
        idp,
        clock: fixed.clone(),
        fixed: Some(fixed),
        sp,
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    /// /admin → password → (the page after it). Returns the browser, the flow and the page.
    async fn password(&self, user: &str) -> (Browser, String, StatusCode, String) {
        let browser = Browser::new();
        let (url, status, page) = browser.get(&self.url("/admin")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Tessera admin console"), "{page}");
        let flow = input_value(&page, "flow").expect("a sign-in flow");
        let (_, status, page) = browser.sign_in(&url, &page, user, PW).await;
        (browser, flow, status, page)
    }

    /// The whole admin sign-in with the authenticator code; returns the browser and page.
    async fn sign_in(&self, user: &str) -> (Browser, StatusCode, String) {
        let (browser, flow, status, page) = self.password(user).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("name=\"code\""), "asks for the code: {page}");
        let (status, page) = self.enter_code(&browser, &flow).await;
        (browser, status, page)
    }

    /// Types the authenticator app's current code into the flow's code page.
    async fn enter_code(&self, browser: &Browser, flow: &str) -> (StatusCode, String) {
        let (_, status, page) = browser
            .post(
                &self.url("/adfs/ls/login"),
                &[
                    ("flow", flow),
                    ("action", "code"),
                    ("code", &code(self.clock.unix())),
                ],
            )
            .await;
        (status, page)
    }

    async fn stored_overrides(&self) -> Option<Vec<u8>> {
        self.idp
            .state
            .store
            .get(OVERRIDES_KEY)
            .await
            .expect("store")
    }
}

impl Env {
    /// IdP-initiated sign-in of `user` to `entity` with password and app code, in a fresh
    /// browser; returns the status and the page after the code.
    async fn sign_in_to(&self, entity: &str, user: &str) -> (StatusCode, String) {
        let sso = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={entity}",
            self.idp.base
        );
        let browser = Browser::new();
        let (url, _, page) = browser.get(&sso).await;
        let flow = input_value(&page, "flow").expect("flow");
        browser.sign_in(&url, &page, user, PW).await;
        self.enter_code(&browser, &flow).await
    }
}

async fn post_fields(
    browser: &Browser,
    url: &str,
    fields: &[(String, String)],
) -> (String, StatusCode, String) {
    let f: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post(url, &f).await
}

/// The settings page and the fields a browser would submit from it unchanged.
async fn settings_form(env: &Env, browser: &Browser) -> Vec<(String, String)> {
    let (_, status, page) = browser.get(&env.url("/admin/settings")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    form_fields(&page, "/admin/settings")
}

#[tokio::test]
async fn only_admins_with_a_second_factor_get_in() {
    // MFA switched off, the client's network trusted, a bypass waiting: the console still
    // asks for the second factor.
    let e = env(|c| {
        c.mfa.enabled = false;
        c.mfa.trusted_networks = vec!["127.0.0.1".into()];
    })
    .await;
    e.idp
        .state
        .store
        .put(&tessera::login::bypass_key("alice"), b"ticket 1", None)
        .await
        .expect("bypass");

    let (browser, status, page) = e.sign_in("bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(
        page.contains("not allowed to use the admin console"),
        "{page}"
    );
    let (url, _, page) = browser.get(&e.url("/admin/settings")).await;
    assert!(
        url.contains("/adfs/ls/login"),
        "a non-admin is sent to sign in: {url}"
    );
    assert!(!page.contains("Adapter settings"), "{page}");

    let (browser, status, page) = e.sign_in("alice").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Overview"), "{page}");
    assert!(
        page.contains("console.refused"),
        "bob's refusal is logged: {page}"
    );
    let (_, status, page) = browser.get(&e.url("/admin/settings")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Push and call timeout"), "{page}");
}

#[tokio::test]
async fn an_admin_without_any_second_factor_cannot_get_in() {
    let e = env(|c| c.mfa.allow_enrollment = false).await;
    // carol's registration is wiped: nothing to verify with, enrollment off.
    tessera::mfa::registration::update(e.idp.state.store.as_ref(), "carol", |r| {
        r.tokens.clear();
        r.phones.clear();
        r.push_devices.clear();
        r.default_method = None;
    })
    .await
    .expect("wipe");
    let (browser, _, status, page) = e.password("carol").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("No verification method"), "{page}");
    let (url, _, _) = browser.get(&e.url("/admin/settings")).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
}

#[tokio::test]
async fn changes_need_the_csrf_token_and_a_live_session() {
    let e = env(|_| {}).await;
    let (browser, _, _) = e.sign_in("alice").await;
    let mut fields = settings_form(&e, &browser).await;
    set_field(&mut fields, "timeout_secs", &["30"]);
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .collect();
    let (_, status, page) = post_fields(&browser, &e.url("/admin/settings"), &without).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let mut wrong = fields.clone();
    set_field(&mut wrong, "csrf", &["0".repeat(64).as_str()]);
    let (_, status, _) = post_fields(&browser, &e.url("/admin/settings"), &wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The right token from another browser (no session cookie): sent to sign in.
    let (url, _, _) = post_fields(&Browser::new(), &e.url("/admin/settings"), &fields).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
    assert_eq!(e.stored_overrides().await, None, "nothing was stored");

    // Signing out ends the session: the old cookie no longer works.
    let csrf = input_value(&settings_form_page(&e, &browser).await, "csrf").expect("csrf");
    let (_, status, page) = browser
        .post(&e.url("/admin/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (url, _, _) = post_fields(&browser, &e.url("/admin/settings"), &fields).await;
    assert!(url.contains("/adfs/ls/login"), "sent to sign in: {url}");
    assert_eq!(e.stored_overrides().await, None);
}

async fn settings_form_page(e: &Env, browser: &Browser) -> String {
    browser.get(&e.url("/admin/settings")).await.2
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_error_and_nothing_stored() {
    let e = env(|_| {}).await;
    let (browser, _, _) = e.sign_in("alice").await;
    let fields = settings_form(&e, &browser).await;
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "trusted_networks",
            &["10.0.0.0/8\n10.1.0.0/33"],
            "Trusted networks",
        ),
        ("timeout_secs", &["5"], "5 is outside 10..=300"),
        ("timeout_secs", &["55; DROP TABLE"], "not a whole number"),
        ("methods", &["oath"], "Company default method"),
        ("gateway.push", &["ntfy"], "ntfy server URL"),
        (
            "gateway.push",
            &["carrier-pigeon"],
            "not one of the choices",
        ),
        (
            "default_country_code",
            &["<script>alert(1)</script>"],
            "1 to 3 digits",
        ),
        ("methods", &["push", "telepathy"], "not one of the choices"),
    ];
    for (key, values, expect) in cases {
        let mut bad = fields.clone();
        set_field(&mut bad, key, values);
        let (_, status, page) = post_fields(&browser, &e.url("/admin/settings"), &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {page}");
        assert!(page.contains("Nothing was saved"), "{key}: {page}");
        assert!(
            page.contains(expect),
            "{key}: expected {expect:?} in {page}"
        );
        assert!(
            !page.contains("<script>alert"),
            "typed text is escaped: {page}"
        );
        assert_eq!(e.stored_overrides().await, None, "{key}: nothing stored");
    }
    // The same form unchanged saves nothing and says so.
    let (_, status, page) = post_fields(&browser, &e.url("/admin/settings"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Nothing changed"), "{page}");
    assert_eq!(e.stored_overrides().await, None);
}

#[tokio::test]
async fn a_change_is_in_force_at_once_and_logged_without_secrets() {
    let e = env(|_| {}).await;
    let (browser, _, _) = e.sign_in("alice").await;
    let mut fields = settings_form(&e, &browser).await;
    set_field(
        &mut fields,
        "trusted_networks",
        &["127.0.0.1\n10.20.0.0/16"],
    );
    set_field(&mut fields, "timeout_secs", &["30"]);
    set_field(
        &mut fields,
        "gateway.webhook_secret",
        &["s3cr3t-webhook-key"],
    );
    let (url, status, page) = post_fields(&browser, &e.url("/admin/settings"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("saved=3"), "{url}");
    assert!(page.contains("Saved 3 changes"), "{page}");
    assert!(page.contains("Changed here"), "{page}");
    assert!(
        !page.contains("s3cr3t-webhook-key"),
        "a secret is never shown back"
    );

    let overview = unescape(&browser.get(&e.url("/admin")).await.2);
    for expect in [
        "settings.update",
        "timeout_secs",
        "55",
        "30",
        "127.0.0.1, 10.20.0.0/16",
        "(set)",
    ] {
        assert!(overview.contains(expect), "{expect} in {overview}");
    }
    assert!(!overview.contains("s3cr3t-webhook-key"), "{overview}");
    let raw = e.stored_overrides().await.expect("stored");
    assert!(String::from_utf8_lossy(&raw).contains("\"timeout_secs\":30"));

    // In force for the next sign-in: bob, on a trusted address, skips the second factor.
    let sso = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let bob = Browser::new();
    let (url, _, page) = bob.get(&sso).await;
    let (_, status, page) = bob.sign_in(&url, &page, "bob", PW).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("SAMLResponse"),
        "trusted network: no second factor: {page}"
    );

    // Setting a value back to the config file's removes the override.
    let mut fields = settings_form(&e, &browser).await;
    set_field(&mut fields, "timeout_secs", &["55"]);
    let (_, status, page) = post_fields(&browser, &e.url("/admin/settings"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let raw = String::from_utf8(e.stored_overrides().await.expect("stored")).expect("utf8");
    assert!(!raw.contains("timeout_secs"), "{raw}");
    assert!(raw.contains("trusted_networks"), "{raw}");
}

#[tokio::test]
async fn an_idle_session_ends() {
    let e = env(|c| c.admin.idle_timeout_secs = 300).await;
    let (browser, _, _) = e.sign_in("alice").await;
    let fixed = e.fixed.clone().expect("fixed clock");
    fixed.advance(time::Duration::seconds(200));
    let (url, _, _) = browser.get(&e.url("/admin/settings")).await;
    assert!(
        url.ends_with("/admin/settings"),
        "still signed in after 200 s: {url}"
    );
    fixed.advance(time::Duration::seconds(200));
    let (url, _, _) = browser.get(&e.url("/admin/settings")).await;
    assert!(
        url.ends_with("/admin/settings"),
        "200 s after the last use: {url}"
    );
    fixed.advance(time::Duration::seconds(301));
    let (url, _, page) = browser.get(&e.url("/admin/settings")).await;
    assert!(
        url.contains("/adfs/ls/login"),
        "idle for 301 s: signed out: {url} {page}"
    );
}

#[tokio::test]
async fn a_change_on_node_a_is_in_force_on_node_b() {
    let redis = RedisServer::start();
    let shared = |c: &mut tessera::config::Config| {
        c.store.backend = StoreKind::Redis;
        c.store.redis_url = Some(redis.url());
    };
    let (mut ba, _) = builder(shared).await;
    ba.clock = Arc::new(SystemClock);
    let a = ba.start().await;
    // A farm shares mfa.key (registrations are sealed with it) and the store.
    let (mut bb, _) = builder(shared).await;
    bb.clock = Arc::new(SystemClock);
    std::fs::create_dir_all(&bb.config.server.data_dir).expect("data dir");
    std::fs::copy(
        a.dir.path().join("data/mfa.key"),
        bb.config.server.data_dir.join("mfa.key"),
    )
    .expect("share mfa.key");
    let b = bb.start().await;
    enrol_all(&a, "alice", Method::Oath, PHONE).await;
    enrol_all(&a, "carol", Method::Oath, PHONE).await;
    let on = |idp: Tessera| Env {
        idp,
        clock: Arc::new(SystemClock),
        fixed: None,
        sp: TestSp::new("unused"),
    };
    let (a, b) = (on(a), on(b));

    let (browser, status, page) = a.sign_in("alice").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut fields = settings_form(&a, &browser).await;
    set_field(&mut fields, "timeout_secs", &["42"]);
    set_field(&mut fields, "number_matching", &["on"]);
    let (_, status, page) = post_fields(&browser, &a.url("/admin/settings"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // On node B (never restarted) an admin sees the new values, and B's sign-ins use them.
    let (browser_b, status, page) = b.sign_in("carol").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let fields_b = settings_form(&b, &browser_b).await;
    let value = |k: &str| {
        fields_b
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(value("timeout_secs").as_deref(), Some("42"));
    assert_eq!(value("number_matching").as_deref(), Some("on"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let p = b.idp.state.policy().await;
        if p.mfa.timeout_secs == 42 && p.mfa.number_matching {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node B's sign-ins never used the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_sign_in_log_groups_filters_and_exports_attempts() {
    let e = env(|_| {}).await;
    let sso = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    // bob signs in to the SP with his app's code.
    let (status, page) = e.sign_in_to(&e.sp.entity_id, "bob").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("SAMLResponse"), "{page}");
    // Somebody types a spreadsheet formula as the user name.
    let evil = "=HYPERLINK(\"http://evil.example\",\"x\")";
    let mallory = Browser::new();
    let (url, _, page) = mallory.get(&sso).await;
    let (_, status, _) = mallory.sign_in(&url, &page, evil, "guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (admin, _, _) = e.sign_in("alice").await;
    let (_, status, page) = admin.get(&e.url("/admin/signins")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let page = unescape(&page);
    assert!(page.contains("signed in"), "{page}");
    assert!(page.contains(&e.sp.entity_id), "{page}");
    assert!(
        page.contains("admin console"),
        "alice's own sign-in is listed: {page}"
    );
    assert!(
        page.contains("invalid user name or password") || page.contains("InvalidCredentials"),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");

    let (_, _, only_bob) = admin.get(&e.url("/admin/signins?user=BOB")).await;
    assert!(only_bob.contains("<strong>bob</strong>"), "{only_bob}");
    assert!(!only_bob.contains("<strong>alice</strong>"), "{only_bob}");
    assert!(!only_bob.contains("HYPERLINK"), "{only_bob}");
    let (_, _, incomplete) = admin
        .get(&e.url("/admin/signins?outcome=incomplete&method=password"))
        .await;
    assert!(incomplete.contains("HYPERLINK"), "{incomplete}");
    assert!(!incomplete.contains("<strong>bob</strong>"), "{incomplete}");
    let (_, _, past) = admin
        .get(&e.url("/admin/signins?from=2001-01-01&to=2001-01-02"))
        .await;
    assert!(past.contains("No sign-ins match"), "{past}");

    let (_, status, bad) = admin.get(&e.url("/admin/signins?from=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        unescape(&bad).contains("from: `yesterday` is not a date"),
        "{bad}"
    );
    let (_, status, _) = admin.get(&e.url("/admin/signins?outcome=maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let res = admin
        .http
        .get(e.url("/admin/signins.csv?method=password"))
        .send()
        .await
        .expect("csv");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.expect("body");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("started,user,relying_party"), "{csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",bob,") && l.contains("signed in")),
        "{csv}"
    );
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\""),
        "the formula is defused and quoted: {csv}"
    );

    // Not for anyone else.
    let (url, _, _) = Browser::new().get(&e.url("/admin/signins.csv")).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
}

#[tokio::test]
async fn the_help_desk_finds_a_user_and_changes_their_second_factor() {
    let e = env(|_| {}).await;
    let store = e.idp.state.store.clone();
    let pin = tessera::mfa::pin::hash("4912").expect("hash");
    tessera::mfa::registration::update(store.as_ref(), "bob", |r| {
        r.blocked_until = Some(e.clock.unix() + 86_400);
        r.block_reason = Some("fraud reported from the phone".into());
        r.mfa_denials = 3;
        r.codes_locked_until = Some(e.clock.unix() + 900);
        r.code_lockouts = 1;
        r.pin_hash = Some(pin.clone());
        r.pin_set_at = Some(e.clock.unix());
    })
    .await
    .expect("block bob");
    let (admin, _, _) = e.sign_in("alice").await;

    let (_, status, page) = admin.get(&e.url("/admin/users?q=bo")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("href=\"/admin/users/bob\""), "{page}");
    let (_, _, page) = admin.get(&e.url("/admin/users?q=zz-nobody")).await;
    assert!(page.contains("No user matches"), "{page}");
    let (_, status, _) = admin.get(&e.url("/admin/users/nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let user_url = e.url("/admin/users/bob");
    let (_, status, page) = admin.get(&user_url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for needle in [
        "blocked",
        "fraud reported from the phone",
        "authenticator app",
        "push device",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }
    assert!(
        page.contains(PHONE),
        "the help desk sees the enrolled number: {page}"
    );
    assert!(
        page.contains("id=\"codes-status\"><strong class=\"bad\">locked until"),
        "the help desk sees the code lock: {page}"
    );
    let csrf = input_value(&page, "csrf").expect("csrf");
    let act = |fields: Vec<(&'static str, String)>| {
        let mut f = vec![("csrf".to_owned(), csrf.clone())];
        f.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
        f
    };

    // Without the CSRF token: refused, nothing changes.
    let (_, status, _) = admin.post(&user_url, &[("action", "unblock")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reg = tessera::mfa::registration::load(store.as_ref(), "bob")
        .await
        .expect("reg");
    assert_eq!(reg.mfa_denials, 3);

    let (url, status, page) =
        post_fields(&admin, &user_url, &act(vec![("action", "unblock".into())])).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=user.unblock"), "{url}");
    assert!(page.contains("usable"), "{page}");
    assert!(page.contains("id=\"codes-status\">accepted"), "{page}");
    let reg = tessera::mfa::registration::load(store.as_ref(), "bob")
        .await
        .expect("reg");
    assert_eq!((reg.blocked_until, reg.mfa_denials), (None, 0));
    assert!(!reg.codes_locked(e.clock.unix()), "the code lock ended");
    assert!(reg.pin_hash.is_some(), "unblocking keeps the PIN");

    // Reset PIN: bob chooses a new one before his next call; twice is refused.
    assert!(page.contains("id=\"pin-status\">set on"), "{page}");
    let reset = act(vec![("action", "reset_pin".into())]);
    let (url, status, page) = post_fields(&admin, &user_url, &reset).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=user.reset_pin"), "{url}");
    assert!(page.contains("id=\"pin-status\">none"), "{page}");
    let (_, status, page) = post_fields(&admin, &user_url, &reset).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("has no PIN"), "{page}");
    let reg = tessera::mfa::registration::load(store.as_ref(), "bob")
        .await
        .expect("reg");
    assert_eq!((reg.pin_hash, reg.pin_set_at), (None, None));

    let (_, status, page) = post_fields(
        &admin,
        &user_url,
        &act(vec![
            ("action", "set_default".into()),
            ("method", "carrier-pigeon".into()),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("is not a method"), "{page}");
    post_fields(
        &admin,
        &user_url,
        &act(vec![
            ("action", "set_default".into()),
            ("method", "push".into()),
        ]),
    )
    .await;
    let reg = tessera::mfa::registration::load(store.as_ref(), "bob")
        .await
        .expect("reg");
    assert_eq!(reg.default_method, Some(Method::Push));

    let token = reg.tokens[0].id.clone();
    let remove = act(vec![
        ("action", "remove_token".into()),
        ("id", token.clone()),
    ]);
    let (_, status, _) = post_fields(&admin, &user_url, &remove).await;
    assert_eq!(status, StatusCode::OK);
    let (_, status, page) = post_fields(&admin, &user_url, &remove).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "twice: {page}");
    assert!(page.contains("No such token"), "{page}");
    let (_, status, _) = post_fields(
        &admin,
        &user_url,
        &act(vec![
            ("action", "remove_phone".into()),
            ("number", PHONE.into()),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reg = tessera::mfa::registration::load(store.as_ref(), "bob")
        .await
        .expect("reg");
    assert!(reg.tokens.is_empty() && reg.phones.is_empty(), "{reg:?}");

    // A bypass needs a reason; with one, bob's next sign-in skips the second factor once.
    let (_, status, page) = post_fields(
        &admin,
        &user_url,
        &act(vec![("action", "bypass".into()), ("reason", " ".into())]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Give a reason"), "{page}");
    let (_, status, page) = post_fields(
        &admin,
        &user_url,
        &act(vec![
            ("action", "bypass".into()),
            ("reason", "INC-4711 phone lost".into()),
            ("secs", "600".into()),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("waiting to be used"), "{page}");
    let sso = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let bob = Browser::new();
    let (url, _, page) = bob.get(&sso).await;
    let (_, _, page) = bob.sign_in(&url, &page, "bob", PW).await;
    assert!(page.contains("SAMLResponse"), "bypass used: {page}");

    let overview = unescape(&admin.get(&e.url("/admin")).await.2);
    for needle in [
        "user.unblock",
        "user.reset_pin",
        "user.set_default",
        "user.remove_token",
        "user.remove_phone",
        "user.bypass",
        "INC-4711",
    ] {
        assert!(overview.contains(needle), "{needle} in {overview}");
    }
}

#[tokio::test]
async fn relying_parties_page_gives_netscaler_commands_and_our_certificate() {
    let (mut b, _) = builder(|_| {}).await;
    let fixed = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = fixed.clone();
    let gw = TestSp::new("gw");
    b.add_rp(
        "gateway",
        &gw.metadata(false),
        "name = \"NetScaler Gateway\"\npreset = \"netscaler\"\n",
    );
    let mut evil = TestSp::new("evil");
    evil.entity_id = "https://evil.sp.test/;reboot".into();
    b.add_rp("evil", &evil.metadata(false), "preset = \"netscaler\"\n");
    let idp = b.start().await;
    enrol_all(&idp, "alice", Method::Oath, PHONE).await;
    let e = Env {
        idp,
        clock: fixed.clone(),
        fixed: Some(fixed),
        sp: gw,
    };
    let (admin, _, _) = e.sign_in("alice").await;
    let (_, status, page) = admin.get(&e.url("/admin/rps")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let page = unescape(&page);
    assert!(page.contains("NetScaler Gateway"), "{page}");
    assert!(
        page.contains("add authentication samlAction tessera_netscaler_gateway"),
        "{page}"
    );
    assert!(
        page.contains("-samlRejectUnsignedAssertion STRICT"),
        "{page}"
    );
    assert!(
        page.contains("-samlIssuerName \"https://gw.sp.test\""),
        "{page}"
    );
    assert!(
        page.contains(&format!("-samlRedirectUrl \"{}/adfs/ls/\"", e.idp.base)),
        "{page}"
    );
    assert!(
        page.contains("not safe on the NetScaler command line"),
        "hostile metadata gets no command: {page}"
    );
    assert!(!page.contains("-samlIssuerName \"https://evil"), "{page}");
    assert!(
        page.contains(&e.idp.state.keys.file().thumbprint_sha1),
        "{page}"
    );

    let res = admin
        .http
        .get(e.url("/admin/certs/signing.cer"))
        .send()
        .await
        .expect("cert");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.text().await.expect("pem"),
        e.idp.state.keys.file().cert_pem()
    );
    let (url, _, _) = Browser::new().get(&e.url("/admin/certs/signing.cer")).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
}

/// Posts the metadata import form (multipart, as a browser sends it).
async fn import(
    e: &Env,
    browser: &Browser,
    csrf: Option<&str>,
    field: &'static str,
    value: &str,
) -> (StatusCode, String, Option<String>) {
    let mut form = reqwest::multipart::Form::new();
    if let Some(c) = csrf {
        form = form.text("csrf", c.to_owned());
    }
    form = match field {
        "file" => form.part(
            "file",
            reqwest::multipart::Part::bytes(value.as_bytes().to_vec()).file_name("sp.xml"),
        ),
        _ => form.text(field, value.to_owned()),
    };
    let res = browser
        .http
        .post(e.url("/admin/rps/import"))
        .multipart(form)
        .send()
        .await
        .expect("import");
    let status = res.status();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().expect("location").to_owned());
    (status, res.text().await.expect("body"), location)
}

#[tokio::test]
async fn metadata_import_takes_files_past_the_general_body_cap_up_to_1_mib() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let padded = |bytes: usize| {
        let mut md = TestSp::new("big").metadata(false);
        md.push_str(&format!("<!--{}-->", "x".repeat(bytes)));
        md
    };
    let general = tessera::config::Config::default().server.max_body_bytes as usize;
    // Real metadata with many certificates and endpoints outgrows the sign-in forms' cap.
    let (status, page, location) =
        import(&e, &admin, Some(&csrf), "file", &padded(4 * general)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(location.is_some_and(|l| l.starts_with("/admin/rps/import/")));
    let (status, page, _) = import(&e, &admin, Some(&csrf), "file", &padded(1100 * 1024)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.contains("larger than 1 MiB"), "{page}");
}

#[tokio::test]
async fn sp_metadata_is_imported_previewed_approved_and_signs_users_in() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let mut gw = TestSp::new("gw2");
    gw.acs = "https://gw2.sp.test/cgi/samlauth".into();
    let sso = |sp: &TestSp| {
        format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            e.idp.base, sp.entity_id
        )
    };
    let (_, status, _) = Browser::new().get(&sso(&gw)).await;
    assert_ne!(status, StatusCode::OK, "not trusted yet");

    // Hostile and wrong input: refused with a message, nothing pending.
    let xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    for (field, value, expect) in [
        ("metadata", xxe, "not well-formed or safe XML"),
        ("metadata", "just text", "not well-formed or safe XML"),
        ("metadata", "  ", "Paste the metadata"),
        ("url", "file:///etc/passwd", "Only http and https"),
        ("url", &format!("{}/saml/metadata", e.idp.base), "metadata"),
    ] {
        let (status, page, _) = import(&e, &admin, Some(&csrf), field, value).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value}: {page}");
        assert!(
            unescape(&page).contains(expect),
            "{value}: expected {expect:?} in {page}"
        );
    }
    let (status, _, _) = import(&e, &admin, None, "metadata", &gw.metadata(false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");

    // Upload → preview (nothing trusted yet) → approve.
    let (status, _, location) = import(&e, &admin, Some(&csrf), "file", &gw.metadata(false)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let preview = e.url(&location.expect("to the preview"));
    let (_, status, page) = admin.get(&preview).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let page = unescape(&page);
    assert!(
        page.contains("https://gw2.sp.test/cgi/samlauth") && page.contains("Approve and trust"),
        "{page}"
    );
    let (_, status, _) = Browser::new().get(&sso(&gw)).await;
    assert_ne!(status, StatusCode::OK, "a preview trusts nothing");
    let approve = |name: &str, sign: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("name".to_owned(), name.to_owned()),
            ("preset".to_owned(), "netscaler".to_owned()),
            ("sign".to_owned(), sign.to_owned()),
            ("mfa_required".to_owned(), "on".to_owned()),
            ("enabled".to_owned(), "on".to_owned()),
        ]
    };
    let (url, status, page) = post_fields(&admin, &preview, &approve("Gateway Two", "both")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=rp.add"), "{url}");
    let page = unescape(&page);
    assert!(page.contains("Gateway Two"), "{page}");
    assert!(
        page.contains("add authentication samlAction tessera_gateway_two"),
        "{page}"
    );
    let (_, status, _) = admin.get(&preview).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an approved import is gone");

    // bob signs in through the new trust: password, code, signed Response to its ACS.
    let (status, page) = e.sign_in_to(&gw.entity_id, "bob").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let form = Browser::post_form(&page);
    assert_eq!(form.action, "https://gw2.sp.test/cgi/samlauth");
    let xml = form.xml();
    assert!(
        xml.contains("Destination=\"https://gw2.sp.test/cgi/samlauth\""),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<ds:SignatureValue>").count(),
        2,
        "Response and Assertion signed"
    );

    // New metadata for the same SP: the preview shows what changes; approving updates.
    let mut moved = TestSp::new("gw2");
    moved.acs = "https://gw2-new.sp.test/cgi/samlauth".into();
    let (_, _, location) =
        import(&e, &admin, Some(&csrf), "metadata", &moved.metadata(false)).await;
    let preview = e.url(&location.expect("preview"));
    let page = unescape(&admin.get(&preview).await.2);
    assert!(page.contains("Update a relying party"), "{page}");
    assert!(
        page.contains("− ACS 1: https://gw2.sp.test/cgi/samlauth"),
        "{page}"
    );
    assert!(
        page.contains("+ ACS 1: https://gw2-new.sp.test/cgi/samlauth"),
        "{page}"
    );
    let (url, _, _) = post_fields(&admin, &preview, &approve("Gateway Two", "both")).await;
    assert!(url.contains("done=rp.update"), "{url}");

    // The file trust cannot be replaced from the console.
    let (_, _, location) = import(&e, &admin, Some(&csrf), "metadata", &e.sp.metadata(false)).await;
    let preview = e.url(&location.expect("preview"));
    assert!(unescape(&admin.get(&preview).await.2).contains("already trusted from"));
    let (_, status, _) = post_fields(&admin, &preview, &approve("x", "both")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Disable, then remove: sign-in through it stops.
    let rps = admin.get(&e.url("/admin/rps")).await.2;
    let form_end = rps
        .find("\" class=\"rp-options\"")
        .expect("an editable trust");
    let marker = "action=\"/admin/rps/";
    let slug = &rps[rps[..form_end].rfind(marker).expect("its action") + marker.len()..form_end];
    let trust = e.url(&format!("/admin/rps/{slug}"));

    // Claims and NameID from the console: a bad line is refused, a good set is used.
    let options = |claims: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("action".to_owned(), "options".to_owned()),
            ("name".to_owned(), "Gateway Two".to_owned()),
            ("sign".to_owned(), "both".to_owned()),
            ("preset".to_owned(), "netscaler".to_owned()),
            (
                "name_id_source".to_owned(),
                "upn_rewrite:corp.example=fas.example".to_owned(),
            ),
            (
                "name_id_format".to_owned(),
                tessera::rp::NAMEID_UNSPECIFIED.to_owned(),
            ),
            ("authn_context".to_owned(), "lenient".to_owned()),
            ("mfa_required".to_owned(), "on".to_owned()),
            ("enabled".to_owned(), "on".to_owned()),
            ("claims".to_owned(), claims.to_owned()),
            ("allowed_formats_shown".to_owned(), "1".to_owned()),
            (
                "allowed_format".to_owned(),
                tessera::rp::NAMEID_TRANSIENT.to_owned(),
            ),
        ]
    };
    let (_, status, page) = post_fields(&admin, &trust, &options("upn = upn\nevil line")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(unescape(&page).contains("claim line 2"), "{page}");
    let (url, _, _) = post_fields(
        &admin,
        &trust,
        &options("upn = upn\ncostCenter = constant:CC-42"),
    )
    .await;
    assert!(url.contains("done=rp.options"), "{url}");
    // The NameID formats a request may ask for: the trust's own, unspecified, and the one ticked.
    let formats = "Formats a request may ask for: unspecified, transient</td>";
    let rps = unescape(&admin.get(&e.url("/admin/rps")).await.2);
    assert!(rps.contains(formats), "{rps}");
    assert!(
        rps.contains(&format!(
            "value=\"{}\" checked>",
            tessera::rp::NAMEID_TRANSIENT
        )),
        "{rps}"
    );
    e.fixed
        .as_ref()
        .expect("fixed clock")
        .advance(time::Duration::seconds(31));
    let (_, page) = e.sign_in_to(&moved.entity_id, "bob").await;
    let xml = Browser::post_form(&page).xml();
    assert!(
        xml.contains(">bob@fas.example</saml:NameID>"),
        "rewritten NameID: {xml}"
    );
    assert!(
        xml.contains("Name=\"costCenter\"") && xml.contains(">CC-42<"),
        "{xml}"
    );
    assert!(
        !xml.contains("Name=\"groups\""),
        "only the configured claims: {xml}"
    );
    let mut disable = vec![
        ("csrf".to_owned(), csrf.clone()),
        ("action".to_owned(), "options".to_owned()),
        ("name".to_owned(), "Gateway Two".to_owned()),
        ("sign".to_owned(), "both".to_owned()),
        ("preset".to_owned(), "netscaler".to_owned()),
        ("mfa_required".to_owned(), "on".to_owned()),
    ];
    let (url, _, page) = post_fields(&admin, &trust, &disable).await;
    assert!(url.contains("done=rp.options"), "{url}");
    assert!(
        unescape(&page).contains(formats),
        "a form without the formats keeps them: {page}"
    );
    let (_, status, _) = Browser::new().get(&sso(&moved)).await;
    assert_ne!(status, StatusCode::OK, "a disabled trust signs nobody in");
    disable.retain(|(k, _)| k == "csrf");
    disable.push(("action".to_owned(), "delete".to_owned()));
    let (url, _, page) = post_fields(&admin, &trust, &disable).await;
    assert!(url.contains("done=rp.delete"), "{url}");
    assert!(!page.contains("Gateway Two"), "{page}");
    let log = unescape(&admin.get(&e.url("/admin")).await.2);
    for needle in ["rp.add", "rp.update", "rp.options", "rp.delete"] {
        assert!(log.contains(needle), "{needle} in {log}");
    }
}

#[tokio::test]
async fn wsfed_metadata_is_imported_through_the_same_preview_and_signs_users_in_with_mfa() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let realm = "urn:app:console-wsfed";
    let reply = "https://wsfed.sp.test/signin";
    let xml = tessera::wsfed::metadata::application(realm, &[reply.to_owned()]);
    let (status, _, location) = import(&e, &admin, Some(&csrf), "metadata", &xml).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let preview = e.url(&location.expect("to the preview"));
    let page = unescape(&admin.get(&preview).await.2);
    assert!(
        page.contains("WS-Federation (passive requestor)")
            && page.contains(reply)
            && page.contains("name=\"token\""),
        "{page}"
    );
    let approve = vec![
        ("csrf".to_owned(), csrf.clone()),
        ("name".to_owned(), "Console WS-Fed".to_owned()),
        ("token".to_owned(), "saml2".to_owned()),
        ("mfa_required".to_owned(), "on".to_owned()),
        ("enabled".to_owned(), "on".to_owned()),
    ];
    let (url, status, page) = post_fields(&admin, &preview, &approve).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=rp.add"), "{url}");
    assert!(
        unescape(&page).contains("Console WS-Fed</strong> <code>urn:app:console-wsfed</code> <span class=\"muted\">WS-Federation, saml2"),
        "{page}"
    );

    // bob signs in through it: password, then the second factor, then the RSTR.
    let browser = Browser::new();
    let (url, _, page) = browser
        .get(&e.url(&format!(
            "/adfs/ls/?wa=wsignin1.0&wtrealm={realm}&wctx=x%26y"
        )))
        .await;
    let flow = input_value(&page, "flow").expect("a sign-in flow");
    let (_, _, page) = browser.sign_in(&url, &page, "bob", PW).await;
    assert!(
        page.contains("name=\"code\""),
        "the second factor is asked: {page}"
    );
    let (status, page) = e.enter_code(&browser, &flow).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(input_value(&page, "wctx").as_deref(), Some("x&y"));
    let rstr = input_value(&page, "wresult").expect("an RSTR");
    assert!(
        rstr.contains("<t:TokenType>urn:oasis:names:tc:SAML:2.0:assertion</t:TokenType>")
            && rstr.contains("bob@corp.example"),
        "{rstr}"
    );
}

#[tokio::test]
async fn a_test_message_goes_through_the_gateway_in_force() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let url = e.url("/admin/settings/test");
    let (_, status, page) = admin
        .post(
            &url,
            &[
                ("csrf", &csrf),
                ("channel", "sms"),
                ("to", "+1 555 0100 999"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Test text sent to +15550100999"), "{page}");
    let texts = support::mfa::inbox(&e.idp).texts;
    assert!(
        texts
            .iter()
            .any(|t| t.to == "+15550100999" && t.body.contains("a test message sent by alice")),
        "{texts:?}"
    );
    let (_, status, page) = admin
        .post(
            &url,
            &[("csrf", &csrf), ("channel", "push"), ("to", "ops-test")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        support::mfa::inbox(&e.idp)
            .pushes
            .iter()
            .any(|p| p.topic == "ops-test")
    );

    // A test call: the simulated carrier fetches its script from Tessera and reads it.
    let (_, status, page) = admin
        .post(
            &url,
            &[
                ("csrf", &csrf),
                ("channel", "call"),
                ("to", "+1 555 0100 998"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Test call placed to +15550100998"), "{page}");
    let said = support::mfa::wait_for("the test call's script", || {
        support::mfa::inbox(&e.idp)
            .calls
            .iter()
            .find(|c| c.to == "+15550100998" && !c.prompt.is_empty())
            .map(|c| (c.prompt.join(" "), c.url.clone()))
    })
    .await;
    assert!(said.0.contains("This is a test call from"), "{said:?}");
    // Its script URL carries our token: a made-up one gets nothing, even from the carrier.
    let forged = said.1.replace("/mfa/voice/test/", "/mfa/voice/test/x");
    let params = [("CallSid".to_owned(), "CA1".to_owned())];
    let sig = tessera::mfa::gateway::twilio_signature(
        tessera::mfa::gateway::SIMULATOR_AUTH_TOKEN,
        &forged,
        &params,
    );
    let res = admin
        .http
        .post(&forged)
        .header("x-twilio-signature", sig)
        .form(&params);
    let status = res.send().await.expect("post").status();
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (channel, to, expect) in [
        ("sms", "call me maybe", "is not a phone number"),
        ("call", "", "is not a phone number"),
        ("push", "../../etc", "needs an ntfy topic"),
        ("fax", "1", "Choose push, text or call"),
    ] {
        let (_, status, page) = admin
            .post(&url, &[("csrf", &csrf), ("channel", channel), ("to", to)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{channel}: {page}");
        assert!(unescape(&page).contains(expect), "{channel}: {page}");
    }
    let (_, status, _) = admin
        .post(&url, &[("channel", "sms"), ("to", "+15550100999")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let log = unescape(&admin.get(&e.url("/admin")).await.2);
    assert!(
        log.contains("gateway.test") && log.contains("Test text sent"),
        "{log}"
    );
}

#[tokio::test]
async fn token_signing_rollover_is_published_first_then_applied() {
    let (mut b, sp) = builder(|_| {}).await;
    let fixed = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = fixed.clone();
    b.add_rp(
        "gateway",
        &TestSp::new("gw").metadata(false),
        "name = \"NetScaler Gateway\"\npreset = \"netscaler\"\n",
    );
    let idp = b.start().await;
    for u in ["alice", "bob"] {
        enrol_all(&idp, u, Method::Oath, PHONE).await;
    }
    let e = Env {
        idp,
        clock: fixed.clone(),
        fixed: Some(fixed.clone()),
        sp,
    };
    let old = e.idp.state.keys.file().clone();
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let certs = e.url("/admin/certs");
    let page = admin.get(&certs).await.2;
    assert!(
        page.contains(&old.thumbprint_sha1) && page.contains("None yet"),
        "{page}"
    );

    let (_, status, _) = admin.post(&certs, &[("action", "generate_next")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let (url, status, page) = admin
        .post(&certs, &[("csrf", &csrf), ("action", "generate_next")])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=cert.generate_next"), "{url}");
    let page = unescape(&page);
    assert!(
        page.contains("set authentication samlAction tessera_netscaler_gateway -samlIdPCertName tessera-token-signing-next"),
        "the pinning NetScaler is told what to do: {page}"
    );
    let next_pem = admin.get(&e.url("/admin/certs/next.cer")).await.2;
    let next = openssl::x509::X509::from_pem(next_pem.as_bytes()).expect("next certificate");
    let next_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(next.to_der().expect("der"))
    };
    let metadata = Browser::new().get(&e.url("/saml/metadata")).await.2;
    assert!(
        metadata.contains(&old.cert_b64) && metadata.contains(&next_b64),
        "both published"
    );
    let (_, status, page) = admin
        .post(&certs, &[("csrf", &csrf), ("action", "generate_next")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("exists already"), "{page}");

    // Until the rollover, assertions are still signed with the old key.
    let verify = |page: &str, cert: &openssl::x509::X509| {
        let xml = Browser::post_form(page).xml();
        let root = tessera::xml::parse(&xml, &tessera::xml::Limits::default()).expect("xml");
        let a = root
            .child("urn:oasis:names:tc:SAML:2.0:assertion", "Assertion")
            .expect("assertion");
        tessera::xmldsig::verify::verify_root(a, std::slice::from_ref(cert)).is_ok()
    };
    let (_, page) = e.sign_in_to(&e.sp.entity_id, "bob").await;
    assert!(verify(&page, &old.cert) && !verify(&page, &next));

    let (url, _, _) = admin
        .post(&certs, &[("csrf", &csrf), ("action", "rollover")])
        .await;
    assert!(url.contains("done=cert.rollover"), "{url}");
    fixed.advance(time::Duration::seconds(31));
    let (_, page) = e.sign_in_to(&e.sp.entity_id, "bob").await;
    assert!(
        verify(&page, &next) && !verify(&page, &old.cert),
        "signed with the new key"
    );
    let metadata = Browser::new().get(&e.url("/saml/metadata")).await.2;
    assert!(metadata.contains(&next_b64) && !metadata.contains(&old.cert_b64));
    let (_, status, page) = admin
        .post(&certs, &[("csrf", &csrf), ("action", "rollover")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("no next certificate"), "{page}");
    let log = unescape(&admin.get(&e.url("/admin")).await.2);
    assert!(
        log.contains("cert.generate_next") && log.contains("cert.rollover"),
        "{log}"
    );
    assert!(
        log.contains(&format!("SHA-1 {}", old.thumbprint_sha1)),
        "{log}"
    );
}

#[tokio::test]
async fn a_console_trusts_endpoints_and_certificate_can_be_set_over_its_metadata() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let sp = TestSp::new("ep");
    let (_, _, location) = import(&e, &admin, Some(&csrf), "metadata", &sp.metadata(false)).await;
    let preview = e.url(&location.expect("preview"));
    let approve = vec![
        ("csrf".to_owned(), csrf.clone()),
        ("name".to_owned(), "Endpoints".to_owned()),
        ("sign".to_owned(), "assertion".to_owned()),
        ("enabled".to_owned(), "on".to_owned()),
        ("mfa_required".to_owned(), "on".to_owned()),
    ];
    post_fields(&admin, &preview, &approve).await;
    let rps = admin.get(&e.url("/admin/rps")).await.2;
    let form_end = rps
        .find("\" class=\"rp-options\"")
        .expect("an editable trust");
    let marker = "action=\"/admin/rps/";
    let slug = &rps[rps[..form_end].rfind(marker).expect("its action") + marker.len()..form_end];
    let trust = e.url(&format!("/admin/rps/{slug}"));
    let options = |field: &str, value: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("action".to_owned(), "options".to_owned()),
            ("name".to_owned(), "Endpoints".to_owned()),
            ("sign".to_owned(), "assertion".to_owned()),
            ("enabled".to_owned(), "on".to_owned()),
            ("mfa_required".to_owned(), "on".to_owned()),
            (field.to_owned(), value.to_owned()),
        ]
    };
    for (field, value, expect) in [
        ("acs", "javascript:alert(1)", "ACS"),
        ("slo", "ftp://files.sp.test/", "single logout"),
        (
            "cert_pem",
            "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
            "not a PEM certificate",
        ),
        ("entity_id", &e.sp.entity_id, "already trusted from"),
    ] {
        let (_, status, page) = post_fields(&admin, &trust, &options(field, value)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {page}");
        assert!(
            unescape(&page).contains(expect),
            "{field}: expected {expect:?}: {page}"
        );
    }
    let pem = String::from_utf8(sp.cert.to_pem().expect("pem")).expect("utf8");
    let (url, _, _) = post_fields(&admin, &trust, &options("cert_pem", &pem)).await;
    assert!(url.contains("done=rp.options"), "{url}");
    let (url, _, page) = post_fields(
        &admin,
        &trust,
        &options("acs", "https://ep.sp.test/other-acs"),
    )
    .await;
    assert!(url.contains("done=rp.options"), "{url}");
    assert!(
        unescape(&page).contains("https://ep.sp.test/other-acs"),
        "{page}"
    );
    let (_, page) = e.sign_in_to(&sp.entity_id, "bob").await;
    assert_eq!(
        Browser::post_form(&page).action,
        "https://ep.sp.test/other-acs"
    );
}

/// A small HTTP server standing in for an SP's metadata host: `/md` serves `metadata`,
/// `/redirect` answers 302 to `redirect_to`; every request is counted.
struct MetadataHost {
    addr: std::net::SocketAddr,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl MetadataHost {
    async fn start(ip: &str, metadata: String, redirect_to: Option<String>) -> Self {
        use axum::response::IntoResponse;
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new()
            .route("/md", axum::routing::get(move || async move { metadata }))
            .route(
                "/redirect",
                axum::routing::get(move || async move {
                    let to = redirect_to.unwrap_or_default();
                    (StatusCode::FOUND, [("location", to)]).into_response()
                }),
            )
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    next.run(req)
                },
            ));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn metadata_urls_on_internal_addresses_are_refused_and_nothing_is_sent() {
    let e = env(|_| {}).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let host = MetadataHost::start("127.0.0.1", TestSp::new("inside").metadata(false), None).await;
    let port = host.addr.port();
    for (url, class) in [
        (format!("http://127.0.0.1:{port}/md"), "loopback"),
        (format!("http://localhost:{port}/md"), "loopback"),
        (format!("http://[::1]:{port}/md"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/md"), "loopback"),
        (format!("http://0x7f000001:{port}/md"), "loopback"),
        (format!("http://2130706433:{port}/md"), "loopback"),
        (format!("http://0.0.0.0:{port}/md"), "unspecified"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://[fe80::1]/".to_owned(), "link-local"),
        ("http://10.0.0.1/".to_owned(), "private"),
        ("http://100.64.0.1/".to_owned(), "carrier-grade NAT"),
        ("https://[fd00::1]/".to_owned(), "unique-local"),
    ] {
        let (status, page, location) = import(&e, &admin, Some(&csrf), "url", &url).await;
        let page = unescape(&page);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {page}");
        assert!(location.is_none(), "{url}: nothing pending");
        assert!(
            page.contains("was not fetched") && page.contains(class),
            "{url}: expected a {class} refusal in {page}"
        );
        assert!(page.contains("paste or upload"), "{url}: says what to do");
    }
    assert_eq!(host.hits(), 0, "no request reached the internal server");
}

#[tokio::test]
async fn an_allowed_metadata_host_cannot_redirect_to_an_internal_one() {
    // 127.0.0.1 stands in for a public metadata host (allowed by address, nothing else);
    // 127.0.0.2 is the internal server the redirect tries to reach.
    let e = env(|c| c.admin.metadata_url_allowed_networks = vec!["127.0.0.1".into()]).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let inside =
        MetadataHost::start("127.0.0.2", TestSp::new("inside").metadata(false), None).await;
    let to_inside = format!("http://127.0.0.2:{}/md", inside.addr.port());
    let to_v6 = format!("http://[::1]:{}/md", inside.addr.port());
    let outside = |to: String| {
        MetadataHost::start(
            "127.0.0.1",
            TestSp::new("outside").metadata(false),
            Some(to),
        )
    };

    // The allowed host itself is fetched, directly and through a redirect to itself.
    let own = outside(String::new()).await;
    let (status, page, location) = import(
        &e,
        &admin,
        Some(&csrf),
        "url",
        &format!("http://{}/md", own.addr),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(location.is_some_and(|l| l.starts_with("/admin/rps/import/")));
    let hop = outside(format!("http://{}/md", own.addr)).await;
    let (status, page, _) = import(
        &e,
        &admin,
        Some(&csrf),
        "url",
        &format!("http://{}/redirect", hop.addr),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    for target in [to_inside, to_v6] {
        let bounce = outside(target.clone()).await;
        let url = format!("http://{}/redirect", bounce.addr);
        let (status, page, location) = import(&e, &admin, Some(&csrf), "url", &url).await;
        let page = unescape(&page);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {page}");
        assert!(location.is_none());
        assert!(
            page.contains("was not fetched") && page.contains("loopback"),
            "{target}: {page}"
        );
        assert_eq!(bounce.hits(), 1, "the allowed first hop was asked");
    }
    assert_eq!(
        inside.hits(),
        0,
        "the redirect never reached the internal server"
    );
}

#[tokio::test]
async fn allow_private_metadata_urls_lets_the_console_fetch_from_loopback() {
    let e = env(|c| c.admin.allow_private_metadata_urls = true).await;
    let (admin, _, page) = e.sign_in("alice").await;
    let csrf = input_value(&page, "csrf").expect("csrf");
    let host = MetadataHost::start("127.0.0.1", TestSp::new("inside").metadata(false), None).await;
    let url = format!("http://localhost:{}/md", host.addr.port());
    let (status, page, location) = import(&e, &admin, Some(&csrf), "url", &url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(location.is_some_and(|l| l.starts_with("/admin/rps/import/")));
    assert_eq!(host.hits(), 1);
}
