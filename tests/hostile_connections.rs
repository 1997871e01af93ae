//! Hostile clients at the connection level, over raw TCP against a real server: request heads
//! and bodies sent too slowly, idle keep-alive, a flood of stalled bodies, more connections
//! than allowed or than file descriptors, and heads or bodies over the caps.

mod support {
    pub mod browser;
    pub mod process;
    pub mod tessera;
}

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::tessera::{Tessera, TesseraBuilder};
use tessera::config::{Config, DirectoryKind};
use tessera::directory::ldap::LdapSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Added to every "closed within" bound: the machine has two cores busy with other tests,
/// and a limit that holds a few seconds late still holds.
const MARGIN: Duration = Duration::from_secs(5);

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// An in-process server (the library's `serve`, as `tessera serve` runs it) with 1-2 s limits.
async fn server(tweak: impl FnOnce(&mut Config)) -> Tessera {
    let mut b = TesseraBuilder::new();
    let s = &mut b.config.server;
    s.header_read_timeout_secs = 1;
    s.idle_timeout_secs = 2;
    s.body_read_timeout_secs = 1;
    s.request_timeout_secs = 2;
    tweak(&mut b.config);
    b.start().await
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Everything the server sends until it closes the connection; fails when it is still open
/// after `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        // A reset counts as closed: the server let go either way.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    };
    let closed = tokio::time::timeout(within, read_all).await.is_ok();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(closed, "still open after {within:?}; received: {text:?}");
    text
}

/// One answer on a kept-alive connection: the head, then Content-Length bytes of body.
async fn answer(stream: &mut TcpStream) -> (String, String) {
    answer_within(stream, MARGIN).await
}

async fn answer_within(stream: &mut TcpStream, within: Duration) -> (String, String) {
    tokio::time::timeout(within, read_answer(stream))
        .await
        .expect("answered in time")
}

async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before answering: {got:?}");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().expect("length"));
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed in the body");
        got.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&got[head_end..]).into_owned();
    (head, body)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: idp.test\r\n\r\n").into_bytes()
}

/// A sign-in form POST whose head announces `length` bytes of body.
fn post_head(length: usize) -> Vec<u8> {
    format!(
        "POST /adfs/ls/login HTTP/1.1\r\nHost: idp.test\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// The sign-in page (from /admin, which needs no relying party) answers with a form.
async fn sign_in_page_works(base: &str) {
    let (_, status, page) = Browser::new().get(&format!("{base}/admin")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(input_value(&page, "flow").is_some(), "{page}");
}

/// GET /healthz until it answers 200 (a slot freed a moment ago may not be back yet).
async fn healthy_again(base: &str, within: Duration) {
    let start = Instant::now();
    loop {
        match reqwest::get(format!("{base}/healthz")).await {
            Ok(r) if r.status() == StatusCode::OK => return,
            other => assert!(
                start.elapsed() < within,
                "not serving again after {within:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    // The idle time is long: what closes the connection is the header clock, which starts
    // with the first byte.
    let t = server(|c| c.server.idle_timeout_secs = 60).await;
    let mut c = connect(&t.base).await;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: idp.test\r\nX-Slow: ")
        .await
        .expect("write");
    let got = until_closed(&mut c, secs(1) + MARGIN).await;
    assert!(
        !got.contains("200"),
        "answered a head never finished: {got}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let t = server(|c| {
        c.server.header_read_timeout_secs = 1;
        c.server.idle_timeout_secs = 5;
    })
    .await;
    // Kept alive after an answer, past the header timeout, a second request is still served:
    // hyper's own header timer would have closed it (it starts when the connection goes idle).
    let mut c = connect(&t.base).await;
    c.write_all(&get("/healthz")).await.expect("write");
    let (head, body) = answer(&mut c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "ok");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.write_all(&get("/healthz")).await.expect("write");
    let (head, _) = answer(&mut c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Then nothing: closed within the idle time.
    until_closed(&mut c, secs(5) + MARGIN).await;
    // A connection that never sends a byte is idle from the start.
    let mut silent = connect(&t.base).await;
    until_closed(&mut silent, secs(5) + MARGIN).await;
}

#[tokio::test]
async fn a_body_that_stalls_answers_408_and_closes() {
    let t = server(|c| c.server.request_timeout_secs = 60).await;
    let mut c = connect(&t.base).await;
    c.write_all(&post_head(100)).await.expect("write");
    c.write_all(b"flow=abc&username=al").await.expect("write");
    let got = until_closed(&mut c, secs(1) + MARGIN)
        .await
        .to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 408"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
}

#[tokio::test]
async fn a_body_trickled_past_the_request_timeout_answers_408() {
    // Each byte comes well within the body read timeout; the whole request takes too long.
    let t = server(|c| {
        c.server.body_read_timeout_secs = 5;
        c.server.request_timeout_secs = 2;
    })
    .await;
    let c = connect(&t.base).await;
    let (mut read, mut write) = c.into_split();
    write.write_all(&post_head(1000)).await.expect("write");
    let trickle = tokio::spawn(async move {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut got = Vec::new();
    let within = secs(2) + MARGIN;
    tokio::time::timeout(within, read.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .ok();
    trickle.abort();
    let got = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 408"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_cut_off() {
    // Some 10 MB of answers (5 KB each): more than the socket buffers on the way can hold
    // (Linux grows a send buffer up to 4 MB). Each answer is handed to hyper whole, so a
    // connection whose client reads nothing more counts as idle and the idle timeout ends it.
    const PIPELINED: usize = 2000;
    let t = server(|c| c.server.idle_timeout_secs = 2).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let addr = t.base.trim_start_matches("http://").parse().expect("addr");
    let c = socket.connect(addr).await.expect("connect");
    let (mut read, mut write) = c.into_split();
    // The requests are written aside: once the server stops reading, so would this.
    let writer = tokio::spawn(async move {
        for _ in 0..PIPELINED {
            if write.write_all(&get("/static/tessera.css")).await.is_err() {
                break;
            }
        }
        write
    });
    tokio::time::sleep(secs(2) + MARGIN).await;
    // Had the server waited, reading now would get every answer; it gave up instead.
    let mut got = Vec::new();
    tokio::time::timeout(secs(2) + MARGIN, async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("closed in time");
    writer.abort();
    let answers = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count();
    assert!(
        answers < PIPELINED,
        "all {answers} answers were still delivered"
    );
}

#[tokio::test]
async fn a_handler_that_outlasts_the_request_timeout_answers_503_with_retry_after() {
    // A directory that accepts connections and never answers: the sign-in waits on it.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = hole.local_addr().expect("addr").port();
    let _hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let t = server(|c| {
        c.server.request_timeout_secs = 2;
        c.directory.kind = DirectoryKind::Ldap;
        c.directory.ldap = Some(LdapSettings {
            servers: format!("ldap://127.0.0.1:{port}"),
            base_dn: "dc=corp,dc=example".into(),
            direct_bind: Some("uid={user},dc=corp,dc=example".into()),
            connect_timeout_ms: 60_000,
            op_timeout_ms: 60_000,
            ..LdapSettings::default()
        });
    })
    .await;
    let browser = Browser::new();
    let (url, status, page) = browser.get(&format!("{}/admin", t.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flow = input_value(&page, "flow").expect("flow");
    let res = browser
        .http
        .post(&url)
        .form(&[
            ("flow", flow.as_str()),
            ("username", "alice"),
            ("password", "secret"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(res.headers()["connection"], "close");
    let page = res.text().await.expect("body");
    assert!(
        page.contains("/static/tessera.css") && page.contains("temporarily unavailable"),
        "the user gets a Tessera page: {page}"
    );
}

#[tokio::test]
async fn past_max_connections_a_new_connection_gets_503_and_service_resumes() {
    let t = server(|c| {
        c.server.max_connections = 3;
        c.server.idle_timeout_secs = 2;
    })
    .await;
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(connect(&t.base).await);
    }
    let mut extra = connect(&t.base).await;
    extra.write_all(&get("/healthz")).await.expect("write");
    let got = until_closed(&mut extra, MARGIN).await.to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 503 service unavailable"), "{got}");
    assert!(got.contains("retry-after: 5"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    // The holders send nothing and time out; then the server serves again.
    for h in &mut holders {
        until_closed(h, secs(2) + MARGIN).await;
    }
    healthy_again(&t.base, MARGIN).await;
    sign_in_page_works(&t.base).await;
}

#[tokio::test]
async fn heads_and_bodies_over_the_caps_are_refused_while_saml_sized_ones_pass() {
    let t = server(|c| {
        c.server.header_read_timeout_secs = 10;
        c.server.body_read_timeout_secs = 10;
        c.server.request_timeout_secs = 20;
    })
    .await;
    let limits = Config::default().server;
    // A head over max_header_bytes: 431, closed.
    let mut c = connect(&t.base).await;
    let big = "a".repeat(limits.max_header_bytes as usize + 1024);
    c.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: idp.test\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let got = until_closed(&mut c, MARGIN).await.to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 431"), "{got}");
    // A Redirect-binding URL as large as a signed AuthnRequest with a long RelayState.
    let query = format!(
        "SAMLRequest={}&RelayState={}&SigAlg=x&Signature={}",
        "A".repeat(3000),
        "%2F".repeat(1024),
        "B".repeat(400)
    );
    let res = reqwest::get(format!("{}/healthz?{query}", t.base))
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::OK);

    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(format!("{}/adfs/ls/login", t.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let max = limits.max_body_bytes as usize;
    let res = post(format!("flow=x&username={}", "a".repeat(max))).await;
    assert_eq!(
        res.expect("answered").status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Just under the cap the form is read (and refused for what it says, not its size).
    let res = post(format!("flow=x&username={}", "a".repeat(max - 100))).await;
    let status = res.expect("answered").status();
    assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(status.is_client_error(), "{status}");
}

/// `tessera serve` as a process, optionally under `ulimit -n`, logging JSON to a file.
struct Binary {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn start(nofile: Option<u32>, settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, base) = support::process::free_base();
        let exe = env!("CARGO_BIN_EXE_tessera");
        let mut cmd = match nofile {
            // Without -S or -H bash lowers both limits, so the server cannot raise them back.
            Some(n) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" serve"), exe]);
                c
            }
            None => {
                let mut c = Command::new(exe);
                c.arg("serve");
                c
            }
        };
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA")) {
            cmd.env_remove(k);
        }
        let log = dir.path().join("tessera.log");
        cmd.current_dir(dir.path())
            .env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA__SERVER__PUBLIC_URL", &base)
            .env("TESSERA__LOG__JSON", "true")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in settings {
            cmd.env(format!("TESSERA__SERVER__{}", k.to_ascii_uppercase()), v);
        }
        let mut child = cmd.spawn().expect("tessera serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut bin = Self {
            child,
            base,
            log,
            _dir: dir,
        };
        // The banner ends with the admin console line once the socket is listening.
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("admin console"));
        assert!(ready, "tessera did not start: {}", bin.log_text());
        assert!(bin.alive());
        bin
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines whose message contains `needle`.
    fn log_lines(&self, needle: &str) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
            })
            .collect()
    }

    /// The log lines about `needle`, waiting for the first (the server logs its limits just
    /// after the banner).
    async fn wait_for_log(&self, needle: &str) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let lines = self.log_lines(needle);
            if !lines.is_empty() {
                return lines;
            }
            assert!(
                start.elapsed() < MARGIN,
                "no {needle:?} in the log: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory in bytes.
    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// CPU time (user + system) the process has used, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name (which may hold spaces) start at the state, field 3.
        let rest = stat.rsplit_once(')').expect("comm").1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    }
}

#[tokio::test]
async fn a_flood_of_bodies_stalled_one_byte_short_of_the_limit_keeps_memory_bounded() {
    const FLOOD: usize = 300;
    let config = Config::default().server;
    let max_body = config.max_body_bytes as usize;
    let max_header = config.max_header_bytes as usize;
    // Long timeouts: the bodies must still be held while memory is read.
    let bin = Binary::start(
        None,
        &[
            ("body_read_timeout_secs", "60"),
            ("request_timeout_secs", "120"),
            ("max_connections", "1000"),
        ],
    );
    for path in ["/healthz", "/admin"] {
        reqwest::get(format!("{}{path}", bin.base))
            .await
            .expect("warm up");
    }
    let before = bin.rss();
    let mut flood = Vec::new();
    let body = vec![b'a'; max_body - 1];
    for _ in 0..FLOOD {
        let mut c = connect(&bin.base).await;
        c.write_all(&post_head(max_body)).await.expect("head");
        c.write_all(&body).await.expect("body");
        flood.push(c);
    }
    let mut peak = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(bin.rss());
    }
    // Each stalled request may hold its body, hyper's read buffer and their copies in
    // flight; four times both, plus 32 MB for the tasks and allocator, is generous. With
    // axum's 2 MB default the same flood grew by some 800 MB.
    let bound = before + (FLOOD * 4 * (max_body + max_header)) as u64 + (32 << 20);
    assert!(
        peak < bound,
        "RSS {} MB -> {} MB, bound {} MB",
        before >> 20,
        peak >> 20,
        bound >> 20
    );
    // The flood really was held: no connection has been answered or closed.
    for c in &flood {
        let mut buf = [0u8; 1];
        assert!(
            matches!(c.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a stalled request was answered or closed early"
        );
    }
    eprintln!(
        "stalled-body flood: RSS {} MB -> {} MB (bound {} MB)",
        before >> 20,
        peak >> 20,
        bound >> 20
    );
}

#[tokio::test]
async fn with_few_file_descriptors_extra_connections_are_refused_cleanly_and_service_resumes() {
    const NOFILE: u32 = 256;
    let mut bin = Binary::start(
        Some(NOFILE),
        &[
            ("header_read_timeout_secs", "30"),
            ("idle_timeout_secs", "30"),
        ],
    );
    let derived = bin.wait_for_log("connection cap derived").await;
    let cap = derived[0]["fields"]["max_connections"]
        .as_u64()
        .expect("cap logged") as usize;
    assert!(cap < NOFILE as usize, "cap {cap} leaves a reserve");
    let mut holders = Vec::new();
    for _ in 0..cap {
        holders.push(connect(&bin.base).await);
    }
    // More sockets than the process has descriptors: each extra one is answered and closed.
    let extra = NOFILE as usize + 50 - cap;
    for i in 0..extra {
        let mut c = connect(&bin.base).await;
        let got = until_closed(&mut c, MARGIN).await.to_ascii_lowercase();
        assert!(
            got.starts_with("http/1.1 503") && got.contains("retry-after"),
            "extra connection {i}: {got}"
        );
    }
    assert!(bin.alive(), "the server died: {}", bin.log_text());
    let lines = bin.log_lines("connections refused");
    assert!(
        !lines.is_empty() && lines.len() <= 3,
        "{} refusals logged in {} lines",
        extra,
        lines.len()
    );
    drop(holders);
    healthy_again(&bin.base, MARGIN).await;
    sign_in_page_works(&bin.base).await;
}

#[tokio::test]
async fn when_accept_runs_out_of_file_descriptors_the_server_backs_off_and_serves_again() {
    const NOFILE: u32 = 256;
    // A cap above the descriptors, so accept() itself fails with EMFILE.
    let mut bin = Binary::start(
        Some(NOFILE),
        &[
            ("max_connections", "1000"),
            ("header_read_timeout_secs", "3"),
            ("idle_timeout_secs", "3"),
        ],
    );
    let warned = bin
        .wait_for_log("above what the file-descriptor limit")
        .await;
    assert_eq!(warned.len(), 1);
    let mut holders = Vec::new();
    for _ in 0..NOFILE + 50 {
        holders.push(connect(&bin.base).await);
    }
    // While out of descriptors the accept loop waits between tries instead of spinning.
    let (ticks, start) = (bin.cpu_ticks(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = bin.cpu_ticks() - ticks;
    let wall_ticks = start.elapsed().as_millis() as u64 / 10;
    eprintln!("out of descriptors: {used} CPU ticks in {wall_ticks}");
    assert!(
        used < wall_ticks / 2,
        "{used} ticks of CPU in {wall_ticks} while out of descriptors"
    );
    assert!(bin.alive(), "the server died: {}", bin.log_text());
    // A request queued meanwhile is answered once idle holders are closed.
    let mut c = connect(&bin.base).await;
    c.write_all(&get("/healthz")).await.expect("write");
    let (head, body) = answer_within(&mut c, secs(3) * 2 + MARGIN).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "ok");
    let lines = bin.log_lines("out of file descriptors");
    assert!(
        !lines.is_empty() && lines.len() <= 3,
        "{} lines about running out",
        lines.len()
    );
    drop(holders);
    healthy_again(&bin.base, MARGIN).await;
    sign_in_page_works(&bin.base).await;
}
