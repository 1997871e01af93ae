//! HTTPS on the listener: loads the PEM certificate chain and key named in `[server]`,
//! checks that they belong together, and picks up renewed files without a restart.
//!
//! Renewal tools (certbot, acme.sh, an admin with `cp`) replace the files while Tessera runs,
//! often one after the other. The files are looked at again at most every `RECHECK` when a
//! connection arrives; a pair that does not load (the new certificate written, its key not
//! yet) leaves the previous one in service until the pair is whole.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::X509;

use crate::config::ServerConfig;

/// How often, at most, the files' modification stamps are looked at.
const RECHECK: Duration = Duration::from_secs(2);

const CERT_KEY: &str = "server.tls_cert_file";
const KEY_KEY: &str = "server.tls_key_file";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{set} is set but {missing} is not: set both to serve HTTPS, or neither")]
    OnlyOne {
        set: &'static str,
        missing: &'static str,
    },
    #[error("{key} {path}: {detail}")]
    File {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{KEY_KEY} {key_path} is not the private key of the certificate in {CERT_KEY} {cert_path}"
    )]
    Mismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    #[error("building the TLS acceptor: {0}")]
    Setup(#[from] openssl::error::ErrorStack),
}

/// How the listener talks to clients.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (a proxy in front terminates TLS, or a lab).
    Plain,
    /// HTTPS with the certificate in force now.
    Tls(Arc<LiveTls>),
}

impl Transport {
    /// From `[server]`: HTTPS when both files are set; an error naming the key when only one
    /// is, or when they cannot be read or do not belong together.
    pub fn from_config(c: &ServerConfig) -> Result<Self, TlsError> {
        match (&c.tls_cert_file, &c.tls_key_file) {
            (None, None) => Ok(Transport::Plain),
            (Some(_), None) => Err(TlsError::OnlyOne {
                set: CERT_KEY,
                missing: KEY_KEY,
            }),
            (None, Some(_)) => Err(TlsError::OnlyOne {
                set: KEY_KEY,
                missing: CERT_KEY,
            }),
            (Some(cert), Some(key)) => Ok(Transport::Tls(Arc::new(LiveTls::load(cert, key)?))),
        }
    }
}

/// When each file last changed, as far as a cheap `stat` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    cert: Option<(SystemTime, u64)>,
    key: Option<(SystemTime, u64)>,
}

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Self {
        let stat = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| Ok((m.modified()?, m.len())))
                .ok()
        };
        Stamp {
            cert: stat(cert),
            key: stat(key),
        }
    }
}

struct InForce {
    acceptor: Arc<SslAcceptor>,
    stamp: Stamp,
    checked: Instant,
    /// Files seen and refused, so a broken pair is logged once rather than on every check.
    refused: Option<Stamp>,
}

/// The certificate in service, reloaded when its files change.
pub struct LiveTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    in_force: Mutex<InForce>,
}

impl LiveTls {
    /// Loads the pair once; a failure here stops the start-up with the key to fix.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let stamp = Stamp::of(cert_path, key_path);
        let acceptor = acceptor(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            in_force: Mutex::new(InForce {
                acceptor: Arc::new(acceptor),
                stamp,
                checked: Instant::now(),
                refused: None,
            }),
        })
    }

    /// The acceptor for a new connection: the files' current pair when they changed and
    /// load, else the one already in service.
    pub fn acceptor(&self) -> Arc<SslAcceptor> {
        let mut f = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        if f.checked.elapsed() >= RECHECK {
            f.checked = Instant::now();
            let now = Stamp::of(&self.cert_path, &self.key_path);
            if now != f.stamp && f.refused != Some(now) {
                match acceptor(&self.cert_path, &self.key_path) {
                    Ok(a) => {
                        f.acceptor = Arc::new(a);
                        f.stamp = now;
                        f.refused = None;
                        tracing::info!(
                            cert = %self.cert_path.display(),
                            "TLS certificate reloaded; new connections get the new one"
                        );
                    }
                    Err(e) => {
                        f.refused = Some(now);
                        tracing::warn!(
                            error = %e,
                            "TLS files changed but do not load; still serving the previous certificate"
                        );
                    }
                }
            }
        }
        f.acceptor.clone()
    }
}

/// A server acceptor (Mozilla's "intermediate" profile: TLS 1.2 and 1.3) for the chain in
/// `cert_path` (leaf first, then intermediates) and the key in `key_path`.
fn acceptor(cert_path: &Path, key_path: &Path) -> Result<SslAcceptor, TlsError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::File {
            key,
            path: path.to_owned(),
            detail: e.to_string(),
        })
    };
    let bad = |key: &'static str, path: &Path, detail: String| TlsError::File {
        key,
        path: path.to_owned(),
        detail,
    };
    let chain = X509::stack_from_pem(&read(CERT_KEY, cert_path)?)
        .map_err(|e| bad(CERT_KEY, cert_path, format!("not a PEM certificate: {e}")))?;
    let mut chain = chain.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| bad(CERT_KEY, cert_path, "no PEM certificate found".into()))?;
    let key = PKey::private_key_from_pem(&read(KEY_KEY, key_path)?)
        .map_err(|e| bad(KEY_KEY, key_path, format!("not a PEM private key: {e}")))?;
    if !leaf.public_key()?.public_eq(&key) {
        return Err(TlsError::Mismatch {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        });
    }
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_certificate(&leaf)?;
    for intermediate in chain {
        b.add_extra_chain_cert(intermediate)?;
    }
    b.set_private_key(&key)?;
    b.check_private_key()?;
    tracing::info!(
        subject = ?leaf.subject_name(),
        not_after = %leaf.not_after(),
        "TLS certificate loaded"
    );
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (key, cert) = crate::keys::generate(name, 30).expect("generate");
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.to_pem().expect("pem")).expect("write");
        std::fs::write(&k, key.private_key_to_pem_pkcs8().expect("pem")).expect("write");
        (c, k)
    }

    fn config(cert: Option<&Path>, key: Option<&Path>) -> ServerConfig {
        ServerConfig {
            tls_cert_file: cert.map(Path::to_owned),
            tls_key_file: key.map(Path::to_owned),
            ..ServerConfig::default()
        }
    }

    fn refusal(cert: Option<&Path>, key: Option<&Path>) -> String {
        match Transport::from_config(&config(cert, key)) {
            Ok(_) => panic!("accepted {cert:?} / {key:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn start_up_refuses_a_broken_pair_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a_crt, a_key) = write_pair(dir.path(), "a");
        let (_, b_key) = write_pair(dir.path(), "b");
        assert!(matches!(
            Transport::from_config(&config(None, None)),
            Ok(Transport::Plain)
        ));
        assert!(matches!(
            Transport::from_config(&config(Some(&a_crt), Some(&a_key))),
            Ok(Transport::Tls(_))
        ));

        let e = refusal(Some(&a_crt), None);
        assert!(
            e.starts_with("server.tls_cert_file is set but server.tls_key_file"),
            "{e}"
        );
        let e = refusal(None, Some(&a_key));
        assert!(
            e.starts_with("server.tls_key_file is set but server.tls_cert_file"),
            "{e}"
        );
        let e = refusal(Some(&a_crt), Some(&b_key));
        assert!(e.starts_with("server.tls_key_file"), "{e}");
        assert!(e.contains("is not the private key"), "{e}");
        let missing = dir.path().join("missing.crt");
        let e = refusal(Some(&missing), Some(&a_key));
        assert!(e.starts_with("server.tls_cert_file"), "{e}");
        assert!(e.contains("missing.crt"), "{e}");
        // A key where the certificate belongs, and the other way round.
        let e = refusal(Some(&a_key), Some(&a_key));
        assert!(e.starts_with("server.tls_cert_file"), "{e}");
        let e = refusal(Some(&a_crt), Some(&a_crt));
        assert!(e.starts_with("server.tls_key_file"), "{e}");
    }
}
