//! The portal's phone and push pages: start a confirmation through `mfa::delivery`, then the page that waits for the typed code, the answered call or the approved push.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Done, Portal, PortalForm, What, field, finish, log};
use crate::mfa::delivery::{Channel, Sender};
use crate::mfa::live::Policy;
use crate::mfa::registration::PhoneKind;
use crate::portal::PortalError;
use crate::portal::actions::Deps;
use crate::portal::devices::{self, Progress};
use crate::portal::session::Setup;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp, PageLang};

/// What `mfa::delivery` needs, from the context and the policy in force; what reaches the
/// phone is in the portal page's language.
fn sender<'a>(ctx: &'a AppContext, policy: &'a Policy, lang: &PageLang) -> Sender<'a> {
    Sender {
        gateway: policy.gateway.as_ref(),
        store: ctx.store.as_ref(),
        tokens: &ctx.tokens,
        secrets: &ctx.secrets,
        mfa: &policy.mfa,
        now: ctx.clock.unix(),
        public_base: ctx.config.public_base(),
        display_name: &ctx.config.idp.display_name,
        lang: lang.lang,
        catalogue: &ctx.catalogue,
    }
}

fn deps<'a>(ctx: &'a AppContext, policy: &'a Policy) -> Deps<'a> {
    Deps {
        store: ctx.store.as_ref(),
        secrets: &ctx.secrets,
        mfa: &policy.mfa,
        now: ctx.clock.unix(),
    }
}

/// POST /portal/phone: texts a code to (`channel=sms`) or calls (`channel=call`) the number,
/// to replace `replaces` if given; then the page that confirms it.
pub(super) async fn phone_start(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(mut p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let channel = match field(&form, "channel") {
        "call" => Channel::Call,
        _ => Channel::Text,
    };
    let kind = match field(&form, "kind") {
        "office" => PhoneKind::Office,
        _ => PhoneKind::Mobile,
    };
    let replaces = Some(field(&form, "replaces").to_owned()).filter(|r| !r.is_empty());
    let (number, s) = (field(&form, "number"), sender(&ctx, &policy, &lang));
    match devices::start_phone(&s, &mut p.session, number, channel, kind, replaces).await {
        Ok(()) => {
            p.save(&ctx).await?;
            Ok(Redirect::to("/portal/phone").into_response())
        }
        Err(e) => {
            finish(
                &ctx,
                &lang,
                &p,
                &ip,
                What::new("portal.add_phone", Some(channel.method().as_str())),
                Err(e),
            )
            .await
        }
    }
}

/// GET /portal/phone: the code form (text) or "I answered the call" (call).
pub(super) async fn phone_page(
    State(ctx): State<AppState>,
    lang: PageLang,
    p: Portal,
) -> Result<Response, WebError> {
    render_phone(&ctx, &lang, &p, None).await
}

async fn render_phone(
    ctx: &AppContext,
    lang: &PageLang,
    p: &Portal,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let Some(Setup::Phone {
        number, challenge, ..
    }) = &p.session.setup
    else {
        return Ok(Redirect::to("/portal").into_response());
    };
    let call = crate::mfa::challenge::load(ctx.store.as_ref(), challenge)
        .await?
        .is_some_and(|c| c.method == crate::mfa::Method::Call);
    let res = ctx.page(
        lang,
        "portal_phone.html",
        minijinja::context! {
            title => crate::i18n::msgid("Add a phone number"), csrf => p.session.csrf.clone(),
            phone => crate::mfa::mask_phone(number), call => call, error => error,
        },
    );
    Ok(super::form_page(res, error))
}

/// POST /portal/phone/confirm: the texted code, or the answered call; registers the number.
pub(super) async fn phone_confirm(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(mut p, form): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let d = deps(&ctx, &policy);
    let result = devices::confirm_phone(&d, &mut p.session, field(&form, "code")).await;
    p.save(&ctx).await?;
    let what = What::new("portal.add_phone", Some("sms"));
    match result {
        // Not yet: the same page again, to type the next code or answer the call.
        Err(PortalError::Refused(m)) if p.session.setup.is_some() => {
            log(&ctx, &p, &ip, what, Err(m)).await?;
            render_phone(&ctx, &lang, &p, Some(m)).await
        }
        other => finish(&ctx, &lang, &p, &ip, what, other.map(|_| Done::Phone)).await,
    }
}

/// POST /portal/push: a first notification to a new topic; then the page that waits for it.
pub(super) async fn push_start(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    PortalForm(mut p, _): PortalForm,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    match devices::start_push(&sender(&ctx, &policy, &lang), &mut p.session).await {
        Ok(()) => {
            p.save(&ctx).await?;
            Ok(Redirect::to("/portal/push").into_response())
        }
        Err(e) => {
            finish(
                &ctx,
                &lang,
                &p,
                &ip,
                What::new("portal.add_push", Some("push")),
                Err(e),
            )
            .await
        }
    }
}

/// GET /portal/push: the topic to subscribe to; "Check again" (a plain link, no script) looks
/// again, and an approved notification registers the device. No timed meta refresh: a page
/// that reloads itself every few seconds interrupts screen readers (WCAG 2.2.1, axe-core's
/// critical `meta-refresh`).
pub(super) async fn push_page(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: PageLang,
    mut p: Portal,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let result = devices::poll_push(&deps(&ctx, &policy), &mut p.session).await;
    let topic = match &p.session.setup {
        Some(Setup::Push { topic, .. }) => topic.clone(),
        _ => String::new(),
    };
    p.save(&ctx).await?;
    let what = What::new("portal.add_push", Some("push"));
    match result {
        Ok(Progress::Waiting) => Ok(ctx.page(
            &lang,
            "portal_push.html",
            minijinja::context! {
                title => crate::i18n::msgid("Add a device for notifications"), topic => topic,
                push_server => policy.mfa.gateway.push_server_url(ctx.config.public_base()),
            },
        )),
        other => finish(&ctx, &lang, &p, &ip, what, other.map(|_| Done::Push)).await,
    }
}
