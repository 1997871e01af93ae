//! Tessera's error page, in the user's language, for the requests the framework refuses on its own (unknown path, wrong method, unreadable form or query, too large, too slow) and for the handlers' `WebError`s.
//!
//! A handler's error arrives marked with `error::ErrorPage` (see `error`): `pages` renders it
//! in the request's language, keeping what else the handler's answer carried (a cookie).
//!
//! Axum's routing and extractors (and tower layers such as a body limit or a timeout) answer
//! such requests with a terse plain-text or empty 4xx written for developers ("Failed to
//! deserialize form body: missing field `flow`"). `pages` puts `error.html` in its place,
//! keeps the status, and logs the framework's words once. A response counts as such an
//! answer when all of these hold:
//! - its status is one the framework uses for a refused request (`Case::of`);
//! - it is plain text or has no content type: every page we render on purpose is HTML;
//! - it is not marked `MachineAnswer`. Routes that answer machines (carrier callbacks, the
//!   phone simulator, metadata, health) are layered with `machine_answers` where they are
//!   declared, so whatever they answer — on purpose or not — reaches the machine unchanged.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ErrorPage;
use super::{AppContext, AppState, PageLang};
use crate::i18n::msgid;

/// The framework's detail goes to the log this long at most (it may echo client input).
const DETAIL_CHARS: usize = 200;
/// A rejection is one line; reading more than this of a body would only waste memory.
const BODY_BYTES: usize = 16 * 1024;

/// Marks a response for a machine: `pages` leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct MachineAnswer;

/// `map_response` layer for the routers whose clients are programs, not people.
pub async fn machine_answers(mut res: Response) -> Response {
    res.extensions_mut().insert(MachineAnswer);
    res
}

/// The router's fallback: no route has this path. Answered like any framework refusal, so
/// `pages` turns it into the page and the log line.
pub async fn no_route() -> Response {
    (StatusCode::NOT_FOUND, "no route for this path").into_response()
}

/// The refusals we explain, each with its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    NotFound,
    /// A query string the handler cannot read (a GET).
    BadAddress,
    /// A form that is missing fields, has the wrong content type or does not parse.
    BadForm,
    TooLarge,
    WrongMethod,
    TooSlow,
    /// The request deadline passed while we were answering (a directory or store that does
    /// not answer): the server's state, not the user's fault.
    Unavailable,
}

impl Case {
    fn of(method: &Method, status: StatusCode) -> Option<Case> {
        Some(match status {
            StatusCode::NOT_FOUND => Case::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Case::WrongMethod,
            StatusCode::REQUEST_TIMEOUT => Case::TooSlow,
            StatusCode::SERVICE_UNAVAILABLE => Case::Unavailable,
            StatusCode::PAYLOAD_TOO_LARGE => Case::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => Case::BadForm,
            // Axum's query rejection and its form rejection for a GET are both 400.
            StatusCode::BAD_REQUEST if method == Method::GET || method == Method::HEAD => {
                Case::BadAddress
            }
            StatusCode::BAD_REQUEST => Case::BadForm,
            _ => return None,
        })
    }

    fn title(self) -> &'static str {
        match self {
            Case::NotFound => msgid("Page not found"),
            _ => msgid("Request not completed"),
        }
    }

    fn message(self) -> &'static str {
        match self {
            Case::NotFound => {
                "This page does not exist. Check the address, or start again from the application you want to use."
            }
            Case::BadAddress => {
                "The address of this page is incomplete or damaged. Go back and try again."
            }
            Case::BadForm => "The form was incomplete. Go back and try again.",
            Case::TooLarge => "What was sent is too large.",
            Case::WrongMethod => "This address does not accept that kind of request.",
            Case::TooSlow => "The request took too long. Try again.",
            Case::Unavailable => {
                "The sign-in service is temporarily unavailable. Try again in a moment."
            }
        }
    }
}

/// Is this the framework speaking? (See the module comment.)
fn framework_refusal(res: &Response) -> bool {
    if res.extensions().get::<MachineAnswer>().is_some() {
        return false;
    }
    match res.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        }),
    }
}

/// What the page's language is negotiated from, kept from the request before the handler
/// takes it (the cookie and `Accept-Language`; the query is in the URI).
fn language_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [header::COOKIE, header::ACCEPT_LANGUAGE] {
        for v in headers.get_all(&name) {
            kept.append(name.clone(), v.clone());
        }
    }
    kept
}

/// The admin console is English (README, Languages); everything else follows the user.
fn is_console(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Middleware over the whole app: see the module comment.
pub async fn pages(State(ctx): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let asked = language_headers(req.headers());
    let res = next.run(req).await;
    if let Some(page) = res.extensions().get::<ErrorPage>().cloned() {
        let lang = if page.english {
            PageLang::default()
        } else {
            language(&ctx, &uri, &asked).await
        };
        return handler_page(&ctx, &lang, &page, res);
    }
    let Some(case) = Case::of(&method, res.status()) else {
        return res;
    };
    if !framework_refusal(&res) {
        return res;
    }
    let status = res.status();
    let (parts, body) = res.into_parts();
    let detail = match axum::body::to_bytes(body, BODY_BYTES).await {
        Ok(b) if b.is_empty() => "(no detail)".to_owned(),
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => "(a long or unreadable detail)".to_owned(),
    };
    // `?` quotes and escapes: a detail that echoes client input cannot forge a log line.
    tracing::info!(
        method = %method,
        path = %crate::audit::shorten(uri.path(), DETAIL_CHARS),
        status = status.as_u16(),
        detail = ?crate::audit::shorten(&detail, DETAIL_CHARS),
        "refused request answered with the error page"
    );
    let lang = language(&ctx, &uri, &asked).await;
    let mut page = ctx.error_titled(&lang, status, case.title(), case.message());
    // What the refusal told the client stays: a 405 says which methods the address does
    // accept (RFC 9110 §15.5.6), a 503 when to come back (§10.2.3), and a half-read request
    // closes its connection.
    for name in [header::ALLOW, header::RETRY_AFTER, header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            page.headers_mut().insert(name, v.clone());
        }
    }
    page
}

/// The language of an error page for a request to `uri` (see `is_console`).
async fn language(ctx: &AppContext, uri: &axum::http::Uri, asked: &HeaderMap) -> PageLang {
    if is_console(uri.path()) {
        PageLang::default()
    } else {
        PageLang::negotiate(ctx, asked, uri.query()).await
    }
}

/// The page for a handler's `WebError`; the headers of the handler's answer stay.
fn handler_page(ctx: &AppContext, lang: &PageLang, page: &ErrorPage, res: Response) -> Response {
    let mut out = ctx.error_titled(lang, page.status, page.title, &page.message);
    for (name, value) in res.headers() {
        out.headers_mut().append(name, value.clone());
    }
    out
}

#[cfg(test)]
mod tests {

    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    /// A body-less answer, as tower layers (a timeout) make them.
    fn empty(status: StatusCode) -> Response {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        r
    }

    #[test]
    fn only_refusals_the_framework_makes_are_cases() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            Case::of(&get, StatusCode::BAD_REQUEST),
            Some(Case::BadAddress)
        );
        assert_eq!(
            Case::of(&post, StatusCode::BAD_REQUEST),
            Some(Case::BadForm)
        );
        assert_eq!(
            Case::of(&post, StatusCode::UNPROCESSABLE_ENTITY),
            Some(Case::BadForm)
        );
        for status in [
            StatusCode::OK,
            StatusCode::SEE_OTHER,
            StatusCode::FORBIDDEN,
            StatusCode::GONE,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert_eq!(Case::of(&post, status), None, "{status}");
        }
    }

    #[test]
    fn html_and_machine_answers_are_not_refusals() {
        assert!(framework_refusal(&empty(StatusCode::REQUEST_TIMEOUT)));
        assert!(framework_refusal(
            &(StatusCode::UNPROCESSABLE_ENTITY, "Failed").into_response()
        ));
        let page = (StatusCode::BAD_REQUEST, axum::response::Html("<p>ours</p>")).into_response();
        assert!(!framework_refusal(&page));
        let mut machine = (StatusCode::NOT_FOUND, "unknown request").into_response();
        machine.extensions_mut().insert(MachineAnswer);
        assert!(!framework_refusal(&machine));
    }

    /// A handler's `WebError` becomes the page in the request's language (English when
    /// asked), with its status and whatever else the handler's answer set.
    #[tokio::test]
    async fn handler_errors_get_the_page_in_the_request_language() {
        use crate::web::error::WebError;
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = crate::web::test_state(dir.path()).await;
        let down = || WebError::Store(crate::store::StoreError::Backend("detail".into()));
        let router = Router::new()
            .route("/down", get(move || async move { down() }))
            .route("/console", get(move || async move { down().in_english() }))
            .route(
                "/cookie",
                get(|| async {
                    let res = WebError::not_found("Page not found").into_response();
                    ([(header::SET_COOKIE, "kept=1")], res).into_response()
                }),
            )
            .layer(axum::middleware::from_fn_with_state(ctx, pages));
        for (path, status, words) in [
            (
                "/down",
                StatusCode::SERVICE_UNAVAILABLE,
                "Der Anmeldedienst ist vorübergehend nicht verfügbar.",
            ),
            (
                "/console",
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in service is temporarily unavailable.",
            ),
            ("/cookie", StatusCode::NOT_FOUND, "lang=\"de\""),
        ] {
            let req = Request::get(path)
                .header(header::ACCEPT_LANGUAGE, "de")
                .body(Body::empty())
                .expect("request");
            let res = router.clone().oneshot(req).await.expect("answer");
            assert_eq!(res.status(), status, "{path}");
            if path == "/cookie" {
                assert_eq!(res.headers()[header::SET_COOKIE], "kept=1");
            }
            let page = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            let page = String::from_utf8_lossy(&page);
            assert!(page.contains(words), "{path}: {page}");
            assert!(!page.contains("detail"), "{path}: {page}");
        }
    }

    fn quick_deadlines() -> crate::server::ServerLimits {
        crate::server::ServerLimits::from_config(&crate::config::ServerConfig {
            request_timeout_secs: 1,
            ..Default::default()
        })
    }

    /// A form route, a route that answers 408 and one that never answers, under a 16-byte
    /// body limit, quick deadlines and `pages`, layered as in `app()`.
    fn limited_router(ctx: AppState) -> Router {
        Router::new()
            .route("/form", post(|body: String| async move { body }))
            .route(
                "/slow",
                post(|| async { empty(StatusCode::REQUEST_TIMEOUT) }),
            )
            .route(
                "/stuck",
                post(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    "too late"
                }),
            )
            .layer(DefaultBodyLimit::max(16))
            .layer(axum::middleware::from_fn_with_state(
                quick_deadlines(),
                crate::server::deadlines,
            ))
            .layer(axum::middleware::from_fn_with_state(ctx, pages))
    }

    /// What a body limit and a timeout layered inside `app()` answer must become the page too.
    #[tokio::test]
    async fn limits_and_timeouts_inside_the_router_get_the_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let router = limited_router(crate::web::test_state(dir.path()).await);
        for (path, body, status, words) in [
            (
                "/form",
                "x".repeat(17),
                StatusCode::PAYLOAD_TOO_LARGE,
                "Die gesendeten Daten sind zu groß.",
            ),
            (
                "/slow",
                String::new(),
                StatusCode::REQUEST_TIMEOUT,
                "Die Anfrage hat zu lange gedauert.",
            ),
            // The server's own request deadline, with a handler that never answers.
            (
                "/stuck",
                String::new(),
                StatusCode::SERVICE_UNAVAILABLE,
                "Der Anmeldedienst ist vorübergehend nicht verfügbar.",
            ),
        ] {
            let req = Request::post(path)
                .header(header::ACCEPT_LANGUAGE, "de")
                .body(Body::from(body))
                .expect("request");
            let res = router.clone().oneshot(req).await.expect("answer");
            assert_eq!(res.status(), status, "{path}");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // What the deadline told the client survives the page.
                assert_eq!(res.headers()[header::RETRY_AFTER], "5");
                assert_eq!(res.headers()[header::CONNECTION], "close");
            }
            let page = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            let page = String::from_utf8_lossy(&page);
            assert!(page.contains("href=\"/static/tessera.css\""), "{page}");
            assert!(page.contains(words), "{page}");
            assert!(!page.contains("length limit"), "{page}");
        }
        let small = Request::post("/form")
            .body(Body::from("ok"))
            .expect("request");
        let res = router.oneshot(small).await.expect("answer");
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "a request within the limits is untouched"
        );
    }
}
