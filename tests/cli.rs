//! The `tessera` binary as an admin uses it: first run on embedded defaults, `rp add`,
//! `keys import`, `check-config` (with a directory sign-in run step by step), `metadata`.

mod support {
    pub mod browser;
    pub mod process;
    pub mod slapd;
    pub mod sp;
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use support::browser::Browser;
use support::sp::TestSp;

fn tessera(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.current_dir(dir).args(args).env_remove("TESSERA_CONFIG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA__")) {
        c.env_remove(k);
    }
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    tessera(dir, args).output().expect("tessera runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn first_run_creates_keys_store_and_a_demo_user_who_can_sign_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sp = TestSp::new("cli");
    let md = dir.path().join("sp.xml");
    std::fs::write(&md, sp.metadata(false)).expect("write");
    let out = run(
        dir.path(),
        &[
            "rp",
            "add",
            "--metadata",
            "sp.xml",
            "--preset",
            "netscaler",
            "--name",
            "Gateway",
            "--display-name",
            "Citrix Gateway",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("shown as \"Citrix Gateway\""),
        "{}",
        text(&out.stdout)
    );
    // Registered in the store, like a console trust: no file, in force without a restart.
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    assert!(listed.contains("console:gateway"), "{listed}");
    let again = run(dir.path(), &["rp", "add", "--metadata", "sp.xml"]);
    assert!(!again.status.success(), "a duplicate entity ID is refused");
    assert!(
        text(&again.stderr).contains("already registered"),
        "{}",
        text(&again.stderr)
    );
    // A second SP that wants Response and Assertion signed (NetScaler STRICT).
    let strict = TestSp::new("cli-strict");
    std::fs::write(dir.path().join("strict.xml"), strict.metadata(false)).expect("write");
    let bogus = run(
        dir.path(),
        &["rp", "add", "--metadata", "strict.xml", "--sign", "all"],
    );
    assert!(
        !bogus.status.success(),
        "an unknown --sign value is refused"
    );
    let out = run(
        dir.path(),
        &[
            "rp",
            "add",
            "--metadata",
            "strict.xml",
            "--name",
            "Strict",
            "--sign",
            "both",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    let strict_line = listed
        .lines()
        .find(|l| l.contains("console:strict"))
        .unwrap_or_default();
    assert!(strict_line.contains("sign=Both"), "{listed}");

    let (port, base) = support::process::free_base();
    let mut child = tessera(dir.path(), &["serve"])
        .env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA__SERVER__PUBLIC_URL", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let _server = Server(child);
    let mut password = None;
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(pw) = line.split("password: ").nth(1) {
            password = Some(pw.trim().to_owned());
        }
        if line.contains("admin console") {
            break;
        }
    }
    let password = password.unwrap_or_else(|| panic!("demo password printed once:\n{printed}"));
    for needle in [
        "/adfs/ls/",
        "/FederationMetadata/2007-06/FederationMetadata.xml",
        "/docs",
    ] {
        assert!(
            printed.contains(&format!("{base}{needle}")),
            "{needle} missing from:\n{printed}"
        );
    }
    for f in ["signing.key", "signing.crt", "users.toml", "store.redb"] {
        assert!(
            dir.path().join("tessera-data").join(f).is_file(),
            "{f} not created"
        );
    }
    let users = std::fs::read_to_string(dir.path().join("tessera-data/users.toml")).expect("users");
    assert!(
        users.contains("$argon2id$") && !users.contains(&password),
        "only the hash is stored"
    );

    let browser = Browser::new();
    let (url, status, page) = browser
        .get(&format!(
            "{base}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            sp.entity_id
        ))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    // The demo user has no second factor yet: inline enrollment of an authenticator app.
    let (_, status, page) = browser.sign_in(&url, &page, "demo", &password).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains("Set up an authenticator app"), "{page}");
    let flow = support::browser::input_value(&page, "flow").expect("flow");
    let login_url = format!("{base}/adfs/ls/login");
    let (_, _, page) = browser
        .post(&login_url, &[("flow", &flow), ("action", "enroll_app")])
        .await;
    assert!(page.contains("<svg"), "QR code shown inline: {page}");
    let secret = page
        .split("id=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("secret text");
    let secret = tessera::mfa::oath::from_base32(secret).expect("base32 secret");
    let params = tessera::mfa::oath::OathParams::default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_, _, page) = browser
        .post(
            &login_url,
            &[
                ("flow", &flow),
                ("action", "enroll_confirm"),
                ("code", "000000x"),
            ],
        )
        .await;
    assert!(
        page.contains("not correct"),
        "a wrong code is refused: {page}"
    );
    let code = tessera::mfa::oath::code_at(&secret, &params, now);
    let (_, status, page) = browser
        .post(
            &login_url,
            &[
                ("flow", &flow),
                ("action", "enroll_confirm"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let xml = Browser::post_form(&page).xml();
    assert!(xml.contains(">demo@tessera.local</saml:NameID>"), "{xml}");

    // A new browser: password, then a code computed from the enrolled secret.
    let fresh = Browser::new();
    let (url, _, page) = fresh
        .get(&format!(
            "{base}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            sp.entity_id
        ))
        .await;
    let (_, _, page) = fresh.sign_in(&url, &page, "demo", &password).await;
    assert!(page.contains("verification code"), "{page}");
    let flow = support::browser::input_value(&page, "flow").expect("flow");
    let (_, _, page) = fresh
        .post(
            &login_url,
            &[("flow", &flow), ("action", "code"), ("code", &code)],
        )
        .await;
    assert!(
        page.contains("not correct"),
        "the enrollment code is spent: {page}"
    );
    let next = tessera::mfa::oath::code_at(&secret, &params, now + 30);
    let (_, status, page) = fresh
        .post(
            &login_url,
            &[("flow", &flow), ("action", "code"), ("code", &next)],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(
        Browser::post_form(&page)
            .xml()
            .contains("demo@tessera.local")
    );
    for path in ["/", "/docs", "/healthz"] {
        let (_, status, _) = browser.get(&format!("{base}{path}")).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path}");
    }
}

#[test]
fn check_config_names_the_bad_key_and_rp_add_refuses_hostile_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[idp]\nassertion_lifetime_secs = 5\n",
    )
    .expect("write");
    let out = run(dir.path(), &["--config", "bad.toml", "check-config"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("idp.assertion_lifetime_secs"),
        "{}",
        text(&out.stderr)
    );

    let out = run(dir.path(), &["check-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("configuration OK"));

    let hostile = "<!DOCTYPE x [<!ENTITY a SYSTEM \"file:///etc/passwd\">]><md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"&a;\"/>";
    std::fs::write(dir.path().join("evil.xml"), hostile).expect("write");
    let out = run(dir.path(), &["rp", "add", "--metadata", "evil.xml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("metadata"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("metadata").exists()
            || std::fs::read_dir(dir.path().join("metadata"))
                .expect("dir")
                .next()
                .is_none(),
        "nothing stored"
    );
}

#[test]
fn rp_add_wsfed_registers_a_relying_party_by_hand_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &[
            "rp",
            "add",
            "--wsfed",
            "--realm",
            "urn:app:cli",
            "--reply",
            "https://app.corp.example/signin",
            "--reply",
            "https://app2.corp.example/signin",
            "--name",
            "CLI App",
            "--token",
            "saml2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("registered urn:app:cli as console:cli-app"),
        "{}",
        text(&out.stdout)
    );
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("urn:app:cli"))
        .unwrap_or_else(|| panic!("not listed: {listed}"));
    assert!(
        line.starts_with("CLI App\t")
            && line.contains("wsfed token=saml2")
            && line.contains("acs=https://app.corp.example/signin"),
        "{line}"
    );
    let again = run(
        dir.path(),
        &[
            "rp",
            "add",
            "--wsfed",
            "--realm",
            "urn:app:cli",
            "--reply",
            "https://x.example/",
        ],
    );
    assert!(!again.status.success(), "a realm is registered once");
    for bad in [
        vec![
            "--wsfed",
            "--realm",
            "urn:app:bad",
            "--reply",
            "javascript:alert(1)",
        ],
        vec!["--wsfed", "--realm", "urn:app:bad", "--reply", "/relative"],
        vec!["--wsfed", "--realm", "urn:app:bad"],
        vec!["--wsfed", "--reply", "https://app.example/"],
        vec!["--realm", "urn:app:bad", "--reply", "https://app.example/"],
        vec![
            "--wsfed",
            "--realm",
            "urn:app:bad",
            "--reply",
            "https://a.example/",
            "--token",
            "saml3",
        ],
        vec![
            "--wsfed",
            "--realm",
            "line\nbreak",
            "--reply",
            "https://a.example/",
        ],
    ] {
        let mut args = vec!["rp", "add"];
        args.extend(bad.iter().copied());
        let out = run(dir.path(), &args);
        assert!(!out.status.success(), "{bad:?} accepted");
    }
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    assert!(!listed.contains("urn:app:bad"), "{listed}");
}

#[test]
fn keys_import_from_pfx_replaces_the_signing_certificate_and_metadata_publishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert) = tessera::keys::generate("ADFS Signing - adfs.corp.example", 30).expect("gen");
    let pfx = openssl::pkcs12::Pkcs12::builder()
        .pkey(&key)
        .cert(&cert)
        .build2("s3cret")
        .expect("pfx");
    std::fs::write(dir.path().join("adfs.pfx"), pfx.to_der().expect("der")).expect("write");
    std::fs::write(dir.path().join("pw.txt"), "s3cret\n").expect("write");
    let wrong = dir.path().join("wrong.txt");
    std::fs::write(&wrong, "nope").expect("write");
    let out = run(
        dir.path(),
        &[
            "keys",
            "import",
            "--pfx",
            "adfs.pfx",
            "--password-file",
            "wrong.txt",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("password"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        dir.path(),
        &[
            "keys",
            "import",
            "--pfx",
            "adfs.pfx",
            "--password-file",
            "pw.txt",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sha1 = hex::encode(
        cert.digest(openssl::hash::MessageDigest::sha1())
            .expect("digest"),
    )
    .to_uppercase();
    let shown = run(dir.path(), &["keys", "show"]);
    assert!(
        text(&shown.stdout).contains(&sha1),
        "{}",
        text(&shown.stdout)
    );
    let md = run(dir.path(), &["metadata"]);
    let der = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        cert.to_der().expect("der"),
    );
    assert!(
        text(&md.stdout).contains(&der),
        "metadata publishes the imported certificate"
    );
    let pem = run(dir.path(), &["metadata", "--cert"]);
    assert!(text(&pem.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn users_bypass_lets_a_user_skip_the_second_factor_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &[
            "users", "bypass", "alice", "--secs", "5", "--reason", "ticket 1",
        ],
    );
    assert!(!out.status.success(), "out-of-range duration refused");
    assert!(
        text(&out.stderr).contains("between 30 seconds and 24 hours"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["users", "bypass", "alice", "--reason", "ticket 42"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("300 s"),
        "default length: {}",
        text(&out.stdout)
    );
    // The bypass is in the store the server will read.
    let config = tessera::config::Config::load(None, std::iter::empty()).expect("config");
    let mut config = config;
    config.server.data_dir = dir.path().join("tessera-data");
    let store =
        tessera::startup::open_store(&config, std::sync::Arc::new(tessera::clock::SystemClock))
            .await
            .expect("store");
    let v = store
        .get(&tessera::login::bypass_key("ALICE"))
        .await
        .expect("get");
    assert_eq!(v.as_deref(), Some(&b"ticket 42"[..]));
    drop(store);

    // The rest of the help desk's commands, through the console's code.
    let ok = |args: &[&str]| {
        let out = run(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let refused = |args: &[&str]| {
        let out = run(dir.path(), args);
        assert!(!out.status.success(), "{args:?} must fail");
        text(&out.stderr)
    };
    assert!(ok(&["users", "set-default", "alice", "oath"]).contains("company default -> oath"));
    assert!(refused(&["users", "set-default", "alice", "fax"]).contains("not a method"));
    let shown = ok(&["users", "show", "alice"]);
    assert!(shown.contains("default method  oath"), "{shown}");
    assert!(shown.contains("bypass waiting"), "{shown}");
    assert!(ok(&["users", "unblock", "alice"]).contains("user.unblock"));
    assert!(refused(&["users", "reset-pin", "alice"]).contains("has no PIN"));
    assert!(refused(&["users", "remove", "alice", "--token", "nope"]).contains("No such token"));
    assert!(refused(&["users", "remove", "alice"]).contains("exactly one"));
}

#[test]
fn settings_set_validates_stores_and_get_says_where_a_value_comes_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["settings", "get", "timeout_secs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("55"), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("(config)"),
        "{}",
        text(&out.stdout)
    );

    for (args, expect) in [
        (vec!["timeout_secs", "5"], "outside 10..=300"),
        (vec!["trusted_networks", "10.0.0.0/33"], "trusted_networks"),
        (vec!["methods", "oath"], "company_default"),
        (vec!["no_such_setting", "1"], "no setting no_such_setting"),
        (vec!["enabled", "perhaps"], "not on/off"),
    ] {
        let mut full = vec!["settings", "set"];
        full.extend(args.iter().copied());
        let out = run(dir.path(), &full);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(
            text(&out.stderr).contains(expect),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(dir.path(), &["settings", "get", "timeout_secs"]);
    assert!(text(&out.stdout).contains("(config)"), "nothing was stored");

    let out = run(dir.path(), &["settings", "set", "methods", "oath", "sms"]);
    assert!(!out.status.success(), "push is still the company default");
    let out = run(dir.path(), &["settings", "set", "company_default", "oath"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("push -> oath"),
        "{}",
        text(&out.stdout)
    );
    let out = run(dir.path(), &["settings", "set", "methods", "oath", "sms"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(dir.path(), &["settings", "get"]);
    let all = text(&out.stdout);
    assert!(all.contains("oath, sms"), "{all}");
    assert!(all.contains("gateway.webhook_secret"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("methods") && l.ends_with("(admin)")),
        "{all}"
    );

    // Switching bypasses off makes the help-desk command refuse.
    let out = run(dir.path(), &["settings", "set", "allow_bypass", "off"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &["users", "bypass", "demo", "--reason", "ticket 7"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("switched off"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn certs_generate_next_rollover_and_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let show = || text(&run(dir.path(), &["certs", "show"]).stdout);
    let first = show();
    assert!(
        first.contains("(data folder)") && first.contains("next     none"),
        "{first}"
    );
    let out = run(dir.path(), &["certs", "rollover"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no next certificate"),
        "{}",
        text(&out.stderr)
    );
    let out = run(dir.path(), &["certs", "generate-next"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let with_next = show();
    assert!(with_next.contains("(published in metadata)"), "{with_next}");
    let next_line = with_next
        .lines()
        .find(|l| l.starts_with("next"))
        .expect("next line")
        .to_owned();
    let next_sha1 = next_line
        .split_whitespace()
        .nth(2)
        .expect("thumbprint")
        .to_owned();
    let out = run(dir.path(), &["certs", "rollover"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = show();
    assert!(
        after.contains(&format!("current  SHA-1 {next_sha1}")),
        "{after}"
    );
    assert!(
        after.contains("(store)") && after.contains("next     none"),
        "{after}"
    );
}

#[tokio::test]
async fn rp_list_shows_file_and_console_trusts_and_rp_remove_drops_a_console_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_sp = TestSp::new("file-sp");
    // A file trust, as an admin (or an older `rp add`) leaves it in the metadata folder.
    std::fs::create_dir_all(dir.path().join("metadata")).expect("mkdir");
    std::fs::write(
        dir.path().join("metadata/file.xml"),
        file_sp.metadata(false),
    )
    .expect("write");
    {
        let mut config = tessera::config::Config::default();
        config.server.data_dir = dir.path().join("tessera-data");
        let store =
            tessera::startup::open_store(&config, std::sync::Arc::new(tessera::clock::SystemClock))
                .await
                .expect("store");
        let console_sp = TestSp::new("console-sp");
        let record = tessera::rp::live::StoredRp {
            metadata_xml: console_sp.metadata(false),
            config: Default::default(),
            updated_by: "test".into(),
            updated_at: 0,
        };
        tessera::rp::live::save(store.as_ref(), "console-sp", &record)
            .await
            .expect("save");
    }
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    assert!(
        listed.contains("https://file-sp.sp.test") && listed.contains("metadata/"),
        "{listed}"
    );
    assert!(
        listed.contains("https://console-sp.sp.test") && listed.contains("console:console-sp"),
        "{listed}"
    );
    let out = run(dir.path(), &["rp", "remove", "nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no such trust"),
        "{}",
        text(&out.stderr)
    );
    let out = run(dir.path(), &["rp", "remove", "console-sp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&run(dir.path(), &["rp", "list"]).stdout);
    assert!(!listed.contains("console-sp"), "{listed}");
}

/// Logs redirected to a file (systemd, docker, `2> tessera.log`) are plain text: no colour
/// codes. The refused request also shows what the error pages log: method, path, status and
/// the framework's words, never the body that was sent.
#[tokio::test]
async fn logs_to_a_file_have_no_colour_codes_and_no_request_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base, log_path) = serve_logged(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/adfs/ls/login"))
        .form(&[("password", "SECRET-IN-THE-BODY")])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    drop(server);

    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        !log.contains('\x1b'),
        "colour codes in the log file:\n{log:?}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("error page"))
        .unwrap_or_else(|| panic!("no line for the refused request:\n{log}"));
    for needle in [
        "method=POST",
        "path=/adfs/ls/login",
        "status=422",
        "missing field",
    ] {
        assert!(line.contains(needle), "{needle} not in {line}");
    }
    assert!(!log.contains("SECRET-IN-THE-BODY"), "{log}");
}

/// Runs a command with `input` on its stdin (a password, as an admin would type it).
fn run_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = tessera(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tessera runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("stdin");
    drop(stdin);
    child.wait_with_output().expect("tessera ends")
}

/// `check-config --login USER` with `password` on stdin: (success, stdout, stderr).
fn check_login(dir: &Path, config: &str, login: &str, password: &str) -> (bool, String, String) {
    let args = ["--config", config, "check-config", "--login", login];
    let out = run_with_stdin(dir, &args, &format!("{password}\n"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "the password is never echoed: {stdout}{stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// A config for the test slapd; `extra` is appended to `[directory.ldap]`, `mfa` to `[mfa]`.
fn ldap_config(dir: &Path, slapd: &support::slapd::Slapd, extra: &str, mfa: &str) -> String {
    let s = slapd.settings();
    let name = format!("ldap-{}.toml", dir.read_dir().expect("dir").count());
    std::fs::write(
        dir.join(&name),
        format!(
            "[server]\ndata_dir = \"data\"\n[directory]\nkind = \"ldap\"\n[directory.ldap]\n\
             servers = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"{}\"\n\
             base_dn = \"{}\"\n{extra}\n[mfa]\n{mfa}\n",
            s.servers,
            slapd.ca_file().display(),
            s.bind_dn,
            s.bind_password,
            s.base_dn,
        ),
    )
    .expect("write config");
    name
}

#[test]
fn check_config_login_prints_every_directory_step_of_a_good_sign_in() {
    let slapd = support::slapd::Slapd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ldap_config(dir.path(), &slapd, "", "phone_attributes = [\"mobile\"]");
    let pw = support::slapd::password_of("alice");
    let (ok, out, err) = check_login(dir.path(), &config, "alice", &pw);
    assert!(ok, "{out}{err}");
    let server = slapd.ldap_url();
    let steps = [
        "connect",
        server.trim_end_matches('/'),
        "service bind",
        support::slapd::SVC_DN,
        "search filter",
        "(sAMAccountName=alice)",
        "entries found",
        "1: uid=alice,ou=people,dc=corp,dc=example",
        "user bind",
        "success",
        "attributes",
        "userprincipalname: alice@corp.example",
        "groups",
        "Gateway Users, Staff",
        "phones",
        // Only the listed attribute: the mobile, not telephoneNumber (+1 555 0100 31).
        "+1555010030 (mobile)",
        "sign-in path",
        "signs in as alice",
        "directory check OK",
    ];
    let mut at = 0;
    for step in steps.iter().copied() {
        let found = out[at..].find(step);
        assert!(found.is_some(), "{step:?} (in order) in {out}");
        at += found.unwrap_or(0);
    }
    assert!(!out.contains("+1555010031"), "{out}");

    // An empty phone list means no directory phones, though the entry has two.
    let none = ldap_config(dir.path(), &slapd, "", "phone_attributes = []");
    let (ok, out, err) = check_login(dir.path(), &none, "alice", &pw);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no phones from the directory"), "{out}");
    assert!(!out.contains("+155501000"), "{out}");

    // An OpenLDAP-style filter (the README's example) finds the same entry.
    let openldap = ldap_config(
        dir.path(),
        &slapd,
        "user_filter = \"(&(objectClass=inetOrgPerson)(uid={user}))\"",
        "",
    );
    let (ok, out, err) = check_login(dir.path(), &openldap, "alice", &pw);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("(&(objectClass=inetOrgPerson)(uid=alice))"),
        "{out}"
    );
}

#[test]
fn check_config_login_names_the_failing_step() {
    let slapd = support::slapd::Slapd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ldap_config(dir.path(), &slapd, "", "");

    // A wrong password: the user bind step fails, with the LDAP result.
    let (ok, out, err) = check_login(dir.path(), &config, "wrongpw1", "not-the-password");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: user bind"), "{err}");
    assert!(
        out.contains("1: uid=wrongpw1,ou=people") && out.contains("invalidCredentials"),
        "{out}"
    );
    assert!(
        !out.contains("sign-in path"),
        "the pooled sign-in is not tried: {out}"
    );

    // An unknown user: the filter used and zero entries.
    let (ok, out, err) = check_login(dir.path(), &config, "nobody-here", "whatever-1");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: entries found"), "{err}");
    assert!(out.contains("(sAMAccountName=nobody-here)"), "{out}");
    assert!(out.contains("0 entries"), "{out}");
    assert!(
        !out.contains("user bind"),
        "no bind without an entry: {out}"
    );

    // Filter metacharacters are escaped (RFC 4515 §3): `*` matches itself, not everyone.
    let (ok, out, err) = check_login(dir.path(), &config, "a*)(uid=*", "whatever-1");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: entries found"), "{err}");
    assert!(
        out.contains("(sAMAccountName=a\\2a\\29\\28uid=\\2a)"),
        "{out}"
    );

    // A disabled account is named before any bind.
    let (ok, _, err) = check_login(dir.path(), &config, "disabled1", "disabled1-Pass-1");
    assert!(!ok);
    assert!(err.contains("failed at: account state"), "{err}");

    // A wrong service password: the service bind step.
    let bad_svc = ldap_config(dir.path(), &slapd, "", "").to_owned();
    let text_of = std::fs::read_to_string(dir.path().join(&bad_svc)).expect("read");
    std::fs::write(
        dir.path().join(&bad_svc),
        text_of.replace(support::slapd::SVC_PASSWORD, "wrong-svc-password"),
    )
    .expect("write");
    let (ok, out, err) = check_login(dir.path(), &bad_svc, "alice", "alice-Pass-1");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: service bind"), "{err}");

    // No server answers: the connect step, naming the server.
    let port = support::slapd::free_port();
    let down = ldap_config(dir.path(), &slapd, "", "");
    let text_of = std::fs::read_to_string(dir.path().join(&down)).expect("read");
    std::fs::write(
        dir.path().join(&down),
        text_of.replace(&slapd.ldap_url(), &format!("ldap://127.0.0.1:{port}/")),
    )
    .expect("write");
    let (ok, out, err) = check_login(dir.path(), &down, "alice", "alice-Pass-1");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: connect"), "{err}");
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");
}

#[test]
fn check_config_login_against_the_users_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = tessera::directory::file::FileUser {
        username: "fjones".into(),
        password_hash: tessera::directory::file::hash_password("Fj-Pass-1").expect("hash"),
        mobile: Some("+1 555 0100 77".into()),
        groups: vec!["Staff".into()],
        ..Default::default()
    };
    let file = tessera::directory::file::UsersFile { users: vec![user] };
    std::fs::write(
        dir.path().join("users.toml"),
        toml::to_string(&file).expect("toml"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("file.toml"),
        "[directory]\nkind = \"file\"\nusers_file = \"users.toml\"\n",
    )
    .expect("write");
    let (ok, out, err) = check_login(dir.path(), "file.toml", "fjones", "Fj-Pass-1");
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("found fjones") && out.contains("correct"),
        "{out}"
    );
    assert!(out.contains("+1555010077 (mobile)"), "{out}");
    let (ok, out, err) = check_login(dir.path(), "file.toml", "fjones", "wrong-1");
    assert!(!ok, "{out}");
    assert!(err.contains("failed at: password"), "{err}");
    let (ok, _, err) = check_login(dir.path(), "file.toml", "nobody", "wrong-1");
    assert!(!ok);
    assert!(err.contains("failed at: users file"), "{err}");
}

/// `tessera serve` on the embedded store in `dir`, with the port it listens on.
fn serve(dir: &Path) -> (Server, String) {
    let (port, base) = support::process::free_base();
    let mut child = tessera(dir, &["serve"])
        .env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA__SERVER__PUBLIC_URL", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    for line in BufReader::new(stdout).lines() {
        if line.expect("line").contains("admin console") {
            break;
        }
    }
    (server, base)
}

/// A CLI command run by the help-desk user `helpdesk`, which must succeed.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = tessera(dir, args)
        .env("USER", "helpdesk")
        .output()
        .expect("tessera runs");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The HTTP status of `sp`'s AuthnRequest (Redirect binding) at the SSO endpoint.
async fn authn_status(base: &str, sp: &TestSp) -> reqwest::StatusCode {
    let q = sp.redirect_query(&sp.xml(&sp.req()), None, None);
    let (_, status, _) = Browser::new().get(&format!("{base}/adfs/ls/?{q}")).await;
    status
}

/// Polls for up to five seconds until `sp`'s AuthnRequest gets `want` (trust changes reach
/// a node within a second).
async fn wait_for_status(base: &str, sp: &TestSp, want: reqwest::StatusCode) {
    let mut last = None;
    for _ in 0..50 {
        let status = authn_status(base, sp).await;
        if status == want {
            return;
        }
        last = Some(status);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{}: wanted {want}, last {last:?}", sp.entity_id);
}

/// Every store command works while `serve` holds the embedded store (it goes through the
/// admin socket), says what it would have said, and is logged with the CLI actor.
#[tokio::test]
async fn users_settings_and_rp_commands_work_while_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base) = serve(dir.path());

    let shown = ok(dir.path(), &["users", "show", "demo"]);
    assert!(shown.contains("user            demo"), "{shown}");
    assert!(shown.contains("default method  company default"), "{shown}");
    let set = ok(dir.path(), &["settings", "set", "methods", "push", "oath"]);
    assert!(set.contains("-> push, oath"), "{set}");
    let got = ok(dir.path(), &["settings", "get", "methods"]);
    assert!(
        got.contains("push, oath") && got.contains("(admin)"),
        "{got}"
    );
    let refused = run(dir.path(), &["settings", "set", "no_such_key", "1"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("no setting no_such_key"),
        "the server's refusal reads as the CLI's: {}",
        text(&refused.stderr)
    );
    assert_eq!(ok(dir.path(), &["rp", "list"]), "", "no trusts yet");
    let certs = ok(dir.path(), &["certs", "show"]);
    assert!(
        certs.contains("current  SHA-1") && certs.contains("next     none"),
        "{certs}"
    );

    // `rp add` on the live server: the SP's requests are refused, then accepted at once.
    let sp = TestSp::new("live-add");
    std::fs::write(dir.path().join("live.xml"), sp.metadata(false)).expect("write");
    assert_eq!(
        authn_status(&base, &sp).await,
        reqwest::StatusCode::BAD_REQUEST
    );
    let added = ok(
        dir.path(),
        &["rp", "add", "--metadata", "live.xml", "--name", "Live"],
    );
    assert!(
        added.contains("registered https://live-add.sp.test"),
        "{added}"
    );
    wait_for_status(&base, &sp, reqwest::StatusCode::OK).await;
    let listed = ok(dir.path(), &["rp", "list"]);
    assert!(
        listed.contains("console:live") && listed.contains("sign=Assertion"),
        "{listed}"
    );

    // `users add` on the live server: the running server re-reads the users file, so the
    // new user signs in without a restart.
    let added = run_with_stdin(dir.path(), &["users", "add", "newbie"], "Newbie-Pass-1\n");
    assert!(added.status.success(), "{}", text(&added.stderr));
    // The server looks at the file at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let browser = Browser::new();
    let q = sp.redirect_query(&sp.xml(&sp.req()), None, None);
    let (url, _, page) = browser.get(&format!("{base}/adfs/ls/?{q}")).await;
    let (_, status, page) = browser
        .sign_in(&url, &page, "newbie", "Newbie-Pass-1")
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(page.contains("Set up verification"), "{page}");

    // Registered twice: refused without --replace; --replace changes the signing choice.
    let again = run(dir.path(), &["rp", "add", "--metadata", "live.xml"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already registered"),
        "{}",
        text(&again.stderr)
    );
    let replaced = ok(
        dir.path(),
        &[
            "rp",
            "add",
            "--metadata",
            "live.xml",
            "--replace",
            "--sign",
            "both",
        ],
    );
    assert!(replaced.contains("changed"), "{replaced}");
    let listed = ok(dir.path(), &["rp", "list"]);
    let line = listed
        .lines()
        .find(|l| l.contains("live-add"))
        .unwrap_or_default();
    assert!(
        line.contains("sign=Both") && line.contains("Live"),
        "the name stays: {listed}"
    );
    ok(dir.path(), &["rp", "remove", "console:live"]);
    wait_for_status(&base, &sp, reqwest::StatusCode::BAD_REQUEST).await;

    // Each change is in the change log under the CLI user, as the console would log it.
    let mut server = server;
    // SAFETY: kill(2) on the child we started; a graceful stop, as systemd asks for one.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    assert!(server.0.wait().expect("wait").success());
    let mut config = tessera::config::Config::default();
    config.server.data_dir = dir.path().join("tessera-data");
    let store =
        tessera::startup::open_store(&config, std::sync::Arc::new(tessera::clock::SystemClock))
            .await
            .expect("the server let go of the store");
    let log = tessera::admin::changes::recent(store.as_ref(), 50)
        .await
        .expect("change log");
    let actions: Vec<_> = log
        .iter()
        .filter(|c| c.admin == "cli:helpdesk")
        .map(|c| c.action.as_str())
        .collect();
    for action in ["rp.add", "rp.update", "rp.delete"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    assert!(
        !dir.path().join("tessera-data/admin.sock").exists(),
        "the socket goes with the server"
    );
}

/// A trust in the metadata folder is removed by `rp remove` while serving: both files are
/// deleted and the running server stops accepting the SP.
#[tokio::test]
async fn rp_remove_drops_a_file_trust_from_the_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sp = TestSp::new("file-trust");
    let folder = dir.path().join("metadata");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("filesp.xml"), sp.metadata(false)).expect("write");
    std::fs::write(folder.join("filesp.toml"), "sign = \"response\"\n").expect("write");
    let (_server, base) = serve(dir.path());
    assert_eq!(authn_status(&base, &sp).await, reqwest::StatusCode::OK);

    let missing = run(dir.path(), &["rp", "remove", "../etc/passwd"]);
    assert!(!missing.status.success(), "nothing outside the folder");
    assert!(text(&missing.stderr).contains("no such trust"));
    let removed = ok(dir.path(), &["rp", "remove", "filesp"]);
    assert!(removed.contains("https://file-trust.sp.test"), "{removed}");
    assert!(!folder.join("filesp.xml").exists() && !folder.join("filesp.toml").exists());
    wait_for_status(&base, &sp, reqwest::StatusCode::BAD_REQUEST).await;
    assert!(!ok(dir.path(), &["rp", "list"]).contains("file-trust"));
}

/// What a hostile local client sends to the admin socket is refused with a reason, and the
/// server goes on serving both the CLI and the web.
#[tokio::test]
async fn the_admin_socket_refuses_garbage_oversize_and_unknown_operations() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, base) = serve(dir.path());
    let socket = dir.path().join("tessera-data/admin.sock");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the serving user may connect");

    let ask = |body: &[u8]| -> String {
        let mut s = UnixStream::connect(&socket).expect("connect");
        // An oversize body is cut off by the server: the write may then fail, the reply not.
        let _ = s.write_all(body);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    };
    let garbage = ask(b"\x00\xffnot json at all");
    assert!(
        garbage.contains("\"refused\"") && garbage.contains("not a request"),
        "{garbage}"
    );
    let unknown = ask(br#"{"user":"x","op":{"op":"shell","command":"rm -rf /"}}"#);
    assert!(unknown.contains("unknown variant `shell`"), "{unknown}");
    let extra = ask(br#"{"user":"x","op":{"op":"rp-list"},"as_root":true}"#);
    assert!(extra.contains("unknown field"), "{extra}");
    let inner = ask(br#"{"user":"x","op":{"op":"rp-remove","slug":"a","force":true}}"#);
    assert!(inner.contains("unknown field"), "{inner}");
    let mut huge = br#"{"user":"x","op":{"op":"settings-get","key":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(br#""}}"#);
    let oversize = ask(&huge);
    assert!(oversize.contains("larger than"), "{oversize}");
    // A client that connects and says nothing is dropped after the read timeout; meanwhile
    // others are answered.
    let _silent = UnixStream::connect(&socket).expect("connect");
    let listed = ask(br#"{"user":"x","op":{"op":"rp-list"}}"#);
    assert!(listed.contains("\"done\""), "{listed}");

    assert!(ok(dir.path(), &["users", "show", "demo"]).contains("demo"));
    let (_, status, _) = Browser::new().get(&format!("{base}/healthz")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// Without a server, commands started together take turns on the embedded store instead of
/// failing on its lock.
#[test]
fn store_commands_started_together_take_turns() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(dir.path(), &["settings", "get", "methods"]);
    let children: Vec<_> = (0..6)
        .map(|_| {
            tessera(dir.path(), &["settings", "get", "methods"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("methods"));
    }
}

/// `rp add --replace` of a file trust on a live server: the trust moves into the store with
/// the new signing choice, its other options kept, and the SP goes on signing in.
#[tokio::test]
async fn rp_add_replace_turns_a_file_trust_into_a_live_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sp = TestSp::new("moved");
    let folder = dir.path().join("metadata");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("moved.xml"), sp.metadata(false)).expect("write");
    std::fs::write(
        folder.join("moved.toml"),
        "name = \"Moved SP\"\nsign = \"response\"\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("new.xml"), sp.metadata(false)).expect("write");
    let (_server, base) = serve(dir.path());
    let listed = ok(dir.path(), &["rp", "list"]);
    assert!(listed.contains("sign=Response"), "{listed}");

    let refused = run(dir.path(), &["rp", "add", "--metadata", "new.xml"]);
    assert!(
        !refused.status.success(),
        "a file trust is not registered twice"
    );
    ok(
        dir.path(),
        &[
            "rp",
            "add",
            "--metadata",
            "new.xml",
            "--replace",
            "--sign",
            "both",
        ],
    );
    assert!(!folder.join("moved.xml").exists() && !folder.join("moved.toml").exists());
    let listed = ok(dir.path(), &["rp", "list"]);
    let line = listed
        .lines()
        .find(|l| l.contains("moved.sp.test"))
        .unwrap_or_default();
    assert!(
        line.starts_with("Moved SP") && line.contains("sign=Both") && line.contains("console:"),
        "{listed}"
    );
    wait_for_status(&base, &sp, reqwest::StatusCode::OK).await;
}

/// The access log names the route pattern, status and request id of each request and never
/// its query (flow ids, SAMLRequests); with `server.metrics_listen` the metrics are there
/// and not on the public listener.
#[tokio::test]
async fn access_log_has_route_and_request_id_but_no_query_and_metrics_listen_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (metrics_port, metrics_base) = support::process::free_base();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let (server, base, log_path) = serve_logged(
        dir.path(),
        &[("TESSERA__SERVER__METRICS_LISTEN", metrics_listen.as_str())],
    )
    .await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!(
            "{base}/adfs/ls/login?flow=QUERYFLOW0042&SAMLRequest=QUERYSAML"
        ))
        .header("x-request-id", "lb-req-77")
        .header("cookie", "tessera_flow=COOKIESECRET")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.headers()["x-request-id"], "lb-req-77");
    let public = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
    let metrics = http
        .get(format!("{metrics_base}/metrics"))
        .send()
        .await
        .expect("GET metrics");
    assert_eq!(metrics.status(), reqwest::StatusCode::OK);
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains(r#"route="/adfs/ls/login""#),
        "the login page was counted: {metrics}"
    );
    drop(server);

    let log = std::fs::read_to_string(&log_path).expect("log");
    let line = log
        .lines()
        .find(|l| l.contains("lb-req-77"))
        .unwrap_or_else(|| panic!("no access log line with the request id:\n{log}"));
    for needle in [
        "method=GET",
        "route=/adfs/ls/login",
        "status=",
        "latency_ms=",
    ] {
        assert!(line.contains(needle), "{needle} not in {line}");
    }
    for secret in ["QUERYFLOW0042", "QUERYSAML", "COOKIESECRET"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// `tessera serve` in `dir` with `env`, its log (at info, never coloured by `NO_COLOR`, so a
/// plain log proves the terminal check) written to a file; once it answers `/healthz`:
/// (server, base URL, log file).
async fn serve_logged(dir: &Path, env: &[(&str, &str)]) -> (Server, String, PathBuf) {
    let (port, base) = support::process::free_base();
    let log_path = dir.join("tessera.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = tessera(dir, &["serve"]);
    cmd.env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA__SERVER__PUBLIC_URL", &base)
        .env("RUST_LOG", "info")
        // tracing-subscriber also turns colour off for NO_COLOR: that must not be why.
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().expect("serve starts"));
    wait_healthy(&reqwest::Client::new(), &base).await;
    (server, base, log_path)
}

/// Waits (bounded) until the server at `base` answers `/healthz`.
async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("tessera did not start at {base}");
}

#[test]
fn users_questions_sets_answers_from_stdin_within_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let answers = "1: Rex\n2:  Zurich \n\n3: Hill School\n";
    let off = run_with_stdin(dir.path(), &["users", "questions", "alice"], answers);
    assert!(!off.status.success(), "refused while switched off");
    assert!(
        text(&off.stderr).contains("switched off"),
        "{}",
        text(&off.stderr)
    );
    ok(
        dir.path(),
        &[
            "settings",
            "set",
            "methods",
            "push",
            "call",
            "sms",
            "oath",
            "questions",
        ],
    );
    for (input, expect) in [
        ("1: Rex\n", "Answer at least 3 questions"),
        ("1: Rex\n2: a\n42: b\n", "no question 42"),
        ("1: Rex\n1: a\n2: b\n", "only once"),
        ("1: Rex\n2: \n3: b\n", "cannot be empty"),
        ("Rex\n", "N: answer"),
    ] {
        let out = run_with_stdin(dir.path(), &["users", "questions", "alice"], input);
        assert!(!out.status.success(), "{input:?} must be refused");
        assert!(
            text(&out.stderr).contains(expect),
            "{input:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run_with_stdin(dir.path(), &["users", "questions", "alice"], answers);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("answered 3 questions"), "{said}");
    assert!(
        !said.contains("Rex") && !said.contains("Zurich"),
        "answers never printed"
    );
    let shown = ok(dir.path(), &["users", "show", "alice"]);
    assert!(shown.contains("questions       3 answered"), "{shown}");
    let cleared = ok(dir.path(), &["users", "remove", "alice", "--questions"]);
    assert!(
        cleared.contains("user.clear_questions: 3 security questions answered -> -"),
        "{cleared}"
    );
    let shown = ok(dir.path(), &["users", "show", "alice"]);
    assert!(!shown.contains("questions  "), "{shown}");
    let again = run(dir.path(), &["users", "remove", "alice", "--questions"]);
    assert!(
        text(&again.stderr).contains("no security answers"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn users_add_phone_and_enroll_link_add_methods_for_a_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["users", "add-phone", "bob", "not a number"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not look like a phone number"),
        "{}",
        text(&out.stderr)
    );
    let added = ok(
        dir.path(),
        &["users", "add-phone", "bob", "(555) 010-0299", "--office"],
    );
    assert!(
        added.contains("user.add_phone: - -> office phone"),
        "{added}"
    );
    let shown = ok(dir.path(), &["users", "show", "bob"]);
    assert!(shown.contains("+15550100299 (Office, Enrolled)"), "{shown}");
    let again = run(
        dir.path(),
        &["users", "add-phone", "bob", "+1 555 010 0299"],
    );
    assert!(!again.status.success(), "the same number twice");
    let link = ok(dir.path(), &["users", "enroll-link", "bob"]);
    assert!(
        link.contains("user.enrollment_link: authenticator app enrollment link"),
        "{link}"
    );
    let url = link.lines().last().expect("url");
    assert!(url.contains("/enroll/link/") && url.len() > 64, "{url}");
}

#[tokio::test]
async fn users_assign_token_assigns_and_activates_through_the_token_inventory() {
    use tessera::mfa::oath::{OathParams, base32, code_at};
    const FOB: &[u8] = b"hardware-token-secret-20";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for u in ["alice", "bob"] {
        let out = run_with_stdin(d, &["users", "add", u], "Corr3ct horse!\n");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let s = base32(FOB);
    let csv = format!(
        "upn,serial number,secret key,time interval,manufacturer,model\n,K1,{s},30,Contoso,C200\n,K2,{s},30,Contoso,C200\n"
    );
    std::fs::write(d.join("t.csv"), csv).expect("csv");
    assert!(ok(d, &["tokens", "import", "t.csv"]).contains("imported 2 tokens"));
    let refused = |args: &[&str]| {
        let out = run(d, args);
        assert!(!out.status.success(), "{args:?} must fail");
        text(&out.stderr)
    };
    let err = refused(&["users", "assign-token", "bob", "NOPE"]);
    assert!(err.contains("no token with serial number NOPE"), "{err}");
    ok(d, &["users", "assign-token", "alice", "K2"]);
    let err = refused(&["users", "assign-token", "bob", "K2"]);
    assert!(err.contains("already assigned to alice"), "{err}");
    let err = refused(&["users", "assign-token", "nobody", "K1"]);
    assert!(err.contains("no user `nobody`"), "{err}");
    let out = ok(d, &["users", "assign-token", "bob", "K1"]);
    assert!(
        out.contains("tokens.assign K1") && out.contains("waiting for activation"),
        "{out}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let p = OathParams::default();
    let code = code_at(FOB, &p, now);
    let out = ok(d, &["users", "assign-token", "bob", "K1", "--code", &code]);
    assert!(out.contains("tokens.activate K1"), "{out}");
    let shown = ok(d, &["users", "show", "bob"]);
    assert!(shown.contains("C200 K1"), "in bob's methods: {shown}");

    // The token now counts at bob's sign-in: the next step's code is accepted for him.
    let mut config = tessera::config::Config::load(None, std::iter::empty()).expect("config");
    config.server.data_dir = d.join("tessera-data");
    let store =
        tessera::startup::open_store(&config, std::sync::Arc::new(tessera::clock::SystemClock))
            .await
            .expect("store");
    let secrets =
        tessera::mfa::secrets::SecretBox::load_or_create(&config.server.data_dir.join("mfa.key"))
            .expect("key");
    let deps = tessera::mfa::tokens::inventory::Deps {
        store: store.as_ref(),
        secrets: &secrets,
        now: now + 30,
    };
    let next = code_at(FOB, &p, now + 30);
    let verify = tessera::mfa::tokens::inventory::verify_for(&deps, "K1", "bob", &next);
    assert!(verify.await.expect("verify"), "bob's token works");
}

#[test]
fn hotp_windows_are_settings_with_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert!(ok(d, &["settings", "get", "hotp_window"]).contains("10"));
    assert!(ok(d, &["settings", "get", "hotp_resync_window"]).contains("100"));
    for (key, value, expect) in [
        ("hotp_window", "0", "outside 1..=50"),
        ("hotp_window", "51", "outside 1..=50"),
        ("hotp_resync_window", "5", "outside 10..=1000"),
    ] {
        let out = run(d, &["settings", "set", key, value]);
        assert!(!out.status.success(), "{key} {value} must be refused");
        assert!(text(&out.stderr).contains(expect), "{}", text(&out.stderr));
    }
    ok(d, &["settings", "set", "hotp_window", "20"]);
    assert!(ok(d, &["settings", "get", "hotp_window"]).contains("20"));
}
