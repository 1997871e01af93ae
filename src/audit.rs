//! One audit event per login transition, written as a JSON line through `tracing`.

use serde::Serialize;

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

/// Emits the event on the `audit` target; operators route that target to their SIEM.
pub fn record(event: &AuditEvent<'_>) {
    match serde_json::to_string(event) {
        Ok(json) => tracing::info!(target: "audit", "{json}"),
        Err(e) => tracing::error!(target: "audit", "audit event not serialisable: {e}"),
    }
}
