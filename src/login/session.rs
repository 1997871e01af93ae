//! SSO sessions: after one sign-in, further SPs get assertions without a new password prompt.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::UserInfo;
use crate::rp::Protocol;
use crate::store::{self, Store, StoreError};

use super::AuthMethod;

pub const COOKIE: &str = "tessera_sso";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SsoSession {
    /// The cookie value. Never stored: the record lives under its hash (see `key`), and a
    /// loaded session gets it back from the cookie that named it.
    #[serde(skip)]
    pub id: String,
    pub user: UserInfo,
    pub methods: Vec<AuthMethod>,
    pub authn_instant: i64,
    pub expires: i64,
    /// SAML core §2.7.2: names this session in every assertion (and later in SLO).
    pub session_index: String,
    /// The relying parties that received a token in this session, in order, with the
    /// NameID each was given: single logout (SAML core §3.7) names the user to each RP as
    /// that RP knows them, and checks an inbound LogoutRequest against it.
    #[serde(default)]
    pub participants: Vec<Participant>,
}

/// One relying party of an SSO session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Participant {
    /// Entity ID (SAML) or realm (WS-Federation).
    pub rp: String,
    pub protocol: Protocol,
    /// The NameID value and format in the token it was given.
    pub name_id: String,
    pub name_id_format: String,
}

impl SsoSession {
    /// The participant record for `rp`, if it received a token in this session.
    pub fn participant(&self, rp: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.rp == rp)
    }

    /// Records (or updates) what `p.rp` was given; the first sign-in keeps its place in order.
    pub fn remember(&mut self, p: Participant) {
        match self.participants.iter_mut().find(|q| q.rp == p.rp) {
            Some(q) => *q = p,
            None => self.participants.push(p),
        }
    }
}

/// The store holds the cookie's SHA-256, so a copy of the store (a Redis replica, a backup
/// of the redb file) does not yield cookies that sign anyone in.
fn key(id: &str) -> String {
    store::hashed_key("sso", id)
}

/// A live session, or `None` if the cookie is unknown, expired or malformed.
pub async fn load(store: &dyn Store, id: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(store::get_json::<SsoSession>(store, &key(id))
        .await?
        .filter(|s| s.expires > now)
        .map(|s| SsoSession {
            id: id.to_owned(),
            ..s
        }))
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
        participants: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn the_store_never_holds_the_cookie_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            EmbeddedStore::open(&dir.path().join("s.redb"), Arc::new(SystemClock)).expect("store");
        let user = UserInfo {
            username: "alice".into(),
            ..Default::default()
        };
        let s = start(user, vec![AuthMethod::Password], 1_000, 1_000, 3_600);
        save(&store, &s, 1_000).await.expect("save");

        let keys = store.keys("sso:").await.expect("keys");
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].contains(&s.id), "key {} holds the cookie", keys[0]);
        let record = store.get(&keys[0]).await.expect("get").expect("record");
        let record = String::from_utf8_lossy(&record);
        assert!(!record.contains(&s.id), "record holds the cookie: {record}");

        let loaded = load(&store, &s.id, 1_001).await.expect("load");
        assert_eq!(loaded.as_ref(), Some(&s), "the cookie finds its session");
        assert_eq!(end(&store, &s.id).await.expect("end"), Some(s.clone()));
        assert_eq!(load(&store, &s.id, 1_001).await.expect("load"), None);
        assert!(store.keys("sso:").await.expect("keys").is_empty());
    }
}
