//! The single-node `Store`: records with expiry kept durably in one redb file in the data dir.
//!
//! Every record is stored as a small envelope (see [`encode`]) carrying its absolute expiry in
//! Unix milliseconds, taken from the injected `Clock` so tests control time. Expired records
//! are treated as absent by every operation and removed lazily when touched; a periodic
//! [`EmbeddedStore::purge_expired`] sweep reclaims the ones nobody touches again.
//!
//! redb is synchronous and a write commit fsyncs, which can take milliseconds: every
//! operation therefore runs on tokio's blocking pool rather than on a runtime worker.
//! Conditional writes (`put_if_absent`, `compare_and_set`, `incr`) read and write inside one
//! redb write transaction; redb admits a single writer at a time, which makes them atomic.
//!
//! redb locks its file to one process, so `publish` / `subscribe` only need to reach this
//! process: an in-memory `notify::Hub`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::notify::{Hub, Subscription};
use super::{LogEntry, Result, Store, StoreError, ttl_millis};
use crate::clock::Clock;

/// All records live in one table: key -> envelope (expiry + value bytes).
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("tessera_records");

/// Append-only logs: (log name, stamp in Unix ms, sequence within the stamp) -> value.
const LOGS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("tessera_logs");

/// Envelope tag: the record lives until deleted.
const TAG_PERMANENT: u8 = 0;
/// Envelope tag: an 8-byte big-endian expiry (Unix ms) follows the tag.
const TAG_EXPIRING: u8 = 1;

/// A decoded envelope, borrowing the stored bytes.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    /// Absolute expiry in Unix milliseconds; `None` = never expires.
    expires_at_ms: Option<i64>,
    value: &'a [u8],
}

impl Record<'_> {
    /// A record expires at its expiry instant: live strictly before it.
    fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// Builds the stored bytes: `[tag][expiry, 8 bytes BE, only when expiring][value]`.
fn encode(value: &[u8], expires_at_ms: Option<i64>) -> Vec<u8> {
    match expires_at_ms {
        None => {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(TAG_PERMANENT);
            out.extend_from_slice(value);
            out
        }
        Some(at) => {
            let mut out = Vec::with_capacity(9 + value.len());
            out.push(TAG_EXPIRING);
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(value);
            out
        }
    }
}

/// Parses stored bytes; the error text becomes `StoreError::Corrupt::detail`.
fn decode(bytes: &[u8]) -> std::result::Result<Record<'_>, String> {
    match bytes.split_first() {
        None => Err("empty envelope".to_owned()),
        Some((&TAG_PERMANENT, value)) => Ok(Record {
            expires_at_ms: None,
            value,
        }),
        Some((&TAG_EXPIRING, rest)) => match rest.split_first_chunk::<8>() {
            Some((at, value)) => Ok(Record {
                expires_at_ms: Some(i64::from_be_bytes(*at)),
                value,
            }),
            None => Err("envelope too short for its expiry".to_owned()),
        },
        Some((tag, _)) => Err(format!("unknown envelope tag {tag}")),
    }
}

/// Parses a counter the way Redis does (`INCRBY` accepts only the canonical decimal form:
/// no `+`, no spaces, no leading zeros), so both backends accept and reject the same bytes.
fn parse_counter(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Why a blocking operation failed, before it is given the store's context.
enum Fail {
    Redb(redb::Error),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// redb has one error type per layer; each converts into `redb::Error`.
macro_rules! redb_fail {
    ($($ty:ident),* $(,)?) => {
        $(impl From<redb::$ty> for Fail {
            fn from(e: redb::$ty) -> Self {
                Fail::Redb(e.into())
            }
        })*
    };
}
redb_fail!(
    DatabaseError,
    TransactionError,
    TableError,
    StorageError,
    CommitError
);

type OpResult<T> = std::result::Result<T, Fail>;

/// The redb-backed `Store`. Cheap to clone; clones share the open database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    wakeups: Arc<Hub>,
}

struct Inner {
    db: Database,
    clock: Arc<dyn Clock>,
    path: PathBuf,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the redb file at `path`. Blocking: call it at start-up, before
    /// serving, or from a blocking context.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self> {
        let inner = Inner {
            db: Database::create(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::InUse(path.display().to_string())
                }
                e => StoreError::Backend(format!(
                    "embedded store: cannot open {}: {e}",
                    path.display()
                )),
            })?,
            clock,
            path: path.to_owned(),
        };
        // Creating the table up front lets every later read open it without a
        // "table does not exist" case.
        inner.finish("open", inner.create_table())?;
        Ok(Self {
            inner: Arc::new(inner),
            wakeups: Arc::default(),
        })
    }

    /// Removes every expired record and returns how many went. Blocking (one write
    /// transaction over the whole table): run it from `spawn_blocking` on a timer.
    /// Records whose envelope cannot be decoded are kept for an operator to inspect.
    pub fn purge_expired(&self) -> Result<usize> {
        self.inner
            .finish("purge_expired", self.inner.purge_expired())
    }

    /// Runs one blocking operation on tokio's blocking pool with a handle to the database.
    async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> OpResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            let result = f(&inner);
            inner.finish(op, result)
        })
        .await;
        joined.map_err(|e| {
            StoreError::Backend(format!(
                "embedded store {}: {op} did not complete: {e}",
                self.inner.path.display()
            ))
        })?
    }
}

impl Inner {
    /// Current time in Unix milliseconds from the injected clock.
    fn now_ms(&self) -> i64 {
        let ms = self.clock.now().unix_timestamp_nanos() / 1_000_000;
        // `OffsetDateTime` spans ±9999 years, well inside i64 milliseconds; saturate anyway.
        i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|t| self.now_ms().saturating_add(ttl_millis(t)))
    }

    /// Attaches the operation and file to a failure.
    fn finish<T>(&self, op: &str, result: OpResult<T>) -> Result<T> {
        result.map_err(|fail| match fail {
            Fail::Store(e) => e,
            Fail::Redb(e) => {
                StoreError::Backend(format!("embedded store {}: {op}: {e}", self.path.display()))
            }
        })
    }

    fn create_table(&self) -> OpResult<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.open_table(LOGS)?;
        txn.commit()?;
        Ok(())
    }

    /// The live value under `key` inside a write transaction, or `None`. An expired record
    /// is removed here (the caller commits), so a dead record never blocks a conditional write.
    fn live_in_txn(&self, txn: &WriteTransaction, key: &str) -> OpResult<Option<Vec<u8>>> {
        let mut table = txn.open_table(RECORDS)?;
        let live = match table.get(key)? {
            None => return Ok(None),
            Some(guard) => {
                let record = decode(guard.value()).map_err(|detail| corrupt(key, detail))?;
                record.is_live(self.now_ms()).then(|| record.value.to_vec())
            }
        };
        if live.is_none() {
            table.remove(key)?;
        }
        Ok(live)
    }

    fn write(
        &self,
        txn: &WriteTransaction,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> OpResult<()> {
        let mut table = txn.open_table(RECORDS)?;
        table.insert(key, encode(value, self.expiry(ttl)).as_slice())?;
        Ok(())
    }

    fn get(&self, key: &str) -> OpResult<Option<Vec<u8>>> {
        let expired = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(RECORDS)?;
            let Some(guard) = table.get(key)? else {
                return Ok(None);
            };
            let record = decode(guard.value()).map_err(|detail| corrupt(key, detail))?;
            if record.is_live(self.now_ms()) {
                return Ok(Some(record.value.to_vec()));
            }
            true
        };
        if expired {
            // Lazy cleanup; re-checked inside the write transaction because a writer may have
            // replaced the record since the read.
            let txn = self.db.begin_write()?;
            self.live_in_txn(&txn, key)?;
            txn.commit()?;
        }
        Ok(None)
    }

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> OpResult<()> {
        let txn = self.db.begin_write()?;
        self.write(&txn, key, value, ttl)?;
        txn.commit()?;
        Ok(())
    }

    fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> OpResult<bool> {
        let txn = self.db.begin_write()?;
        let written = self.live_in_txn(&txn, key)?.is_none();
        if written {
            self.write(&txn, key, value, ttl)?;
        }
        // Committed either way: a lost write only if an expired record was removed, and that
        // removal is worth keeping.
        txn.commit()?;
        Ok(written)
    }

    fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> OpResult<bool> {
        let txn = self.db.begin_write()?;
        let current = self.live_in_txn(&txn, key)?;
        let matches = current.as_deref() == expected;
        if matches {
            self.write(&txn, key, new, ttl)?;
        }
        txn.commit()?;
        Ok(matches)
    }

    fn delete(&self, key: &str) -> OpResult<bool> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut table = txn.open_table(RECORDS)?;
            let old = table.remove(key)?;
            match old {
                None => false,
                // A record that failed to decode was still a record: report it removed.
                Some(guard) => decode(guard.value()).map_or(true, |r| r.is_live(self.now_ms())),
            }
        };
        txn.commit()?;
        Ok(removed)
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> OpResult<i64> {
        let txn = self.db.begin_write()?;
        let mut table = txn.open_table(RECORDS)?;
        let existing = match table.get(key)? {
            None => None,
            Some(guard) => {
                let record = decode(guard.value()).map_err(|detail| corrupt(key, detail))?;
                if record.is_live(self.now_ms()) {
                    let n = parse_counter(record.value).ok_or_else(|| {
                        corrupt(key, "value is not an integer counter".to_owned())
                    })?;
                    Some((n, record.expires_at_ms))
                } else {
                    None
                }
            }
        };
        let (next, expires_at_ms) = match existing {
            // The window is fixed when the counter is created: keep its expiry.
            Some((n, at)) => {
                let next = n
                    .checked_add(by)
                    .ok_or_else(|| corrupt(key, "counter would overflow".to_owned()))?;
                (next, at)
            }
            None => (by, self.expiry(ttl)),
        };
        // Counters are stored as decimal text, as Redis stores them, so `get` returns
        // the same bytes from either backend.
        let bytes = encode(next.to_string().as_bytes(), expires_at_ms);
        table.insert(key, bytes.as_slice())?;
        drop(table);
        txn.commit()?;
        Ok(next)
    }

    fn keys(&self, prefix: &str) -> OpResult<Vec<String>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let now = self.now_ms();
        let mut out = Vec::new();
        // redb orders `&str` keys bytewise, so the prefix's keys form one contiguous run.
        for entry in table.range::<&str>(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            // Undecodable records are listed: they exist, and `get` will report them.
            if decode(value.value()).map_or(true, |r| r.is_live(now)) {
                out.push(key.to_owned());
            }
        }
        Ok(out)
    }

    fn append(&self, log: &str, at_ms: i64, value: &[u8], retention: Duration) -> OpResult<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(LOGS)?;
            let seq = match table
                .range((log, at_ms, 0)..=(log, at_ms, u64::MAX))?
                .next_back()
            {
                Some(last) => last?.0.value().2 + 1,
                None => 0,
            };
            table.insert((log, at_ms, seq), value)?;
            // Retention: everything stamped before the window goes (usually nothing).
            let oldest = at_ms.saturating_sub(ttl_millis(retention));
            table.retain_in((log, i64::MIN, 0)..(log, oldest, 0), |_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn read_log(
        &self,
        log: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> OpResult<Vec<LogEntry>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let mut out = Vec::new();
        if from_ms > to_ms {
            return Ok(out);
        }
        for entry in table
            .range((log, from_ms, 0)..=(log, to_ms, u64::MAX))?
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            out.push(LogEntry {
                at_ms: key.value().1,
                value: value.value().to_vec(),
            });
        }
        Ok(out)
    }

    fn purge_expired(&self) -> OpResult<usize> {
        let now = self.now_ms();
        let txn = self.db.begin_write()?;
        let mut removed = 0usize;
        {
            let mut table = txn.open_table(RECORDS)?;
            table.retain(|_, value| {
                let keep = decode(value).map_or(true, |r| r.is_live(now));
                if !keep {
                    removed += 1;
                }
                keep
            })?;
        }
        txn.commit()?;
        Ok(removed)
    }
}

fn corrupt(key: &str, detail: String) -> Fail {
    Fail::Store(StoreError::Corrupt {
        key: key.to_owned(),
        detail,
    })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run("get", move |db| db.get(&key)).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run("put", move |db| db.put(&key, &value, ttl)).await
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run("put_if_absent", move |db| {
            db.put_if_absent(&key, &value, ttl)
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let (key, expected, new) = (key.to_owned(), expected.map(<[u8]>::to_vec), new.to_vec());
        self.run("compare_and_set", move |db| {
            db.compare_and_set(&key, expected.as_deref(), &new, ttl)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.run("delete", move |db| db.delete(&key)).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let key = key.to_owned();
        self.run("incr", move |db| db.incr(&key, by, ttl)).await
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.run("keys", move |db| db.keys(&prefix)).await
    }

    async fn append(&self, log: &str, at_ms: i64, value: &[u8], retention: Duration) -> Result<()> {
        let (log, value) = (log.to_owned(), value.to_vec());
        self.run("append", move |db| {
            db.append(&log, at_ms, &value, retention)
        })
        .await
    }

    async fn read_log(
        &self,
        log: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<LogEntry>> {
        let log = log.to_owned();
        self.run("read_log", move |db| {
            db.read_log(&log, from_ms, to_ms, limit)
        })
        .await
    }

    async fn purge_expired(&self) -> Result<usize> {
        self.run("purge_expired", |db| db.purge_expired()).await
    }

    async fn publish(&self, channel: &str) -> Result<()> {
        self.wakeups.publish(channel);
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        Ok(self.wakeups.subscribe(channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips() {
        let permanent = encode(b"abc", None);
        assert_eq!(
            decode(&permanent),
            Ok(Record {
                expires_at_ms: None,
                value: b"abc"
            })
        );
        let expiring = encode(b"", Some(-5));
        assert_eq!(
            decode(&expiring),
            Ok(Record {
                expires_at_ms: Some(-5),
                value: b""
            })
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(&[TAG_EXPIRING, 0, 0, 0]).is_err());
        assert!(decode(&[7, 1, 2]).is_err());
    }

    #[test]
    fn record_is_dead_from_its_expiry_instant() {
        let r = Record {
            expires_at_ms: Some(1_000),
            value: b"",
        };
        assert!(r.is_live(999));
        assert!(!r.is_live(1_000));
        let forever = Record {
            expires_at_ms: None,
            value: b"",
        };
        assert!(forever.is_live(i64::MAX));
    }

    #[test]
    fn counters_parse_only_canonical_decimal() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"-42"), Some(-42));
        assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"+1"[..],
            b"01",
            b"-0",
            b" 1",
            b"1.0",
            b"",
            b"x",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_counter(bad), None, "{bad:?}");
        }
    }
}
