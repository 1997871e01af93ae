//! The live waiting page: no reloads, a Server-Sent Events stream (`/adfs/ls/login/wait`)
//! that tells the page when its push was answered, and the page still working without
//! JavaScript.
//!
//! Over plain HTTP: who may open the stream, its events, its bounds (one per sign-in, a few
//! per user, counted in the store) and the Continue button. In headless Chromium: a page
//! waiting on a push keeps its document and keyboard focus for longer than the old 2 s
//! refresh, then moves on by itself when the push is approved (or denied) on the simulated
//! phone. The server runs on the real clock: these waits are short, and the stream's
//! deadline is the push's.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod tessera;
    pub mod webdriver;
}

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::browser::{Browser, input_value};
use support::mfa::{enrol_all, inbox, wait_for};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::webdriver::ChromeDriver;
use tessera::login::{Flow, LoginState};
use tessera::mfa::Method;

const PASSWORD: &str = "alice-Pass-1";
const PHONE: &str = "+15550100230";
/// Longer than any answer here should take; a stream that says nothing that long is broken.
const PATIENCE: Duration = Duration::from_secs(10);

/// Tessera on the real clock with alice and bob, both with push as their default method,
/// and carol, who has no method yet.
async fn idp() -> Tessera {
    let b = TesseraBuilder::new();
    b.add_user(&[
        file_user("alice", PASSWORD),
        file_user("bob", PASSWORD),
        file_user("carol", PASSWORD),
    ]);
    let idp = b.start().await;
    for user in ["alice", "bob"] {
        enrol_all(&idp, user, Method::Push, PHONE).await;
    }
    idp
}

/// A browser-less sign-in to the portal, parked on the push waiting page.
struct Waiting {
    browser: Browser,
    flow: String,
    page: String,
}

async fn wait_on_push(idp: &Tessera, user: &str) -> Waiting {
    let browser = Browser::new();
    let (url, status, page) = browser.get(&format!("{}/portal", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flow = input_value(&page, "flow").expect("a sign-in flow");
    let (_, status, page) = browser.sign_in(&url, &page, user, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("We've sent a notification to your mobile app"),
        "{user} waits on a push: {page}"
    );
    Waiting {
        browser,
        flow,
        page,
    }
}

impl Waiting {
    fn events_url(&self, idp: &Tessera) -> String {
        format!("{}/adfs/ls/login/wait?flow={}", idp.base, self.flow)
    }

    async fn open_stream(&self, idp: &Tessera) -> reqwest::Response {
        self.browser
            .http
            .get(self.events_url(idp))
            .send()
            .await
            .expect("GET the event stream")
    }

    /// The push's button labelled `label` on the simulated phone, for this sign-in's
    /// challenge (several sign-ins of one user share the phone).
    async fn push_button(&self, idp: &Tessera, label: &str) -> String {
        let bytes = idp
            .state
            .store
            .get(&format!("flow:{}", self.flow))
            .await
            .expect("store")
            .expect("the flow is stored");
        let flow: Flow = serde_json::from_slice(&bytes).expect("flow JSON");
        let LoginState::AwaitSecondFactor(w) = flow.state else {
            panic!("the sign-in is not waiting on a second factor");
        };
        let challenge = w.challenge.expect("a challenge");
        wait_for("the push on the simulated phone", || {
            inbox(idp)
                .pushes
                .into_iter()
                .flat_map(|p| p.actions)
                .find(|a| a.label == label && a.url.contains(&challenge))
                .map(|a| a.url)
        })
        .await
    }

    /// Presses a button of the push, as the phone app does (a plain POST).
    async fn press(&self, idp: &Tessera, label: &str) {
        let url = self.push_button(idp, label).await;
        let res = reqwest::Client::new()
            .post(&url)
            .send()
            .await
            .expect("press");
        assert!(res.status().is_success(), "{label}: {}", res.status());
    }

    /// The page's own poll button, as a browser without JavaScript submits it.
    async fn press_continue(&self, idp: &Tessera) -> (String, StatusCode, String) {
        self.browser
            .post(
                &format!("{}/adfs/ls/login", idp.base),
                &[("flow", &self.flow), ("action", "poll")],
            )
            .await
    }
}

/// Reads the stream until it has sent `event: <name>`; everything read so far.
async fn read_until(res: &mut reqwest::Response, name: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + PATIENCE;
    let needle = format!("event: {name}\n");
    while !seen.contains(&needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => panic!("the stream ended before `{name}`:\n{seen}"),
            Ok(Err(e)) => panic!("the stream failed before `{name}`: {e}\n{seen}"),
            Err(_) => panic!("no `{name}` within {PATIENCE:?}:\n{seen}"),
        }
    }
    seen
}

/// Reads the stream to its end (it must end within `PATIENCE`).
async fn read_to_end(res: &mut reqwest::Response) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None) | Err(_)) => return seen,
            Err(_) => panic!("the stream did not end within {PATIENCE:?}:\n{seen}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_page_has_no_refresh_and_works_without_javascript() {
    let idp = idp().await;
    let w = wait_on_push(&idp, "alice").await;
    assert!(
        !w.page.contains("http-equiv"),
        "no meta refresh: {}",
        w.page
    );
    assert!(w.page.contains("/static/wait.js"), "{}", w.page);
    assert!(
        w.page.contains("role=\"status\""),
        "a live region: {}",
        w.page
    );
    assert!(
        w.page.contains("id=\"continue\"") && w.page.contains("id=\"different\""),
        "the buttons that work without JavaScript: {}",
        w.page
    );

    // The page may open its stream; other pages still may not connect anywhere.
    let res = w
        .browser
        .http
        .get(format!("{}/adfs/ls/login?flow={}", idp.base, w.flow));
    let res = res.send().await.expect("GET the waiting page");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let (_, _, home) = Browser::new().get(&format!("{}/", idp.base)).await;
    let res = reqwest::get(format!("{}/", idp.base)).await.expect("home");
    let other = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(!other.contains("connect-src"), "{other}\n{home}");
    let js = reqwest::get(format!("{}/static/wait.js", idp.base))
        .await
        .expect("wait.js");
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.unwrap().contains("EventSource"));

    // Pressing Continue before answering: still waiting.
    let (_, status, page) = w.press_continue(&idp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Waiting for your response"), "{page}");
    // Approved on the phone, Continue signs in.
    w.press(&idp, "Approve").await;
    let (url, status, page) = w.press_continue(&idp).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.ends_with("/portal"), "{url}");
    assert!(page.contains("My sign-in methods"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_refuses_a_foreign_or_missing_flow_cookie() {
    let idp = idp().await;
    let w = wait_on_push(&idp, "alice").await;
    let stranger = Browser::new();
    let res = stranger.http.get(w.events_url(&idp)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no cookie");
    // Another browser with a sign-in of its own: its cookie is not this flow's.
    let other = wait_on_push(&idp, "bob").await;
    let res = other
        .browser
        .http
        .get(w.events_url(&idp))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "another browser's cookie"
    );
    for bad in ["0123456789abcdef0123456789abcdef", "nonsense", ""] {
        let url = format!("{}/adfs/ls/login/wait?flow={bad}", idp.base);
        let res = w.browser.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "flow {bad:?}");
    }
    let long = "a".repeat(5000);
    let url = format!("{}/adfs/ls/login/wait?flow={long}", idp.base);
    let res = w.browser.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The owner may.
    let res = w.open_stream(&idp).await;
    assert_eq!(res.status(), StatusCode::OK);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    // Written by the connection itself (server::HandOver), with the headers every answer
    // gets from the layers, chunked, and the connection closed after it.
    let h = res.headers();
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-request-id",
    ] {
        assert!(h.contains_key(name), "{name}: {h:?}");
    }
    assert_eq!(h["transfer-encoding"], "chunked");
    assert_eq!(h["connection"], "close");
    assert!(!h.contains_key("content-length"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_says_when_the_push_is_answered_and_ends() {
    let idp = idp().await;
    let w = wait_on_push(&idp, "alice").await;
    let mut stream = w.open_stream(&idp).await;
    assert_eq!(stream.status(), StatusCode::OK);
    // Nothing to say yet: a first read waits (keep-alive comments aside).
    let quiet = tokio::time::timeout(Duration::from_secs(1), stream.chunk()).await;
    if let Ok(Ok(Some(bytes))) = &quiet {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("event: state"), "{text}");
    }
    w.press(&idp, "Approve").await;
    let seen = read_until(&mut stream, "state").await;
    assert!(seen.contains("event: state\ndata: "), "{seen}");
    read_to_end(&mut stream).await;
    // The stream wrote nothing to the flow: the page's poll moves it on, as before.
    let (url, _, page) = w.press_continue(&idp).await;
    assert!(url.ends_with("/portal"), "{url}: {page}");
}

/// The enrollment's push step waits the same way: no refresh, a Continue button, and a
/// stream that says when the test notification was approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrollment_push_step_is_live_too() {
    let idp = idp().await;
    let browser = Browser::new();
    let (url, _, page) = browser.get(&format!("{}/portal", idp.base)).await;
    let flow = input_value(&page, "flow").expect("a sign-in flow");
    let (_, _, page) = browser.sign_in(&url, &page, "carol", PASSWORD).await;
    assert!(page.contains("Set up verification"), "{page}");
    let login = format!("{}/adfs/ls/login", idp.base);
    let res = browser
        .http
        .post(&login)
        .form(&[("flow", flow.as_str()), ("action", "enroll_push")])
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(!page.contains("http-equiv"), "no meta refresh: {page}");
    assert!(
        page.contains("id=\"continue\"") && page.contains("/static/wait.js"),
        "{page}"
    );
    let topic = page
        .split("id=\"topic\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("topic shown")
        .to_owned();

    let w = Waiting {
        browser,
        flow,
        page,
    };
    let mut stream = w.open_stream(&idp).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let approve = wait_for("the test notification", || {
        inbox(&idp)
            .pushes
            .into_iter()
            .filter(|p| p.topic == topic)
            .flat_map(|p| p.actions)
            .find(|a| a.label == "Approve")
            .map(|a| a.url)
    })
    .await;
    let res = reqwest::Client::new().post(&approve).send().await.unwrap();
    assert!(res.status().is_success());
    read_until(&mut stream, "state").await;
    let (url, _, page) = w.press_continue(&idp).await;
    assert!(url.ends_with("/portal"), "{url}: {page}");
}

/// The live region's feed: the seconds left, every 20 s (not every second), on a stream
/// that stays open meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reports_progress_at_a_calm_rate() {
    let idp = idp().await;
    let w = wait_on_push(&idp, "alice").await;
    let mut stream = w.open_stream(&idp).await;
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("event: progress\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("no progress event within 30 s ({other:?}):\n{seen}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "progress came after {:?}: too chatty for a screen reader",
        started.elapsed()
    );
    let data = seen
        .split("event: progress\ndata: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap_or_default();
    let left: i64 = data
        .parse()
        .unwrap_or_else(|_| panic!("{data:?} in\n{seen}"));
    assert!((1..=40).contains(&left), "seconds left {left} of 55");
    assert!(!seen.contains("event: state"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_stream_of_the_same_sign_in_replaces_the_older() {
    let idp = idp().await;
    let w = wait_on_push(&idp, "alice").await;
    let mut first = w.open_stream(&idp).await;
    assert_eq!(first.status(), StatusCode::OK);
    let mut second = w.open_stream(&idp).await;
    assert_eq!(second.status(), StatusCode::OK);
    let seen = read_until(&mut first, "replaced").await;
    assert!(!seen.contains("event: state"), "{seen}");
    read_to_end(&mut first).await;
    w.press(&idp, "Approve").await;
    read_until(&mut second, "state").await;
}

/// One user may hold `STREAMS_PER_USER` streams, counted in the store; one more is refused
/// with 429, and that page still signs in through its Continue button. A stream that goes
/// frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_user_are_limited_and_the_refused_page_still_works() {
    let idp = idp().await;
    let limit = 5;
    let mut held = Vec::new();
    for _ in 0..limit {
        let w = wait_on_push(&idp, "alice").await;
        let res = w.open_stream(&idp).await;
        assert_eq!(res.status(), StatusCode::OK);
        held.push((w, res));
    }
    let refused = wait_on_push(&idp, "alice").await;
    let res = refused.open_stream(&idp).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(body.contains("Continue"), "{body}");
    // Another user is not affected.
    let bob = wait_on_push(&idp, "bob").await;
    assert_eq!(bob.open_stream(&idp).await.status(), StatusCode::OK);

    // The refused page works on without its stream.
    refused.press(&idp, "Approve").await;
    let (url, _, page) = refused.press_continue(&idp).await;
    assert!(url.ends_with("/portal"), "{url}: {page}");

    // A browser that leaves gives its slot back.
    let (w, stream) = held.pop().expect("a held stream");
    drop(stream);
    let again = wait_on_push(&idp, "alice").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = again.open_stream(&idp).await.status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(w);
}

// ---- in Chromium ----------------------------------------------------------------------

/// A Chromium at the push waiting page of alice's portal sign-in, and a handle on the same
/// sign-in (its flow) to press the phone's buttons with.
async fn chromium_waiting(idp: &Tessera) -> (ChromeDriver, support::webdriver::Session, Waiting) {
    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    browser.goto(&format!("{}/portal", idp.base)).await;
    browser.fill("#username", "alice").await.unwrap();
    browser.fill("#password", PASSWORD).await.unwrap();
    browser.click_when_ready("#submit").await.unwrap();
    browser
        .wait_for_text("We've sent a notification to your mobile app")
        .await
        .unwrap();
    let waiting = Waiting {
        browser: Browser::new(),
        flow: flow_of(&browser).await,
        page: String::new(),
    };
    (driver, browser, waiting)
}

async fn flow_of(browser: &support::webdriver::Session) -> String {
    let v = browser
        .execute(
            "return document.querySelector('input[name=flow]').value;",
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {}", e.error, e.message));
    v.as_str().expect("flow id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_page_waits_without_reloading_then_moves_on_by_itself() {
    let idp = idp().await;
    let (_driver, browser, w) = chromium_waiting(&idp).await;
    let set = "window.__marker = 1; document.getElementById('different').focus(); \
               return document.activeElement.id;";
    let focused = browser
        .execute(set, vec![])
        .await
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(focused, json!("different"));

    // Longer than the old 2 s refresh, several times over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let check =
        "return [window.__marker === 1, document.activeElement && document.activeElement.id];";
    let state = browser
        .execute(check, vec![])
        .await
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(
        state,
        json!([true, "different"]),
        "the document was reloaded or focus moved"
    );
    let region = "return document.querySelector('[role=status]').textContent;";
    let text = browser
        .execute(region, vec![])
        .await
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert!(
        text.as_str().unwrap_or("").contains("seconds left"),
        "{text}"
    );

    // Approved on the phone: the page moves on with nobody touching it.
    w.press(&idp, "Approve").await;
    let text = browser.wait_for_text("My sign-in methods").await.unwrap();
    assert!(!text.contains("Waiting for your response"), "{text}");
    let url = browser.current_url().await;
    assert!(url.ends_with("/portal"), "{url}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_denial_moves_the_page_to_the_chooser() {
    let idp = idp().await;
    let (_driver, browser, w) = chromium_waiting(&idp).await;
    w.press(&idp, "Deny").await;
    let text = browser
        .wait_for_text("The sign-in request was denied on your device.")
        .await
        .unwrap();
    assert!(
        text.contains("Use verification code from my mobile app"),
        "{text}"
    );
    browser.quit().await;
}
