//! Server failover: try the configured servers in order, remembering failed ones for a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ldap3::Ldap;
use url::Url;

use super::LdapDirectory;
use crate::directory::AuthError;

/// One configured server and the memory of its last connection failure.
pub(super) struct Server {
    pub(super) url: Url,
    pub(super) down_until: Mutex<Option<Instant>>,
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

impl LdapDirectory {
    /// Connects to the first server that answers, preferring servers not marked down; a
    /// server that fails is skipped for `server_retry_ms`. When every server is marked down
    /// they are all tried anyway, in order, rather than failing without trying.
    pub(super) async fn connect_any(&self) -> Result<(Ldap, usize), AuthError> {
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
    pub(super) fn server_failed(&self, server: usize, why: &str) {
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
}
