//! Login parsing and the strings sent to the directory: user filter and direct-bind name.

use ldap3::{dn_escape, ldap_escape};

use super::LdapDirectory;
use crate::directory::{AuthError, split_login};

/// Longest login accepted before any directory traffic (AD's userPrincipalName is at most
/// 1024 characters; anything longer cannot name a user).
const MAX_LOGIN_LEN: usize = 1024;

impl LdapDirectory {
    /// Turns what the user typed into (short name, optional UPN suffix), refusing anything
    /// that cannot name a user before the directory sees it.
    pub(super) fn parse_login<'a>(
        &self,
        login: &'a str,
    ) -> Result<(&'a str, Option<&'a str>), AuthError> {
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
    pub(super) fn user_filter(&self, user: &str, suffix: Option<&str>) -> String {
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
    pub(super) fn direct_bind_name(template: &str, user: &str) -> String {
        if template.contains('=') {
            fill_template(template, &[("user", &dn_escape(user))])
        } else {
            fill_template(template, &[("user", user)])
        }
    }
}

/// Single-pass `{name}` substitution: a substituted value is never scanned again, so input
/// containing `{upn}` cannot pull in another placeholder.
pub(super) fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::{LdapSettings, test_settings as settings};
    use super::*;

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
}
