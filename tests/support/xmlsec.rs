//! Independent signature checks with the xmlsec1 command-line tool.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Which signature of a Response to check.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Response,
    Assertion,
    Metadata,
    LogoutResponse,
}

/// Runs `xmlsec1 --verify` on the signature that is a child of `part`, trusting only `cert`.
/// Returns Err(stderr) when xmlsec1 refuses.
pub fn verify(xml: &str, cert: &Path, part: Part) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, xml).expect("write");
    let (id_attr, xpath) = match part {
        Part::Response => (
            "ID:urn:oasis:names:tc:SAML:2.0:protocol:Response",
            "/*[local-name()='Response']/*[local-name()='Signature']",
        ),
        Part::Assertion => (
            "ID:urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "//*[local-name()='Assertion']/*[local-name()='Signature']",
        ),
        Part::LogoutResponse => (
            "ID:urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
            "/*[local-name()='LogoutResponse']/*[local-name()='Signature']",
        ),
        Part::Metadata => (
            "ID:urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
            "/*[local-name()='EntityDescriptor']/*[local-name()='Signature']",
        ),
    };
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .arg("--trusted-pem")
        .arg(cert)
        .arg("--id-attr:ID")
        .arg(id_attr.trim_start_matches("ID:"))
        .arg("--node-xpath")
        .arg(xpath)
        .arg(&file)
        .output()
        .expect("xmlsec1 is installed (run scripts/install-deps.sh)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
