//! The branding on the sign-in pages: the logo and accent stylesheet we serve, and what the templates get to show it.
//!
//! The accent reaches pages as a stylesheet of ours (`/static/brand.css`, overriding
//! `--accent` of `tessera.css`), never as inline style, so the Content-Security-Policy stays
//! exactly as strict as without branding. Both URLs carry a version, so they may be cached.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Value;

use super::AppState;
use crate::admin::branding::Branding;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/branding/logo", get(logo))
        .route("/static/brand.css", get(stylesheet))
}

/// A year: the URLs the pages use change with the content.
const VERSIONED: &str = "public, max-age=31536000, immutable";
/// An unversioned request: re-checked with its ETag.
const UNVERSIONED: &str = "public, no-cache";

/// Keeps this node's branding fresh before the handlers render pages with it (templates are
/// rendered where the store cannot be awaited; see `AppContext::page`).
pub(super) async fn refresh(State(ctx): State<AppState>, req: Request, next: Next) -> Response {
    ctx.branding.current(ctx.store.as_ref()).await;
    next.run(req).await
}

/// What `base.html` shows: nothing at all for the default branding.
pub(super) fn context(b: &Branding) -> Value {
    // Our paths with a hex version: nothing to escape (minijinja would write `/` as `&#x2f;`).
    let logo_url = b
        .logo
        .as_ref()
        .map(|l| Value::from_safe_string(logo_url(l)));
    let css_url = b.accent.as_ref().map(|a| {
        Value::from_safe_string(format!("/static/brand.css?v={}", a.trim_start_matches('#')))
    });
    minijinja::context! {
        brand => minijinja::context! {
            org_name => b.org_name.clone(), logo_url => logo_url, css_url => css_url,
            help_desk => b.help_desk.clone(), notice => b.notice.clone(),
        }
    }
}

/// The logo's versioned URL.
pub(super) fn logo_url(logo: &crate::admin::branding::Logo) -> String {
    format!("/branding/logo?v={}", logo.version())
}

/// `version` answered: the full body with the cache headers, or 304 when the browser has it.
fn cached(
    headers: &HeaderMap,
    uri_version: Option<&str>,
    version: &str,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response {
    let etag = format!("\"{version}\"");
    let cache = if uri_version == Some(version) {
        VERSIONED
    } else {
        UNVERSIONED
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

/// The `v` query parameter.
fn version_asked(req_query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(req_query?.as_bytes())
        .find(|(k, _)| k == "v")
        .map(|(_, v)| v.into_owned())
}

/// GET /branding/logo: the logo in force, with the type its bytes were checked to be.
async fn logo(State(ctx): State<AppState>, req: Request) -> Response {
    let branding = ctx.branding.current(ctx.store.as_ref()).await;
    let Some(logo) = &branding.logo else {
        return (StatusCode::NOT_FOUND, "no logo is set").into_response();
    };
    match crate::admin::branding::logo_bytes(ctx.store.as_ref(), logo).await {
        Ok(Some(bytes)) => cached(
            req.headers(),
            version_asked(req.uri().query()).as_deref(),
            logo.version(),
            logo.kind.content_type(),
            bytes,
        ),
        Ok(None) => {
            tracing::error!(
                sha256 = logo.sha256,
                "the branding names a logo the store does not hold"
            );
            (StatusCode::NOT_FOUND, "no logo is stored").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "logo unreadable from the store");
            (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable").into_response()
        }
    }
}

/// GET /static/brand.css: the accent in force as `--accent` (empty without one).
async fn stylesheet(State(ctx): State<AppState>, req: Request) -> Response {
    let branding = ctx.branding.current(ctx.store.as_ref()).await;
    let (version, css) = match &branding.accent {
        // Validated as `#rrggbb` when set (`admin::branding::parse_accent`).
        Some(a) => (
            a.trim_start_matches('#').to_owned(),
            format!(":root {{ --accent: {a}; }}\n"),
        ),
        None => ("default".to_owned(), String::new()),
    };
    cached(
        req.headers(),
        version_asked(req.uri().query()).as_deref(),
        &version,
        "text/css",
        css.into_bytes(),
    )
}
