//! Opening one LDAP connection: TCP socket with TCP_NODELAY, then TLS or StartTLS.

use std::fmt;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, StdStream};
use url::Url;

use super::{LdapDirectory, LdapSetupError};

/// The outcome of an operation that did not produce an LDAP result: the connection is
/// suspect (I/O error, timeout, closed) and is dropped; the operation may be retried once.
#[derive(Debug)]
pub(super) struct Transport(pub(super) String);

impl<E: fmt::Display> From<E> for Transport {
    fn from(e: E) -> Self {
        Transport(e.to_string())
    }
}

impl LdapDirectory {
    /// Opens one connection. We connect the socket ourselves to set TCP_NODELAY: ldap3 does
    /// not, and with Nagle + delayed ACK an LDAPS search+bind was measured at 88 ms instead
    /// of 3.4 ms (reference/xml-signatures.md, "ldap3 pitfalls"). Sequential logins against a
    /// loopback slapd show no difference (1.6 ms either way), so the stall needs small
    /// writes queued behind an unacknowledged one (operations pipelined on a shared
    /// connection, TLS records split); nodelay costs nothing when it does not help. ldap3
    /// then runs TLS or StartTLS over our socket (`set_std_stream`).
    pub(super) async fn open(&self, url: &Url) -> Result<Ldap, Transport> {
        let connect = async {
            let port = url
                .port()
                .unwrap_or(if url.scheme() == "ldaps" { 636 } else { 389 });
            let tcp = match url.host() {
                Some(url::Host::Ipv6(ip)) => tokio::net::TcpStream::connect((ip, port)).await?,
                Some(url::Host::Ipv4(ip)) => tokio::net::TcpStream::connect((ip, port)).await?,
                Some(url::Host::Domain(name)) => {
                    tokio::net::TcpStream::connect((name, port)).await?
                }
                None => return Err(Transport("URL without host".into())),
            };
            tcp.set_nodelay(true)?;
            let mut conn_settings = LdapConnSettings::new()
                .set_std_stream(StdStream::Tcp(tcp.into_std()?))
                .set_starttls(self.settings.starttls && url.scheme() == "ldap");
            if let Some(connector) = &self.tls {
                conn_settings = conn_settings.set_connector(connector.clone());
            }
            let (conn, ldap) = LdapConnAsync::from_url_with_settings(conn_settings, url).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.drive().await {
                    tracing::debug!(error = %e, "LDAP connection ended");
                }
            });
            Ok(ldap)
        };
        let budget = Duration::from_millis(self.settings.connect_timeout_ms);
        match tokio::time::timeout(budget, connect).await {
            Ok(result) => result,
            Err(_) => Err(Transport(format!(
                "connect timed out after {} ms",
                self.settings.connect_timeout_ms
            ))),
        }
    }
}

/// A TLS connector trusting exactly the CA certificate(s) in `path` (PEM, one or more).
pub(super) fn tls_connector(
    path: &std::path::Path,
) -> Result<native_tls::TlsConnector, LdapSetupError> {
    let fail = |detail: String| LdapSetupError::CaFile {
        path: path.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate found".into()));
    }
    let mut builder = native_tls::TlsConnector::builder();
    builder.disable_built_in_roots(true);
    for cert in certs {
        let der = cert.to_der().map_err(|e| fail(e.to_string()))?;
        let cert = native_tls::Certificate::from_der(&der).map_err(|e| fail(e.to_string()))?;
        builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| fail(e.to_string()))
}
