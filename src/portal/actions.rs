//! What a signed-in user may change about their own second factor: the default, an authenticator app, a PIN, removing a method, a one-time bypass; each checked against the policy in force.
//!
//! Handlers call these with the portal session; each returns what the user reads when it is
//! refused (`PortalError::Refused`, an English message id) and leaves nothing changed then.
//! Confirmation codes take one attempt from the user's code budget first (`mfa::lockout`),
//! the same budget as sign-in codes, so a script cannot guess through the portal either.

use std::time::Duration;

use super::PortalError;
use super::session::{PortalSession, Setup};
use crate::login::bypass_key;
use crate::mfa::lockout::{self, Attempt};
use crate::mfa::registration::{self, PhoneSource, Registration, TokenKind};
use crate::mfa::secrets::SecretBox;
use crate::mfa::settings::MfaSettings;
use crate::mfa::{Method, oath, pin};
use crate::store::Store;

const NOT_CORRECT: &str = "That code is not correct. Try again.";
const CODES_LOCKED: &str = "Too many incorrect codes were entered for your account, so codes are not accepted for now. Try again later or contact your help desk.";
const NO_CHOICE: &str = "Your organisation does not let users choose their default method.";
const NOT_AVAILABLE: &str = "That method is not available for your account.";
const LAST_METHOD: &str = "You cannot remove your last verification method.";
const NOT_FOUND: &str = "That method was not found.";
const NO_BYPASS: &str = "Your organisation does not let users create their own one-time bypass.";
const BAD_VALIDITY: &str = "A bypass is valid for 1 to 60 minutes.";
const BAD_REASON: &str = "Give a reason (up to 200 characters, one line).";
const NO_PIN: &str = "Your organisation does not use PINs.";
const NO_APPS: &str = "Your organisation does not offer authenticator apps.";
const SETUP_EXPIRED: &str = "The setup expired. Start again.";

/// The longest self-issued bypass: long enough to reach a sign-in, short enough to matter.
pub const BYPASS_MAX_MINUTES: u32 = 60;
/// A reason is one line of at most this many characters.
pub const MAX_REASON: usize = 200;

/// What the rules need from the outside world.
pub struct Deps<'a> {
    pub store: &'a dyn Store,
    pub secrets: &'a SecretBox,
    /// The policy in force.
    pub mfa: &'a MfaSettings,
    pub now: i64,
}

/// A method the user owns and may remove. Directory phones are the directory's, not theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Token(String),
    PushDevice(String),
    Phone(String),
}

impl Removal {
    /// The form's `kind` and `id`; `None` for anything else.
    pub fn parse(kind: &str, id: &str) -> Option<Removal> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        match kind {
            "token" => Some(Removal::Token(id.to_owned())),
            "push" => Some(Removal::PushDevice(id.to_owned())),
            "phone" => Some(Removal::Phone(id.to_owned())),
            _ => None,
        }
    }

    pub fn method(&self) -> Method {
        match self {
            Removal::Token(_) => Method::Oath,
            Removal::PushDevice(_) => Method::Push,
            Removal::Phone(_) => Method::Call,
        }
    }
}

/// Whether `reg` still holds a method the policy offers (directory phones count).
fn has_any_method(reg: &Registration, mfa: &MfaSettings, s: &PortalSession) -> bool {
    mfa.methods
        .iter()
        .any(|m| reg.has_method_material_with(*m, &s.directory_phones))
}

/// Makes `method` the user's default, when users may choose and they have it.
pub async fn set_default(
    d: &Deps<'_>,
    s: &PortalSession,
    method: Method,
) -> Result<(), PortalError> {
    if !d.mfa.allow_method_choice {
        return Err(PortalError::Refused(NO_CHOICE));
    }
    let (_, outcome) = registration::update(d.store, &s.user, |r| {
        let usable = d.mfa.methods.contains(&method)
            && r.has_method_material_with(method, &s.directory_phones);
        if usable {
            r.default_method = Some(method);
        }
        usable
    })
    .await?;
    if outcome {
        Ok(())
    } else {
        Err(PortalError::Refused(NOT_AVAILABLE))
    }
}

/// Removes one of the user's own methods; never the last one while MFA is required.
pub async fn remove(d: &Deps<'_>, s: &PortalSession, what: &Removal) -> Result<(), PortalError> {
    let (_, outcome) = registration::update(d.store, &s.user, |r| {
        let mut after = r.clone();
        let found = match what {
            Removal::Token(id) => after.remove_token(id),
            Removal::PushDevice(id) => {
                let before = after.push_devices.len();
                after.push_devices.retain(|p| &p.id != id);
                after.push_devices.len() != before
            }
            Removal::Phone(number) => {
                let before = after.phones.len();
                after
                    .phones
                    .retain(|p| !(p.source == PhoneSource::Enrolled && &p.number == number));
                after.phones.len() != before
            }
        };
        if !found {
            return Err(NOT_FOUND);
        }
        if d.mfa.enabled && !has_any_method(&after, d.mfa, s) {
            return Err(LAST_METHOD);
        }
        if after
            .default_method
            .is_some_and(|m| !after.has_method_material_with(m, &s.directory_phones))
        {
            after.default_method = None;
        }
        *r = after;
        Ok(())
    })
    .await?;
    outcome.map_err(PortalError::Refused)
}

/// A one-time bypass the user issues for themselves, when the admin allows it; the same
/// record the help desk's bypass writes, consumed by the next sign-in.
pub async fn bypass(
    d: &Deps<'_>,
    s: &PortalSession,
    minutes: u32,
    reason: &str,
) -> Result<(), PortalError> {
    if !(d.mfa.allow_bypass && d.mfa.allow_self_bypass) {
        return Err(PortalError::Refused(NO_BYPASS));
    }
    if !(1..=BYPASS_MAX_MINUTES).contains(&minutes) {
        return Err(PortalError::Refused(BAD_VALIDITY));
    }
    let reason = reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON
        || reason.chars().any(char::is_control)
    {
        return Err(PortalError::Refused(BAD_REASON));
    }
    let ttl = Duration::from_secs(u64::from(minutes) * 60);
    let text = format!("self-service: {reason}");
    d.store
        .put(&bypass_key(&s.user), text.as_bytes(), Some(ttl))
        .await?;
    Ok(())
}

/// Chooses or changes the user's PIN (PIN mode), under the PIN policy.
pub async fn set_pin(
    d: &Deps<'_>,
    s: &PortalSession,
    new: &str,
    confirm: &str,
) -> Result<(), PortalError> {
    if !d.mfa.pin_mode {
        return Err(PortalError::Refused(NO_PIN));
    }
    let reg = registration::load(d.store, &s.user).await?;
    let phones: Vec<String> = reg
        .all_phones(&s.directory_phones)
        .into_iter()
        .map(|p| p.number)
        .collect();
    pin::check(new, confirm, d.mfa, &phones, reg.pin_hash.as_deref())
        .map_err(|r| PortalError::Refused(r.message()))?;
    let hash = pin::hash(new).map_err(|e| {
        tracing::error!(error = %e, "PIN hashing failed");
        PortalError::Refused(SETUP_EXPIRED)
    })?;
    registration::update(d.store, &s.user, |r| {
        r.pin_hash = Some(hash.clone());
        r.pin_set_at = Some(d.now);
    })
    .await?;
    Ok(())
}

/// Starts adding an authenticator app: a fresh secret, sealed to this session.
pub fn start_app(d: &Deps<'_>, s: &mut PortalSession) -> Result<(), PortalError> {
    if !d.mfa.apps_allowed() {
        return Err(PortalError::Refused(NO_APPS));
    }
    let secret = oath::generate_secret();
    let sealed = d.secrets.seal(&secret, s.setup_aad().as_bytes());
    s.setup = Some(Setup::App { secret: sealed });
    Ok(())
}

/// The pending app's secret, when this session has one that opens.
pub fn pending_app_secret(d: &Deps<'_>, s: &PortalSession) -> Option<Vec<u8>> {
    match &s.setup {
        Some(Setup::App { secret }) => d.secrets.open(secret, s.setup_aad().as_bytes()).ok(),
        _ => None,
    }
}

/// Takes one attempt from the user's code budget, runs `check`, and counts its answer:
/// a wrong code may lock code entry, a right one resets the count.
pub async fn counted<F>(d: &Deps<'_>, user: &str, check: F) -> Result<(), PortalError>
where
    F: AsyncFnOnce() -> Result<bool, crate::store::StoreError>,
{
    let reg = registration::load(d.store, user).await?;
    let nth = match lockout::reserve(d.store, d.mfa, &reg, d.now).await? {
        Attempt::Locked { .. } => return Err(PortalError::Refused(CODES_LOCKED)),
        Attempt::Check { nth } => nth,
    };
    if check().await? {
        lockout::succeeded(d.store, &reg).await?;
        return Ok(());
    }
    if lockout::failed(d.store, d.mfa, user, nth, d.now)
        .await?
        .is_some()
    {
        return Err(PortalError::Refused(CODES_LOCKED));
    }
    Err(PortalError::Refused(NOT_CORRECT))
}

/// The app's first code proves the QR code was read: the new token replaces the user's
/// previous authenticator app (a new phone), keeping any hardware tokens.
pub async fn confirm_app(
    d: &Deps<'_>,
    s: &mut PortalSession,
    code: &str,
) -> Result<(), PortalError> {
    let Some(plain) = pending_app_secret(d, s) else {
        s.setup = None;
        return Err(PortalError::Refused(SETUP_EXPIRED));
    };
    let code = code.trim();
    if code.is_empty() || code.len() > 10 {
        return Err(PortalError::Refused(NOT_CORRECT));
    }
    let params = oath::OathParams::default();
    let replay = format!("portal/{}", s.id);
    counted(d, &s.user, async || {
        oath::verify_once(d.store, &replay, &plain, &params, code, d.now).await
    })
    .await?;
    let (_, id) = registration::update(d.store, &s.user, |r| {
        r.tokens.retain(|t| t.kind != TokenKind::App);
        r.default_method.get_or_insert(Method::Oath);
        r.add_oath(
            d.secrets,
            "Authenticator app",
            TokenKind::App,
            &plain,
            params,
            d.now,
        )
    })
    .await?;
    // The confirming code is now spent for the new token too (RFC 6238 §5.2).
    let token_replay = format!("{}/{id}", s.user.to_lowercase());
    oath::verify_once(d.store, &token_replay, &plain, &params, code, d.now).await?;
    s.setup = None;
    Ok(())
}
