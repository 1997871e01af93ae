//! The admin change log: who changed what, with the value before and after (secrets shown only as set / not set).

use serde::{Deserialize, Serialize};

use super::Actor;
use crate::store::{Store, StoreError};

/// One change, as appended to the store log `ADMIN_LOG` and written on the `audit` log target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub at: String,
    pub admin: String,
    pub client_ip: String,
    /// What was done, e.g. `settings.update`.
    pub action: String,
    /// What it was done to, e.g. the setting's key.
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Change {
    pub fn new(
        actor: &Actor,
        now: i64,
        action: &str,
        target: &str,
        before: Option<String>,
        after: Option<String>,
    ) -> Self {
        let at = time::OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Change {
            at: crate::saml::saml_time(at),
            admin: actor.name.clone(),
            client_ip: actor.client_ip.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            before,
            after,
        }
    }
}

/// Stores the changes (kept as long as sign-in audit events) and logs them.
pub async fn record(store: &dyn Store, now: i64, changes: &[Change]) -> Result<(), StoreError> {
    for c in changes {
        if let Ok(json) = serde_json::to_string(c) {
            tracing::info!(target: "audit", "{json}");
        }
        let json = serde_json::to_vec(c).map_err(|e| StoreError::Corrupt {
            key: ADMIN_LOG.into(),
            detail: e.to_string(),
        })?;
        store
            .append(
                ADMIN_LOG,
                now.saturating_mul(1000),
                &json,
                crate::audit::RETENTION,
            )
            .await?;
    }
    Ok(())
}

/// The store log admin changes are appended to.
pub const ADMIN_LOG: &str = "admin";

/// The newest `limit` changes, newest first. An entry that does not parse is skipped (and
/// logged): one bad record must not hide the rest of the trail.
pub async fn recent(store: &dyn Store, limit: usize) -> Result<Vec<Change>, StoreError> {
    let entries = store.read_log(ADMIN_LOG, 0, i64::MAX, limit).await?;
    Ok(entries
        .iter()
        .filter_map(|e| match serde_json::from_slice(&e.value) {
            Ok(c) => Some(c),
            Err(err) => {
                tracing::error!(at_ms = e.at_ms, error = %err, "admin log entry does not parse");
                None
            }
        })
        .collect())
}
