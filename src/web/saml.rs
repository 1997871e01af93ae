//! SAML endpoints: AuthnRequests in (Redirect / POST / IdP-initiated), signed Responses out.

use axum::Form;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::{AppContext, AppState, ClientIp, PageLang};
use crate::i18n::msgid;
use crate::login::session::{self, SsoSession};
use crate::login::{Flow, Pending, PendingRequest, authn_context};
use crate::rp::RelyingParty;
use crate::saml::logout::{self, LogoutRequest};
use crate::saml::request::{self, Binding, Incoming, Message, Refusal, RequestError, Window};
use crate::saml::response::{self, Issue};
use crate::saml::{STATUS_NO_AUTHN_CONTEXT, STATUS_NO_PASSIVE, STATUS_REQUESTER, STATUS_RESPONDER};
use crate::store;

pub async fn sso_redirect(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    if !raw.contains("SAMLRequest=") {
        return ctx.error_in(
            &lang,
            StatusCode::BAD_REQUEST,
            "There is no sign-in request here. Open the application you want to use; it will send you to this page.",
        );
    }
    match request::parse_redirect_query(&raw) {
        Ok(incoming) => begin(&ctx, &lang, incoming, Binding::Redirect, &ip, jar).await,
        Err(e) => refuse(&ctx, &lang, &e, &ip, None),
    }
}

#[derive(Deserialize)]
pub struct PostForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

pub async fn sso_post(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(form): Form<PostForm>,
) -> Response {
    let Some(saml_request) = form.saml_request else {
        return refuse(&ctx, &lang, &RequestError::Missing, &ip, None);
    };
    let incoming = Incoming {
        saml_request,
        relay_state: form.relay_state,
        raw_redirect: None,
    };
    begin(&ctx, &lang, incoming, Binding::Post, &ip, jar).await
}

#[derive(Deserialize)]
pub struct IdpInitiated {
    #[serde(alias = "loginToRp")]
    sp: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// IdP-initiated sign-in (AD FS `idpinitiatedsignon?loginToRp=`): no AuthnRequest, so no
/// InResponseTo; the response goes to the RP's default ACS.
pub async fn idp_initiated(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Query(q): Query<IdpInitiated>,
) -> Response {
    let rp = match registered(&ctx, &lang, q.sp.as_deref().unwrap_or_default(), &ip).await {
        Ok(rp) => rp,
        Err(r) => return r,
    };
    if let Some(rs) = &q.relay_state
        && rs.len() > ctx.config.idp.relay_state_max_bytes
    {
        return refuse(
            &ctx,
            &lang,
            &RequestError::RelayStateTooLong(rs.len()),
            &ip,
            Some(&rp.entity_id),
        );
    }
    let Some(acs) = rp.acs.first() else {
        return refuse(
            &ctx,
            &lang,
            &RequestError::UnregisteredAcs(String::new()),
            &ip,
            Some(&rp.entity_id),
        );
    };
    let pending = PendingRequest {
        rp_entity_id: rp.entity_id.clone(),
        acs_url: acs.url.clone(),
        request_id: None,
        relay_state: q.relay_state,
        force_authn: false,
        requested_context: None,
    };
    continue_or_prompt(&ctx, &lang, pending, false, &ip, jar).await
}

/// Accept an inbound request (`request::accept` runs every check), then answer an
/// AuthnRequest from the SSO session or start a login flow, or carry out a LogoutRequest.
async fn begin(
    ctx: &AppContext,
    lang: &PageLang,
    incoming: Incoming,
    binding: Binding,
    ip: &str,
    jar: CookieJar,
) -> Response {
    let registry = ctx.registry().await;
    let lookup = |entity_id: &str| registry.get(entity_id);
    let a = match request::accept(incoming, binding, lookup, ctx.store.as_ref(), &window(ctx)).await
    {
        Ok(a) => a,
        Err(r) => return refused(ctx, lang, &r, ip),
    };
    let (req, acs) = match a.message {
        Message::AuthnRequest { request, acs } => (request, acs),
        Message::LogoutRequest(req) => {
            return logout(ctx, lang, &a.sp, req, a.relay_state, jar).await;
        }
    };
    tracing::info!(rp = %a.sp.entity_id, request_id = %req.id, signed = a.signed, ?binding, client_ip = ip, "AuthnRequest accepted");
    let pending = PendingRequest {
        rp_entity_id: a.sp.entity_id.clone(),
        acs_url: acs.url,
        request_id: Some(req.id),
        relay_state: a.relay_state,
        force_authn: req.force_authn,
        requested_context: req.requested_context,
    };
    continue_or_prompt(ctx, lang, pending, req.is_passive, ip, jar).await
}

/// The acceptance window for inbound requests, from configuration.
fn window(ctx: &AppContext) -> Window {
    let idp = &ctx.config.idp;
    Window {
        now: ctx.clock.now(),
        max_age: time::Duration::seconds(idp.request_max_age_secs.into()),
        skew: time::Duration::seconds(idp.clock_skew_secs.into()),
        sso_urls: super::SSO_PATHS
            .iter()
            .map(|p| format!("{}{p}", ctx.config.public_base()))
            .collect(),
        relay_state_max: idp.relay_state_max_bytes,
    }
}

/// SP-initiated single logout, the request already accepted: end this browser's SSO
/// session and answer the SP with a signed LogoutResponse. Other RPs of the session are not
/// called (front-channel propagation is not implemented).
async fn logout(
    ctx: &AppContext,
    lang: &PageLang,
    rp: &RelyingParty,
    req: LogoutRequest,
    relay_state: Option<String>,
    jar: CookieJar,
) -> Response {
    if let Some(cookie) = jar.get(session::COOKIE) {
        match session::end(ctx.store.as_ref(), cookie.value()).await {
            Ok(Some(s)) => {
                tracing::info!(user = %s.user.username, rp = %rp.entity_id, name_id = %req.name_id, "signed out")
            }
            Ok(None) => {
                tracing::info!(rp = %rp.entity_id, "logout for a session that had already ended")
            }
            Err(e) => return store_failure_in(ctx, lang, &e),
        }
    }
    let jar = jar.remove(Cookie::build(session::COOKIE).path("/"));
    let Some(slo) = rp.slo.as_deref() else {
        let page = ctx.page(
            lang,
            "error.html",
            minijinja::context! { title => msgid("Signed out"), message => "You have signed out." },
        );
        return (jar, page).into_response();
    };
    match logout::build_logout_response(
        &ctx.config.entity_id(),
        slo,
        &req.id,
        None,
        ctx.clock.now(),
        &ctx.signing().await.current.signer,
    ) {
        Ok(xml) => (jar, post_page(ctx, lang, slo, &xml, relay_state.as_deref())).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "signing failed");
            ctx.error_in(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in service could not sign its answer.",
            )
        }
    }
}

/// With a live SSO session (and no ForceAuthn) answer at once; IsPassive without one gets
/// NoPassive (SAML core §3.4.1); otherwise the user signs in.
async fn continue_or_prompt(
    ctx: &AppContext,
    lang: &PageLang,
    pending: PendingRequest,
    is_passive: bool,
    ip: &str,
    jar: CookieJar,
) -> Response {
    let now = ctx.clock.unix();
    if !pending.force_authn
        && let Some(cookie) = jar.get(session::COOKIE)
    {
        match session::load(ctx.store.as_ref(), cookie.value(), now).await {
            Ok(Some(s)) => return issue(ctx, lang, &pending, s, jar).await,
            Ok(None) => {}
            Err(e) => return store_failure_in(ctx, lang, &e),
        }
    }
    if is_passive {
        return status_response(
            ctx,
            lang,
            &pending,
            STATUS_NO_PASSIVE,
            "No session and IsPassive was requested",
        )
        .await;
    }
    super::login::begin(ctx, lang, Flow::new(Pending::Saml(pending), ip, now), jar).await
}

/// Builds, signs and auto-POSTs the Response for an authenticated session; records the RP
/// in the session and refreshes the session cookie.
pub async fn issue(
    ctx: &AppContext,
    lang: &PageLang,
    pending: &PendingRequest,
    mut s: SsoSession,
    jar: CookieJar,
) -> Response {
    let rp = match registered(ctx, lang, &pending.rp_entity_id, "-").await {
        Ok(rp) => rp,
        Err(r) => return r,
    };
    let now = ctx.clock.now();
    // The session records the sign-in even when this RP's request cannot be met: the user
    // did authenticate, and another RP may accept what was done.
    if !s.rps.contains(&rp.entity_id) {
        s.rps.push(rp.entity_id.clone());
    }
    if let Err(e) = session::save(ctx.store.as_ref(), &s, now.unix_timestamp()).await {
        return store_failure_in(ctx, lang, &e);
    }
    let cookie = Cookie::build((session::COOKIE, s.id.clone()))
        .path("/")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(if ctx.config.is_https() {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .build();
    let jar = jar.add(cookie);
    let Some(class) = authn_context::choose(
        pending.requested_context.as_ref(),
        rp.authn_context,
        &s.methods,
    ) else {
        return (
            jar,
            status_response(
                ctx,
                lang,
                pending,
                STATUS_NO_AUTHN_CONTEXT,
                "The requested authentication context cannot be satisfied",
            )
            .await,
        )
            .into_response();
    };
    let idp = &ctx.config.idp;
    let entity_id = ctx.config.entity_id();
    // Fetched before the clock starts: the keys may come from the store.
    let signing = ctx.signing().await;
    let started = std::time::Instant::now();
    let xml = response::build_success(
        &Issue {
            idp_entity_id: &entity_id,
            sp: &rp.recipient(&s.user),
            acs_url: &pending.acs_url,
            in_response_to: pending.request_id.as_deref(),
            session_index: &s.session_index,
            authn_instant: time::OffsetDateTime::from_unix_timestamp(s.authn_instant)
                .unwrap_or(now),
            authn_class: &class,
            now,
            skew: time::Duration::seconds(idp.clock_skew_secs.into()),
            lifetime: time::Duration::seconds(idp.assertion_lifetime_secs.into()),
            session_not_on_or_after: time::OffsetDateTime::from_unix_timestamp(s.expires).ok(),
            amr: &authn_context::amr(&s.methods),
        },
        &signing.current.signer,
    );
    ctx.metrics.signed(started.elapsed());
    match xml {
        Ok(xml) => {
            tracing::info!(user = %s.user.username, rp = %rp.entity_id, acs = %pending.acs_url, "assertion issued");
            (
                jar,
                post_page(
                    ctx,
                    lang,
                    &pending.acs_url,
                    &xml,
                    pending.relay_state.as_deref(),
                ),
            )
                .into_response()
        }
        Err(e @ response::ResponseError::NoNameId { .. }) => {
            tracing::warn!(error = %e, "cannot issue assertion");
            ctx.error_in(
                lang,
                StatusCode::FORBIDDEN,
                "Your account lacks the attribute this application identifies you by. Contact your help desk.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "signing failed");
            ctx.error_in(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in service could not sign your token. Try again later.",
            )
        }
    }
}

/// The auto-POST of a Response (to an ACS) or a LogoutResponse (to an SLO endpoint). Its
/// CSP lets the form post to that one origin and nowhere else, not even back to us.
fn post_page(
    ctx: &AppContext,
    lang: &PageLang,
    acs: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Response {
    let mut res = ctx.page(
        lang,
        "post.html",
        minijinja::context! {
            title => msgid("Signing you in"),
            acs => acs,
            saml_response => response::encode_post(xml),
            relay_state => relay_state,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&super::csp(&form_origin(acs))) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `url`'s origin as a CSP source (`https://sp.example`, `http://127.0.0.1:8081`); `'none'`
/// for a URL without one (an ACS that is no web address cannot be posted to anyway).
fn form_origin(url: &str) -> String {
    match url::Url::parse(url).map(|u| u.origin()) {
        Ok(o @ url::Origin::Tuple(..)) => o.ascii_serialization(),
        _ => "'none'".to_owned(),
    }
}

/// An error status sent back to the SP (it decides what to show), signed like any Response.
async fn status_response(
    ctx: &AppContext,
    lang: &PageLang,
    pending: &PendingRequest,
    sub: &str,
    message: &str,
) -> Response {
    let top = if sub == STATUS_NO_PASSIVE || sub == STATUS_NO_AUTHN_CONTEXT {
        STATUS_RESPONDER
    } else {
        STATUS_REQUESTER
    };
    tracing::info!(rp = %pending.rp_entity_id, status = sub, "answering with an error status");
    match response::build_status(
        &ctx.config.entity_id(),
        &pending.acs_url,
        pending.request_id.as_deref(),
        top,
        Some(sub),
        Some(message),
        ctx.clock.now(),
        &ctx.signing().await.current.signer,
    ) {
        Ok(xml) => post_page(
            ctx,
            lang,
            &pending.acs_url,
            &xml,
            pending.relay_state.as_deref(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "signing failed");
            ctx.error_in(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The sign-in service could not sign its answer.",
            )
        }
    }
}

/// A refused request: never sent on to any ACS (it may be an attacker's), only explained.
/// The enabled trust for `entity_id`, or the refusal page for an application we do not know.
async fn registered(
    ctx: &AppContext,
    lang: &PageLang,
    entity_id: &str,
    ip: &str,
) -> Result<std::sync::Arc<crate::rp::RelyingParty>, Response> {
    ctx.registry().await.get(entity_id).ok_or_else(|| {
        let e = RequestError::UnknownSp(entity_id.to_owned());
        refuse(ctx, lang, &e, ip, None)
    })
}

/// A request `accept` refused: explained on a page (`may_answer_sp` is never true yet).
fn refused(ctx: &AppContext, lang: &PageLang, r: &Refusal, ip: &str) -> Response {
    match r.cause() {
        Ok(e) => refuse(ctx, lang, e, ip, r.sp()),
        Err(e) => store_failure_in(ctx, lang, e),
    }
}

fn refuse(
    ctx: &AppContext,
    lang: &PageLang,
    e: &RequestError,
    ip: &str,
    rp: Option<&str>,
) -> Response {
    tracing::warn!(reason = %e, client_ip = ip, rp = rp.unwrap_or("-"), "SAML request refused");
    ctx.error_in(lang, StatusCode::BAD_REQUEST, e.user_message())
}

/// The store failed: in English, for the admin console (sign-in pages: `store_failure_in`).
pub fn store_failure(ctx: &AppContext, e: &store::StoreError) -> Response {
    store_failure_in(ctx, &PageLang::default(), e)
}

pub fn store_failure_in(ctx: &AppContext, lang: &PageLang, e: &store::StoreError) -> Response {
    tracing::error!(error = %e, "store failure");
    ctx.error_in(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        "The sign-in service is temporarily unavailable. Try again in a moment.",
    )
}

#[cfg(test)]
mod tests {
    use super::form_origin;

    #[test]
    fn the_post_page_may_post_to_the_endpoint_origin_only() {
        assert_eq!(
            form_origin("https://gw.corp.example/cgi/samlauth?x=1"),
            "https://gw.corp.example"
        );
        assert_eq!(
            form_origin("http://127.0.0.1:8081/mellon/postResponse"),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            form_origin("HTTPS://GW.example:443/acs"),
            "https://gw.example"
        );
        // A value that would end the directive or add a source is no origin.
        assert_eq!(form_origin("javascript:alert(1)"), "'none'");
        assert_eq!(form_origin("not a url; script-src *"), "'none'");
    }
}
