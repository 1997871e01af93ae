//! A private, throwaway `redis-server` per test: loopback only, free port, no persistence;
//! and a Sentinel farm of them (a master, a replica, three `redis-sentinel` processes).
//!
//! Tests that need Redis must run against a real server; they never skip silently. When the
//! binary is missing the start panics and says how to install it.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a freshly started server gets to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Port picking can race with other processes; a server that dies at start is retried.
const START_ATTEMPTS: usize = 5;

/// A running `redis-server`; killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// The working directory; it outlives the process, so a restart uses it again.
    dir: TempDir,
    /// Extra arguments (e.g. `--replicaof`), given again on a restart.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like `start`, with extra `redis-server` arguments.
    pub fn start_with(extra: &[String]) -> Self {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(extra) {
                Ok(server) => return server,
                Err(why) => last_failure = why,
            }
        }
        panic!("redis-server did not come up after {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// `redis://127.0.0.1:<port>` (no password: the server only listens on loopback).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A server that also serves TLS on a second port with the certificate and key in
    /// `certs` (`server.pem`, `server.key`, signed by `ca.pem`); clients need no certificate.
    /// Returns the server and `rediss://localhost:<tls port>`. The plain port stays open for
    /// the readiness check.
    pub fn start_tls(certs: &Path) -> (Self, String) {
        let tls_port = free_port();
        let file = |name: &str| certs.join(name).display().to_string();
        let server = Self::start_with(&[
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]);
        (server, format!("rediss://localhost:{tls_port}"))
    }

    fn try_start(extra: &[String]) -> Result<Self, String> {
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let child = spawn(port, dir.path(), extra);
        let mut server = RedisServer {
            child,
            port,
            dir,
            extra: extra.to_vec(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Stops the server, as a crash or a maintenance stop would; clients see refused
    /// connections until `restart`.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.child = spawn(self.port, self.dir.path(), &self.extra);
            match self.wait_ready() {
                Ok(()) => return,
                // The old socket can linger for a moment after the kill.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => panic!("redis-server did not come back on its port: {why}"),
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status} on port {}: {}",
                    self.port,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}",
            self.port
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Errors here mean the process is already gone, which is the goal anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` on `port` with its files in `dir`; panics when it is not installed.
fn spawn(port: u16, dir: &Path, extra: &[String]) -> Child {
    let spawned = Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "redis-server is not installed (not on PATH); the Store contract tests need a \
             real Redis: run scripts/install-deps.sh"
        ),
        Err(e) => panic!("cannot start redis-server: {e}"),
    }
}

/// A port the OS just reported free on loopback (bound, read, released).
fn free_port() -> u16 {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// One inline-protocol PING; true when the server replies `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// The name the test sentinels monitor their master under.
pub const MASTER_NAME: &str = "tessera-test";
/// How long a failover may take here: detection (1 s), the vote and the promotion, on a
/// loaded two-core machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A master, one replica of it and three sentinels watching them (quorum 2), as a small
/// production farm runs; sentinel timeouts are short so a failover takes seconds.
pub struct SentinelFarm {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<Sentinel>,
}

/// A running `redis-sentinel`; killed on drop.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelFarm {
    /// Starts everything and waits until every sentinel knows the replica and the other
    /// sentinels, so a failover can be voted on.
    pub fn start() -> Self {
        let master = RedisServer::start();
        let replica = RedisServer::start_with(&[
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ]);
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port)).collect();
        let farm = SentinelFarm {
            master,
            replica,
            sentinels,
        };
        farm.wait_until(
            "the sentinels to discover the replica and each other",
            |s| {
                let replicas: Vec<redis::Value> = sentinel_cmd(s, &["replicas", MASTER_NAME])?;
                let peers: Vec<redis::Value> = sentinel_cmd(s, &["sentinels", MASTER_NAME])?;
                Some(replicas.len() == 1 && peers.len() == 2)
            },
        );
        farm
    }

    /// `host:port` of each sentinel, comma-separated (`store.redis_sentinels`).
    pub fn sentinels(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The master's port, as the first sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let (_, port): (String, u16) =
                sentinel_cmd(s.port, &["get-master-addr-by-name", MASTER_NAME])?;
            Some(port)
        })
    }

    /// Kills the master once the replica has every write it made (replication is
    /// asynchronous: what a crashed master had not sent yet is lost, in production too), then
    /// waits until every sentinel names the replica as master and the replica says it is one.
    pub fn fail_over(&mut self) {
        self.wait_for_replica();
        self.master.stop();
        let new = self.replica.port;
        self.wait_until("the sentinels to promote the replica", |s| {
            let (_, port): (String, u16) =
                sentinel_cmd(s, &["get-master-addr-by-name", MASTER_NAME])?;
            Some(port == new)
        });
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while role(&self.replica).as_deref() != Some("master") {
            assert!(Instant::now() < deadline, "the replica never became master");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the replica has every write the master made so far.
    fn wait_for_replica(&self) {
        let written = replication_offset(&self.master, "master_repl_offset").expect("master");
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while replication_offset(&self.replica, "slave_repl_offset").is_none_or(|o| o < written) {
            assert!(
                Instant::now() < deadline,
                "the replica never caught up with the master"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A planned failover (`SENTINEL FAILOVER`, which does not wait for the replica itself):
    /// once the replica has caught up it is promoted and the master, still running, is
    /// demoted to its replica. Waits until every sentinel names the new master and both
    /// servers have their new roles.
    pub fn switch_over(&mut self) {
        self.wait_for_replica();
        let s = self.sentinels.first().expect("a sentinel").port;
        let _: String = sentinel_cmd(s, &["failover", MASTER_NAME]).expect("SENTINEL FAILOVER");
        let new = self.replica.port;
        self.wait_until("the sentinels to switch to the replica", |s| {
            let (_, port): (String, u16) =
                sentinel_cmd(s, &["get-master-addr-by-name", MASTER_NAME])?;
            Some(port == new)
        });
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while !(role(&self.replica).as_deref() == Some("master")
            && role(&self.master).as_deref() == Some("slave"))
        {
            assert!(Instant::now() < deadline, "the roles never swapped");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls every sentinel until `check` holds for all of them, at most `FAILOVER_TIMEOUT`.
    fn wait_until(&self, what: &str, check: impl Fn(u16) -> Option<bool>) {
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while !self.sentinels.iter().all(|s| check(s.port) == Some(true)) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One master and one sentinel naming it: no failover possible, but a store that finds its
/// master through Sentinel, for the contract cases (cheaper than a whole farm).
pub struct WatchedMaster {
    pub master: RedisServer,
    sentinel: Sentinel,
}

impl WatchedMaster {
    pub fn start() -> Self {
        let master = RedisServer::start();
        let sentinel = Sentinel::start(master.port);
        WatchedMaster { master, sentinel }
    }

    /// The one sentinel's `host:port`.
    pub fn sentinel(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel.port)
    }
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        // Sentinel rewrites its config file as it learns the farm, so it lives in the temp dir.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let child = match Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-sentinel is not installed (Debian package redis-sentinel): run \
                 scripts/install-deps.sh"
            ),
            Err(e) => panic!("cannot start redis-sentinel: {e}"),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ping(port) {
            assert!(
                Instant::now() < deadline,
                "redis-sentinel on port {port} did not answer PING: {}",
                std::fs::read_to_string(dir.path().join("sentinel.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }
}

/// What `ROLE` says `server` is: `master`, `slave`, or `None` when it does not answer.
fn role(server: &RedisServer) -> Option<String> {
    let mut conn = redis::Client::open(server.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    let reply: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).ok()?;
    match reply.first()? {
        redis::Value::BulkString(r) => String::from_utf8(r.clone()).ok(),
        _ => None,
    }
}

/// A number from `INFO replication` of `server` (`master_repl_offset`, `slave_repl_offset`).
fn replication_offset(server: &RedisServer, field: &str) -> Option<u64> {
    let mut conn = redis::Client::open(server.url())
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// `SENTINEL <args>` on the sentinel at `port`; `None` when it does not answer (yet).
fn sentinel_cmd<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    redis::cmd("SENTINEL").arg(args).query(&mut conn).ok()
}
