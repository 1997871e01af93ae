//! SSO sessions: after one sign-in, further SPs get assertions without a new password prompt.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::UserInfo;
use crate::store::{self, Store, StoreError};

use super::AuthMethod;

pub const COOKIE: &str = "tessera_sso";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SsoSession {
    pub id: String,
    pub user: UserInfo,
    pub methods: Vec<AuthMethod>,
    pub authn_instant: i64,
    pub expires: i64,
    /// SAML core §2.7.2: names this session in every assertion (and later in SLO).
    pub session_index: String,
    /// Entity IDs that received an assertion in this session (for single logout).
    pub rps: Vec<String>,
}

fn key(id: &str) -> String {
    format!("sso:{id}")
}

/// A live session, or `None` if the cookie is unknown, expired or malformed.
pub async fn load(store: &dyn Store, id: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(store::get_json::<SsoSession>(store, &key(id))
        .await?
        .filter(|s| s.expires > now))
}

pub async fn save(store: &dyn Store, s: &SsoSession, now: i64) -> Result<(), StoreError> {
    let ttl = Duration::from_secs(u64::try_from(s.expires - now).unwrap_or(1).max(1));
    store::put_json(store, &key(&s.id), s, Some(ttl)).await
}

/// Ends a session; returns it if it was live.
pub async fn end(store: &dyn Store, id: &str) -> Result<Option<SsoSession>, StoreError> {
    let s = load(store, id, i64::MIN).await?;
    if s.is_some() {
        store.delete(&key(id)).await?;
    }
    Ok(s)
}

pub fn start(
    user: UserInfo,
    methods: Vec<AuthMethod>,
    authn_instant: i64,
    now: i64,
    lifetime: i64,
) -> SsoSession {
    SsoSession {
        id: crate::saml::random_hex(16),
        user,
        methods,
        authn_instant,
        expires: now + lifetime,
        session_index: crate::saml::new_id(),
        rps: Vec::new(),
    }
}
