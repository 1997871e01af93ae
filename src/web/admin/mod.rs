//! The admin console's router, and what every console page shares: the signed-in `Admin`, the CSRF-checked `AdminForm`, and the outcome of a change.
//!
//! One file per page family: `session` (sign-in, overview, sign-out), `settings`,
//! `gateway_test`, `signins`, `users`, `rps` (trusts), `certs` (token-signing certificates), `tokens` (hardware tokens),
//! `branding` (the sign-in pages' look).

mod branding;
mod certs;
mod gateway_test;
mod rps;
mod session;
mod settings;
mod signins;
mod tokens;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::error::WebError;
use super::{AppContext, AppState};
use crate::admin::session::{self as admin_session, AdminSession, COOKIE};
use crate::admin::{Actor, AdminError};

pub use session::signed_in;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(session::home))
        .route("/admin/settings", get(settings::page).post(settings::save))
        .route("/admin/settings/test", post(gateway_test::gateway_test))
        .route("/admin/signout", post(session::signout))
        .route("/admin/signins", get(signins::page))
        .route("/admin/signins.csv", get(signins::csv))
        .route("/admin/users", get(users::search))
        .route("/admin/users/{name}", get(users::page).post(users::act))
        .merge(rps::routes())
        .merge(branding::routes())
        .merge(certs::routes())
        .merge(tokens::routes())
}

/// A signed-in admin, for one request.
struct Admin {
    session: AdminSession,
    token: String,
}

impl Admin {
    fn actor(&self, ip: &str) -> Actor {
        Actor {
            name: self.session.user.clone(),
            client_ip: ip.to_owned(),
        }
    }
}

/// The admin behind the cookie, or the response to send instead: a new sign-in (GET) or a
/// refusal (a form posted without a live session).
async fn require(ctx: &AppContext, jar: &CookieJar) -> Result<Admin, Response> {
    let Some(token) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Redirect::to("/admin").into_response());
    };
    match admin_session::load(
        ctx.store.as_ref(),
        &ctx.config.admin,
        &token,
        ctx.clock.unix(),
    )
    .await
    {
        Ok(Some(session)) => Ok(Admin { session, token }),
        Ok(None) => Err(Redirect::to("/admin").into_response()),
        Err(e) => Err(WebError::from(e).into_response()),
    }
}

/// Every form carries the session's CSRF token; a form without it is refused before it is
/// read. `Err` is the refusal.
fn csrf_check(admin: &Admin, form: &[(String, String)]) -> Result<(), WebError> {
    let presented = form_value(form, "csrf").unwrap_or("");
    if admin.session.csrf_ok(presented) {
        return Ok(());
    }
    tracing::warn!(admin = %admin.session.user, "admin form without a valid CSRF token refused");
    Err(WebError::forbidden(
        "This form has expired or did not come from the admin console. Reload the page and try again.",
    ))
}

/// The first value of `name` in a posted form, as sent.
fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `?done=…` on the page a successful change redirects to.
#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// Logs an admin operation that was refused; the admin reads `message` on the page.
fn log_refusal(admin: &Admin, what: &str, message: &str) {
    tracing::info!(admin = %admin.session.user, operation = what, reason = message, "admin operation refused");
}

/// The end of every console change (`what`, for the log): done — `done` drops what caches
/// the old state and says where to go; refused — `again` shows the page with the admin's
/// message; a store failure — the error page.
async fn outcome<T>(
    admin: &Admin,
    what: &str,
    result: Result<T, AdminError>,
    done: impl FnOnce(T) -> String,
    again: impl AsyncFnOnce(String) -> Result<Response, WebError>,
) -> Result<Response, WebError> {
    match result {
        Ok(changed) => Ok(Redirect::to(&done(changed)).into_response()),
        Err(AdminError::Refused(m)) => {
            log_refusal(admin, what, &m);
            again(m).await
        }
        Err(AdminError::Store(e)) => Err(e.into()),
    }
}

fn parse_form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A console handler's signed-in admin; without a session (or with an expired one) the
/// request is answered with a new sign-in instead.
impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, Response> {
        require(ctx, &CookieJar::from_headers(&parts.headers)).await
    }
}

/// A form posted by a signed-in admin with the session's CSRF token; otherwise the request is
/// answered with a new sign-in or the refusal, and the form is never read.
struct AdminForm(Admin, Vec<(String, String)>);

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, ctx).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = parse_form(&body);
        csrf_check(&admin, &form).map_err(IntoResponse::into_response)?;
        Ok(AdminForm(admin, form))
    }
}
