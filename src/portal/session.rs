//! Portal sessions: the portal's session record and the setup in progress, kept by `crate::sessions` (hashed token, idle and absolute limits, CSRF check).

use serde::{Deserialize, Serialize};

use crate::config::PortalConfig;
use crate::login::AuthMethod;
use crate::mfa::registration::{Phone, PhoneKind};
use crate::mfa::secrets::Sealed;
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};

pub const COOKIE: &str = "tessera_portal";

/// A method being added, waiting for its confirmation; kept in the session record (the
/// store), never in the browser. The app's secret is sealed to the session's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "setup", rename_all = "snake_case")]
pub enum Setup {
    /// An authenticator app: the new secret, shown as a QR code until one code confirms it.
    App { secret: Sealed },
    /// A phone number (E.164), confirmed by the code texted to it or by answering the call;
    /// once confirmed it replaces `replaces` (changing a number), if given.
    Phone {
        number: String,
        challenge: String,
        kind: PhoneKind,
        replaces: Option<String>,
    },
    /// A push device: its topic, confirmed by approving a first notification.
    Push { topic: String, challenge: String },
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSession {
    /// Public id: groups this session's actions in the sign-in log (never the cookie token).
    pub id: String,
    pub user: String,
    /// The name authenticator apps show (UPN, else the user name).
    pub account: String,
    pub display: String,
    /// Echoed in every form; a POST without it is refused (cross-site request forgery).
    pub csrf: String,
    pub started: i64,
    pub methods: Vec<AuthMethod>,
    pub client_ip: String,
    /// The directory's phones at sign-in: the user cannot remove them, but they count as
    /// methods when another one is removed.
    pub directory_phones: Vec<Phone>,
    pub setup: Option<Setup>,
}

impl std::fmt::Debug for PortalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The CSRF token is a per-session secret: whoever reads it in a log can forge forms.
        f.debug_struct("PortalSession")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("csrf", &"<redacted>")
            .field("started", &self.started)
            .field("methods", &self.methods)
            .field("client_ip", &self.client_ip)
            .field("setup", &self.setup.as_ref().map(|_| "<pending>"))
            .finish()
    }
}

impl PortalSession {
    pub fn csrf_ok(&self, presented: &str) -> bool {
        crate::sessions::csrf_ok(&self.csrf, presented)
    }

    /// The AAD a pending app secret is sealed with: it opens only in this session.
    pub fn setup_aad(&self) -> String {
        format!("portal/{}", self.id)
    }
}

const PREFIX: &str = "portal:session";

fn sessions(config: &PortalConfig) -> Sessions {
    Sessions::new(PREFIX, config.idle_timeout_secs, config.max_session_secs)
}

/// Starts a session; returns the cookie token.
pub async fn start(
    store: &dyn Store,
    config: &PortalConfig,
    session: &PortalSession,
) -> Result<String, StoreError> {
    sessions(config).start(store, session).await
}

/// Writes the session back (a setup started or finished), restarting its idle timer.
pub async fn save(
    store: &dyn Store,
    config: &PortalConfig,
    token: &str,
    session: &PortalSession,
) -> Result<(), StoreError> {
    sessions(config).save(store, token, session).await
}

/// The live session behind `token`, its idle timer restarted; `None` when unknown, idle for
/// too long or past the absolute limit.
pub async fn load(
    store: &dyn Store,
    config: &PortalConfig,
    token: &str,
    now: i64,
) -> Result<Option<PortalSession>, StoreError> {
    sessions(config)
        .load(store, token, now, |s: &PortalSession| s.started)
        .await
}

pub async fn end(store: &dyn Store, token: &str) -> Result<(), StoreError> {
    crate::sessions::end(store, PREFIX, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_csrf_token() {
        let session = PortalSession {
            id: "s1".into(),
            user: "alice".into(),
            account: "alice@example.com".into(),
            display: "Alice".into(),
            csrf: "c5rf70k3n0f64hexdigits".into(),
            started: 0,
            methods: vec![AuthMethod::Password],
            client_ip: "192.0.2.1".into(),
            directory_phones: Vec::new(),
            setup: None,
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("c5rf70k3n"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("alice"));
    }
}
