//! A private, throwaway `redis-server` per test: loopback only, free port, no persistence.
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
}

impl RedisServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers PING.
    pub fn start() -> Self {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start() {
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

    fn try_start() -> Result<Self, String> {
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let child = spawn(port, dir.path());
        let mut server = RedisServer { child, port, dir };
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
            self.child = spawn(self.port, self.dir.path());
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
fn spawn(port: u16, dir: &Path) -> Child {
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
