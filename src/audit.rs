//! One audit event per login transition, written as a JSON line through `tracing`.

use std::time::Duration;

use serde::Serialize;

use crate::store::{Store, StoreError, Write};

/// What happened in one step of a sign-in. Never carries a password or a code.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub at: String,
    pub flow: &'a str,
    pub user: Option<&'a str>,
    pub rp: &'a str,
    pub client_ip: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub method: Option<&'a str>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Started,
    Success,
    Failure,
    Ignored,
}

/// Emits the event on the `audit` target (operators route that target to their SIEM) and
/// returns its JSON line for `persist`.
pub fn record(event: &AuditEvent<'_>) -> Option<String> {
    match serde_json::to_string(event) {
        Ok(json) => {
            tracing::info!(target: "audit", "{json}");
            Some(json)
        }
        Err(e) => {
            tracing::error!(target: "audit", "audit event not serialisable: {e}");
            None
        }
    }
}

/// At most `max` characters of `text`, with `…` when something was cut: for typed input
/// (an unknown user name) that logs and the sign-in log keep, so an attacker's megabyte
/// does not become a megabyte per log line.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// How long stored audit events are kept (a bit over a year, for yearly reviews).
pub const RETENTION: Duration = Duration::from_secs(400 * 86_400);

/// The store log sign-in events are appended to (`Store::append`), read by the admin
/// console's sign-in log on any node.
pub const SIGNIN_LOG: &str = "signin";

/// The `from` of a sign-in log note about an answer from a phone that came after its sign-in
/// (or portal enrollment) stopped waiting: not a transition, the flow is unchanged.
pub const FROM_PHONE: &str = "phone";

/// The writes that append a flow's events (stamped with their Unix second) to `SIGNIN_LOG`,
/// for one `Store::write_batch` with whatever else their step saves.
pub fn appends(events: &[(i64, String)]) -> impl Iterator<Item = Write<'_>> {
    events.iter().map(|(at, json)| Write::Append {
        log: SIGNIN_LOG,
        at_ms: at.saturating_mul(1000),
        value: json.as_bytes(),
        retention: RETENTION,
    })
}

/// Appends a flow's events (stamped with their Unix second) to `SIGNIN_LOG`, in one batch.
pub async fn persist(store: &dyn Store, events: &[(i64, String)]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    store
        .write_batch(&appends(events).collect::<Vec<_>>())
        .await
        .map(drop)
}

/// Records one event (`record`) and appends it to `SIGNIN_LOG`, stamped `now` (Unix seconds).
pub async fn persist_one(
    store: &dyn Store,
    event: &AuditEvent<'_>,
    now: i64,
) -> Result<(), StoreError> {
    match record(event) {
        Some(line) => persist(store, &[(now, line)]).await,
        None => Ok(()),
    }
}

/// Refusals of unauthenticated or unverified requests one client address may store per
/// minute, per kind (`wsfed`, `logout`). Beyond it a refusal is still logged and answered,
/// but not stored: a client sending garbage cannot fill the store. Counted in the store, so
/// the budget holds across nodes.
pub const REFUSALS_PER_MINUTE: i64 = 60;

/// Whether one more refusal of `kind` from `ip` may be stored now (see `REFUSALS_PER_MINUTE`).
/// A store failure answers no: the refusal stays in the log only.
pub async fn refusal_budget(store: &dyn Store, kind: &str, ip: &str, now: i64) -> bool {
    let key = format!("refused:{kind}:{ip}:{}", now.div_euclid(60));
    match store.incr(&key, 1, Some(Duration::from_secs(120))).await {
        Ok(n) => n <= REFUSALS_PER_MINUTE,
        Err(e) => {
            tracing::error!(error = %e, kind, "refusal budget unavailable");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_refusal_budget_is_per_address_kind_and_minute() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let store = crate::store::embedded::EmbeddedStore::open(&dir.path().join("s.redb"), clock)
            .expect("store");
        let now = 1_800_000_000;
        for _ in 0..REFUSALS_PER_MINUTE {
            assert!(refusal_budget(&store, "wsfed", "192.0.2.1", now).await);
        }
        assert!(
            !refusal_budget(&store, "wsfed", "192.0.2.1", now + 1).await,
            "spent"
        );
        assert!(
            refusal_budget(&store, "wsfed", "192.0.2.2", now).await,
            "another address"
        );
        assert!(
            refusal_budget(&store, "logout", "192.0.2.1", now).await,
            "another kind"
        );
        assert!(
            refusal_budget(&store, "wsfed", "192.0.2.1", now + 60).await,
            "next minute"
        );
    }

    #[test]
    fn shorten_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(shorten("alice", 64), "alice");
        assert_eq!(shorten("ääääää", 3), "äää…");
        assert_eq!(shorten(&"x".repeat(1_000_000), 64).chars().count(), 65);
    }
}
