//! The one error type of the page handlers (`WebError`): each case becomes the error page, in the user's language, through `errors::pages`.
//!
//! A handler returns `Result<Response, WebError>` and uses `?`. `WebError` knows the status
//! and the words for the user; it does not know the request's language nor hold the
//! templates. So its response is a body-less answer marked with an `ErrorPage` extension, and
//! `errors::pages` — the middleware that already explains the framework's refusals, with the
//! context and the request's language at hand — renders the page in its place. One path for
//! every error page: the framework's refusals and ours.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::i18n::msgid;
use crate::store::StoreError;

/// Words for the user: an English message id (the catalogue translates it) or, in the
/// English-only console, text made for the occasion.
pub type Message = Cow<'static, str>;

/// Why a page request could not be answered as asked.
#[derive(Debug)]
pub enum WebError {
    /// The store failed: 503 with a generic message; the detail goes to the log only (a store
    /// error names keys, never secrets).
    Store(StoreError),
    /// The request is refused; the user reads `message`.
    Refused {
        status: StatusCode,
        message: Message,
    },
    /// What the request names does not exist (any more).
    NotFound(Message),
    /// A peer we need (the directory) does not answer; the detail was logged where it was met.
    Unavailable(Message),
    /// Our own failure (signing): 500; `detail` goes to the log, `message` to the user.
    Internal { message: Message, detail: String },
    /// The same error, in English whatever the browser asks: the console's pages, even when
    /// reached at a sign-in address (the end of the console's sign-in).
    English(Box<WebError>),
}

/// The one message of a store failure, wherever it happens.
pub const UNAVAILABLE: &str =
    "The sign-in service is temporarily unavailable. Try again in a moment.";

impl WebError {
    /// A refusal with `status` and words for the user.
    pub fn refused(status: StatusCode, message: impl Into<Message>) -> Self {
        WebError::Refused {
            status,
            message: message.into(),
        }
    }

    /// A 400 refusal.
    pub fn bad_request(message: impl Into<Message>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, message)
    }

    /// A 403 refusal.
    pub fn forbidden(message: impl Into<Message>) -> Self {
        Self::refused(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<Message>) -> Self {
        WebError::NotFound(message.into())
    }

    pub fn internal(message: impl Into<Message>, detail: impl ToString) -> Self {
        WebError::Internal {
            message: message.into(),
            detail: detail.to_string(),
        }
    }

    /// This error's page in English, whatever the request's language.
    pub fn in_english(self) -> Self {
        match self {
            e @ WebError::English(_) => e,
            e => WebError::English(Box::new(e)),
        }
    }

    /// The page to show; logs what only the log may know.
    fn page(self) -> ErrorPage {
        let (status, message, english) = match self {
            WebError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.into(), false)
            }
            WebError::Refused { status, message } => (status, message, false),
            WebError::NotFound(message) => (StatusCode::NOT_FOUND, message, false),
            WebError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message, false),
            WebError::Internal { message, detail } => {
                tracing::error!(error = %detail, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, message, false)
            }
            WebError::English(inner) => {
                let page = inner.page();
                (page.status, page.message, true)
            }
        };
        ErrorPage {
            status,
            title: msgid("Sign-in problem"),
            message,
            english,
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::Store(e)
    }
}

/// An admin operation's refusal is a 400 with its message; its store failure, a store failure.
impl From<crate::admin::AdminError> for WebError {
    fn from(e: crate::admin::AdminError) -> Self {
        match e {
            crate::admin::AdminError::Refused(m) => WebError::bad_request(m),
            crate::admin::AdminError::Store(e) => WebError::Store(e),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let page = self.page();
        let mut res = page.status.into_response();
        res.extensions_mut().insert(page);
        res
    }
}

/// The error page a response stands for, rendered by `errors::pages`.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: StatusCode,
    /// An English message id.
    pub title: &'static str,
    pub message: Message,
    /// In English whatever the request's language (`WebError::English`).
    pub english: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_a_marked_body_less_answer_with_its_status() {
        for (e, status) in [
            (
                WebError::Store(StoreError::Backend("down".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (WebError::bad_request("no"), StatusCode::BAD_REQUEST),
            (WebError::not_found("gone"), StatusCode::NOT_FOUND),
            (
                WebError::internal("failed", "detail").in_english(),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let res = e.into_response();
            assert_eq!(res.status(), status);
            let page = res.extensions().get::<ErrorPage>().expect("marked");
            assert_eq!(page.status, status);
            assert!(
                res.headers()
                    .get(axum::http::header::CONTENT_TYPE)
                    .is_none()
            );
        }
    }

    #[test]
    fn a_store_failure_shows_no_detail() {
        let res =
            WebError::Store(StoreError::Backend("redis://secret@host".into())).into_response();
        let page = res.extensions().get::<ErrorPage>().expect("marked");
        assert_eq!(page.message, UNAVAILABLE);
        assert!(!page.english);
    }
}
