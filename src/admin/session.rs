//! Admin sessions: a random cookie token, stored only as its SHA-256, with an idle and an absolute limit and a per-session CSRF token.

use std::time::Duration;

use openssl::hash::{MessageDigest, hash};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::config::AdminConfig;
use crate::login::AuthMethod;
use crate::store::{self, Store, StoreError};

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
        !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The store holds the token's hash, so a copy of the store does not yield live cookies.
fn key(token: &str) -> String {
    let digest = hash(MessageDigest::sha256(), token.as_bytes())
        .map(|d| hex::encode(&*d))
        .unwrap_or_default();
    format!("admin:session:{digest}")
}

fn idle(config: &AdminConfig) -> Option<Duration> {
    Some(Duration::from_secs(config.idle_timeout_secs.into()))
}

/// Starts a session; returns the cookie token.
pub async fn start(
    store: &dyn Store,
    config: &AdminConfig,
    session: &AdminSession,
) -> Result<String, StoreError> {
    let token = crate::saml::random_hex(32);
    store::put_json(store, &key(&token), session, idle(config)).await?;
    Ok(token)
}

/// The live session behind `token`, its idle timer restarted; `None` when unknown, idle for
/// too long (the record expired) or past the absolute limit.
pub async fn load(
    store: &dyn Store,
    config: &AdminConfig,
    token: &str,
    now: i64,
) -> Result<Option<AdminSession>, StoreError> {
    let valid = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Ok(None);
    }
    let k = key(token);
    let Some(session) = store::get_json::<AdminSession>(store, &k).await? else {
        return Ok(None);
    };
    if now - session.started > i64::from(config.max_session_secs) {
        store.delete(&k).await?;
        return Ok(None);
    }
    store::put_json(store, &k, &session, idle(config)).await?;
    Ok(Some(session))
}

pub async fn end(store: &dyn Store, token: &str) -> Result<(), StoreError> {
    store.delete(&key(token)).await.map(|_| ())
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
