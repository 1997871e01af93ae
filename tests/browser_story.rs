//! The product's core story in a real browser: headless Chromium (driven over W3C WebDriver
//! by chromedriver) visits a page protected by a real SP (Apache mod_auth_mellon), signs in
//! at Tessera, lets the push notification go unanswered, uses "a different verification
//! option" (the authenticator app's code) and lands on the protected page.
//!
//! Each page is saved as a screenshot (docs/screenshots/ with TESSERA_UPDATE_SCREENSHOTS=1;
//! the README shows them).
//! Time is a `FixedClock`: "the push was not answered" is the clock moving past the 55 s
//! deadline, not a 55 s sleep.

mod support {
    pub mod mellon;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
    pub mod webdriver;
}

use std::sync::Arc;

use support::mellon::{MellonOptions, MellonSp};
use support::mfa::{self, code, enrol_all, inbox};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::webdriver::{ChromeDriver, Session, Steps, screenshot_path};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::{Method, mask_phone};
use time::OffsetDateTime;

const PASSWORD: &str = "alice-Pass-1";
const PHONE: &str = "+15550100230";
const RP_NAME: &str = "Mellon test SP";

/// Everything one story needs, dropped in reverse: the browser first, then the peers.
struct Story {
    browser: Session,
    driver: ChromeDriver,
    idp: Tessera,
    mellon: MellonSp,
    clock: Arc<FixedClock>,
    topic: String,
}

/// Tessera (users file with alice, fixed clock) with mellon registered under the NetScaler
/// preset; alice enrolled with push as her default, a phone and an authenticator app; a
/// fresh headless Chromium.
async fn story() -> Story {
    let clock = Arc::new(FixedClock::new(OffsetDateTime::now_utc()));
    let mut b = TesseraBuilder::new();
    b.clock = clock.clone();
    b.add_user(&[file_user("alice", PASSWORD)]);
    // Mellon first: its metadata must be in Tessera's metadata dir before Tessera starts.
    let mellon = MellonSp::start(MellonOptions::new(b.idp_metadata()));
    b.add_rp(
        "mellon",
        &mellon.sp_metadata(),
        &format!("name = \"{RP_NAME}\"\npreset = \"netscaler\"\n"),
    );
    let idp = b.start().await;
    let topic = enrol_all(&idp, "alice", Method::Push, PHONE).await;
    let driver = ChromeDriver::start();
    let browser = driver.session().await;
    Story {
        browser,
        driver,
        idp,
        mellon,
        clock,
        topic,
    }
}

impl Steps for Story {
    fn session(&self) -> &Session {
        &self.browser
    }

    /// Fails the test with what the browser showed plus the SP's side of the story.
    fn fail(&self, step: &str, why: String) -> ! {
        panic!(
            "step `{step}` failed: {why}\n--- mellon error log:\n{}\n--- chromedriver log (tail):\n{}",
            self.mellon.error_log(),
            tail(&self.driver.log(), 30)
        )
    }
}

impl Story {
    async fn expect_element(&self, step: &str, css: &str) {
        if let Err(e) = self.browser.wait_for(css).await {
            self.fail(step, e)
        }
    }

    /// Asserts that the page's visible text contains each of `needles`.
    async fn assert_shows(&self, step: &str, text: &str, needles: &[&str]) {
        for n in needles {
            if !text.contains(n) {
                let why = format!(
                    "the page does not show {n:?}\n--- URL: {}\n--- visible text:\n{text}\n--- page source:\n{}",
                    self.browser.current_url().await,
                    self.browser.source().await
                );
                self.fail(step, why);
            }
        }
    }

    async fn screenshot(&self, name: &str) {
        self.browser.screenshot(&screenshot_path(name)).await;
    }

    /// SP's protected page → Tessera's login page → password → the push waiting page.
    async fn sign_in_to_push_wait(&self) {
        self.browser.goto(&self.mellon.protected_url()).await;
        let step = "mellon sends the browser to Tessera's sign-in page";
        self.expect_element(step, "#username").await;
        let url = self.browser.current_url().await;
        if !url.starts_with(&self.idp.base) {
            self.fail(
                step,
                format!("the sign-in page is at {url}, not at {}", self.idp.base),
            );
        }
        let text = self.expect_text(step, "Sign in").await;
        self.assert_shows(
            step,
            &text,
            &[
                &format!("to continue to {RP_NAME}"),
                "User name",
                "Password",
            ],
        )
        .await;
        self.screenshot("01-login.png").await;

        // The language links in the footer switch the page (and later pages) to German.
        let step = "the footer's Deutsch link serves the sign-in page in German";
        self.click(step, "#lang-de").await;
        let text = self.expect_text(step, "Anmelden").await;
        self.assert_shows(step, &text, &["Benutzername", "Kennwort", "English"])
            .await;
        self.screenshot("07-login-german.png").await;
        let step = "the English link switches back";
        self.click(step, "#lang-en").await;
        self.expect_text(step, "User name").await;

        let step = "alice signs in with her password and is asked to approve a push";
        self.fill(step, "#username", "alice").await;
        self.fill(step, "#password", PASSWORD).await;
        self.click(step, "#submit").await;
        let text = self
            .expect_text(step, "We've sent a notification to your mobile app")
            .await;
        self.assert_shows(
            step,
            &text,
            &[
                "Verify your identity",
                "55 seconds left",
                "Use a different verification option",
            ],
        )
        .await;
        let push = mfa::wait_for("the push on alice's simulated phone", || {
            inbox(&self.idp)
                .pushes
                .into_iter()
                .find(|p| p.topic == self.topic)
        })
        .await;
        assert!(
            push.message.contains("Sign-in request for alice"),
            "the phone shows the wrong push: {push:?}"
        );
        assert!(
            push.actions.iter().any(|a| a.label == "Approve"),
            "the push has no Approve button: {push:?}"
        );
    }
}

/// The last `lines` log entries (their first lines; the JSON bodies that follow are noise).
fn tail(log: &str, lines: usize) -> String {
    let entries: Vec<&str> = log.lines().filter(|l| l.starts_with('[')).collect();
    entries[entries.len().saturating_sub(lines)..].join("\n")
}

/// The story the README shows: push unanswered → chooser → app code → signed in at the SP.
#[tokio::test]
async fn push_unanswered_then_app_code_signs_in_to_mellon_in_chromium() {
    let s = story().await;

    // 1–2: protected page → sign-in → "We've sent a notification…" (and the phone got it).
    s.sign_in_to_push_wait().await;
    s.screenshot("02-push-waiting.png").await;

    // 3: nobody answers: the deadline passes; the page learns it and offers the chooser.
    let step = "the push goes unanswered and the page offers other options";
    s.clock.advance(time::Duration::seconds(56));
    s.expect_element(step, "#choose-oath").await;
    let masked = mask_phone(PHONE);
    let text = s
        .expect_text(step, "Use a different verification option")
        .await;
    s.assert_shows(
        step,
        &text,
        &[
            "We didn't receive a response. Choose another verification option.",
            "Use verification code from my mobile app",
            "Send notification to my mobile app",
            &format!("Call me at {masked}"),
            &format!("Text me at {masked}"),
        ],
    )
    .await;
    assert!(
        !text.contains(&PHONE[2..]),
        "the full phone number is shown:\n{text}"
    );
    s.screenshot("03-choose-method.png").await;

    // 4: the authenticator app's code instead.
    let step = "alice chooses the code from her mobile app";
    s.click(step, "#choose-oath").await;
    s.expect_element(step, "#code").await;
    let text = s
        .expect_text(
            step,
            "Enter the verification code from your mobile app or token",
        )
        .await;
    s.assert_shows(step, &text, &["Verify your identity"]).await;
    s.expect_element(step, "#verify").await;
    s.screenshot("04-enter-code.png").await;

    // 5: the right code → signed Response auto-POSTed to mellon → the protected page.
    let step = "alice types the code and lands on the protected page";
    s.fill(step, "#code", &code(s.clock.unix())).await;
    s.click(step, "#verify").await;
    let text = s.expect_text(step, "REMOTE_USER=alice@corp.example").await;
    s.assert_shows(
        step,
        &text,
        &["MELLON_mail=alice@corp.example", "Gateway Users"],
    )
    .await;
    let url = s.browser.current_url().await;
    assert_eq!(
        url,
        s.mellon.protected_url(),
        "the browser ended up elsewhere"
    );
    s.screenshot("05-signed-in.png").await;

    s.browser.quit().await;
}

/// The developer's view: /dev/phone shows the pending push; its Approve button lets the
/// waiting sign-in through to the SP.
#[tokio::test]
async fn dev_phone_shows_the_pending_push_and_approving_it_signs_in() {
    let s = story().await;
    s.sign_in_to_push_wait().await;

    // The waiting page no longer reloads (it listens, see tests/live_wait.rs); its address
    // is the sign-in page with its flow, to come back to after the dev phone.
    let step = "the waiting page names its sign-in";
    let flow = match s
        .browser
        .execute(
            "return document.querySelector('input[name=flow]').value;",
            vec![],
        )
        .await
    {
        Ok(v) => v.as_str().unwrap_or_default().to_owned(),
        Err(e) => s.fail(step, format!("{}: {}", e.error, e.message)),
    };
    let wait_url = format!("{}/adfs/ls/login?flow={flow}", s.idp.base);

    let step = "the dev phone shows alice's pending push";
    s.browser
        .goto(&format!("{}/dev/phone?refresh=0", s.idp.base))
        .await;
    let text = s.expect_text(step, "Dev phone").await;
    s.assert_shows(
        step,
        &text,
        &[
            &s.topic,
            "Sign-in request for alice. Approve if it was you.",
            "Approve",
            "Deny",
            "Deny and report fraud",
        ],
    )
    .await;
    s.screenshot("06-dev-phone.png").await;

    let step = "approving on the dev phone lets the waiting sign-in through";
    let approve = "article.push .actions form:first-child button";
    let label = match s.browser.wait_for(approve).await {
        Ok(el) => s.browser.element_text(&el).await.unwrap_or_default(),
        Err(e) => s.fail(step, e),
    };
    assert_eq!(
        label, "Approve",
        "the first button on the push is not Approve"
    );
    s.click(step, approve).await;
    s.expect_element(step, "article.push .outcome").await;
    s.browser.goto(&wait_url).await;
    s.expect_text(step, "REMOTE_USER=alice@corp.example").await;
    s.browser.quit().await;
}

fn must<T>(r: Result<T, String>, step: &str) -> T {
    r.unwrap_or_else(|e| panic!("step `{step}` failed: {e}"))
}

/// The admin console in a real browser: sign-in with the authenticator code (the console
/// always asks for it), the overview, the adapter settings page, one setting changed through
/// the form and the change in the log.
#[tokio::test]
async fn admin_changes_a_setting_in_chromium() {
    let clock = Arc::new(FixedClock::new(OffsetDateTime::now_utc()));
    let mut b = TesseraBuilder::new();
    b.clock = clock.clone();
    let mut admin = file_user("alice", PASSWORD);
    admin.groups.push("Tessera Admins".into());
    admin.display_name = Some("Alice Admin".into());
    b.add_user(&[admin]);
    b.add_rp(
        "gateway",
        &support::sp::TestSp::new("gateway").metadata(false),
        "name = \"NetScaler Gateway\"\npreset = \"netscaler\"\n",
    );
    let idp = b.start().await;
    enrol_all(&idp, "alice", Method::Oath, PHONE).await;
    let driver = ChromeDriver::start();
    let browser = driver.session().await;

    let step = "the console sends the browser to sign in";
    browser.goto(&format!("{}/admin", idp.base)).await;
    let text = must(browser.wait_for_text("Tessera admin console").await, step);
    assert!(text.contains("User name"), "{text}");
    must(browser.fill("#username", "alice").await, step);
    must(browser.fill("#password", PASSWORD).await, step);
    must(browser.click_when_ready("#submit").await, step);

    let step = "the second factor is asked for, then the overview shows";
    must(browser.fill("#code", &code(clock.unix())).await, step);
    must(browser.click_when_ready("#verify").await, step);
    let text = must(browser.wait_for_text("Recent admin activity").await, step);
    assert!(text.contains("Alice Admin"), "{text}");
    assert!(text.contains("console.sign_in"), "{text}");
    s_shot(&browser, "10-admin-overview.png").await;

    let step = "the adapter settings page";
    must(
        browser.click_when_ready("a[href='/admin/settings']").await,
        step,
    );
    let text = must(browser.wait_for_text("Push and call timeout").await, step);
    for needle in [
        "Methods offered",
        "Company default method",
        "Trusted networks",
        "Delivery gateways",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    s_shot(&browser, "11-admin-settings.png").await;

    let step = "changing the push timeout through the form";
    must(browser.fill("#f-timeout_secs", "30").await, step);
    must(browser.click_when_ready("#save").await, step);
    let text = must(browser.wait_for_text("Saved 1 change").await, step);
    assert!(text.contains("Changed here"), "{text}");
    assert_eq!(idp.state.policy().await.mfa.timeout_secs, 30);
    browser.goto(&format!("{}/admin", idp.base)).await;
    let text = must(browser.wait_for_text("settings.update").await, step);
    assert!(text.contains("timeout_secs"), "{text}");
    s_shot(&browser, "12-admin-change-log.png").await;

    let step = "the sign-in log lists alice's console sign-in";
    must(
        browser.click_when_ready("a[href='/admin/signins']").await,
        step,
    );
    let text = must(browser.wait_for_text("1 attempt.").await, step);
    assert!(
        text.contains("admin console") && text.contains("signed in"),
        "{text}"
    );
    must(
        browser.click_when_ready("details.attempt summary").await,
        step,
    );
    must(browser.wait_for_text("await_password").await, step);
    s_shot(&browser, "13-admin-signins.png").await;

    let step = "the help desk finds alice and sees her second factor";
    must(
        browser.click_when_ready("a[href='/admin/users']").await,
        step,
    );
    must(browser.fill("#q", "ali").await, step);
    must(browser.click_when_ready("#find").await, step);
    must(
        browser
            .click_when_ready("a[href='/admin/users/alice']")
            .await,
        step,
    );
    let text = must(browser.wait_for_text("Enrolled methods").await, step);
    for needle in [
        "authenticator app",
        "push device",
        "usable",
        "One-time bypass",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    s_shot(&browser, "14-admin-user.png").await;

    let step = "the relying parties page gives the NetScaler commands";
    must(browser.click_when_ready("a[href='/admin/rps']").await, step);
    let text = must(browser.wait_for_text("NetScaler commands").await, step);
    assert!(text.contains("add authentication samlAction"), "{text}");
    s_shot(&browser, "15-admin-relying-parties.png").await;

    let step = "an SP's metadata is pasted, previewed and approved";
    let mut sp = support::sp::TestSp::new("portal");
    sp.acs = "https://portal.sp.test/cgi/samlauth".into();
    must(browser.fill("#metadata", &sp.metadata(false)).await, step);
    must(browser.click_when_ready("#import").await, step);
    let text = must(browser.wait_for_text("Approve and trust").await, step);
    assert!(
        text.contains("https://portal.sp.test/cgi/samlauth"),
        "{text}"
    );
    s_shot(&browser, "16-admin-import-preview.png").await;
    must(browser.click_when_ready("#approve").await, step);
    let text = must(browser.wait_for_text("Done: rp.add").await, step);
    assert!(text.contains("https://portal.sp.test"), "{text}");

    let step = "the next token-signing certificate is generated, with the NetScaler steps";
    must(
        browser.click_when_ready("a[href='/admin/certs']").await,
        step,
    );
    must(browser.click_when_ready("#generate").await, step);
    let text = must(
        browser.wait_for_text("Download the next certificate").await,
        step,
    );
    assert!(
        text.contains("These NetScalers pin the current certificate"),
        "{text}"
    );
    s_shot(&browser, "17-admin-certificates.png").await;
    browser.quit().await;
}

async fn s_shot(browser: &Session, name: &str) {
    browser.screenshot(&screenshot_path(name)).await;
}
