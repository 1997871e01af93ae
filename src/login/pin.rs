//! SetPin: in PIN mode, a user without a PIN (or with an expired one) chooses one before the call that asks for it.
//!
//! Choosing the PIN on the page after the password adds no way in: the call still has to be
//! answered on the user's phone with that PIN. Setting a PIN is not enrolling a method, so
//! it does not depend on "allow user enrollment".

use super::second_factor::{begin, with_make_default};
use super::{Deps, Event, Flow, LoginState, Note};
use crate::audit::Outcome;
use crate::directory::UserInfo;
use crate::mfa::registration::{self, Registration};
use crate::mfa::{Method, pin};

type Step = Result<(LoginState, Note), super::StepError>;

const EXPIRED: &str = "Your PIN has expired. Choose a new one for phone sign-in.";

/// Whether the call about to start needs a PIN chosen first.
pub(super) fn needed(reg: &Registration, deps: &Deps<'_>) -> bool {
    deps.mfa.pin_mode
        && (reg.pin_hash.is_none() || pin::expired(reg.pin_set_at, deps.mfa, deps.clock.unix()))
}

/// The PIN page instead of the call.
pub(super) fn ask(user: UserInfo, reg: &Registration) -> (LoginState, Note) {
    let renewing = reg.pin_hash.is_some();
    let state = LoginState::SetPin {
        user,
        message: renewing.then(|| EXPIRED.to_owned()),
        renewing,
        make_default: false,
    };
    let reason = if renewing {
        "PIN expired: asking for a new one"
    } else {
        "no PIN set: asking for one"
    };
    (state, Note::started(Some("call"), reason.to_owned()))
}

pub(super) async fn on_event(
    flow: &Flow,
    user: UserInfo,
    renewing: bool,
    make_default: bool,
    event: Event,
    deps: &Deps<'_>,
) -> Step {
    match event {
        Event::SetPin { pin, confirm } => {
            let reg = registration::load(deps.store, &user.username).await?;
            let phones: Vec<String> = registration::directory_phones(
                &user,
                &deps.mfa.phone_attributes,
                &deps.mfa.default_country_code,
            )
            .into_iter()
            .chain(reg.phones.iter().cloned())
            .map(|p| p.number)
            .collect();
            let previous = renewing.then_some(reg.pin_hash.as_deref()).flatten();
            if let Err(refusal) = pin::check(&pin, &confirm, deps.mfa, &phones, previous) {
                let state = LoginState::SetPin {
                    user,
                    message: Some(refusal.message().to_owned()),
                    renewing,
                    make_default,
                };
                let reason = format!("new PIN refused: {}", refusal.rule());
                return Ok((state, Note::fail(Some("call"), reason)));
            }
            let hash = match pin::hash(&pin) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(user = %user.username, error = %e, "PIN could not be hashed");
                    let state = LoginState::Denied {
                        message: "The sign-in service could not save your PIN. Try again later."
                            .into(),
                    };
                    return Ok((state, Note::fail(Some("call"), "PIN hashing failed")));
                }
            };
            let now = deps.clock.unix();
            let (reg, ()) = registration::update(deps.store, &user.username, |r| {
                r.pin_hash = Some(hash.clone());
                r.pin_set_at = Some(now);
            })
            .await?;
            let (state, mut note) = begin(flow, user, Method::Call, &reg, deps).await?;
            note.reason = Some(match note.reason.take() {
                Some(r) => format!("PIN set; {r}"),
                None => "PIN set; call placed".to_owned(),
            });
            with_make_default((state, note), make_default)
        }
        Event::UseDifferent => {
            let state = LoginState::ChooseMethod {
                user,
                message: None,
                code_failures: 0,
            };
            let note = Note::fail(Some("call"), "user left the PIN page for another option");
            Ok((state, note))
        }
        other => {
            let state = LoginState::SetPin {
                user,
                message: None,
                renewing,
                make_default,
            };
            let note = Note {
                method: Some("call"),
                outcome: Outcome::Ignored,
                reason: Some(format!("event {} ignored", other.name())),
            };
            Ok((state, note))
        }
    }
}
