//! One template per login state: turns a `Flow` into its page.

use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;

use super::{AppContext, PageLang};
use crate::i18n::msgid;
use crate::login::enroll_aad;
use crate::login::{Flow, LoginState, Pending, PendingEnrollment, SecondFactor, SecondFactorRule};
use crate::mfa::{Method, oath};

/// States whose page refreshes itself to learn an answer given elsewhere.
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

/// The flow's page in `lang`. Messages in the state are English (the catalogue's ids); the
/// templates translate them.
pub async fn render(ctx: &AppContext, lang: &PageLang, flow: &Flow) -> Response {
    let rp_name = match &flow.request {
        Pending::Saml(p) => ctx
            .registry()
            .await
            .get(&p.rp_entity_id)
            .map(|rp| rp.name.clone())
            .unwrap_or_default(),
        Pending::AdminConsole => "Tessera admin console".to_owned(),
    };
    let idp_name = ctx.config.idp.display_name.clone();
    let now = ctx.clock.unix();
    let policy = ctx.policy().await;
    match &flow.state {
        LoginState::AwaitPassword { login, message, .. } => {
            let mut res = ctx.page(
                lang,
                "login.html",
                minijinja::context! {
                    title => msgid("Sign in"), flow => flow.id.clone(), login => login, message => message,
                    rp_name => rp_name, idp_name => idp_name,
                },
            );
            if message.is_some() {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            res
        }
        LoginState::AwaitSecondFactor(SecondFactor {
            user,
            method,
            deadline,
            destination,
            number,
            message,
            challenge,
            ..
        }) => {
            let waiting = challenge.is_some()
                && deadline.is_some()
                && *method != Method::Oath
                && !(*method == Method::Sms
                    && policy.mfa.sms_mode == crate::mfa::settings::SmsMode::OneWay);
            let template = if waiting {
                "mfa_wait.html"
            } else {
                "mfa_code.html"
            };
            let mut res = ctx.page(lang, template, minijinja::context! {
                title => msgid("Verify your identity"), flow => flow.id.clone(), user => user.upn.clone().unwrap_or(user.username.clone()),
                method => method.as_str(), destination => destination, number => number, message => message,
                remaining => deadline.map(|d| (d - now).max(0)), rp_name => rp_name, idp_name => idp_name,
            });
            if message.is_some() {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            res
        }
        LoginState::ChooseMethod { user, message, .. } => {
            let deps = ctx.deps(&policy, SecondFactorRule::Required);
            let options = match crate::login::chooser(&deps, user).await {
                Ok(o) => o,
                Err(e) => return super::saml::store_failure_in(ctx, lang, &e),
            };
            let options: Vec<Value> = options
                .into_iter()
                .map(|o| minijinja::context! { method => o.method.as_str(), label => o.label, phone => o.phone })
                .collect();
            ctx.page(lang, "mfa_choose.html", minijinja::context! {
                title => msgid("Verify your identity"), flow => flow.id.clone(), message => message, options => options,
                offer_make_default => policy.mfa.allow_method_choice, rp_name => rp_name, idp_name => idp_name,
            })
        }
        LoginState::SetPin {
            message, renewing, ..
        } => {
            ctx.page(lang, "mfa_pin.html", minijinja::context! {
                title => msgid("Choose a PIN"), flow => flow.id.clone(), message => message, renewing => renewing,
                min_length => policy.mfa.pin_min_length, max_length => crate::mfa::pin::MAX_LEN,
                refuse_weak => policy.mfa.pin_refuse_weak, rp_name => rp_name, idp_name => idp_name,
            })
        }
        LoginState::Enroll {
            user,
            pending,
            message,
        } => {
            let account = user.upn.clone().unwrap_or(user.username.clone());
            let (step, qr, secret_text) = match pending {
                None => ("offer", None, None),
                Some(PendingEnrollment::App { secret }) => {
                    match ctx.secrets.open(secret, enroll_aad(&flow.id).as_bytes()) {
                        Ok(plain) => {
                            let uri = oath::otpauth_uri(
                                &idp_name,
                                &account,
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
                Some(PendingEnrollment::Phone { .. }) => ("phone", None, None),
                Some(PendingEnrollment::Push { .. }) => ("push", None, None),
            };
            let topic = match pending {
                Some(PendingEnrollment::Push { topic, .. }) => Some(topic.clone()),
                _ => None,
            };
            let enabled = |m: Method| policy.mfa.methods.contains(&m);
            ctx.page(lang, "enroll.html", minijinja::context! {
                title => msgid("Set up verification"), flow => flow.id.clone(), step => step, qr => qr, secret => secret_text,
                account => account, message => message, topic => topic,
                push_server => policy.mfa.gateway.push_server_url(ctx.config.public_base()),
                offer_app => policy.mfa.apps_allowed(), offer_phone => enabled(Method::Sms), offer_push => enabled(Method::Push),
                rp_name => rp_name, idp_name => idp_name,
            })
        }
        LoginState::Denied { message } => ctx.error_in(lang, StatusCode::FORBIDDEN, message),
        LoginState::Authenticated { .. } => ctx.error_in(
            lang,
            StatusCode::CONFLICT,
            "This sign-in is already complete. Go back to the application.",
        ),
    }
}
