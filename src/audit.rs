//! One audit event per login transition, written as a JSON line through `tracing`.

use std::time::Duration;

use serde::Serialize;

use crate::store::{Store, StoreError};

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

/// Appends a flow's events (stamped with their Unix second) to `SIGNIN_LOG`.
pub async fn persist(store: &dyn Store, events: &[(i64, String)]) -> Result<(), StoreError> {
    for (at, json) in events {
        store
            .append(
                SIGNIN_LOG,
                at.saturating_mul(1000),
                json.as_bytes(),
                RETENTION,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(shorten("alice", 64), "alice");
        assert_eq!(shorten("ääääää", 3), "äää…");
        assert_eq!(shorten(&"x".repeat(1_000_000), 64).chars().count(), 65);
    }
}
