//! The HTTP layers around every route: access log, request id, header redaction, panics as a page, request counts and `/metrics`.
//!
//! Routes are named by their pattern (`MatchedPath`), never by the request's path or query:
//! those carry flow ids and whole SAMLRequests, which belong in neither a log nor a label.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::RequestId;

use super::AppState;
use crate::metrics::Metrics;

/// The header a request's id travels in (from a balancer that sets one, else ours).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a request that matched no route is called in logs and labels.
const UNMATCHED: &str = "unmatched";

fn route_of(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or(UNMATCHED)
}

/// Counts each answered request by method, route pattern and final status. Methods other
/// than the standard ones are one label value, so an invented method adds no series.
pub async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "PATCH") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let route = route_of(&req).to_owned();
    let res = next.run(req).await;
    metrics.http(&method, &route, res.status().as_u16());
    res
}

/// The access log's span: method, route pattern and request id (its status and latency
/// come with `access_logged`). Client-sent ids are quoted by `?`, so they cannot forge a line.
pub fn access_span(req: &Request) -> tracing::Span {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "http",
        method = %req.method(),
        route = %route_of(req),
        request_id = ?id,
    )
}

/// The access log line, at the end of each request.
pub fn access_logged(res: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        latency_ms = latency.as_millis() as u64,
        "request"
    );
}

/// A handler that panicked answers the plain error page; the panic's text (which may name
/// internals) goes to the log only.
pub fn panic_page(ctx: AppState) -> impl Fn(Box<dyn Any + Send + 'static>) -> Response + Clone {
    move |panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        tracing::error!(panic = ?text, "a request handler panicked");
        ctx.error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Try again in a moment.",
        )
    }
}

/// `/metrics`: every metric in the Prometheus / OpenMetrics text format.
pub async fn metrics(State(ctx): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        ctx.metrics.render(),
    )
        .into_response()
}

/// The static security headers every answer carries (see `security_headers` for the ones
/// that depend on the response or the configuration).
pub const STATIC_HEADERS: [(&str, &str); 3] = [
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];
