//! Typed settings: TOML file, then `TESSERA__*` environment, then `*_FILE` secrets; validated once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::directory::ldap::LdapSettings;
use crate::keys::SigningConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("environment variable {var}: {detail}")]
    Env { var: String, detail: String },
    #[error("invalid setting `{key}`: {detail}")]
    Invalid { key: String, detail: String },
}

fn invalid(key: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        detail: detail.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub idp: IdpConfig,
    pub directory: DirectoryConfig,
    pub store: StoreConfig,
    /// Folder of trusted SP metadata files (`*.xml`, each with an optional `*.toml` beside it).
    pub metadata_dir: PathBuf,
    #[serde(rename = "relying_party")]
    pub relying_parties: Vec<crate::rp::RpConfig>,
    pub log: LogConfig,
    pub mfa: crate::mfa::settings::MfaSettings,
    pub admin: AdminConfig,
    pub portal: PortalConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            idp: IdpConfig::default(),
            directory: DirectoryConfig::default(),
            store: StoreConfig::default(),
            metadata_dir: PathBuf::from("metadata"),
            relying_parties: Vec::new(),
            log: LogConfig::default(),
            mfa: crate::mfa::settings::MfaSettings::default(),
            admin: AdminConfig::default(),
            portal: PortalConfig::default(),
        }
    }
}

/// `[portal]`: the self-service portal's session limits and where "this wasn't me" reports go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// A portal session unused this long ends.
    pub idle_timeout_secs: u32,
    /// A portal session ends this long after sign-in, used or not.
    pub max_session_secs: u32,
    /// Called (POST, JSON) when a user reports a sign-in as "this wasn't me"; empty: none.
    /// Best effort: bounded by a timeout, failures logged, the report never waits for it.
    pub report_webhook_url: Option<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 600,
            max_session_secs: 3600,
            report_webhook_url: None,
        }
    }
}

/// `[admin]`: who may use the admin console and for how long a session lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Directory group whose members are admins (its name, i.e. the CN of a memberOf DN).
    /// Empty: nobody can sign in to the console.
    pub group: String,
    /// A session unused this long ends.
    pub idle_timeout_secs: u32,
    /// A session ends this long after sign-in, used or not.
    pub max_session_secs: u32,
    /// "Fetch metadata from URL" may reach loopback, private, link-local and other internal
    /// addresses. Off by default: an admin's browser session must not become a way to probe
    /// the network behind Tessera (SSRF).
    pub allow_private_metadata_urls: bool,
    /// Internal addresses, ranges or CIDRs that "fetch metadata from URL" may reach even with
    /// `allow_private_metadata_urls` off (e.g. one SP on the internal network).
    pub metadata_url_allowed_networks: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            group: "Tessera Admins".into(),
            idle_timeout_secs: 900,
            max_session_secs: 8 * 3600,
            allow_private_metadata_urls: false,
            metadata_url_allowed_networks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The URL browsers and SPs use to reach Tessera (behind a proxy: the proxy's URL).
    pub public_url: String,
    pub data_dir: PathBuf,
    /// A request head must be complete this long after its first byte arrived.
    pub header_read_timeout_secs: u32,
    /// A connection with no request in flight and no new one begun is closed after this.
    pub idle_timeout_secs: u32,
    /// A request body that sends nothing for this long fails with 408.
    pub body_read_timeout_secs: u32,
    /// A request (its body read and the handler's answer) must be done within this.
    pub request_timeout_secs: u32,
    /// Open connections at most; 0 = derived from the file-descriptor limit.
    pub max_connections: u32,
    /// Request line and headers together, in bytes.
    pub max_header_bytes: u32,
    /// Request bodies, in bytes (the console's metadata import has its own 1 MiB).
    pub max_body_bytes: u32,
    /// Reverse proxies / load balancers (addresses, `a-b` ranges, CIDRs) whose forwarded
    /// header names the client; nobody else's is believed (see `web::client`). From the
    /// environment: one comma-separated string.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write the client's address into.
    pub forwarded_header: ForwardedHeader,
    /// On SIGTERM / SIGINT, requests in flight get this long to finish before the process
    /// exits anyway (a supervisor's own kill timeout should be longer).
    pub shutdown_grace_secs: u32,
    /// PEM certificate (chain allowed, leaf first) and key: with both set the listener
    /// speaks HTTPS itself; changed files are picked up without a restart.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A second listener (plain HTTP) that serves `/metrics` alone; when set, the main
    /// listener does not answer `/metrics`, so a public balancer cannot expose it.
    pub metrics_listen: Option<SocketAddr>,
}

/// Which header carries the client's address from a trusted proxy. One only: a proxy that
/// writes one of them passes a client's own copy of the other through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (+ `X-Forwarded-Proto`): NetScaler, nginx, HAProxy, cloud balancers.
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), `for=` and `proto=`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".into(),
            data_dir: PathBuf::from("tessera-data"),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 75,
            body_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 0,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            shutdown_grace_secs: 20,
            tls_cert_file: None,
            tls_key_file: None,
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdpConfig {
    /// Our SAML entityID; AD FS style `<public_url>/adfs/services/trust` when unset.
    pub entity_id: Option<String>,
    pub display_name: String,
    /// Conditions NotBefore = now - skew (NetScaler's own tolerance defaults to 5 min).
    pub clock_skew_secs: u32,
    pub assertion_lifetime_secs: u32,
    pub session_lifetime_secs: u32,
    /// An AuthnRequest older than this (IssueInstant) is refused as stale.
    pub request_max_age_secs: u32,
    /// How long a sign-in page may stay open before the flow is forgotten.
    pub flow_lifetime_secs: u32,
    /// SAML bindings §3.4.3 says 80 bytes; real SPs send more, so the cap is configurable.
    pub relay_state_max_bytes: usize,
    pub signing: SigningConfig,
}

impl Default for IdpConfig {
    fn default() -> Self {
        Self {
            entity_id: None,
            display_name: "Tessera".into(),
            clock_skew_secs: 60,
            assertion_lifetime_secs: 300,
            session_lifetime_secs: 8 * 3600,
            request_max_age_secs: 300,
            flow_lifetime_secs: 900,
            relay_state_max_bytes: 1024,
            signing: SigningConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    #[default]
    File,
    Ldap,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    pub kind: DirectoryKind,
    /// Users file; `<data_dir>/users.toml` when unset.
    pub users_file: Option<PathBuf>,
    pub ldap: Option<LdapSettings>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreKind,
    /// `<data_dir>/store.redb` when unset.
    pub path: Option<PathBuf>,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// Redis Sentinel addresses (`host:port`); when set, the master is found through them
    /// and `redis_url` is not used. A list, or one comma-separated string from the environment.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub redis_sentinels: Vec<String>,
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub redis_master_name: Option<String>,
    /// The master's (and replicas') password, with sentinels; `redis_url` carries it otherwise.
    pub redis_password: Option<String>,
    /// The sentinels' own password (`requirepass` in sentinel.conf), if they have one.
    pub redis_sentinel_password: Option<String>,
    /// PEM CA(s) a `rediss://` server's certificate is checked against; the system store
    /// when unset.
    pub redis_ca_file: Option<PathBuf>,
}

/// A list as TOML writes it, or one comma-separated string as an environment variable can.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl StoreConfig {
    /// Either a `redis_url`, or sentinels with the master's name; errors name the key.
    fn validate_redis(&self) -> Result<(), ConfigError> {
        if self.redis_ca_file.is_some()
            && !self
                .redis_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss://") && self.redis_sentinels.is_empty())
        {
            return Err(invalid(
                "store.redis_ca_file",
                "applies to a rediss:// redis_url (TLS through sentinels is not supported)",
            ));
        }
        if !self.redis_sentinels.is_empty() {
            for s in &self.redis_sentinels {
                let port = s
                    .rsplit_once(':')
                    .map(|(host, port)| (host, port.parse::<u16>()));
                if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p != 0) {
                    return Err(invalid(
                        "store.redis_sentinels",
                        format!("{s:?} is not host:port"),
                    ));
                }
            }
            return match self.redis_master_name.as_deref().map(str::trim) {
                None | Some("") => Err(invalid(
                    "store.redis_master_name",
                    "redis_sentinels need the name the sentinels monitor the master under",
                )),
                Some(_) => Ok(()),
            };
        }
        if self.redis_master_name.is_some() {
            return Err(invalid(
                "store.redis_sentinels",
                "redis_master_name is set but no sentinels are listed",
            ));
        }
        match &self.redis_url {
            None => Err(invalid(
                "store.redis_url",
                "backend = \"redis\" needs redis_url (or redis_sentinels)",
            )),
            Some(u) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => Err(invalid(
                "store.redis_url",
                "must start with redis:// or rediss://",
            )),
            _ => Ok(()),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreKind::Embedded,
            path: None,
            redis_url: None,
            redis_prefix: "tessera:".into(),
            redis_sentinels: Vec::new(),
            redis_master_name: None,
            redis_password: None,
            redis_sentinel_password: None,
            redis_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub json: bool,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            json: false,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads the file (if any), applies `TESSERA__SECTION__KEY` overrides and
    /// `TESSERA__SECTION__KEY_FILE` secrets from `env`, then validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let table: toml::Table =
                    text.parse()
                        .map_err(|e: toml::de::Error| ConfigError::Parse {
                            path: path.display().to_string(),
                            detail: e.to_string(),
                        })?;
                (table, path.display().to_string())
            }
            None => (toml::Table::new(), "(defaults)".to_owned()),
        };
        let mut from_env = false;
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("TESSERA__") else {
                continue;
            };
            from_env = true;
            apply_env(&mut table, &var, rest, &value)?;
        }
        let origin = if from_env {
            format!("{origin} + environment")
        } else {
            origin
        };
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin,
                    detail: e.to_string(),
                })?;
        let base = config.public_base().to_owned();
        config
            .mfa
            .gateway
            .resolve(&base)
            .map_err(|e| invalid("mfa.gateway", e))?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks that serde cannot express; each error names its key.
    fn validate_portal(&self) -> Result<(), ConfigError> {
        check_range(
            "portal.idle_timeout_secs",
            self.portal.idle_timeout_secs,
            60,
            4 * 3600,
        )?;
        check_range(
            "portal.max_session_secs",
            self.portal.max_session_secs,
            300,
            24 * 3600,
        )?;
        if let Some(u) = self
            .portal
            .report_webhook_url
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            let ok = u.len() <= 2048
                && url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(invalid("portal.report_webhook_url", "an http(s) URL"));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.server.public_url)
            .map_err(|e| invalid("server.public_url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                "server.public_url",
                "must be an http(s) URL with a host",
            ));
        }
        self.validate_server_limits()?;
        crate::mfa::networks::parse_all(&self.server.trusted_proxies)
            .map_err(|e| invalid("server.trusted_proxies", e))?;
        if self.idp.entity_id.as_deref() == Some("") {
            return Err(invalid("idp.entity_id", "must not be empty"));
        }
        check_range("idp.clock_skew_secs", self.idp.clock_skew_secs, 0, 600)?;
        crate::mfa::networks::parse_all(&self.admin.metadata_url_allowed_networks)
            .map_err(|e| invalid("admin.metadata_url_allowed_networks", e))?;
        check_range(
            "admin.idle_timeout_secs",
            self.admin.idle_timeout_secs,
            60,
            4 * 3600,
        )?;
        check_range(
            "admin.max_session_secs",
            self.admin.max_session_secs,
            300,
            24 * 3600,
        )?;
        self.validate_portal()?;
        check_range(
            "idp.assertion_lifetime_secs",
            self.idp.assertion_lifetime_secs,
            30,
            3600,
        )?;
        check_range(
            "idp.session_lifetime_secs",
            self.idp.session_lifetime_secs,
            60,
            7 * 24 * 3600,
        )?;
        check_range(
            "idp.request_max_age_secs",
            self.idp.request_max_age_secs,
            30,
            3600,
        )?;
        check_range(
            "idp.flow_lifetime_secs",
            self.idp.flow_lifetime_secs,
            60,
            3600,
        )?;
        if !(80..=16 * 1024).contains(&self.idp.relay_state_max_bytes) {
            return Err(invalid(
                "idp.relay_state_max_bytes",
                "must be between 80 and 16384",
            ));
        }
        let s = &self.idp.signing;
        if s.pfx_file.is_some() && (s.key_file.is_some() || s.cert_file.is_some()) {
            return Err(invalid(
                "idp.signing.pfx_file",
                "give either pfx_file or key_file + cert_file, not both",
            ));
        }
        if s.key_file.is_some() != s.cert_file.is_some() {
            return Err(invalid(
                "idp.signing.key_file",
                "key_file and cert_file go together",
            ));
        }
        for (key, path) in [
            ("idp.signing.key_file", &s.key_file),
            ("idp.signing.cert_file", &s.cert_file),
            ("idp.signing.pfx_file", &s.pfx_file),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(invalid(
                    key,
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        match (self.directory.kind, &self.directory.ldap) {
            (DirectoryKind::Ldap, None) => {
                return Err(invalid(
                    "directory.ldap",
                    "kind = \"ldap\" needs a [directory.ldap] section",
                ));
            }
            (DirectoryKind::Ldap, Some(ldap)) => ldap
                .validate()
                .map_err(|detail| invalid("directory.ldap", detail))?,
            _ => {}
        }
        if self.store.backend == StoreKind::Redis {
            self.store.validate_redis()?;
        }
        self.mfa
            .validate()
            .map_err(|(key, detail)| invalid(&format!("mfa.{key}"), detail))?;
        for (i, rp) in self.relying_parties.iter().enumerate() {
            rp.validate()
                .map_err(|detail| invalid(&format!("relying_party[{i}]"), detail))?;
        }
        Ok(())
    }

    /// The connection limits of `[server]`; the header cap must leave room for a
    /// Redirect-binding URL carrying the longest RelayState we accept.
    fn validate_server_limits(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        check_range(
            "server.header_read_timeout_secs",
            s.header_read_timeout_secs,
            1,
            300,
        )?;
        check_range("server.idle_timeout_secs", s.idle_timeout_secs, 1, 3600)?;
        check_range(
            "server.body_read_timeout_secs",
            s.body_read_timeout_secs,
            1,
            300,
        )?;
        check_range(
            "server.request_timeout_secs",
            s.request_timeout_secs,
            1,
            600,
        )?;
        check_range("server.max_connections", s.max_connections, 0, 1 << 20)?;
        check_range(
            "server.max_header_bytes",
            s.max_header_bytes,
            8 * 1024,
            1024 * 1024,
        )?;
        check_range(
            "server.max_body_bytes",
            s.max_body_bytes,
            16 * 1024,
            64 * 1024 * 1024,
        )?;
        check_range("server.shutdown_grace_secs", s.shutdown_grace_secs, 0, 3600)?;
        // Percent-encoding can triple the RelayState; the rest of a signed AuthnRequest's
        // query (deflated request, SigAlg, Signature) and the other headers fit in 8 KiB.
        let needed = self.idp.relay_state_max_bytes.saturating_mul(3) + 8 * 1024;
        if (s.max_header_bytes as usize) < needed {
            return Err(invalid(
                "server.max_header_bytes",
                format!(
                    "must be at least {needed} to carry a Redirect-binding request with \
                     idp.relay_state_max_bytes = {}",
                    self.idp.relay_state_max_bytes
                ),
            ));
        }
        Ok(())
    }

    pub fn entity_id(&self) -> String {
        self.idp
            .entity_id
            .clone()
            .unwrap_or_else(|| format!("{}/adfs/services/trust", self.public_base()))
    }

    /// The public URL without a trailing slash, for building endpoint URLs.
    pub fn public_base(&self) -> &str {
        self.server.public_url.trim_end_matches('/')
    }

    pub fn users_file(&self) -> PathBuf {
        self.directory
            .users_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("users.toml"))
    }

    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("store.redb"))
    }

    /// Cookies get `Secure` (and may use SameSite=None) only when served over https.
    pub fn is_https(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }
}

fn check_range(key: &str, value: u32, min: u32, max: u32) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("{value} is outside {min}..={max}")))
    }
}

/// Keys whose own names end in `_file` because their value is a path: their variables carry
/// the path itself (`TESSERA__SERVER__TLS_CERT_FILE=/etc/tessera/tls.crt`), where any other
/// `_FILE` variable names a file to read the value from.
const PATH_KEYS: [&str; 8] = [
    "server.tls_cert_file",
    "server.tls_key_file",
    "idp.signing.key_file",
    "idp.signing.cert_file",
    "idp.signing.pfx_file",
    "directory.users_file",
    "directory.ldap.ca_file",
    "store.redis_ca_file",
];

/// `TESSERA__DIRECTORY__LDAP__BIND_PASSWORD_FILE=/run/secrets/x` sets
/// `directory.ldap.bind_password` to the file's contents (trailing newline removed).
fn apply_env(
    table: &mut toml::Table,
    var: &str,
    rest: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let env_err = |detail: String| ConfigError::Env {
        var: var.to_owned(),
        detail,
    };
    let mut path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(env_err("empty key segment".into()));
    }
    let leaf = path.pop().unwrap_or_default();
    let dotted = path
        .iter()
        .chain([&leaf])
        .cloned()
        .collect::<Vec<_>>()
        .join(".");
    let secret = if PATH_KEYS.contains(&dotted.as_str()) {
        None
    } else {
        leaf.strip_suffix("_file")
    };
    let (leaf, value) = match secret {
        Some(secret_key) => {
            let contents = std::fs::read_to_string(value)
                .map_err(|e| env_err(format!("cannot read secret file {value}: {e}")))?;
            let trimmed = contents.trim_end_matches(['\r', '\n']).to_owned();
            (secret_key.to_owned(), toml::Value::String(trimmed))
        }
        None => (leaf, env_value(value)),
    };
    let mut cursor = table;
    for segment in &path {
        let entry = cursor
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = entry
            .as_table_mut()
            .ok_or_else(|| env_err(format!("`{segment}` is not a section")))?;
    }
    cursor.insert(leaf, value);
    Ok(())
}

/// Environment values are strings; numbers and booleans are recognised so `..._SECS=30` works.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, Vec::new()).expect("defaults");
        assert_eq!(c.entity_id(), "http://localhost:8080/adfs/services/trust");
        assert_eq!(c.store.backend, StoreKind::Embedded);
    }

    /// The documented example loads as it is, and its lockout values are the defaults it
    /// claims to show.
    #[test]
    fn the_example_config_loads_and_shows_the_lockout_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tessera.example.toml");
        let c = Config::load(Some(&path), Vec::new()).expect("the example loads");
        let d = crate::mfa::settings::MfaSettings::default();
        let pick = |m: &crate::mfa::settings::MfaSettings| {
            [
                m.max_code_attempts,
                m.code_failures_per_user,
                m.code_failure_window_secs,
                m.code_lockout_secs,
                m.code_lockout_max_secs,
                m.password_failures_per_user,
                m.password_failures_familiar,
                m.password_failures_per_ip,
                m.password_failure_window_secs,
                m.familiar_address_days,
            ]
        };
        assert_eq!(pick(&c.mfa), pick(&d));
    }

    #[test]
    fn trusted_proxies_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[server]\ntrusted_proxies = [\"10.0.0.5\", \"10.0.1.0/28\"]\nforwarded_header = \"forwarded\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&file), Vec::new()).expect("load");
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(c.server.forwarded_header, ForwardedHeader::Forwarded);
        assert_eq!(
            Config::default().server.forwarded_header,
            ForwardedHeader::XForwardedFor
        );

        for bad in [
            "trusted_proxies = [\"10.0.0.5\", \"lb.corp.example\"]",
            "trusted_proxies = [\"10.0.1.1/28\"]",
        ] {
            std::fs::write(&file, format!("[server]\n{bad}\n")).expect("write");
            let err = Config::load(Some(&file), Vec::new()).expect_err(bad);
            assert!(err.to_string().contains("server.trusted_proxies"), "{err}");
        }
        std::fs::write(&file, "[server]\nforwarded_header = \"x-real-ip\"\n").expect("write");
        let err = Config::load(Some(&file), Vec::new()).expect_err("unknown header");
        assert!(err.to_string().contains("forwarded_header"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_names_bad_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "[idp]\nassertion_lifetime_secs = 120\n").expect("write");
        let c = Config::load(
            Some(&file),
            env(&[("TESSERA__IDP__ASSERTION_LIFETIME_SECS", "240")]),
        )
        .expect("load");
        assert_eq!(c.idp.assertion_lifetime_secs, 240);

        let err = Config::load(
            Some(&file),
            env(&[("TESSERA__IDP__ASSERTION_LIFETIME_SECS", "5")]),
        )
        .expect_err("out of range");
        assert!(
            err.to_string().contains("idp.assertion_lifetime_secs"),
            "{err}"
        );

        std::fs::write(&file, "[idp]\nasertion_lifetime_secs = 120\n").expect("write");
        let err = Config::load(Some(&file), Vec::new()).expect_err("typo");
        assert!(err.to_string().contains("asertion_lifetime_secs"), "{err}");
    }

    #[test]
    fn file_secrets_are_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "s3cret\n").expect("write");
        let c = Config::load(
            None,
            env(&[
                ("TESSERA__STORE__BACKEND", "redis"),
                (
                    "TESSERA__STORE__REDIS_URL_FILE",
                    secret.to_str().expect("utf8"),
                ),
            ]),
        )
        .expect_err("not a redis url");
        assert!(c.to_string().contains("store.redis_url"), "{c}");
    }

    #[test]
    fn path_keys_ending_in_file_take_the_path_from_the_environment() {
        let c = Config::load(
            None,
            env(&[
                ("TESSERA__SERVER__TLS_CERT_FILE", "/etc/tessera/tls.crt"),
                ("TESSERA__SERVER__TLS_KEY_FILE", "/etc/tessera/tls.key"),
                ("TESSERA__DIRECTORY__USERS_FILE", "/etc/tessera/users.toml"),
            ]),
        )
        .expect("paths");
        assert_eq!(
            c.server.tls_cert_file.as_deref(),
            Some(Path::new("/etc/tessera/tls.crt"))
        );
        assert_eq!(
            c.server.tls_key_file.as_deref(),
            Some(Path::new("/etc/tessera/tls.key"))
        );
        assert_eq!(
            c.directory.users_file.as_deref(),
            Some(Path::new("/etc/tessera/users.toml"))
        );
    }

    #[test]
    fn sentinel_settings_are_checked_and_name_their_key() {
        let redis = ("TESSERA__STORE__BACKEND", "redis");
        let c = Config::load(
            None,
            env(&[
                redis,
                (
                    "TESSERA__STORE__REDIS_SENTINELS",
                    "s1:26379, s2:26379,s3:26379",
                ),
                ("TESSERA__STORE__REDIS_MASTER_NAME", "tessera"),
            ]),
        )
        .expect("sentinels without a redis_url");
        assert_eq!(
            c.store.redis_sentinels,
            ["s1:26379", "s2:26379", "s3:26379"]
        );
        // Each refused combination (what is wrong, the variables, the key) names the key to fix.
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let refused: [(&str, Vars, &str); 4] = [
            (
                "no master name",
                &[("TESSERA__STORE__REDIS_SENTINELS", "s1:26379")],
                "store.redis_master_name",
            ),
            (
                "no port",
                &[
                    ("TESSERA__STORE__REDIS_SENTINELS", "s1"),
                    ("TESSERA__STORE__REDIS_MASTER_NAME", "tessera"),
                ],
                "store.redis_sentinels",
            ),
            (
                "a master name without sentinels",
                &[
                    ("TESSERA__STORE__REDIS_URL", "redis://r:6379"),
                    ("TESSERA__STORE__REDIS_MASTER_NAME", "tessera"),
                ],
                "store.redis_sentinels",
            ),
            (
                "a CA file without TLS",
                &[
                    ("TESSERA__STORE__REDIS_URL", "redis://r:6379"),
                    ("TESSERA__STORE__REDIS_CA_FILE", "/etc/tessera/redis-ca.pem"),
                ],
                "store.redis_ca_file",
            ),
        ];
        for (case, vars, key) in refused {
            let mut all = vec![redis];
            all.extend_from_slice(vars);
            let err = Config::load(None, env(&all)).expect_err(case);
            assert!(err.to_string().contains(key), "{case}: {err}");
        }
        let c = Config::load(
            None,
            env(&[
                redis,
                ("TESSERA__STORE__REDIS_URL", "rediss://r:6379"),
                ("TESSERA__STORE__REDIS_CA_FILE", "/etc/tessera/redis-ca.pem"),
            ]),
        )
        .expect("rediss:// with a CA file (a path, not a secret)");
        assert_eq!(
            c.store.redis_ca_file.as_deref(),
            Some(Path::new("/etc/tessera/redis-ca.pem"))
        );
    }

    #[test]
    fn redis_backend_needs_url_and_ldap_needs_section() {
        let err =
            Config::load(None, env(&[("TESSERA__STORE__BACKEND", "redis")])).expect_err("no url");
        assert!(err.to_string().contains("store.redis_url"));
        let err =
            Config::load(None, env(&[("TESSERA__DIRECTORY__KIND", "ldap")])).expect_err("no ldap");
        assert!(err.to_string().contains("directory.ldap"));
    }

    #[test]
    fn server_limits_out_of_range_are_named() {
        for (var, value, key) in [
            (
                "TESSERA__SERVER__HEADER_READ_TIMEOUT_SECS",
                "0",
                "server.header_read_timeout_secs",
            ),
            (
                "TESSERA__SERVER__IDLE_TIMEOUT_SECS",
                "0",
                "server.idle_timeout_secs",
            ),
            (
                "TESSERA__SERVER__BODY_READ_TIMEOUT_SECS",
                "0",
                "server.body_read_timeout_secs",
            ),
            (
                "TESSERA__SERVER__REQUEST_TIMEOUT_SECS",
                "0",
                "server.request_timeout_secs",
            ),
            (
                "TESSERA__SERVER__MAX_HEADER_BYTES",
                "4096",
                "server.max_header_bytes",
            ),
            (
                "TESSERA__SERVER__MAX_BODY_BYTES",
                "1000",
                "server.max_body_bytes",
            ),
            (
                "TESSERA__SERVER__SHUTDOWN_GRACE_SECS",
                "3601",
                "server.shutdown_grace_secs",
            ),
        ] {
            let err = Config::load(None, env(&[(var, value)])).expect_err(var);
            assert!(err.to_string().contains(key), "{var}: {err}");
        }
        // A header cap too small for a Redirect-binding URL with the longest RelayState.
        let err = Config::load(
            None,
            env(&[("TESSERA__IDP__RELAY_STATE_MAX_BYTES", "8192")]),
        )
        .expect_err("16 KiB cannot carry 8 KiB of RelayState, percent-encoded");
        assert!(err.to_string().contains("server.max_header_bytes"), "{err}");
        let ok = Config::load(
            None,
            env(&[
                ("TESSERA__IDP__RELAY_STATE_MAX_BYTES", "8192"),
                ("TESSERA__SERVER__MAX_HEADER_BYTES", "40000"),
            ]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn bad_public_url_is_named() {
        let err = Config::load(None, env(&[("TESSERA__SERVER__PUBLIC_URL", "ftp://x")]))
            .expect_err("scheme");
        assert!(err.to_string().contains("server.public_url"));
    }
}
