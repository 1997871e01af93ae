//! The `Store` edge: byte records with TTL, compare-and-set and counters, plus typed helpers.
//!
//! Two backends implement it: `embedded` (redb file, single node) and `redis` (a farm).
//! Keys are namespaced strings such as `flow:<id>`; values are opaque bytes (JSON via the
//! typed helpers below). A TTL of `None` means the record lives until deleted.

pub mod embedded;
pub mod notify;
pub mod redis;
pub mod watch;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend unavailable: {0}")]
    Backend(String),
    /// Another process holds the embedded store open (redb locks the file); the CLI then
    /// hands its operation to the running server instead.
    #[error("store in use by another process: {0}")]
    InUse(String),
    #[error("stored record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One entry of an append-only log (`Store::append`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at_ms: i64,
    pub value: Vec<u8>,
}

/// One write of a batch (`Store::write_batch`): the arguments of the single call it stands for.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    /// `Store::put`.
    Put {
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    },
    /// `Store::delete`.
    Delete { key: &'a str },
    /// `Store::append`.
    Append {
        log: &'a str,
        at_ms: i64,
        value: &'a [u8],
        retention: Duration,
    },
    /// `Store::compare_and_set`.
    CompareAndSet {
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    },
}

/// A write a sign-in step leaves to its handler, which sends it in the batch that saves the
/// step (`Store::write_batch`): a counter to clear or a marker to set once the step has
/// succeeded, nothing whose answer the step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    Put {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
}

impl Deferred {
    pub fn as_write(&self) -> Write<'_> {
        match self {
            Deferred::Put { key, value, ttl } => Write::Put {
                key,
                value,
                ttl: *ttl,
            },
            Deferred::Delete { key } => Write::Delete { key },
        }
    }
}

/// The writes one request's steps deferred, in the order they were decided.
#[derive(Debug, Default)]
pub struct Later(std::sync::Mutex<Vec<Deferred>>);

impl Later {
    pub fn push(&self, write: Deferred) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(write);
    }

    pub fn take(&self) -> Vec<Deferred> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The record's bytes, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Writes the record unconditionally, replacing any previous value and TTL.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;
    /// Writes only when no live record exists; `true` when written. Replay caches use this.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool>;
    /// Replaces the record only when its current bytes equal `expected` (`None` = absent or
    /// expired); `true` when replaced. Two nodes racing on one flow: exactly one wins.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool>;
    /// Removes the record; `true` when a live record was removed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Atomically adds `by` to an integer counter (absent = 0) and returns the new value.
    /// `ttl` is applied only when the counter is created, so a window does not slide.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64>;
    /// Live keys starting with `prefix`, sorted. For admin listings, not hot paths.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>>;
    /// Appends `value` to the append-only log `log`, stamped `at_ms` (Unix ms); entries stamped
    /// more than `retention` before it are dropped along the way. Audit trails live in logs:
    /// reading a time window stays cheap however many entries a year holds.
    async fn append(&self, log: &str, at_ms: i64, value: &[u8], retention: Duration) -> Result<()>;
    /// Entries of `log` stamped within `from_ms..=to_ms`, newest first, at most `limit`.
    /// Entries with the same stamp keep their order of arrival.
    async fn read_log(
        &self,
        log: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<LogEntry>>;
    /// Applies `writes` in order, each exactly as its single call would (not as a
    /// transaction: a compare-and-set that loses does not undo the writes before it), and
    /// returns each one's answer as that call gives it: `Put` and `Append` `true`, `Delete`
    /// whether a live record went, `CompareAndSet` whether it replaced. Writes that belong
    /// to one step (its audit events and the flow it saves) go together, so a backend across
    /// the network can send them in one round trip (Redis: one pipeline). The default makes
    /// the calls one by one. On `Err`, any prefix of the writes may have been applied.
    async fn write_batch(&self, writes: &[Write<'_>]) -> Result<Vec<bool>> {
        let mut answers = Vec::with_capacity(writes.len());
        for w in writes {
            answers.push(match *w {
                Write::Put { key, value, ttl } => self.put(key, value, ttl).await.map(|()| true)?,
                Write::Delete { key } => self.delete(key).await?,
                Write::Append {
                    log,
                    at_ms,
                    value,
                    retention,
                } => self
                    .append(log, at_ms, value, retention)
                    .await
                    .map(|()| true)?,
                Write::CompareAndSet {
                    key,
                    expected,
                    new,
                    ttl,
                } => self.compare_and_set(key, expected, new, ttl).await?,
            });
        }
        Ok(answers)
    }
    /// Drops expired records a backend keeps until they are touched; returns how many went.
    /// Redis expires keys itself, so its answer is always 0.
    async fn purge_expired(&self) -> Result<usize> {
        Ok(0)
    }
    /// Wakes every subscriber of `channel` on every node (e.g. `chal:<id>` when a challenge
    /// was answered). Nothing is kept: a channel nobody listens to loses the message.
    async fn publish(&self, channel: &str) -> Result<()>;
    /// Listens on `channel` from now on: a later `publish` on any node wakes the returned
    /// subscription, even when it comes before the caller starts waiting. Callers still
    /// re-read the record they care about after a wake-up (or a timeout): a wake-up says
    /// "look again", never what changed.
    async fn subscribe(&self, channel: &str) -> Result<notify::Subscription>;
}

/// The lower-case hex SHA-256 of `text`: what a key holds in place of a secret (a cookie, a
/// token) or of a long, user-supplied name, so a copy of the store yields neither.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(sha256(text.as_bytes()))
}

/// SHA-256 of `bytes`, for store keys. In Rust (sha2), not OpenSSL: a sign-in hashes a few
/// short names, and OpenSSL 3 looks its digest up anew on every call, which cost more than
/// the hashing (BENCHMARKS.md).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// `prefix:<sha256 of secret>`: the key of a record found by a secret the store must not hold.
pub fn hashed_key(prefix: &str, secret: &str) -> String {
    format!("{prefix}:{}", sha256_hex(secret))
}

/// Reads a JSON record.
pub async fn get_json<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>> {
    match store.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                detail: e.to_string(),
            }),
    }
}

/// A TTL in whole milliseconds as both backends count it: rounded up (a record must never
/// outlive its caller's deadline early), at least 1 ms (Redis rejects `PX 0`; a zero TTL means
/// "already expired" in effect), and capped so that `now + ttl` cannot overflow an `i64`
/// millisecond timestamp in either backend.
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    // Far beyond any real deadline (~146 million years) and still safe to add to "now".
    const CAP: i64 = i64::MAX / 2;
    let mut ms = ttl.as_millis();
    if !ttl.subsec_nanos().is_multiple_of(1_000_000) {
        ms += 1;
    }
    i64::try_from(ms).unwrap_or(CAP).clamp(1, CAP)
}

/// Writes a JSON record.
pub async fn put_json<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    })?;
    store.put(key, &bytes, ttl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_millis_rounds_up_and_clamps() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(300)), 300);
        assert_eq!(ttl_millis(Duration::from_micros(300_001)), 301);
        assert_eq!(ttl_millis(Duration::MAX), i64::MAX / 2);
    }
}
