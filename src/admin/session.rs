//! Admin sessions: the console's session record, kept by `crate::sessions` (hashed token, idle and absolute limits, CSRF check).

use serde::{Deserialize, Serialize};

use crate::config::AdminConfig;
use crate::login::AuthMethod;
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};

pub const COOKIE: &str = "tessera_admin";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSession {
    pub user: String,
    pub display: String,
    /// Echoed in every form; a POST without it is refused (cross-site request forgery).
    pub csrf: String,
    pub started: i64,
    pub methods: Vec<AuthMethod>,
    pub client_ip: String,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The CSRF token is a per-session secret: whoever reads it in a log can forge forms.
        f.debug_struct("AdminSession")
            .field("user", &self.user)
            .field("display", &self.display)
            .field("csrf", &"<redacted>")
            .field("started", &self.started)
            .field("methods", &self.methods)
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

impl AdminSession {
    pub fn csrf_ok(&self, presented: &str) -> bool {
        crate::sessions::csrf_ok(&self.csrf, presented)
    }
}

const PREFIX: &str = "admin:session";

fn sessions(config: &AdminConfig) -> Sessions {
    Sessions::new(PREFIX, config.idle_timeout_secs, config.max_session_secs)
}

/// Starts a session; returns the cookie token.
pub async fn start(
    store: &dyn Store,
    config: &AdminConfig,
    session: &AdminSession,
) -> Result<String, StoreError> {
    sessions(config).start(store, session).await
}

/// The live session behind `token`, its idle timer restarted; `None` when unknown, idle for
/// too long or past the absolute limit.
pub async fn load(
    store: &dyn Store,
    config: &AdminConfig,
    token: &str,
    now: i64,
) -> Result<Option<AdminSession>, StoreError> {
    sessions(config)
        .load(store, token, now, |s: &AdminSession| s.started)
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
        let session = AdminSession {
            user: "alice".into(),
            display: "Alice".into(),
            csrf: "c5rf70k3n0f64hexdigits".into(),
            started: 0,
            methods: vec![AuthMethod::Password],
            client_ip: "192.0.2.1".into(),
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("c5rf70k3n"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("alice"));
    }
}
