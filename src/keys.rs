//! The token-signing key and certificate: generated on first run, or imported (PFX / PEM).

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};

use serde::Deserialize;

pub mod live;
use crate::saml::metadata::PublishedKey;
use crate::xmldsig::sign::SigningKey;

/// Where the token-signing key comes from (`[idp.signing]` in the config file). Unset:
/// generated once into the data dir. Defined here, beside its only reader, so the key code
/// does not depend on the whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    pub key_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub pfx_file: Option<PathBuf>,
    pub pfx_password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
    #[error("{0}")]
    Unusable(String),
    #[error("crypto error: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// Token-signing material, prepared once (cloning shares the parsed key).
#[derive(Clone)]
pub struct KeyMaterial {
    pub signer: SigningKey,
    pub cert: X509,
    /// Base64 DER of the certificate, as it appears in metadata and KeyInfo.
    pub cert_b64: String,
    /// SHA-1 and SHA-256 thumbprints in hex (AD FS and NetScaler show SHA-1).
    pub thumbprint_sha1: String,
    pub thumbprint_sha256: String,
    pub not_after: String,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("thumbprint_sha1", &self.thumbprint_sha1)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    pub fn new(key: PKey<Private>, cert: X509) -> Result<Self, KeyError> {
        check_usable(&key, &cert)?;
        let der = cert.to_der()?;
        let hex_digest = |md| -> Result<String, KeyError> { Ok(hex::encode(cert.digest(md)?)) };
        Ok(Self {
            signer: SigningKey::new(key, &cert)
                .map_err(|e| KeyError::Unusable(format!("signing key: {e}")))?,
            cert_b64: base64_std(&der),
            thumbprint_sha1: hex_digest(MessageDigest::sha1())?.to_uppercase(),
            thumbprint_sha256: hex_digest(MessageDigest::sha256())?.to_uppercase(),
            not_after: cert.not_after().to_string(),
            cert,
        })
    }

    pub fn cert_pem(&self) -> String {
        String::from_utf8_lossy(&self.cert.to_pem().unwrap_or_default()).into_owned()
    }
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// NetScaler accepts RSA only, and a key that does not match its certificate would sign
/// assertions nobody can verify: refuse both at start-up rather than at the first login.
fn check_usable(key: &PKey<Private>, cert: &X509) -> Result<(), KeyError> {
    let rsa = key.rsa().map_err(|_| {
        KeyError::Unusable("the token-signing key must be RSA (NetScaler accepts RSA only)".into())
    })?;
    if rsa.size() * 8 < 2048 {
        return Err(KeyError::Unusable(format!(
            "the token-signing key has {} bits; at least 2048 are required",
            rsa.size() * 8
        )));
    }
    if !cert.public_key()?.public_eq(key) {
        return Err(KeyError::Unusable(
            "the certificate does not belong to the private key".into(),
        ));
    }
    Ok(())
}

/// What IdP metadata publishes of a key (`saml::metadata::idp_metadata`).
impl PublishedKey for KeyMaterial {
    fn signer(&self) -> &SigningKey {
        &self.signer
    }
    fn cert_b64(&self) -> &str {
        &self.cert_b64
    }
}

pub const KEY_FILE: &str = "signing.key";
pub const CERT_FILE: &str = "signing.crt";

/// Loads the configured key, else the one in the data dir, else generates and saves one.
/// Returns the material and whether it was created now.
pub fn load_or_create(
    data_dir: &Path,
    cfg: &SigningConfig,
    common_name: &str,
) -> Result<(KeyMaterial, bool), KeyError> {
    if let Some(pfx) = &cfg.pfx_file {
        let (key, cert) = read_pfx(pfx, cfg.pfx_password.as_deref().unwrap_or(""))?;
        return Ok((KeyMaterial::new(key, cert)?, false));
    }
    if let (Some(k), Some(c)) = (&cfg.key_file, &cfg.cert_file) {
        let (key, cert) = read_pem_pair(k, c)?;
        return Ok((KeyMaterial::new(key, cert)?, false));
    }
    let key_path = data_dir.join(KEY_FILE);
    let cert_path = data_dir.join(CERT_FILE);
    if key_path.exists() {
        let (key, cert) = read_pem_pair(&key_path, &cert_path)?;
        return Ok((KeyMaterial::new(key, cert)?, false));
    }
    let (key, cert) = generate(common_name, 3 * 365)?;
    write_pem_pair(data_dir, &key, &cert)?;
    Ok((KeyMaterial::new(key, cert)?, true))
}

/// Imports an existing token-signing certificate (e.g. exported from AD FS as PFX) into the
/// data dir, so an SP that pins it keeps working on day one.
pub fn import(
    data_dir: &Path,
    pfx: Option<(&Path, &str)>,
    pem: Option<(&Path, &Path)>,
) -> Result<KeyMaterial, KeyError> {
    let (key, cert) = match (pfx, pem) {
        (Some((file, password)), None) => read_pfx(file, password)?,
        (None, Some((k, c))) => read_pem_pair(k, c)?,
        _ => {
            return Err(KeyError::Unusable(
                "give either a PFX file or a PEM key and certificate".into(),
            ));
        }
    };
    let material = KeyMaterial::new(key.clone(), cert.clone())?;
    write_pem_pair(data_dir, &key, &cert)?;
    Ok(material)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn read_pfx(path: &Path, password: &str) -> Result<(PKey<Private>, X509), KeyError> {
    let bytes = read(path)?;
    let parsed = Pkcs12::from_der(&bytes)
        .and_then(|p| p.parse2(password))
        .map_err(|_| KeyError::Read {
            path: path.to_owned(),
            detail: "not a PKCS#12 file, or the password is wrong".into(),
        })?;
    match (parsed.pkey, parsed.cert) {
        (Some(k), Some(c)) => Ok((k, c)),
        _ => Err(KeyError::Read {
            path: path.to_owned(),
            detail: "the PKCS#12 file holds no private key and certificate".into(),
        }),
    }
}

fn read_pem_pair(key: &Path, cert: &Path) -> Result<(PKey<Private>, X509), KeyError> {
    let k = PKey::private_key_from_pem(&read(key)?).map_err(|_| KeyError::Read {
        path: key.to_owned(),
        detail: "not a PEM private key".into(),
    })?;
    let c = X509::from_pem(&read(cert)?).map_err(|_| KeyError::Read {
        path: cert.to_owned(),
        detail: "not a PEM certificate".into(),
    })?;
    Ok((k, c))
}

fn write_pem_pair(dir: &Path, key: &PKey<Private>, cert: &X509) -> Result<(), KeyError> {
    let werr = |path: PathBuf| {
        move |e: std::io::Error| KeyError::Write {
            path,
            detail: e.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir.to_owned()))?;
    let key_path = dir.join(KEY_FILE);
    write_private(&key_path, &key.private_key_to_pem_pkcs8()?).map_err(werr(key_path.clone()))?;
    let cert_path = dir.join(CERT_FILE);
    std::fs::write(&cert_path, cert.to_pem()?).map_err(werr(cert_path.clone()))?;
    Ok(())
}

/// The private key file is readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// A fresh RSA-2048 key and a self-signed certificate, as AD FS makes for token signing.
pub fn generate(common_name: &str, days: u32) -> Result<(PKey<Private>, X509), KeyError> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", common_name)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((key, b.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, created) =
            load_or_create(dir.path(), &SigningConfig::default(), "Tessera test").expect("gen");
        assert!(created);
        let (b, created) =
            load_or_create(dir.path(), &SigningConfig::default(), "Tessera test").expect("load");
        assert!(!created);
        assert_eq!(a.thumbprint_sha256, b.thumbprint_sha256);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key file must not be group/world readable");
    }

    #[test]
    fn imports_pfx_and_refuses_wrong_password_and_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, cert) = generate("ADFS Signing - adfs.corp.example", 30).expect("gen");
        let pfx = Pkcs12::builder()
            .name("adfs")
            .pkey(&key)
            .cert(&cert)
            .build2("pfx-pass")
            .expect("pfx");
        let pfx_path = dir.path().join("adfs.pfx");
        std::fs::write(&pfx_path, pfx.to_der().expect("der")).expect("write");
        let data = dir.path().join("data");
        let m = import(&data, Some((&pfx_path, "pfx-pass")), None).expect("import");
        assert_eq!(
            m.thumbprint_sha1,
            hex::encode(cert.digest(MessageDigest::sha1()).expect("d")).to_uppercase()
        );
        // The imported key is what the next start uses.
        let (again, created) =
            load_or_create(&data, &SigningConfig::default(), "ignored").expect("reload");
        assert!(!created);
        assert_eq!(again.thumbprint_sha1, m.thumbprint_sha1);

        let err = import(&data, Some((&pfx_path, "wrong")), None).expect_err("bad pw");
        assert!(err.to_string().contains("password"), "{err}");

        let (other_key, _) = generate("other", 1).expect("gen");
        let err = KeyMaterial::new(other_key, cert).expect_err("mismatch");
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn refuses_non_rsa_keys() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group"),
        )
        .expect("ec");
        let ec = PKey::from_ec_key(ec).expect("pkey");
        let (_, cert) = generate("x", 1).expect("gen");
        let err = KeyMaterial::new(ec, cert).expect_err("ec refused");
        assert!(err.to_string().contains("RSA"), "{err}");
    }
}
