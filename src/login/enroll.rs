//! Enroll: a user without any second factor sets one up during sign-in (if policy allows).

use super::second_factor::{authenticated, deliverable, sms_code_ok};
use super::{Deps, Event, Flow, LoginState, Note, PendingEnrollment, StepError};
use crate::audit::Outcome;
use crate::directory::UserInfo;
use crate::mfa::delivery::{self, Channel, Purpose, Refused};
use crate::mfa::registration::{self, Phone, PhoneKind, PhoneSource, PushDevice, TokenKind};
use crate::mfa::secrets::Sealed;
use crate::mfa::{ChallengeStatus, Method, challenge, oath};

type Step = Result<(LoginState, Note), StepError>;

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

/// The enrollment page again, as it was, with nothing recorded as done.
fn unchanged(
    user: UserInfo,
    pending: Option<PendingEnrollment>,
    message: Option<String>,
    method: &'static str,
    reason: Option<String>,
) -> (LoginState, Note) {
    let state = LoginState::Enroll {
        user,
        pending,
        message,
    };
    let note = Note {
        method: Some(method),
        outcome: Outcome::Ignored,
        reason,
    };
    (state, note)
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
        (_, Event::EnrollApp) if deps.mfa.apps_allowed() => Ok(start_app(flow, user, deps)),
        (_, Event::EnrollPhone { number }) if enabled(Method::Sms) => {
            start_phone(flow, user, &number, deps).await
        }
        (_, Event::EnrollPush) if enabled(Method::Push) => start_push(flow, user, deps).await,
        (Some(PendingEnrollment::App { secret }), Event::EnrollConfirm { code }) => {
            confirm_app(flow, user, secret, &code, deps).await
        }
        (Some(PendingEnrollment::Phone { number, challenge }), Event::EnrollConfirm { code }) => {
            confirm_phone(user, number, challenge, &code, deps).await
        }
        (Some(PendingEnrollment::Push { topic, challenge }), Event::Poll) => {
            poll_push(user, topic, challenge, message, deps).await
        }
        (_, Event::UseDifferent) => Ok(unchanged(user, None, None, "enroll", None)),
        (pending, other) => {
            let reason = format!("event {} ignored", other.name());
            Ok(unchanged(user, pending, message, "enroll", Some(reason)))
        }
    }
}

/// An authenticator app: a fresh secret, sealed to this flow, shown as a QR code.
fn start_app(flow: &Flow, user: UserInfo, deps: &Deps<'_>) -> (LoginState, Note) {
    let secret = oath::generate_secret();
    let sealed = deps.secrets.seal(&secret, app_aad(&flow.id).as_bytes());
    let pending = PendingEnrollment::App { secret: sealed };
    started(user, pending, "oath", "authenticator app enrollment")
}

/// A phone number: a code texted to it, to be typed back.
async fn start_phone(flow: &Flow, user: UserInfo, number: &str, deps: &Deps<'_>) -> Step {
    let purpose = Purpose::Enroll { flow_id: &flow.id };
    let sender = deps.sender();
    let sent = delivery::start(&sender, Channel::Text, number, &user.username, purpose).await;
    Ok(match deliverable(sent)? {
        Ok(c) => {
            let pending = PendingEnrollment::Phone {
                // The number as normalised (E.164), which is what the challenge was sent to.
                number: c.phone.unwrap_or_default(),
                challenge: c.id,
            };
            started(user, pending, "sms", "phone enrollment")
        }
        Err(Refused::Destination(_)) => stay(
            user,
            None,
            "That does not look like a phone number. Include the country code, e.g. +1 555 0100.",
            "invalid phone number",
        ),
        Err(e) => stay(
            user,
            None,
            "We could not send a text to that number.",
            &e.to_string(),
        ),
    })
}

/// A push device: a new topic, confirmed by approving a first notification to it.
async fn start_push(flow: &Flow, user: UserInfo, deps: &Deps<'_>) -> Step {
    let topic = delivery::random_hex(16).map_err(StepError::Random)?;
    let purpose = Purpose::Enroll { flow_id: &flow.id };
    let sender = deps.sender();
    let sent = delivery::start(&sender, Channel::Push, &topic, &user.username, purpose).await;
    Ok(match deliverable(sent)? {
        Ok(c) => {
            let pending = PendingEnrollment::Push {
                topic,
                challenge: c.id,
            };
            started(user, pending, "push", "push enrollment")
        }
        Err(e) => stay(
            user,
            None,
            "We could not send a notification.",
            &e.to_string(),
        ),
    })
}

/// The app's first code proves the QR code was read: the token is registered.
async fn confirm_app(
    flow: &Flow,
    user: UserInfo,
    secret: Sealed,
    code: &str,
    deps: &Deps<'_>,
) -> Step {
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
    let now = deps.clock.unix();
    let right = oath::verify_once(deps.store, &replay, &plain, &params, code.trim(), now).await?;
    if !right {
        return Ok(stay(
            user,
            Some(PendingEnrollment::App { secret }),
            "That code is not correct. Enter the code your app shows now.",
            "wrong enrollment code",
        ));
    }
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

/// The texted code typed back proves the number: it becomes one of the user's phones.
async fn confirm_phone(
    user: UserInfo,
    number: String,
    cid: String,
    code: &str,
    deps: &Deps<'_>,
) -> Step {
    let ok = match challenge::load(deps.store, &cid).await? {
        Some(c) => {
            sms_code_ok(&c, code, deps)
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

/// The waiting page looked again: an approved first push registers the device.
async fn poll_push(
    user: UserInfo,
    topic: String,
    cid: String,
    message: Option<String>,
    deps: &Deps<'_>,
) -> Step {
    let status = challenge::load(deps.store, &cid)
        .await?
        .map(|c| (c.status, c.deadline));
    match status {
        Some((ChallengeStatus::Approved, _)) => register_push(user, topic, deps).await,
        Some((ChallengeStatus::Pending, deadline)) if deps.clock.unix() < deadline => {
            let pending = Some(PendingEnrollment::Push {
                topic,
                challenge: cid,
            });
            Ok(unchanged(user, pending, message, "push", None))
        }
        _ => Ok(stay(
            user,
            None,
            "The test notification was not approved. Try again or choose another way.",
            "push enrollment not approved",
        )),
    }
}

async fn register_push(user: UserInfo, topic: String, deps: &Deps<'_>) -> Step {
    let now = deps.clock.unix();
    let device_id = delivery::random_hex(8).map_err(StepError::Random)?;
    registration::update(deps.store, &user.username, |r| {
        if !r.push_devices.iter().any(|d| d.topic == topic) {
            r.push_devices.push(PushDevice {
                id: device_id.clone(),
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
