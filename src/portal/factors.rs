//! Activating an assigned hardware token and setting security answers in the portal: the rules around `mfa::tokens::inventory::activate` and `mfa::questions::set_answers`.
//!
//! A serial that is unknown and one assigned to someone else get the same refusal, so a
//! signed-in user cannot learn which serials exist. Each activation code takes one attempt
//! from the user's code budget (`actions::counted`), like the portal's other codes.

use super::PortalError;
use super::actions::{Deps, counted};
use super::session::PortalSession;
use crate::mfa::Method;
use crate::mfa::questions::{self, SetError};
use crate::mfa::registration;
use crate::mfa::settings::OathKind;
use crate::mfa::tokens::inventory::{self, TokenError};
use crate::store::StoreError;

const NO_SUCH_TOKEN: &str = "No token with that serial number is assigned to you. Check the number on the back of the token.";
const NOT_CORRECT: &str = "That code is not correct. Try again.";
const NO_HARDWARE: &str = "Your organisation does not use hardware tokens.";
const NOT_SAVED: &str = "Your answers could not be saved. Try again.";

/// Longest serial number read: the inventory's serials are far shorter.
pub const MAX_SERIAL: usize = 64;

/// Whether the policy lets hardware tokens count at all.
pub fn hardware_allowed(d: &Deps<'_>) -> bool {
    d.mfa.methods.contains(&Method::Oath) && d.mfa.oath_tokens.contains(&OathKind::Hardware)
}

/// Activates the hardware token `serial`, which must be assigned to this user, with one
/// code from it; it then counts for sign-in and is listed on the portal page.
pub async fn activate_token(
    d: &Deps<'_>,
    s: &PortalSession,
    serial: &str,
    code: &str,
) -> Result<String, PortalError> {
    if !hardware_allowed(d) {
        return Err(PortalError::Refused(NO_HARDWARE));
    }
    let serial = serial.trim();
    if serial.is_empty() || serial.len() > MAX_SERIAL || serial.chars().any(char::is_control) {
        return Err(PortalError::Refused(NO_SUCH_TOKEN));
    }
    let token = inventory::get(d.store, serial).await?;
    let mine = token
        .as_ref()
        .and_then(|t| t.assigned.as_deref())
        .is_some_and(|u| u.eq_ignore_ascii_case(&s.user));
    if !mine {
        return Err(PortalError::Refused(NO_SUCH_TOKEN));
    }
    let code = code.trim();
    if code.is_empty() || code.len() > 10 {
        return Err(PortalError::Refused(NOT_CORRECT));
    }
    let inv = inventory::Deps {
        store: d.store,
        secrets: d.secrets,
        now: d.now,
    };
    counted(d, &s.user, async || {
        match inventory::activate_within(&inv, inventory::HotpWindows::of(d.mfa), serial, code)
            .await
        {
            Ok(_) => Ok(true),
            // Unassigned or removed by an admin meanwhile: as good as a wrong code.
            Err(TokenError::WrongCode | TokenError::NotFound(_) | TokenError::NotAssigned(_)) => {
                Ok(false)
            }
            Err(TokenError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Backend(format!("token {serial}: {e}"))),
        }
    })
    .await?;
    registration::update(d.store, &s.user, |r| {
        r.default_method.get_or_insert(Method::Oath);
    })
    .await?;
    Ok(token.map(|t| t.serial).unwrap_or_default())
}

/// Replaces the user's security answers with `answers` (question as offered, answer as
/// typed); the refusal is a message id (`Refusal::msgid`, `{needed}` filled by the page).
pub async fn set_answers(
    d: &Deps<'_>,
    s: &PortalSession,
    answers: &[(String, String)],
) -> Result<usize, PortalError> {
    match questions::set_answers(d.store, d.mfa, &s.user, answers, d.now).await {
        Ok(stored) => Ok(stored.len()),
        Err(SetError::Refused(r)) => Err(PortalError::Refused(r.msgid())),
        Err(SetError::Store(e)) => Err(PortalError::Store(e)),
        Err(SetError::Hash(e)) => {
            tracing::error!(error = %e, "security answer hashing failed");
            Err(PortalError::Refused(NOT_SAVED))
        }
    }
}
