//! Enroll: a user without any second factor sets one up during sign-in (if policy allows).

use super::second_factor::{authenticated, send_code, send_push, sms_code_ok};
use super::{Deps, Event, Flow, LoginState, Note, PendingEnrollment};
use crate::audit::Outcome;
use crate::directory::UserInfo;
use crate::mfa::registration::{
    self, Phone, PhoneKind, PhoneSource, PushDevice, TokenKind, normalize_phone,
};
use crate::mfa::settings::SmsMode;
use crate::mfa::{ChallengeStatus, Method, challenge, oath};
use crate::store::StoreError;

type Step = Result<(LoginState, Note), StoreError>;

/// The sealed pending secret is bound to the flow, so it cannot be replayed into another.
pub fn app_aad(flow_id: &str) -> String {
    format!("enroll/{flow_id}")
}

fn stay(
    user: UserInfo,
    pending: Option<PendingEnrollment>,
    message: &str,
    reason: &str,
) -> (LoginState, Note) {
    let state = LoginState::Enroll {
        user,
        pending,
        message: Some(message.to_owned()),
    };
    (state, Note::fail(Some("enroll"), reason))
}

/// An enrollment step sent out (QR code shown, code texted, push sent), waiting to be confirmed.
fn started(
    user: UserInfo,
    pending: PendingEnrollment,
    method: &'static str,
    reason: &str,
) -> (LoginState, Note) {
    let state = LoginState::Enroll {
        user,
        pending: Some(pending),
        message: None,
    };
    (state, Note::started(Some(method), reason.to_owned()))
}

pub(super) async fn on_event(
    flow: &Flow,
    user: UserInfo,
    pending: Option<PendingEnrollment>,
    message: Option<String>,
    event: Event,
    deps: &Deps<'_>,
) -> Step {
    let enabled = |m: Method| deps.mfa.methods.contains(&m);
    match (pending, event) {
        (_, Event::EnrollApp) if deps.mfa.apps_allowed() => {
            let secret = oath::generate_secret();
            let sealed = deps.secrets.seal(&secret, app_aad(&flow.id).as_bytes());
            let pending = PendingEnrollment::App { secret: sealed };
            Ok(started(
                user,
                pending,
                "oath",
                "authenticator app enrollment",
            ))
        }
        (_, Event::EnrollPhone { number }) if enabled(Method::Sms) => {
            let Some(e164) = normalize_phone(&number, &deps.mfa.default_country_code) else {
                return Ok(stay(
                    user,
                    None,
                    "That does not look like a phone number. Include the country code, e.g. +1 555 0100.",
                    "invalid phone number",
                ));
            };
            match send_code(flow, &user.username, &e164, SmsMode::OneWay, deps).await? {
                Ok(c) => {
                    let pending = PendingEnrollment::Phone {
                        number: e164,
                        challenge: c.id,
                    };
                    Ok(started(user, pending, "sms", "phone enrollment"))
                }
                Err(reason) => Ok(stay(
                    user,
                    None,
                    "We could not send a text to that number.",
                    &reason,
                )),
            }
        }
        (_, Event::EnrollPush) if enabled(Method::Push) => {
            let topic = crate::saml::random_hex(16);
            match send_push(flow, &user.username, &topic, deps).await? {
                Ok(c) => {
                    let pending = PendingEnrollment::Push {
                        topic,
                        challenge: c.id,
                    };
                    Ok(started(user, pending, "push", "push enrollment"))
                }
                Err(reason) => Ok(stay(
                    user,
                    None,
                    "We could not send a notification.",
                    &reason,
                )),
            }
        }
        (Some(PendingEnrollment::App { secret }), Event::EnrollConfirm { code }) => {
            let Ok(plain) = deps.secrets.open(&secret, app_aad(&flow.id).as_bytes()) else {
                return Ok(stay(
                    user,
                    None,
                    "The setup expired. Start again.",
                    "pending secret unreadable",
                ));
            };
            let params = oath::OathParams::default();
            let replay = format!("enroll/{}", flow.id);
            if !oath::verify_once(
                deps.store,
                &replay,
                &plain,
                &params,
                code.trim(),
                deps.clock.unix(),
            )
            .await?
            {
                return Ok(stay(
                    user,
                    Some(PendingEnrollment::App { secret }),
                    "That code is not correct. Enter the code your app shows now.",
                    "wrong enrollment code",
                ));
            }
            let now = deps.clock.unix();
            let (_, id) = registration::update(deps.store, &user.username, |r| {
                r.default_method.get_or_insert(Method::Oath);
                r.add_oath(
                    deps.secrets,
                    "Authenticator app",
                    TokenKind::App,
                    &plain,
                    params,
                    now,
                )
            })
            .await?;
            // The confirming code is now spent for the new token too (RFC 6238 §5.2).
            let token_replay = format!("{}/{id}", user.username.to_lowercase());
            oath::verify_once(deps.store, &token_replay, &plain, &params, code.trim(), now).await?;
            Ok(authenticated(user, Method::Oath, deps))
        }
        (
            Some(PendingEnrollment::Phone {
                number,
                challenge: cid,
            }),
            Event::EnrollConfirm { code },
        ) => {
            let ok = match challenge::load(deps.store, &cid).await? {
                Some(c) => {
                    sms_code_ok(&c, &code, deps)
                        && challenge::resolve(deps.store, &cid, ChallengeStatus::Approved)
                            .await?
                            .is_some()
                }
                None => false,
            };
            if !ok {
                let pending = PendingEnrollment::Phone {
                    number,
                    challenge: cid,
                };
                return Ok(stay(
                    user,
                    Some(pending),
                    "That code is not correct. Try again.",
                    "wrong enrollment code",
                ));
            }
            registration::update(deps.store, &user.username, |r| {
                if !r.phones.iter().any(|p| p.number == number) {
                    r.phones.push(Phone {
                        number: number.clone(),
                        kind: PhoneKind::Mobile,
                        source: PhoneSource::Enrolled,
                    });
                }
                r.default_method.get_or_insert(Method::Sms);
            })
            .await?;
            Ok(authenticated(user, Method::Sms, deps))
        }
        (
            Some(PendingEnrollment::Push {
                topic,
                challenge: cid,
            }),
            Event::Poll,
        ) => {
            let status = challenge::load(deps.store, &cid)
                .await?
                .map(|c| (c.status, c.deadline));
            match status {
                Some((ChallengeStatus::Approved, _)) => {
                    let now = deps.clock.unix();
                    registration::update(deps.store, &user.username, |r| {
                        if !r.push_devices.iter().any(|d| d.topic == topic) {
                            r.push_devices.push(PushDevice {
                                id: crate::saml::random_hex(8),
                                label: "Mobile app".into(),
                                topic: topic.clone(),
                                created: now,
                            });
                        }
                        r.default_method.get_or_insert(Method::Push);
                    })
                    .await?;
                    Ok(authenticated(user, Method::Push, deps))
                }
                Some((ChallengeStatus::Pending, deadline)) if deps.clock.unix() < deadline => {
                    let pending = Some(PendingEnrollment::Push {
                        topic,
                        challenge: cid,
                    });
                    Ok((
                        LoginState::Enroll {
                            user,
                            pending,
                            message,
                        },
                        Note {
                            method: Some("push"),
                            outcome: Outcome::Ignored,
                            reason: None,
                        },
                    ))
                }
                _ => Ok(stay(
                    user,
                    None,
                    "The test notification was not approved. Try again or choose another way.",
                    "push enrollment not approved",
                )),
            }
        }
        (_, Event::UseDifferent) => Ok((
            LoginState::Enroll {
                user,
                pending: None,
                message: None,
            },
            Note {
                method: Some("enroll"),
                outcome: Outcome::Ignored,
                reason: None,
            },
        )),
        (pending, other) => {
            let reason = format!("event {} ignored", other.name());
            Ok((
                LoginState::Enroll {
                    user,
                    pending,
                    message,
                },
                Note {
                    method: Some("enroll"),
                    outcome: Outcome::Ignored,
                    reason: Some(reason),
                },
            ))
        }
    }
}
