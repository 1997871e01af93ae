//! The portal's method actions: the default, removing a method, adding an authenticator app (QR code, secret, `otpauth://` link, one code), the PIN and the one-time bypass.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;

use super::{Done, Portal, PortalForm, What, field, finish, log};
use crate::mfa::registration::TokenKind;
use crate::mfa::{Method, oath};
use crate::portal::PortalError;
use crate::portal::actions::{self, Deps, Removal};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp, PageLang};

const UNKNOWN_METHOD: &str = "That method is not available for your account.";
const NOT_FOUND: &str = "That method was not found.";
const BAD_VALIDITY: &str = "A bypass is valid for 1 to 60 minutes.";

/// The rules' view of this request: the store, the sealing key, the policy, the time.
fn deps<'a>(ctx: &'a AppContext, mfa: &'a crate::mfa::settings::MfaSettings) -> Deps<'a> {
    Deps {
        store: ctx.store.as_ref(),
        secrets: &ctx.secrets,
        mfa,
        now: ctx.clock.unix(),
    }
}

/// POST /portal/default: `method` becomes the user's default (when users may choose).
pub(super) async fn set_default(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let method = field(&form, "method").parse::<Method>().ok();
    let result = match method {
        Some(m) => actions::set_default(&d, &p.session, m)
            .await
            .map(|()| Done::Default),
        None => Err(PortalError::Refused(UNKNOWN_METHOD)),
    };
    let what = What::new("portal.set_default", method.map(Method::as_str));
    finish(&ctx, &lang, &p, &ip, what, result).await
}

/// POST /portal/remove: one of the user's own methods (`kind`, `id`) goes.
pub(super) async fn remove(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let what = Removal::parse(field(&form, "kind"), field(&form, "id"));
    let result = match &what {
        Some(r) => actions::remove(&d, &p.session, r)
            .await
            .map(|()| Done::Removed),
        None => Err(PortalError::Refused(NOT_FOUND)),
    };
    let method = what.as_ref().map(|r| r.method().as_str());
    finish(
        &ctx,
        &lang,
        &p,
        &ip,
        What::new("portal.remove", method),
        result,
    )
    .await
}

/// POST /portal/app: a new secret for an authenticator app, kept sealed in the session;
/// then the page that shows it.
pub(super) async fn app_start(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(mut p, _): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    match actions::start_app(&d, &mut p.session) {
        Ok(()) => {
            p.save(&ctx).await?;
            Ok(Redirect::to("/portal/app").into_response())
        }
        Err(e) => {
            let what = What::new("portal.add_app", Some("oath"));
            finish(&ctx, &lang, &p, &ip, what, Err(e)).await
        }
    }
}

/// GET /portal/app: the pending app's QR code, its secret as text and an `otpauth://` link
/// (for setting up on this same phone), and the form for its first code.
pub(super) async fn app_page(
    State(ctx): State<AppState>,
    lang: PageLang,
    p: Portal,
) -> Result<Response, WebError> {
    render_app(&ctx, &lang, &p, None).await
}

async fn render_app(
    ctx: &AppContext,
    lang: &PageLang,
    p: &Portal,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(ctx, &policy.mfa);
    let Some(secret) = actions::pending_app_secret(&d, &p.session) else {
        return Ok(Redirect::to("/portal").into_response());
    };
    // Only a user who has an app is told the new one replaces it.
    let reg = crate::mfa::registration::load(ctx.store.as_ref(), &p.session.user).await?;
    let replaces = reg.tokens.iter().any(|t| t.kind == TokenKind::App);
    let params = oath::OathParams::default();
    let uri = oath::otpauth_uri(
        &ctx.config.idp.display_name,
        &p.session.account,
        &secret,
        &params,
    );
    let res = ctx.page(lang, "portal_app.html", minijinja::context! {
        title => crate::i18n::msgid("Set up an authenticator app"), csrf => p.session.csrf.clone(),
        qr => Value::from_safe_string(oath::qr_svg(&uri)), secret => oath::base32(&secret),
        uri => uri, account => p.session.account.clone(), error => error, replaces => replaces,
    });
    Ok(super::form_page(res, error))
}

/// POST /portal/app/confirm: the app's first code; counted against the user's code budget.
pub(super) async fn app_confirm(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(mut p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let result = actions::confirm_app(&d, &mut p.session, field(&form, "code")).await;
    p.save(&ctx).await?;
    let what = What::new("portal.add_app", Some("oath"));
    match result {
        // A wrong code: the same QR code again, to type the next one.
        Err(PortalError::Refused(m)) if p.session.setup.is_some() => {
            log(&ctx, &p, &ip, what, Err(m)).await?;
            render_app(&ctx, &lang, &p, Some(m)).await
        }
        other => finish(&ctx, &lang, &p, &ip, what, other.map(|()| Done::App)).await,
    }
}

/// POST /portal/pin: chooses or changes the PIN (PIN mode).
pub(super) async fn pin(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let (new, confirm) = (field(&form, "pin"), field(&form, "confirm"));
    let result = actions::set_pin(&d, &p.session, new, confirm).await;
    let r = result.map(|()| Done::Pin);
    finish(
        &ctx,
        &lang,
        &p,
        &ip,
        What::new("portal.set_pin", Some("call")),
        r,
    )
    .await
}

/// POST /portal/bypass: a one-time bypass for the user's next sign-in (when allowed).
pub(super) async fn bypass(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy.mfa);
    let (minutes, reason) = (field(&form, "minutes"), field(&form, "reason"));
    let result = match minutes.parse::<u32>() {
        Ok(m) => actions::bypass(&d, &p.session, m, reason).await,
        Err(_) => Err(PortalError::Refused(BAD_VALIDITY)),
    };
    let mut what = What::new("portal.bypass", None);
    what.detail = Some(format!(
        "{} min: {}",
        minutes,
        crate::audit::shorten(reason, 200)
    ));
    finish(&ctx, &lang, &p, &ip, what, result.map(|()| Done::Bypass)).await
}
