//! `/enroll/link/<token>`: the page a help desk's enrollment link opens, to add an authenticator app.
//!
//! Every link that is not live (unknown, spent, expired, malformed) gets the same page and
//! status, so the page tells nothing about users or links. Wrong codes count against the
//! user's code lock (`mfa::enroll_link::confirm`), which bounds guessing across links and
//! sign-ins alike; a code longer than any real one counts as wrong without being checked.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;
use serde::Deserialize;

use super::error::WebError;
use super::{AppContext, AppState, ClientIp, PageLang};
use crate::mfa::enroll_link::{self, Confirmed, EnrollLink};
use crate::mfa::oath;

const NOT_VALID: &str = "This enrollment link is not valid. It may have expired or been used already. Ask your help desk for a new one.";
const NOT_CORRECT: &str = "That code is not correct. Enter the code your app shows now.";
const LOCKED: &str = "Too many incorrect codes were entered for your account, so codes are not accepted for now. Try again later or contact your help desk.";

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    code: String,
}

/// The page in one of its steps: "app" (QR code and form), "done" or "invalid".
fn page(
    ctx: &AppContext,
    lang: &PageLang,
    step: &str,
    app: Option<(&str, &EnrollLink)>,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let shown = app.and_then(|(token, link)| {
        let secret = enroll_link::secret(&ctx.secrets, token, link)?;
        let issuer = &ctx.config.idp.display_name;
        let uri = oath::otpauth_uri(
            issuer,
            &link.username,
            &secret,
            &oath::OathParams::default(),
        );
        Some(minijinja::context! {
            qr => Value::from_safe_string(oath::qr_svg(&uri)), secret => oath::base32(&secret),
            uri => uri, token => token, account => link.username.clone(),
        })
    });
    // A link whose secret does not open (another node key) is as good as none.
    let step = if app.is_some() && shown.is_none() {
        "invalid"
    } else {
        step
    };
    let message = if step == "invalid" {
        Some(NOT_VALID)
    } else {
        message
    };
    let mut res = ctx.page(
        lang,
        "enroll_link.html",
        minijinja::context! {
            title => super::views::enroll_title(step), step => step, message => message, app => shown,
        },
    );
    *res.status_mut() = if step == "invalid" {
        StatusCode::NOT_FOUND
    } else {
        status
    };
    res
}

/// GET: the QR code, the key as text and the `otpauth://` link, or the one "not valid" page.
pub async fn show(
    State(ctx): State<AppState>,
    lang: PageLang,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let link = enroll_link::open(ctx.store.as_ref(), &token, ctx.clock.unix()).await?;
    Ok(match &link {
        Some(l) => page(&ctx, &lang, "app", Some((&token, l)), None, StatusCode::OK),
        None => page(
            &ctx,
            &lang,
            "invalid",
            None,
            Some(NOT_VALID),
            StatusCode::NOT_FOUND,
        ),
    })
}

/// POST: one code from the app; right, the app is added and the link spent.
pub async fn confirm(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    let (store, now) = (ctx.store.as_ref(), ctx.clock.unix());
    let policy = ctx.policy().await;
    let outcome = enroll_link::confirm(store, &ctx.secrets, &policy.mfa, &token, &form.code, now);
    let (message, status) = match outcome.await? {
        Confirmed::Added { username, token_id } => {
            enroll_link::record_confirmed(store, &username, &token_id, &ip, now).await?;
            return Ok(page(&ctx, &lang, "done", None, None, StatusCode::OK));
        }
        Confirmed::Invalid => {
            let res = page(
                &ctx,
                &lang,
                "invalid",
                None,
                Some(NOT_VALID),
                StatusCode::NOT_FOUND,
            );
            return Ok(res);
        }
        Confirmed::WrongCode => (NOT_CORRECT, StatusCode::UNAUTHORIZED),
        Confirmed::Locked => (LOCKED, StatusCode::TOO_MANY_REQUESTS),
    };
    let link = enroll_link::open(store, &token, now).await?;
    let app = link.as_ref().map(|l| (token.as_str(), l));
    Ok(page(&ctx, &lang, "app", app, Some(message), status))
}
