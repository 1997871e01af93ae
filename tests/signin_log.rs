//! The sign-in log says what happened, as an admin reads it in the console and as the phone
//! is told: a replayed code is "code already used", a success is headed by the success, and
//! a push or call answered after the sign-in stopped waiting is refused and noted as late.
//! Real Tessera over HTTP with its simulated phone; deadlines move by the injected clock.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::mfa::{code, enrol_all, inbox, wait_for};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::Method;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const ADMIN_PHONE: &str = "+15550100231";
const NO_LONGER_WAITING: &str = "This sign-in is no longer waiting.";

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    sp: TestSp,
}

async fn env() -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    let mut admin = file_user("carol", PW);
    admin.groups.push("Tessera Admins".into());
    b.add_user(&[file_user("alice", PW), admin]);
    let sp = TestSp::new("log");
    b.add_rp("log", &sp.metadata(false), "");
    let idp = b.start().await;
    enrol_all(&idp, "carol", Method::Oath, ADMIN_PHONE).await;
    Env { idp, clock, sp }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(time::Duration::seconds(secs));
    }

    /// A fresh browser signs in as alice with her password; the flow and the next page.
    async fn password(&self) -> (Browser, String, String) {
        let browser = Browser::new();
        let sso = self.url(&format!(
            "/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.sp.entity_id
        ));
        let (url, status, page) = browser.get(&sso).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let flow = input_value(&page, "flow").expect("flow");
        let (_, _, page) = browser.sign_in(&url, &page, "alice", PW).await;
        (browser, flow, page)
    }

    async fn act(&self, b: &Browser, flow: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        b.step(&self.idp.base, flow, fields).await
    }

    /// The sign-in page as the waiting browser sees it now.
    async fn poll(&self, b: &Browser, flow: &str) -> String {
        b.get(&self.url(&format!("/adfs/ls/login?flow={flow}")))
            .await
            .2
    }

    /// What an admin reads: carol signs in to the console (app code) and opens alice's log.
    async fn console_log(&self) -> String {
        let b = Browser::new();
        let (url, _, page) = b.get(&self.url("/admin")).await;
        let flow = input_value(&page, "flow").expect("console flow");
        b.sign_in(&url, &page, "carol", PW).await;
        let now = self.clock.unix();
        let (status, page) = self
            .act(&b, &flow, &[("action", "code"), ("code", &code(now))])
            .await;
        assert_eq!(status, StatusCode::OK, "console sign-in: {page}");
        let (_, status, page) = b.get(&self.url("/admin/signins?user=alice")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        unescape(&page)
    }

    /// The newest push's button `label`, pressed as the phone app does it: a POST to its
    /// callback URL. The status and the text the phone shows.
    async fn phone_answers(&self, label: &str) -> (StatusCode, String) {
        let push = wait_for("a push", || inbox(&self.idp).pushes.back().cloned()).await;
        let url = push
            .actions
            .iter()
            .find(|a| a.label == label)
            .unwrap_or_else(|| panic!("no {label} in {:?}", push.actions))
            .url
            .clone();
        let res = reqwest::Client::new()
            .post(url)
            .send()
            .await
            .expect("callback");
        (res.status(), res.text().await.expect("body"))
    }
}

/// The console's row for `flow`: its summary line and its steps.
fn row(log: &str, flow: &str) -> (String, String) {
    let chunk = log
        .split("<details")
        .find(|c| c.contains(&format!("<code>{flow}</code>")))
        .unwrap_or_else(|| panic!("no row for flow {flow}: {log}"));
    let summary = chunk
        .split("<summary>")
        .nth(1)
        .and_then(|s| s.split("</summary>").next())
        .expect("summary")
        .to_owned();
    let steps = chunk.split("</summary>").nth(1).expect("steps").to_owned();
    (summary, steps)
}

#[tokio::test]
async fn a_replayed_code_is_logged_as_already_used_and_the_user_told_to_wait() {
    let e = env().await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    let now = e.clock.unix();
    let (b, first, page) = e.password().await;
    assert!(page.contains("name=\"code\""), "{page}");
    let (_, page) = e
        .act(&b, &first, &[("action", "code"), ("code", &code(now))])
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");

    // The same code again, in the next sign-in a few seconds later.
    e.advance(5);
    let (b, second, _) = e.password().await;
    let (status, page) = e
        .act(&b, &second, &[("action", "code"), ("code", &code(now))])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = unescape(&page);
    assert!(
        page.contains("This code has already been used. Wait for the next code, then type it."),
        "{page}"
    );
    assert!(!page.contains("not correct"), "{page}");
    // A code that is simply wrong is still called wrong.
    let (_, page) = e
        .act(&b, &second, &[("action", "code"), ("code", "000000")])
        .await;
    assert!(page.contains("not correct"), "{page}");
    let (_, page) = e
        .act(
            &b,
            &second,
            &[("action", "code"), ("code", &code(now + 30))],
        )
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");

    let log = e.console_log().await;
    let (summary, steps) = row(&log, &second);
    assert!(summary.contains("signed in"), "{summary}");
    assert!(steps.contains("code already used"), "{steps}");
    assert_eq!(
        steps.matches("wrong code").count(),
        1,
        "only the really wrong code is a wrong code: {steps}"
    );
}

#[tokio::test]
async fn a_success_after_a_denied_push_shows_success_not_the_denial() {
    let e = env().await;
    enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (b, flow, page) = e.password().await;
    assert!(page.contains("We've sent a notification"), "{page}");
    let (status, said) = e.phone_answers("Deny").await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert!(e.poll(&b, &flow).await.contains("denied"));
    e.act(&b, &flow, &[("action", "choose"), ("method", "oath")])
        .await;
    let now = e.clock.unix();
    let (_, page) = e
        .act(&b, &flow, &[("action", "code"), ("code", &code(now))])
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");

    let log = e.console_log().await;
    let (summary, steps) = row(&log, &flow);
    assert!(
        summary.contains("<span class=\"result\">signed in</span> (password, push, oath)"),
        "{summary}"
    );
    assert!(
        !summary.contains("denied"),
        "the row's headline is the success: {summary}"
    );
    assert!(
        steps.contains("denied by user"),
        "the denial stays in the steps: {steps}"
    );
    assert!(steps.contains("1 failed step(s)"), "{steps}");
}

#[tokio::test]
async fn a_late_push_approval_is_refused_told_and_logged() {
    let e = env().await;
    enrol_all(&e.idp, "alice", Method::Push, PHONE).await;

    // 1. The wait timed out and the page moved on to the chooser; then the phone approves.
    let (b, timed_out, _) = e.password().await;
    wait_for("a push", || inbox(&e.idp).pushes.back().cloned()).await;
    e.advance(56);
    assert!(e.poll(&b, &timed_out).await.contains("receive a response"));
    let (status, said) = e.phone_answers("Approve").await;
    assert_eq!(
        (status, said.as_str()),
        (StatusCode::GONE, NO_LONGER_WAITING)
    );
    assert!(!e.poll(&b, &timed_out).await.contains("SAMLResponse"));
    // Pressing again and again: told each time, noted a bounded number of times.
    for _ in 0..4 {
        assert_eq!(e.phone_answers("Approve").await.1, NO_LONGER_WAITING);
    }

    // 2. Past the deadline before the page looked again: the approval still does not count.
    let before = inbox(&e.idp).pushes.len();
    let (b, past_deadline, _) = e.password().await;
    wait_for("the second push", || {
        (inbox(&e.idp).pushes.len() > before).then_some(())
    })
    .await;
    e.advance(56);
    let (status, said) = e.phone_answers("Approve").await;
    assert_eq!(
        (status, said.as_str()),
        (StatusCode::GONE, NO_LONGER_WAITING)
    );
    let page = e.poll(&b, &past_deadline).await;
    assert!(
        !page.contains("SAMLResponse"),
        "late approval signed in: {page}"
    );
    assert!(page.contains("receive a response"), "{page}");

    // 3. Abandoned for another option, which then signs in.
    let before = inbox(&e.idp).pushes.len();
    let (b, abandoned, _) = e.password().await;
    wait_for("the third push", || {
        (inbox(&e.idp).pushes.len() > before).then_some(())
    })
    .await;
    e.act(&b, &abandoned, &[("action", "different")]).await;
    let (status, said) = e.phone_answers("Approve").await;
    assert_eq!(
        (status, said.as_str()),
        (StatusCode::GONE, NO_LONGER_WAITING)
    );
    e.act(&b, &abandoned, &[("action", "choose"), ("method", "oath")])
        .await;
    let now = e.clock.unix();
    let (_, page) = e
        .act(&b, &abandoned, &[("action", "code"), ("code", &code(now))])
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");

    // An approval in time is still thanked.
    let before = inbox(&e.idp).pushes.len();
    let (b, in_time, _) = e.password().await;
    wait_for("the fourth push", || {
        (inbox(&e.idp).pushes.len() > before).then_some(())
    })
    .await;
    let (status, said) = e.phone_answers("Approve").await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert!(e.poll(&b, &in_time).await.contains("SAMLResponse"));

    let log = e.console_log().await;
    let late = "late approval: sign-in no longer waiting (timed out)";
    let (summary, steps) = row(&log, &timed_out);
    assert!(summary.contains("incomplete"), "{summary}");
    assert_eq!(
        steps.matches(late).count(),
        3,
        "noted at most 3 times: {steps}"
    );
    assert!(
        steps.contains("<td>ignored</td>"),
        "not an approval: {steps}"
    );
    let (summary, steps) = row(&log, &past_deadline);
    assert!(summary.contains("incomplete"), "{summary}");
    assert!(steps.contains(late), "{steps}");
    let (summary, steps) = row(&log, &abandoned);
    assert!(summary.contains("signed in"), "{summary}");
    assert!(
        steps.contains("late approval: sign-in no longer waiting (abandoned)"),
        "{steps}"
    );
    let (_, steps) = row(&log, &in_time);
    assert!(!steps.contains("late"), "{steps}");
}

#[tokio::test]
async fn a_late_call_answer_is_told_the_sign_in_no_longer_waits() {
    let e = env().await;
    enrol_all(&e.idp, "alice", Method::Call, PHONE).await;
    let (b, flow, page) = e.password().await;
    assert!(page.contains("We're calling"), "{page}");
    let call = wait_for("a call with its script", || {
        inbox(&e.idp)
            .calls
            .iter()
            .find(|c| c.to == PHONE && c.gather.is_some())
            .map(|c| c.id.clone())
    })
    .await;
    e.advance(56);
    let res = reqwest::Client::new()
        .post(e.url(&format!("/sim/api/call/{call}/digits")))
        .form(&[("digits", "#")])
        .send()
        .await
        .expect("sim");
    assert_eq!(res.status(), StatusCode::OK);
    let heard = inbox(&e.idp)
        .calls
        .iter()
        .find(|c| c.id == call)
        .map(|c| c.prompt.join(" "))
        .expect("the call");
    assert!(heard.contains(NO_LONGER_WAITING), "{heard}");
    assert!(!heard.contains("You are signed in"), "{heard}");
    assert!(!e.poll(&b, &flow).await.contains("SAMLResponse"));

    let log = e.console_log().await;
    let (summary, steps) = row(&log, &flow);
    assert!(summary.contains("incomplete"), "{summary}");
    assert!(
        steps.contains("late approval: sign-in no longer waiting (timed out)"),
        "{steps}"
    );
}

#[tokio::test]
async fn a_fraud_report_past_the_deadline_still_blocks_before_the_page_moves_on() {
    let e = env().await;
    enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    let (b, flow, _) = e.password().await;
    wait_for("a push", || inbox(&e.idp).pushes.back().cloned()).await;
    e.advance(56);
    let (status, said) = e.phone_answers("Deny and report fraud").await;
    assert_eq!(status, StatusCode::OK, "{said}");
    let page = e.poll(&b, &flow).await;
    assert!(page.contains("reported this sign-in as fraud"), "{page}");
}
