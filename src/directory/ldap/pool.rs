//! Connection pools: shared service connections with an in-flight cap, and user-bind connections.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapResult};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::LdapDirectory;
use crate::directory::AuthError;

/// A service-bound connection shared by concurrent searches.
pub(super) struct ServiceConn {
    ldap: Ldap,
    gate: Arc<Semaphore>,
    id: u64,
    server: usize,
    born: Instant,
}

/// What a search borrows from a service slot: a clone of the multiplexed handle.
pub(super) struct ServiceHandle {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) server: usize,
    pub(super) ldap: Ldap,
    pub(super) gate: Arc<Semaphore>,
}

/// A connection reserved for user binds (never shared while in use).
pub(super) struct BindConn {
    pub(super) ldap: Ldap,
    pub(super) server: usize,
    born: Instant,
}

impl LdapDirectory {
    fn max_age(&self) -> Duration {
        Duration::from_secs(self.settings.max_connection_age_s)
    }

    /// A shared, service-bound connection (round robin over `pool_size` lazily filled slots).
    pub(super) async fn service_handle(&self) -> Result<ServiceHandle, AuthError> {
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

    pub(super) async fn evict_service(&self, index: usize, id: u64) {
        let mut slot = self.service[index].lock().await;
        if slot.as_ref().is_some_and(|c| c.id == id) {
            *slot = None;
        }
    }

    /// Waits for one of the `pool_size` user-bind slots.
    pub(super) async fn bind_slot(&self) -> Result<SemaphorePermit<'_>, AuthError> {
        self.bind_slots
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable("LDAP bind pool closed".into()))
    }

    pub(super) async fn checkout_bind_conn(&self) -> Result<BindConn, AuthError> {
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

    pub(super) fn checkin_bind_conn(&self, conn: BindConn) {
        let mut idle = self.bind_idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.settings.pool_size {
            idle.push(conn);
        }
    }

    /// Returns a bind connection to the pool unless the result hints at a sick server.
    pub(super) fn finish_bind_conn(&self, conn: BindConn, result: &LdapResult) {
        if matches!(result.rc, 0 | 32 | 34 | 49) {
            self.checkin_bind_conn(conn);
        }
    }
}
