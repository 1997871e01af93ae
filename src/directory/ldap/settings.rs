//! `[directory.ldap]` settings: the attribute names, defaults, redacted `Debug` and validation.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

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
    pub(super) fn all(&self) -> [(&'static str, &str); 7] {
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

#[cfg(test)]
mod tests {
    use super::super::test_settings as settings;
    use super::*;

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
}
