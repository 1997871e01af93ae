//! Signed-in browser sessions (the admin console's, the portal's): a random cookie token kept in the store only as its SHA-256, an idle and an absolute limit, and the per-session CSRF check.
//!
//! Each kind keeps its own record type and key prefix; this module owns what must not differ
//! between them: how a token is made, checked and hashed, and when a session is over.

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use crate::store::{self, Store, StoreError};

/// One kind of session: where its records live and how long they last.
#[derive(Debug, Clone, Copy)]
pub struct Sessions {
    /// Key prefix of the records, e.g. `admin:session`.
    prefix: &'static str,
    /// Idle limit: the record's TTL, restarted on every use.
    idle: Duration,
    /// Absolute limit in seconds from the record's start, whatever the use.
    max_secs: i64,
}

impl Sessions {
    pub fn new(prefix: &'static str, idle_secs: u32, max_secs: u32) -> Self {
        Sessions {
            prefix,
            idle: Duration::from_secs(idle_secs.into()),
            max_secs: max_secs.into(),
        }
    }

    /// The store holds the token's hash, so a copy of the store does not yield live cookies.
    fn key(&self, token: &str) -> String {
        key(self.prefix, token)
    }

    /// Stores a new session; returns the cookie token (256 random bits, hex).
    pub async fn start<T: Serialize>(
        &self,
        store: &dyn Store,
        record: &T,
    ) -> Result<String, StoreError> {
        let token = crate::saml::random_hex(32);
        store::put_json(store, &self.key(&token), record, Some(self.idle)).await?;
        Ok(token)
    }

    /// Writes the record back (its state changed), restarting the idle timer.
    pub async fn save<T: Serialize>(
        &self,
        store: &dyn Store,
        token: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        store::put_json(store, &self.key(token), record, Some(self.idle)).await
    }

    /// The live session behind `token`, its idle timer restarted; `None` when the token is
    /// malformed or unknown, the session was idle too long (its record expired) or is past
    /// the absolute limit (`started` reads the record's start).
    pub async fn load<T: Serialize + DeserializeOwned>(
        &self,
        store: &dyn Store,
        token: &str,
        now: i64,
        started: impl Fn(&T) -> i64,
    ) -> Result<Option<T>, StoreError> {
        let valid = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Ok(None);
        }
        let k = self.key(token);
        let Some(record) = store::get_json::<T>(store, &k).await? else {
            return Ok(None);
        };
        if now - started(&record) > self.max_secs {
            store.delete(&k).await?;
            return Ok(None);
        }
        store::put_json(store, &k, &record, Some(self.idle)).await?;
        Ok(Some(record))
    }
}

fn key(prefix: &str, token: &str) -> String {
    store::hashed_key(prefix, token)
}

/// Ends the session behind `token` (sign-out); unknown tokens are fine.
pub async fn end(store: &dyn Store, prefix: &str, token: &str) -> Result<(), StoreError> {
    store.delete(&key(prefix, token)).await.map(|_| ())
}

/// The form's CSRF token against the session's, in constant time; an empty one never passes.
pub fn csrf_ok(expected: &str, presented: &str) -> bool {
    !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::store::embedded::EmbeddedStore;

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(FixedClock::new(time::OffsetDateTime::UNIX_EPOCH));
        let s = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
        (dir, s)
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rec {
        started: i64,
    }

    #[tokio::test]
    async fn a_session_ends_at_its_absolute_limit_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let s = Sessions::new("t:session", 600, 3600);
        let token = s.start(&store, &Rec { started: 1000 }).await.unwrap();
        assert!(
            store
                .get(&format!("t:session:{token}"))
                .await
                .unwrap()
                .is_none()
        );
        let at = |now| s.load::<Rec>(&store, &token, now, |r| r.started);
        assert_eq!(at(4600).await.unwrap(), Some(Rec { started: 1000 }));
        assert_eq!(at(4601).await.unwrap(), None, "past the absolute limit");
        assert_eq!(at(2000).await.unwrap(), None, "and gone for good");
    }

    #[tokio::test]
    async fn malformed_tokens_are_not_looked_up_and_end_forgets() {
        let (_dir, store) = store();
        let s = Sessions::new("t:session", 600, 3600);
        let token = s.start(&store, &Rec { started: 0 }).await.unwrap();
        let store = &store;
        let load = |t: String| async move { s.load::<Rec>(store, &t, 1, |r| r.started).await };
        assert!(
            load(token.to_uppercase().replace('A', "G"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(load(format!("{token}0")).await.unwrap().is_none());
        end(store, "t:session", &token).await.unwrap();
        assert!(load(token).await.unwrap().is_none());
    }

    #[test]
    fn csrf_needs_the_same_non_empty_token() {
        assert!(csrf_ok("abc", "abc"));
        assert!(!csrf_ok("abc", "abd"));
        assert!(!csrf_ok("", ""));
    }
}
