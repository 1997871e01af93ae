//! The farm `Store`: records shared by every node through one Redis, under a key prefix.
//!
//! Plain writes are single commands (`SET .. PX`, `SET .. NX PX`); the read-modify-write
//! operations (`compare_and_set`, `incr` with a TTL only on creation) are Lua scripts, which
//! Redis runs atomically, so two nodes racing on one flow cannot both win. The key prefix
//! (e.g. `tessera:`) keeps several deployments on one server apart; callers never see it.
//!
//! With Redis Sentinel the store asks the sentinels which server is the master and, when a
//! command meets a dead connection or a `READONLY` reply (the server it talks to was demoted),
//! asks again and moves to the new master, so the farm outlives a failover.
//!
//! Wake-ups (`publish` / `subscribe`) are Redis pub/sub: `PUBLISH <prefix>wake:<channel>`,
//! and on each node ONE connection, opened by the first subscription, that holds
//! `PSUBSCRIBE <prefix>wake:*` and fans messages out to the node's waiters (`notify::Hub`).
//! Ten thousand waiting pages cost ten thousand hub entries, not connections.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncCommands, AsyncConnectionConfig, Client, ErrorKind, RedisError, Script, ServerErrorKind,
    SetExpiry, SetOptions, Value,
};

use super::notify::{Hub, Subscription};
use super::{LogEntry, Result, Store, StoreError, Write, ttl_millis};

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

/// How long one sentinel gets to answer "who is the master?".
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the master is: one fixed server, or whichever the sentinels name now.
pub enum Endpoint {
    /// `redis://[user][:password]@host:port/db`, `rediss://` (TLS) or `redis+unix://`; for
    /// `rediss://`, `ca_pem` holds the CA(s) to trust instead of the system store.
    Url {
        url: String,
        ca_pem: Option<Vec<u8>>,
    },
    Sentinel(SentinelSettings),
}

/// A master watched by Redis Sentinel.
pub struct SentinelSettings {
    /// `host:port` of each sentinel; asked in order, the first answer counts.
    pub sentinels: Vec<String>,
    /// The name in the sentinels' `sentinel monitor <name> ...`.
    pub master_name: String,
    /// The master's password (`requirepass`), if it has one.
    pub password: Option<String>,
    /// The sentinels' own password, if they have one.
    pub sentinel_password: Option<String>,
}

/// Whether a command may be sent again after a failover was followed.
#[derive(Clone, Copy)]
enum Retry {
    /// Running it twice leaves the same state and answer (reads, plain writes).
    Idempotent,
    /// Only when the first try surely changed nothing: the server refused it (`READONLY`) or
    /// the connection was refused before it was sent.
    IfNotApplied,
}

/// The connection in use and the server it goes to.
struct Current {
    conn: ConnectionManager,
    /// The same server, for the wake-up connection (pub/sub needs one of its own).
    client: Client,
    /// `host:port` of the master; compared with the sentinels' answer.
    addr: String,
}

/// The Redis-backed `Store`. Cheap to clone; clones share the managed connection, which
/// reconnects by itself after a server restart, and (with sentinels) follows a failover.
#[derive(Clone)]
pub struct RedisStore {
    current: Arc<RwLock<Current>>,
    /// Set with Sentinel; one lookup at a time, so a burst of failing requests asks once.
    sentinel: Option<Arc<tokio::sync::Mutex<SentinelSettings>>>,
    key_prefix: String,
    /// The server URL without its password (or the sentinels and master name), for error
    /// messages and logs.
    url: String,
    cas: Script,
    incr: Script,
    wakeups: Arc<Wakeups>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// Bounded so a dead server fails start-up (or an operation) within seconds instead of
/// hanging a login; the manager still reconnects in the background later on.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)))
}

/// A managed connection to `client` that has answered PING.
async fn open_manager(
    client: Client,
) -> std::result::Result<ConnectionManager, (String, RedisError)> {
    let mut conn = ConnectionManager::new_with_config(client, manager_config())
        .await
        .map_err(|e| ("cannot connect".to_owned(), e))?;
    let _: () = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| ("PING failed".to_owned(), e))?;
    Ok(conn)
}

/// `redis://[:password@]host:port/` for an address a sentinel gave.
fn master_url(addr: &str, password: Option<&str>) -> std::result::Result<String, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("sentinel named {addr:?}, not host:port"))?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut url = url::Url::parse(&format!("redis://{host}:{port}/"))
        .map_err(|e| format!("sentinel named {addr:?}: {e}"))?;
    if let Some(pw) = password {
        // Cannot fail: a redis:// URL with a host can carry credentials.
        let _ = url.set_password(Some(pw));
    }
    Ok(url.to_string())
}

/// Asks the sentinels in order for the master's `host:port`; the first that answers wins.
async fn ask_sentinels(settings: &SentinelSettings) -> std::result::Result<String, String> {
    let mut failures = Vec::new();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SENTINEL_TIMEOUT))
        .set_response_timeout(Some(SENTINEL_TIMEOUT));
    for sentinel in &settings.sentinels {
        let url = master_url(sentinel, settings.sentinel_password.as_deref())?;
        let answer = async {
            let client = Client::open(url)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&settings.master_name)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        }
        .await;
        match answer {
            Ok(Some((host, port))) => return Ok(format!("{host}:{port}")),
            Ok(None) => failures.push(format!(
                "{sentinel}: no master named {:?}",
                settings.master_name
            )),
            Err(e) => failures.push(format!("{sentinel}: {e}")),
        }
    }
    Err(format!(
        "no sentinel named the master ({})",
        failures.join("; ")
    ))
}

/// Errors that mean "this may no longer be the master": worth asking the sentinels.
fn points_at_old_master(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
}

/// Errors after which the command surely did not run.
fn surely_not_applied(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) || e.is_connection_refusal()
}

impl RedisStore {
    /// Connects to `url` (`redis://[user][:password]@host:port/db`, `rediss://`, or
    /// `redis+unix://`) and checks the server answers. Every key is stored as
    /// `key_prefix + key`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self> {
        let endpoint = Endpoint::Url {
            url: url.to_owned(),
            ca_pem: None,
        };
        Self::connect_to(endpoint, key_prefix).await
    }

    /// Connects to a fixed server or, through the sentinels, to the current master.
    pub async fn connect_to(endpoint: Endpoint, key_prefix: &str) -> Result<Self> {
        let (current, sentinel, shown) = match endpoint {
            Endpoint::Url { url, ca_pem } => {
                let shown = redact_url(&url);
                let fail = |what: &str, e: RedisError| {
                    StoreError::Backend(format!("redis at {shown}: {what}: {e}"))
                };
                let client = match ca_pem {
                    None => Client::open(url.as_str()),
                    Some(pem) => Client::build_with_tls(
                        url.as_str(),
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(pem),
                        },
                    ),
                }
                .map_err(|e| fail("invalid URL or CA file", e))?;
                let conn = open_manager(client.clone())
                    .await
                    .map_err(|(what, e)| fail(&what, e))?;
                (
                    Current {
                        conn,
                        client,
                        addr: shown.clone(),
                    },
                    None,
                    shown,
                )
            }
            Endpoint::Sentinel(settings) => {
                let shown = format!(
                    "master {:?} of sentinels {}",
                    settings.master_name,
                    settings.sentinels.join(",")
                );
                let fail = |what: String| StoreError::Backend(format!("redis {shown}: {what}"));
                let addr = ask_sentinels(&settings).await.map_err(fail)?;
                let client =
                    Client::open(master_url(&addr, settings.password.as_deref()).map_err(fail)?)
                        .map_err(|e| fail(format!("invalid master address {addr}: {e}")))?;
                let conn = open_manager(client.clone())
                    .await
                    .map_err(|(what, e)| fail(format!("at {addr}: {what}: {e}")))?;
                (
                    Current { conn, client, addr },
                    Some(Arc::new(tokio::sync::Mutex::new(settings))),
                    shown,
                )
            }
        };
        Ok(Self {
            current: Arc::new(RwLock::new(current)),
            sentinel,
            key_prefix: key_prefix.to_owned(),
            url: shown,
            cas: Script::new(CAS_SCRIPT),
            incr: Script::new(INCR_SCRIPT),
            wakeups: Arc::new(Wakeups::new()),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    fn backend(&self, op: &str, e: RedisError) -> StoreError {
        StoreError::Backend(format!("redis at {}: {op}: {e}", self.url))
    }

    /// `XADD` of one log entry with entry ID `id`, trimming what retention lets go.
    fn xadd(
        &self,
        log: &str,
        at_ms: i64,
        value: &[u8],
        retention: Duration,
        id: String,
    ) -> redis::Cmd {
        let oldest = at_ms.saturating_sub(ttl_millis(retention)).max(0);
        let mut c = redis::cmd("XADD");
        // Exact trimming (no `~`): retention is a promise, and an audit trail evicts few
        // entries per append.
        c.arg(self.full_key(&format!("log:{log}")))
            .arg("MINID")
            .arg(oldest)
            .arg(id)
            .arg("v")
            .arg(value);
        c
    }

    /// A fresh handle on the shared connection (the manager is cheap to clone, and the
    /// command API wants `&mut`), with the master it goes to.
    fn conn(&self) -> (ConnectionManager, String) {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        (current.conn.clone(), current.addr.clone())
    }

    /// Runs `command`; with sentinels, an error that suggests a failover makes the store ask
    /// the sentinels for the master, move to it when it changed, and (when `retry` allows)
    /// send the command once more there.
    async fn run<T, F, Fut>(&self, op: &str, retry: Retry, command: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (conn, addr) = self.conn();
        let first = match command(conn).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(sentinel) = &self.sentinel else {
            return Err(self.backend(op, first));
        };
        if !points_at_old_master(&first) {
            return Err(self.backend(op, first));
        }
        match self.follow_master(sentinel, &addr).await {
            Ok(true) if matches!(retry, Retry::Idempotent) || surely_not_applied(&first) => {
                command(self.conn().0)
                    .await
                    .map_err(|e| self.backend(op, e))
            }
            Ok(_) => Err(self.backend(op, first)),
            Err(lookup) => Err(StoreError::Backend(format!(
                "redis {}: {op}: {first}; then {lookup}",
                self.url
            ))),
        }
    }

    /// Asks the sentinels for the master and connects to it when it is not `seen` (the
    /// master the failed command went to). `true` when the store now uses another master,
    /// whether this call or a concurrent one moved it.
    async fn follow_master(
        &self,
        sentinel: &tokio::sync::Mutex<SentinelSettings>,
        seen: &str,
    ) -> std::result::Result<bool, String> {
        let settings = sentinel.lock().await;
        if self.conn().1 != seen {
            return Ok(true);
        }
        let addr = ask_sentinels(&settings).await?;
        if addr == seen {
            // The sentinels have not (yet) failed over; the manager reconnects on its own.
            return Ok(false);
        }
        let client = Client::open(master_url(&addr, settings.password.as_deref())?)
            .map_err(|e| format!("invalid master address {addr}: {e}"))?;
        let conn = open_manager(client.clone())
            .await
            .map_err(|(what, e)| format!("new master {addr}: {what}: {e}"))?;
        tracing::warn!(from = seen, to = %addr, "redis master changed, following the sentinels");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current { conn, client, addr };
        Ok(true)
    }
}

/// The channel namespace of wake-ups, after the key prefix.
const WAKE: &str = "wake:";
/// How long a first subscription waits for the node's wake-up connection to be listening.
const WAKE_READY: Duration = Duration::from_secs(3);
/// How often an idle wake-up connection is checked with PING (a dead peer that never sent a
/// FIN would otherwise keep it "open" forever and every waiter deaf).
const WAKE_PING: Duration = Duration::from_secs(30);
/// Pause between two attempts to (re)open the wake-up connection.
const WAKE_RETRY: Duration = Duration::from_secs(1);

/// This node's wake-ups: the hub its waiters subscribe to, and the task holding the one
/// pub/sub connection that feeds it (started by the first subscription, stopped with the
/// last clone of the store).
struct Wakeups {
    hub: Arc<Hub>,
    /// `true` while the pub/sub connection is subscribed.
    listening: Arc<tokio::sync::watch::Sender<bool>>,
    task: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Wakeups {
    fn new() -> Self {
        Wakeups {
            hub: Arc::default(),
            listening: Arc::new(tokio::sync::watch::channel(false).0),
            task: OnceLock::new(),
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// Keeps the node's wake-up connection open: (re)connects to the current master, listens,
/// and after a loss wakes every local waiter once, since a message may have been missed.
async fn dispatch(
    current: Arc<RwLock<Current>>,
    prefix: String,
    hub: Arc<Hub>,
    listening: Arc<tokio::sync::watch::Sender<bool>>,
) {
    let mut lost_before = false;
    loop {
        let client = current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .client
            .clone();
        let ended = listen(&client, &prefix, &hub, &listening, lost_before).await;
        if listening.send_replace(false) {
            lost_before = true;
        }
        tracing::warn!(error = %ended, "redis wake-up connection lost; reconnecting");
        tokio::time::sleep(WAKE_RETRY).await;
    }
}

/// One life of the wake-up connection; returns why it ended.
async fn listen(
    client: &Client,
    prefix: &str,
    hub: &Hub,
    listening: &tokio::sync::watch::Sender<bool>,
    missed: bool,
) -> RedisError {
    let opened = tokio::time::timeout(WAKE_READY, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub
            .psubscribe(format!("{}*", escape_glob(&format!("{prefix}{WAKE}"))))
            .await?;
        Ok::<_, RedisError>(pubsub.split())
    })
    .await;
    let (mut sink, mut messages) = match opened {
        Ok(Ok(split)) => split,
        Ok(Err(e)) => return e,
        Err(_) => return timed_out("opening the wake-up connection"),
    };
    listening.send_replace(true);
    if missed {
        hub.publish_all();
    }
    let own = format!("{prefix}{WAKE}");
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionAborted));
                };
                if let Some(channel) = message.get_channel_name().strip_prefix(&own) {
                    hub.publish(channel);
                }
            }
            () = tokio::time::sleep(WAKE_PING) => {
                match tokio::time::timeout(WAKE_READY, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e,
                    Err(_) => return timed_out("PING on the wake-up connection"),
                }
            }
        }
    }
}

/// `CAS_SCRIPT`'s ARGV[1] and ARGV[2] for an expected value (`None`: absence).
fn cas_expectation(expected: Option<&[u8]>) -> (&'static str, &[u8]) {
    match expected {
        Some(bytes) => ("1", bytes),
        None => ("0", &b""[..]),
    }
}

/// Whether XADD refused an entry ID because the stream already holds a later one.
fn stamp_behind(error: &str) -> bool {
    error.contains("equal or smaller")
}

fn timed_out(what: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} took longer than {WAKE_READY:?}"),
    ))
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
        let key = &self.full_key(key);
        self.run("GET", Retry::Idempotent, move |mut c| async move {
            c.get(key).await
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        // A plain SET also drops any previous TTL, as the contract requires.
        let key = &self.full_key(key);
        self.run("SET", Retry::Idempotent, move |mut c| async move {
            c.set_options(key, value, set_options(ttl)).await
        })
        .await
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let key = &self.full_key(key);
        // SET NX replies OK when written and nil when the key exists.
        let reply: Option<String> = self
            .run("SET NX", Retry::IfNotApplied, move |mut c| async move {
                let options = set_options(ttl).conditional_set(redis::ExistenceCheck::NX);
                c.set_options(key, value, options).await
            })
            .await?;
        Ok(reply.is_some())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let (mode, expected) = cas_expectation(expected);
        let key = &self.full_key(key);
        let replaced: i64 = self
            .run(
                "compare_and_set script",
                Retry::IfNotApplied,
                move |mut c| async move {
                    self.cas
                        .key(key)
                        .arg(mode)
                        .arg(expected)
                        .arg(new)
                        .arg(ttl_arg(ttl))
                        .invoke_async(&mut c)
                        .await
                },
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = &self.full_key(key);
        let removed: i64 = self
            .run("DEL", Retry::IfNotApplied, move |mut c| async move {
                c.del(key).await
            })
            .await?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let full = &self.full_key(key);
        let (ok, payload): (i64, String) = self
            .run(
                "incr script",
                Retry::IfNotApplied,
                move |mut c| async move {
                    self.incr
                        .key(full)
                        .arg(by)
                        .arg(ttl_arg(ttl))
                        .invoke_async(&mut c)
                        .await
                },
            )
            .await?;
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
        let pattern = &format!("{}*", escape_glob(&self.full_key(prefix)));
        self.run("SCAN", Retry::Idempotent, move |mut conn| async move {
            // SCAN may return a key more than once; the set both dedups and sorts.
            let mut found = BTreeSet::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut conn)
                    .await?;
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
        })
        .await
    }

    /// A Redis stream per log: entry IDs are `<at_ms>-<seq>`, so XREVRANGE reads a time
    /// window directly, and `MINID` trims by retention as entries arrive.
    async fn append(&self, log: &str, at_ms: i64, value: &[u8], retention: Duration) -> Result<()> {
        let xadd = &|id: String| self.xadd(log, at_ms, value, retention, id);
        self.run("XADD", Retry::IfNotApplied, move |mut conn| async move {
            let first: std::result::Result<String, RedisError> =
                xadd(format!("{}-*", at_ms.max(0)))
                    .query_async(&mut conn)
                    .await;
            match first {
                Ok(_) => Ok(()),
                // Another node's clock ran ahead and its entry is newer than our stamp: a
                // stream's IDs only grow, so take the next free one (the stamp is off by the
                // skew).
                Err(e) if stamp_behind(&e.to_string()) => xadd("*".into())
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// One pipeline: the writes go out together and their answers come back together, in
    /// order (Redis runs a connection's commands in the order sent). Compare-and-set goes as
    /// `EVAL` with the script's text, which needs no script cache on the server, so nothing
    /// in the batch has to be sent again out of order.
    async fn write_batch(&self, writes: &[Write<'_>]) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        // Each answer is looked at below: one refused write must not hide the others'.
        pipe.ignore_errors();
        for w in writes {
            match *w {
                Write::Put { key, value, ttl } => {
                    pipe.set_options(self.full_key(key), value, set_options(ttl));
                }
                Write::Delete { key } => {
                    pipe.del(self.full_key(key));
                }
                Write::Append {
                    log,
                    at_ms,
                    value,
                    retention,
                } => {
                    let id = format!("{}-*", at_ms.max(0));
                    pipe.add_command(self.xadd(log, at_ms, value, retention, id));
                }
                Write::CompareAndSet {
                    key,
                    expected,
                    new,
                    ttl,
                } => {
                    let (mode, expected) = cas_expectation(expected);
                    pipe.cmd("EVAL")
                        .arg(CAS_SCRIPT)
                        .arg(1)
                        .arg(self.full_key(key))
                        .arg(mode)
                        .arg(expected)
                        .arg(new)
                        .arg(ttl_arg(ttl));
                }
            }
        }
        let pipe = &pipe;
        let replies: Vec<Value> = self
            .run("pipeline", Retry::IfNotApplied, move |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        if replies.len() != writes.len() {
            return Err(StoreError::Backend(format!(
                "redis at {}: pipeline of {} writes answered {} times",
                self.url,
                writes.len(),
                replies.len()
            )));
        }
        let mut answers = Vec::with_capacity(writes.len());
        for (w, reply) in writes.iter().zip(replies) {
            answers.push(match (*w, reply) {
                (_, Value::ServerError(e)) => match *w {
                    Write::Append {
                        log,
                        at_ms,
                        value,
                        retention,
                    } if stamp_behind(&e.to_string()) => {
                        // As in `append`: the stream is ahead of our clock.
                        self.append(log, at_ms, value, retention).await?;
                        true
                    }
                    _ => return Err(self.backend("pipeline", e.into())),
                },
                (Write::Delete { .. }, Value::Int(n)) => n > 0,
                (Write::CompareAndSet { .. }, Value::Int(n)) => n == 1,
                (Write::Put { .. } | Write::Append { .. }, _) => true,
                (_, other) => {
                    return Err(StoreError::Backend(format!(
                        "redis at {}: pipeline: unexpected answer {other:?}",
                        self.url
                    )));
                }
            });
        }
        Ok(answers)
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
        let key = &self.full_key(&format!("log:{log}"));
        // An incomplete end ID means "any sequence within that millisecond".
        let entries: Vec<(String, Vec<Vec<u8>>)> = self
            .run("XREVRANGE", Retry::Idempotent, move |mut conn| async move {
                redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg(to_ms)
                    .arg(from_ms.max(0))
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
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

    async fn publish(&self, channel: &str) -> Result<()> {
        let name = &self.full_key(&format!("{WAKE}{channel}"));
        // Publishing twice only wakes the waiters twice: they look again either way.
        self.run("PUBLISH", Retry::Idempotent, move |mut c| async move {
            c.publish::<_, _, i64>(name, "").await.map(drop)
        })
        .await
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let w = &self.wakeups;
        w.task.get_or_init(|| {
            tokio::spawn(dispatch(
                self.current.clone(),
                self.key_prefix.clone(),
                w.hub.clone(),
                w.listening.clone(),
            ))
        });
        // Subscribed in the hub only once the connection listens, so no message meant for
        // this subscription can pass before it; a later loss wakes it (see `dispatch`).
        let mut listening = w.listening.subscribe();
        match tokio::time::timeout(WAKE_READY, listening.wait_for(|on| *on)).await {
            Ok(Ok(_)) => Ok(w.hub.subscribe(channel)),
            _ => Err(StoreError::Backend(format!(
                "redis at {}: the wake-up connection is not listening",
                self.url
            ))),
        }
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
