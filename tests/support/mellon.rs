//! Test fixture: runs a real SAML SP (Apache 2.4 + mod_auth_mellon) on loopback, state in a temp dir.
//!
//! The SP is a separate Apache instance started in the foreground as a child of the test
//! process. Nothing from /etc/apache2 is read; every file Apache and mellon use (config,
//! keys, metadata, logs, pid, locks, the CGI script) lives in one temp dir that is removed
//! when the [`MellonSp`] is dropped, after Apache has been stopped.
//!
//! Metadata rewriting done here (so tests can drive mellon's behaviour from options):
//! - `post_binding: true` drops every HTTP-Redirect `SingleSignOnService` from the IdP
//!   metadata, because mellon 0.18 always prefers the Redirect endpoint and only falls back
//!   to HTTP-POST (an auto-submit form with an XML-signed AuthnRequest) when there is none.
//! - `sign_requests: false` writes `AuthnRequestsSigned="false"` into the SP metadata and
//!   turns a `WantAuthnRequestsSigned="true"` in the IdP metadata into `"false"`, because
//!   lasso signs whenever either side asks for it.
//! - `name_id_format: Some(uri)` writes that `NameIDFormat` into the SP metadata: lasso puts
//!   the first NameIDFormat of the SP's own metadata into the AuthnRequest's NameIDPolicy
//!   Format (unspecified when unset, as before).

// Each integration test binary compiles this module but uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

/// Where Debian installs Apache's loadable modules (libapache2-mod-auth-mellon puts its .so here).
const MODULE_DIR: &str = "/usr/lib/apache2/modules";
/// Path under which mellon serves its endpoints (login, postResponse, metadata, logout).
const ENDPOINT_PATH: &str = "/mellon";
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// How long Apache may take to answer its first request before the fixture gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How many fresh ports to try when another process grabs the probed one first.
const PORT_ATTEMPTS: usize = 5;

/// How the SP should behave; build with `MellonOptions::new(idp_metadata)` and adjust fields.
#[derive(Clone, Debug)]
pub struct MellonOptions {
    /// Tessera's IdP metadata XML (an EntityDescriptor with an IDPSSODescriptor).
    pub idp_metadata: String,
    /// Sign AuthnRequests (Redirect: SigAlg/Signature query; POST: enveloped ds:Signature).
    pub sign_requests: bool,
    /// Send the AuthnRequest with HTTP-POST (auto-submit form) instead of HTTP-Redirect.
    pub post_binding: bool,
    /// Path appended to the base URL to form the SP entityID.
    pub entity_id_path: &'static str,
    /// The NameIDFormat of the SP metadata, which mellon asks for in its NameIDPolicy.
    pub name_id_format: Option<&'static str>,
}

impl MellonOptions {
    pub fn new(idp_metadata: impl Into<String>) -> Self {
        MellonOptions {
            idp_metadata: idp_metadata.into(),
            ..Self::default()
        }
    }
}

impl Default for MellonOptions {
    fn default() -> Self {
        MellonOptions {
            idp_metadata: String::new(),
            sign_requests: true,
            post_binding: false,
            entity_id_path: "/mellon/metadata",
            name_id_format: None,
        }
    }
}

/// A running Apache + mod_auth_mellon SP. Apache is stopped and the temp dir removed on drop.
pub struct MellonSp {
    child: Option<Child>,
    apache: PathBuf,
    conf: PathBuf,
    port: u16,
    entity_id: String,
    sp_metadata: String,
    sp_cert_pem: String,
    error_log: PathBuf,
    // Declared last so it is removed only after Apache has been stopped in `drop`.
    dir: tempfile::TempDir,
}

impl MellonSp {
    /// Starts Apache with mellon and waits until it answers HTTP.
    ///
    /// Panics with a clear message if apache2 or mod_auth_mellon is missing, or if Apache
    /// does not come up: tests that need a real SP must fail, never skip silently.
    pub fn start(opts: MellonOptions) -> MellonSp {
        let apache = find_apache();
        let mellon_so = Path::new(MODULE_DIR).join("mod_auth_mellon.so");
        assert!(
            mellon_so.is_file(),
            "mod_auth_mellon is not installed ({} missing); run `bash scripts/install-deps.sh` \
             (Debian package libapache2-mod-auth-mellon)",
            mellon_so.display()
        );
        assert!(
            opts.idp_metadata.contains("IDPSSODescriptor"),
            "MellonOptions::idp_metadata must be IdP metadata with an IDPSSODescriptor"
        );
        assert!(
            opts.entity_id_path.starts_with('/'),
            "entity_id_path must start with '/'"
        );

        let mut dir = tempfile::Builder::new()
            .prefix("tessera-mellon-")
            .tempdir()
            .expect("create temp dir for the mellon SP");
        let root = dir.path().to_path_buf();
        // The owner of a directory we just created is our effective uid.
        let as_root = fs::metadata(&root).expect("stat temp dir").uid() == 0;
        for sub in ["logs", "run", "htdocs", "cgi"] {
            fs::create_dir(root.join(sub)).expect("create temp subdir");
        }
        if as_root {
            check_traversable(&root);
            // Apache's workers drop to an unprivileged user and must still read the key,
            // metadata and CGI script; the files are throwaway test material.
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod dir");
        }

        let (key_pem, cert_pem, cert_b64) = make_sp_credentials();
        write_file(
            &root.join("sp-key.pem"),
            &key_pem,
            if as_root { 0o644 } else { 0o600 },
        );
        write_file(&root.join("sp-cert.pem"), &cert_pem, 0o644);
        let idp_metadata = adapt_idp_metadata(&opts);
        write_file(&root.join("idp-metadata.xml"), &idp_metadata, 0o644);
        write_file(&root.join("cgi/show-env.cgi"), CGI_SCRIPT, 0o755);

        let conf = root.join("httpd.conf");
        let error_log = root.join("logs/error.log");
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let entity_id = format!("{base}{}", opts.entity_id_path);
            let sp_metadata = sp_metadata_xml(&base, &entity_id, &cert_b64, &opts);
            write_file(&root.join("sp-metadata.xml"), &sp_metadata, 0o644);
            write_file(&conf, &httpd_conf(&root, port, as_root), 0o644);
            let _ = fs::remove_file(&error_log);

            // A file, not a pipe: nobody drains a pipe while Apache runs.
            let stderr_path = root.join("logs/stderr.log");
            let stderr = fs::File::create(&stderr_path).expect("create stderr log");
            let child = Command::new(&apache)
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND")
                // An empty SSL_CERT_FILE stops every request from re-reading the CA bundle.
                .env("SSL_CERT_FILE", "")
                .env("LANG", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", apache.display()));

            let mut sp = MellonSp {
                child: Some(child),
                apache: apache.clone(),
                conf: conf.clone(),
                port,
                entity_id,
                sp_metadata,
                sp_cert_pem: cert_pem.clone(),
                error_log: error_log.clone(),
                dir,
            };
            match sp.wait_ready() {
                Ok(()) => return sp,
                Err(failure) => {
                    let port_taken = failure.contains("Address already in use");
                    last_failure = failure;
                    sp.stop();
                    if !port_taken {
                        break;
                    }
                    // Take the temp dir back for the next attempt instead of deleting it.
                    dir = sp.into_dir();
                }
            }
        }
        panic!("Apache with mod_auth_mellon did not start: {last_failure}");
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn entity_id(&self) -> String {
        self.entity_id.clone()
    }

    pub fn acs_url(&self) -> String {
        format!("{}{ENDPOINT_PATH}/postResponse", self.base_url())
    }

    /// The URL mellon serves its single logout endpoint at (HTTP-Redirect).
    pub fn slo_url(&self) -> String {
        format!("{}{ENDPOINT_PATH}/logout", self.base_url())
    }

    /// The SP metadata mellon was configured with (MellonSPMetadataFile), to register at the IdP.
    pub fn sp_metadata(&self) -> String {
        self.sp_metadata.clone()
    }

    /// The SP signing certificate (PEM), the one in `sp_metadata()`.
    pub fn sp_cert_pem(&self) -> String {
        self.sp_cert_pem.clone()
    }

    /// A page that requires a mellon session; it answers with `REMOTE_USER=` and `MELLON_*=` lines.
    pub fn protected_url(&self) -> String {
        format!("{}/protected/", self.base_url())
    }

    /// Apache's error log (mellon logs why it rejects a Response here).
    pub fn error_log(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// The temp dir holding config, keys, metadata and logs (for debugging failed tests).
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Polls until Apache answers the mellon metadata endpoint, or reports why it did not.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let stderr =
                    fs::read_to_string(self.dir.path().join("logs/stderr.log")).unwrap_or_default();
                return Err(format!(
                    "apache2 exited with {status}\nstderr:\n{stderr}\nerror log:\n{}",
                    self.error_log()
                ));
            }
            if let Some(code) = http_status(self.port, &format!("{ENDPOINT_PATH}/metadata")) {
                if code == 200 {
                    return Ok(());
                }
                return Err(format!(
                    "GET {ENDPOINT_PATH}/metadata answered {code} instead of 200\nerror log:\n{}",
                    self.error_log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no HTTP answer on port {} within {START_TIMEOUT:?}\nerror log:\n{}",
                    self.port,
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Apache gracefully (SIGTERM via `apache2 -k stop`), falling back to SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // `-k stop` signals the pid in our PidFile: the parent then stops its workers too,
        // which a plain SIGKILL of the parent would leave behind.
        let _ = Command::new(&self.apache)
            .arg("-f")
            .arg(&self.conf)
            .args(["-k", "stop"])
            .env("SSL_CERT_FILE", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::Builder::new()
            .prefix("tessera-mellon-swap-")
            .tempdir()
            .expect("create placeholder temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for MellonSp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Prints the user and every MELLON_* variable; `MellonMergeEnvVars` keeps one line per attribute.
const CGI_SCRIPT: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
printf 'REMOTE_USER=%s\n' "$REMOTE_USER"
env | grep '^MELLON_' | LC_ALL=C sort
"#;

fn find_apache() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("apache2"))
                .collect()
        })
        .unwrap_or_default();
    // /usr/sbin is often missing from a non-root PATH.
    candidates.push(PathBuf::from("/usr/sbin/apache2"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "apache2 not found (PATH or /usr/sbin); run `bash scripts/install-deps.sh` \
                 (Debian packages apache2 libapache2-mod-auth-mellon)"
            )
        })
}

/// Asks the kernel for a free loopback port. Apache binds it a moment later; `start`
/// retries with a new port if something else took it in between.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// One HTTP/1.0 GET with std only; `None` while nothing answers yet.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// As root, workers run as uid 65534 and must reach the temp dir through every ancestor.
fn check_traversable(dir: &Path) {
    for ancestor in dir.ancestors().skip(1) {
        let mode = fs::metadata(ancestor).map(|m| m.mode()).unwrap_or(0);
        assert!(
            mode & 0o001 != 0,
            "{} is not world-traversable, so Apache's unprivileged workers cannot reach the \
             fixture's temp dir; point TMPDIR at a directory like /tmp",
            ancestor.display()
        );
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A fresh RSA-2048 key and self-signed SHA-256 certificate: (key PEM, cert PEM, cert DER base64).
fn make_sp_credentials() -> (String, String, String) {
    let rsa = Rsa::generate(2048).expect("generate SP RSA key");
    let key = PKey::from_rsa(rsa).expect("wrap SP key");
    let mut name = X509NameBuilder::new().expect("x509 name");
    name.append_entry_by_text("CN", "tessera-test-mellon-sp")
        .expect("set CN");
    let name = name.build();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let mut builder = X509::builder().expect("x509 builder");
    builder.set_version(2).expect("x509 v3");
    let serial = BigNum::from_u32((now as u32) | 1).expect("serial");
    builder
        .set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial asn1"))
        .expect("set serial");
    builder.set_subject_name(&name).expect("subject");
    builder.set_issuer_name(&name).expect("issuer");
    builder.set_pubkey(&key).expect("pubkey");
    // Back-dated an hour so small clock differences never make it "not yet valid".
    builder
        .set_not_before(&Asn1Time::from_unix(now - 3600).expect("not before"))
        .expect("set not before");
    builder
        .set_not_after(&Asn1Time::days_from_now(365).expect("not after"))
        .expect("set not after");
    builder
        .sign(&key, MessageDigest::sha256())
        .expect("self-sign");
    let cert = builder.build();

    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().expect("key pem")).unwrap();
    let cert_pem = String::from_utf8(cert.to_pem().expect("cert pem")).unwrap();
    let cert_b64 = openssl::base64::encode_block(&cert.to_der().expect("cert der"));
    (key_pem, cert_pem, cert_b64)
}

/// The SP metadata mellon loads (and serves at /mellon/metadata). mellon takes the ACS URL
/// and the NameIDPolicy format (first NameIDFormat) of its AuthnRequests from here.
fn sp_metadata_xml(base: &str, entity_id: &str, cert_b64: &str, opts: &MellonOptions) -> String {
    let sign_requests = opts.sign_requests;
    let name_id_format = opts
        .name_id_format
        .unwrap_or("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:SPSSODescriptor AuthnRequestsSigned="{sign_requests}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="{REDIRECT_BINDING}" Location="{base}{ENDPOINT_PATH}/logout"/>
    <md:NameIDFormat>{name_id_format}</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true" Binding="{POST_BINDING}" Location="{base}{ENDPOINT_PATH}/postResponse"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity_id = xml_attr(entity_id),
        base = xml_attr(base),
    )
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Applies the metadata rewrites described in the module docs.
fn adapt_idp_metadata(opts: &MellonOptions) -> String {
    let mut xml = opts.idp_metadata.clone();
    if opts.post_binding {
        xml = remove_elements(&xml, "SingleSignOnService", REDIRECT_BINDING);
        assert!(
            xml.contains(POST_BINDING) && xml.contains("SingleSignOnService"),
            "post_binding needs an HTTP-POST SingleSignOnService in the IdP metadata"
        );
    }
    if !opts.sign_requests {
        for quote in ['"', '\''] {
            xml = xml.replace(
                &format!("WantAuthnRequestsSigned={quote}true{quote}"),
                "WantAuthnRequestsSigned=\"false\"",
            );
        }
    }
    xml
}

/// Removes every element with local name `local` whose start tag mentions `needle`
/// (any namespace prefix, self-closing or with children).
fn remove_elements(xml: &str, local: &str, needle: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let tail = &rest[lt..];
        let name_end = tail[1..]
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .map_or(tail.len(), |i| i + 1);
        let name = &tail[1..name_end];
        let local_name = name.rsplit(':').next().unwrap_or(name);
        let start_end = start_tag_end(tail);
        if local_name != local || start_end.is_none() {
            out.push('<');
            rest = &tail[1..];
            continue;
        }
        let start_end = start_end.unwrap();
        let start_tag = &tail[..=start_end];
        let element_end = if start_tag.ends_with("/>") {
            start_end + 1
        } else {
            let close = format!("</{name}>");
            tail.find(&close).map_or(start_end + 1, |i| i + close.len())
        };
        if start_tag.contains(needle) {
            rest = &tail[element_end..];
        } else {
            out.push_str(&tail[..element_end]);
            rest = &tail[element_end..];
        }
    }
    out.push_str(rest);
    out
}

/// Index of the `>` closing the start tag at the beginning of `tag`, skipping quoted values.
fn start_tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The whole Apache configuration; nothing from /etc/apache2 is included.
fn httpd_conf(root: &Path, port: u16, as_root: bool) -> String {
    let root = root.display();
    let modules = [
        ("mpm_event_module", "mod_mpm_event.so"),
        ("authn_core_module", "mod_authn_core.so"),
        ("authz_core_module", "mod_authz_core.so"),
        ("authz_user_module", "mod_authz_user.so"),
        ("alias_module", "mod_alias.so"),
        ("cgi_module", "mod_cgi.so"),
        ("env_module", "mod_env.so"),
        ("auth_mellon_module", "mod_auth_mellon.so"),
    ]
    .iter()
    .map(|(name, file)| format!("LoadModule {name} {MODULE_DIR}/{file}\n"))
    .collect::<String>();
    // mod_unixd is built into Debian's apache2; as root it must switch the workers to an
    // unprivileged uid (Apache refuses to serve as root). 65534 is nobody/nogroup on Debian.
    let user = if as_root {
        "User #65534\nGroup #65534\n"
    } else {
        ""
    };
    format!(
        r#"# Generated by the Tessera mellon test fixture.
ServerRoot "{root}"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LogLevel notice auth_mellon:info
LogFormat "%h %t \"%r\" %>s %b" fixture
CustomLog "{root}/logs/access.log" fixture
Listen 127.0.0.1:{port}
ServerName 127.0.0.1:{port}
UseCanonicalName Off
DocumentRoot "{root}/htdocs"
Timeout 30
{user}{modules}
# One small worker process is plenty for tests on a two-core machine.
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 1
MaxSpareThreads 32

# Sessions live in shared memory; the lock file must be private to this instance.
MellonCacheSize 100
MellonLockFile "{root}/run/mellon.lock"

ScriptAliasMatch "^/protected/" "{root}/cgi/show-env.cgi"

<Location "/">
    Require all granted
    # Settings here also apply to the endpoints under MellonEndpointPath.
    MellonEnable "info"
    MellonEndpointPath "{ENDPOINT_PATH}"
    MellonSPPrivateKeyFile "{root}/sp-key.pem"
    MellonSPCertFile "{root}/sp-cert.pem"
    MellonSPMetadataFile "{root}/sp-metadata.xml"
    MellonIdPMetadataFile "{root}/idp-metadata.xml"
    MellonUser "NAME_ID"
    MellonSignatureMethod "rsa-sha256"
    MellonMergeEnvVars On ";"
    # Plain http: no Secure flag, and no SameSite at all (MellonCookieSameSite cannot be
    # turned off, and the SameSite=None it forces on the cookie test is dropped by browsers
    # without Secure). IdP and SP both on 127.0.0.1 are same-site anyway.
    MellonSecureCookie Off
    SetEnv MELLON_DISABLE_SAMESITE 1
</Location>

<Location "/protected/">
    AuthType "Mellon"
    MellonEnable "auth"
    Require valid-user
</Location>
"#
    )
}
