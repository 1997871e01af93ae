//! LDAP / Active Directory `Directory`: service-account search, user bind, account state, pool, failover.
//!
//! The sign-in is the classic "search then bind" of AD FS / the MFA Server: a service account
//! finds the user's entry (filter built from escaped input only), the entry's account-state
//! attributes are checked, and then the user's password is verified by a simple bind as the
//! found DN on a separate connection. A "direct bind" mode binds as a name built from a
//! template instead and then reads the user's own entry.
//!
//! Connections: servers are tried in the configured order; one that fails to connect is
//! remembered as down for `server_retry_ms` so later sign-ins go straight to the next one.
//! Service-bound connections are shared (ldap3 multiplexes operations on one connection) with
//! at most `max_in_flight` operations each; user binds get a connection of their own from a
//! small idle pool, because RFC 4511 §4.2.1 forbids other operations on a connection while a
//! bind is in progress and a bind changes the connection's identity.

mod account;
mod connect;
mod diagnose;
mod entry;
mod failover;
mod login;
mod pool;
mod settings;
mod signin;

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::SearchEntry;

/// What `find` keeps for `authenticate_found`: the user's entry and its `lower_attrs`.
type Kept = (SearchEntry, std::collections::BTreeMap<String, Vec<String>>);
use tokio::sync::Semaphore;

pub use account::{ad_bind_subcode, ad_subcode_error};
pub use entry::group_name;
pub use settings::{LdapAttributeNames, LdapSettings};

use super::{AuthError, Directory, Found, UserInfo};
use account::STATE_ATTRIBUTES;
use connect::tls_connector;
use entry::lower_attrs;
use failover::Server;
use pool::{BindConn, ServiceConn};

/// Why an `LdapDirectory` could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("invalid LDAP settings: {0}")]
    Invalid(String),
    #[error("directory.ldap.ca_file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
}

/// The LDAP / AD directory.
pub struct LdapDirectory {
    settings: LdapSettings,
    servers: Vec<Server>,
    tls: Option<native_tls::TlsConnector>,
    /// Attributes requested in user searches: mapped, extra and account-state ones.
    read_attributes: Vec<String>,
    /// Lower-cased names returned in `UserInfo.attributes`.
    reported_attributes: Vec<String>,
    service: Vec<tokio::sync::Mutex<Option<ServiceConn>>>,
    next_service: AtomicUsize,
    next_conn_id: AtomicU64,
    bind_idle: Mutex<Vec<BindConn>>,
    bind_slots: Semaphore,
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LdapDirectory {
    /// Builds the directory from validated settings. No connection is opened here, so
    /// Tessera starts even while every domain controller is down.
    pub fn new(settings: LdapSettings) -> Result<Self, LdapSetupError> {
        settings.validate().map_err(LdapSetupError::Invalid)?;
        let servers = settings
            .server_urls()
            .map_err(LdapSetupError::Invalid)?
            .into_iter()
            .map(|url| Server {
                url,
                down_until: Mutex::new(None),
            })
            .collect::<Vec<_>>();
        if servers
            .iter()
            .any(|s| s.url.scheme() == "ldap" && !settings.starttls)
        {
            tracing::warn!(
                "directory.ldap: a server uses ldap:// without starttls; passwords cross the network in clear text"
            );
        }
        let tls = match &settings.ca_file {
            Some(path) => Some(tls_connector(path)?),
            None => None,
        };

        let mut read_attributes: Vec<String> = Vec::new();
        let push_unique = |list: &mut Vec<String>, name: &str| {
            if !list.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                list.push(name.to_string());
            }
        };
        for (_, name) in settings.attributes.all() {
            push_unique(&mut read_attributes, name);
        }
        for name in &settings.extra_attributes {
            push_unique(&mut read_attributes, name);
        }
        let reported_attributes = read_attributes
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        for name in STATE_ATTRIBUTES {
            push_unique(&mut read_attributes, name);
        }

        let service = (0..settings.pool_size)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        let bind_slots = Semaphore::new(settings.pool_size);
        Ok(Self {
            settings,
            servers,
            tls,
            read_attributes,
            reported_attributes,
            service,
            next_service: AtomicUsize::new(0),
            next_conn_id: AtomicU64::new(1),
            bind_idle: Mutex::new(Vec::new()),
            bind_slots,
        })
    }

    /// The settings this directory runs with.
    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.op_timeout_ms)
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn authenticate(&self, login: &str, password: &str) -> Result<UserInfo, AuthError> {
        // RFC 4513 §5.1.2: a simple bind with a name and an empty password is an
        // unauthenticated bind that servers (AD included) answer with success. Refuse it
        // before any directory traffic.
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let (user, suffix) = self.parse_login(login)?;
        match &self.settings.direct_bind {
            Some(template) => self.direct_bind(template, user, suffix, password).await,
            None => self.search_then_bind(user, suffix, password).await,
        }
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<UserInfo>, AuthError> {
        if self.settings.bind_dn.is_empty() {
            return Err(AuthError::Unavailable(
                "search needs a service account (directory.ldap.bind_dn)".into(),
            ));
        }
        self.search_users(text, limit).await
    }

    async fn lookup(&self, login: &str) -> Result<Option<UserInfo>, AuthError> {
        let Ok((user, suffix)) = self.parse_login(login) else {
            return Ok(None);
        };
        if self.settings.bind_dn.is_empty() {
            return Err(AuthError::Unavailable(
                "lookup needs a service account (directory.ldap.bind_dn)".into(),
            ));
        }
        Ok(self.find_user(user, suffix).await?.map(|entry| {
            let attrs = lower_attrs(&entry);
            self.user_info(entry, attrs, user)
        }))
    }

    /// A fresh connection (servers in order, as a sign-in would try them) and, with a service
    /// account, its bind. Not a pooled connection: one opened minutes ago proves nothing
    /// about the server now, and the probe must not replace connections sign-ins are using.
    async fn check(&self) -> Result<(), AuthError> {
        let (mut ldap, server) = self.connect_any().await?;
        if !self.settings.bind_dn.is_empty() {
            let bound = ldap
                .with_timeout(self.op_timeout())
                .simple_bind(&self.settings.bind_dn, &self.settings.bind_password)
                .await;
            let url = &self.servers[server].url;
            match bound {
                Ok(r) if r.rc == 0 => {}
                Ok(r) => {
                    return Err(AuthError::Unavailable(format!(
                        "{url}: service account bind refused: rc={} {}",
                        r.rc, r.text
                    )));
                }
                Err(e) => {
                    return Err(AuthError::Unavailable(format!(
                        "{url}: service account bind: {e}"
                    )));
                }
            }
        }
        // Best effort: the server drops the connection itself when we go.
        let _ = ldap.unbind().await;
        Ok(())
    }

    async fn canonical_name(&self, login: &str) -> Result<Option<String>, AuthError> {
        Ok(self.find(login).await?.map(|found| found.name))
    }

    async fn find(&self, login: &str) -> Result<Option<Found>, AuthError> {
        let Ok((user, suffix)) = self.parse_login(login) else {
            return Ok(None);
        };
        // Direct bind without a service account: nothing can be read before the bind, so
        // the typed short name is the best there is (`DOMAIN\alice` and `alice` still agree).
        if self.settings.bind_dn.is_empty() {
            return Ok(Some(Found::name_only(user.to_lowercase())));
        }
        Ok(self.find_user(user, suffix).await?.map(|entry| {
            let attrs = lower_attrs(&entry);
            let kept: Kept = (entry, attrs);
            Found {
                name: self.username(&kept.1, user),
                record: Some(Box::new(kept)),
            }
        }))
    }

    /// With the entry `find` read, search-then-bind goes straight to its checks and bind:
    /// the search is not sent twice (BENCHMARKS.md). Anything else (direct bind, no entry
    /// kept, an empty password) goes the whole way through `authenticate`.
    async fn authenticate_found(
        &self,
        login: &str,
        password: &str,
        found: Option<Found>,
    ) -> Result<UserInfo, AuthError> {
        let kept = found
            .and_then(|f| f.record)
            .and_then(|r| r.downcast::<Kept>().ok());
        match kept {
            Some(kept) if self.settings.direct_bind.is_none() && !password.is_empty() => {
                let (user, _) = self.parse_login(login)?;
                let (entry, attrs) = *kept;
                self.bind_entry(entry, attrs, user, password).await
            }
            _ => self.authenticate(login, password).await,
        }
    }
}

#[cfg(test)]
fn test_settings() -> LdapSettings {
    LdapSettings {
        servers: "ldaps://dc1.corp.example;ldap://dc2.corp.example:389".into(),
        starttls: true,
        bind_dn: "cn=svc,dc=corp,dc=example".into(),
        bind_password: "hunter2-secret".into(),
        base_dn: "dc=corp,dc=example".into(),
        ..LdapSettings::default()
    }
}
