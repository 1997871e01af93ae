//! "This wasn't me": the user reports one of their recent sign-ins; the account's second factor is blocked, the sign-in log records it, and the configured webhook is told (never waited for).

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;

use super::{Done, PortalForm, What, field, finish};
use crate::portal::history;
use crate::web::error::WebError;
use crate::web::{AppState, ClientIp, PageLang};

/// The webhook gets this long to answer; a report never waits for it.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// POST /portal/report: `flow` is one of the user's recent sign-ins.
pub(super) async fn report(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let flow = field(&form, "flow");
    let now = ctx.clock.unix();
    let result = history::report(ctx.store.as_ref(), &policy.mfa, &p.session.user, flow, now).await;
    let mut what = What::new("portal.report", None);
    if let Ok(r) = &result {
        what.detail = Some(format!(
            "sign-in {} from {} reported; blocked until {}",
            r.attempt.flow, r.attempt.client_ip, r.blocked_until
        ));
        if let Some(url) = ctx
            .config
            .portal
            .report_webhook_url
            .clone()
            .filter(|u| !u.is_empty())
        {
            let body = serde_json::json!({
                "event": "portal.report", "user": p.session.user, "flow": r.attempt.flow,
                "sign_in_at": r.attempt.started, "sign_in_ip": r.attempt.client_ip,
                "reported_from": ip, "blocked_until": r.blocked_until,
            });
            tokio::spawn(notify(url, body));
        }
    }
    finish(&ctx, &lang, &p, &ip, what, result.map(|_| Done::Reported)).await
}

/// POSTs the report to the webhook; failures are logged, nothing else depends on it.
async fn notify(url: String, body: serde_json::Value) {
    let client = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "report webhook: no HTTP client"),
    };
    match client.post(&url).json(&body).send().await {
        Ok(r) if r.status().is_success() => tracing::info!("report webhook delivered"),
        Ok(r) => tracing::warn!(status = %r.status(), "report webhook refused the report"),
        Err(e) => tracing::warn!(error = %e, "report webhook failed"),
    }
}
