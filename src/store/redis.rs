//! The farm `Store`: records shared by every node through one Redis, under a key prefix.
//!
//! Plain writes are single commands (`SET .. PX`, `SET .. NX PX`); the read-modify-write
//! operations (`compare_and_set`, `incr` with a TTL only on creation) are Lua scripts, which
//! Redis runs atomically, so two nodes racing on one flow cannot both win. The key prefix
//! (e.g. `tessera:`) keeps several deployments on one server apart; callers never see it.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisError, Script, SetExpiry, SetOptions};

use super::{LogEntry, Result, Store, StoreError, ttl_millis};

/// Replaces the record when its current bytes equal the expected ones.
/// KEYS[1] key; ARGV[1] "1" when a value is expected, "0" when absence is; ARGV[2] expected
/// bytes; ARGV[3] new bytes; ARGV[4] TTL in ms, or "" for none. Returns 1 when replaced.
/// (`GET` yields Lua `false` for a missing or expired key; Lua strings compare bytewise.)
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
";

/// Adds to a counter, setting the TTL only when this call created it (INCRBY keeps an
/// existing TTL), so a rate window does not slide. KEYS[1] key; ARGV[1] increment;
/// ARGV[2] TTL in ms or "". Returns {1, new value as text} or {0, server error text}.
/// The value is re-read as a string because Lua numbers are doubles and would round
/// counters beyond 2^53.
const INCR_SCRIPT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local reply = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(reply) == 'table' and reply.err then
  return {0, reply.err}
end
if existed == 0 and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, redis.call('GET', KEYS[1])}
";

/// How many keys one `SCAN` step asks for: large enough to keep round trips few on a big
/// keyspace, small enough not to stall the server.
const SCAN_COUNT: usize = 500;

/// The Redis-backed `Store`. Cheap to clone; clones share the managed connection, which
/// reconnects by itself after a server restart.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    key_prefix: String,
    /// The server URL without its password, for error messages and logs.
    url: String,
    cas: Script,
    incr: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user][:password]@host:port/db`, `rediss://`, or
    /// `redis+unix://`) and checks the server answers. Every key is stored as
    /// `key_prefix + key`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self> {
        let shown = redact_url(url);
        let fail = |what: &str, e: RedisError| {
            StoreError::Backend(format!("redis at {shown}: {what}: {e}"))
        };
        let client = Client::open(url).map_err(|e| fail("invalid URL", e))?;
        // Bounded so a dead server fails start-up (or an operation) within seconds instead of
        // hanging a login; the manager still reconnects in the background later on.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| fail("cannot connect", e))?;
        let _: () = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| fail("PING failed", e))?;
        Ok(Self {
            conn,
            key_prefix: key_prefix.to_owned(),
            url: shown,
            cas: Script::new(CAS_SCRIPT),
            incr: Script::new(INCR_SCRIPT),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    fn backend(&self, op: &str, e: RedisError) -> StoreError {
        StoreError::Backend(format!("redis at {}: {op}: {e}", self.url))
    }

    /// A fresh handle on the shared connection (the manager is cheap to clone, and the
    /// command API wants `&mut`).
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// `SET` options for an optional TTL.
fn set_options(ttl: Option<Duration>) -> SetOptions {
    let options = SetOptions::default();
    match ttl {
        // ttl_millis is at least 1 and at most i64::MAX / 2, so it always fits a u64.
        Some(t) => options.with_expiration(SetExpiry::PX(ttl_millis(t).unsigned_abs())),
        None => options,
    }
}

/// The TTL argument of the Lua scripts: milliseconds, or "" for none.
fn ttl_arg(ttl: Option<Duration>) -> String {
    ttl.map(|t| ttl_millis(t).to_string()).unwrap_or_default()
}

/// Escapes the glob metacharacters of Redis `MATCH` patterns (`* ? [ ] \`), so a caller's
/// prefix is matched literally.
fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The URL with any password replaced, so errors and logs never carry the secret. An
/// unparseable URL is not echoed at all: it might be a password pasted in the wrong place.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have credentials, and those have no password.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable redis URL>".to_owned(),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.conn()
            .get(self.full_key(key))
            .await
            .map_err(|e| self.backend("GET", e))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        // A plain SET also drops any previous TTL, as the contract requires.
        self.conn()
            .set_options(self.full_key(key), value, set_options(ttl))
            .await
            .map_err(|e| self.backend("SET", e))
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let options = set_options(ttl).conditional_set(redis::ExistenceCheck::NX);
        // SET NX replies OK when written and nil when the key exists.
        let reply: Option<String> = self
            .conn()
            .set_options(self.full_key(key), value, options)
            .await
            .map_err(|e| self.backend("SET NX", e))?;
        Ok(reply.is_some())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let (mode, expected) = match expected {
            Some(bytes) => ("1", bytes),
            None => ("0", &b""[..]),
        };
        let replaced: i64 = self
            .cas
            .key(self.full_key(key))
            .arg(mode)
            .arg(expected)
            .arg(new)
            .arg(ttl_arg(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.backend("compare_and_set script", e))?;
        Ok(replaced == 1)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self
            .conn()
            .del(self.full_key(key))
            .await
            .map_err(|e| self.backend("DEL", e))?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let (ok, payload): (i64, String) = self
            .incr
            .key(self.full_key(key))
            .arg(by)
            .arg(ttl_arg(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.backend("incr script", e))?;
        let corrupt = |detail: String| StoreError::Corrupt {
            key: key.to_owned(),
            detail,
        };
        if ok != 1 {
            // INCRBY refused: the record is not an integer, or the counter would overflow.
            return Err(corrupt(payload));
        }
        payload
            .parse()
            .map_err(|e| corrupt(format!("counter {payload:?} after INCRBY: {e}")))
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{}*", escape_glob(&self.full_key(prefix)));
        let mut conn = self.conn();
        // SCAN may return a key more than once; the set both dedups and sorts.
        let mut found = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.backend("SCAN", e))?;
            found.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&self.key_prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(found.into_iter().collect())
    }

    /// A Redis stream per log: entry IDs are `<at_ms>-<seq>`, so XREVRANGE reads a time
    /// window directly, and `MINID` trims by retention as entries arrive.
    async fn append(&self, log: &str, at_ms: i64, value: &[u8], retention: Duration) -> Result<()> {
        let key = self.full_key(&format!("log:{log}"));
        let oldest = at_ms.saturating_sub(ttl_millis(retention)).max(0);
        let xadd = |id: String| {
            let mut c = redis::cmd("XADD");
            // Exact trimming (no `~`): retention is a promise, and an audit trail evicts
            // few entries per append.
            c.arg(&key)
                .arg("MINID")
                .arg(oldest)
                .arg(id)
                .arg("v")
                .arg(value);
            c
        };
        let mut conn = self.conn();
        let first: std::result::Result<String, RedisError> = xadd(format!("{}-*", at_ms.max(0)))
            .query_async(&mut conn)
            .await;
        match first {
            Ok(_) => Ok(()),
            // Another node's clock ran ahead and its entry is newer than our stamp: a
            // stream's IDs only grow, so take the next free one (the stamp is off by the skew).
            Err(e) if e.to_string().contains("equal or smaller") => xadd("*".into())
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| self.backend("XADD", e)),
            Err(e) => Err(self.backend("XADD", e)),
        }
    }

    async fn read_log(
        &self,
        log: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<LogEntry>> {
        if from_ms > to_ms || limit == 0 || to_ms < 0 {
            return Ok(Vec::new());
        }
        let key = self.full_key(&format!("log:{log}"));
        let mut conn = self.conn();
        // An incomplete end ID means "any sequence within that millisecond".
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg(to_ms)
            .arg(from_ms.max(0))
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.backend("XREVRANGE", e))?;
        entries
            .into_iter()
            .map(|(id, mut fields)| {
                let at_ms = id
                    .split_once('-')
                    .and_then(|(ms, _)| ms.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: key.clone(),
                        detail: format!("stream entry id {id:?}"),
                    })?;
                // Fields alternate name, value; ours has one: v.
                let value = if fields.len() == 2 {
                    fields.swap_remove(1)
                } else {
                    return Err(StoreError::Corrupt {
                        key: key.clone(),
                        detail: format!("stream entry {id} has {} fields", fields.len() / 2),
                    });
                };
                Ok(LogEntry { at_ms, value })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(escape_glob("flow:"), "flow:");
        assert_eq!(escape_glob("a*b?c"), r"a\*b\?c");
        assert_eq!(escape_glob("[x]"), r"\[x\]");
        assert_eq!(escape_glob(r"back\slash"), r"back\\slash");
        assert_eq!(escape_glob("^-!"), "^-!");
    }

    #[test]
    fn passwords_never_reach_messages() {
        let shown = redact_url("redis://:s3cret@cache.example:6380/2");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("cache.example:6380"), "{shown}");
        let shown = redact_url("rediss://tessera:hunter2@cache:6379");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("tessera"), "{shown}");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url s3cret"), "<unparseable redis URL>");
    }

    #[test]
    fn script_ttl_argument() {
        assert_eq!(ttl_arg(None), "");
        assert_eq!(ttl_arg(Some(Duration::from_millis(300))), "300");
    }
}
