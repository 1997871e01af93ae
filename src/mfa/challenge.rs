//! Pending challenges in the Store, and the signed one-time tokens gateways call back with.

use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use subtle::ConstantTimeEq;

use super::{Challenge, ChallengeStatus};
use crate::store::{self, Store, StoreError};

pub fn key(id: &str) -> String {
    format!("chal:{id}")
}

/// What a callback may do to a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Deny,
    Fraud,
    /// Voice: the call's status callback (answered by nobody, busy, failed).
    Status,
    /// Voice: the keypad digits of a call.
    Digits,
    /// Voice: an admin's test call (no challenge behind it; it only reads a message).
    TestCall,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Fraud => "fraud",
            Action::Status => "status",
            Action::Digits => "digits",
            Action::TestCall => "test_call",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [
            Action::Approve,
            Action::Deny,
            Action::Fraud,
            Action::Status,
            Action::Digits,
            Action::TestCall,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// Signs `<challenge id>.<action>` with HMAC-SHA256 under the node-shared callback key, so
/// a URL in a push notification or a call script can only do what it says, for one
/// challenge. One-time use comes from `resolve`: only a Pending challenge changes.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl TokenSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, payload: &str) -> String {
        hmac_hex(&self.key, payload)
    }

    pub fn token(&self, challenge_id: &str, action: Action) -> String {
        let payload = format!("{challenge_id}.{}", action.as_str());
        format!("{payload}.{}", self.mac(&payload))
    }

    /// The challenge id and action a token grants, if its MAC is right.
    pub fn verify(&self, token: &str) -> Option<(String, Action)> {
        let (payload, mac) = token.rsplit_once('.')?;
        if !mac_eq(&self.mac(payload), mac) {
            return None;
        }
        let (id, action) = payload.split_once('.')?;
        Some((id.to_owned(), Action::parse(action)?))
    }
}

/// HMAC-SHA256 of `data` under `key`, hex. HMAC with any key cannot fail in openssl; should
/// it ever, the empty string returned never equals a real MAC, so checks fail closed.
pub fn hmac_hex(key: &[u8], data: &str) -> String {
    PKey::hmac(key)
        .and_then(|k| {
            let mut s = Signer::new(MessageDigest::sha256(), &k)?;
            s.update(data.as_bytes())?;
            s.sign_to_vec()
        })
        .map(hex::encode)
        .unwrap_or_default()
}

/// Constant-time equality of two MACs; an empty expected value never matches.
pub fn mac_eq(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

pub async fn load(store: &dyn Store, id: &str) -> Result<Option<Challenge>, StoreError> {
    store::get_json(store, &key(id)).await
}

pub async fn create(store: &dyn Store, c: &Challenge, ttl: Duration) -> Result<(), StoreError> {
    store::put_json(store, &key(&c.id), c, Some(ttl)).await
}

/// Moves a Pending challenge to `status`. `Ok(Some(c))` when this call changed it; `Ok(None)`
/// when it was not pending any more (already answered, expired) — a replayed callback.
pub async fn resolve(
    store: &dyn Store,
    id: &str,
    status: ChallengeStatus,
) -> Result<Option<Challenge>, StoreError> {
    let k = key(id);
    let Some(old) = store.get(&k).await? else {
        return Ok(None);
    };
    let mut c: Challenge = serde_json::from_slice(&old).map_err(|e| StoreError::Corrupt {
        key: k.clone(),
        detail: e.to_string(),
    })?;
    if c.status != ChallengeStatus::Pending {
        return Ok(None);
    }
    c.status = status;
    let new = serde_json::to_vec(&c).map_err(|e| StoreError::Corrupt {
        key: k.clone(),
        detail: e.to_string(),
    })?;
    // Keep it around long enough for the waiting page to read the outcome.
    let changed = store
        .compare_and_set(&k, Some(&old), &new, Some(Duration::from_secs(600)))
        .await?;
    if changed {
        wake(store, id).await;
    }
    Ok(changed.then_some(c))
}

/// The wake-up channel of a challenge: its waiting page (on any node) listens here.
pub fn channel(id: &str) -> String {
    key(id)
}

/// Tells the pages waiting on challenge `id` to look again. The outcome is already stored:
/// a lost wake-up only delays the page until its next look (`web::wait` re-reads the
/// challenge at every progress tick), so a failure is logged, not returned.
pub async fn wake(store: &dyn Store, id: &str) {
    if let Err(e) = store.publish(&channel(id)).await {
        tracing::warn!(challenge = id, error = %e, "could not wake the waiting page");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolving_wakes_the_waiting_page_once() {
        use crate::mfa::{Challenge, ChallengeStatus, Method};
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = std::sync::Arc::new(crate::clock::FixedClock::new(
            time::macros::datetime!(2030-01-01 0:00 UTC),
        ));
        let store = crate::store::embedded::EmbeddedStore::open(&dir.path().join("s.redb"), clock)
            .expect("open");
        let c = Challenge {
            id: "c1".into(),
            flow_id: "f".into(),
            username: "ann".into(),
            method: Method::Push,
            status: ChallengeStatus::Pending,
            created: 0,
            deadline: 60,
            number: None,
            code_hash: None,
            destination: None,
            phone: None,
            lang: crate::i18n::Lang::En,
        };
        create(&store, &c, Duration::from_secs(60)).await.unwrap();
        let mut waiting = store.subscribe(&channel("c1")).await.unwrap();
        let short = Duration::from_millis(100);
        assert!(!waiting.changed(short).await, "nothing happened yet");
        assert!(
            resolve(&store, "c1", ChallengeStatus::Approved)
                .await
                .unwrap()
                .is_some()
        );
        assert!(waiting.changed(short).await, "the answer wakes the page");
        // A replayed callback changes nothing, so it wakes nobody.
        assert!(
            resolve(&store, "c1", ChallengeStatus::Denied)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!waiting.changed(short).await);
    }

    #[test]
    fn tokens_grant_exactly_one_action_on_one_challenge() {
        let s = TokenSigner::new(b"k1");
        let t = s.token("abc", Action::Approve);
        assert_eq!(s.verify(&t), Some(("abc".into(), Action::Approve)));
        assert_eq!(s.verify(&t.replace("approve", "fraud")), None);
        assert_eq!(s.verify(&t.replace("abc", "abd")), None);
        assert_eq!(TokenSigner::new(b"k2").verify(&t), None);
        assert_eq!(s.verify("garbage"), None);
    }
}
