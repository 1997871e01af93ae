//! Test fixture: a real OpenLDAP slapd with AD-like data, TLS, memberof and ppolicy, in a temp dir.
//!
//! Every test starts its own server (`Slapd::start()`), so lockouts and additions never leak
//! between tests; the process is killed on Drop. The schema and seed data are the files under
//! `deploy/ldap/` that docker-compose mounts into the OpenLDAP container, so the development
//! stack and the tests see the same directory. Facts behind the configuration are in
//! /work/shared/reference/test-peers.md (slapd 2.5 from Debian, SAN list, real CA needed).

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use tempfile::TempDir;
use tessera::directory::ldap::LdapSettings;

pub const BASE_DN: &str = "dc=corp,dc=example";
pub const ADMIN_DN: &str = "cn=admin,dc=corp,dc=example";
pub const ADMIN_PASSWORD: &str = "admin-Pass-1";
pub const SVC_DN: &str = "cn=svc-tessera,ou=services,dc=corp,dc=example";
pub const SVC_PASSWORD: &str = "svc-tessera-Pass-1";

/// Seeded people all have the password `<uid>-Pass-1` (see deploy/ldap/seed.ldif).
pub fn password_of(uid: &str) -> String {
    format!("{uid}-Pass-1")
}

/// DN of a person under ou=people.
pub fn person_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{BASE_DN}")
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ldap")
}

const SLAPD: &str = "/usr/sbin/slapd";

/// A running slapd; killed when dropped.
pub struct Slapd {
    child: Child,
    dir: TempDir,
    ldap_port: u16,
    ldaps_port: u16,
}

impl Slapd {
    /// Generates certificates, writes the config, starts slapd and seeds it. Panics (never
    /// skips) when slapd or the LDAP client tools are missing.
    pub fn start() -> Slapd {
        for tool in [SLAPD, "/usr/bin/ldapadd", "/usr/bin/ldapsearch"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} not found: the LDAP tests need OpenLDAP (slapd, ldap-utils). \
                 Run `bash scripts/install-deps.sh` first."
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("tessera-slapd-")
            .tempdir()
            .expect("temp dir");
        write_certificates(dir.path());
        std::fs::create_dir(dir.path().join("db")).expect("db dir");
        std::fs::write(dir.path().join("slapd.conf"), slapd_conf(dir.path()))
            .expect("write slapd.conf");

        // Free ports are found by binding port 0 and releasing it; another process may take
        // one in between, so a failed start is retried on fresh ports.
        let mut last_log = String::new();
        for _ in 0..3 {
            let (ldap_port, ldaps_port) = (free_port(), free_port());
            let mut child = spawn(dir.path(), ldap_port, ldaps_port);
            if wait_ready(&mut child, ldap_port, ldaps_port) {
                let server = Slapd {
                    child,
                    dir,
                    ldap_port,
                    ldaps_port,
                };
                server.seed();
                return server;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.path().join("slapd.log")).unwrap_or_default();
        }
        panic!("slapd did not start; its log:\n{last_log}");
    }

    /// Stops the server, as a crashed or rebooting domain controller would; clients see
    /// refused connections until `restart`.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts slapd again on the same ports with the same database (seeded data included).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(self.dir.path(), self.ldap_port, self.ldaps_port);
            if wait_ready(&mut self.child, self.ldap_port, self.ldaps_port) {
                return;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(
                Instant::now() < deadline,
                "slapd did not come back on its ports; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
            );
            // The old listening sockets can linger for a moment after the kill.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn seed(&self) {
        let seed = deploy_dir().join("seed.ldif");
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&seed)
            .output()
            .expect("run ldapadd");
        assert!(
            out.status.success(),
            "seeding {} failed: {}",
            seed.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    pub fn ldap_port(&self) -> u16 {
        self.ldap_port
    }

    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }

    /// PEM of the test CA that issued the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn base_dn(&self) -> &'static str {
        BASE_DN
    }

    /// Settings for the seeded directory: plain LDAP, service account, CA file, short timeouts.
    pub fn settings(&self) -> LdapSettings {
        LdapSettings {
            servers: self.ldap_url(),
            ca_file: Some(self.ca_file()),
            bind_dn: SVC_DN.into(),
            bind_password: SVC_PASSWORD.into(),
            base_dn: BASE_DN.into(),
            connect_timeout_ms: 2_000,
            op_timeout_ms: 5_000,
            ..LdapSettings::default()
        }
    }

    /// Adds a person like the seeded ones (`user` objectClass, UPN `<uid>@corp.example`,
    /// userAccountControl 512) plus `extra_ldif` lines such as `"mobile: +1 555 0100 99"`.
    pub fn add_user(&self, uid: &str, password: &str, extra_ldif: &str) {
        let ldif = format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: user\nuid: {uid}\ncn: {uid}\n\
             sn: {uid}\nsAMAccountName: {uid}\nuserPrincipalName: {uid}@corp.example\n\
             userAccountControl: 512\nuserPassword: {password}\n{extra}\n",
            dn = person_dn(uid),
            extra = extra_ldif.trim_end(),
        );
        self.ldap_tool("ldapadd", &[], &ldif);
    }

    /// Replaces one attribute of `dn` as the rootdn (`ldapmodify`).
    #[allow(dead_code)] // not every test binary that includes support/ changes entries
    pub fn replace_attr(&self, dn: &str, attr: &str, value: &str) {
        let ldif = format!("dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n");
        self.ldap_tool("ldapmodify", &[], &ldif);
    }

    /// Values of one attribute (operational ones included) read as the rootdn, for asserting
    /// server-side effects such as ppolicy's pwdFailureTime.
    pub fn read_attr(&self, dn: &str, attr: &str) -> Vec<String> {
        let out = self.ldap_tool(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-s",
                "base",
                "-b",
                dn,
                "(objectClass=*)",
                attr,
            ],
            "",
        );
        let prefix = format!("{}: ", attr.to_ascii_lowercase());
        out.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].to_string())
            .collect()
    }

    fn ldap_tool(&self, tool: &str, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.ldap_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts slapd in the foreground on the two ports, logging to `dir/slapd.log`.
fn spawn(dir: &Path, ldap_port: u16, ldaps_port: u16) -> Child {
    let log = std::fs::File::create(dir.join("slapd.log")).expect("log file");
    Command::new(SLAPD)
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .arg("-h")
        .arg(format!(
            "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
        ))
        // Any -d keeps slapd in the foreground, so the Child is the server itself.
        .args(["-d", "0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn slapd")
}

/// Waits until slapd accepts connections on both ports; false if it exited or took > 10 s.
fn wait_ready(child: &mut Child, ldap_port: u16, ldaps_port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let up = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        if up(ldap_port) && up(ldaps_port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A port nothing listens on (bound and released), for "server down" tests.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn slapd_conf(dir: &Path) -> String {
    let d = dir.display();
    let schema = deploy_dir().join("ad-lite.schema");
    let schema = schema.display();
    // slapd.conf(5) / slapo-memberof(5) / slapo-ppolicy(5). ACLs are first match wins:
    // passwords are only usable for binding; the service account reads every entry and
    // attribute (including ppolicy's operational pwdAccountLockedTime / pwdReset), users read
    // their own entry (direct-bind mode), nobody else sees anything.
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {schema}

pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy

TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
TLSVerifyClient never

database mdb
maxsize 104857600
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {d}/db
index objectClass eq
index uid,sAMAccountName,userPrincipalName eq

access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="{SVC_DN}" read
  by self read
  by anonymous auth
  by * none

overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE_DN}"
ppolicy_hash_cleartext
"#
    )
}

/// A real CA (basicConstraints CA:TRUE, keyCertSign) and a server leaf signed by it: a
/// self-signed leaf is rejected by the TLS client (reference/xml-signatures.md). The SAN
/// covers every name a test may dial.
pub fn write_certificates(dir: &Path) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let not_before = Asn1Time::from_unix(now - 3600).expect("time");
    let not_after = Asn1Time::from_unix(now + 30 * 86_400).expect("time");
    let key =
        || -> PKey<Private> { PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey") };
    let serial = |n: u32| -> Asn1Integer {
        BigNum::from_u32(n)
            .and_then(|b| b.to_asn1_integer())
            .expect("serial")
    };
    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().expect("name");
        n.append_entry_by_text("O", "Tessera tests").expect("O");
        n.append_entry_by_text("CN", cn).expect("CN");
        n.build()
    };

    let ca_key = key();
    let mut ca = X509::builder().expect("x509");
    ca.set_version(2).expect("v3");
    ca.set_serial_number(&serial(1)).expect("serial");
    ca.set_subject_name(&name("Tessera Test CA"))
        .expect("subject");
    ca.set_issuer_name(&name("Tessera Test CA"))
        .expect("issuer");
    ca.set_pubkey(&ca_key).expect("pubkey");
    ca.set_not_before(&not_before).expect("nb");
    ca.set_not_after(&not_after).expect("na");
    ca.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
        .expect("bc");
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    let ski = SubjectKeyIdentifier::new()
        .build(&ca.x509v3_context(None, None))
        .expect("ski");
    ca.append_extension(ski).expect("ski");
    ca.sign(&ca_key, MessageDigest::sha256()).expect("sign ca");
    let ca = ca.build();

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let leaf_key = key();
    let mut leaf = X509::builder().expect("x509");
    leaf.set_version(2).expect("v3");
    leaf.set_serial_number(&serial(2)).expect("serial");
    leaf.set_subject_name(&name("localhost")).expect("subject");
    leaf.set_issuer_name(ca.subject_name()).expect("issuer");
    leaf.set_pubkey(&leaf_key).expect("pubkey");
    leaf.set_not_before(&not_before).expect("nb");
    leaf.set_not_after(&not_after).expect("na");
    leaf.append_extension(BasicConstraints::new().critical().build().expect("bc"))
        .expect("bc");
    leaf.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    leaf.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
        .expect("eku");
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .dns(&hostname)
        .ip("127.0.0.1")
        .ip("::1")
        .build(&leaf.x509v3_context(Some(&ca), None))
        .expect("san");
    leaf.append_extension(san).expect("san");
    let ski = SubjectKeyIdentifier::new()
        .build(&leaf.x509v3_context(Some(&ca), None))
        .expect("ski");
    leaf.append_extension(ski).expect("ski");
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&leaf.x509v3_context(Some(&ca), None))
        .expect("aki");
    leaf.append_extension(aki).expect("aki");
    leaf.sign(&ca_key, MessageDigest::sha256())
        .expect("sign leaf");
    let leaf = leaf.build();

    std::fs::write(dir.join("ca.pem"), ca.to_pem().expect("pem")).expect("write ca");
    std::fs::write(dir.join("server.pem"), leaf.to_pem().expect("pem")).expect("write cert");
    std::fs::write(
        dir.join("server.key"),
        leaf_key.private_key_to_pem_pkcs8().expect("key pem"),
    )
    .expect("write key");
}
