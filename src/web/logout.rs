//! Single logout (SAML core §3.7, profiles §4.4): a LogoutRequest from an SP ends this
//! browser's SSO session and is answered with a signed LogoutResponse.

use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;

use super::error::WebError;
use super::saml::{SIGNING_FAILED, post_page};
use super::{AppContext, PageLang};
use crate::i18n::msgid;
use crate::login::session;
use crate::rp::{Protocol, RelyingParty};
use crate::saml::logout::{self, LogoutRequest};

/// SP-initiated single logout, the request already accepted: end this browser's SSO
/// session and answer the SP with a signed LogoutResponse. Other RPs of the session are not
/// called (front-channel propagation is not implemented).
pub(super) async fn sp_initiated(
    ctx: &AppContext,
    lang: &PageLang,
    rp: &RelyingParty,
    req: LogoutRequest,
    relay_state: Option<String>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if let Some(cookie) = jar.get(session::COOKIE) {
        match session::end(ctx.store.as_ref(), cookie.value()).await? {
            Some(s) => {
                tracing::info!(user = %s.user.username, rp = %rp.entity_id, name_id = %req.name_id, "signed out")
            }
            None => {
                tracing::info!(rp = %rp.entity_id, "logout for a session that had already ended")
            }
        }
    }
    let jar = jar.remove(Cookie::build(session::COOKIE).path("/"));
    let page = signed_out_page(ctx, lang, rp, &req.id, relay_state.as_deref()).await?;
    Ok((jar, page).into_response())
}

/// The end of a logout: a signed LogoutResponse to the SP's SLO endpoint, or — for an SP
/// without one — a page saying so.
async fn signed_out_page(
    ctx: &AppContext,
    lang: &PageLang,
    rp: &crate::rp::RelyingParty,
    request_id: &str,
    relay_state: Option<&str>,
) -> Result<Response, WebError> {
    let Some(slo) = rp.slo.as_deref() else {
        return Ok(ctx.page(
            lang,
            "error.html",
            minijinja::context! { title => msgid("Signed out"), message => "You have signed out." },
        ));
    };
    let xml = logout::build_logout_response(
        &ctx.config.entity_id(),
        slo,
        request_id,
        None,
        ctx.clock.now(),
        &ctx.signing().await.current.signer,
    )
    .map_err(|e| WebError::internal(SIGNING_FAILED, format!("signing failed: {e}")))?;
    Ok(post_page(ctx, lang, slo, &xml, relay_state))
}

/// WS-Federation sign-out (`wa=wsignout1.0`, MS-WSFED §2.2.4): end this browser's SSO
/// session, then go to `reply` only when it is a registered reply URL of a WS-Fed relying
/// party (an open redirect otherwise); without one, the signed-out page.
pub(super) async fn wsfed_signout(
    ctx: &AppContext,
    lang: &PageLang,
    reply: Option<&str>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let jar = end_session(ctx, jar, "wsignout1.0").await?;
    let registry = ctx.registry().await;
    let registered = reply.filter(|url| {
        registry
            .all()
            .iter()
            .any(|rp| rp.protocol == Protocol::Wsfed && rp.acs.iter().any(|a| a.url == *url))
    });
    if let Some(url) = registered {
        return Ok((jar, Redirect::to(url)).into_response());
    }
    Ok((jar, signed_out(ctx, lang)).into_response())
}

/// `wa=wsignoutcleanup1.0` (MS-WSFED §2.2.4): another party signs the user out and asks us
/// to end our session too; nothing is redirected anywhere.
pub(super) async fn wsfed_cleanup(
    ctx: &AppContext,
    lang: &PageLang,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let jar = end_session(ctx, jar, "wsignoutcleanup1.0").await?;
    Ok((jar, signed_out(ctx, lang)).into_response())
}

/// Ends the SSO session the cookie names (if any) and removes the cookie.
async fn end_session(ctx: &AppContext, jar: CookieJar, how: &str) -> Result<CookieJar, WebError> {
    if let Some(cookie) = jar.get(session::COOKIE)
        && let Some(s) = session::end(ctx.store.as_ref(), cookie.value()).await?
    {
        tracing::info!(user = %s.user.username, how, "signed out");
    }
    Ok(jar.remove(Cookie::build(session::COOKIE).path("/")))
}

/// The page that says the user is signed out.
fn signed_out(ctx: &AppContext, lang: &PageLang) -> Response {
    ctx.page(
        lang,
        "error.html",
        minijinja::context! { title => msgid("Signed out"), message => "You have signed out." },
    )
}
