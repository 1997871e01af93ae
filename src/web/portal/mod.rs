//! The self-service portal's router, and what every portal page shares: the signed-in `Portal`, the CSRF-checked `PortalForm`, and the end of every action (logged, then done or refused).
//!
//! One file per page family: `home` (sign-in, the page, sign-out), `methods` (default,
//! remove, authenticator app, PIN, bypass), `devices` (phone and push), `factors` (hardware
//! token activation, security questions), `report` ("this wasn't me"). The rules live in `crate::portal`; handlers only read forms and answer.

mod devices;
mod factors;
mod home;
mod methods;
mod report;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;

use super::error::WebError;
use super::{AppContext, AppState, PageLang};
use crate::audit::Outcome;
use crate::portal::session::{self as portal_session, COOKIE, PortalSession};
use crate::portal::{self, Entry, PortalError};

pub use home::signed_in;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home::page))
        .route("/portal/signout", post(home::signout))
        .route("/portal/default", post(methods::set_default))
        .route("/portal/remove", post(methods::remove))
        .route(
            "/portal/app",
            get(methods::app_page).post(methods::app_start),
        )
        .route("/portal/app/confirm", post(methods::app_confirm))
        .route("/portal/pin", post(methods::pin))
        .route("/portal/bypass", post(methods::bypass))
        .route(
            "/portal/phone",
            get(devices::phone_page).post(devices::phone_start),
        )
        .route("/portal/phone/confirm", post(devices::phone_confirm))
        .route(
            "/portal/push",
            get(devices::push_page).post(devices::push_start),
        )
        .route("/portal/token", post(factors::token_activate))
        .route(
            "/portal/questions",
            get(factors::questions_page).post(factors::questions_save),
        )
        .route("/portal/report", post(report::report))
}

/// A signed-in portal user, for one request.
struct Portal {
    session: PortalSession,
    token: String,
}

impl Portal {
    /// Writes the session back after its setup changed.
    async fn save(&self, ctx: &AppContext) -> Result<(), WebError> {
        let (store, config) = (ctx.store.as_ref(), &ctx.config.portal);
        Ok(portal_session::save(store, config, &self.token, &self.session).await?)
    }
}

/// The user behind the cookie, or the response to send instead: a new sign-in at `/portal`.
async fn require(ctx: &AppContext, jar: &CookieJar) -> Result<Portal, Response> {
    let Some(token) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Redirect::to("/portal").into_response());
    };
    let (store, config) = (ctx.store.as_ref(), &ctx.config.portal);
    match portal_session::load(store, config, &token, ctx.clock.unix()).await {
        Ok(Some(session)) => Ok(Portal { session, token }),
        Ok(None) => Err(Redirect::to("/portal").into_response()),
        Err(e) => Err(WebError::from(e).into_response()),
    }
}

impl FromRequestParts<AppState> for Portal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, Response> {
        require(ctx, &CookieJar::from_headers(&parts.headers)).await
    }
}

/// A form posted by a signed-in user with the session's CSRF token; otherwise the request is
/// answered with a new sign-in or the refusal, and the form is never read further.
struct PortalForm(Portal, Vec<(String, String)>);

const CSRF_REFUSED: &str =
    "This form has expired or did not come from the portal. Reload the page and try again.";
/// Longest form value read (bytes): a security answer of 200 characters at up to 4 bytes
/// each; every other field of the portal's forms is far shorter and checked again.
const MAX_FIELD: usize = 800;
/// Most fields read: the security-questions form has two per question (at most 20).
const MAX_FIELDS: usize = 48;

impl FromRequest<AppState> for PortalForm {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let portal = Portal::from_request_parts(&mut parts, ctx).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let form: Vec<(String, String)> = form_urlencoded::parse(&body)
            .into_owned()
            .filter(|(_, v)| v.len() <= MAX_FIELD)
            .take(MAX_FIELDS)
            .collect();
        let presented = field(&form, "csrf");
        if !portal.session.csrf_ok(presented) {
            tracing::warn!(user = %portal.session.user, "portal form without a valid CSRF token refused");
            return Err(WebError::forbidden(CSRF_REFUSED).into_response());
        }
        Ok(PortalForm(portal, form))
    }
}

/// The first value of `name` in a posted form, trimmed; empty when missing (or too long).
/// A form page: shown again with a refusal it answers 400 Bad Request, shown fresh 200.
fn form_page(res: Response, error: Option<&str>) -> Response {
    match error {
        Some(_) => (axum::http::StatusCode::BAD_REQUEST, res).into_response(),
        None => res,
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// What the page says after an action went through (`/portal?done=…`): a closed set, so the
/// query cannot put words on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Default,
    Removed,
    App,
    Pin,
    Bypass,
    Reported,
    Phone,
    Push,
    Token,
    Questions,
}

impl Done {
    const ALL: [Done; 10] = [
        Done::Default,
        Done::Removed,
        Done::App,
        Done::Pin,
        Done::Bypass,
        Done::Reported,
        Done::Phone,
        Done::Push,
        Done::Token,
        Done::Questions,
    ];

    fn code(self) -> &'static str {
        match self {
            Done::Default => "default",
            Done::Removed => "removed",
            Done::App => "app",
            Done::Pin => "pin",
            Done::Bypass => "bypass",
            Done::Reported => "reported",
            Done::Phone => "phone",
            Done::Push => "push",
            Done::Token => "token",
            Done::Questions => "questions",
        }
    }

    fn parse(s: &str) -> Option<Done> {
        Done::ALL.into_iter().find(|d| d.code() == s)
    }

    fn message(self) -> &'static str {
        match self {
            Done::Default => "Your default method is saved.",
            Done::Removed => "The method is removed.",
            Done::App => "Your authenticator app is set up.",
            Done::Pin => "Your PIN is saved.",
            Done::Bypass => {
                "Your one-time bypass is ready: your next sign-in skips the second step."
            }
            Done::Reported => {
                "Thank you. Your account's verification is blocked and your help desk has been told."
            }
            Done::Phone => "Your phone number is saved.",
            Done::Push => "Your device is set up for notifications.",
            Done::Token => "Your hardware token is activated.",
            Done::Questions => "Your security answers are saved.",
        }
    }
}

/// Which action a log line is about: `portal.<what>`, the method it concerns, and what the
/// user gave that the log should keep (a bypass's validity and reason; never a code or PIN).
struct What<'a> {
    action: &'a str,
    method: Option<&'a str>,
    detail: Option<String>,
}

impl<'a> What<'a> {
    fn new(action: &'a str, method: Option<&'a str>) -> Self {
        What {
            action,
            method,
            detail: None,
        }
    }
}

/// Logs one action's outcome in the sign-in log.
async fn log(
    ctx: &AppContext,
    p: &Portal,
    ip: &str,
    what: What<'_>,
    result: Result<(), &str>,
) -> Result<(), WebError> {
    let (outcome, reason) = match result {
        Ok(()) => (Outcome::Success, what.detail),
        Err(m) => (Outcome::Failure, Some(m.to_owned())),
    };
    let entry = Entry {
        action: what.action,
        method: what.method,
        outcome,
        reason,
    };
    let now = ctx.clock.unix();
    Ok(portal::record(ctx.store.as_ref(), &p.session, ip, now, entry).await?)
}

/// One action's end: logged, then the portal page with what happened — `done` after
/// success, the page again with the refusal otherwise. A store failure is the error page.
async fn finish(
    ctx: &AppContext,
    lang: &PageLang,
    p: &Portal,
    ip: &str,
    what: What<'_>,
    result: Result<Done, PortalError>,
) -> Result<Response, WebError> {
    match result {
        Ok(done) => {
            log(ctx, p, ip, what, Ok(())).await?;
            Ok(Redirect::to(&format!("/portal?done={}", done.code())).into_response())
        }
        Err(PortalError::Refused(m)) => {
            log(ctx, p, ip, what, Err(m)).await?;
            home::render(ctx, lang, p, Err(m)).await
        }
        Err(PortalError::Store(e)) => Err(e.into()),
    }
}
