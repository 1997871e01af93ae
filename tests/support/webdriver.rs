//! A small W3C WebDriver client: Debian's chromedriver driving a real headless Chromium.
//!
//! Only what the browser tests need, as JSON over HTTP with reqwest (W3C WebDriver §6–§17):
//! new session, navigate, find an element by CSS selector, type, click, element text, page
//! source, execute script (sync and async), screenshot, delete session. The wait helpers poll, because a click that submits a
//! form or a `<meta http-equiv="refresh">` changes the page behind the driver's back.
//!
//! Chromium and chromedriver come from Debian (`scripts/install-deps.sh`); test tools never
//! download a browser. When either is missing the test fails with that advice: never skips.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How often the wait helpers look again, and for how long.
pub const POLL: Duration = Duration::from_millis(100);
pub const WAIT: Duration = Duration::from_secs(15);
/// W3C WebDriver §12: the key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process on a free loopback port; killed (with its browsers) on drop.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    base: String,
    log: tempfile::NamedTempFile,
}

impl ChromeDriver {
    /// Starts `/usr/bin/chromedriver --port=P` and waits until `GET /status` says ready.
    pub fn start() -> ChromeDriver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).is_file(),
                "{bin} is missing: run `bash scripts/install-deps.sh` (Debian packages \
                 chromium chromium-driver); browser tests never download a browser"
            );
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = tempfile::NamedTempFile::new().expect("chromedriver log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.path().display()))
            // Its own process group, so drop can end chromedriver and every Chromium it started.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        let mut driver = ChromeDriver {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited with {status}:\n{}", driver.log());
            }
            if raw_http(port, "GET", "/status").is_some_and(|b| b.contains("\"ready\":true")) {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready on port {port}:\n{}",
                driver.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// chromedriver's own log (why a session could not start, browser crashes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A new headless Chromium with the flags `reference/test-peers.md` lists for these
    /// machines (as root Chromium needs --no-sandbox; the background flags keep it off the
    /// closed network) and a fresh profile in a temp dir.
    pub async fn session(&self) -> Session {
        let profile = tempfile::Builder::new()
            .prefix("tessera-chromium-")
            .tempdir()
            .expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1000,800".to_owned(),
        ];
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            }}
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let res = http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .expect("POST /session to chromedriver");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "chromedriver could not start Chromium ({status}): {body}\n{}",
                    self.log()
                )
            })
            .to_owned();
        Session {
            http,
            url: format!("{}/session/{id}", self.base),
            driver_port: self.port,
            id,
            open: true,
            profile: profile.keep(),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole process group we created: chromedriver and anything left of Chromium.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request (chromedriver refuses 1.0) with std only (usable in `Drop`, outside any async runtime).
fn raw_http(port: u16, method: &str, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // chromedriver keeps the connection open: read up to the end of the announced body.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .is_some_and(|len| body.len() >= len)
        });
        if n == 0 || complete {
            return Some(text);
        }
    }
}

/// An element reference (valid until its page goes away).
#[derive(Debug, Clone)]
pub struct Element(String);

/// Why a WebDriver command failed: the W3C error code (`no such element`, ...) and message.
#[derive(Debug, Clone)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

/// One browser (a WebDriver session). End it with [`Session::quit`]; if the test panics
/// first, dropping the session ends it. Drop it before its [`ChromeDriver`].
pub struct Session {
    http: reqwest::Client,
    url: String,
    driver_port: u16,
    id: String,
    open: bool,
    /// The fresh `--user-data-dir`, removed once Chromium has gone.
    profile: PathBuf,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open {
            // A test that panicked never reached `quit`: end the browser (blocking; no runtime
            // may be left to run async code in).
            let _ = raw_http(self.driver_port, "DELETE", &format!("/session/{}", self.id));
        }
        // Chromium's helpers may still write a file or two just after the session ends.
        for _ in 0..20 {
            let _ = std::fs::remove_dir_all(&self.profile);
            std::thread::sleep(Duration::from_millis(50));
            if !self.profile.exists() {
                break;
            }
        }
    }
}

impl Session {
    /// Sends one command; `Ok(value)` or the W3C error (W3C WebDriver §6.6).
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} to chromedriver: {e}"));
        let ok = res.status().is_success();
        let mut v: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON: {e}"));
        let value = v["value"].take();
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    async fn must(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {what} failed: {}: {}", e.error, e.message))
    }

    pub async fn goto(&self, url: &str) {
        self.must(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        let v = self.must(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        let v = self.must(reqwest::Method::GET, "/source", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The page as the user reads it: the body's rendered text (`innerText`), or "" while a
    /// navigation replaces the document.
    pub async fn text(&self) -> String {
        let Ok(body) = self.find("body").await else {
            return String::new();
        };
        self.element_text(&body).await.unwrap_or_default()
    }

    /// The first element matching a CSS selector, now.
    pub async fn find(&self, css: &str) -> Result<Element, WdError> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        Ok(Element(
            v[ELEMENT_KEY].as_str().unwrap_or_default().to_owned(),
        ))
    }

    pub async fn element_text(&self, el: &Element) -> Result<String, WdError> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/text", el.0),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Types `text` into an input (W3C "Element Send Keys").
    pub async fn type_into(&self, el: &Element, text: &str) -> Result<(), WdError> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    /// Empties an input (W3C "Element Clear").
    pub async fn clear(&self, el: &Element) -> Result<(), WdError> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/clear", el.0),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Clicks an element; when that submits a form, the driver waits for the next page.
    pub async fn click(&self, el: &Element) -> Result<(), WdError> {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// Polls until `css` matches, then returns it; `Err` (with what the page was) on timeout.
    pub async fn wait_for(&self, css: &str) -> Result<Element, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.find(css).await {
                return Ok(el);
            }
            if Instant::now() > deadline {
                return Err(self.timeout(&format!("an element matching `{css}`")).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the page's visible text contains `needle`; returns that text.
    pub async fn wait_for_text(&self, needle: &str) -> Result<String, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                return Err(self.timeout(&format!("the text {needle:?}")).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `css`, then clicks it. Retries when a refreshing page swaps the element out
    /// between finding and clicking (`stale element reference`).
    pub async fn click_when_ready(&self, css: &str) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let el = self.wait_for(css).await?;
            match self.click(&el).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!(
                        "clicking `{css}` failed: {}: {}\n{}",
                        e.error,
                        e.message,
                        self.timeout("a clickable element").await
                    ));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits for an input and replaces its value with `text`.
    pub async fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let el = self.wait_for(css).await?;
        self.clear(&el)
            .await
            .map_err(|e| format!("clearing `{css}` failed: {}: {}", e.error, e.message))?;
        self.type_into(&el, text)
            .await
            .map_err(|e| format!("typing into `{css}` failed: {}: {}", e.error, e.message))
    }

    /// What the browser showed when a wait gave up: URL, visible text and HTML source.
    async fn timeout(&self, what: &str) -> String {
        format!(
            "waited {WAIT:?} for {what}\n--- URL: {}\n--- visible text:\n{}\n--- page source:\n{}",
            self.current_url().await,
            self.text().await,
            self.source().await
        )
    }

    /// Runs `script` as the body of a function in the page (W3C "Execute Script", §13.2.1)
    /// and returns what it returns. chromedriver evaluates it through DevTools, outside the
    /// page's Content-Security-Policy: a test can run a library the CSP would refuse as a
    /// `<script>` element.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WdError> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Like [`Session::execute`], but the answer is what the script passes to the callback
    /// WebDriver appends to its arguments (W3C "Execute Async Script", §13.2.2): for promises.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value, WdError> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Saves a PNG of the viewport (W3C "Take Screenshot") to `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.must(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Ends the session (closes Chromium and removes its profile).
    pub async fn quit(mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.open = false;
    }
}

/// Where a browser test saves a screenshot: target/screenshots on every run (CI keeps a
/// clean tree), docs/screenshots (which the README shows) with TESSERA_UPDATE_SCREENSHOTS=1.
#[allow(dead_code)] // not every test binary that includes this module takes screenshots
pub fn screenshot_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var_os("TESSERA_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir.join(name)
}

/// A browser test told as named steps: each test says how a failed step is reported (with
/// the logs of its own peers); the steps themselves are the same everywhere.
#[allow(dead_code)] // not every test binary that includes this module walks steps
pub trait Steps {
    fn session(&self) -> &Session;

    /// Ends the test: `step` failed because of `why`.
    fn fail(&self, step: &str, why: String) -> !;

    /// Waits until the page shows `needle`; returns the page's visible text.
    async fn expect_text(&self, step: &str, needle: &str) -> String {
        match self.session().wait_for_text(needle).await {
            Ok(text) => text,
            Err(e) => self.fail(step, e),
        }
    }

    async fn fill(&self, step: &str, css: &str, text: &str) {
        if let Err(e) = self.session().fill(css, text).await {
            self.fail(step, e)
        }
    }

    async fn click(&self, step: &str, css: &str) {
        if let Err(e) = self.session().click_when_ready(css).await {
            self.fail(step, e)
        }
    }
}
