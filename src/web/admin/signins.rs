//! The sign-in log: one row per attempt, filtered, each opening into its steps; and the same search as a CSV download.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::Value;

use super::Admin;
use crate::admin::signins::{self, Attempt, Filter};
use crate::web::AppState;
use crate::web::error::WebError;

/// GET /admin/signins: the sign-in log, one row per attempt, filtered; each row opens into
/// its steps (a `<details>` element: no script needed).
pub(super) async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(filter): Query<Filter>,
) -> Result<Response, WebError> {
    let shown = filter.clone();
    let (attempts, truncated, error, status) = match filter.query(ctx.clock.unix()) {
        Err(bad) => (
            Vec::new(),
            false,
            Some(bad.to_string()),
            StatusCode::BAD_REQUEST,
        ),
        Ok(q) => {
            let (a, t) = signins::search(ctx.store.as_ref(), &q).await?;
            (a, t, None, StatusCode::OK)
        }
    };
    let csv_query = serde_urlencoded_filter(&shown);
    let mut res = ctx.render(
        "admin_signins.html",
        minijinja::context! {
            title => "Sign-in log", page => "signins", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), f => minijinja::context! {
                user => shown.user, rp => shown.rp, outcome => shown.outcome, method => shown.method,
                ip => shown.ip, from => shown.from, to => shown.to,
            },
            attempts => attempts.iter().map(attempt_row).collect::<Vec<_>>(), truncated => truncated,
            max_events => signins::MAX_EVENTS, error => error, csv_query => csv_query,
        },
    );
    *res.status_mut() = status;
    Ok(res)
}

pub(super) fn attempt_row(a: &Attempt) -> Value {
    let steps: Vec<Value> = a
        .events
        .iter()
        .map(|e| {
            minijinja::context! {
                at => e.at.clone(), from => e.from.clone(), to => e.to.clone(), method => e.method.clone(),
                outcome => e.outcome.clone(), reason => e.reason.clone(),
            }
        })
        .collect();
    minijinja::context! {
        flow => a.flow.clone(), started => a.started.clone(), user => a.user.clone(), rp => a.rp.clone(),
        client_ip => a.client_ip.clone(), result => a.result.as_str(), methods => a.methods.join(", "),
        failures => a.failures, reason => a.reason.clone(), steps => steps,
    }
}

/// The filter as a query string, for the CSV link of the same search.
fn serde_urlencoded_filter(f: &Filter) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("user", &f.user),
        ("rp", &f.rp),
        ("outcome", &f.outcome),
        ("method", &f.method),
        ("ip", &f.ip),
        ("from", &f.from),
        ("to", &f.to),
    ] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// GET /admin/signins.csv: the same search as a CSV download.
pub(super) async fn csv(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(filter): Query<Filter>,
) -> Result<Response, WebError> {
    let q = filter
        .query(ctx.clock.unix())
        .map_err(|bad| WebError::bad_request(bad.to_string()))?;
    let (attempts, _) = signins::search(ctx.store.as_ref(), &q).await?;
    tracing::info!(admin = %admin.session.user, rows = attempts.len(), "sign-in log exported");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"tessera-signins.csv\"",
            ),
        ],
        signins::csv(&attempts),
    )
        .into_response())
}
