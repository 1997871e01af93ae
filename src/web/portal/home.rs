//! The portal's session and its one page: signing in through the login flow (always with a second factor), the page listing methods, settings and recent sign-ins, signing out.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::Value;
use serde::Deserialize;

use super::{Done, Portal, PortalForm, require};
use crate::audit::Outcome;
use crate::directory::UserInfo;
use crate::i18n::msgid;
use crate::login::{AuthMethod, Flow, Pending};
use crate::mfa::registration::{self, Registration, TokenKind, directory_phones};
use crate::mfa::settings::OathKind;
use crate::mfa::{Method, mask_phone};
use crate::portal::session::{self, COOKIE, PortalSession};
use crate::portal::{self, Entry, actions, history};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp, PageLang};

#[derive(Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

/// GET /portal: the page, or — without a live session — a sign-in that always asks for the
/// second factor.
pub(super) async fn page(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    Query(q): Query<DoneQuery>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if jar.get(COOKIE).is_some()
        && let Ok(p) = require(&ctx, &jar).await
    {
        let done = q.done.as_deref().and_then(Done::parse);
        return Ok(lang.remembered(render(&ctx, &lang, &p, Ok(done)).await?));
    }
    let flow = Flow::new(Pending::Portal, &ip, ctx.clock.unix());
    let jar = jar.remove(Cookie::build(COOKIE).path("/portal"));
    crate::web::login::begin(&ctx, flow, jar).await
}

/// The portal page with `notice`: what was just done, or why an action was refused.
pub(super) async fn render(
    ctx: &AppContext,
    lang: &PageLang,
    p: &Portal,
    notice: Result<Option<Done>, &'static str>,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let mfa = &policy.mfa;
    let questions_on = mfa.methods.contains(&Method::Questions);
    let reg = registration::load(ctx.store.as_ref(), &p.session.user).await?;
    let attempts = history::recent(ctx.store.as_ref(), &p.session.user, ctx.clock.unix()).await?;
    let usable: Vec<&str> = mfa
        .methods
        .iter()
        .filter(|m| reg.has_method_material_with(**m, &p.session.directory_phones))
        .map(|m| m.as_str())
        .collect();
    let (done, error) = match notice {
        Ok(d) => (d.map(Done::message), None),
        Err(m) => (None, Some(m)),
    };
    let res = ctx.page(lang, "portal_home.html", minijinja::context! {
        title => crate::i18n::msgid("My sign-in methods"), user => p.session.display.clone(),
        csrf => p.session.csrf.clone(), methods => method_rows(&reg, &p.session, questions_on),
        default => reg.default_method.map(Method::as_str), usable => usable,
        allow_choice => mfa.allow_method_choice, pin_mode => mfa.pin_mode, has_pin => reg.pin_hash.is_some(),
        allow_bypass => mfa.allow_bypass && mfa.allow_self_bypass, bypass_max => actions::BYPASS_MAX_MINUTES,
        offer_app => mfa.apps_allowed(), offer_sms => mfa.methods.contains(&Method::Sms), offer_call => mfa.methods.contains(&Method::Call),
        offer_push => mfa.methods.contains(&Method::Push), blocked => reg.is_blocked(ctx.clock.unix()),
        offer_hardware => mfa.methods.contains(&Method::Oath) && mfa.oath_tokens.contains(&OathKind::Hardware),
        questions_on => questions_on, answers_set => !reg.security_answers.is_empty(),
        attempts => attempt_rows(&attempts), days => history::DAYS, done => done, error => error,
    });
    Ok(super::form_page(res, error))
}

/// Every method the user has, whatever its kind, with what removing it takes; the template
/// renders any row. Security answers are a row (while the method is on), never shown.
fn method_rows(reg: &Registration, s: &PortalSession, questions_on: bool) -> Vec<Value> {
    let row = |kind: &str, label: &str, detail: String, remove: Option<(&str, String)>| {
        let (remove_kind, remove_id) = remove.unzip();
        minijinja::context! { kind => kind, label => label, detail => detail, remove_kind => remove_kind, remove_id => remove_id }
    };
    let mut rows = Vec::new();
    for t in &reg.tokens {
        rows.push(match &t.kind {
            TokenKind::App => row(
                "app",
                msgid("Authenticator app"),
                String::new(),
                Some(("token", t.id.clone())),
            ),
            // The label is "<model> <serial>", as the inventory named it at activation.
            TokenKind::Hardware { serial } => {
                let detail = if t.label.is_empty() { serial } else { &t.label };
                row("hardware", msgid("Hardware token"), detail.clone(), None)
            }
        });
    }
    for d in &reg.push_devices {
        rows.push(row(
            "push",
            msgid("Mobile app notification"),
            d.label.clone(),
            Some(("push", d.id.clone())),
        ));
    }
    for ph in reg.all_phones(&s.directory_phones) {
        let own = ph.source == registration::PhoneSource::Enrolled;
        let remove = own.then(|| ("phone", ph.number.clone()));
        rows.push(row("phone", msgid("Phone"), mask_phone(&ph.number), remove));
    }
    if questions_on && !reg.security_answers.is_empty() {
        let detail = msgid("Answers set");
        rows.push(row(
            "questions",
            msgid("Security questions"),
            detail.into(),
            None,
        ));
    }
    rows
}

fn attempt_rows(attempts: &[crate::admin::signins::Attempt]) -> Vec<Value> {
    attempts
        .iter()
        .map(|a| {
            let portal = history::is_portal_session(a);
            // The last portal action, not a late answer from a phone noted after it.
            let what = a
                .events
                .iter()
                .rev()
                .find(|e| e.from != crate::audit::FROM_PHONE)
                .map(|e| e.to.clone())
                .unwrap_or_default();
            minijinja::context! {
                flow => a.flow.clone(), at => a.started.clone(), rp => a.rp.clone(), ip => a.client_ip.clone(),
                result => a.result.as_str(), methods => a.methods.join(", "), portal => portal,
                what => if portal { what } else { String::new() },
            }
        })
        .collect()
}

/// Ends a sign-in flow made for the portal: a session of its own, only after a second
/// factor (a password alone never changes the second factor).
pub async fn signed_in(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
    client_ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if !methods.iter().any(|m| m.is_second_factor()) {
        tracing::warn!(user = %user.username, "portal refused: no second factor");
        return Err(WebError::forbidden(
            "The portal needs a second factor. Go back to the portal and sign in again.",
        ));
    }
    let (s, token) = start(ctx, user, methods, client_ip).await?;
    let entry = Entry {
        action: "portal.sign_in",
        method: None,
        outcome: Outcome::Success,
        reason: None,
    };
    portal::record(ctx.store.as_ref(), &s, client_ip, ctx.clock.unix(), entry).await?;
    let cookie = Cookie::build((COOKIE, token))
        .path("/portal")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(SameSite::Strict)
        .build();
    Ok((jar.add(cookie), Redirect::to("/portal")).into_response())
}

/// Stores a new portal session; the session and its cookie token.
async fn start(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
    client_ip: &str,
) -> Result<(PortalSession, String), WebError> {
    let policy = ctx.policy().await;
    let mfa = &policy.mfa;
    let s = PortalSession {
        id: crate::saml::random_hex(16),
        user: user.username.clone(),
        account: user.upn.clone().unwrap_or_else(|| user.username.clone()),
        display: user
            .display_name
            .clone()
            .or_else(|| user.upn.clone())
            .unwrap_or_else(|| user.username.clone()),
        csrf: crate::saml::random_hex(32),
        started: ctx.clock.unix(),
        methods: methods.to_vec(),
        client_ip: client_ip.to_owned(),
        directory_phones: directory_phones(user, &mfa.phone_attributes, &mfa.default_country_code),
        setup: None,
    };
    let token = session::start(ctx.store.as_ref(), &ctx.config.portal, &s).await?;
    Ok((s, token))
}

/// POST /portal/signout: the session ends here and on every node.
pub(super) async fn signout(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    jar: CookieJar,
    PortalForm(p, _): PortalForm,
) -> Result<Response, WebError> {
    session::end(ctx.store.as_ref(), &p.token).await?;
    let entry = Entry {
        action: "portal.sign_out",
        method: None,
        outcome: Outcome::Success,
        reason: None,
    };
    portal::record(ctx.store.as_ref(), &p.session, &ip, ctx.clock.unix(), entry).await?;
    let jar = jar.remove(Cookie::build(COOKIE).path("/portal"));
    let page = ctx.page(
        &lang,
        "portal_signed_out.html",
        minijinja::context! {
            title => crate::i18n::msgid("Signed out"),
        },
    );
    Ok((jar, page).into_response())
}
