//! Every page people see, checked in headless Chromium with axe-core (no serious or critical
//! violation), and the keyboard paths: focus lands on the field that needs input.
//!
//! Pages: the home page, the sign-in pages (password, wrong password, code, chooser, PIN,
//! security questions), enrollment (offer, app QR code, phone, push), the enroll-link page,
//! the error pages (400, 403, 404, expired flow), the sign-out pages (confirm and done), a
//! portal page and the dev phone, with an expired push greyed out. The push wait pages are
//! in `wait_page_passes_axe` on their own (they no longer refresh themselves: the live wait
//! page listens instead, see tests/live_wait.rs).
//!
//! Each test collects every page's problems and fails once with all of them, so one run
//! shows everything that needs fixing. `every_sign_in_page_is_small_and_self_contained`
//! is plain HTTP: each page with its CSS under 30 KB, nothing loaded from another origin.

mod support {
    pub mod axe;
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
    pub mod webdriver;
}

use std::sync::Arc;

use support::browser::{Browser, input_value};
use support::mfa::{code, enrol_all, inbox, wait_for};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::webdriver::{ChromeDriver, Session, Steps};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::{Method, questions};
use time::OffsetDateTime;

const PASSWORD: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const RP_NAME: &str = "Accessible app";
const QUESTIONS: [&str; 3] = ["First pet", "Birth city", "First school"];

/// One Tessera and one browser; `problems` gathers every page's failures.
struct Tour {
    browser: Session,
    driver: ChromeDriver,
    idp: Tessera,
    sp: TestSp,
    clock: Arc<FixedClock>,
    axe: String,
    problems: Vec<String>,
}

/// Tessera with security questions, the phone simulator and `pin_mode` (calls ask for a PIN
/// set on a page first); alice has every method (default: the app's code) and her answers,
/// bob has nothing enrolled. axe-core is read first: a missing install fails here, before
/// any peer starts.
async fn tour(pin_mode: bool) -> Tour {
    let axe = support::axe::source();
    let (idp, sp, clock) = tessera(pin_mode).await;
    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    Tour {
        browser,
        driver,
        idp,
        sp,
        clock,
        axe,
        problems: Vec::new(),
    }
}

/// The Tessera of `tour`, without a browser.
async fn tessera(pin_mode: bool) -> (Tessera, TestSp, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(OffsetDateTime::now_utc()));
    let mut b = TesseraBuilder::new();
    b.clock = clock.clone();
    let mfa = &mut b.config.mfa;
    mfa.methods.push(Method::Questions);
    mfa.security_questions = QUESTIONS.map(String::from).to_vec();
    mfa.questions_required = 2;
    mfa.questions_setup = 3;
    mfa.pin_mode = pin_mode;
    b.add_user(&[file_user("alice", PASSWORD), file_user("bob", PASSWORD)]);
    let sp = TestSp::new("a11y");
    b.add_rp(
        "a11y",
        &sp.metadata(false),
        &format!("name = \"{RP_NAME}\"\n"),
    );
    let idp = b.start().await;
    enrol_all(&idp, "alice", Method::Oath, PHONE).await;
    let policy = idp.state.policy().await;
    let answers: Vec<(String, String)> = QUESTIONS
        .iter()
        .map(|q| (q.to_string(), format!("{q} answer")))
        .collect();
    questions::set_answers(
        idp.state.store.as_ref(),
        &policy.mfa,
        "alice",
        &answers,
        clock.unix(),
    )
    .await
    .expect("alice's answers");
    (idp, sp, clock)
}

/// A failed step ends the test (later steps need its page), with the problems found so far.
impl Steps for Tour {
    fn session(&self) -> &Session {
        &self.browser
    }

    fn fail(&self, step: &str, why: String) -> ! {
        let log = self.driver.log();
        let tail: Vec<&str> = log.lines().filter(|l| l.starts_with('[')).collect();
        panic!(
            "step `{step}` failed: {why}\nproblems so far:\n{}\n--- chromedriver log (tail):\n{}",
            self.problems.join("\n"),
            tail[tail.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Tour {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    /// Where an RP-initiated sign-in starts for this test's SP.
    fn sign_in_url(&self) -> String {
        self.url(&format!(
            "/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.sp.entity_id
        ))
    }

    /// axe-core on the page shown now; serious and critical findings become problems.
    async fn axe(&mut self, step: &str) {
        match support::axe::check(&self.browser, &self.axe).await {
            Ok(minor) => {
                for m in minor {
                    eprintln!("axe (minor, {step}): {m}");
                }
            }
            Err(e) => self.problems.push(format!("[{step}] {e}")),
        }
    }

    /// `axe`, and moderate or minor findings count too: for the dev phone, whose missing
    /// landmarks (moderate) the issue named.
    async fn axe_strict(&mut self, step: &str) {
        match support::axe::check(&self.browser, &self.axe).await {
            Ok(minor) => self
                .problems
                .extend(minor.into_iter().map(|m| format!("[{step}] {m}"))),
            Err(e) => self.problems.push(format!("[{step}] {e}")),
        }
    }

    /// The page's title: it must say which step this is (`wanted`).
    async fn title_says(&mut self, step: &str, wanted: &str) {
        let title = self
            .browser
            .execute("return document.title;", Vec::new())
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if title != wanted {
            self.problems
                .push(format!("[{step}] title is {title:?}, expected {wanted:?}"));
        }
    }

    /// Keyboard focus is on the element `css` names (what `autofocus` promises).
    async fn focus_on(&mut self, step: &str, css: &str) {
        let script = "return document.activeElement === document.querySelector(arguments[0]) \
                      ? 'yes' : (document.activeElement ? document.activeElement.outerHTML : 'none');";
        let got = self
            .browser
            .execute(script, vec![serde_json::json!(css)])
            .await
            .map(|v| v.as_str().unwrap_or_default().chars().take(160).collect())
            .unwrap_or_else(|e| format!("{}: {}", e.error, e.message));
        if got != "yes" {
            self.problems.push(format!(
                "[{step}] focus should be on `{css}`, it is on {got}"
            ));
        }
    }

    /// Waits until the browser has gone on from Tessera (the auto-POST to the SP).
    async fn leave_tessera(&self, step: &str) {
        for _ in 0..150 {
            if !self.browser.current_url().await.starts_with(&self.idp.base) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.fail(step, "the browser stayed on Tessera".into())
    }

    /// The focused element shows a focus ring: an outline at least 2 px wide (WCAG 2.4.7).
    async fn focus_visible(&mut self, step: &str) {
        let script = "const s = getComputedStyle(document.activeElement); \
                      return s.outlineStyle + ' ' + s.outlineWidth;";
        let got = self
            .browser
            .execute(script, Vec::new())
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let width: f64 = got
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.trim_end_matches("px").parse().ok())
            .unwrap_or(0.0);
        if got.starts_with("none") || width < 2.0 {
            self.problems
                .push(format!("[{step}] no visible focus ring: outline {got:?}"));
        }
    }

    /// Fails the test with every problem found, if any.
    async fn finish(self) {
        let problems = self.problems.clone();
        self.browser.quit().await;
        assert!(
            problems.is_empty(),
            "{} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

#[tokio::test]
async fn sign_in_pages_pass_axe_and_focus_the_field_that_needs_input() {
    let mut t = tour(true).await;

    let step = "the password page";
    t.browser.goto(&t.sign_in_url()).await;
    t.expect_text(step, "User name").await;
    t.axe(step).await;
    t.title_says(step, "Sign in").await;
    t.focus_on(step, "#username").await;
    t.focus_visible(step).await;

    let step = "the password page in German";
    t.click(step, "#lang-de").await;
    t.expect_text(step, "Benutzername").await;
    t.axe(step).await;
    t.title_says(step, "Anmelden").await;
    t.click(step, "#lang-en").await;
    t.expect_text(step, "User name").await;

    let step = "a wrong password";
    t.fill(step, "#username", "alice").await;
    t.fill(step, "#password", "not her password").await;
    t.click(step, "#submit").await;
    t.expect_text(step, "Incorrect user ID or password").await;
    t.axe(step).await;
    t.focus_on(step, "#password").await;

    let step = "the code page";
    t.fill(step, "#password", PASSWORD).await;
    t.click(step, "#submit").await;
    t.expect_text(step, "Enter the verification code").await;
    t.axe(step).await;
    t.title_says(step, "Enter your code – Sign in").await;
    t.focus_on(step, "#code").await;

    let step = "a wrong code";
    t.fill(step, "#code", "000000").await;
    t.click(step, "#verify").await;
    t.expect_text(step, "Enter the verification code").await;
    t.axe(step).await;
    t.focus_on(step, "#code").await;

    let step = "the chooser";
    t.click(step, "#different").await;
    t.expect_text(step, "Answer security questions").await;
    t.axe(step).await;
    t.title_says(step, "Choose a verification option – Sign in")
        .await;
    t.focus_on(step, ".choices button.choice").await;
    t.focus_visible(step).await;

    let step = "the security questions";
    t.click(step, "#choose-questions").await;
    t.expect_text(step, "Answer your security questions").await;
    t.axe(step).await;
    t.title_says(step, "Answer your security questions – Sign in")
        .await;
    t.focus_on(step, "#answer0").await;

    let step = "the PIN page";
    t.click(step, "#different").await;
    t.click(step, "#choose-call").await;
    t.expect_text(step, "Type the PIN again").await;
    t.axe(step).await;
    t.title_says(step, "Choose a PIN – Sign in").await;
    t.focus_on(step, "#pin").await;

    let step = "the code signs alice in";
    t.click(step, "#different").await;
    t.click(step, "#choose-oath").await;
    t.fill(step, "#code", &code(t.clock.unix())).await;
    t.click(step, "#verify").await;
    // The auto-POST goes on to the SP, which does not exist: only our SSO session matters.
    t.leave_tessera(step).await;

    let step = "the sign-out confirmation";
    t.browser.goto(&t.url("/adfs/ls/logout")).await;
    t.expect_text(step, "You will be signed out").await;
    t.axe(step).await;
    t.title_says(step, "Sign out").await;

    let step = "a sign-out form that has expired (403)";
    t.browser
        .execute(
            "document.querySelector('input[name=csrf]').value = 'stale';",
            Vec::new(),
        )
        .await
        .unwrap_or_else(|e| t.fail(step, e.message));
    t.click(step, "#sign-out").await;
    t.expect_text(step, "This sign-out form has expired").await;
    t.axe(step).await;

    t.finish().await;
}

#[tokio::test]
async fn enrollment_pages_pass_axe_and_focus_the_code_field() {
    let mut t = tour(true).await;

    let step = "the enrollment offer";
    t.browser.goto(&t.sign_in_url()).await;
    t.fill(step, "#username", "bob").await;
    t.fill(step, "#password", PASSWORD).await;
    t.click(step, "#submit").await;
    t.expect_text(step, "Choose how you want to verify your identity")
        .await;
    t.axe(step).await;
    t.title_says(step, "Set up verification").await;
    t.focus_on(step, ".choices button.choice").await;

    let step = "the authenticator app's QR code";
    t.click(step, "#enroll-app").await;
    t.expect_text(step, "Scan this code").await;
    t.axe(step).await;
    t.title_says(step, "Scan the code – Set up verification")
        .await;
    t.focus_on(step, "#code").await;

    let step = "a phone number for texts";
    t.click(step, "button[value=different]").await;
    t.fill(step, "#number", "+15550100777").await;
    t.click(step, "#enroll-phone").await;
    t.expect_text(step, "Enter the code we just texted you")
        .await;
    t.axe(step).await;
    t.title_says(step, "Enter the texted code – Set up verification")
        .await;
    t.focus_on(step, "#code").await;

    let step = "the enroll link from the help desk";
    let (token, _) = tessera::mfa::enroll_link::create(
        t.idp.state.store.as_ref(),
        &t.idp.state.secrets,
        "bob",
        72,
        t.clock.unix(),
    )
    .await
    .expect("enroll link");
    t.browser
        .goto(&t.url(&format!("/enroll/link/{token}")))
        .await;
    t.expect_text(step, "Scan this code").await;
    t.axe(step).await;
    t.title_says(step, "Scan the code – Set up verification")
        .await;
    t.focus_on(step, "#code").await;

    t.finish().await;
}

#[tokio::test]
async fn home_error_and_sign_out_pages_pass_axe() {
    let mut t = tour(true).await;

    let step = "the home page";
    t.browser.goto(&t.url("/")).await;
    t.expect_text(step, "Relying parties").await;
    t.axe(step).await;

    let step = "signed out without a session";
    t.browser.goto(&t.url("/adfs/ls/logout")).await;
    t.expect_text(step, "You have signed out.").await;
    t.axe(step).await;
    t.title_says(step, "Signed out").await;

    let step = "an expired sign-in page";
    t.browser
        .goto(&t.url("/adfs/ls/login?flow=00000000000000000000000000000000"))
        .await;
    t.expect_text(step, "This sign-in page has expired").await;
    t.axe(step).await;

    let step = "a request that cannot be read (400)";
    let bad = t.url("/adfs/ls/?SAMLRequest=%%%");
    let (_, status, _) = Browser::new().get(&bad).await;
    assert_eq!(status.as_u16(), 400, "{bad}");
    t.browser.goto(&bad).await;
    t.expect_text(step, "help desk").await;
    t.axe(step).await;

    let step = "a page that does not exist (404)";
    let (_, status, _) = Browser::new().get(&t.url("/no/such/page")).await;
    assert_eq!(status.as_u16(), 404);
    t.browser.goto(&t.url("/no/such/page")).await;
    t.expect_text(step, "help desk").await;
    t.axe(step).await;

    let step = "the portal's sign-in";
    t.browser.goto(&t.url("/portal")).await;
    t.expect_text(step, "User name").await;
    t.axe(step).await;

    t.finish().await;
}

/// A push for alice, sent by a sign-in whose wait page is left alone.
async fn push_sign_in(t: &Tour) {
    let step = "a push sign-in";
    t.browser.goto(&t.sign_in_url()).await;
    t.fill(step, "#username", "alice").await;
    t.fill(step, "#password", PASSWORD).await;
    t.click(step, "#submit").await;
    t.click(step, "#different").await;
    t.click(step, "#choose-push").await;
    t.expect_text(step, "We've sent a notification").await;
}

#[tokio::test]
async fn dev_phone_passes_axe_and_greys_out_expired_pushes() {
    let mut t = tour(false).await;
    push_sign_in(&t).await;
    let pushes = |idp: &Tessera| inbox(idp).pushes.len();
    wait_for("the push on the simulated phone", || {
        (pushes(&t.idp) == 1).then_some(())
    })
    .await;
    let enabled = "return [...document.querySelectorAll('article.push button')]\
                   .filter(b => !b.disabled).length;";

    let step = "the dev phone with a live push";
    t.browser.goto(&t.url("/dev/phone")).await;
    let text = t.expect_text(step, "Approve").await;
    assert!(!text.contains("Expired"), "the push is live: {text}");
    t.axe_strict(step).await;
    t.title_says(step, "Dev phone – Tessera simulator").await;
    let live = t.browser.execute(enabled, Vec::new()).await.ok();
    assert_eq!(live, Some(serde_json::json!(3)), "approve, deny, fraud");

    let step = "the push's deadline passes";
    t.clock.advance(time::Duration::seconds(120));
    t.browser.goto(&t.url("/dev/phone")).await;
    t.expect_text(step, "Expired").await;
    t.axe_strict(step).await;
    let live = t.browser.execute(enabled, Vec::new()).await.ok();
    assert_eq!(
        live,
        Some(serde_json::json!(0)),
        "expired: buttons disabled"
    );

    let step = "a second push, abandoned for a phone call";
    push_sign_in(&t).await;
    wait_for("the second push", || (pushes(&t.idp) == 2).then_some(())).await;
    // "Use a different verification option": the push's challenge is no longer pending.
    t.click(step, "#different").await;
    t.click(step, "#choose-call").await;
    t.expect_text(step, "We're calling your phone").await;
    wait_for("the call", || {
        inbox(&t.idp)
            .calls
            .iter()
            .find(|c| c.gather.is_some())
            .map(drop)
    })
    .await;

    let step = "a sign-in by text message";
    t.browser.goto(&t.sign_in_url()).await;
    t.fill(step, "#username", "alice").await;
    t.fill(step, "#password", PASSWORD).await;
    t.click(step, "#submit").await;
    t.click(step, "#different").await;
    t.click(step, "#choose-sms").await;
    wait_for("the text", || inbox(&t.idp).texts.front().map(drop)).await;

    let step = "the dev phone with expired pushes, a ringing call and a text";
    t.browser.goto(&t.url("/dev/phone")).await;
    let text = t.expect_text(step, "Send keys").await;
    assert_eq!(
        text.matches("Expired").count(),
        2,
        "both pushes are expired: {text}"
    );
    t.axe_strict(step).await;
    let live = t.browser.execute(enabled, Vec::new()).await.ok();
    assert_eq!(live, Some(serde_json::json!(0)), "no push can be answered");
    // For people to look at (not compared): target/screenshots/a11y-dev-phone.png.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots/a11y-dev-phone.png");
    t.browser.screenshot(&shot).await;

    t.finish().await;
}

/// The push waits (sign-in and enrollment): no `<meta http-equiv="refresh">` any more
/// (axe's `meta-refresh`), the live wait page listens instead.
#[tokio::test]
async fn wait_page_passes_axe() {
    let mut t = tour(true).await;
    push_sign_in(&t).await;
    t.axe("the push wait page").await;
    t.title_says("the push wait page", "Approve the sign-in – Sign in")
        .await;

    let step = "the push device setup";
    let fresh = t.driver.session().await;
    let old = std::mem::replace(&mut t.browser, fresh);
    old.quit().await;
    t.browser.goto(&t.sign_in_url()).await;
    t.fill(step, "#username", "bob").await;
    t.fill(step, "#password", PASSWORD).await;
    t.click(step, "#submit").await;
    t.click(step, "#enroll-push").await;
    t.expect_text(step, "subscribe to this topic").await;
    t.axe(step).await;
    t.title_says(step, "Approve the test notification – Set up verification")
        .await;

    t.finish().await;
}

/// The budget for a sign-in page with its CSS (and script, if it loads any).
const PAGE_BUDGET: usize = 30 * 1024;

/// The `src` and `href` values in `html` (both quote styles not needed: we write `"`).
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in [" src=\"", " href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// Posts `fields` with the flow id to the sign-in form; the page that follows.
async fn post_flow(b: &Browser, login: &str, flow: &str, fields: &[(&str, &str)]) -> String {
    let mut form = vec![("flow", flow)];
    form.extend_from_slice(fields);
    b.post(login, &form).await.2
}

/// Each sign-in page (and what it loads from us) under 30 KB, nothing from another origin.
#[tokio::test]
async fn every_sign_in_page_is_small_and_self_contained() {
    let (idp, sp, clock) = tessera(true).await;
    let b = Browser::new();
    let login = format!("{}/adfs/ls/login", idp.base);
    let mut pages: Vec<(&str, String)> = Vec::new();
    let start = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        idp.base, sp.entity_id
    );
    let (_, _, page) = b.get(&start).await;
    let flow = input_value(&page, "flow").expect("a flow");
    pages.push(("password", page));
    let act = |fields: Vec<(&'static str, String)>| {
        let (b, login, flow) = (&b, &login, flow.clone());
        async move {
            let mut form = vec![("flow", flow)];
            form.extend(fields);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post(login, &form).await.2
        }
    };
    let user = |p: &str| vec![("username", "alice".into()), ("password", p.into())];
    pages.push(("wrong password", act(user("nope")).await));
    pages.push(("code", act(user(PASSWORD)).await));
    pages.push(("chooser", act(vec![("action", "different".into())]).await));
    let choose = |m: &str| vec![("action", "choose".into()), ("method", m.into())];
    pages.push(("questions", act(choose("questions")).await));
    act(vec![("action", "different".into())]).await;
    pages.push(("PIN", act(choose("call")).await));
    act(vec![("action", "different".into())]).await;
    pages.push(("push wait", act(choose("push")).await));
    act(vec![("action", "different".into())]).await;
    act(choose("oath")).await;
    let code = vec![("action", "code".into()), ("code", code(clock.unix()))];
    pages.push(("auto-POST to the application", act(code).await));
    pages.push((
        "sign-out",
        b.get(&format!("{}/adfs/ls/logout", idp.base)).await.2,
    ));
    // Bob, with nothing enrolled: the setup pages (the QR code is the heaviest part).
    let bob = Browser::new();
    let (_, _, page) = bob.get(&start).await;
    let bob_flow = input_value(&page, "flow").expect("bob's flow");
    let bob_pw = [("username", "bob"), ("password", PASSWORD)];
    pages.push((
        "setup offer",
        post_flow(&bob, &login, &bob_flow, &bob_pw).await,
    ));
    let app = [("action", "enroll_app")];
    pages.push(("setup app", post_flow(&bob, &login, &bob_flow, &app).await));
    let (token, _) = tessera::mfa::enroll_link::create(
        idp.state.store.as_ref(),
        &idp.state.secrets,
        "bob",
        72,
        clock.unix(),
    )
    .await
    .expect("enroll link");
    let link = format!("{}/enroll/link/{token}", idp.base);
    pages.push(("enroll link", b.get(&link).await.2));
    let expired = format!("{login}?flow=00000000000000000000000000000000");
    pages.push(("expired sign-in", b.get(&expired).await.2));

    // Each page is the one named (not an error page in its place).
    let shows = [
        ("password", "id=\"password\""),
        ("wrong password", "Incorrect user ID or password"),
        ("code", "id=\"code\""),
        ("chooser", "choose-oath"),
        ("questions", "id=\"answer0\""),
        ("PIN", "id=\"pin\""),
        ("push wait", "<title>Approve the sign-in – Sign in</title>"),
        ("auto-POST to the application", "SAMLResponse"),
        ("sign-out", "You will be signed out"),
        ("setup offer", "id=\"enroll-app\""),
        ("setup app", "id=\"secret\""),
        ("enroll link", "id=\"secret\""),
        ("expired sign-in", "This sign-in page has expired"),
    ];
    let mut problems = Vec::new();
    for ((name, html), (named, needle)) in pages.iter().zip(shows) {
        assert_eq!(*name, named);
        assert!(html.contains(needle), "{name}: no {needle:?} in {html}");
        let mut total = html.len();
        for r in references(html) {
            let ours = r.starts_with('/') && !r.starts_with("//") || r.starts_with(&idp.base);
            let foreign = r.starts_with("//") || r.contains("://") && !ours;
            if foreign {
                problems.push(format!("{name}: loads {r} from another origin"));
            }
            if ours && (r.starts_with("/static/") || r.contains("/static/")) {
                let url = if r.starts_with('/') {
                    format!("{}{r}", idp.base)
                } else {
                    r
                };
                total += b.get(&url).await.2.len();
            }
        }
        eprintln!("{name}: {total} bytes with what it loads");
        if total > PAGE_BUDGET {
            problems.push(format!("{name}: {total} bytes with its CSS and script"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
