//! The WS-Federation passive requestor endpoint (`/adfs/ls/?wa=…`, MS-WSFED §2.2): sign-in
//! through the same login flow, MFA and SSO session as SAML, answered with an auto-POSTed
//! RSTR; sign-out and cleanup through `logout.rs`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::error::WebError;
use super::saml::Errand;
use super::{AppContext, AppState, ClientIp, PageLang};
use crate::audit::{self, AuditEvent, Outcome};
use crate::login::session::{self, Participant, SsoSession};
use crate::login::{Flow, Pending, WsFedPending, authn_context};
use crate::rp::name_id::NameIdError;
use crate::rp::{Protocol, RelyingParty};
use crate::saml::response::{Issue, Recipient};
use crate::wsfed::request::{self, SignIn, WsFedRequest};
use crate::wsfed::token;

/// The page of a request whose realm we do not know (or know only as a SAML trust).
const UNKNOWN_REALM: &str =
    "The application that sent you here is not registered with this sign-in service.";
/// The page of a `wreply` that is not one of the application's registered reply URLs.
const FOREIGN_REPLY: &str =
    "The application asked to send your sign-in to an address that is not registered.";

/// `POST /adfs/ls/`: a WS-Federation request in a form body (MS-WSFED §2.2 allows POST),
/// or else the SAML POST binding, handed on untouched with the body as read.
pub(super) async fn sso_post(
    State(ctx): State<AppState>,
    lang: PageLang,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    parts: Parts,
    body: Bytes,
) -> Response {
    let saml = form_urlencoded::parse(&body).any(|(k, _)| k == "SAMLRequest");
    if !saml && request::is_wsfed(&body) {
        return passive(&ctx, &lang, &ip, jar, &body).await.into_response();
    }
    let req = Request::from_parts(parts, Body::from(body));
    super::saml::sso_post.call(req, ctx).await
}

/// A passive request (query of a GET, body of a POST): read strictly, then sign in, sign
/// out or clean up.
pub(super) async fn passive(
    ctx: &AppContext,
    lang: &PageLang,
    ip: &str,
    jar: CookieJar,
    input: &[u8],
) -> Result<Response, WebError> {
    let req = match request::parse(input) {
        Ok(req) => req,
        Err(e) => return Err(refuse(ctx, ip, "-", &e.to_string(), e.user_message()).await),
    };
    match req {
        WsFedRequest::SignIn(s) => sign_in(ctx, lang, ip, jar, s).await,
        WsFedRequest::SignOut { reply } => {
            super::logout::wsfed_signout(ctx, lang, reply.as_deref(), ip, jar).await
        }
        WsFedRequest::SignOutCleanup => super::logout::wsfed_cleanup(ctx, lang, jar).await,
    }
}

/// `wsignin1.0`: the realm must be a WS-Fed trust and `wreply` one of its registered reply
/// URLs, compared exactly (MS-WSFED §2.2.3; no normalising, so no look-alike or re-encoded
/// address can pass). A live session answers at once unless `wfresh` asks for a newer one.
async fn sign_in(
    ctx: &AppContext,
    lang: &PageLang,
    ip: &str,
    jar: CookieJar,
    s: SignIn,
) -> Result<Response, WebError> {
    let rp = wsfed_rp(ctx, &s.realm, ip).await?;
    let reply = match s.reply.as_deref() {
        None => rp.acs.first(),
        Some(url) => rp.acs.iter().find(|a| a.url == url),
    };
    let Some(reply) = reply.map(|a| a.url.clone()) else {
        let asked = audit::shorten(&s.reply.unwrap_or_default(), 200);
        let detail = format!("wreply {asked:?} is not registered for this realm");
        return Err(refuse(ctx, ip, &rp.entity_id, &detail, FOREIGN_REPLY).await);
    };
    tracing::info!(rp = %rp.entity_id, reply = %reply, fresh = ?s.fresh, home_realm = ?s.home_realm, client_ip = ip, "WS-Federation sign-in accepted");
    let pending = WsFedPending {
        realm: rp.entity_id.clone(),
        reply,
        context: s.context,
        fresh: s.fresh,
    };
    let now = ctx.clock.unix();
    if let Some(cookie) = jar.get(session::COOKIE)
        && let Some(sess) = session::load(ctx.store.as_ref(), cookie.value(), now).await?
        && fresh_enough(&sess, pending.fresh, now)
    {
        return issue(ctx, lang, &pending, sess, jar).await;
    }
    super::login::begin(ctx, Flow::new(Pending::WsFed(pending), ip, now), jar).await
}

/// `wfresh` (MS-WSFED §2.2.3): the longest time, in minutes, since the user last typed a
/// password that the RP accepts; 0 always asks again.
fn fresh_enough(s: &SsoSession, fresh: Option<u32>, now: i64) -> bool {
    match fresh {
        None => true,
        Some(0) => false,
        Some(minutes) => now - s.authn_instant <= i64::from(minutes) * 60,
    }
}

/// The enabled WS-Fed trust for `realm`, or the refusal (a SAML trust's entity ID is no
/// realm: it never agreed to receive RSTRs).
async fn wsfed_rp(ctx: &AppContext, realm: &str, ip: &str) -> Result<Arc<RelyingParty>, WebError> {
    let rp = ctx.registry().await.get(realm);
    match rp.filter(|rp| rp.protocol == Protocol::Wsfed) {
        Some(rp) => Ok(rp),
        None => {
            let detail = format!(
                "unknown WS-Federation realm {:?}",
                audit::shorten(realm, 200)
            );
            Err(refuse(ctx, ip, realm, &detail, UNKNOWN_REALM).await)
        }
    }
}

/// What the user reads when the trust's NameID cannot be made for them.
const NO_NAME_ID: &str =
    "Your account lacks the attribute this application identifies you by. Contact your help desk.";

/// Builds, signs and auto-POSTs the RSTR for an authenticated session (`wa`, `wresult`,
/// `wctx`: MS-WSFED §2.2.4); records the RP in the session with the NameID it gets.
pub(super) async fn issue(
    ctx: &AppContext,
    lang: &PageLang,
    pending: &WsFedPending,
    mut s: SsoSession,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let rp = wsfed_rp(ctx, &pending.realm, "-").await?;
    let now = ctx.clock.now();
    let mut recipient = rp.recipient(&s.user);
    // WS-Fed has no NameIDPolicy: the trust's configured NameID, resolved as for SAML.
    let name_id = super::saml::name_id_for(ctx, &s, &rp, None)
        .await
        .map_err(|e| match e {
            NameIdError::Store(e) => WebError::from(e),
            NameIdError::Policy(e) => {
                tracing::warn!(user = %s.user.username, rp = %rp.entity_id, reason = %e, "no NameID for a WS-Federation token");
                WebError::forbidden(NO_NAME_ID)
            }
        })?;
    if let Some(n) = name_id {
        n.apply(&mut recipient);
        s.remember(Participant {
            rp: rp.entity_id.clone(),
            protocol: Protocol::Wsfed,
            name_id: n.value,
            name_id_format: n.format,
        });
    }
    session::save(ctx.store.as_ref(), &s, now.unix_timestamp()).await?;
    let jar = jar.add(super::saml::session_cookie(ctx, &s));
    let xml = rstr(ctx, &rp, pending, &recipient, &s, now).await?;
    tracing::info!(user = %s.user.username, rp = %rp.entity_id, reply = %pending.reply, token = rp.token.name(), "WS-Federation token issued");
    let mut fields = vec![("wa", "wsignin1.0".to_owned()), ("wresult", xml)];
    if let Some(c) = &pending.context {
        fields.push(("wctx", c.clone()));
    }
    let page = super::saml::auto_post(ctx, lang, Errand::SignIn, &pending.reply, &fields);
    Ok((jar, page).into_response())
}

/// The signed RSTR with the RP's token type; the claims are the RP's claim rules, as for
/// SAML. The reply URL is the SAML 2.0 Recipient; there is no request to answer.
async fn rstr(
    ctx: &AppContext,
    rp: &RelyingParty,
    pending: &WsFedPending,
    recipient: &Recipient,
    s: &SsoSession,
    now: time::OffsetDateTime,
) -> Result<String, WebError> {
    let idp = &ctx.config.idp;
    let entity_id = ctx.config.entity_id();
    let class = authn_context::choose(None, rp.authn_context, &s.methods)
        .unwrap_or_else(|| crate::saml::AC_PASSWORD_PROTECTED.to_owned());
    let signing = ctx.signing().await;
    let started = std::time::Instant::now();
    let xml = token::issue(
        &Issue {
            idp_entity_id: &entity_id,
            sp: recipient,
            acs_url: &pending.reply,
            in_response_to: None,
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
        rp.token,
        &signing.current.signer,
    );
    ctx.metrics.signed(started.elapsed());
    xml.map_err(super::saml::not_issued)
}

/// A refused WS-Federation request: never a token, only a page; the detail goes to the log
/// and an audit event (`wsfed_request` → `denied`, an attempt of its own in the console's
/// sign-in log). A store that cannot take the event does not change the answer.
async fn refuse(
    ctx: &AppContext,
    ip: &str,
    realm: &str,
    detail: &str,
    message: &'static str,
) -> WebError {
    let realm = audit::shorten(realm, 200);
    tracing::warn!(reason = detail, client_ip = ip, rp = %realm, "WS-Federation request refused");
    let flow = format!("wsfed-{}", crate::saml::random_hex(8));
    let event = AuditEvent {
        at: crate::saml::saml_time(ctx.clock.now()),
        flow: &flow,
        user: None,
        rp: &realm,
        client_ip: ip,
        from: "wsfed_request",
        to: "denied",
        method: None,
        outcome: Outcome::Failure,
        reason: Some(detail.to_owned()),
    };
    let (store, now) = (ctx.store.as_ref(), ctx.clock.unix());
    if !audit::refusal_budget(store, "wsfed", ip, now).await {
        audit::record(&event);
    } else if let Err(e) = audit::persist_one(store, &event, now).await {
        tracing::error!(error = %e, "refused WS-Federation request not written to the sign-in log");
    }
    WebError::bad_request(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wfresh_bounds_the_age_of_the_sign_in() {
        let s = session::start(Default::default(), Vec::new(), 1_000, 1_000, 3600);
        assert!(fresh_enough(&s, None, 5_000));
        assert!(!fresh_enough(&s, Some(0), 1_000));
        assert!(fresh_enough(&s, Some(10), 1_600));
        assert!(!fresh_enough(&s, Some(10), 1_601));
    }
}
