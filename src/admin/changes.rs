//! The admin change log: who changed what, with the value before and after (secrets shown only as set / not set).

use serde::{Deserialize, Serialize};

use super::Actor;
use crate::store::{self, Store, StoreError};

/// One change, as stored under `adminlog:<unix time>:<sequence>` (12 digits each) and written on
/// the `audit` log target.
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
        // A store-wide sequence orders changes made within one second (and across nodes).
        let seq = store.incr("adminseq", 1, None).await?;
        let key = format!("adminlog:{now:012}:{seq:012}");
        store::put_json(store, &key, c, Some(crate::audit::RETENTION)).await?;
    }
    Ok(())
}

/// The newest `limit` changes, newest first.
pub async fn recent(store: &dyn Store, limit: usize) -> Result<Vec<Change>, StoreError> {
    let keys = store.keys("adminlog:").await?;
    let mut out = Vec::new();
    for k in keys.iter().rev().take(limit) {
        if let Some(c) = store::get_json::<Change>(store, k).await? {
            out.push(c);
        }
    }
    Ok(out)
}
