//! Encryption of MFA secrets at rest: one node-shared AES-256-GCM key, sealed values and sub-keys.
//!
//! The key lives in a file of its own (64 hex characters, mode 0600) beside the data, never
//! in the Store, so a copy of the Store (a Redis dump, a redb backup) does not reveal OATH
//! secrets. Every node of a farm must be given the same key file.
//!
//! A sealed value is `v1:<base64(nonce | ciphertext | tag)>`: a 96-bit random nonce (NIST
//! SP 800-38D §8.2.2), the ciphertext, and the 128-bit GCM tag. The caller's additional
//! authenticated data (AAD) binds the value to its owner, so a sealed secret copied into
//! another user's record does not open there.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes in an AES-256 key.
const KEY_LEN: usize = 32;
/// GCM nonce length: 96 bits is the size GCM is specified for (SP 800-38D §5.2.1.1).
const NONCE_LEN: usize = 12;
/// Full-length GCM tag; truncated tags weaken forgery resistance (SP 800-38D §5.2.1.2).
const TAG_LEN: usize = 16;
/// Version prefix of a sealed value, so the format can change without guessing.
const PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error(
        "secret key file {path} must hold exactly 64 hex characters (a 32-byte key) on one line"
    )]
    KeyFormat { path: PathBuf },
    #[error(
        "secret key file {path} is accessible to group or others (mode {mode:04o}); \
         run `chmod 600 {path}`"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
    /// Deliberately vague: wrong key, wrong owner (AAD) and tampering look the same.
    #[error(
        "sealed value does not open with this key and owner (wrong key, wrong owner, or altered)"
    )]
    Unseal,
    #[error("no OATH token `{0}` in this registration")]
    NoSuchToken(String),
}

/// `N` bytes from OpenSSL's CSPRNG.
///
/// # Panics
/// Only when OpenSSL's random generator reports failure (it could not seed). Carrying on
/// would mean issuing a predictable secret or nonce, which is worse than stopping.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    openssl::rand::rand_bytes(&mut buf).expect("OpenSSL CSPRNG failed; refusing to continue");
    buf
}

/// HMAC (RFC 2104) with OpenSSL.
///
/// # Panics
/// Never in practice: HMAC over an in-memory buffer with a digest OpenSSL ships only fails on
/// allocation failure, which aborts the process anyway.
pub(crate) fn hmac(md: MessageDigest, key: &[u8], data: &[u8]) -> Vec<u8> {
    // Some OpenSSL versions refuse an empty HMAC key. HMAC pads the key with zeros to the
    // block size (RFC 2104 §2), so the one-zero-byte key yields the identical MAC.
    let key = if key.is_empty() { &[0u8][..] } else { key };
    PKey::hmac(key)
        .and_then(|k| {
            let mut s = Signer::new(md, &k)?;
            s.update(data)?;
            s.sign_to_vec()
        })
        .expect("HMAC with a built-in digest cannot fail")
}

/// The node-shared secret key. Debug prints no key material.
pub struct SecretBox {
    key: [u8; KEY_LEN],
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox").finish_non_exhaustive()
    }
}

impl Drop for SecretBox {
    fn drop(&mut self) {
        // Best effort to not leave the key in freed memory; black_box keeps the optimiser
        // from discarding the "dead" store.
        self.key.fill(0);
        std::hint::black_box(&self.key);
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; KEY_LEN]) -> SecretBox {
        SecretBox { key }
    }

    /// Loads the key file at `path`, creating it with a fresh random key when absent.
    ///
    /// An existing file must hold exactly 64 hex characters (one trailing newline allowed)
    /// and must not be accessible to group or others. A new file is written under a temporary
    /// name with mode 0600 and then hard-linked into place, so a crash never leaves a
    /// half-written key and two nodes starting at once on a shared volume agree on one key.
    pub fn load_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match Self::create(path) {
                Ok(sb) => Ok(sb),
                // Another process created it between our check and our link: use theirs.
                Err(CreateError::Exists) => Self::load(path),
                Err(CreateError::Io(e)) => Err(key_file(path, e)),
            },
            Err(e) => Err(key_file(path, e)),
        }
    }

    fn load(path: &Path) -> Result<SecretBox, SecretError> {
        let meta = fs::metadata(path).map_err(|e| key_file(path, e))?;
        if !meta.is_file() {
            return Err(SecretError::KeyFile {
                path: path.to_owned(),
                detail: "not a regular file".into(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(SecretError::KeyPermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let text = fs::read_to_string(path).map_err(|_| SecretError::KeyFormat {
            path: path.to_owned(),
        })?;
        let line = text
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&text);
        let mut key = [0u8; KEY_LEN];
        if line.len() != 2 * KEY_LEN || hex::decode_to_slice(line, &mut key).is_err() {
            return Err(SecretError::KeyFormat {
                path: path.to_owned(),
            });
        }
        Ok(SecretBox { key })
    }

    fn create(path: &Path) -> Result<SecretBox, CreateError> {
        let key: [u8; KEY_LEN] = random_bytes();
        let tmp = tmp_name(path);
        let written = write_private(&tmp, format!("{}\n", hex::encode(key)).as_bytes())
            .and_then(|()| fs::hard_link(&tmp, path));
        // The temporary name is never needed again, whatever happened.
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(SecretBox { key }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CreateError::Exists),
            Err(e) => Err(CreateError::Io(e)),
        }
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. `username/token-id`), under a fresh random
    /// nonce. Random 96-bit nonces stay well inside GCM's limits for the few thousand values
    /// an IdP seals (SP 800-38D §8.3 allows 2^32 invocations per key).
    ///
    /// # Panics
    /// Only if OpenSSL's CSPRNG or AES-GCM fails, which with a fixed 32-byte key and 12-byte
    /// nonce means OpenSSL itself is broken; storing an unopenable value would lose the secret.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            aad,
            plaintext,
            &mut tag,
        )
        .expect("AES-256-GCM with a valid key and nonce cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len() + TAG_LEN);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        blob.extend_from_slice(&tag);
        Sealed(blob)
    }

    /// Decrypts a sealed value. Fails with [`SecretError::Unseal`] when the key, the AAD or
    /// any byte of the value differs from what was sealed (GCM authenticates all three).
    pub fn open(&self, s: &Sealed, aad: &[u8]) -> Result<Vec<u8>, SecretError> {
        if s.0.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed("too short for nonce and tag"));
        }
        let (nonce, rest) = s.0.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(Cipher::aes_256_gcm(), &self.key, Some(nonce), aad, ct, tag)
            .map_err(|_| SecretError::Unseal)
    }

    /// A 32-byte sub-key for one purpose: HMAC-SHA256(key, "tessera/" + purpose), a PRF used as
    /// a KDF (as in HKDF-Expand, RFC 5869 §2.3, with a single block). Distinct purposes give
    /// independent keys, so e.g. the callback-token signer never holds the sealing key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mac = hmac(
            MessageDigest::sha256(),
            &self.key,
            format!("tessera/{purpose}").as_bytes(),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(&mac);
        out
    }
}

enum CreateError {
    Exists,
    Io(io::Error),
}

fn key_file(path: &Path, e: io::Error) -> SecretError {
    SecretError::KeyFile {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// A sibling name nobody else will pick, for writing the new key before linking it in place.
fn tmp_name(path: &Path) -> PathBuf {
    let suffix = hex::encode(random_bytes::<8>());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}.tmp"));
    path.with_file_name(name)
}

/// Creates `path` (which must not exist) readable by its owner only, and writes it durably.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An encrypted value: nonce | ciphertext | tag. Serialises as `v1:<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// The serialised form, `v1:<base64(nonce | ciphertext | tag)>`.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// Parses the serialised form. Checks structure only; authenticity is checked by `open`.
    pub fn from_text(s: &str) -> Result<Sealed, SecretError> {
        let b64 = s.strip_prefix(PREFIX).ok_or(SecretError::Malformed(
            "unknown version prefix (expected `v1:`)",
        ))?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed("too short for nonce and tag"));
        }
        Ok(Sealed(blob))
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but it is noise in logs; its size is enough.
        write!(f, "Sealed(v1, {} bytes)", self.0.len())
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sealed::from_text(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> SecretBox {
        SecretBox::from_key([7u8; 32])
    }

    #[test]
    fn seal_open_round_trip_and_json_form() {
        let sb = sb();
        let s = sb.seal(b"JBSWY3DPEHPK3PXP", b"alice/t1");
        assert_eq!(sb.open(&s, b"alice/t1").unwrap(), b"JBSWY3DPEHPK3PXP");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.starts_with("\"v1:"), "{json}");
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(sb.open(&back, b"alice/t1").unwrap(), b"JBSWY3DPEHPK3PXP");
        // Empty plaintext is still authenticated.
        let e = sb.seal(b"", b"x");
        assert_eq!(sb.open(&e, b"x").unwrap(), b"");
        assert!(sb.open(&e, b"y").is_err());
    }

    #[test]
    fn wrong_aad_fails() {
        let sb = sb();
        let s = sb.seal(b"secret", b"alice/t1");
        assert!(matches!(
            sb.open(&s, b"mallory/t1"),
            Err(SecretError::Unseal)
        ));
        assert!(matches!(sb.open(&s, b"alice/t2"), Err(SecretError::Unseal)));
        assert!(matches!(sb.open(&s, b""), Err(SecretError::Unseal)));
    }

    #[test]
    fn tampering_anywhere_fails() {
        let sb = sb();
        let s = sb.seal(b"secret", b"a");
        for i in 0..s.0.len() {
            let mut t = s.clone();
            t.0[i] ^= 0x01;
            assert!(
                sb.open(&t, b"a").is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        let mut short = s.clone();
        short.0.pop();
        assert!(sb.open(&short, b"a").is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let s = sb().seal(b"secret", b"a");
        assert!(SecretBox::from_key([8u8; 32]).open(&s, b"a").is_err());
    }

    #[test]
    fn nonces_are_unique() {
        let sb = sb();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = sb.seal(b"same", b"same");
            assert!(seen.insert(s.0[..NONCE_LEN].to_vec()), "nonce repeated");
        }
    }

    #[test]
    fn malformed_text_is_refused() {
        assert!(Sealed::from_text("v2:AAAA").is_err());
        assert!(Sealed::from_text("v1:not base64!").is_err());
        assert!(Sealed::from_text(&format!("v1:{}", STANDARD.encode([0u8; 27]))).is_err());
        assert!(serde_json::from_str::<Sealed>("\"plain\"").is_err());
        assert!(Sealed::from_text(&format!("v1:{}", STANDARD.encode([0u8; 28]))).is_ok());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = [0xabu8; 32];
        let dbg = format!("{:?}", SecretBox::from_key(key));
        assert!(!dbg.contains("ab") && !dbg.contains("171"), "{dbg}");
        let s = SecretBox::from_key(key).seal(b"hunter2", b"a");
        assert_eq!(format!("{s:?}"), format!("Sealed(v1, {} bytes)", s.0.len()));
    }

    #[test]
    fn derive_is_hmac_sha256_of_the_purpose() {
        let sb = sb();
        let a = sb.derive("callback-token");
        assert_eq!(a, sb.derive("callback-token"));
        assert_ne!(a, sb.derive("other"));
        assert_ne!(a, SecretBox::from_key([8u8; 32]).derive("callback-token"));
        let expected = hmac(
            MessageDigest::sha256(),
            &[7u8; 32],
            b"tessera/callback-token",
        );
        assert_eq!(a.as_slice(), expected.as_slice());
        // The HMAC itself, against RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac(
                MessageDigest::sha256(),
                b"Jefe",
                b"what do ya want for nothing?"
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let first = SecretBox::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n') && text[..64].bytes().all(|b| b.is_ascii_hexdigit()));
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(first.key, again.key);
        let s = first.seal(b"x", b"a");
        assert_eq!(again.open(&s, b"a").unwrap(), b"x");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        SecretBox::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = SecretBox::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, SecretError::KeyPermissions { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(SecretBox::load_or_create(&path).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let good = "0123456789abcdef".repeat(4);
        for bad in [
            String::new(),
            good[..62].to_owned(),
            format!("{good}00"),
            format!("{}zz", &good[..62]),
            format!("# key\n{good}\n"),
            format!(" {good}"),
            format!("{good}\n\n"),
        ] {
            write_private(&path, bad.as_bytes()).unwrap();
            assert!(
                matches!(
                    SecretBox::load_or_create(&path),
                    Err(SecretError::KeyFormat { .. })
                ),
                "accepted {bad:?}"
            );
            fs::remove_file(&path).unwrap();
        }
        for ok in [good.clone(), format!("{good}\n"), good.to_uppercase()] {
            write_private(&path, ok.as_bytes()).unwrap();
            assert!(SecretBox::load_or_create(&path).is_ok(), "refused {ok:?}");
            fs::remove_file(&path).unwrap();
        }
    }
}
