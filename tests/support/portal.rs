//! The portal tests' environment: Tessera with alice, bob (both with an authenticator app and
//! a phone) and dave (nothing), a test SP, a fixed clock; a portal user signed in through the
//! login flow, and the portal's forms posted with the session's CSRF token.

#![allow(dead_code)]

use std::sync::Arc;

use reqwest::StatusCode;
use tessera::clock::{Clock, FixedClock};
use tessera::config::Config;
use tessera::mfa::Method;
use tessera::mfa::registration::{self, Registration};

use super::browser::{Browser, input_value, unescape};
use super::mfa::{code, enrol_all};
use super::sp::TestSp;
use super::tessera::{Tessera, TesseraBuilder, file_user};

pub const PW: &str = "Corr3ct horse!";
pub const PHONE: &str = "+15550100230";

pub struct Env {
    pub idp: Tessera,
    pub clock: Arc<FixedClock>,
    pub sp: TestSp,
}

pub async fn env(tweak: impl FnOnce(&mut Config)) -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    tweak(&mut b.config);
    b.add_user(&[
        file_user("alice", PW),
        file_user("bob", PW),
        file_user("dave", PW),
    ]);
    let sp = TestSp::new("portal");
    b.add_rp("portal", &sp.metadata(false), "");
    let idp = b.start().await;
    for u in ["alice", "bob"] {
        enrol_all(&idp, u, Method::Oath, PHONE).await;
    }
    Env { idp, clock, sp }
}

/// A signed-in portal user: the browser with the session cookie, and the page's CSRF token.
pub struct User {
    pub browser: Browser,
    pub csrf: String,
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    pub async fn reg(&self, user: &str) -> Registration {
        registration::load(self.idp.state.store.as_ref(), user)
            .await
            .expect("registration")
    }

    /// /portal → password → (the page after it), in a fresh browser. The clock moves on one
    /// TOTP step first, so each sign-in's code is new (codes are accepted once).
    pub async fn password(&self, user: &str) -> (Browser, String, String) {
        self.clock.advance(time::Duration::seconds(30));
        let browser = Browser::new();
        let (url, status, page) = browser.get(&self.url("/portal")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Tessera portal"), "{page}");
        let flow = input_value(&page, "flow").expect("a sign-in flow");
        let (_, _, page) = browser.sign_in(&url, &page, user, PW).await;
        (browser, flow, page)
    }

    /// The whole portal sign-in with the authenticator code; the user and the portal page.
    pub async fn sign_in(&self, user: &str) -> (User, String) {
        let (browser, flow, page) = self.password(user).await;
        assert!(page.contains("name=\"code\""), "asks for the code: {page}");
        let now = self.clock.unix();
        let (url, status, page) = browser
            .post(
                &self.url("/adfs/ls/login"),
                &[("flow", &flow), ("action", "code"), ("code", &code(now))],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(url.ends_with("/portal"), "{url}");
        assert!(page.contains("My sign-in methods"), "{page}");
        let csrf = input_value(&page, "csrf").expect("csrf");
        (User { browser, csrf }, page)
    }

    /// POSTs a portal form with the session's CSRF token; (final URL, status, page).
    pub async fn post(
        &self,
        u: &User,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (String, StatusCode, String) {
        let mut form = vec![("csrf", u.csrf.as_str())];
        form.extend_from_slice(fields);
        u.browser.post(&self.url(path), &form).await
    }

    /// The sign-in log's portal events for `user`, as JSON lines.
    pub async fn log(&self) -> String {
        let entries = self
            .idp
            .state
            .store
            .read_log("signin", 0, i64::MAX, 10_000)
            .await
            .expect("log");
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The text between `id="<id>">` and the next `<`.
pub fn element_text(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|r| r.split('<').next())
        .map(unescape)
        .unwrap_or_else(|| panic!("no #{id} in {page}"))
}
