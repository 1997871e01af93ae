//! The LDAP side of `check-config --login`: the sign-in's search-then-bind (or direct bind), one step at a time.
//!
//! It uses the same pieces as a sign-in (server order, `open`, the filled `user_filter`,
//! the search, account-state attributes, the bind-result mapping) on connections of its
//! own, so it can say which step failed; at the end the pooled `authenticate` runs once to
//! prove the real path agrees. It runs only after the diagnostic bind succeeded, so a
//! wrong password costs the account one failed bind, not two (ppolicy and AD count them).

use ldap3::{Ldap, LdapResult};

use super::LdapDirectory;
use super::account::{AccountState, ad_bind_subcode, bind_refusal};
use super::connect::Transport;
use super::entry::lower_attrs;
use crate::directory::Directory as _;
use crate::directory::diagnose::{Diagnosis, Outcome, Step};

/// The name of an LDAP result code (RFC 4511 §4.1.9, Appendix A) for the common bind answers.
fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        8 => "strongerAuthRequired (the server wants TLS or another mechanism)",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "other",
    }
}

/// What an AD bind sub-code means ([MS-ERREF] §2.2; Microsoft's LDAP bind error table).
fn ad_meaning(code: u32) -> &'static str {
    match code {
        0x525 => "user not found",
        0x52e => "wrong password",
        0x530 => "not permitted to sign in at this time (logon hours)",
        0x531 => "not permitted to sign in from this workstation",
        0x532 => "password expired",
        0x533 => "account disabled",
        0x701 => "account expired",
        0x773 => "the user must change the password",
        0x775 => "account locked out",
        _ => "unknown sub-code",
    }
}

/// A failed bind in words: result code, AD sub-code or ppolicy state, and Tessera's answer.
fn describe_bind(result: &LdapResult, locked_attribute: bool) -> String {
    let mut out = format!("rc={} {}", result.rc, result_name(result.rc));
    if !result.text.is_empty() {
        out.push_str(&format!(": {}", result.text));
    }
    match ad_bind_subcode(&result.text) {
        Some(code) => out.push_str(&format!("\nAD sub-code {code:x}: {}", ad_meaning(code))),
        // ppolicy answers a locked account with a plain invalidCredentials; the entry's
        // pwdAccountLockedTime (read by the search) tells it apart.
        None if locked_attribute => out.push_str(
            "\nthe entry is locked (pwdAccountLockedTime / lockoutTime set): password policy lockout",
        ),
        None => {}
    }
    out.push_str(&format!(
        "\nTessera treats this as: {}",
        bind_refusal(result, locked_attribute)
    ));
    out
}

impl LdapDirectory {
    /// Runs a sign-in for `login` step by step. `phone_attributes` and `country_code` are the
    /// MFA settings the sign-in would read phones with.
    pub async fn diagnose(
        &self,
        login: &str,
        password: &str,
        phone_attributes: &[String],
        country_code: &str,
    ) -> Diagnosis {
        let mut d = Diagnosis::default();
        let mut failures = Vec::new();
        let mut opened = None;
        for (i, server) in self.servers.iter().enumerate() {
            match self.open(&server.url).await {
                Ok(ldap) => {
                    opened = Some((ldap, i));
                    break;
                }
                Err(Transport(e)) => failures.push(format!("{}: {e}", server.url)),
            }
        }
        let Some((mut ldap, server)) = opened else {
            return d.fail(Step::Connect, failures.join("\n"));
        };
        let url = self.servers[server].url.clone();
        let mut detail = url.to_string();
        if self.settings.starttls && url.scheme() == "ldap" {
            detail.push_str(" (StartTLS)");
        }
        for f in &failures {
            detail.push_str(&format!("\nnot answering: {f}"));
        }
        d.ok(Step::Connect, detail);

        if password.is_empty() {
            return d.fail(
                Step::UserBind,
                "empty password: refused before any bind (RFC 4513 §5.1.2: it would be an anonymous bind)",
            );
        }
        let Ok((user, suffix)) = self.parse_login(login) else {
            return d.fail(
                Step::Filter,
                "this login cannot name a user: empty, control characters, over 1024 bytes, \
                 or a user@suffix whose suffix is not a DNS name or not in directory.ldap.upn_suffixes",
            );
        };
        if let Some(template) = self.settings.direct_bind.clone() {
            d.push(
                Step::ServiceBind,
                Outcome::Skipped,
                "direct bind mode (directory.ldap.direct_bind): no service account",
            );
            return self
                .diagnose_direct(d, ldap, &template, user, suffix, password)
                .await
                .finish(self, login, password, phone_attributes, country_code)
                .await;
        }

        let bind_dn = &self.settings.bind_dn;
        match ldap
            .with_timeout(self.op_timeout())
            .simple_bind(bind_dn, &self.settings.bind_password)
            .await
        {
            Err(e) => return d.fail(Step::ServiceBind, format!("{bind_dn}: {e}")),
            Ok(r) if r.rc != 0 => {
                return d.fail(
                    Step::ServiceBind,
                    format!("{bind_dn}: {}", describe_bind(&r, false)),
                );
            }
            Ok(_) => d.ok(Step::ServiceBind, bind_dn.clone()),
        }

        let filter = self.user_filter(user, suffix);
        d.ok(
            Step::Filter,
            format!(
                "{filter}\nsubtree under {} (directory.ldap.user_filter)",
                self.settings.base_dn
            ),
        );
        let entries = match self.search(&mut ldap, &filter, None).await {
            Err(Transport(e)) => return d.fail(Step::Search, format!("search failed: {e}")),
            Ok(Err(e)) => return d.fail(Step::Search, e.to_string()),
            Ok(Ok(entries)) => entries,
        };
        let _ = ldap.unbind().await;
        if entries.len() > 1 {
            let dns: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
            return d.fail(
                Step::Search,
                format!(
                    "more than one entry; an ambiguous login signs nobody in\n{}",
                    dns.join("\n")
                ),
            );
        }
        let Some(entry) = entries.into_iter().next() else {
            return d.fail(
                Step::Search,
                "0 entries: nothing under the base matches the filter. The default \
                 directory.ldap.user_filter is for Active Directory (objectClass=user); \
                 on OpenLDAP use an inetOrgPerson or posixAccount filter (see the README).",
            );
        };
        d.ok(Step::Search, format!("1: {}", entry.dn));

        let attrs = lower_attrs(&entry);
        let state = AccountState::of(&attrs);
        if state.disabled {
            return d.fail(
                Step::Account,
                "disabled (userAccountControl ACCOUNTDISABLE): refused before any bind",
            );
        }
        match (state.locked, state.must_change) {
            (false, false) => d.ok(Step::Account, "enabled"),
            (locked, must_change) => {
                let mut notes = Vec::new();
                if locked {
                    notes.push("lockoutTime / pwdAccountLockedTime set (locked, or a lockout that has run out on AD)");
                }
                if must_change {
                    notes.push("pwdReset: the password must be changed");
                }
                d.push(Step::Account, Outcome::Warning, notes.join("\n"));
            }
        }

        // A bind of its own on a fresh connection, as the sign-in does (RFC 4511 §4.2.1).
        let mut bind = match self.open(&url).await {
            Ok(l) => l,
            Err(Transport(e)) => return d.fail(Step::UserBind, format!("{url}: {e}")),
        };
        match bind
            .with_timeout(self.op_timeout())
            .simple_bind(&entry.dn, password)
            .await
        {
            Err(e) => return d.fail(Step::UserBind, format!("{}: {e}", entry.dn)),
            Ok(r) if r.rc != 0 => {
                return d.fail(
                    Step::UserBind,
                    format!("{}: {}", entry.dn, describe_bind(&r, state.locked)),
                );
            }
            Ok(_) => d.ok(Step::UserBind, format!("{}: success", entry.dn)),
        }
        let _ = bind.unbind().await;
        if state.must_change {
            return d.fail(
                Step::Account,
                "the password is right but must be changed before signing in",
            );
        }
        let info = self.user_info(entry, attrs, user);
        d.user_steps(&info, phone_attributes, country_code);
        d.finish(self, login, password, phone_attributes, country_code)
            .await
    }

    /// Direct bind: bind as the name built from the template, then read the own entry.
    async fn diagnose_direct(
        &self,
        mut d: Diagnosis,
        mut ldap: Ldap,
        template: &str,
        user: &str,
        suffix: Option<&str>,
        password: &str,
    ) -> DirectOutcome {
        let name = Self::direct_bind_name(template, user);
        d.ok(
            Step::Filter,
            format!("bind name {name} (directory.ldap.direct_bind)"),
        );
        match ldap
            .with_timeout(self.op_timeout())
            .simple_bind(&name, password)
            .await
        {
            Err(e) => return DirectOutcome::Done(d.fail(Step::UserBind, format!("{name}: {e}"))),
            Ok(r) if r.rc != 0 => {
                return DirectOutcome::Done(d.fail(
                    Step::UserBind,
                    format!("{name}: {}", describe_bind(&r, false)),
                ));
            }
            Ok(_) => d.ok(Step::UserBind, format!("{name}: success")),
        }
        let (filter, base) = if template.contains('=') {
            ("(objectClass=*)".to_string(), Some(name.as_str()))
        } else {
            (self.user_filter(user, suffix), None)
        };
        let found = match self.search(&mut ldap, &filter, base).await {
            Err(Transport(e)) => {
                return DirectOutcome::Done(d.fail(Step::Search, format!("own entry: {e}")));
            }
            Ok(Err(e)) => return DirectOutcome::Done(d.fail(Step::Search, e.to_string())),
            Ok(Ok(found)) => found,
        };
        let _ = ldap.unbind().await;
        let entry = match found.len() {
            1 => found.into_iter().next(),
            _ => found.into_iter().find(|e| e.dn.eq_ignore_ascii_case(&name)),
        };
        let Some(entry) = entry else {
            d.push(
                Step::Search,
                Outcome::Warning,
                format!(
                    "own entry not readable with {filter}: the sign-in works without attributes"
                ),
            );
            return DirectOutcome::Done(d);
        };
        d.ok(Step::Search, format!("1: {} ({filter})", entry.dn));
        let attrs = lower_attrs(&entry);
        DirectOutcome::Entry(d, Box::new(self.user_info(entry, attrs, user)))
    }
}

/// Where a direct-bind diagnosis stands: finished, or with the user's entry read.
enum DirectOutcome {
    Done(Diagnosis),
    Entry(Diagnosis, Box<crate::directory::UserInfo>),
}

impl DirectOutcome {
    async fn finish(
        self,
        dir: &LdapDirectory,
        login: &str,
        password: &str,
        phone_attributes: &[String],
        country_code: &str,
    ) -> Diagnosis {
        match self {
            Self::Done(d) if d.failed_step().is_some() => d,
            Self::Done(d) => {
                d.finish(dir, login, password, phone_attributes, country_code)
                    .await
            }
            Self::Entry(mut d, info) => {
                d.user_steps(&info, phone_attributes, country_code);
                d.finish(dir, login, password, phone_attributes, country_code)
                    .await
            }
        }
    }
}

impl Diagnosis {
    /// Notes phone attributes the directory is not asked for, then runs the real, pooled
    /// sign-in once (only reached after the diagnostic bind succeeded).
    async fn finish(
        mut self,
        dir: &LdapDirectory,
        login: &str,
        password: &str,
        phone_attributes: &[String],
        _country_code: &str,
    ) -> Diagnosis {
        let unread: Vec<&str> = phone_attributes
            .iter()
            .filter(|a| !dir.reported_attributes.contains(&a.to_lowercase()))
            .map(String::as_str)
            .collect();
        if !unread.is_empty() {
            self.push(
                Step::Phones,
                Outcome::Warning,
                format!(
                    "not read from the directory: {} (add to directory.ldap.extra_attributes)",
                    unread.join(", ")
                ),
            );
        }
        match dir.authenticate(login, password).await {
            Ok(info) => {
                self.ok(Step::SignIn, format!("signs in as {}", info.username));
                self
            }
            Err(e) => self.fail(Step::SignIn, format!("the pooled sign-in refused: {e}")),
        }
    }
}
