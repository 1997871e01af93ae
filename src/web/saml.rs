//! SAML endpoints: AuthnRequests in (Redirect / POST / IdP-initiated), signed Responses out.

use axum::Form;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::error::WebError;
use super::{AppContext, AppState, ClientIp, PageLang};
use crate::i18n::msgid;
use crate::login::session::{self, Participant, SsoSession};
use crate::login::{Flow, Pending, PendingRequest, authn_context};
use crate::rp::name_id::{self, NameId, NameIdError, PolicyError};
use crate::rp::{NAMEID_TRANSIENT, Protocol, RelyingParty};
use crate::saml::request::{
    self, Binding, Incoming, Message, NameIdPolicy, Refusal, RequestError, Window,
};
use crate::saml::response::{self, Issue};
use crate::saml::{
    STATUS_INVALID_NAME_ID_POLICY, STATUS_NO_AUTHN_CONTEXT, STATUS_NO_PASSIVE, STATUS_REQUESTER,
    STATUS_RESPONDER,
};

pub async fn sso_redirect(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let raw = raw.unwrap_or_default();
    // Our SLO endpoint is this one too (startup::endpoints): an SP's LogoutResponse.
    if raw.contains("SAMLResponse=") {
        return super::logout::answered_redirect(&ctx, &lang, &raw, &ip, jar).await;
    }
    // WS-Federation speaks here too (it has `wa`); SAML keeps whatever carries a SAMLRequest.
    if !raw.contains("SAMLRequest=") && crate::wsfed::request::is_wsfed(raw.as_bytes()) {
        return super::wsfed::passive(&ctx, &lang, &ip, jar, raw.as_bytes()).await;
    }
    if !raw.contains("SAMLRequest=") {
        return Err(WebError::bad_request(
            "There is no sign-in request here. Open the application you want to use; it will send you to this page.",
        ));
    }
    let incoming = request::parse_redirect_query(&raw).map_err(|e| refuse(&e, &ip, None))?;
    begin(&ctx, &lang, incoming, Binding::Redirect, &ip, jar).await
}

#[derive(Deserialize)]
pub struct PostForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
    /// An SP's LogoutResponse to our LogoutRequest (single logout).
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
}

pub async fn sso_post(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(form): Form<PostForm>,
) -> Result<Response, WebError> {
    if let Some(saml_response) = form.saml_response {
        let incoming = Incoming {
            saml_request: saml_response,
            relay_state: form.relay_state,
            raw_redirect: None,
        };
        return super::logout::answered(&ctx, &lang, incoming, Binding::Post, &ip, jar).await;
    }
    let Some(saml_request) = form.saml_request else {
        return Err(refuse(&RequestError::Missing, &ip, None));
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
) -> Result<Response, WebError> {
    let rp = registered(&ctx, q.sp.as_deref().unwrap_or_default(), &ip).await?;
    if let Some(rs) = &q.relay_state
        && rs.len() > ctx.config.idp.relay_state_max_bytes
    {
        let e = RequestError::RelayStateTooLong(rs.len());
        return Err(refuse(&e, &ip, Some(&rp.entity_id)));
    }
    let Some(acs) = rp.acs.first() else {
        let e = RequestError::UnregisteredAcs(String::new());
        return Err(refuse(&e, &ip, Some(&rp.entity_id)));
    };
    let pending = PendingRequest {
        rp_entity_id: rp.entity_id.clone(),
        acs_url: acs.url.clone(),
        request_id: None,
        relay_state: q.relay_state,
        force_authn: false,
        requested_context: None,
        name_id_policy: None,
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
) -> Result<Response, WebError> {
    let registry = ctx.registry().await;
    let lookup = |entity_id: &str| registry.get(entity_id);
    let a = request::accept(incoming, binding, lookup, ctx.store.as_ref(), &window(ctx))
        .await
        .map_err(|r| refused(r, ip))?;
    let (req, acs) = match a.message {
        Message::AuthnRequest { request, acs } => (request, acs),
        Message::LogoutRequest(req) => {
            let rs = a.relay_state;
            return super::logout::sp_initiated(ctx, lang, &a.sp, req, rs, ip, jar).await;
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
        name_id_policy: req.name_id_policy,
    };
    continue_or_prompt(ctx, lang, pending, req.is_passive, ip, jar).await
}

/// The acceptance window for inbound requests, from configuration.
pub(super) fn window(ctx: &AppContext) -> Window {
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

/// What the user reads when we could not sign an answer to the SP.
pub(super) const SIGNING_FAILED: &str = "The sign-in service could not sign its answer.";

/// With a live SSO session (and no ForceAuthn) answer at once; IsPassive without one gets
/// NoPassive (SAML core §3.4.1); otherwise the user signs in.
async fn continue_or_prompt(
    ctx: &AppContext,
    lang: &PageLang,
    pending: PendingRequest,
    is_passive: bool,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let now = ctx.clock.unix();
    if !pending.force_authn
        && let Some(cookie) = jar.get(session::COOKIE)
        && let Some(s) = session::load(ctx.store.as_ref(), cookie.value(), now).await?
    {
        return issue(ctx, lang, &pending, s, jar).await;
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
    super::login::begin(ctx, Flow::new(Pending::Saml(pending), ip, now), jar).await
}

/// Builds, signs and auto-POSTs the Response for an authenticated session; records the RP
/// in the session and refreshes the session cookie. A NameIDPolicy that cannot be met gets
/// a signed InvalidNameIDPolicy answer instead (SAML core §3.4.1.1).
pub async fn issue(
    ctx: &AppContext,
    lang: &PageLang,
    pending: &PendingRequest,
    mut s: SsoSession,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let rp = registered(ctx, &pending.rp_entity_id, "-").await?;
    let now = ctx.clock.now();
    let mut recipient = rp.recipient(&s.user);
    let name_id = match name_id_for(ctx, &s, &rp, pending.name_id_policy.as_ref()).await {
        Ok(n) => n,
        Err(NameIdError::Policy(e)) => {
            let jar = jar.add(remember_rp(ctx, &mut s, &recipient, None, now).await?);
            let answer = refuse_name_id_policy(ctx, lang, pending, &s, &e).await?;
            return Ok((jar, answer).into_response());
        }
        Err(NameIdError::Store(e)) => return Err(e.into()),
    };
    if let Some(n) = &name_id {
        n.apply(&mut recipient);
    }
    let name_id = name_id.map(|n| n.value);
    let jar = jar.add(remember_rp(ctx, &mut s, &recipient, name_id, now).await?);
    let Some(class) = authn_context::choose(
        pending.requested_context.as_ref(),
        rp.authn_context,
        &s.methods,
    ) else {
        let answer = status_response(
            ctx,
            lang,
            pending,
            STATUS_NO_AUTHN_CONTEXT,
            "The requested authentication context cannot be satisfied",
        )
        .await?;
        return Ok((jar, answer).into_response());
    };
    let xml = sign_success(ctx, pending, &s, &recipient, &class).await?;
    tracing::info!(user = %s.user.username, rp = %rp.entity_id, acs = %pending.acs_url, "assertion issued");
    let relay_state = pending.relay_state.as_deref();
    let page = post_page(ctx, lang, &pending.acs_url, &xml, relay_state);
    Ok((jar, page).into_response())
}

/// The signed success Response for `recipient` in session `s`, timed for the metrics.
async fn sign_success(
    ctx: &AppContext,
    pending: &PendingRequest,
    s: &SsoSession,
    recipient: &response::Recipient,
    class: &str,
) -> Result<String, WebError> {
    let idp = &ctx.config.idp;
    let now = ctx.clock.now();
    let entity_id = ctx.config.entity_id();
    // Fetched before the clock starts: the keys may come from the store.
    let signing = ctx.signing().await;
    let started = std::time::Instant::now();
    let xml = response::build_success(
        &Issue {
            idp_entity_id: &entity_id,
            sp: recipient,
            acs_url: &pending.acs_url,
            in_response_to: pending.request_id.as_deref(),
            session_index: &s.session_index,
            authn_instant: time::OffsetDateTime::from_unix_timestamp(s.authn_instant)
                .unwrap_or(now),
            authn_class: class,
            now,
            skew: time::Duration::seconds(idp.clock_skew_secs.into()),
            lifetime: time::Duration::seconds(idp.assertion_lifetime_secs.into()),
            session_not_on_or_after: time::OffsetDateTime::from_unix_timestamp(s.expires).ok(),
            amr: &authn_context::amr(&s.methods),
        },
        &signing.current.signer,
    );
    ctx.metrics.signed(started.elapsed());
    xml.map_err(not_issued)
}

/// The NameID `rp` gets in session `s` (value, format, qualifiers), judged against the
/// request's NameIDPolicy (`rp::name_id`). A transient one (SAML core §8.3.8) is made once
/// per session and RP and kept in the participant record, so a LogoutRequest naming it can
/// be matched; a persistent one is the stored pairwise value. `Ok(None)` when the user has
/// no value for the RP's NameID source.
///
/// Protocols without a NameIDPolicy (WS-Federation, IdP-initiated sign-in) pass `None` and
/// get the RP's configured NameID, resolved the same way.
pub(super) async fn name_id_for(
    ctx: &AppContext,
    s: &SsoSession,
    rp: &RelyingParty,
    policy: Option<&NameIdPolicy>,
) -> Result<Option<NameId>, NameIdError> {
    let transient = || {
        s.participant(&rp.entity_id)
            .filter(|p| p.name_id_format == NAMEID_TRANSIENT)
            .map(|p| p.name_id.clone())
            .unwrap_or_else(crate::saml::new_id)
    };
    let idp = ctx.config.entity_id();
    name_id::resolve(ctx.store.as_ref(), rp, &s.user, policy, &idp, transient).await
}

/// Answers a NameIDPolicy that cannot be met: a signed Requester / InvalidNameIDPolicy
/// Response to the SP (SAML core §3.4.1.1), a warning in the log and an audit event.
async fn refuse_name_id_policy(
    ctx: &AppContext,
    lang: &PageLang,
    pending: &PendingRequest,
    s: &SsoSession,
    e: &PolicyError,
) -> Result<Response, WebError> {
    tracing::warn!(user = %s.user.username, rp = %pending.rp_entity_id, reason = %e, "NameIDPolicy refused");
    let event = crate::audit::AuditEvent {
        at: crate::saml::saml_time(ctx.clock.now()),
        flow: &s.session_index,
        user: Some(&s.user.username),
        rp: &pending.rp_entity_id,
        client_ip: "-",
        from: "Authenticated",
        to: "InvalidNameIDPolicy",
        method: None,
        outcome: crate::audit::Outcome::Failure,
        reason: Some(crate::audit::shorten(&e.to_string(), 300)),
    };
    crate::audit::persist_one(ctx.store.as_ref(), &event, ctx.clock.unix()).await?;
    let message = "The requested NameID policy cannot be satisfied";
    status_response(ctx, lang, pending, STATUS_INVALID_NAME_ID_POLICY, message).await
}

/// Records the RP (and the NameID it is given) in the SSO session, saves it, and gives its
/// refreshed cookie. The session records the sign-in even when this RP's request cannot be
/// met: the user did authenticate, and another RP may accept what was done.
async fn remember_rp(
    ctx: &AppContext,
    s: &mut SsoSession,
    recipient: &response::Recipient,
    name_id: Option<String>,
    now: time::OffsetDateTime,
) -> Result<Cookie<'static>, WebError> {
    if let Some(name_id) = name_id {
        s.remember(Participant {
            rp: recipient.entity_id.clone(),
            protocol: Protocol::Saml,
            name_id,
            name_id_format: recipient.name_id_format.clone(),
        });
    }
    session::save(ctx.store.as_ref(), s, now.unix_timestamp()).await?;
    Ok(session_cookie(ctx, s))
}

/// The SSO session's cookie. Cross-site (`None`) over https: the SP's POST back to us must
/// carry it; plain http cannot have `None`, so `Lax` there.
pub(super) fn session_cookie(ctx: &AppContext, s: &SsoSession) -> Cookie<'static> {
    Cookie::build((session::COOKIE, s.id.clone()))
        .path("/")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(if ctx.config.is_https() {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .build()
}

/// Why no assertion was issued, as the user's page.
pub(super) fn not_issued(e: response::ResponseError) -> WebError {
    match e {
        response::ResponseError::NoNameId { .. } => {
            tracing::warn!(error = %e, "cannot issue assertion");
            WebError::forbidden(
                "Your account lacks the attribute this application identifies you by. Contact your help desk.",
            )
        }
        e => WebError::internal(
            "The sign-in service could not sign your token. Try again later.",
            format!("signing failed: {e}"),
        ),
    }
}

/// The auto-POST of a Response to an ACS. Its CSP lets the form post to that one origin
/// and nowhere else, not even back to us.
pub(super) fn post_page(
    ctx: &AppContext,
    lang: &PageLang,
    acs: &str,
    xml: &str,
    relay_state: Option<&str>,
) -> Response {
    let mut fields = vec![("SAMLResponse", response::encode_post(xml))];
    if let Some(rs) = relay_state {
        fields.push(("RelayState", rs.to_owned()));
    }
    auto_post(ctx, lang, Errand::SignIn, acs, &fields)
}

/// What an auto-POST page carries the user through, for its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Errand {
    SignIn,
    SignOut,
}

/// A page that POSTs `fields` to `action` by itself (a "Continue" button without script):
/// SAML's HTTP-POST binding (sign-in and logout messages) and WS-Federation's passive
/// profile all answer this way. Its CSP lets the form post to that one origin only.
pub(super) fn auto_post(
    ctx: &AppContext,
    lang: &PageLang,
    errand: Errand,
    action: &str,
    fields: &[(&str, String)],
) -> Response {
    let (title, heading) = match errand {
        Errand::SignIn => (msgid("Signing you in"), msgid("Signing you in…")),
        Errand::SignOut => (msgid("Signing you out"), msgid("Signing you out…")),
    };
    let mut res = ctx.page(
        lang,
        "post.html",
        minijinja::context! {
            title => title,
            heading => heading,
            action => action,
            fields => fields.iter().map(|(k, v)| [(*k).to_owned(), v.clone()]).collect::<Vec<_>>(),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&super::csp(&form_origin(action))) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `url`'s origin as a CSP source (`https://sp.example`, `http://127.0.0.1:8081`); `'none'`
/// for a URL without one (an ACS that is no web address cannot be posted to anyway).
pub(super) fn form_origin(url: &str) -> String {
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
) -> Result<Response, WebError> {
    let top = if sub == STATUS_NO_PASSIVE || sub == STATUS_NO_AUTHN_CONTEXT {
        STATUS_RESPONDER
    } else {
        STATUS_REQUESTER
    };
    tracing::info!(rp = %pending.rp_entity_id, status = sub, "answering with an error status");
    let xml = response::build_status(
        &ctx.config.entity_id(),
        &pending.acs_url,
        pending.request_id.as_deref(),
        top,
        Some(sub),
        Some(message),
        ctx.clock.now(),
        &ctx.signing().await.current.signer,
    )
    .map_err(|e| WebError::internal(SIGNING_FAILED, format!("signing failed: {e}")))?;
    let relay_state = pending.relay_state.as_deref();
    Ok(post_page(ctx, lang, &pending.acs_url, &xml, relay_state))
}

/// The enabled trust for `entity_id`, or the refusal for an application we do not know.
async fn registered(
    ctx: &AppContext,
    entity_id: &str,
    ip: &str,
) -> Result<std::sync::Arc<crate::rp::RelyingParty>, WebError> {
    ctx.registry().await.get(entity_id).ok_or_else(|| {
        let e = RequestError::UnknownSp(entity_id.to_owned());
        refuse(&e, ip, None)
    })
}

/// A request `accept` refused: explained on a page (`may_answer_sp` is never true yet).
fn refused(r: Refusal, ip: &str) -> WebError {
    let sp = r.sp().map(str::to_owned);
    match r.into_cause() {
        Ok(e) => refuse(&e, ip, sp.as_deref()),
        Err(e) => e.into(),
    }
}

/// A refused request: never sent on to any ACS (it may be an attacker's), only explained.
fn refuse(e: &RequestError, ip: &str, rp: Option<&str>) -> WebError {
    tracing::warn!(reason = %e, client_ip = ip, rp = rp.unwrap_or("-"), "SAML request refused");
    WebError::bad_request(e.user_message())
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
