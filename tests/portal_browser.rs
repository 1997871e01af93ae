//! The migration story in a real browser: alice has only the mobile number in the directory
//! (no registration at all, as after moving from the old MFA Server). In headless Chromium
//! she signs in to the portal with her password and a phone call (answered on the simulated
//! phone), adds an authenticator app (the secret shown as text on the page, the code computed
//! from the test's clock), makes it her default, and her next sign-in at a real SP (Apache
//! mod_auth_mellon) asks for the app's code instead of calling her.
//!
//! Every portal page on the way (sign-in, home, app setup, push device setup, phone
//! confirmation, the security questions, the home page in German, signed out) is checked with axe-core: no serious
//! or critical violation.
//! Screenshots go to docs/screenshots/portal-*.png with TESSERA_UPDATE_SCREENSHOTS=1 (the
//! README shows them), to target/screenshots otherwise.

mod support {
    pub mod axe;
    pub mod mellon;
    pub mod mfa;
    pub mod tessera;
    pub mod webdriver;
}

use std::sync::Arc;

use support::mellon::{MellonOptions, MellonSp};
use support::mfa::{inbox, wait_for};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::webdriver::{ChromeDriver, Session, Steps, screenshot_path};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at, from_base32};
use tessera::mfa::registration;
use time::OffsetDateTime;

const PASSWORD: &str = "alice-Pass-1";
/// The directory's mobile attribute, written the way people type it.
const DIRECTORY_MOBILE: &str = "+1 555 0100 30";
const RP_NAME: &str = "Mellon test SP";

/// The story's peers, dropped in reverse: the browser first.
struct Story {
    browser: Session,
    driver: ChromeDriver,
    idp: Tessera,
    mellon: MellonSp,
    clock: Arc<FixedClock>,
    axe: String,
}

impl Steps for Story {
    fn session(&self) -> &Session {
        &self.browser
    }

    /// Fails the test with what the browser showed plus the SP's and driver's logs.
    fn fail(&self, step: &str, why: String) -> ! {
        let log = self.driver.log();
        let entries: Vec<&str> = log.lines().filter(|l| l.starts_with('[')).collect();
        panic!(
            "step `{step}` failed: {why}\n--- mellon error log:\n{}\n--- chromedriver log (tail):\n{}",
            self.mellon.error_log(),
            entries[entries.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Story {
    /// The visible text of the first element matching `css`.
    async fn text_of(&self, step: &str, css: &str) -> String {
        let el = self
            .browser
            .wait_for(css)
            .await
            .unwrap_or_else(|e| self.fail(step, e));
        self.browser
            .element_text(&el)
            .await
            .unwrap_or_else(|e| self.fail(step, format!("{css}: {}: {}", e.error, e.message)))
    }

    /// axe-core on the page shown now: no serious or critical violation.
    async fn accessible(&self, step: &str) {
        match support::axe::check(&self.browser, &self.axe).await {
            Ok(minor) => {
                for m in minor {
                    eprintln!("axe (minor, {step}): {m}");
                }
            }
            Err(e) => self.fail(step, e),
        }
    }

    async fn screenshot(&self, name: &str) {
        self.browser.screenshot(&screenshot_path(name)).await;
    }
}

/// Tessera (users file: alice with a directory mobile and nothing enrolled; fixed clock),
/// mellon registered, a fresh headless Chromium. axe-core is read first: a missing install
/// fails here, before any peer starts.
async fn story() -> Story {
    let axe = support::axe::source();
    let clock = Arc::new(FixedClock::new(OffsetDateTime::now_utc()));
    let mut b = TesseraBuilder::new();
    b.clock = clock.clone();
    // Security questions on, so their portal page is checked too (alice has no answers, so
    // sign-in never offers them).
    b.config.mfa.methods.push(Method::Questions);
    let mut alice = file_user("alice", PASSWORD);
    alice.mobile = Some(DIRECTORY_MOBILE.into());
    b.add_user(&[alice]);
    // Mellon first: its metadata must be in Tessera's metadata dir before Tessera starts.
    let mellon = MellonSp::start(MellonOptions::new(b.idp_metadata()));
    b.add_rp(
        "mellon",
        &mellon.sp_metadata(),
        &format!("name = \"{RP_NAME}\"\npreset = \"netscaler\"\n"),
    );
    let idp = b.start().await;
    let reg = registration::load(idp.state.store.as_ref(), "alice")
        .await
        .expect("registration");
    assert!(
        reg.tokens.is_empty() && reg.phones.is_empty() && reg.push_devices.is_empty(),
        "alice starts with nothing enrolled: {reg:?}"
    );
    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    Story {
        browser,
        driver,
        idp,
        mellon,
        clock,
        axe,
    }
}

/// Answers the newest call on the simulated phone with `#` (what "press # to approve" means).
async fn answer_call(s: &Story) {
    let call = wait_for("the call to alice's directory mobile", || {
        inbox(&s.idp)
            .calls
            .iter()
            .rev()
            .find(|c| c.gather.is_some())
            .map(|c| c.id.clone())
    })
    .await;
    let res = reqwest::Client::new()
        .post(format!("{}/sim/api/call/{call}/digits", s.idp.base))
        .form(&[("digits", "#")])
        .send()
        .await
        .expect("simulator API");
    assert!(res.status().is_success(), "answering the call: {res:?}");
}

#[tokio::test]
async fn a_directory_phone_user_moves_to_an_authenticator_app_in_the_portal() {
    let s = story().await;

    let step = "the portal sends alice to sign in";
    s.browser.goto(&format!("{}/portal", s.idp.base)).await;
    let text = s.expect_text(step, "User name").await;
    assert!(text.contains("Password"), "{text}");
    s.accessible(step).await;
    s.screenshot("portal-01-sign-in.png").await;

    let step = "password, then a call to the directory mobile";
    s.fill(step, "#username", "alice").await;
    s.fill(step, "#password", PASSWORD).await;
    s.click(step, "#submit").await;
    s.expect_text(step, "We're calling your phone").await;
    // The sign-in's shared waiting page: it listens instead of refreshing itself, so it
    // passes axe too (no `meta-refresh`).
    s.accessible(step).await;
    answer_call(&s).await;

    let step = "the answered call lets alice into the portal";
    let text = s.expect_text(step, "My sign-in methods").await;
    assert!(text.contains("Set up an authenticator app"), "{text}");
    assert!(text.contains("+X XXXXXXX30"), "the masked phone: {text}");
    s.accessible(step).await;
    s.screenshot("portal-02-home.png").await;

    let step = "alice starts the authenticator app setup";
    s.click(step, "#add-app").await;
    s.expect_text(step, "Scan this code with your authenticator app")
        .await;
    if let Err(e) = s.browser.wait_for("#qr svg").await {
        s.fail(step, e);
    }
    let text = s.browser.text().await;
    assert!(
        !text.contains("replaces the authenticator app"),
        "alice had no app, so nothing is replaced: {text}"
    );
    s.accessible(step).await;
    s.screenshot("portal-03-app-setup.png").await;

    let step = "she types the key into her app and confirms with its code";
    let shown = s.text_of(step, "#secret").await;
    let secret = from_base32(shown.trim())
        .unwrap_or_else(|e| s.fail(step, format!("{shown:?} is not Base32: {e:?}")));
    let code = code_at(&secret, &OathParams::default(), s.clock.unix());
    s.fill(step, "#code", &code).await;
    s.click(step, "#confirm").await;
    let text = s
        .expect_text(step, "Your authenticator app is set up.")
        .await;
    assert!(text.contains("Authenticator app"), "{text}");

    let step = "she makes the app her default method";
    s.click(step, "#method option[value='oath']").await;
    s.click(step, "#save-default").await;
    s.expect_text(step, "Your default method is saved.").await;
    s.accessible(step).await;
    s.screenshot("portal-04-default.png").await;
    let reg = registration::load(s.idp.state.store.as_ref(), "alice")
        .await
        .expect("registration");
    assert_eq!(reg.default_method, Some(Method::Oath), "{reg:?}");

    // The portal's other pages, each checked with axe: a push device's setup, a phone's
    // confirmation, the security questions, the page in German, signing out.
    let step = "the push device setup page";
    s.click(step, "#add-push").await;
    s.expect_text(step, "In the ntfy app, subscribe to this topic")
        .await;
    s.accessible(step).await;
    s.click(step, "a[href='/portal']").await;
    s.expect_text(step, "My sign-in methods").await;

    let step = "the phone confirmation page";
    s.fill(step, "#number", "+15550100777").await;
    s.click(step, "#channel option[value='call']").await;
    s.click(step, "#add-phone").await;
    s.expect_text(step, "Answer and press the pound key").await;
    s.accessible(step).await;
    s.click(step, "a[href='/portal']").await;

    let step = "the security questions page";
    s.click(step, "#questions-link").await;
    s.expect_text(step, "Choose 3 different questions and answer each.")
        .await;
    s.accessible(step).await;
    s.click(step, "a[href='/portal']").await;
    s.expect_text(step, "My sign-in methods").await;

    let step = "the portal in German";
    s.click(step, "#lang-de").await;
    s.expect_text(step, "Meine Anmeldemethoden").await;
    s.accessible(step).await;
    s.click(step, "#lang-en").await;
    s.expect_text(step, "My sign-in methods").await;

    let step = "signing out of the portal";
    s.click(step, "#signout").await;
    s.expect_text(step, "You are signed out of the portal.")
        .await;
    s.accessible(step).await;

    // Next TOTP step: the code that confirmed the app is spent (replay guard).
    s.clock.advance(time::Duration::seconds(30));
    let calls_before = inbox(&s.idp).calls.len();

    let step = "her next sign-in at the SP asks for the app's code, not a call";
    s.browser.goto(&s.mellon.protected_url()).await;
    s.fill(step, "#username", "alice").await;
    s.fill(step, "#password", PASSWORD).await;
    s.click(step, "#submit").await;
    let text = s
        .expect_text(
            step,
            "Enter the verification code from your mobile app or token",
        )
        .await;
    assert!(
        text.contains(&format!("to continue to {RP_NAME}")),
        "{text}"
    );
    assert!(!text.contains("We're calling"), "a call wait page: {text}");
    if let Err(e) = s.browser.wait_for("#code").await {
        s.fail(step, e);
    }
    // The code page is shared with the portal's own sign-in: checked too.
    s.accessible(step).await;
    assert_eq!(
        inbox(&s.idp).calls.len(),
        calls_before,
        "nobody calls alice any more"
    );

    let step = "the app's code signs her in at the SP";
    let code = code_at(&secret, &OathParams::default(), s.clock.unix());
    s.fill(step, "#code", &code).await;
    s.click(step, "#verify").await;
    s.expect_text(step, "REMOTE_USER=alice@corp.example").await;
    assert_eq!(s.browser.current_url().await, s.mellon.protected_url());
    s.browser.quit().await;
}
