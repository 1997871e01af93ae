//! Shared fixtures for the XML-signature integration tests: keys, SAML-shaped documents, xmlsec1.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use tessera::xmldsig::emit::El;
use tessera::xmldsig::sign::SigningKey;

pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// A tricky value: non-ASCII, quotes, markup characters, CR, TAB, LF.
pub const NASTY: &str = "José \"O'Brien\" <a&b> 漢字 tab\there\r\nnext\rline";

/// A self-signed RSA-2048 key pair written as PEM files into a temp dir.
pub struct TestKey {
    pub key: PKey<Private>,
    pub cert: X509,
    pub dir: tempfile::TempDir,
}

impl TestKey {
    pub fn new(cn: &str) -> TestKey {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        // xmlsec1 --trusted-pem treats the certificate as a trust anchor: make it a CA.
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .digital_signature()
                .key_cert_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.to_pem().unwrap()).unwrap();
        TestKey { key, cert, dir }
    }

    pub fn signer(&self) -> SigningKey {
        SigningKey::new(self.key.clone(), &self.cert).unwrap()
    }

    pub fn key_pem(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    pub fn cert_pem(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

fn saml(local: &str) -> El {
    El::new("saml", local, NS_SAML)
}

fn samlp(local: &str) -> El {
    El::new("samlp", local, NS_SAMLP)
}

/// A SAML-shaped Assertion carrying `NASTY` in attribute values and text.
pub fn assertion(id: &str) -> El {
    saml("Assertion")
        .attr("ID", id)
        .attr("IssueInstant", "2026-01-01T00:00:00Z")
        .attr("Version", "2.0")
        .child(saml("Issuer").text("https://idp.example/"))
        .child(
            saml("Subject")
                .child(
                    saml("NameID")
                        .attr(
                            "Format",
                            "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                        )
                        .attr("SPNameQualifier", NASTY)
                        .text("alice"),
                )
                .child(
                    saml("SubjectConfirmation")
                        .attr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
                        .child(
                            saml("SubjectConfirmationData")
                                .attr("InResponseTo", "_req")
                                .attr("NotOnOrAfter", "2026-01-01T00:05:00Z")
                                .attr("Recipient", "https://sp.example/acs?a=1&b=2"),
                        ),
                ),
        )
        .child(
            saml("Conditions")
                .attr("NotBefore", "2026-01-01T00:00:00Z")
                .attr("NotOnOrAfter", "2026-01-01T00:05:00Z")
                .child(saml("AudienceRestriction").child(saml("Audience").text("https://sp/"))),
        )
        .child(
            saml("AttributeStatement").child(
                saml("Attribute")
                    .attr("Name", "displayName")
                    .child(saml("AttributeValue").text(NASTY)),
            ),
        )
}

/// A SAML Response around `inner` (an Assertion, signed or not).
pub fn response(id: &str, inner: El) -> El {
    samlp("Response")
        .attr("ID", id)
        .attr("Destination", "https://sp.example/acs")
        .attr("InResponseTo", "_req")
        .attr("IssueInstant", "2026-01-01T00:00:00Z")
        .attr("Version", "2.0")
        .child(saml("Issuer").text("https://idp.example/"))
        .child(
            samlp("Status").child(
                samlp("StatusCode").attr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success"),
            ),
        )
        .child(inner)
}

/// An SP-initiated AuthnRequest as an SP would send it (to be signed by us in tests).
pub fn authn_request(id: &str) -> El {
    samlp("AuthnRequest")
        .attr("ID", id)
        .attr("Version", "2.0")
        .attr("IssueInstant", "2026-01-01T00:00:00Z")
        .attr("Destination", "https://idp.example/sso")
        .attr("AssertionConsumerServiceURL", "https://sp.example/acs")
        .child(saml("Issuer").text("https://sp.example/"))
        .child(samlp("NameIDPolicy").attr("AllowCreate", "true"))
}

/// Run `xmlsec1 --verify` on `file`, trusting only `cert`; `node_xpath` picks which
/// Signature to check (xmlsec1 otherwise checks the first one in document order).
/// Returns (success, combined output).
pub fn xmlsec1_verify(cert: &Path, file: &Path, node_xpath: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--verify")
        .arg("--trusted-pem")
        .arg(cert)
        .args(["--id-attr:ID", &format!("{NS_SAML}:Assertion")])
        .args(["--id-attr:ID", &format!("{NS_SAMLP}:Response")])
        .args(["--id-attr:ID", &format!("{NS_SAMLP}:AuthnRequest")]);
    if let Some(x) = node_xpath {
        cmd.args(["--node-xpath", x]);
    }
    let out = cmd.arg(file).output().expect("xmlsec1 is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sign a template with `xmlsec1 --sign` (a foreign signer) and return the signed document.
pub fn xmlsec1_sign(k: &TestKey, template: &str, id_node: &str) -> String {
    let tpl = k.write("template.xml", template);
    let out = k.dir.path().join("signed.xml");
    let key_arg = format!("{},{}", k.key_pem().display(), k.cert_pem().display());
    let res = Command::new("xmlsec1")
        .arg("--sign")
        .args(["--privkey-pem", &key_arg])
        .args(["--id-attr:ID", id_node])
        .arg("--output")
        .arg(&out)
        .arg(&tpl)
        .output()
        .expect("xmlsec1 is installed");
    assert!(
        res.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}
