//! The help desk adds a method for a user over HTTP against the real app: a phone number
//! the next sign-in texts, and an enrollment link the user opens to set up an authenticator
//! app (single use, time-limited, the same page for every link that is not live).

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::mfa::{code, enrol_all, last_text_to};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at, from_base32};
use tessera::mfa::registration;

const PW: &str = "Corr3ct horse!";
const ADMIN_PHONE: &str = "+15550100230";

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    sp: TestSp,
}

async fn env() -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    b.config.mfa.company_default = Method::Sms;
    let mut alice = file_user("alice", PW);
    alice.groups.push("Tessera Admins".into());
    b.add_user(&[alice, file_user("bob", PW)]);
    let sp = TestSp::new("desk");
    b.add_rp("desk", &sp.metadata(false), "");
    let idp = b.start().await;
    enrol_all(&idp, "alice", Method::Oath, ADMIN_PHONE).await;
    Env { idp, clock, sp }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    /// Alice signed in to the console; returns her browser and the CSRF token.
    async fn admin(&self) -> (Browser, String) {
        let browser = Browser::new();
        let (url, _, page) = browser.get(&self.url("/admin")).await;
        let flow = input_value(&page, "flow").expect("flow");
        browser.sign_in(&url, &page, "alice", PW).await;
        let now = self.clock.unix();
        let form = [
            ("flow", flow.as_str()),
            ("action", "code"),
            ("code", &code(now)),
        ];
        browser.post(&self.url("/adfs/ls/login"), &form).await;
        let (_, status, page) = browser.get(&self.url("/admin/users/bob")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let csrf = input_value(&page, "csrf").expect("csrf");
        (browser, csrf)
    }

    /// Bob's sign-in to the SP up to the page after the password.
    async fn bob(&self) -> (Browser, String, String) {
        let browser = Browser::new();
        let sso = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.idp.base, self.sp.entity_id
        );
        let (url, _, page) = browser.get(&sso).await;
        let flow = input_value(&page, "flow").expect("flow");
        let (_, _, page) = browser.sign_in(&url, &page, "bob", PW).await;
        (browser, flow, page)
    }

    async fn code(&self, b: &Browser, flow: &str, code: &str) -> String {
        let form = [("flow", flow), ("action", "code"), ("code", code)];
        b.post(&self.url("/adfs/ls/login"), &form).await.2
    }
}

/// The enrollment link the user page shows once.
fn link_in(page: &str) -> String {
    let page = unescape(page);
    let at = page.find("http://").expect("a link");
    let end = page[at..].find(['<', ' ']).expect("end");
    let url = page[at..at + end].to_owned();
    assert!(url.contains("/enroll/link/"), "{url}");
    url
}

fn secret_in(page: &str) -> Vec<u8> {
    let at = page.find("<code id=\"secret\">").expect("secret") + 18;
    let end = page[at..].find('<').expect("end");
    from_base32(&page[at..at + end]).expect("base32")
}

#[tokio::test]
async fn the_help_desk_adds_a_phone_and_the_next_sign_in_texts_it() {
    let e = env().await;
    let (_, _, page) = e.bob().await;
    assert!(!page.contains("Enter the code we texted"), "no phone yet");
    let (admin, csrf) = e.admin().await;
    let user = e.url("/admin/users/bob");
    let add = |n: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", "add_phone".into()),
            ("number", n.into()),
        ]
    };
    let post = async |f: Vec<(&str, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        admin.post(&user, &f).await
    };
    let (_, status, page) = post(add("call me maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("does not look like a phone number"), "{page}");
    let (url, status, page) = post(add("(555) 010-0299")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=user.add_phone"), "{url}");
    assert!(page.contains("+15550100299"), "normalised: {page}");
    let (_, status, page) = post(add("+1 555 010 0299")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already has that phone"), "{page}");
    // Without the CSRF token: refused.
    let (_, status, _) = admin
        .post(
            &user,
            &[("action", "add_phone"), ("number", "+15550100298")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, log) = admin.get(&e.url("/admin")).await;
    assert!(log.contains("user.add_phone"), "in the change log: {log}");

    let (b, flow, page) = e.bob().await;
    assert!(page.contains("Enter the code we texted"), "{page}");
    let body = last_text_to(&e.idp, "+15550100299").await;
    let texted: String = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("code")
        .into();
    let page = e.code(&b, &flow, &texted).await;
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn an_enrollment_link_adds_an_app_once_and_is_then_spent() {
    let e = env().await;
    let (admin, csrf) = e.admin().await;
    let user = e.url("/admin/users/bob");
    let form = [("csrf", csrf.as_str()), ("action", "enroll_link")];
    let (_, status, page) = admin.post(&user, &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let link = link_in(&page);
    let (_, _, log) = admin.get(&e.url("/admin")).await;
    let token = link.rsplit('/').next().expect("token");
    assert!(!log.contains(token), "the change log never holds the link");

    // Bob, in his own browser, without signing in.
    let bob = Browser::new();
    let (_, status, page) = bob.get(&link).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("<svg") && unescape(&page).contains("otpauth://totp/"),
        "{page}"
    );
    let secret = secret_in(&page);
    let (_, status, page) = bob.post(&link, &[("code", "000000")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not correct"), "{page}");
    let reg = registration::load(e.idp.state.store.as_ref(), "bob")
        .await
        .expect("reg");
    let failures = tessera::mfa::lockout::failure_key(&reg);
    let counted = e.idp.state.store.get(&failures).await.expect("store");
    assert_eq!(
        counted.as_deref(),
        Some(&b"1"[..]),
        "the wrong code counted"
    );
    let now = e.clock.unix();
    let confirm = code_at(&secret, &OathParams::default(), now);
    let (_, status, page) = bob.post(&link, &[("code", confirm.as_str())]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"done\""), "{page}");

    // Spent: the same page as for any link that is not live.
    let (_, status, spent) = bob.get(&link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(spent.contains("not valid"), "{spent}");
    let (_, status, _) = bob.post(&link, &[("code", confirm.as_str())]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bob signs in with the app.
    e.clock.advance(time::Duration::seconds(30));
    let (b, flow, page) = e.bob().await;
    assert!(page.contains("name=\"code\""), "{page}");
    let now = e.clock.unix();
    let page = e
        .code(&b, &flow, &code_at(&secret, &OathParams::default(), now))
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn expired_and_garbage_links_get_the_same_page() {
    let e = env().await;
    let (admin, csrf) = e.admin().await;
    let form = [("csrf", csrf.as_str()), ("action", "enroll_link")];
    let (_, _, page) = admin.post(&e.url("/admin/users/bob"), &form).await;
    let link = link_in(&page);
    e.clock.advance(time::Duration::hours(73));
    let (_, status, expired) = Browser::new().get(&link).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown = format!("/enroll/link/{}", "ab".repeat(32));
    let garbage = format!("/enroll/link/{}", "x".repeat(300));
    for path in [unknown.as_str(), "/enroll/link/garbage", garbage.as_str()] {
        let (_, status, page) = Browser::new().get(&e.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("not valid"), "{path}: {page}");
        let (_, status, _) = Browser::new()
            .post(&e.url(path), &[("code", "123456")])
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(expired.contains("not valid"), "{expired}");
}

#[tokio::test]
async fn the_help_desk_clears_security_answers() {
    let e = env().await;
    let store = e.idp.state.store.as_ref();
    registration::update(store, "bob", |r| {
        r.security_answers = vec![tessera::mfa::questions::SecurityAnswer {
            question: "First pet".into(),
            hash: tessera::mfa::questions::hash("rex").expect("hash"),
        }];
    })
    .await
    .expect("seed");
    let (admin, csrf) = e.admin().await;
    let user = e.url("/admin/users/bob");
    let (_, _, page) = admin.get(&user).await;
    assert!(
        page.contains("id=\"questions-status\">1 answered"),
        "{page}"
    );
    assert!(!page.contains("rex"), "never the answer");
    let form = [("csrf", csrf.as_str()), ("action", "clear_questions")];
    let (url, status, page) = admin.post(&user, &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=user.clear_questions"), "{url}");
    assert!(page.contains("id=\"questions-status\">none"), "{page}");
    let reg = registration::load(store, "bob").await.expect("reg");
    assert!(reg.security_answers.is_empty());
    let (_, status, page) = admin.post(&user, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("no security answers"), "{page}");
}

const FOB: &[u8] = b"hardware-token-secret-20";
const TOKEN_CSV: &str = "upn,serial number,secret key,time interval,manufacturer,model";

#[tokio::test]
async fn the_help_desk_assigns_and_activates_a_hardware_token() {
    use tessera::admin::Actor;
    use tessera::admin::tokens::{self, Action};
    use tessera::mfa::tokens::inventory::Deps;
    let e = env().await;
    let deps = Deps {
        store: e.idp.state.store.as_ref(),
        secrets: &e.idp.state.secrets,
        now: e.clock.unix(),
    };
    let actor = Actor {
        name: "test".into(),
        client_ip: "local".into(),
    };
    let dir = e.idp.state.directory.as_ref();
    let s = tessera::mfa::oath::base32(FOB);
    let csv = format!("{TOKEN_CSV}\n,HW1,{s},30,Contoso,C200\n,HW2,{s},30,Contoso,C200\n");
    let report = tokens::import(&deps, dir, &actor, "f.csv", csv.as_bytes(), None)
        .await
        .expect("import");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let alice = Action::Assign {
        serial: "HW2".into(),
        user: "alice".into(),
    };
    tokens::apply(&deps, dir, &actor, alice).await.expect("hw2");

    let (admin, csrf) = e.admin().await;
    let user = e.url("/admin/users/bob");
    let assign = async |serial: &str, code: &str| {
        let form = [
            ("csrf", csrf.as_str()),
            ("action", "assign_token"),
            ("serial", serial),
            ("code", code),
        ];
        admin.post(&user, &form).await
    };
    let (_, status, page) = assign("NOPE", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("no token with serial number NOPE"), "{page}");
    let (_, status, page) = assign("HW2", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already assigned to alice"), "{page}");
    let (url, status, page) = assign("HW1", "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=tokens.assign"), "{url}");
    assert!(
        page.contains("<code>HW1</code></td><td>C200</td><td>waiting for activation"),
        "{page}"
    );
    let (_, _, log) = admin.get(&e.url("/admin")).await;
    assert!(log.contains("tokens.assign"), "in the change log: {log}");

    // A wrong code: assigned still, not activated, and the page says so.
    let (_, status, page) = assign("HW1", "000000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not activated"), "{page}");
    let p = OathParams::default();
    let (url, status, page) = assign("HW1", &code_at(FOB, &p, e.clock.unix())).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=tokens.activate"), "{url}");
    assert!(page.contains("<td>C200</td><td>activated "), "{page}");

    // Bob signs in with the token; the activation code is spent.
    e.clock.advance(time::Duration::seconds(30));
    let (b, flow, page) = e.bob().await;
    assert!(page.contains("name=\"code\""), "{page}");
    let page = e.code(&b, &flow, &code_at(FOB, &p, e.clock.unix())).await;
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn a_confirmed_enrollment_link_is_in_the_users_history() {
    let e = env().await;
    let (admin, csrf) = e.admin().await;
    let user = e.url("/admin/users/bob");
    let form = [("csrf", csrf.as_str()), ("action", "enroll_link")];
    let (_, _, page) = admin.post(&user, &form).await;
    let link = link_in(&page);
    let bob = Browser::new();
    let (_, _, page) = bob.get(&link).await;
    let secret = secret_in(&page);
    let confirm = code_at(&secret, &OathParams::default(), e.clock.unix());
    let (_, status, page) = bob.post(&link, &[("code", confirm.as_str())]).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // The user acted: his history (the user page's recent sign-ins) shows it, with the method.
    let (_, _, page) = admin.get(&user).await;
    assert!(page.contains("→ enrollment link"), "{page}");
    assert!(page.contains("enroll_link.confirm"), "{page}");
    assert!(page.contains("authenticator app added"), "{page}");
    // Not the change log: no admin made that change.
    let (_, _, log) = admin.get(&e.url("/admin")).await;
    assert!(!log.contains("enroll_link.confirm"), "{log}");
}
