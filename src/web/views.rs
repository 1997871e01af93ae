//! One template per login state: turns a `Flow` into its page.

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;

use super::error::WebError;
use super::{AppContext, PageLang};
use crate::i18n::msgid;
use crate::login::enroll_aad;
use crate::login::{Flow, LoginState, Pending, PendingEnrollment, SecondFactor, SecondFactorRule};
use crate::mfa::live::Policy;
use crate::mfa::{Method, oath};

/// States whose page waits for an answer given elsewhere (a GET of it polls; see `web::wait`).
pub fn is_waiting(state: &LoginState) -> bool {
    match state {
        LoginState::AwaitSecondFactor(w) => w.challenge.is_some() && w.deadline.is_some(),
        LoginState::Enroll {
            pending: Some(PendingEnrollment::Push { .. }),
            ..
        } => true,
        _ => false,
    }
}

/// What every sign-in page shows around its form: whom the user signs in to, and where.
struct Frame {
    rp_name: String,
    idp_name: String,
    policy: std::sync::Arc<Policy>,
}

/// What the sign-in is for, as its pages name it: the application (by the display name an
/// admin gave it, else its trust's name), the console or the portal.
async fn app_name(ctx: &AppContext, request: &Pending) -> String {
    let rp = match request {
        Pending::Saml(p) => &p.rp_entity_id,
        Pending::WsFed(p) => &p.realm,
        Pending::AdminConsole => return "Tessera admin console".to_owned(),
        Pending::Portal => return "Tessera portal".to_owned(),
    };
    ctx.registry()
        .await
        .get(rp)
        .map(|rp| rp.display_name.clone())
        .unwrap_or_default()
}

/// The flow's page in `lang`. Messages in the state are English (the catalogue's ids); the
/// templates translate them.
pub async fn render(ctx: &AppContext, lang: &PageLang, flow: &Flow) -> Result<Response, WebError> {
    let frame = Frame {
        rp_name: app_name(ctx, &flow.request).await,
        idp_name: ctx.config.idp.display_name.clone(),
        policy: ctx.policy().await,
    };
    Ok(match &flow.state {
        LoginState::AwaitPassword { login, message, .. } => {
            let mut res = ctx.page(
                lang,
                "login.html",
                minijinja::context! {
                    title => msgid("Sign in"), flow => flow.id.clone(), login => login, message => message,
                    rp_name => frame.rp_name.clone(), idp_name => frame.idp_name.clone(),
                    sign_in_notice => true,
                },
            );
            if message.is_some() {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            res
        }
        LoginState::AwaitSecondFactor(w) => second_factor(ctx, lang, flow, w, &frame),
        LoginState::ChooseMethod { user, message, .. } => {
            choose(ctx, lang, flow, user, message, &frame).await?
        }
        LoginState::SetPin {
            message, renewing, ..
        } => {
            let mfa = &frame.policy.mfa;
            ctx.page(lang, "mfa_pin.html", minijinja::context! {
                title => msgid("Choose a PIN – Sign in"), flow => flow.id.clone(), message => message, renewing => renewing,
                min_length => mfa.pin_min_length, max_length => crate::mfa::pin::MAX_LEN,
                refuse_weak => mfa.pin_refuse_weak, rp_name => frame.rp_name.clone(), idp_name => frame.idp_name.clone(),
            })
        }
        LoginState::Enroll {
            user,
            pending,
            message,
        } => enroll(ctx, lang, flow, user, pending.as_ref(), message, &frame),
        LoginState::Denied { message } => {
            return Err(WebError::forbidden(message.clone()));
        }
        LoginState::Authenticated { .. } => {
            return Err(WebError::refused(
                StatusCode::CONFLICT,
                "This sign-in is already complete. Go back to the application.",
            ));
        }
    })
}

/// Waiting for a push, call or text, or asking for a code.
fn second_factor(
    ctx: &AppContext,
    lang: &PageLang,
    flow: &Flow,
    w: &SecondFactor,
    frame: &Frame,
) -> Response {
    let SecondFactor {
        user,
        method,
        deadline,
        destination,
        number,
        message,
        challenge,
        ..
    } = w;
    let waiting = challenge.is_some()
        && deadline.is_some()
        && *method != Method::Oath
        && !(*method == Method::Sms
            && frame.policy.mfa.sms_mode == crate::mfa::settings::SmsMode::OneWay);
    let template = if waiting {
        "mfa_wait.html"
    } else if *method == Method::Questions {
        "mfa_questions.html"
    } else {
        "mfa_code.html"
    };
    let now = ctx.clock.unix();
    let mut res = ctx.page(lang, template, minijinja::context! {
        title => second_factor_title(*method, waiting), flow => flow.id.clone(), user => user.upn.clone().unwrap_or(user.username.clone()),
        method => method.as_str(), destination => destination, number => number, message => message,
        remaining => deadline.map(|d| (d - now).max(0)), asked => w.asked.clone(), rp_name => frame.rp_name.clone(), idp_name => frame.idp_name.clone(),
    });
    if message.is_some() {
        *res.status_mut() = StatusCode::UNAUTHORIZED;
    }
    if waiting {
        res = super::wait::live_page(res);
    }
    res
}

/// The second-factor page's title: the step the user is on, then "Sign in" (WCAG 2.4.2).
fn second_factor_title(method: Method, waiting: bool) -> &'static str {
    match (method, waiting) {
        (Method::Push, true) => msgid("Approve the sign-in – Sign in"),
        (Method::Call, true) => msgid("Answer the call – Sign in"),
        (_, true) => msgid("Reply to the text – Sign in"),
        (Method::Questions, false) => msgid("Answer your security questions – Sign in"),
        (_, false) => msgid("Enter your code – Sign in"),
    }
}

/// "Use a different verification option": the user's methods to choose from.
async fn choose(
    ctx: &AppContext,
    lang: &PageLang,
    flow: &Flow,
    user: &crate::directory::UserInfo,
    message: &Option<String>,
    frame: &Frame,
) -> Result<Response, WebError> {
    let deps = ctx.deps(&frame.policy, SecondFactorRule::Required);
    let options: Vec<Value> = crate::login::chooser(&deps, user)
        .await?
        .into_iter()
        .map(|o| minijinja::context! { method => o.method.as_str(), label => o.label, phone => o.phone })
        .collect();
    Ok(ctx.page(lang, "mfa_choose.html", minijinja::context! {
        title => msgid("Choose a verification option – Sign in"), flow => flow.id.clone(), message => message, options => options,
        offer_make_default => frame.policy.mfa.allow_method_choice, rp_name => frame.rp_name.clone(), idp_name => frame.idp_name.clone(),
    }))
}

/// Setting up a method: the offer, then the app's QR code, the phone or the push device.
fn enroll(
    ctx: &AppContext,
    lang: &PageLang,
    flow: &Flow,
    user: &crate::directory::UserInfo,
    pending: Option<&PendingEnrollment>,
    message: &Option<String>,
    frame: &Frame,
) -> Response {
    let account = user.upn.clone().unwrap_or(user.username.clone());
    let (step, qr, secret_text) = match pending {
        None => ("offer", None, None),
        Some(PendingEnrollment::App { secret }) => app_step(ctx, flow, secret, &account, frame),
        Some(PendingEnrollment::Phone { .. }) => ("phone", None, None),
        Some(PendingEnrollment::Push { .. }) => ("push", None, None),
    };
    let topic = match pending {
        Some(PendingEnrollment::Push { topic, .. }) => Some(topic.clone()),
        _ => None,
    };
    let mfa = &frame.policy.mfa;
    let enabled = |m: Method| mfa.methods.contains(&m);
    let res = ctx.page(lang, "enroll.html", minijinja::context! {
        title => enroll_title(step), flow => flow.id.clone(), step => step, qr => qr, secret => secret_text,
        account => account, message => message, topic => topic,
        push_server => mfa.gateway.push_server_url(ctx.config.public_base()),
        offer_app => mfa.apps_allowed(), offer_phone => enabled(Method::Sms), offer_push => enabled(Method::Push),
        rp_name => frame.rp_name.clone(), idp_name => frame.idp_name.clone(),
    });
    if step == "push" {
        super::wait::live_page(res)
    } else {
        res
    }
}

/// The setup page's title: the step the user is on (WCAG 2.4.2).
pub(super) fn enroll_title(step: &str) -> &'static str {
    match step {
        "app" => msgid("Scan the code – Set up verification"),
        "phone" => msgid("Enter the texted code – Set up verification"),
        "push" => msgid("Approve the test notification – Set up verification"),
        _ => msgid("Set up verification"),
    }
}

/// The app step's QR code and secret; back to the offer when the sealed secret does not open.
fn app_step(
    ctx: &AppContext,
    flow: &Flow,
    secret: &crate::mfa::secrets::Sealed,
    account: &str,
    frame: &Frame,
) -> (&'static str, Option<Value>, Option<String>) {
    match ctx.secrets.open(secret, enroll_aad(&flow.id).as_bytes()) {
        Ok(plain) => {
            let uri = oath::otpauth_uri(
                &frame.idp_name,
                account,
                &plain,
                &oath::OathParams::default(),
            );
            (
                "app",
                Some(Value::from_safe_string(oath::qr_svg(&uri))),
                Some(oath::base32(&plain)),
            )
        }
        Err(_) => ("offer", None, None),
    }
}
