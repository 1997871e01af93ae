//! Single logout (SAML core §3.7, profiles §4.4): ends this browser's SSO session and signs
//! it out of every other application of the session, front-channel, one after another.
//!
//! A logout starts from an SP's LogoutRequest (`sp_initiated`), from our sign-out page
//! (`confirm_page` / `confirm_submit`, at `/adfs/ls/logout`) or from WS-Federation
//! `wsignout1.0` (`wsfed_signout`). All three end the SSO session at once and start a run
//! (`login::slo`): each other SAML participant with an SLO endpoint gets a signed
//! LogoutRequest carried by the browser (HTTP-POST or signed HTTP-Redirect, as its metadata
//! offers), and its LogoutResponse comes back to our SLO endpoint (`answered`) before the
//! next one is asked. WS-Fed participants get `wa=wsignoutcleanup1.0` as images on the last
//! page we show (their answer cannot be observed; the CSP allows exactly their origins).
//! At the end the initiating SP gets a signed LogoutResponse (Success, with PartialLogout
//! when a participant failed), a user our "You have signed out" page.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use serde::Deserialize;

use super::error::WebError;
use super::saml::{Errand, SIGNING_FAILED, auto_post, form_origin, session_cookie, window};
use super::{AppContext, AppState, ClientIp, PageLang};
use crate::i18n::msgid;
use crate::login::session::{self, Participant, SsoSession};
use crate::login::slo::{self, Failure, Initiator, Run, Waiting};
use crate::rp::{Protocol, Registry, RelyingParty};
use crate::saml::logout::{self, Expected, Kind, LogoutRequest, Outbound, Unaccepted};
use crate::saml::request::{self, Binding, Incoming};
use crate::saml::{STATUS_REQUESTER, STATUS_SUCCESS};

/// How long an SP may act on our LogoutRequest (its NotOnOrAfter).
const REQUEST_LIFETIME: time::Duration = time::Duration::minutes(5);
/// Where the browser continues a run after the WS-Fed cleanup page.
const CONTINUE_PATH: &str = "/adfs/ls/logout/continue";

/// SP-initiated single logout, the request already accepted (signature included): when it
/// names this browser's session — the NameID (and Format) the SP was given here, and this
/// session's index when it lists any — end the session and sign out the other participants;
/// otherwise answer Requester and end nothing (SAML core §3.7.3.2). Without a live session
/// there is nothing to end: Success.
pub(super) async fn sp_initiated(
    ctx: &AppContext,
    lang: &PageLang,
    rp: &RelyingParty,
    req: LogoutRequest,
    relay_state: Option<String>,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let Some(s) = live_session(ctx, &jar).await? else {
        tracing::info!(rp = %rp.entity_id, client_ip = ip, "logout for a session that had already ended");
        let rs = relay_state.as_deref();
        let answer = answer_sp(ctx, lang, rp, &req.id, rs, STATUS_SUCCESS, None).await?;
        return Ok((jar.remove(removal(session::COOKIE)), answer).into_response());
    };
    let named = slo::names_session(
        &s,
        &rp.entity_id,
        &req.name_id,
        req.name_id_format.as_deref(),
        &req.session_indexes,
    );
    if let Err(why) = named {
        tracing::warn!(rp = %rp.entity_id, user = %s.user.username, reason = %why, client_ip = ip, "LogoutRequest does not name this session; nothing ended");
        audit_refusal(ctx, &s, &rp.entity_id, ip, &why.to_string()).await;
        let rs = relay_state.as_deref();
        return answer_sp(ctx, lang, rp, &req.id, rs, STATUS_REQUESTER, None).await;
    }
    let initiator = Initiator::Sp {
        rp: rp.entity_id.clone(),
        request_id: req.id,
        relay_state,
    };
    start(ctx, lang, s, initiator, ip, jar).await
}

/// The SSO session the browser's cookie names, if it is live.
async fn live_session(ctx: &AppContext, jar: &CookieJar) -> Result<Option<SsoSession>, WebError> {
    let Some(cookie) = jar.get(session::COOKIE) else {
        return Ok(None);
    };
    Ok(session::load(ctx.store.as_ref(), cookie.value(), ctx.clock.unix()).await?)
}

/// A cookie removal for `name` (both our cookies live on path `/`).
fn removal(name: &'static str) -> Cookie<'static> {
    Cookie::build(name).path("/").build()
}

/// Ends the session and starts the run: the run cookie replaces the session cookie.
async fn start(
    ctx: &AppContext,
    lang: &PageLang,
    s: SsoSession,
    initiator: Initiator,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    session::end(ctx.store.as_ref(), &s.id).await?;
    let run = Run::start(&s, initiator);
    let Some(stored) = slo::save(ctx.store.as_ref(), &run, None).await? else {
        // A fresh 128-bit id already taken: never in practice.
        return Err(WebError::internal(
            super::error::UNAVAILABLE,
            "logout run id collision",
        ));
    };
    tracing::info!(user = %run.user, participants = s.participants.len(), client_ip = ip, "single logout started");
    let mut run_cookie = session_cookie(ctx, &s);
    run_cookie.set_name(slo::COOKIE);
    run_cookie.set_value(run.id.clone());
    let jar = jar.remove(removal(session::COOKIE)).add(run_cookie);
    step(ctx, lang, run, stored, ip, jar).await
}

/// Sends the browser to the next SAML participant with an SLO endpoint; those without one
/// count as failed. With none left: the WS-Fed cleanup page (when an SP waits for our
/// answer after it), then the end.
async fn step(
    ctx: &AppContext,
    lang: &PageLang,
    mut run: Run,
    stored: Vec<u8>,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let registry = ctx.registry().await;
    while !run.queue.is_empty() {
        let p = run.queue.remove(0);
        let Some(rp) = registry.get(&p.rp).filter(|rp| rp.slo.is_some()) else {
            run.fail(&p.rp, Failure::NoEndpoint);
            continue;
        };
        match logout_request(ctx, &rp, &p, &run.session_index).await {
            Ok((request_id, out)) => {
                run.waiting = Some(Waiting {
                    rp: p.rp,
                    request_id,
                });
                saved(ctx, &run, &stored).await?;
                return Ok((jar, deliver(ctx, lang, out)).into_response());
            }
            Err(e) => {
                tracing::error!(rp = %p.rp, error = %e, "LogoutRequest could not be signed");
                run.fail(&p.rp, Failure::NotSent);
            }
        }
    }
    let sp_waits = matches!(run.initiator, Initiator::Sp { .. });
    if sp_waits && !run.cleanup.is_empty() && !run.cleanup_shown {
        let urls = cleanup_urls(&registry, &run.cleanup);
        run.cleanup_shown = true;
        saved(ctx, &run, &stored).await?;
        return Ok((jar, done_page(ctx, lang, &[], &urls, Some(CONTINUE_PATH))).into_response());
    }
    finish(ctx, lang, run, stored, ip, jar).await
}

/// Saves the advanced run; a run changed meanwhile (a doubled or replayed answer) loses.
async fn saved(ctx: &AppContext, run: &Run, stored: &[u8]) -> Result<(), WebError> {
    if slo::save(ctx.store.as_ref(), run, Some(stored))
        .await?
        .is_none()
    {
        return Err(WebError::bad_request(STALE));
    }
    Ok(())
}

/// What a user reads when a sign-out answer does not belong to a sign-out in progress.
const STALE: &str = "This sign-out step has already been completed or has expired. You are signed out of this sign-in service.";

/// The signed LogoutRequest for participant `p` (SAML core §3.7.1), for its SLO binding.
async fn logout_request(
    ctx: &AppContext,
    rp: &RelyingParty,
    p: &Participant,
    session_index: &str,
) -> Result<(String, Outbound), crate::xmldsig::sign::SignError> {
    let destination = rp.slo.as_deref().unwrap_or_default();
    let entity_id = ctx.config.entity_id();
    let (id, el) = logout::logout_request(&logout::LogoutOut {
        idp_entity_id: &entity_id,
        destination,
        name_id: &p.name_id,
        name_id_format: &p.name_id_format,
        session_index,
        now: ctx.clock.now(),
        lifetime: REQUEST_LIFETIME,
    });
    let key = &ctx.signing().await.current.signer;
    let out = logout::encode(el, Kind::Request, rp.slo_binding, destination, None, key)?;
    Ok((id, out))
}

/// The browser carries `out`: an auto-POST page or a redirect.
fn deliver(ctx: &AppContext, lang: &PageLang, out: Outbound) -> Response {
    match out {
        Outbound::Redirect(url) => Redirect::to(&url).into_response(),
        Outbound::Post { url, fields } => auto_post(ctx, lang, Errand::SignOut, &url, &fields),
    }
}

/// A LogoutResponse came back over the Redirect binding (`SAMLResponse` in the query).
pub(super) async fn answered_redirect(
    ctx: &AppContext,
    lang: &PageLang,
    raw: &str,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let incoming = request::parse_redirect_query(raw).map_err(|e| {
        tracing::warn!(reason = %e, client_ip = ip, "LogoutResponse refused");
        WebError::bad_request(e.user_message())
    })?;
    answered(ctx, lang, incoming, Binding::Redirect, ip, jar).await
}

/// The LogoutResponse to the request the run waits for: checked (`judge`), its outcome
/// noted, and on to the next participant. An answer to nothing we wait for changes nothing.
pub(super) async fn answered(
    ctx: &AppContext,
    lang: &PageLang,
    incoming: Incoming,
    binding: Binding,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let (mut run, stored) = current_run(ctx, &jar).await?;
    let Some(w) = run.waiting.clone() else {
        return Err(WebError::bad_request(STALE));
    };
    let failure = judge(ctx, &w, &incoming, binding, ip).await?;
    run.answered(failure);
    step(ctx, lang, run, stored, ip, jar).await
}

/// What the SP's answer says (`logout::accept_response`: InResponseTo, Issuer, signature
/// against its registered certificates, Destination, age): signed out, or why not; an
/// answer to another request is refused and changes nothing.
async fn judge(
    ctx: &AppContext,
    w: &Waiting,
    incoming: &Incoming,
    binding: Binding,
    ip: &str,
) -> Result<Option<Failure>, WebError> {
    let Some(rp) = ctx.registry().await.get(&w.rp) else {
        // Removed while the browser was there: nothing left to check its answer against.
        return Ok(Some(Failure::NoEndpoint));
    };
    let win = window(ctx);
    let expected = Expected {
        issuer: &w.rp,
        certs: &rp.certs,
        request_id: &w.request_id,
        window: &win,
    };
    Ok(
        match logout::accept_response(incoming, binding, &expected) {
            Err(Unaccepted::Unrelated(why)) => {
                tracing::warn!(rp = %w.rp, reason = %why, client_ip = ip, "LogoutResponse refused: not the answer we wait for");
                return Err(WebError::bad_request(STALE));
            }
            Err(Unaccepted::Untrusted(why)) => {
                tracing::warn!(rp = %w.rp, reason = %why, client_ip = ip, "LogoutResponse not trusted; the SP counts as not signed out");
                Some(Failure::Unverified)
            }
            Ok(r) if r.success() => None,
            Ok(r) => {
                tracing::info!(rp = %w.rp, status = %r.status, "SP did not sign the user out");
                Some(Failure::Refused)
            }
        },
    )
}

/// The run this browser's cookie names.
async fn current_run(ctx: &AppContext, jar: &CookieJar) -> Result<(Run, Vec<u8>), WebError> {
    let Some(cookie) = jar.get(slo::COOKIE) else {
        return Err(WebError::bad_request(STALE));
    };
    slo::load(ctx.store.as_ref(), cookie.value())
        .await?
        .ok_or_else(|| WebError::bad_request(STALE))
}

/// `GET /adfs/ls/logout/continue`: after the WS-Fed cleanup page, on to the end of the run.
pub async fn resume(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let (run, stored) = current_run(&ctx, &jar).await?;
    if run.waiting.is_some() {
        // Still waiting for an SP's answer: continuing here would skip it.
        return Err(WebError::bad_request(STALE));
    }
    step(&ctx, &lang, run, stored, &ip, jar).await
}

/// The end of a run: recorded once (compare-and-set), audited, and answered — a signed
/// LogoutResponse to the initiating SP (PartialLogout when a participant failed), or the
/// signed-out page naming the applications that could not be signed out.
async fn finish(
    ctx: &AppContext,
    lang: &PageLang,
    run: Run,
    stored: Vec<u8>,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if !slo::finish(ctx.store.as_ref(), &run, &stored).await? {
        return Err(WebError::bad_request(STALE));
    }
    audit_run(ctx, &run, ip).await;
    let jar = jar.remove(removal(slo::COOKIE));
    let registry = ctx.registry().await;
    let failed = run.failed();
    let answer = match &run.initiator {
        Initiator::Sp {
            rp,
            request_id,
            relay_state,
        } => match registry.get(rp) {
            Some(rp) => {
                let sub = (!failed.is_empty()).then_some(logout::STATUS_PARTIAL_LOGOUT);
                let rs = relay_state.as_deref();
                answer_sp(ctx, lang, &rp, request_id, rs, STATUS_SUCCESS, sub).await?
            }
            None => done_page(ctx, lang, &names(&registry, &failed), &[], None),
        },
        Initiator::User { reply } => {
            let urls = cleanup_urls(&registry, &run.cleanup);
            let failed = names(&registry, &failed);
            if urls.is_empty() && failed.is_empty() && reply.is_some() {
                return Ok((jar, Redirect::to(reply.as_deref().unwrap_or("/"))).into_response());
            }
            done_page(ctx, lang, &failed, &urls, reply.as_deref())
        }
    };
    Ok((jar, answer).into_response())
}

/// A signed LogoutResponse to `rp`'s SLO endpoint over its binding, or — for an SP without
/// one — the signed-out page.
async fn answer_sp(
    ctx: &AppContext,
    lang: &PageLang,
    rp: &RelyingParty,
    request_id: &str,
    relay_state: Option<&str>,
    status: &str,
    sub: Option<&str>,
) -> Result<Response, WebError> {
    let Some(slo) = rp.slo.as_deref() else {
        return Ok(done_page(ctx, lang, &[], &[], None));
    };
    let entity_id = ctx.config.entity_id();
    let el = logout::logout_response(&entity_id, slo, request_id, status, sub, ctx.clock.now());
    let key = &ctx.signing().await.current.signer;
    let out = logout::encode(el, Kind::Response, rp.slo_binding, slo, relay_state, key)
        .map_err(|e| WebError::internal(SIGNING_FAILED, format!("signing failed: {e}")))?;
    tracing::info!(rp = %rp.entity_id, status, sub = sub.unwrap_or("-"), "LogoutResponse sent");
    Ok(deliver(ctx, lang, out))
}

/// The display names of `rps` (the entity ID for one no longer registered).
fn names(registry: &Registry, rps: &[&str]) -> Vec<String> {
    rps.iter()
        .map(|id| {
            registry
                .get(id)
                .map_or_else(|| (*id).to_owned(), |rp| rp.display_name.clone())
        })
        .collect()
}

/// `wa=wsignoutcleanup1.0` at each WS-Fed realm's default reply URL (MS-WSFED §2.2.4).
fn cleanup_urls(registry: &Registry, realms: &[String]) -> Vec<String> {
    realms
        .iter()
        .filter_map(|realm| registry.get(realm))
        .filter(|rp| rp.protocol == Protocol::Wsfed)
        .filter_map(|rp| rp.acs.first().map(|a| cleanup_url(&a.url)))
        .collect()
}

fn cleanup_url(reply: &str) -> String {
    let joiner = if reply.contains('?') { '&' } else { '?' };
    format!("{reply}{joiner}wa=wsignoutcleanup1.0")
}

/// "You have signed out": the applications that could not be signed out, the WS-Fed cleanup
/// images (the CSP allows images from exactly their origins), and where to go on, if anywhere.
fn done_page(
    ctx: &AppContext,
    lang: &PageLang,
    failed: &[String],
    cleanup: &[String],
    next: Option<&str>,
) -> Response {
    let mut res = ctx.page(
        lang,
        "logout_done.html",
        minijinja::context! {
            title => msgid("Signed out"), failed => failed.to_vec(), cleanup => cleanup.to_vec(), next => next,
        },
    );
    let origins: Vec<String> = cleanup.iter().map(|u| form_origin(u)).collect();
    let policy = super::csp_with_images("'self'", &origins);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `GET /adfs/ls/logout`: the applications this session signed in to, and a Sign out button
/// whose form carries a CSRF token bound to the session.
pub async fn confirm_page(
    State(ctx): State<AppState>,
    lang: PageLang,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let Some(s) = live_session(&ctx, &jar).await? else {
        return Ok(done_page(&ctx, &lang, &[], &[], None));
    };
    let registry = ctx.registry().await;
    let rps: Vec<&str> = s.participants.iter().map(|p| p.rp.as_str()).collect();
    Ok(ctx.page(
        &lang,
        "logout_confirm.html",
        minijinja::context! {
            title => msgid("Sign out"),
            apps => names(&registry, &rps),
            csrf => csrf(&ctx, &s),
        },
    ))
}

fn csrf(ctx: &AppContext, s: &SsoSession) -> String {
    slo::csrf_token(&ctx.secrets.derive("slo-csrf"), &s.id)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /adfs/ls/logout`: the user's own sign-out, from everything of the session.
pub async fn confirm_submit(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    let Some(s) = live_session(&ctx, &jar).await? else {
        return Ok(done_page(&ctx, &lang, &[], &[], None));
    };
    if !crate::sessions::csrf_ok(&csrf(&ctx, &s), &form.csrf) {
        tracing::warn!(user = %s.user.username, client_ip = %ip, "sign-out form without this session's token");
        return Err(WebError::forbidden(
            "This sign-out form has expired. Open the sign-out page again.",
        ));
    }
    start(&ctx, &lang, s, Initiator::User { reply: None }, &ip, jar).await
}

/// WS-Federation sign-out (`wa=wsignout1.0`, MS-WSFED §2.2.4): the same single logout as the
/// sign-out page; at its end the browser goes to `reply` only when it is a registered reply
/// URL of a WS-Fed relying party (an open redirect otherwise).
pub(super) async fn wsfed_signout(
    ctx: &AppContext,
    lang: &PageLang,
    reply: Option<&str>,
    ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let registry = ctx.registry().await;
    // The realm whose registered reply URL this is signs itself out: it needs no cleanup.
    let owner = reply.and_then(|url| {
        registry
            .all()
            .into_iter()
            .find(|rp| rp.protocol == Protocol::Wsfed && rp.acs.iter().any(|a| a.url == url))
    });
    let reply = reply.filter(|_| owner.is_some());
    let Some(mut s) = live_session(ctx, &jar).await? else {
        let jar = jar.remove(removal(session::COOKIE));
        return Ok(match reply {
            Some(url) => (jar, Redirect::to(url)).into_response(),
            None => (jar, done_page(ctx, lang, &[], &[], None)).into_response(),
        });
    };
    if let Some(owner) = &owner {
        s.participants.retain(|p| p.rp != owner.entity_id);
    }
    let initiator = Initiator::User {
        reply: reply.map(str::to_owned),
    };
    start(ctx, lang, s, initiator, ip, jar).await
}

/// `wa=wsignoutcleanup1.0` (MS-WSFED §2.2.4): another party signs the user out and asks us
/// to end our session too; nothing is redirected anywhere and no one else is called.
pub(super) async fn wsfed_cleanup(
    ctx: &AppContext,
    lang: &PageLang,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if let Some(cookie) = jar.get(session::COOKIE)
        && let Some(s) = session::end(ctx.store.as_ref(), cookie.value()).await?
    {
        tracing::info!(user = %s.user.username, how = "wsignoutcleanup1.0", "signed out");
    }
    let jar = jar.remove(removal(session::COOKIE));
    Ok((jar, done_page(ctx, lang, &[], &[], None)).into_response())
}

/// One audit event per logout: who, who started it, which participants were signed out
/// and which not (tracing target `audit`, and the store log `slo::LOG`; not the sign-in
/// log, whose readers take every flow there for a sign-in).
async fn audit_run(ctx: &AppContext, run: &Run, ip: &str) {
    let initiator = match &run.initiator {
        Initiator::Sp { rp, .. } => rp.clone(),
        Initiator::User { .. } => "user".to_owned(),
    };
    let failed = run.failed();
    let reason = format!(
        "initiator={initiator}; signed_out={:?}; failed={:?}; wsfed_cleanup={:?}",
        run.succeeded(),
        failed,
        run.cleanup
    );
    let outcome = if failed.is_empty() {
        crate::audit::Outcome::Success
    } else {
        crate::audit::Outcome::Failure
    };
    audit(
        ctx,
        &run.user,
        &initiator,
        ip,
        "signed_out",
        outcome,
        reason,
    )
    .await;
}

/// The audit event of a LogoutRequest that did not name the session (nothing ended).
async fn audit_refusal(ctx: &AppContext, s: &SsoSession, rp: &str, ip: &str, why: &str) {
    if !crate::audit::refusal_budget(ctx.store.as_ref(), "logout", ip, ctx.clock.unix()).await {
        return;
    }
    let outcome = crate::audit::Outcome::Failure;
    audit(
        ctx,
        &s.user.username,
        rp,
        ip,
        "refused",
        outcome,
        why.to_owned(),
    )
    .await;
}

async fn audit(
    ctx: &AppContext,
    user: &str,
    rp: &str,
    ip: &str,
    to: &str,
    outcome: crate::audit::Outcome,
    reason: String,
) {
    let id = crate::saml::random_hex(8);
    let event = crate::audit::AuditEvent {
        at: crate::saml::saml_time(ctx.clock.now()),
        flow: &id,
        user: Some(user),
        rp,
        client_ip: ip,
        from: "logout",
        to,
        method: None,
        outcome,
        reason: Some(reason),
    };
    if let Some(json) = crate::audit::record(&event) {
        let at_ms = ctx.clock.unix().saturating_mul(1000);
        let kept = crate::audit::RETENTION;
        let stored = ctx
            .store
            .append(slo::LOG, at_ms, json.as_bytes(), kept)
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "logout audit event not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::directory::UserInfo;
    use crate::login::AuthMethod;

    /// A state with one WS-Fed relying party, `urn:app` (reply `https://app.example/`).
    async fn state(dir: &std::path::Path) -> AppState {
        let mut config = crate::config::Config::default();
        config.server.data_dir = dir.join("data");
        config.metadata_dir = dir.join("metadata");
        std::fs::create_dir_all(&config.metadata_dir).expect("metadata dir");
        config.relying_parties.push(crate::rp::RpConfig {
            name: Some("App".into()),
            entity_id: Some("urn:app".into()),
            acs: vec!["https://app.example/".into()],
            protocol: Some(Protocol::Wsfed),
            ..Default::default()
        });
        crate::startup::build(config, Arc::new(crate::clock::SystemClock))
            .await
            .expect("state")
            .0
    }

    /// A saved session (with the WS-Fed RP as participant when `wsfed`) and its cookie.
    async fn signed_in(ctx: &AppContext, wsfed: bool) -> (String, CookieJar) {
        let user = UserInfo {
            username: "alice".into(),
            ..Default::default()
        };
        let now = ctx.clock.unix();
        let mut s = session::start(user, vec![AuthMethod::Password], now, now, 3600);
        if wsfed {
            s.remember(Participant {
                rp: "urn:app".into(),
                protocol: Protocol::Wsfed,
                name_id: "alice@corp.example".into(),
                name_id_format: crate::rp::NAMEID_UNSPECIFIED.into(),
            });
        }
        session::save(ctx.store.as_ref(), &s, now)
            .await
            .expect("save");
        let jar = CookieJar::new().add(Cookie::new(session::COOKIE, s.id.clone()));
        (s.id, jar)
    }

    async fn body(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `wsignout1.0` runs the same single logout: the session ends, the WS-Fed participant
    /// gets its cleanup image, and the browser goes on only to a registered reply URL.
    #[tokio::test]
    async fn ws_fed_sign_out_cleans_up_and_replies_only_to_a_registered_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = state(dir.path()).await;
        let lang = PageLang::default();
        let live = |id: String| {
            let ctx = ctx.clone();
            async move { session::load(ctx.store.as_ref(), &id, ctx.clock.unix()).await }
        };

        let (id, jar) = signed_in(&ctx, true).await;
        let evil = Some("https://evil.example/");
        let res = wsfed_signout(&ctx, &lang, evil, "192.0.2.7", jar)
            .await
            .expect("page");
        assert_eq!(res.status(), axum::http::StatusCode::OK);
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(
            csp.contains("img-src 'self' data: https://app.example;"),
            "{csp}"
        );
        let page = body(res).await;
        assert!(page.contains("wa=wsignoutcleanup1.0"), "{page}");
        assert!(
            !page.contains("evil.example"),
            "a foreign wreply is not followed"
        );
        assert_eq!(live(id).await.expect("load"), None, "the session ended");

        // The realm whose reply URL it is signs itself out: no cleanup for it, straight back.
        let (id, jar) = signed_in(&ctx, true).await;
        let reply = Some("https://app.example/");
        let res = wsfed_signout(&ctx, &lang, reply, "192.0.2.7", jar)
            .await
            .expect("redirect");
        assert_eq!(res.status(), axum::http::StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[header::LOCATION], "https://app.example/");
        assert_eq!(live(id).await.expect("load"), None, "the session ended");

        let (_, jar) = signed_in(&ctx, false).await;
        let res = wsfed_signout(&ctx, &lang, reply, "192.0.2.7", jar)
            .await
            .expect("redirect");
        assert_eq!(res.status(), axum::http::StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[header::LOCATION], "https://app.example/");
    }

    /// MS-WSFED §2.2.4: the cleanup goes to the realm's reply URL, its own query kept.
    #[test]
    fn ws_fed_cleanup_is_asked_at_the_reply_url() {
        assert_eq!(
            cleanup_url("https://app.example/"),
            "https://app.example/?wa=wsignoutcleanup1.0"
        );
        assert_eq!(
            cleanup_url("https://app.example/_trust/?tenant=a"),
            "https://app.example/_trust/?tenant=a&wa=wsignoutcleanup1.0"
        );
    }
}
