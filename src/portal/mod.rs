//! The self-service portal's rules apart from HTTP: who is signed in (`session`), what a user may change about their own second factor (`actions`), their sign-in history and "this wasn't me" (`history`), and the audit trail every change leaves.
//!
//! Every action is written to the sign-in log (`audit::SIGNIN_LOG`) as an audit event with
//! `rp = "portal"`, grouped under the portal session's public id, so the user's history, the
//! admin's sign-in log and the user's console page all show it.

pub mod actions;
pub mod devices;
pub mod factors;
pub mod history;
pub mod session;

use crate::audit::{self, AuditEvent, Outcome};
use crate::store::{Store, StoreError};
use session::PortalSession;

/// What the audit log calls the portal (`Pending::Portal::audit_name`).
pub const RP: &str = "portal";

/// Why a portal action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// Refused by policy or input; the user reads the message (an English message id).
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One portal action for the log: `action` (e.g. `portal.set_default`), the method it
/// concerns, how it ended and why. Never a code, PIN or secret.
pub struct Entry<'a> {
    pub action: &'a str,
    pub method: Option<&'a str>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// Records `entry` for `session`'s user: the `audit` log target and the stored sign-in log.
pub async fn record(
    store: &dyn Store,
    session: &PortalSession,
    client_ip: &str,
    now: i64,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    let at =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let event = AuditEvent {
        at: crate::saml::saml_time(at),
        flow: &session.id,
        user: Some(&session.user),
        rp: RP,
        client_ip,
        from: RP,
        to: entry.action,
        method: entry.method,
        outcome: entry.outcome,
        reason: entry.reason,
    };
    audit::persist_one(store, &event, now).await
}
