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

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Scope, SearchEntry, SearchOptions,
    StdStream, dn_escape, ldap_escape,
};
use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use url::Url;

use super::{AuthError, Directory, UserInfo, split_login};

/// Longest login accepted before any directory traffic (AD's userPrincipalName is at most
/// 1024 characters; anything longer cannot name a user).
const MAX_LOGIN_LEN: usize = 1024;

/// AD `userAccountControl` flag ACCOUNTDISABLE ([MS-ADTS] §2.2.16).
const UAC_ACCOUNTDISABLE: i64 = 0x2;

/// Attributes read only to decide the account state; requested in every user search.
/// `pwdAccountLockedTime` and `pwdReset` are operational (draft-behera-ldap-password-policy
/// §5.3), so a server only returns them when asked by name.
const STATE_ATTRIBUTES: [&str; 4] = [
    "userAccountControl",
    "lockoutTime",
    "pwdAccountLockedTime",
    "pwdReset",
];

/// Names of the directory attributes mapped onto `UserInfo` fields. Defaults are AD's.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LdapAttributeNames {
    pub username: String,
    pub upn: String,
    pub mail: String,
    pub display_name: String,
    pub mobile: String,
    pub telephone: String,
    pub groups: String,
}

impl Default for LdapAttributeNames {
    fn default() -> Self {
        Self {
            username: "sAMAccountName".into(),
            upn: "userPrincipalName".into(),
            mail: "mail".into(),
            display_name: "displayName".into(),
            mobile: "mobile".into(),
            telephone: "telephoneNumber".into(),
            groups: "memberOf".into(),
        }
    }
}

impl LdapAttributeNames {
    fn all(&self) -> [(&'static str, &str); 7] {
        [
            ("username", &self.username),
            ("upn", &self.upn),
            ("mail", &self.mail),
            ("display_name", &self.display_name),
            ("mobile", &self.mobile),
            ("telephone", &self.telephone),
            ("groups", &self.groups),
        ]
    }
}

/// `[directory.ldap]` settings. Only `servers`, `base_dn` and the service account (or
/// `direct_bind`) are needed; everything else defaults to what suits Active Directory.
#[derive(Deserialize, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct LdapSettings {
    /// ";"-separated server URLs tried in order, as in the MFA Server's directory settings,
    /// e.g. `"ldaps://dc1.corp.example:636;ldap://dc2.corp.example:389"`.
    pub servers: String,
    /// Upgrade `ldap://` servers with StartTLS (RFC 4513 §3). `ldaps://` ones are TLS anyway.
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that issued the servers' certificates. When set,
    /// only these CAs are trusted; otherwise the system trust store is used.
    pub ca_file: Option<PathBuf>,
    /// Service account used for searches. Empty only in `direct_bind` mode.
    pub bind_dn: String,
    /// Service account password. Never logged; `Debug` prints it redacted.
    pub bind_password: String,
    /// Subtree searched for users.
    pub base_dn: String,
    /// Search filter; `{user}` is the short name and `{upn}` the full `user@suffix` (or the
    /// short name when none was typed), both escaped per RFC 4515 §3 before substitution.
    pub user_filter: String,
    /// Bind as the user without a service account: `{user}` is replaced by the short name,
    /// e.g. `"{user}@corp.example"`, `"CORP\\{user}"` or `"uid={user},ou=people,dc=corp,dc=example"`
    /// (a template containing `=` is a DN, so the name is DN-escaped per RFC 4514 §2.4).
    pub direct_bind: Option<String>,
    /// Directory attribute names behind the `UserInfo` fields.
    pub attributes: LdapAttributeNames,
    /// More attributes to read for claim rules (returned in `UserInfo.attributes`).
    pub extra_attributes: Vec<String>,
    /// Accepted suffixes for `user@suffix` logins (case-insensitive); empty accepts any.
    pub upn_suffixes: Vec<String>,
    /// TCP connect + TLS handshake (+ StartTLS) budget per server.
    pub connect_timeout_ms: u64,
    /// Budget for each LDAP operation (bind, search).
    pub op_timeout_ms: u64,
    /// Service-bound connections, and also the number of dedicated user-bind connections.
    pub pool_size: usize,
    /// Cap on concurrent operations per service connection (200 at once made slapd drop the
    /// connection in our measurements; see reference/xml-signatures.md "ldap3 pitfalls").
    pub max_in_flight: usize,
    /// How long a server that failed to connect is skipped before it is tried first again.
    pub server_retry_ms: u64,
    /// Connections are replaced after this age, so that after a failover the pool drifts back
    /// to the preferred server and idle connections do not meet AD's MaxConnIdleTime (900 s).
    pub max_connection_age_s: u64,
}

impl Default for LdapSettings {
    fn default() -> Self {
        Self {
            servers: String::new(),
            starttls: false,
            ca_file: None,
            bind_dn: String::new(),
            bind_password: String::new(),
            base_dn: String::new(),
            // AD users only; computer accounts are also objectClass=user, so exclude them.
            user_filter: "(&(objectClass=user)(!(objectClass=computer))\
                          (|(sAMAccountName={user})(userPrincipalName={upn})))"
                .into(),
            direct_bind: None,
            attributes: LdapAttributeNames::default(),
            extra_attributes: Vec::new(),
            upn_suffixes: Vec::new(),
            connect_timeout_ms: 3_000,
            op_timeout_ms: 10_000,
            pool_size: 8,
            max_in_flight: 32,
            server_retry_ms: 30_000,
            max_connection_age_s: 600,
        }
    }
}

impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.bind_password.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("LdapSettings")
            .field("servers", &self.servers)
            .field("starttls", &self.starttls)
            .field("ca_file", &self.ca_file)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &password)
            .field("base_dn", &self.base_dn)
            .field("user_filter", &self.user_filter)
            .field("direct_bind", &self.direct_bind)
            .field("attributes", &self.attributes)
            .field("extra_attributes", &self.extra_attributes)
            .field("upn_suffixes", &self.upn_suffixes)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("op_timeout_ms", &self.op_timeout_ms)
            .field("pool_size", &self.pool_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("server_retry_ms", &self.server_retry_ms)
            .field("max_connection_age_s", &self.max_connection_age_s)
            .finish()
    }
}

impl LdapSettings {
    /// The server URLs, in order.
    pub fn server_urls(&self) -> Result<Vec<Url>, String> {
        let mut urls = Vec::new();
        for part in self.servers.split(';').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let url = Url::parse(part)
                .map_err(|e| format!("directory.ldap.servers: {part:?} is not a URL: {e}"))?;
            if url.scheme() != "ldap" && url.scheme() != "ldaps" {
                return Err(format!(
                    "directory.ldap.servers: {part:?} must use ldap:// or ldaps://"
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("directory.ldap.servers: {part:?} has no host"));
            }
            urls.push(url);
        }
        if urls.is_empty() {
            return Err("directory.ldap.servers: no server configured".into());
        }
        Ok(urls)
    }

    /// Checks the settings; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        self.server_urls()?;
        if let Some(path) = &self.ca_file
            && !path.is_file()
        {
            return Err(format!(
                "directory.ldap.ca_file: {} is not a readable file",
                path.display()
            ));
        }
        if self.base_dn.trim().is_empty() {
            return Err("directory.ldap.base_dn: must not be empty".into());
        }
        match &self.direct_bind {
            Some(template) if !template.contains("{user}") => {
                return Err("directory.ldap.direct_bind: must contain {user}".into());
            }
            None if self.bind_dn.trim().is_empty() => {
                return Err(
                    "directory.ldap.bind_dn: a service account is needed unless direct_bind is set"
                        .into(),
                );
            }
            _ => {}
        }
        // A simple bind with a DN and an empty password is an unauthenticated bind that
        // servers answer with success (RFC 4513 §5.1.2): it would silently search anonymously.
        if !self.bind_dn.trim().is_empty() && self.bind_password.is_empty() {
            return Err(
                "directory.ldap.bind_password: must not be empty when bind_dn is set".into(),
            );
        }
        let filter = self.user_filter.trim();
        if !(filter.starts_with('(') && filter.ends_with(')') && parens_balanced(filter)) {
            return Err(
                "directory.ldap.user_filter: must be one parenthesised LDAP filter (RFC 4515)"
                    .into(),
            );
        }
        if !filter.contains("{user}") && !filter.contains("{upn}") {
            return Err("directory.ldap.user_filter: must contain {user} or {upn}".into());
        }
        for (key, name) in self.attributes.all() {
            if !is_attribute_name(name) {
                return Err(format!(
                    "directory.ldap.attributes.{key}: {name:?} is not an attribute name"
                ));
            }
        }
        for name in &self.extra_attributes {
            if !is_attribute_name(name) {
                return Err(format!(
                    "directory.ldap.extra_attributes: {name:?} is not an attribute name"
                ));
            }
        }
        if self.upn_suffixes.iter().any(|s| s.trim().is_empty()) {
            return Err("directory.ldap.upn_suffixes: empty suffix".into());
        }
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("op_timeout_ms", self.op_timeout_ms),
            ("pool_size", self.pool_size as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("max_connection_age_s", self.max_connection_age_s),
        ] {
            if value == 0 {
                return Err(format!("directory.ldap.{key}: must be greater than 0"));
            }
        }
        Ok(())
    }
}

fn parens_balanced(filter: &str) -> bool {
    let mut depth: i64 = 0;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// RFC 4512 §2.5 attribute descriptions: a keystring or numeric OID, plus options (`;binary`).
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ';')
}

/// Why an `LdapDirectory` could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum LdapSetupError {
    #[error("invalid LDAP settings: {0}")]
    Invalid(String),
    #[error("directory.ldap.ca_file {path}: {detail}")]
    CaFile { path: PathBuf, detail: String },
}

/// The outcome of an operation that did not produce an LDAP result: the connection is
/// suspect (I/O error, timeout, closed) and is dropped; the operation may be retried once.
#[derive(Debug)]
struct Transport(String);

impl<E: fmt::Display> From<E> for Transport {
    fn from(e: E) -> Self {
        Transport(e.to_string())
    }
}

/// One configured server and the memory of its last connection failure.
struct Server {
    url: Url,
    down_until: Mutex<Option<Instant>>,
}

impl Server {
    fn is_down(&self, now: Instant) -> bool {
        // A poisoned lock only means another task panicked mid-update of an Option<Instant>;
        // the value is still meaningful.
        let guard = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        guard.is_some_and(|until| until > now)
    }

    fn mark(&self, until: Option<Instant>) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }
}

/// A service-bound connection shared by concurrent searches.
struct ServiceConn {
    ldap: Ldap,
    gate: Arc<Semaphore>,
    id: u64,
    server: usize,
    born: Instant,
}

/// What a search borrows from a service slot: a clone of the multiplexed handle.
struct ServiceHandle {
    slot: usize,
    id: u64,
    server: usize,
    ldap: Ldap,
    gate: Arc<Semaphore>,
}

/// A connection reserved for user binds (never shared while in use).
struct BindConn {
    ldap: Ldap,
    server: usize,
    born: Instant,
}

/// Account state read from the user's entry before the bind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AccountState {
    disabled: bool,
    locked: bool,
    must_change: bool,
}

impl AccountState {
    fn of(attrs: &BTreeMap<String, Vec<String>>) -> Self {
        let first = |name: &str| attrs.get(name).and_then(|v| v.first()).map(|s| s.trim());
        let as_int = |name: &str| first(name).and_then(|v| v.parse::<i64>().ok());
        Self {
            // [MS-ADTS] §2.2.16: bit 0x2 ACCOUNTDISABLE (the value is a signed 32-bit int).
            disabled: as_int("useraccountcontrol").is_some_and(|v| v & UAC_ACCOUNTDISABLE != 0),
            // AD keeps lockoutTime > 0 while locked; ppolicy sets pwdAccountLockedTime
            // (draft-behera-ldap-password-policy §5.3.3). Both may outlive the lockout
            // duration until the next good bind, so this is only a hint: the bind decides.
            locked: as_int("lockouttime").is_some_and(|v| v > 0)
                || first("pwdaccountlockedtime").is_some_and(|v| !v.is_empty()),
            // ppolicy pwdReset (§5.3.7): an administrator set the password; it must be changed.
            must_change: first("pwdreset").is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
        }
    }
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

    /// Opens (or reuses) a service connection: proves that a server answers and that the
    /// service account can bind. For `check-config` and health checks.
    pub async fn check(&self) -> Result<(), AuthError> {
        if self.settings.bind_dn.is_empty() {
            // Direct-bind mode has no account to test; reaching a server is all we can prove.
            return self.connect_any().await.map(drop);
        }
        self.service_handle().await.map(|_| ())
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.op_timeout_ms)
    }

    fn max_age(&self) -> Duration {
        Duration::from_secs(self.settings.max_connection_age_s)
    }

    // ---- login parsing and filters -------------------------------------------------------

    /// Turns what the user typed into (short name, optional UPN suffix), refusing anything
    /// that cannot name a user before the directory sees it.
    fn parse_login<'a>(&self, login: &'a str) -> Result<(&'a str, Option<&'a str>), AuthError> {
        let login = login.trim();
        if login.is_empty() || login.len() > MAX_LOGIN_LEN || login.chars().any(char::is_control) {
            return Err(AuthError::InvalidCredentials);
        }
        let (user, suffix) = split_login(login);
        // A UPN suffix is a DNS-style name (RFC 1123 label characters); anything else cannot
        // name a domain and is refused before it reaches a filter.
        let dns_like = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        if user.is_empty() || suffix.is_some_and(|s| !dns_like(s)) {
            return Err(AuthError::InvalidCredentials);
        }
        if let Some(suffix) = suffix
            && !self.settings.upn_suffixes.is_empty()
            && !self
                .settings
                .upn_suffixes
                .iter()
                .any(|s| s.trim().eq_ignore_ascii_case(suffix))
        {
            tracing::debug!(suffix, "login suffix not in directory.ldap.upn_suffixes");
            return Err(AuthError::InvalidCredentials);
        }
        Ok((user, suffix))
    }

    /// The user search filter. Every piece of user input goes through `ldap_escape`
    /// (RFC 4515 §3), so `*`, parentheses, backslashes and NUL are matched literally.
    fn user_filter(&self, user: &str, suffix: Option<&str>) -> String {
        let upn = match suffix {
            Some(s) => format!("{user}@{s}"),
            None => user.to_string(),
        };
        fill_template(
            self.settings.user_filter.trim(),
            &[("user", &ldap_escape(user)), ("upn", &ldap_escape(upn))],
        )
    }

    /// The bind name for direct-bind mode.
    fn direct_bind_name(template: &str, user: &str) -> String {
        if template.contains('=') {
            fill_template(template, &[("user", &dn_escape(user))])
        } else {
            fill_template(template, &[("user", user)])
        }
    }

    // ---- connections -----------------------------------------------------------------------

    /// Connects to the first server that answers, preferring servers not marked down; a
    /// server that fails is skipped for `server_retry_ms`. When every server is marked down
    /// they are all tried anyway, in order, rather than failing without trying.
    async fn connect_any(&self) -> Result<(Ldap, usize), AuthError> {
        let now = Instant::now();
        let (up, down): (Vec<usize>, Vec<usize>) =
            (0..self.servers.len()).partition(|&i| !self.servers[i].is_down(now));
        let mut failures = Vec::new();
        for i in up.into_iter().chain(down) {
            let server = &self.servers[i];
            match self.open(&server.url).await {
                Ok(ldap) => {
                    server.mark(None);
                    return Ok((ldap, i));
                }
                Err(e) => {
                    self.server_failed(i, &e.0);
                    failures.push(format!("{}: {}", server.url, e.0));
                }
            }
        }
        Err(AuthError::Unavailable(format!(
            "no LDAP server answered ({})",
            failures.join("; ")
        )))
    }

    /// Remembers a server as down for `server_retry_ms` and forgets its idle bind
    /// connections, so the next attempts go to the next server instead of waiting on this
    /// one again. Called for connect failures and for connections that stop answering
    /// (a server that accepts TCP but hangs must fail over too).
    fn server_failed(&self, server: usize, why: &str) {
        let url = &self.servers[server].url;
        tracing::warn!(server = %url, error = why, "LDAP server failed, using the next one for a while");
        self.servers[server].mark(Some(
            Instant::now() + Duration::from_millis(self.settings.server_retry_ms),
        ));
        self.bind_idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| c.server != server);
    }

    /// Opens one connection. We connect the socket ourselves to set TCP_NODELAY: ldap3 does
    /// not, and with Nagle + delayed ACK an LDAPS search+bind was measured at 88 ms instead
    /// of 3.4 ms (reference/xml-signatures.md, "ldap3 pitfalls"). Sequential logins against a
    /// loopback slapd show no difference (1.6 ms either way), so the stall needs small
    /// writes queued behind an unacknowledged one (operations pipelined on a shared
    /// connection, TLS records split); nodelay costs nothing when it does not help. ldap3
    /// then runs TLS or StartTLS over our socket (`set_std_stream`).
    async fn open(&self, url: &Url) -> Result<Ldap, Transport> {
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

    /// A shared, service-bound connection (round robin over `pool_size` lazily filled slots).
    async fn service_handle(&self) -> Result<ServiceHandle, AuthError> {
        let slot_index = self.next_service.fetch_add(1, Ordering::Relaxed) % self.service.len();
        let mut slot = self.service[slot_index].lock().await;
        let handle = |c: &ServiceConn| ServiceHandle {
            slot: slot_index,
            id: c.id,
            server: c.server,
            ldap: c.ldap.clone(),
            gate: c.gate.clone(),
        };
        if let Some(conn) = slot.as_mut()
            && !conn.ldap.is_closed()
            && conn.born.elapsed() < self.max_age()
        {
            return Ok(handle(conn));
        }
        // Replaced connections close once the searches still using their handles finish.
        *slot = None;
        let mut last = String::new();
        // A server that connects but does not answer the bind is failed over like one that
        // does not connect; each server gets at most one try here.
        for _ in 0..self.servers.len() {
            let (mut ldap, server) = self.connect_any().await?;
            if !self.settings.bind_dn.is_empty() {
                let bound = ldap
                    .with_timeout(self.op_timeout())
                    .simple_bind(&self.settings.bind_dn, &self.settings.bind_password)
                    .await;
                match bound {
                    Err(e) => {
                        last = format!("service account bind: {e}");
                        self.server_failed(server, &last);
                        continue;
                    }
                    // busy / unavailable (RFC 4511 A.1): this server, not the account.
                    Ok(result) if matches!(result.rc, 51 | 52) => {
                        last = format!("service account bind: rc={} {}", result.rc, result.text);
                        self.server_failed(server, &last);
                        continue;
                    }
                    Ok(result) if result.rc != 0 => {
                        // A configuration problem, not the user's: the page says "try later".
                        tracing::error!(bind_dn = %self.settings.bind_dn, rc = result.rc, text = %result.text, "LDAP service account bind refused");
                        return Err(AuthError::Unavailable(format!(
                            "service account bind refused: rc={} {}",
                            result.rc, result.text
                        )));
                    }
                    Ok(_) => {}
                }
            }
            let conn = ServiceConn {
                ldap,
                gate: Arc::new(Semaphore::new(self.settings.max_in_flight)),
                id: self.next_conn_id.fetch_add(1, Ordering::Relaxed),
                server,
                born: Instant::now(),
            };
            let shared = handle(&conn);
            *slot = Some(conn);
            return Ok(shared);
        }
        Err(AuthError::Unavailable(last))
    }

    async fn evict_service(&self, index: usize, id: u64) {
        let mut slot = self.service[index].lock().await;
        if slot.as_ref().is_some_and(|c| c.id == id) {
            *slot = None;
        }
    }

    /// Waits for one of the `pool_size` user-bind slots.
    async fn bind_slot(&self) -> Result<SemaphorePermit<'_>, AuthError> {
        self.bind_slots
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable("LDAP bind pool closed".into()))
    }

    async fn checkout_bind_conn(&self) -> Result<BindConn, AuthError> {
        // Idle connections the server closed, or that are too old, are dropped on the way.
        loop {
            let idle = self
                .bind_idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let Some(mut conn) = idle else { break };
            if !conn.ldap.is_closed() && conn.born.elapsed() < self.max_age() {
                return Ok(conn);
            }
        }
        let (ldap, server) = self.connect_any().await?;
        Ok(BindConn {
            ldap,
            server,
            born: Instant::now(),
        })
    }

    fn checkin_bind_conn(&self, conn: BindConn) {
        let mut idle = self.bind_idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.settings.pool_size {
            idle.push(conn);
        }
    }

    // ---- operations ----------------------------------------------------------------------

    /// Simple bind on a dedicated connection; on a transport failure the connection is
    /// dropped and the bind retried once on a fresh one (possibly another server). The
    /// caller holds a bind slot and gets the connection back to reuse or return.
    async fn user_bind(
        &self,
        name: &str,
        password: &str,
    ) -> Result<(LdapResult, BindConn), AuthError> {
        let mut last = String::new();
        for _ in 0..2 {
            let mut conn = self.checkout_bind_conn().await?;
            match conn
                .ldap
                .with_timeout(self.op_timeout())
                .simple_bind(name, password)
                .await
            {
                Ok(result) => return Ok((result, conn)),
                Err(e) => {
                    last = e.to_string();
                    self.server_failed(conn.server, &format!("user bind: {last}"));
                }
            }
        }
        Err(AuthError::Unavailable(format!("user bind: {last}")))
    }

    /// Search for the user (subtree under `base_dn` unless told otherwise); size limit 2 is
    /// enough to tell "one" from "ambiguous".
    async fn search(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        base: Option<&str>,
    ) -> Result<Result<Vec<SearchEntry>, AuthError>, Transport> {
        let (base, scope) = match base {
            Some(dn) => (dn, Scope::Base),
            None => (self.settings.base_dn.as_str(), Scope::Subtree),
        };
        let result = ldap
            .with_timeout(self.op_timeout())
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, scope, filter, &self.read_attributes)
            .await?;
        let ldap3::SearchResult(entries, status) = result;
        // 0 success, 4 sizeLimitExceeded (more than one match: reported as ambiguous).
        if status.rc != 0 && status.rc != 4 {
            return Ok(Err(AuthError::Unavailable(format!(
                "user search under {base} refused: rc={} {}",
                status.rc, status.text
            ))));
        }
        // AD answers a search at a domain root with continuation references to the
        // DomainDnsZones / ForestDnsZones partitions; those are not users.
        Ok(Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect()))
    }

    /// Finds the single entry for a login with the service account. `None` for no match or
    /// more than one (an ambiguous login must not pick somebody).
    async fn find_user(
        &self,
        user: &str,
        suffix: Option<&str>,
    ) -> Result<Option<SearchEntry>, AuthError> {
        let filter = self.user_filter(user, suffix);
        let mut last = String::new();
        for _ in 0..2 {
            let mut shared = self.service_handle().await?;
            let _permit = shared
                .gate
                .acquire()
                .await
                .map_err(|_| AuthError::Unavailable("LDAP connection gate closed".into()))?;
            match self.search(&mut shared.ldap, &filter, None).await {
                Ok(found) => return found.map(|entries| single(entries, user)),
                Err(Transport(e)) => {
                    self.evict_service(shared.slot, shared.id).await;
                    self.server_failed(shared.server, &format!("user search: {e}"));
                    last = e;
                }
            }
        }
        Err(AuthError::Unavailable(format!("user search: {last}")))
    }

    async fn search_then_bind(
        &self,
        user: &str,
        suffix: Option<&str>,
        password: &str,
    ) -> Result<UserInfo, AuthError> {
        let Some(entry) = self.find_user(user, suffix).await? else {
            tracing::info!(login = user, "LDAP sign-in refused: no such user");
            return Err(AuthError::InvalidCredentials);
        };
        let attrs = lower_attrs(&entry);
        let state = AccountState::of(&attrs);
        // Checked before binding so that a disabled account never costs a bind attempt (and
        // never adds to its bad-password count).
        if state.disabled {
            tracing::info!(dn = %entry.dn, "LDAP sign-in refused: account disabled");
            return Err(AuthError::AccountDisabled);
        }
        let _slot = self.bind_slot().await?;
        let (result, conn) = self.user_bind(&entry.dn, password).await?;
        self.finish_bind_conn(conn, &result);
        if result.rc != 0 {
            let mut err = bind_failure(&result);
            // ppolicy answers a locked account with plain invalidCredentials (49) unless the
            // password policy control is used; the attribute read above tells the two apart.
            if err == AuthError::InvalidCredentials && state.locked {
                err = AuthError::AccountLocked;
            }
            tracing::info!(dn = %entry.dn, rc = result.rc, text = %result.text, outcome = ?err, "LDAP sign-in refused");
            return Err(err);
        }
        if state.must_change {
            tracing::info!(dn = %entry.dn, "LDAP sign-in refused: password must be changed");
            return Err(AuthError::MustChangePassword);
        }
        Ok(self.user_info(entry, attrs, user))
    }

    async fn direct_bind(
        &self,
        template: &str,
        user: &str,
        suffix: Option<&str>,
        password: &str,
    ) -> Result<UserInfo, AuthError> {
        let name = Self::direct_bind_name(template, user);
        let _slot = self.bind_slot().await?;
        let (result, mut conn) = self.user_bind(&name, password).await?;
        if result.rc != 0 {
            self.finish_bind_conn(conn, &result);
            let err = bind_failure(&result);
            tracing::info!(bind_name = %name, rc = result.rc, text = %result.text, outcome = ?err, "LDAP direct bind refused");
            return Err(err);
        }
        // Read the user's own entry with the user's own rights: at the bind DN itself when the
        // template is a DN (a user may read only their own entry), else by the user filter
        // under base_dn (AD lets users read the domain).
        let (filter, base) = if template.contains('=') {
            ("(objectClass=*)".to_string(), Some(name.as_str()))
        } else {
            (self.user_filter(user, suffix), None)
        };
        let found = match self.search(&mut conn.ldap, &filter, base).await {
            Ok(found) => {
                self.checkin_bind_conn(conn);
                found?
            }
            Err(Transport(e)) => {
                self.server_failed(conn.server, &format!("own entry search: {e}"));
                return Err(AuthError::Unavailable(format!("own entry search: {e}")));
            }
        };
        let entry = match found.len() {
            1 => found.into_iter().next(),
            _ => found.into_iter().find(|e| e.dn.eq_ignore_ascii_case(&name)),
        };
        let Some(entry) = entry else {
            // The password is proven; the entry is just not readable. Sign in with what we know.
            tracing::warn!(bind_name = %name, "LDAP direct bind: own entry not readable; no attributes");
            return Ok(UserInfo {
                username: user.to_string(),
                dn: name,
                ..UserInfo::default()
            });
        };
        let attrs = lower_attrs(&entry);
        let state = AccountState::of(&attrs);
        if state.disabled {
            return Err(AuthError::AccountDisabled);
        }
        if state.must_change {
            return Err(AuthError::MustChangePassword);
        }
        Ok(self.user_info(entry, attrs, user))
    }

    /// Returns a bind connection to the pool unless the result hints at a sick server.
    fn finish_bind_conn(&self, conn: BindConn, result: &LdapResult) {
        if matches!(result.rc, 0 | 32 | 34 | 49) {
            self.checkin_bind_conn(conn);
        }
    }

    fn user_info(
        &self,
        entry: SearchEntry,
        attrs: BTreeMap<String, Vec<String>>,
        typed: &str,
    ) -> UserInfo {
        let names = &self.settings.attributes;
        let first = |name: &str| {
            attrs
                .get(&name.to_ascii_lowercase())
                .and_then(|v| v.first())
                .cloned()
        };
        let groups = attrs
            .get(&names.groups.to_ascii_lowercase())
            .map(|dns| dns.iter().map(|dn| group_name(dn)).collect())
            .unwrap_or_default();
        UserInfo {
            username: first(&names.username).unwrap_or_else(|| typed.to_string()),
            upn: first(&names.upn),
            mail: first(&names.mail),
            display_name: first(&names.display_name),
            mobile: first(&names.mobile),
            telephone: first(&names.telephone),
            groups,
            attributes: attrs
                .iter()
                .filter(|(k, _)| self.reported_attributes.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dn: entry.dn,
        }
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
}

fn single(entries: Vec<SearchEntry>, user: &str) -> Option<SearchEntry> {
    if entries.len() > 1 {
        tracing::warn!(
            login = user,
            "LDAP login matches more than one entry; refused"
        );
        return None;
    }
    entries.into_iter().next()
}

/// All attributes of an entry with lower-cased names (LDAP names are case-insensitive,
/// RFC 4512 §2.5). Binary values (e.g. objectGUID) are base64, as AD FS shows them.
fn lower_attrs(entry: &SearchEntry) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, values) in &entry.attrs {
        out.entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().cloned());
    }
    for (name, values) in &entry.bin_attrs {
        out.entry(name.to_ascii_lowercase()).or_default().extend(
            values
                .iter()
                .map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
        );
    }
    out
}

/// Maps a failed bind to the user-facing outcome. Only credential results are the user's
/// problem; anything else (busy, unavailable, protocol errors) is the directory's.
fn bind_failure(result: &LdapResult) -> AuthError {
    match result.rc {
        49 => ad_bind_subcode(&result.text)
            .map(ad_subcode_error)
            .unwrap_or(AuthError::InvalidCredentials),
        // noSuchObject / invalidDNSyntax: a direct-bind name that names nobody.
        32 | 34 => AuthError::InvalidCredentials,
        rc => AuthError::Unavailable(format!("bind refused: rc={rc} {}", result.text)),
    }
}

/// Extracts AD's Win32 error from a bind diagnostic such as
/// `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563`
/// (hexadecimal, [MS-ERREF] §2.2; documented for LDAP binds in Microsoft's "LDAP error
/// codes" table for invalidCredentials).
pub fn ad_bind_subcode(text: &str) -> Option<u32> {
    text.match_indices("data ").find_map(|(at, _)| {
        let preceded_ok = at == 0 || matches!(text.as_bytes()[at - 1], b' ' | b',');
        if !preceded_ok {
            return None;
        }
        let rest = &text[at + "data ".len()..];
        let hex_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 0 {
            return None;
        }
        u32::from_str_radix(&rest[..hex_len], 16).ok()
    })
}

/// The AD bind sub-codes ([MS-ERREF] §2.2 Win32 error codes).
pub fn ad_subcode_error(code: u32) -> AuthError {
    match code {
        // ERROR_NO_SUCH_USER, ERROR_LOGON_FAILURE: same answer, no user enumeration.
        0x525 | 0x52e => AuthError::InvalidCredentials,
        // ERROR_INVALID_LOGON_HOURS, ERROR_INVALID_WORKSTATION: not allowed to sign in here/now.
        0x530 | 0x531 => AuthError::AccountDisabled,
        0x532 => AuthError::PasswordExpired, // ERROR_PASSWORD_EXPIRED
        0x533 => AuthError::AccountDisabled, // ERROR_ACCOUNT_DISABLED
        0x701 => AuthError::AccountExpired,  // ERROR_ACCOUNT_EXPIRED
        0x773 => AuthError::MustChangePassword, // ERROR_PASSWORD_MUST_CHANGE
        0x775 => AuthError::AccountLocked,   // ERROR_ACCOUNT_LOCKED_OUT
        _ => AuthError::InvalidCredentials,
    }
}

/// The display name of a group: the value of the first RDN when it is a CN
/// (`CN=Gateway Users,OU=Groups,...` -> `Gateway Users`), with RFC 4514 §2.4 escapes undone;
/// otherwise the whole DN.
pub fn group_name(dn: &str) -> String {
    let mut attr = String::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    let mut bytes = dn.as_bytes().iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                let Some(next) = bytes.next() else { break };
                let hex_pair =
                    next.is_ascii_hexdigit() && bytes.peek().is_some_and(|p| p.is_ascii_hexdigit());
                let byte = if hex_pair {
                    let low = bytes.next().unwrap_or(b'0');
                    let digits = [next, low];
                    std::str::from_utf8(&digits)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .unwrap_or(next)
                } else {
                    next
                };
                if in_value {
                    value.push(byte);
                }
            }
            b',' | b'+' if in_value => break,
            b'=' if !in_value => in_value = true,
            _ if in_value => value.push(b),
            _ => attr.push(b as char),
        }
    }
    if in_value && attr.trim().eq_ignore_ascii_case("cn") {
        String::from_utf8_lossy(&value).trim().to_string()
    } else {
        dn.to_string()
    }
}

/// Single-pass `{name}` substitution: a substituted value is never scanned again, so input
/// containing `{upn}` cannot pull in another placeholder.
fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    'scan: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        for (name, value) in values {
            if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                out.push_str(value);
                rest = tail;
                continue 'scan;
            }
        }
        out.push('{');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A TLS connector trusting exactly the CA certificate(s) in `path` (PEM, one or more).
fn tls_connector(path: &std::path::Path) -> Result<native_tls::TlsConnector, LdapSetupError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LdapSettings {
        LdapSettings {
            servers: "ldaps://dc1.corp.example;ldap://dc2.corp.example:389".into(),
            starttls: true,
            bind_dn: "cn=svc,dc=corp,dc=example".into(),
            bind_password: "hunter2-secret".into(),
            base_dn: "dc=corp,dc=example".into(),
            ..LdapSettings::default()
        }
    }

    #[test]
    fn ad_subcodes_parse_and_map() {
        let text = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(ad_bind_subcode(text), Some(0x52e));
        let cases = [
            ("525", AuthError::InvalidCredentials),
            ("52e", AuthError::InvalidCredentials),
            ("530", AuthError::AccountDisabled),
            ("531", AuthError::AccountDisabled),
            ("532", AuthError::PasswordExpired),
            ("533", AuthError::AccountDisabled),
            ("701", AuthError::AccountExpired),
            ("773", AuthError::MustChangePassword),
            ("775", AuthError::AccountLocked),
        ];
        for (code, expected) in cases {
            let text = format!(
                "80090308: LdapErr: DSID-0C09075A, comment: AcceptSecurityContext error, data {code}, v2580"
            );
            let result = LdapResult {
                rc: 49,
                matched: String::new(),
                text,
                refs: vec![],
                ctrls: vec![],
            };
            assert_eq!(bind_failure(&result), expected, "sub-code {code}");
        }
        assert_eq!(ad_bind_subcode("Invalid credentials"), None);
        assert_eq!(ad_bind_subcode("metadata 52e"), None);
        assert_eq!(ad_bind_subcode("data , v1"), None);
        assert_eq!(ad_bind_subcode(""), None);
        // Unknown codes and plain OpenLDAP 49s are wrong credentials.
        assert_eq!(ad_subcode_error(0x568), AuthError::InvalidCredentials);
        let plain = LdapResult {
            rc: 49,
            matched: String::new(),
            text: String::new(),
            refs: vec![],
            ctrls: vec![],
        };
        assert_eq!(bind_failure(&plain), AuthError::InvalidCredentials);
        let busy = LdapResult { rc: 51, ..plain };
        assert!(matches!(bind_failure(&busy), AuthError::Unavailable(_)));
    }

    #[test]
    fn group_names_are_first_cn() {
        assert_eq!(
            group_name("CN=Gateway Users,OU=Groups,DC=corp,DC=example"),
            "Gateway Users"
        );
        assert_eq!(group_name("cn=Staff,ou=groups,dc=corp,dc=example"), "Staff");
        assert_eq!(group_name("CN=R\\26D\\, Lab,OU=x"), "R&D, Lab");
        assert_eq!(group_name("CN=\\C3\\86gir,OU=x"), "Ægir");
        assert_eq!(group_name("cn=a+uid=b,dc=x"), "a");
        assert_eq!(group_name("ou=Odd,dc=x"), "ou=Odd,dc=x");
    }

    #[test]
    fn templates_fill_once() {
        assert_eq!(
            fill_template(
                "(|(a={user})(b={upn}))",
                &[("user", "x{upn}"), ("upn", "y")]
            ),
            "(|(a=x{upn})(b=y))"
        );
        assert_eq!(fill_template("{nope}{user}", &[("user", "u")]), "{nope}u");
    }

    #[test]
    fn filters_escape_user_input() {
        let dir = LdapDirectory::new(settings()).expect("valid");
        let f = dir.user_filter("alice)(|(uid=*", None);
        assert!(f.contains("alice\\29\\28|\\28uid=\\2a"), "{f}");
        let f = dir.user_filter("a\0b", Some("corp.example"));
        assert!(f.contains("(sAMAccountName=a\\00b)"), "{f}");
        assert!(f.contains("(userPrincipalName=a\\00b@corp.example)"), "{f}");
        assert_eq!(
            LdapDirectory::direct_bind_name("uid={user},ou=people", "a,b=c"),
            "uid=a\\2cb\\3dc,ou=people"
        );
        assert_eq!(
            LdapDirectory::direct_bind_name("{user}@corp.example", "alice"),
            "alice@corp.example"
        );
    }

    #[test]
    fn login_forms_and_suffixes() {
        let dir = LdapDirectory::new(LdapSettings {
            upn_suffixes: vec!["corp.example".into()],
            ..settings()
        })
        .expect("valid");
        assert_eq!(dir.parse_login("alice"), Ok(("alice", None)));
        assert_eq!(dir.parse_login("CORP\\alice"), Ok(("alice", None)));
        assert_eq!(
            dir.parse_login("alice@CORP.example"),
            Ok(("alice", Some("CORP.example")))
        );
        for bad in [
            "alice@evil.example",
            "",
            "   ",
            "a\0b",
            "alice@",
            "CORP\\",
            "x\ny",
            "alice@*",
            "alice@corp..example",
            "alice@corp.example)",
        ] {
            assert_eq!(
                dir.parse_login(bad),
                Err(AuthError::InvalidCredentials),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn settings_defaults_from_minimal_toml() {
        let s: LdapSettings = toml::from_str(
            r#"
            servers = "ldaps://dc1:636;ldap://dc2:389"
            bind_dn = "CN=svc,DC=corp,DC=example"
            bind_password = "pw"
            base_dn = "DC=corp,DC=example"
            [attributes]
            mobile = "otherMobile"
            "#,
        )
        .expect("parses");
        assert_eq!(s.attributes.mobile, "otherMobile");
        assert_eq!(s.attributes.username, "sAMAccountName");
        assert_eq!(s.pool_size, 8);
        assert!(s.user_filter.contains("{user}"));
        assert_eq!(s.server_urls().expect("urls").len(), 2);
        s.validate().expect("valid");
        assert!(toml::from_str::<LdapSettings>("sever = \"x\"").is_err());
    }

    #[test]
    fn validate_names_the_bad_key() {
        let cases: Vec<(LdapSettings, &str)> = vec![
            (
                LdapSettings {
                    servers: " ; ".into(),
                    ..settings()
                },
                "servers",
            ),
            (
                LdapSettings {
                    servers: "http://dc1".into(),
                    ..settings()
                },
                "servers",
            ),
            (
                LdapSettings {
                    base_dn: "".into(),
                    ..settings()
                },
                "base_dn",
            ),
            (
                LdapSettings {
                    bind_password: "".into(),
                    ..settings()
                },
                "bind_password",
            ),
            (
                LdapSettings {
                    bind_dn: "".into(),
                    ..settings()
                },
                "bind_dn",
            ),
            (
                LdapSettings {
                    user_filter: "(uid=x)".into(),
                    ..settings()
                },
                "user_filter",
            ),
            (
                LdapSettings {
                    user_filter: "(uid={user}".into(),
                    ..settings()
                },
                "user_filter",
            ),
            (
                LdapSettings {
                    direct_bind: Some("x".into()),
                    ..settings()
                },
                "direct_bind",
            ),
            (
                LdapSettings {
                    pool_size: 0,
                    ..settings()
                },
                "pool_size",
            ),
            (
                LdapSettings {
                    max_in_flight: 0,
                    ..settings()
                },
                "max_in_flight",
            ),
            (
                LdapSettings {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..settings()
                },
                "ca_file",
            ),
            (
                LdapSettings {
                    extra_attributes: vec!["a b".into()],
                    ..settings()
                },
                "extra_attributes",
            ),
        ];
        for (s, key) in cases {
            let err = s.validate().expect_err(key);
            assert!(
                err.starts_with(&format!("directory.ldap.{key}")),
                "{key}: {err}"
            );
        }
        settings().validate().expect("base settings are valid");
    }

    #[test]
    fn debug_redacts_the_password() {
        let shown = format!("{:?}", settings());
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn account_state_from_attributes() {
        // Keys are lower-cased by `lower_attrs` before the state is read.
        let state = |name: &str, value: &str| {
            let attrs = BTreeMap::from([(name.to_ascii_lowercase(), vec![value.to_string()])]);
            let s = AccountState::of(&attrs);
            (s.disabled, s.locked, s.must_change)
        };
        assert_eq!(state("userAccountControl", "514"), (true, false, false));
        assert_eq!(state("userAccountControl", "512"), (false, false, false));
        assert_eq!(state("lockoutTime", "0"), (false, false, false));
        assert_eq!(
            state("lockoutTime", "133497984000000000"),
            (false, true, false)
        );
        assert_eq!(
            state("pwdAccountLockedTime", "000001010000Z"),
            (false, true, false)
        );
        assert_eq!(state("pwdReset", "TRUE"), (false, false, true));
    }
}
