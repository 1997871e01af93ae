//! The `tessera serve` process as a supervisor sees it: stopping on SIGTERM / SIGINT without
//! dropping requests in flight, `/readyz` following its directory and store, and HTTPS whose
//! certificate is renewed without a restart.

mod support {
    pub mod process;
    pub mod redis;
    pub mod slapd;
    pub mod tessera;
}

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::redis::RedisServer;
use support::slapd::Slapd;
use support::tessera::TesseraBuilder;
use tessera::config::{DirectoryKind, StoreKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds for "soon": generous, since two cores are shared with other tests.
const PATIENCE: Duration = Duration::from_secs(15);

/// A `tessera serve` child, killed on drop if it is still running.
struct Served {
    child: Child,
    base: String,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the real binary in `dir` with `env` and waits for `/healthz`. The log goes to
    /// `dir/tessera.log` so a failure can show it.
    async fn start(dir: &Path, env: &[(&str, String)]) -> Served {
        Self::start_with(dir, env, "http", &reqwest::Client::new()).await
    }

    /// `start` for a listener on `scheme`, asking `/healthz` with `client`.
    async fn start_with(
        dir: &Path,
        env: &[(&str, String)],
        scheme: &str,
        client: &reqwest::Client,
    ) -> Served {
        let (port, _) = support::process::free_base();
        let base = format!("{scheme}://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(dir)
            .arg("serve")
            .env_remove("TESSERA_CONFIG")
            .env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA__SERVER__PUBLIC_URL", &base)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("tessera.log")).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let served = Served {
            child: cmd.spawn().expect("tessera serve starts"),
            addr: format!("127.0.0.1:{port}"),
            base,
        };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/healthz", served.base)).send().await
                && r.status().is_success()
            {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tessera did not start; its log:\n{}", log(dir));
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{name} failed");
    }

    /// The exit status once the process has ended, or `None` if it is still running after
    /// `within`.
    async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("tessera.log")).unwrap_or_default()
}

/// A sign-in form posted from a slow link: the head and part of the body arrive, then
/// SIGTERM, then the rest. The server stops taking connections at once, still reads and
/// answers this one, and only then exits 0.
#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut served = Served::start(dir.path(), &[]).await;
    let body = "flow=a-sign-in-from-a-slow-link&action=password&username=demo&password=not-it";
    let (first, rest) = body.split_at(20);
    let mut conn = TcpStream::connect(&served.addr).await.expect("connect");
    let head = format!(
        "POST /adfs/ls/login HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        served.addr,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(first.as_bytes()).await.expect("first part");
    // Let the server take the request up and start reading the body.
    tokio::time::sleep(Duration::from_millis(500)).await;

    served.signal("TERM");
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(&served.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM; log:\n{}",
            log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "exited with a request in flight; log:\n{}",
        log(dir.path())
    );

    for part in rest.as_bytes().chunks(rest.len() / 2 + 1) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.write_all(part).await.expect("rest of the body");
    }
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut answer))
        .await
        .expect("the answer arrives")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default().to_owned();
    assert!(status_line.starts_with("HTTP/1.1 "), "{answer}");
    for cut_short in ["408", "500", "503"] {
        assert!(!status_line.contains(cut_short), "{answer}");
    }
    // The page came whole: Tessera's error page for the unknown flow, in full.
    assert!(answer.trim_end().ends_with("</html>"), "{answer}");

    let status = served
        .exited_within(PATIENCE)
        .await
        .unwrap_or_else(|| panic!("still running; log:\n{}", log(dir.path())));
    assert_eq!(status.code(), Some(0), "log:\n{}", log(dir.path()));
    let log = log(dir.path());
    assert!(log.contains("SIGTERM"), "{log}");
}

/// An idle server stops at once on either signal, even with a browser's keep-alive
/// connection open and a grace period far longer than the bound checked here.
#[tokio::test]
async fn an_idle_server_exits_zero_promptly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut served = Served::start(
            dir.path(),
            &[("TESSERA__SERVER__SHUTDOWN_GRACE_SECS", "300".into())],
        )
        .await;
        // reqwest keeps this connection open for the next request.
        let browser = reqwest::Client::new();
        let home = browser
            .get(format!("{}/", served.base))
            .send()
            .await
            .expect("home page");
        assert!(home.status().is_success());
        served.signal(signal);
        let status = served
            .exited_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "SIG{signal}: still running after 10 s; log:\n{}",
                    log(dir.path())
                )
            });
        assert_eq!(status.code(), Some(0), "SIG{signal}: {}", log(dir.path()));
        drop(browser);
    }
}

/// GET `url` until `want` holds for (status, body), for `PATIENCE` at most; returns the last
/// answer either way so the assertion can show it.
async fn poll_until(url: &str, want: impl Fn(StatusCode, &str) -> bool) -> (StatusCode, String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let res = client.get(url).send().await.expect("GET");
        let status = res.status();
        let body = res.text().await.expect("body");
        if want(status, &body) || Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/readyz` says which dependency is down while `/healthz` keeps saying the process lives,
/// and it recovers when a server comes back on the same port, without restarting Tessera.
#[tokio::test]
async fn readyz_names_a_stopped_directory_or_store_and_recovers_without_restart() {
    let mut slapd = Slapd::start();
    let mut redis = RedisServer::start();
    let mut b = TesseraBuilder::new();
    b.config.directory.kind = DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    b.config.store.backend = StoreKind::Redis;
    b.config.store.redis_url = Some(redis.url());
    let t = b.start().await;
    let readyz = format!("{}/readyz", t.base);
    let ready = |s: StatusCode, b: &str| s == StatusCode::OK && b.trim() == "ready";
    let (status, body) = poll_until(&readyz, ready).await;
    assert!(ready(status, &body), "{status} {body}");

    slapd.stop();
    let directory_down = |s: StatusCode, b: &str| {
        s == StatusCode::SERVICE_UNAVAILABLE && b.contains("directory") && !b.contains("store")
    };
    let (status, body) = poll_until(&readyz, directory_down).await;
    assert!(directory_down(status, &body), "{status} {body}");
    let alive = reqwest::get(format!("{}/healthz", t.base))
        .await
        .expect("healthz");
    assert_eq!(alive.status(), StatusCode::OK, "the process is still alive");

    slapd.restart();
    let (status, body) = poll_until(&readyz, ready).await;
    assert!(
        ready(status, &body),
        "after slapd came back: {status} {body}"
    );

    redis.stop();
    let store_down = |s: StatusCode, b: &str| {
        s == StatusCode::SERVICE_UNAVAILABLE && b.contains("store") && !b.contains("directory")
    };
    let (status, body) = poll_until(&readyz, store_down).await;
    assert!(store_down(status, &body), "{status} {body}");

    redis.restart();
    let (status, body) = poll_until(&readyz, ready).await;
    assert!(
        ready(status, &body),
        "after redis came back: {status} {body}"
    );
}

/// With the users file there is no directory server to lose: the embedded store alone
/// decides, and it is ready from the start.
#[tokio::test]
async fn readyz_on_embedded_defaults_is_ready() {
    let t = TesseraBuilder::new().start().await;
    let res = reqwest::get(format!("{}/readyz", t.base))
        .await
        .expect("readyz");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(res.text().await.expect("body").trim(), "ready");
}

/// A client that trusts only the test CA in `ca_dir` and opens a new connection (a new TLS
/// handshake) for every request.
fn trusting(ca_dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")])
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Installs the leaf (with its CA after it, as a chain file) and key from `generation`.
fn install_certificate(generation: &Path, cert: &Path, key: &Path) {
    let read = |name: &str| std::fs::read_to_string(generation.join(name)).expect(name);
    std::fs::write(cert, read("server.pem") + &read("ca.pem")).expect("write cert");
    std::fs::write(key, read("server.key")).expect("write key");
}

/// HTTPS straight from the listener, and a renewed certificate (new files in place) served
/// to new connections without a restart, while the process that serves it stays the same.
#[tokio::test]
async fn https_serves_the_certificate_files_and_picks_up_a_renewal_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, renewed) = (dir.path().join("first"), dir.path().join("renewed"));
    for generation in [&first, &renewed] {
        std::fs::create_dir(generation).expect("dir");
        support::slapd::write_certificates(generation);
    }
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    install_certificate(&first, &cert, &key);
    let (old_ca, new_ca) = (trusting(&first), trusting(&renewed));
    let mut served = Served::start_with(
        dir.path(),
        &[
            ("TESSERA__SERVER__TLS_CERT_FILE", cert.display().to_string()),
            ("TESSERA__SERVER__TLS_KEY_FILE", key.display().to_string()),
        ],
        "https",
        &old_ca,
    )
    .await;
    let home = format!("{}/", served.base);
    let page = old_ca.get(&home).send().await.expect("HTTPS home page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        new_ca.get(&home).send().await.is_err(),
        "the renewed certificate is served before it was installed"
    );
    let plain = reqwest::get(format!("http://{}/healthz", served.addr)).await;
    assert!(plain.is_err(), "plain HTTP answered on the HTTPS listener");

    // A renewal tool writes the certificate, then the key: in between the files do not
    // belong together, and the previous pair stays in service. (3 s is past the 2 s after
    // which Tessera looks at the files again.)
    let renewed_chain = std::fs::read_to_string(renewed.join("server.pem")).expect("leaf")
        + &std::fs::read_to_string(renewed.join("ca.pem")).expect("ca");
    std::fs::write(&cert, renewed_chain).expect("write the new certificate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let between = old_ca.get(&home).send().await;
    assert!(
        between.is_ok_and(|r| r.status() == StatusCode::OK),
        "half-renewed files took the old certificate out of service; log:\n{}",
        log(dir.path())
    );
    assert!(
        log(dir.path()).contains("still serving the previous certificate"),
        "{}",
        log(dir.path())
    );

    install_certificate(&renewed, &cert, &key);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match new_ca.get(&home).send().await {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the renewed certificate is not served: {e}; log:\n{}",
                log(dir.path())
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        old_ca.get(&home).send().await.is_err(),
        "the replaced certificate is still served"
    );
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "the process restarted or died"
    );
    served.signal("TERM");
    let status = served.exited_within(PATIENCE).await.expect("exits");
    assert_eq!(status.code(), Some(0), "log:\n{}", log(dir.path()));
}

/// A key that does not belong to the certificate stops the start with the key to fix.
#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, other) = (dir.path().join("one"), dir.path().join("other"));
    for generation in [&one, &other] {
        std::fs::create_dir(generation).expect("dir");
        support::slapd::write_certificates(generation);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .arg("serve")
        .env_remove("TESSERA_CONFIG")
        .env("TESSERA__SERVER__LISTEN", "127.0.0.1:0")
        .env("TESSERA__SERVER__TLS_CERT_FILE", one.join("server.pem"))
        .env("TESSERA__SERVER__TLS_KEY_FILE", other.join("server.key"))
        .output()
        .expect("tessera runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls_key_file"), "{err}");
    assert!(err.contains("is not the private key"), "{err}");
    assert!(
        !dir.path().join("tessera-data").exists(),
        "nothing is created before the refusal"
    );
}
