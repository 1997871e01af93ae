//! The MFA adapter over HTTP, every transition, against a real Tessera and its simulated
//! phone (which speaks the ntfy and Twilio protocols). Deadlines move by the injected clock.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::mfa::{code, enrol_all, inbox, wait_for};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::Method;
use tessera::mfa::registration;
use tessera::mfa::settings::{MfaSettings, SmsMode};

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    sp: TestSp,
    /// The browser of the current sign-in; each `password()` starts a fresh one, as a new
    /// user would (an SSO session would otherwise skip the sign-in).
    current: std::sync::Mutex<Arc<Browser>>,
}

async fn env(tweak: impl FnOnce(&mut MfaSettings)) -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    tweak(&mut b.config.mfa);
    b.add_user(&[
        file_user("alice", PW),
        file_user("bob", PW),
        file_user("carol", PW),
    ]);
    let sp = TestSp::new("mfa");
    b.add_rp("mfa", &sp.metadata(false), "");
    let open = TestSp::new("open");
    b.add_rp("open", &open.metadata(false), "mfa_required = false\n");
    Env {
        idp: b.start().await,
        clock,
        sp,
        current: std::sync::Mutex::new(Arc::new(Browser::new())),
    }
}

impl Env {
    fn browser(&self) -> Arc<Browser> {
        self.current.lock().expect("lock").clone()
    }

    fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// IdP-initiated sign-in up to the page after the password. Returns (flow id, page).
    async fn password(&self, user: &str) -> (String, StatusCode, String) {
        self.password_for(user, &self.sp.entity_id).await
    }

    async fn password_for(&self, user: &str, entity: &str) -> (String, StatusCode, String) {
        let browser = Arc::new(Browser::new());
        *self.current.lock().expect("lock") = browser.clone();
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={entity}",
            self.idp.base
        );
        let (url, status, page) = browser.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let flow = input_value(&page, "flow").expect("flow");
        let (_, status, page) = browser.sign_in(&url, &page, user, PW).await;
        (flow, status, page)
    }

    /// The waiting page looked at again (what its Continue button or live stream leads to).
    async fn poll(&self, flow: &str) -> String {
        self.browser()
            .get(&format!("{}/adfs/ls/login?flow={flow}", self.idp.base))
            .await
            .2
    }

    async fn act(&self, flow: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        self.browser().step(&self.idp.base, flow, fields).await
    }

    async fn sim(&self, path: &str, form: &[(&str, &str)]) -> StatusCode {
        let res = self
            .browser()
            .http
            .post(format!("{}/sim/api/{path}", self.idp.base))
            .form(form)
            .send()
            .await
            .expect("sim");
        res.status()
    }

    /// The newest push to `topic`, once the phone has it.
    async fn newest_push(&self, topic: &str) -> tessera::sim::inbox::SimPush {
        wait_for("a push", || {
            inbox(&self.idp)
                .pushes
                .iter()
                .rev()
                .find(|p| p.topic == topic)
                .cloned()
        })
        .await
    }

    async fn push_id(&self, topic: &str) -> String {
        self.newest_push(topic).await.id
    }

    async fn press(&self, topic: &str, label: &str) -> StatusCode {
        let push = self.newest_push(topic).await;
        let index = push
            .actions
            .iter()
            .position(|a| a.label == label)
            .unwrap_or_else(|| panic!("no {label} in {:?}", push.actions));
        self.sim(&format!("push/{}/action/{index}", push.id), &[])
            .await
    }

    /// The newest call to PHONE once the carrier has fetched its script.
    async fn call_id(&self) -> String {
        wait_for("a call with its script", || {
            inbox(&self.idp)
                .calls
                .iter()
                .rev()
                .find(|c| c.to == PHONE && c.gather.is_some())
                .map(|c| c.id.clone())
        })
        .await
    }

    /// A call with its script other than `first` (the next sign-in's).
    async fn call_after(&self, first: &str) -> String {
        wait_for("another call", || {
            inbox(&self.idp)
                .calls
                .iter()
                .find(|c| c.id != first && c.gather.is_some())
                .map(|c| c.id.clone())
        })
        .await
    }

    async fn texted_code(&self, nth: usize) -> String {
        let body = wait_for("a text", || {
            inbox(&self.idp)
                .texts
                .iter()
                .filter(|t| t.to == PHONE)
                .nth(nth)
                .map(|t| t.body.clone())
        })
        .await;
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("6-digit code in text")
            .to_owned()
    }
}

/// POSTs a push button's callback URL directly, as a replaying attacker would.
async fn replay(e: &Env, topic: &str, label: &str) -> StatusCode {
    let push = e.newest_push(topic).await;
    let url = push
        .actions
        .iter()
        .find(|a| a.label == label)
        .expect("action")
        .url
        .clone();
    e.browser()
        .http
        .post(url)
        .send()
        .await
        .expect("callback")
        .status()
}

fn signed_in(page: &str) -> String {
    assert!(
        page.contains("SAMLResponse"),
        "expected the auto-POST page, got {page}"
    );
    Browser::post_form(page).xml()
}

#[tokio::test]
async fn push_approved_signs_in_with_mfa_context_and_amr() {
    let e = env(|_| {}).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, status, page) = e.password("alice").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("We've sent a notification"), "{page}");
    assert!(page.contains("Use a different verification option"));
    assert_eq!(e.press(&topic, "Approve").await, StatusCode::OK);
    let xml = signed_in(&e.poll(&flow).await);
    assert!(
        xml.contains("http://schemas.microsoft.com/claims/multipleauthn"),
        "{xml}"
    );
    for v in ["pwd", "swk", "mfa"] {
        assert!(
            xml.contains(&format!("<saml:AttributeValue>{v}</saml:AttributeValue>")),
            "amr {v}: {xml}"
        );
    }
    // A replayed callback changes nothing and says so.
    assert_eq!(replay(&e, &topic, "Approve").await, StatusCode::GONE);
}

#[tokio::test]
async fn push_denied_then_oath_code_from_the_chooser_and_replayed_codes_refused() {
    let e = env(|_| {}).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    e.press(&topic, "Deny").await;
    let page = e.poll(&flow).await;
    assert!(page.contains("denied"), "{page}");
    for label in [
        "Send notification to my mobile app",
        "Call me at +X XXXXXXXX30",
        "Text me at +X XXXXXXXX30",
        "Use verification code from my mobile app",
    ] {
        assert!(page.contains(label), "chooser lacks {label}: {page}");
    }
    let (_, page) = e
        .act(&flow, &[("action", "choose"), ("method", "oath")])
        .await;
    assert!(page.contains("verification code"), "{page}");
    let (status, page) = e
        .act(&flow, &[("action", "code"), ("code", "123456")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not correct"), "{page}");
    let now = e.now();
    let (_, page) = e
        .act(&flow, &[("action", "code"), ("code", &code(now))])
        .await;
    assert!(signed_in(&page).contains("<saml:AttributeValue>otp</saml:AttributeValue>"));

    // The same code in a new sign-in is refused (RFC 6238 §5.2); the next one works.
    let e2 = Browser::new();
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let (url, _, page) = e2.get(&url).await;
    let flow2 = input_value(&page, "flow").expect("flow");
    e2.sign_in(&url, &page, "alice", PW).await;
    let login = format!("{}/adfs/ls/login", e.idp.base);
    e2.post(&login, &[("flow", &flow2), ("action", "different")])
        .await;
    e2.post(
        &login,
        &[("flow", &flow2), ("action", "choose"), ("method", "oath")],
    )
    .await;
    let (_, _, page) = e2
        .post(
            &login,
            &[("flow", &flow2), ("action", "code"), ("code", &code(now))],
        )
        .await;
    assert!(
        page.contains("This code has already been used"),
        "replayed code accepted, or not called used: {page}"
    );
    let (_, _, page) = e2
        .post(
            &login,
            &[
                ("flow", &flow2),
                ("action", "code"),
                ("code", &code(now + 30)),
            ],
        )
        .await;
    signed_in(&page);
}

#[tokio::test]
async fn unanswered_push_times_out_by_the_clock_into_the_chooser() {
    let e = env(|_| {}).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("55"), "the page shows the time left: {page}");
    e.clock.advance(time::Duration::seconds(30));
    assert!(
        e.poll(&flow).await.contains("We've sent a notification"),
        "still waiting at 30 s"
    );
    e.clock.advance(time::Duration::seconds(26));
    let page = e.poll(&flow).await;
    assert!(
        page.contains("receive a response")
            && page.contains("Use verification code from my mobile app"),
        "{page}"
    );
    // Approving the abandoned push now does nothing.
    assert_eq!(replay(&e, &topic, "Approve").await, StatusCode::GONE);
    assert!(!e.poll(&flow).await.contains("SAMLResponse"));
}

#[tokio::test]
async fn number_matching_needs_the_number_shown_on_the_page() {
    let e = env(|m| m.number_matching = true).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    let shown = page
        .split("id=\"number\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("number on page")
        .to_owned();
    let push = wait_for("push", || {
        inbox(&e.idp)
            .pushes
            .iter()
            .rev()
            .find(|p| p.topic == topic)
            .cloned()
    })
    .await;
    let wrong = push
        .actions
        .iter()
        .find(|a| a.label != shown && a.label.parse::<u8>().is_ok())
        .expect("decoy")
        .label
        .clone();
    e.press(&topic, &wrong).await;
    assert!(
        e.poll(&flow).await.contains("denied"),
        "wrong number must deny"
    );
    let (flow, _, _) = e.password("alice").await;
    let page = e.poll(&flow).await;
    let shown = page
        .split("id=\"number\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("number")
        .to_owned();
    e.push_id(&topic).await;
    e.press(&topic, &shown).await;
    signed_in(&e.poll(&flow).await);
}

#[tokio::test]
async fn call_answered_with_pound_approves() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    assert!(
        page.contains("We're calling your phone at +X XXXXXXXX30"),
        "{page}"
    );
    let call = e.call_id().await;
    // Someone who learnt the call's URL but is not the carrier: no signature, no approval.
    let url = inbox(&e.idp)
        .calls
        .iter()
        .find(|c| c.id == call)
        .map(|c| c.url.clone())
        .expect("call url");
    let forged = e.browser().http.post(&url).form(&[("Digits", "#")]);
    let status = forged.send().await.expect("post").status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        e.poll(&flow).await.contains("We're calling"),
        "still waiting"
    );
    assert_eq!(
        e.sim(&format!("call/{call}/digits"), &[("digits", "#")])
            .await,
        StatusCode::OK
    );
    let xml = signed_in(&e.poll(&flow).await);
    assert!(
        xml.contains("<saml:AttributeValue>tel</saml:AttributeValue>"),
        "{xml}"
    );
}

#[tokio::test]
async fn call_in_pin_mode_needs_the_right_pin() {
    let e = env(|m| m.pin_mode = true).await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let hash = tessera::directory::file::hash_password("4321").expect("hash");
    registration::update(e.idp.state.store.as_ref(), "alice", |r| {
        r.pin_hash = Some(hash.clone())
    })
    .await
    .expect("pin");
    let (flow, _, _) = e.password("alice").await;
    let call = e.call_id().await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "9999#")])
        .await;
    assert!(e.poll(&flow).await.contains("denied"), "a wrong PIN denies");
    let (flow, _, _) = e.password("alice").await;
    let call = e.call_after(&call).await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "4321#")])
        .await;
    signed_in(&e.poll(&flow).await);
}

#[tokio::test]
async fn pin_mode_without_a_pin_asks_for_one_under_the_policy_then_calls() {
    let e = env(|m| {
        m.pin_mode = true;
        m.pin_min_length = 5;
    })
    .await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("Choose a PIN"), "{page}");
    assert!(page.contains("Use 5 to 10 digits"), "{page}");
    assert!(
        inbox(&e.idp).calls.is_empty(),
        "no call before a PIN exists"
    );
    for (pin, confirm, says) in [
        ("4912", "4912", "too short"),
        ("12345", "12345", "run of digits"),
        ("77777", "77777", "one digit repeated"),
        ("00230", "00230", "end of your phone number"),
        ("49127", "49128", "not the same"),
        ("49l27", "49l27", "digits only"),
    ] {
        let (_, page) = e
            .act(
                &flow,
                &[("action", "set_pin"), ("pin", pin), ("confirm", confirm)],
            )
            .await;
        assert!(
            page.contains(says),
            "{pin}/{confirm}: expected {says}: {page}"
        );
        assert!(page.contains("Choose a PIN"), "stays on the PIN page");
    }
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    assert!(reg.pin_hash.is_none(), "nothing stored for a refused PIN");
    let (_, page) = e
        .act(
            &flow,
            &[
                ("action", "set_pin"),
                ("pin", "49127"),
                ("confirm", "49127"),
            ],
        )
        .await;
    assert!(page.contains("calling your phone"), "{page}");
    let raw = e
        .idp
        .state
        .store
        .get(&registration::key("alice"))
        .await
        .expect("get")
        .expect("reg");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("$argon2id$"), "{raw}");
    assert!(!raw.contains("49127"), "the PIN is stored only hashed");
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    assert_eq!(reg.pin_set_at, Some(e.now()));
    let call = e.call_id().await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "49127#")])
        .await;
    signed_in(&e.poll(&flow).await);
}

#[tokio::test]
async fn an_expired_pin_is_replaced_by_a_different_one_before_the_call() {
    let e = env(|m| {
        m.pin_mode = true;
        m.pin_expiry_days = 30;
    })
    .await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let hash = tessera::directory::file::hash_password("4912").expect("hash");
    let set_at = e.now() - 31 * 86_400;
    registration::update(e.idp.state.store.as_ref(), "alice", |r| {
        r.pin_hash = Some(hash.clone());
        r.pin_set_at = Some(set_at);
    })
    .await
    .expect("pin");
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("Your PIN has expired"), "{page}");
    let (_, page) = e
        .act(
            &flow,
            &[("action", "set_pin"), ("pin", "4912"), ("confirm", "4912")],
        )
        .await;
    assert!(page.contains("different from your previous"), "{page}");
    let (_, page) = e
        .act(
            &flow,
            &[("action", "set_pin"), ("pin", "5821"), ("confirm", "5821")],
        )
        .await;
    assert!(page.contains("calling your phone"), "{page}");
    let call = e.call_id().await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "4912#")])
        .await;
    assert!(
        e.poll(&flow).await.contains("denied"),
        "the old PIN is gone"
    );
    let (flow, _, page) = e.password("alice").await;
    assert!(!page.contains("Choose a PIN"), "the new PIN is not expired");
    let call = e.call_after(&call).await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "5821#")])
        .await;
    signed_in(&e.poll(&flow).await);
}

#[tokio::test]
async fn without_method_choice_the_chooser_keeps_the_assigned_default() {
    let e = env(|m| m.allow_method_choice = false).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    e.press(&topic, "Deny").await;
    let page = e.poll(&flow).await;
    assert!(
        page.contains("Send notification to my mobile app"),
        "{page}"
    );
    assert!(page.contains("Use verification code from my mobile app"));
    assert!(!page.contains("Call me at"), "{page}");
    assert!(!page.contains("Text me at"), "{page}");
    assert!(
        !page.contains("make_default"),
        "no way to change the default"
    );
    let (_, page) = e
        .act(&flow, &[("action", "choose"), ("method", "call")])
        .await;
    assert!(page.contains("not available for your account"), "{page}");
    assert!(inbox(&e.idp).calls.is_empty(), "no call placed");
}

#[tokio::test]
async fn a_method_picked_as_default_becomes_the_default_once_it_succeeds() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    let (_, page) = e.act(&flow, &[("action", "different")]).await;
    assert!(page.contains("make_default"), "{page}");
    let (_, page) = e
        .act(
            &flow,
            &[
                ("action", "choose"),
                ("method", "oath"),
                ("make_default", "on"),
            ],
        )
        .await;
    assert!(page.contains("verification code"), "{page}");
    let store = e.idp.state.store.as_ref();
    let reg = registration::load(store, "alice").await.expect("reg");
    assert_eq!(
        reg.default_method,
        Some(Method::Push),
        "not before it works"
    );
    let (_, page) = e
        .act(&flow, &[("action", "code"), ("code", &code(e.now()))])
        .await;
    signed_in(&page);
    let reg = registration::load(store, "alice").await.expect("reg");
    assert_eq!(reg.default_method, Some(Method::Oath));
    let (_, _, page) = e.password("alice").await;
    assert!(page.contains("Enter the verification code"), "{page}");
}

#[tokio::test]
async fn codes_count_only_from_the_kinds_of_token_allowed() {
    use tessera::mfa::oath::OathParams;
    use tessera::mfa::registration::TokenKind;
    use tessera::mfa::settings::OathKind;
    let e = env(|m| m.oath_tokens = vec![OathKind::Hardware]).await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    // Alice's only token is an app: her default cannot run, the company default (push) does.
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("We've sent a notification"), "{page}");
    let (_, page) = e.act(&flow, &[("action", "different")]).await;
    assert!(!page.contains("Use verification code"), "{page}");
    let (_, page) = e
        .act(&flow, &[("action", "choose"), ("method", "oath")])
        .await;
    assert!(page.contains("not available for your account"), "{page}");

    let fob: &[u8] = b"hardware-token-secret-20";
    let store = e.idp.state.store.as_ref();
    let secrets = &e.idp.state.secrets;
    registration::update(store, "alice", |r| {
        let kind = TokenKind::Hardware {
            serial: "FOB-0001".into(),
        };
        r.add_oath(secrets, "Key fob", kind, fob, OathParams::default(), 0);
    })
    .await
    .expect("fob");
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("Enter the verification code"), "{page}");
    let now = e.now();
    let (status, page) = e
        .act(&flow, &[("action", "code"), ("code", &code(now))])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the app's code: {page}");
    let fob_code = tessera::mfa::oath::code_at(fob, &OathParams::default(), now);
    let (_, page) = e
        .act(&flow, &[("action", "code"), ("code", &fob_code)])
        .await;
    signed_in(&page);
}

#[tokio::test]
async fn fraud_code_on_a_call_blocks_the_account() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    let call = e.call_id().await;
    e.sim(&format!("call/{call}/digits"), &[("digits", "0")])
        .await;
    let page = e.poll(&flow).await;
    assert!(page.contains("reported this sign-in as fraud"), "{page}");
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    assert!(
        reg.blocked_until
            .is_some_and(|t| t >= e.now() + 89 * 86_400),
        "blocked ~90 days"
    );
    let (_, status, page) = e.password("alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("blocked"), "{page}");
}

#[tokio::test]
async fn unanswered_call_offers_the_chooser_at_once() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    let call = e.call_id().await;
    e.sim(&format!("call/{call}/no-answer"), &[]).await;
    let page = e.poll(&flow).await;
    assert!(
        page.contains("could not reach you") && page.contains("Use verification code"),
        "{page}"
    );
}

#[tokio::test]
async fn one_way_text_code_is_typed_and_expires() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Sms, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    assert!(
        page.contains("Enter the code we texted to +X XXXXXXXX30"),
        "{page}"
    );
    let first = e.texted_code(0).await;
    let (status, _) = e
        .act(&flow, &[("action", "code"), ("code", "000000")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, page) = e.act(&flow, &[("action", "code"), ("code", &first)]).await;
    assert!(signed_in(&page).contains("<saml:AttributeValue>sms</saml:AttributeValue>"));

    let (flow, _, _) = e.password("alice").await;
    let second = e.texted_code(1).await;
    e.clock.advance(time::Duration::seconds(301));
    let (_, page) = e.act(&flow, &[("action", "code"), ("code", &second)]).await;
    assert!(
        page.contains("not correct"),
        "an expired code is refused: {page}"
    );
}

#[tokio::test]
async fn two_way_text_is_approved_by_replying_with_the_code() {
    let e = env(|m| m.sms_mode = SmsMode::TwoWay).await;
    enrol_all(&e.idp, "alice", Method::Sms, PHONE).await;
    let (flow, _, page) = e.password("alice").await;
    assert!(page.contains("Reply to it with the code"), "{page}");
    let code = e.texted_code(0).await;
    assert_eq!(
        e.sim("sms/reply", &[("from", PHONE), ("body", "999999")])
            .await,
        StatusCode::OK
    );
    assert!(
        e.poll(&flow).await.contains("denied"),
        "a wrong reply denies"
    );
    let (flow, _, _) = e.password("alice").await;
    let code2 = e.texted_code(1).await;
    assert_ne!(code, code2);
    e.sim("sms/reply", &[("from", PHONE), ("body", &code2)])
        .await;
    signed_in(&e.poll(&flow).await);
}

#[tokio::test]
async fn wrong_codes_are_counted_and_end_the_sign_in() {
    let e = env(|m| m.max_code_attempts = 3).await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    for _ in 0..2 {
        let (status, page) = e
            .act(&flow, &[("action", "code"), ("code", "000000")])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    }
    let (status, page) = e
        .act(&flow, &[("action", "code"), ("code", "000000")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Too many incorrect codes"), "{page}");
    let (_, page) = e
        .act(&flow, &[("action", "code"), ("code", &code(e.now()))])
        .await;
    assert!(!page.contains("SAMLResponse"), "a denied flow stays denied");
}

#[tokio::test]
async fn repeated_denials_lock_mfa() {
    let e = env(|m| m.denial_lockout_threshold = 2).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    e.press(&topic, "Deny").await;
    assert!(e.poll(&flow).await.contains("denied"));
    let (flow, _, _) = e.password("alice").await;
    wait_for("second push", || {
        (inbox(&e.idp).pushes.len() >= 2).then_some(())
    })
    .await;
    e.press(&topic, "Deny").await;
    assert!(e.poll(&flow).await.contains("locked"));
    let (_, status, page) = e.password("alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("locked after repeated denials"), "{page}");
}

#[tokio::test]
async fn bypass_trusted_network_and_rp_policy_skip_the_second_factor() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let key = tessera::login::bypass_key("alice");
    e.idp
        .state
        .store
        .put(
            &key,
            b"helpdesk ticket 42",
            Some(std::time::Duration::from_secs(300)),
        )
        .await
        .expect("bypass");
    let (_, _, page) = e.password("alice").await;
    assert!(signed_in(&page).contains("<saml:AttributeValue>pwd</saml:AttributeValue>"));
    let (_, _, page) = e.password("alice").await;
    assert!(
        page.contains("We've sent a notification"),
        "the bypass is used up: {page}"
    );

    let open = "https://open.sp.test";
    let (_, _, page) = e.password_for("alice", open).await;
    signed_in(&page);

    let t = env(|m| m.trusted_networks = vec!["10.0.0.0/8".into(), "127.0.0.1".into()]).await;
    enrol_all(&t.idp, "alice", Method::Push, PHONE).await;
    let (_, _, page) = t.password("alice").await;
    signed_in(&page);
}

#[tokio::test]
async fn users_without_a_method_enrol_a_phone_or_a_push_device_or_are_refused() {
    let e = env(|_| {}).await;
    let (flow, _, page) = e.password("bob").await;
    assert!(page.contains("Set up verification"), "{page}");
    let (_, page) = e
        .act(
            &flow,
            &[("action", "enroll_phone"), ("number", "not a number")],
        )
        .await;
    assert!(page.contains("does not look like a phone number"), "{page}");
    let (_, page) = e
        .act(
            &flow,
            &[("action", "enroll_phone"), ("number", "+1 (555) 010-0230")],
        )
        .await;
    assert!(page.contains("Enter the code we just texted you"), "{page}");
    let code = e.texted_code(0).await;
    let (_, page) = e
        .act(&flow, &[("action", "enroll_confirm"), ("code", &code)])
        .await;
    signed_in(&page);
    let reg = registration::load(e.idp.state.store.as_ref(), "bob")
        .await
        .expect("reg");
    assert_eq!(reg.phones.first().map(|p| p.number.as_str()), Some(PHONE));
    assert_eq!(reg.default_method, Some(Method::Sms));

    let (flow, _, _) = e.password("carol").await;
    let (_, page) = e.act(&flow, &[("action", "enroll_push")]).await;
    let topic = page
        .split("id=\"topic\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("topic shown")
        .to_owned();
    e.press(&topic, "Approve").await;
    signed_in(&e.poll(&flow).await);
    let reg = registration::load(e.idp.state.store.as_ref(), "carol")
        .await
        .expect("reg");
    assert_eq!(
        reg.push_devices.first().map(|d| d.topic.as_str()),
        Some(topic.as_str())
    );

    let closed = env(|m| m.allow_enrollment = false).await;
    let (_, status, page) = closed.password("bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("No verification method is set up"), "{page}");
}

#[tokio::test]
async fn soft_lockout_stops_password_guessing_before_the_directory_is_asked() {
    let e = env(|m| m.password_failures_per_user = 3).await;
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let browser = e.browser();
    let (url, _, mut page) = browser.get(&url).await;
    for _ in 0..3 {
        let (_, status, next) = browser.sign_in(&url, &page, "CORP\\alice", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        page = next;
    }
    let (_, _, next) = browser.sign_in(&url, &page, "alice", PW).await;
    assert!(next.contains("Too many failed sign-in attempts"), "{next}");
    e.clock.advance(time::Duration::seconds(901));
    let (_, _, page) = e.password("alice").await;
    assert!(
        page.contains("Set up verification"),
        "after the window the right password works: {page}"
    );
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_failure_count() {
    let e = env(|m| m.password_failures_per_user = 3).await;
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    // Two misses, a success, two more misses: never three in a row, so never locked out.
    for round in 0..2 {
        let browser = e.browser();
        let (url, _, mut page) = browser.get(&url).await;
        for _ in 0..2 {
            let (_, status, next) = browser.sign_in(&url, &page, "alice", "wrong").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            page = next;
        }
        let (_, _, next) = browser.sign_in(&url, &page, "alice", PW).await;
        assert!(
            next.contains("Set up verification"),
            "round {round}: the right password still works: {next}"
        );
    }
}

#[tokio::test]
async fn every_transition_is_audited_in_the_store() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    let (flow, _, _) = e.password("alice").await;
    e.act(&flow, &[("action", "code"), ("code", "000000")])
        .await;
    e.act(&flow, &[("action", "code"), ("code", &code(e.now()))])
        .await;
    let store = e.idp.state.store.as_ref();
    let mut lines = Vec::new();
    let log = store
        .read_log(tessera::audit::SIGNIN_LOG, 0, i64::MAX, 1000)
        .await
        .expect("sign-in log");
    // Newest first in the log; the story reads oldest first.
    for entry in log.iter().rev() {
        let line = String::from_utf8(entry.value.clone()).expect("utf8");
        if line.contains(&flow) {
            lines.push(line);
        }
    }
    let joined = lines.join("\n");
    assert_eq!(
        lines.len(),
        4,
        "start, password, wrong code, right code: {joined}"
    );
    assert!(
        joined.contains("\"to\":\"await_second_factor\"")
            && joined.contains("\"to\":\"authenticated\""),
        "{joined}"
    );
    assert!(
        joined.contains("wrong code") && joined.contains("\"method\":\"oath\""),
        "{joined}"
    );
    assert!(!joined.contains(PW), "no secrets in the audit log");
}

#[tokio::test]
async fn directory_phones_come_only_from_mfa_phone_attributes() {
    // The same user, mobile in the directory, no enrolled phone: offered for calls and texts
    // with the default attributes, not at all with an empty list.
    for (attributes, offered) in [(None, true), (Some(Vec::new()), false)] {
        let mut b = TesseraBuilder::new();
        let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
        b.clock = clock.clone();
        if let Some(list) = attributes.clone() {
            b.config.mfa.phone_attributes = list;
        }
        let mut alice = file_user("alice", PW);
        alice.mobile = Some("+1 555 0100 88".into());
        b.add_user(&[alice]);
        let sp = TestSp::new("mfa");
        b.add_rp("mfa", &sp.metadata(false), "");
        let e = Env {
            idp: b.start().await,
            clock,
            sp,
            current: std::sync::Mutex::new(Arc::new(Browser::new())),
        };
        enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
        registration::update(e.idp.state.store.as_ref(), "alice", |r| r.phones.clear())
            .await
            .expect("no enrolled phone");
        let (flow, _, _) = e.password("alice").await;
        let (_, page) = e.act(&flow, &[("action", "different")]).await;
        assert!(
            page.contains("Use verification code from my mobile app"),
            "{page}"
        );
        for label in ["Call me at +X XXXXXXX88", "Text me at +X XXXXXXX88"] {
            assert_eq!(
                page.contains(label),
                offered,
                "{label} with phone_attributes {attributes:?}: {page}"
            );
        }
    }
}
