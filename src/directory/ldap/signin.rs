//! The sign-in operations: user search, user bind, and the search-then-bind and direct-bind flows.

use std::collections::BTreeMap;

use ldap3::{Ldap, LdapResult, Scope, SearchEntry, SearchOptions};

use super::LdapDirectory;
use super::account::{AccountState, bind_failure};
use super::connect::Transport;
use super::entry::lower_attrs;
use super::pool::BindConn;
use crate::directory::{AuthError, UserInfo};

/// The filter in a log line is cut here: it carries typed input (twice, escaped).
const FILTER_LOG_CHARS: usize = 512;

impl LdapDirectory {
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
    pub(super) async fn search(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        base: Option<&str>,
    ) -> Result<Result<Vec<SearchEntry>, AuthError>, Transport> {
        self.search_limited(ldap, filter, base, 2).await
    }

    async fn search_limited(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        base: Option<&str>,
        size_limit: i32,
    ) -> Result<Result<Vec<SearchEntry>, AuthError>, Transport> {
        let (base, scope) = match base {
            Some(dn) => (dn, Scope::Base),
            None => (self.settings.base_dn.as_str(), Scope::Subtree),
        };
        let result = ldap
            .with_timeout(self.op_timeout())
            .with_search_options(SearchOptions::new().sizelimit(size_limit))
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

    /// A subtree search with the service account on a shared connection; a transport
    /// failure evicts the connection and is retried once (possibly on another server).
    async fn service_search(
        &self,
        filter: &str,
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, AuthError> {
        let mut last = String::new();
        for _ in 0..2 {
            let mut shared = self.service_handle().await?;
            let _permit = shared
                .gate
                .acquire()
                .await
                .map_err(|_| AuthError::Unavailable("LDAP connection gate closed".into()))?;
            match self
                .search_limited(&mut shared.ldap, filter, None, size_limit)
                .await
            {
                Ok(found) => return found,
                Err(Transport(e)) => {
                    self.evict_service(shared.slot, shared.id).await;
                    self.server_failed(shared.server, &format!("user search: {e}"));
                    last = e;
                }
            }
        }
        Err(AuthError::Unavailable(format!("user search: {last}")))
    }

    /// Finds the single entry for a login with the service account. `None` for no match or
    /// more than one (an ambiguous login must not pick somebody).
    pub(super) async fn find_user(
        &self,
        user: &str,
        suffix: Option<&str>,
    ) -> Result<Option<SearchEntry>, AuthError> {
        let filter = self.user_filter(user, suffix);
        // Size limit 2 tells "one" from "ambiguous".
        let entries = self.service_search(&filter, 2).await?;
        Ok(single(entries, user))
    }

    /// The admin console's user search with the service account: users (as the configured
    /// user filter defines them) whose name, UPN or mail starts with `text` or whose display
    /// name contains it. `text` is escaped (RFC 4515 §3): it cannot widen the filter.
    pub(super) async fn search_users(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<UserInfo>, AuthError> {
        let names = &self.settings.attributes;
        let t = ldap3::ldap_escape(text.trim());
        let any_user = super::login::fill_template(
            self.settings.user_filter.trim(),
            &[("user", "*"), ("upn", "*")],
        );
        // Empty text lists users (up to the limit); `**` would not be a valid filter.
        let filter = if t.is_empty() {
            any_user
        } else {
            format!(
                "(&{any_user}(|({u}={t}*)({p}={t}*)({m}={t}*)({d}=*{t}*)))",
                u = names.username,
                p = names.upn,
                m = names.mail,
                d = names.display_name,
            )
        };
        let size = i32::try_from(limit).unwrap_or(i32::MAX);
        Ok(self
            .service_search(&filter, size)
            .await?
            .into_iter()
            .map(|entry| {
                let attrs = lower_attrs(&entry);
                self.user_info(entry, attrs, "")
            })
            .filter(|u| !u.username.is_empty())
            .take(limit)
            .collect())
    }

    pub(super) async fn search_then_bind(
        &self,
        user: &str,
        suffix: Option<&str>,
        password: &str,
    ) -> Result<UserInfo, AuthError> {
        let Some(entry) = self.find_user(user, suffix).await? else {
            // Typed input: only its start reaches the log.
            // With the filter, so an admin whose every sign-in ends here sees what was
            // asked (e.g. the AD default `objectClass=user` against OpenLDAP).
            let login = crate::audit::shorten(user, crate::login::AUDIT_LOGIN_CHARS);
            let filter = crate::audit::shorten(&self.user_filter(user, suffix), FILTER_LOG_CHARS);
            tracing::info!(%login, %filter, base = %self.settings.base_dn, "LDAP sign-in refused: no such user");
            return Err(AuthError::InvalidCredentials);
        };
        let attrs = lower_attrs(&entry);
        self.bind_entry(entry, attrs, user, password).await
    }

    /// The checks and the user bind of search-then-bind, for the entry the search found
    /// (here, or in `find` earlier in the same sign-in) with its `lower_attrs`.
    pub(super) async fn bind_entry(
        &self,
        entry: SearchEntry,
        attrs: BTreeMap<String, Vec<String>>,
        user: &str,
        password: &str,
    ) -> Result<UserInfo, AuthError> {
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
            let err = super::account::bind_refusal(&result, state.locked);
            tracing::info!(dn = %entry.dn, rc = result.rc, text = %result.text, outcome = ?err, "LDAP sign-in refused");
            return Err(err);
        }
        if state.must_change {
            tracing::info!(dn = %entry.dn, "LDAP sign-in refused: password must be changed");
            return Err(AuthError::MustChangePassword);
        }
        Ok(self.user_info(entry, attrs, user))
    }

    pub(super) async fn direct_bind(
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
}

fn single(entries: Vec<SearchEntry>, user: &str) -> Option<SearchEntry> {
    if entries.len() > 1 {
        tracing::warn!(
            login = %crate::audit::shorten(user, crate::login::AUDIT_LOGIN_CHARS),
            "LDAP login matches more than one entry; refused"
        );
        return None;
    }
    entries.into_iter().next()
}
