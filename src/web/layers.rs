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
    // A balancer's id is short; a client's own may not be.
    let id = crate::audit::shorten(id, 64);
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    const PANIC_TEXT: &str = "internal detail: key slot 7 of the HSM";

    /// The test-only route of `app()` whose handler panics.
    pub async fn panics() -> &'static str {
        panic!("{}", PANIC_TEXT)
    }

    async fn get(ctx: &AppState, uri: &str, id: Option<&str>) -> (Response, String) {
        let mut req = Request::builder().uri(uri);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let res = crate::app(ctx.clone())
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_the_500_page_without_the_panic_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::web::test_state(dir.path()).await;
        let (res, body) = get(&ctx, "/test/panic", None).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("Something went wrong on our side"), "{body}");
        assert!(body.contains("<html"), "a Tessera page: {body}");
        assert!(
            !body.contains("HSM"),
            "the panic text reached the user: {body}"
        );
        // Still one of our pages: the security headers are on it, and it was counted.
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        assert!(
            ctx.metrics
                .render()
                .contains(r#"route="/test/panic",status="500"} 1"#),
            "{}",
            ctx.metrics.render()
        );
    }

    #[tokio::test]
    async fn every_answer_has_a_request_id_and_a_balancers_id_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::web::test_state(dir.path()).await;
        let (res, _) = get(&ctx, "/healthz", None).await;
        let made = res.headers()["x-request-id"].to_str().expect("ascii");
        assert_eq!(made.len(), 36, "a UUID: {made}");
        let (again, _) = get(&ctx, "/healthz", None).await;
        assert_ne!(again.headers()["x-request-id"], made, "one id per request");
        let (res, _) = get(&ctx, "/no/such/page", Some("lb-1234")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["x-request-id"], "lb-1234");
    }

    #[tokio::test]
    async fn static_security_headers_come_with_pages_and_machine_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::web::test_state(dir.path()).await;
        for uri in ["/", "/healthz", "/metrics"] {
            let (res, _) = get(&ctx, uri, None).await;
            for (name, value) in STATIC_HEADERS {
                assert_eq!(res.headers()[name], value, "{name} on {uri}");
            }
        }
    }

    /// Cookies are flow secrets and sessions: any layer that prints headers shows the
    /// response's `Set-Cookie` as `Sensitive`.
    #[tokio::test]
    async fn set_cookie_is_marked_sensitive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::web::test_state(dir.path()).await;
        // The console's sign-in begins a flow, bound to this browser by a cookie.
        let (res, _) = get(&ctx, "/admin", None).await;
        let set = res
            .headers()
            .get(header::SET_COOKIE)
            .unwrap_or_else(|| panic!("a flow cookie: {:?}", res.headers()));
        assert!(set.is_sensitive());
    }
}
