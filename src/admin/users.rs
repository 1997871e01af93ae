//! Help-desk operations on one user's second factor: what is enrolled and recent sign-ins, and the changes (default method, remove a method, reset the PIN, unblock, one-time bypass), each logged.

use std::time::Duration;

use super::changes::{self, Change};
use super::signins::{self, Attempt, Filter, Query};
use super::{Actor, AdminError, refused};
use crate::login::{bypass_key, lockout as password_lockout};
use crate::mfa::Method;
use crate::mfa::lockout as code_lockout;
use crate::mfa::registration::{self, Phone, PhoneKind, PhoneSource, Registration};
use crate::mfa::settings::MfaSettings;
use crate::store::{Store, StoreError};

/// What the help desk can do to a user's second factor. Closed set; each is one log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `None`: the company default applies again.
    SetDefault(Option<Method>),
    RemoveToken {
        id: String,
    },
    RemovePushDevice {
        id: String,
    },
    /// Only phones enrolled in Tessera; directory phones change in the directory.
    RemovePhone {
        number: String,
    },
    /// Adds a phone (typed as the help desk got it; normalised to E.164 here).
    AddPhone {
        number: String,
        kind: PhoneKind,
    },
    /// Forgets the user's security answers (they set new ones, e.g. in the portal).
    ClearQuestions,
    /// Forgets the user's PIN: they choose a new one before their next call (PIN mode).
    ResetPin,
    /// Ends a fraud block, an MFA denial lockout and a code lock, and clears the failed
    /// password and wrong code counts.
    Unblock,
    Bypass {
        secs: u32,
        reason: String,
    },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::SetDefault(_) => "user.set_default",
            Action::RemoveToken { .. } => "user.remove_token",
            Action::RemovePushDevice { .. } => "user.remove_push_device",
            Action::RemovePhone { .. } => "user.remove_phone",
            Action::AddPhone { .. } => "user.add_phone",
            Action::ClearQuestions => "user.clear_questions",
            Action::ResetPin => "user.reset_pin",
            Action::Unblock => "user.unblock",
            Action::Bypass { .. } => "user.bypass",
        }
    }
}

const MAX_REASON: usize = 200;
/// Most phones enrolled in Tessera for one user (directory phones not counted).
pub const MAX_ENROLLED_PHONES: usize = 5;
/// Longest phone number as typed (spaces and separators included).
const MAX_PHONE_TYPED: usize = 32;

/// Carries out `action` on `username`'s registration and logs it.
pub async fn apply(
    store: &dyn Store,
    mfa: &MfaSettings,
    actor: &Actor,
    now: i64,
    username: &str,
    action: Action,
) -> Result<Change, AdminError> {
    let target = format!("user:{}", username.to_lowercase());
    let (before, after) = match &action {
        Action::Bypass { secs, reason } => {
            if !mfa.allow_bypass {
                return refused("One-time bypass is switched off (adapter setting allow_bypass).");
            }
            if !(30..=86_400).contains(secs) {
                return refused("A bypass lasts between 30 seconds and 24 hours.");
            }
            let reason = reason.trim();
            if reason.is_empty()
                || reason.len() > MAX_REASON
                || reason.chars().any(char::is_control)
            {
                return refused("Give a reason (a ticket number, up to 200 characters, one line).");
            }
            store
                .put(
                    &bypass_key(username),
                    reason.as_bytes(),
                    Some(Duration::from_secs((*secs).into())),
                )
                .await?;
            (None, Some(format!("one sign-in within {secs} s: {reason}")))
        }
        Action::AddPhone { number, kind } => {
            let typed = number.trim();
            let normal = (typed.len() <= MAX_PHONE_TYPED)
                .then(|| registration::normalize_phone(typed, &mfa.default_country_code))
                .flatten();
            let Some(e164) = normal else {
                return refused(
                    "That does not look like a phone number. Include the country code, e.g. +1 555 0100.",
                );
            };
            let (_, outcome) =
                registration::update(store, username, |r| add_phone(r, &e164, *kind)).await?;
            match outcome {
                Ok(x) => x,
                Err(message) => return refused(message),
            }
        }
        Action::SetDefault(Some(m)) if !mfa.methods.contains(m) => {
            return refused("That method is not offered (adapter setting methods).");
        }
        _ => {
            let (reg, outcome) =
                registration::update(store, username, |r| change(r, &action, now)).await?;
            let (before, after) = match outcome {
                Ok(x) => x,
                Err(message) => return refused(message),
            };
            if action == Action::Unblock {
                password_lockout::clear(store, &reg.username).await?;
            }
            (before, after)
        }
    };
    let c = Change::new(actor, now, action.name(), &target, before, after);
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

/// A new enrollment link for `username` (`mfa::enroll_link`): the user opens it, scans the
/// QR code and confirms one code to add an authenticator app. Logged without the link,
/// which is returned once, as a URL under `public_base`, for the help desk to hand over.
pub async fn enrollment_link(
    store: &dyn Store,
    secrets: &crate::mfa::secrets::SecretBox,
    mfa: &MfaSettings,
    actor: &Actor,
    now: i64,
    username: &str,
    public_base: &str,
) -> Result<(Change, String), AdminError> {
    if !mfa.apps_allowed() {
        return refused(
            "Authenticator apps are switched off (adapter settings methods and oath_tokens).",
        );
    }
    let hours = mfa.enrollment_link_hours;
    let (token, expires) =
        crate::mfa::enroll_link::create(store, secrets, username, hours, now).await?;
    let until = time::OffsetDateTime::from_unix_timestamp(expires)
        .map_or_else(|_| expires.to_string(), crate::saml::saml_time);
    let target = format!("user:{}", username.to_lowercase());
    let after = format!("authenticator app enrollment link, usable once until {until}");
    let c = Change::new(
        actor,
        now,
        "user.enrollment_link",
        &target,
        None,
        Some(after),
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok((c, format!("{public_base}/enroll/link/{token}")))
}

/// Adds an enrolled phone unless it is there already or the user has the most allowed.
fn add_phone(
    r: &mut Registration,
    e164: &str,
    kind: PhoneKind,
) -> Result<(Option<String>, Option<String>), &'static str> {
    let enrolled = r
        .phones
        .iter()
        .filter(|p| p.source == PhoneSource::Enrolled);
    if enrolled.clone().any(|p| p.number == e164) {
        return Err("This user already has that phone number.");
    }
    if enrolled.count() >= MAX_ENROLLED_PHONES {
        return Err("This user has the most phones allowed (5); remove one first.");
    }
    r.phones.push(Phone {
        number: e164.to_owned(),
        kind,
        source: PhoneSource::Enrolled,
    });
    let kind = match kind {
        PhoneKind::Mobile => "mobile",
        PhoneKind::Office => "office",
    };
    Ok((
        None,
        Some(format!("{kind} phone {}", crate::mfa::mask_phone(e164))),
    ))
}

/// The registration change of `action`: (before, after) as the log shows them, or why not.
fn change(
    r: &mut Registration,
    action: &Action,
    now: i64,
) -> Result<(Option<String>, Option<String>), &'static str> {
    let method_name = |m: Option<Method>| m.map_or("company default", Method::as_str).to_owned();
    match action {
        Action::SetDefault(m) => {
            let before = method_name(r.default_method);
            r.default_method = *m;
            Ok((Some(before), Some(method_name(*m))))
        }
        Action::RemoveToken { id } => {
            let label = r
                .tokens
                .iter()
                .find(|t| &t.id == id)
                .map(|t| t.label.clone());
            match label {
                Some(l) if r.remove_token(id) => Ok((Some(format!("token {l} ({id})")), None)),
                _ => Err("No such token."),
            }
        }
        Action::RemovePushDevice { id } => {
            let label = r
                .push_devices
                .iter()
                .find(|d| &d.id == id)
                .map(|d| d.label.clone());
            let Some(l) = label else {
                return Err("No such push device.");
            };
            r.push_devices.retain(|d| &d.id != id);
            Ok((Some(format!("push device {l} ({id})")), None))
        }
        Action::RemovePhone { number } => {
            let n = r.phones.len();
            r.phones
                .retain(|p| !(p.number == *number && p.source == PhoneSource::Enrolled));
            if r.phones.len() == n {
                return Err("No such enrolled phone (directory phones change in the directory).");
            }
            Ok((
                Some(format!("phone {}", crate::mfa::mask_phone(number))),
                None,
            ))
        }
        Action::ClearQuestions => {
            let n = r.security_answers.len();
            if n == 0 {
                return Err("This user has no security answers.");
            }
            r.security_answers.clear();
            r.security_answers_set_at = None;
            Ok((Some(format!("{n} security questions answered")), None))
        }
        Action::ResetPin => {
            if r.pin_hash.take().is_none() {
                return Err("This user has no PIN.");
            }
            r.pin_set_at = None;
            Ok((Some("PIN set".into()), Some("no PIN".into())))
        }
        Action::Unblock => {
            let mut before = match (r.blocked_until.filter(|&u| u > now), r.mfa_denials) {
                (Some(_), d) => format!(
                    "blocked ({}), {d} denials",
                    r.block_reason.as_deref().unwrap_or("no reason")
                ),
                (None, d) => format!("{d} denials"),
            };
            if r.codes_locked(now) {
                before.push_str(", codes locked");
            }
            r.blocked_until = None;
            r.block_reason = None;
            r.mfa_denials = 0;
            // Ending the lock now also starts a new wrong-code count (`mfa::lockout`).
            r.codes_locked_until = Some(now);
            r.code_lockouts = 0;
            Ok((Some(before), Some("unblocked".into())))
        }
        Action::Bypass { .. } | Action::AddPhone { .. } => Err("not a registration change"),
    }
}

/// Everything the user page shows.
pub struct UserView {
    pub registration: Registration,
    pub bypass_pending: bool,
    /// Failed passwords counted now: (unfamiliar addresses, familiar addresses).
    pub password_failures: (i64, i64),
    /// Wrong codes counted now towards the code lock.
    pub code_failures: i64,
    pub recent: Vec<Attempt>,
}

/// Reads a user's registration, pending bypass, soft-lockout count and the last 30 days of
/// sign-ins (newest first, at most `recent`).
pub async fn view(
    store: &dyn Store,
    username: &str,
    now: i64,
    recent: usize,
) -> Result<UserView, StoreError> {
    let registration = registration::load(store, username).await?;
    let bypass_pending = store.get(&bypass_key(username)).await?.is_some();
    let password_failures = password_lockout::failures(store, username).await?;
    let code_failures = store
        .get(&code_lockout::failure_key(&registration))
        .await?
        .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0);
    let to_ms = now * 1000 + 999;
    let q = Query {
        from_ms: to_ms - 30 * 86_400_000,
        to_ms,
        result: None,
        filter: Filter::default(),
    };
    let mut attempts = signins::search(store, &q).await?.0;
    attempts.retain(|a| {
        a.user.as_deref().is_some_and(|u| {
            let (short, _) = crate::directory::split_login(u);
            short.eq_ignore_ascii_case(username)
        })
    });
    attempts.truncate(recent);
    Ok(UserView {
        registration,
        bypass_pending,
        password_failures,
        code_failures,
        recent: attempts,
    })
}
