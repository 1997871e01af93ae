//! Hardware OATH tokens end to end: `tessera tokens` imports (each malformed file named by
//! row, nothing stored), then sign-ins over HTTP with an imported TOTP and HOTP token
//! (activation, replay, resynchronisation, an unactivated token refused).

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::admin::Actor;
use tessera::admin::tokens::{self, Action};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::oath::{Algorithm, OathParams, base32, code_at, hotp};
use tessera::mfa::tokens::inventory::{self, Deps};

const PW: &str = "Corr3ct horse!";
const HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";
const FOB: &[u8] = b"hardware-token-secret-20";
const FOB2: &[u8] = b"another-hw-token-secret!";

fn tessera_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.current_dir(dir).args(args).env_remove("TESSERA_CONFIG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TESSERA__")) {
        c.env_remove(k);
    }
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    tessera_cmd(dir, args).output().expect("tessera runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `tessera tokens import FILE` of `body`; (success, stdout + stderr).
fn import(dir: &Path, name: &str, body: &str, extra: &[&str]) -> (bool, String) {
    std::fs::write(dir.join(name), body).expect("write");
    let mut args = vec!["tokens", "import", name];
    args.extend_from_slice(extra);
    let out = run(dir, &args);
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

fn pskc_plain(serial: &str, secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Vendor</Manufacturer><SerialNo>{serial}</SerialNo><Model>E1</Model></DeviceInfo>
    <Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data><Secret><PlainValue>{b64}</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#
    )
}

/// A PSKC file encrypted under `psk` as RFC 6030 §6.1 describes.
fn pskc_encrypted(serial: &str, secret: &[u8], psk: &[u8]) -> String {
    use base64::Engine;
    use openssl::symm::{Cipher, encrypt};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let enc = |plain: &[u8], iv: [u8; 16]| {
        let mut out = iv.to_vec();
        out.extend(encrypt(Cipher::aes_128_cbc(), psk, Some(&iv), plain).expect("aes"));
        out
    };
    let mac_key = [0x5a; 20];
    let raw = enc(secret, [3; 16]);
    let pkey = openssl::pkey::PKey::hmac(&mac_key).expect("key");
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &pkey).expect("hmac");
    signer.update(&raw).expect("update");
    let mac = signer.sign_to_vec().expect("mac");
    format!(
        r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>
  <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"><MACKey>
    <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
    <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
  </MACKey></MACMethod>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Vendor</Manufacturer><SerialNo>{serial}</SerialNo></DeviceInfo>
    <Key Id="1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc#totp">
      <Data><Secret><EncryptedValue>
        <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
        <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData>
      </EncryptedValue><ValueMAC>{}</ValueMAC></Secret>
      <TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#,
        b64(&enc(&mac_key, [4; 16])),
        b64(&raw),
        b64(&mac)
    )
}

#[test]
fn cli_import_names_each_bad_row_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut add = tessera_cmd(d, &["users", "add", "alice", "--upn", "alice@corp.example"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("users add");
    writeln!(add.stdin.take().expect("stdin"), "{PW}").expect("pw");
    assert!(add.wait().expect("wait").success());
    let s = base32(FOB);
    let cases = [
        (
            format!("{HEADER}\nalice@corp.example,A1,{s},30,V,M\n,A2,{s}!!,30,V,M\n"),
            "row 3 (serial A2)",
            "Base32",
        ),
        (
            format!("{HEADER}\nnobody@corp.example,A1,{s},30,V,M\n"),
            "row 2 (serial A1)",
            "unknown user",
        ),
        (
            format!("{HEADER}\n,A1,{s},30,V,M\n,a1,{s},30,V,M\n"),
            "row 3 (serial a1)",
            "repeated",
        ),
        (
            format!("{HEADER}\n,A1,{s},45,V,M\n"),
            "row 2 (serial A1)",
            "30 or 60",
        ),
    ];
    for (body, row, reason) in &cases {
        let (ok, out) = import(d, "t.csv", body, &[]);
        assert!(!ok, "{out}");
        assert!(
            out.contains(row) && out.contains(reason),
            "{row} {reason}: {out}"
        );
    }
    let psk = "000102030405060708090a0b0c0d0e0f";
    let enc = pskc_encrypted("P1", FOB2, &hex::decode(psk).expect("hex"));
    let wrong = "ffeeddccbbaa99887766554433221100";
    let (ok, out) = import(d, "t.pskc", &enc, &["--pskc-key", wrong]);
    assert!(!ok && out.contains("wrong pre-shared key"), "{out}");
    let plain = pskc_plain("H1", FOB);
    let (ok, out) = import(d, "t.pskc", &plain[..plain.len() - 40], &[]);
    assert!(!ok && out.contains("XML refused"), "{out}");
    let doctype = plain.replace("<KeyContainer", "<!DOCTYPE x []><KeyContainer");
    let (ok, out) = import(d, "t.pskc", &doctype, &[]);
    assert!(!ok && out.contains("DOCTYPE"), "{out}");
    let listed = text(&run(d, &["tokens", "list"]).stdout);
    assert_eq!(listed.lines().count(), 1, "nothing stored: {listed}");

    let (ok, out) = import(
        d,
        "t.csv",
        &format!("{HEADER}\nalice@corp.example,A1,{s},30,Contoso,C200\n"),
        &[],
    );
    assert!(ok, "{out}");
    std::fs::write(d.join("psk.hex"), psk).expect("psk");
    let (ok, out) = import(d, "t.pskc", &enc, &["--pskc-key-file", "psk.hex"]);
    assert!(ok, "{out}");
    let (ok, out) = import(
        d,
        "t.csv",
        &format!("{HEADER}\n,B1,{s},30,V,M\n,a1,{s},30,V,M\n"),
        &[],
    );
    assert!(
        !ok && out.contains("row 3 (serial a1)") && out.contains("already in the inventory"),
        "{out}"
    );
    let listed = text(&run(d, &["tokens", "list"]).stdout);
    assert!(listed.contains("A1\tTOTP\tC200\talice\t-"), "{listed}");
    assert!(listed.contains("P1\tTOTP"), "{listed}");
    assert!(!listed.contains("B1"), "{listed}");

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let out = run(d, &["tokens", "activate", "A1", "000000"]);
    assert!(!out.status.success());
    let code = code_at(FOB, &OathParams::default(), now);
    let out = run(d, &["tokens", "activate", "A1", &code]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(d, &["tokens", "assign", "P1", "alice@corp.example"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(d, &["tokens", "unassign", "P1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(d, &["tokens", "remove", "P1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&run(d, &["tokens", "list"]).stdout);
    assert!(
        !listed.contains("P1") && !listed.contains("\talice\t-\t"),
        "{listed}"
    );
}

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    sp: TestSp,
}

async fn env() -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    b.add_user(&[file_user("alice", PW), file_user("bob", PW)]);
    let sp = TestSp::new("hw");
    b.add_rp("hw", &sp.metadata(false), "");
    Env {
        idp: b.start().await,
        clock,
        sp,
    }
}

impl Env {
    fn deps(&self) -> Deps<'_> {
        Deps {
            store: self.idp.state.store.as_ref(),
            secrets: &self.idp.state.secrets,
            now: self.clock.unix(),
        }
    }

    async fn admin(&self, action: Action) -> Result<(), inventory::TokenError> {
        let actor = Actor {
            name: "test".into(),
            client_ip: "local".into(),
        };
        let dir = self.idp.state.directory.as_ref();
        tokens::apply(&self.deps(), dir, &actor, action)
            .await
            .map(|_| ())
    }

    async fn import(&self, body: &str) {
        let actor = Actor {
            name: "test".into(),
            client_ip: "local".into(),
        };
        let dir = self.idp.state.directory.as_ref();
        let r = tokens::import(&self.deps(), dir, &actor, "f", body.as_bytes(), None)
            .await
            .expect("import");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    /// Password, then "Use a different verification option": the chooser page.
    async fn chooser(&self, user: &str) -> String {
        let browser = Browser::new();
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.idp.base, self.sp.entity_id
        );
        let (url, _, page) = browser.get(&url).await;
        let flow = input_value(&page, "flow").expect("flow");
        browser.sign_in(&url, &page, user, PW).await;
        let form = [("flow", flow.as_str()), ("action", "different")];
        let (_, _, page) = browser
            .post(&format!("{}/adfs/ls/login", self.idp.base), &form)
            .await;
        page
    }

    /// Password, then the code; the page after the code.
    async fn sign_in(&self, user: &str, code: &str) -> (StatusCode, String) {
        let browser = Browser::new();
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.idp.base, self.sp.entity_id
        );
        let (url, _, page) = browser.get(&url).await;
        let flow = input_value(&page, "flow").expect("flow");
        let (_, _, page) = browser.sign_in(&url, &page, user, PW).await;
        assert!(page.contains("Enter the verification code"), "{page}");
        let form = [("flow", flow.as_str()), ("action", "code"), ("code", code)];
        let (_, status, page) = browser
            .post(&format!("{}/adfs/ls/login", self.idp.base), &form)
            .await;
        (status, page)
    }
}

#[tokio::test]
async fn sign_in_with_an_imported_totp_token_after_activation() {
    let e = env().await;
    e.import(&format!(
        "{HEADER}\nalice@corp.example,T1,{},30,Contoso,C200\n",
        base32(FOB)
    ))
    .await;
    // Unactivated: alice's app is her only method, and the fob's code does not count.
    support::mfa::enrol_all(&e.idp, "alice", tessera::mfa::Method::Oath, "+15550100230").await;
    let p = OathParams::default();
    let (status, page) = e.sign_in("alice", &code_at(FOB, &p, e.clock.unix())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    e.admin(Action::Activate {
        serial: "T1".into(),
        code: code_at(FOB, &p, e.clock.unix()),
    })
    .await
    .expect("activate");
    // The activation code is spent (the user is told it was used, not that it is wrong);
    // the next one signs in, once.
    let (status, page) = e.sign_in("alice", &code_at(FOB, &p, e.clock.unix())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("already been used"), "{page}");
    e.clock.advance(time::Duration::seconds(30));
    let code = code_at(FOB, &p, e.clock.unix());
    let (_, page) = e.sign_in("alice", &code).await;
    assert!(page.contains("SAMLResponse"), "{page}");
    let (status, page) = e.sign_in("alice", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replayed code");
    assert!(page.contains("already been used"), "{page}");
    let (_, page) = e.sign_in("alice", "000000").await;
    assert!(
        !page.contains("already been used"),
        "a wrong code is wrong: {page}"
    );
    let t = inventory::get(e.idp.state.store.as_ref(), "T1")
        .await
        .expect("get")
        .expect("t1");
    assert_eq!(t.last_used, Some(e.clock.unix()));
}

#[tokio::test]
async fn hotp_token_window_replay_and_resync() {
    let e = env().await;
    e.import(&pskc_plain("H1", FOB)).await;
    e.admin(Action::Assign {
        serial: "H1".into(),
        user: "bob@corp.example".into(),
    })
    .await
    .expect("assign");
    let c = |n: u64| hotp(FOB, Algorithm::Sha1, 6, n);
    e.admin(Action::Activate {
        serial: "H1".into(),
        code: c(0),
    })
    .await
    .expect("activate");
    // Bob's only method is the fob: the chooser words it as a hardware token.
    let page = e.chooser("bob").await;
    assert!(
        page.contains("Use verification code from my hardware token"),
        "{page}"
    );
    let (_, page) = e.sign_in("bob", &c(3)).await;
    assert!(page.contains("SAMLResponse"), "{page}");
    for used in [c(3), c(2)] {
        let (status, _) = e.sign_in("bob", &used).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a used or skipped code");
    }
    // Far ahead: outside the look-ahead window until resynchronised from two codes.
    let (status, _) = e.sign_in("bob", &c(40)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    e.admin(Action::Resync {
        serial: "H1".into(),
        first: c(60),
        second: c(61),
    })
    .await
    .expect("resync");
    let (_, page) = e.sign_in("bob", &c(62)).await;
    assert!(page.contains("SAMLResponse"), "{page}");
    let (status, _) = e.sign_in("bob", &c(61)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The console: an admin signs in, imports over HTTP (each malformed file named by row,
/// nothing stored), then assigns and activates from the page; each change in the log.
#[tokio::test]
async fn console_import_report_and_token_changes() {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    let mut root = file_user("root", PW);
    root.groups.push("Tessera Admins".into());
    b.add_user(&[root, file_user("alice", PW)]);
    let sp = TestSp::new("hwc");
    b.add_rp("hwc", &sp.metadata(false), "");
    let idp = b.start().await;
    support::mfa::enrol_all(&idp, "root", tessera::mfa::Method::Oath, "+15550100230").await;
    let url = |p: &str| format!("{}{p}", idp.base);
    let browser = Browser::new();
    let (login, _, page) = browser.get(&url("/admin")).await;
    let flow = input_value(&page, "flow").expect("flow");
    browser.sign_in(&login, &page, "root", PW).await;
    let code = support::mfa::code(clock.unix());
    let form = [
        ("flow", flow.as_str()),
        ("action", "code"),
        ("code", code.as_str()),
    ];
    browser.post(&url("/adfs/ls/login"), &form).await;
    let (_, status, page) = browser.get(&url("/admin/tokens")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = input_value(&page, "csrf").expect("csrf");
    let upload = async |name: &str, body: &str, key: &str| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("pskc_key", key.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(body.as_bytes().to_vec())
                    .file_name(name.to_owned()),
            );
        let res = browser
            .http
            .post(url("/admin/tokens/import"))
            .multipart(form)
            .send()
            .await
            .expect("post");
        (res.status(), res.text().await.expect("body"))
    };
    let s = base32(FOB);
    let (status, page) = upload(
        "ok.csv",
        &format!("{HEADER}\nalice@corp.example,C1,{s},30,V,M\n"),
        "",
    )
    .await;
    assert!(
        status.is_redirection() || status == StatusCode::OK,
        "{status} {page}"
    );
    let psk = "000102030405060708090a0b0c0d0e0f";
    let plain = pskc_plain("H9", FOB);
    let cases = [
        (
            "a.csv",
            format!("{HEADER}\n,D1,{s},30,V,M\n,D2,{s}1,30,V,M\n"),
            "",
            "<td>3</td><td>D2</td>",
            "Base32",
        ),
        (
            "b.csv",
            format!("{HEADER}\nnobody@corp.example,D1,{s},30,V,M\n"),
            "",
            "<td>2</td><td>D1</td>",
            "unknown user",
        ),
        (
            "c.csv",
            format!("{HEADER}\n,D1,{s},30,V,M\n,D1,{s},30,V,M\n"),
            "",
            "<td>3</td><td>D1</td>",
            "repeated",
        ),
        (
            "d.csv",
            format!("{HEADER}\n,D1,{s},30,V,M\n,c1,{s},30,V,M\n"),
            "",
            "<td>3</td><td>c1</td>",
            "already in the inventory",
        ),
        (
            "e.csv",
            format!("{HEADER}\n,D1,{s},90,V,M\n"),
            "",
            "<td>2</td><td>D1</td>",
            "30 or 60",
        ),
        (
            "f.pskc",
            pskc_encrypted("P9", FOB2, &hex::decode(psk).expect("hex")),
            "ffeeddccbbaa99887766554433221100",
            "<td>file</td>",
            "wrong pre-shared key",
        ),
        (
            "g.pskc",
            plain[..plain.len() / 2].to_owned(),
            "",
            "<td>file</td>",
            "XML refused",
        ),
        (
            "h.pskc",
            format!("<!DOCTYPE k []>{plain}"),
            "",
            "<td>file</td>",
            "DOCTYPE",
        ),
    ];
    for (name, body, key, row, reason) in &cases {
        let (status, page) = upload(name, body, key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {page}");
        assert!(
            page.contains("Nothing was imported") && page.contains(row) && page.contains(reason),
            "{name}: {page}"
        );
    }
    let all = inventory::list(idp.state.store.as_ref())
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|t| t.serial.as_str()).collect::<Vec<_>>(),
        ["C1"]
    );
    // The right key imports the encrypted file.
    let (status, _) = upload("f.pskc", &cases[5].1, psk).await;
    assert!(status.is_redirection() || status == StatusCode::OK);
    assert!(
        inventory::get(idp.state.store.as_ref(), "P9")
            .await
            .expect("get")
            .is_some()
    );

    let act = async |fields: &[(&str, &str)]| {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        browser.post(&url("/admin/tokens"), &form).await
    };
    let (_, status, page) =
        act(&[("action", "activate"), ("serial", "C1"), ("code", "000000")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("not correct"), "{page}");
    let code = code_at(FOB, &OathParams::default(), clock.unix());
    let (_, status, page) = act(&[("action", "activate"), ("serial", "C1"), ("code", &code)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Done: tokens.activate"), "{page}");
    assert!(
        page.contains("<td>C1</td><td>TOTP</td><td>M</td><td>alice</td>"),
        "{page}"
    );
    let (_, _, page) = act(&[("action", "assign"), ("serial", "P9"), ("user", "nobody")]).await;
    assert!(page.contains("no user"), "{page}");
    let (_, _, page) = act(&[("action", "remove"), ("serial", "P9")]).await;
    assert!(page.contains("Done: tokens.remove"), "{page}");
    let log = idp
        .state
        .store
        .read_log("admin", 0, i64::MAX, 50)
        .await
        .expect("log");
    let log: Vec<String> = log.iter().map(|e| text(&e.value)).collect();
    for action in ["tokens.import", "tokens.activate", "tokens.remove"] {
        assert!(log.iter().any(|l| l.contains(action)), "{action}: {log:?}");
    }
    assert!(!log.iter().any(|l| l.contains(&code)), "no code in the log");
}
