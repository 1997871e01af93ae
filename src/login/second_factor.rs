//! AwaitSecondFactor and ChooseMethod: which method runs, starting it, reading its outcome.

use std::net::IpAddr;

use super::{
    AuthMethod, Deps, Event, Flow, LoginState, Note, SecondFactor, SecondFactorRule, StepError,
    end_with,
};
use crate::audit::Outcome;
use crate::directory::UserInfo;
use crate::i18n::msgid;
use crate::mfa::challenge::{self, mac_eq};
use crate::mfa::delivery::{self, Channel, Purpose, Refused, code_mac};
use crate::mfa::oath::Verdict;
use crate::mfa::registration::{self, Phone, Registration, TokenKind};
use crate::mfa::settings::SmsMode;
use crate::mfa::tokens::inventory;
use crate::mfa::{Challenge, ChallengeStatus, Method, lockout, mask_phone, oath, questions};
use crate::store::StoreError;

type Step = Result<(LoginState, Note), StepError>;

const NOT_CORRECT: &str = "That code is not correct. Try again.";
/// A right code whose time step was already used (RFC 6238 §5.2): waiting is the fix.
const ALREADY_USED: &str = "This code has already been used. Wait for the next code, then type it.";
/// Which answer was wrong is not said: that would let a guesser work on one at a time.
const WRONG_ANSWERS: &str = "At least one answer is not correct. Try again.";
/// Code entry locked (`mfa::lockout`), other methods left.
const CODES_LOCKED: &str = "Too many incorrect codes were entered for your account, so codes are not accepted for now. Choose another option, or try again later.";
/// Code entry locked and the user has no other method.
const CODES_LOCKED_ONLY: &str = "Too many incorrect codes were entered for your account, so codes are not accepted for now. Try again later or contact your help desk.";

/// After a correct password: decide whether and how the second factor runs.
pub(super) async fn after_password(flow: &Flow, user: UserInfo, deps: &Deps<'_>) -> Step {
    let password_only = |reason: &str| {
        Ok((
            LoginState::Authenticated {
                user: user.clone(),
                methods: vec![AuthMethod::Password],
                authn_instant: deps.clock.unix(),
            },
            Note::ok(Some("password"), reason.to_owned()),
        ))
    };
    match deps.rule {
        SecondFactorRule::NotRequired => {
            return password_only("no second factor required for this application");
        }
        SecondFactorRule::Required if !deps.mfa.enabled => {
            return password_only("second factor switched off");
        }
        SecondFactorRule::Required => {
            // A trusted network never matches a proxy's own address: one containing the load
            // balancer would otherwise skip the second factor for everyone behind it.
            if let Ok(ip) = flow.client_ip.parse::<IpAddr>()
                && !deps.is_proxy(&flow.client_ip)
                && deps.trusted.iter().any(|n| n.contains(ip))
            {
                return password_only("trusted network");
            }
            // A one-time bypass is consumed by the first sign-in that uses it.
            if deps.mfa.allow_bypass && deps.store.delete(&bypass_key(&user.username)).await? {
                return password_only("one-time bypass");
            }
        }
        SecondFactorRule::Always => {}
    }
    let reg = registration::load(deps.store, &user.username).await?;
    let now = deps.clock.unix();
    if reg.is_blocked(now) {
        let message =
            "Sign-in for your account is blocked after a fraud report. Contact your help desk.";
        return Ok(end_with(
            message,
            Note::fail(None, "blocked after fraud report"),
        ));
    }
    if reg.mfa_denials >= deps.mfa.denial_lockout_threshold {
        let message = "Your verification is locked after repeated denials. Contact your help desk.";
        return Ok(end_with(
            message,
            Note::fail(None, "MFA locked after denials"),
        ));
    }
    let options = available(deps, &user, &reg);
    let Some(first) = default_method(deps, &reg, &options) else {
        if reg.codes_locked(now) && !available_unlocked(deps, &user, &reg).is_empty() {
            return Ok(end_with(
                CODES_LOCKED_ONLY,
                Note::fail(None, "verification codes locked"),
            ));
        }
        if deps.mfa.allow_enrollment {
            return Ok((
                LoginState::Enroll {
                    user,
                    pending: None,
                    message: None,
                },
                Note::ok(
                    Some("password"),
                    "no method enrolled: offering enrollment".to_owned(),
                ),
            ));
        }
        let message = "No verification method is set up for your account. Contact your help desk.";
        return Ok(end_with(
            message,
            Note::fail(Some("password"), "no method enrolled"),
        ));
    };
    begin(flow, user, first, &reg, deps).await
}

pub fn bypass_key(username: &str) -> String {
    format!("bypass:{}", username.to_lowercase())
}

/// The methods this user can use now: allowed by policy, with something enrolled, and not a
/// typed code while code entry is locked.
fn available(deps: &Deps<'_>, user: &UserInfo, reg: &Registration) -> Vec<Method> {
    let mut options = available_unlocked(deps, user, reg);
    if reg.codes_locked(deps.clock.unix()) {
        options.retain(|m| !takes_typed_code(*m, deps));
    }
    options
}

/// Methods whose proof is a code typed into the page, which a script can guess.
fn takes_typed_code(method: Method, deps: &Deps<'_>) -> bool {
    matches!(method, Method::Oath | Method::Questions)
        || (method == Method::Sms && deps.mfa.sms_mode == SmsMode::OneWay)
}

/// `available`, whatever the code lock says.
fn available_unlocked(deps: &Deps<'_>, user: &UserInfo, reg: &Registration) -> Vec<Method> {
    let dir = registration::directory_phones(
        user,
        &deps.mfa.phone_attributes,
        &deps.mfa.default_country_code,
    );
    let token_allowed = reg
        .tokens
        .iter()
        .any(|t| deps.mfa.oath_tokens.contains(&t.kind.class()));
    Method::ALL
        .into_iter()
        .filter(|m| deps.mfa.methods.contains(m) && reg.has_method_material_with(*m, &dir))
        .filter(|m| *m != Method::Oath || token_allowed)
        .filter(|m| *m != Method::Questions || enough_answers(deps, reg))
        .collect()
}

/// Security questions count only with answers to as many offered questions as a sign-in asks.
fn enough_answers(deps: &Deps<'_>, reg: &Registration) -> bool {
    questions::usable(&reg.security_answers, deps.mfa).len() >= deps.mfa.questions_required as usize
}

fn phones(deps: &Deps<'_>, user: &UserInfo, reg: &Registration) -> Vec<Phone> {
    let dir = registration::directory_phones(
        user,
        &deps.mfa.phone_attributes,
        &deps.mfa.default_country_code,
    );
    reg.all_phones(&dir)
}

/// The user's own default, else the company default, else the first available method.
fn default_method(deps: &Deps<'_>, reg: &Registration, options: &[Method]) -> Option<Method> {
    reg.default_method
        .filter(|m| options.contains(m))
        .or(Some(deps.mfa.company_default).filter(|m| options.contains(m)))
        .or_else(|| options.first().copied())
}

/// What "Use a different verification option" lists, with the words users know.
pub struct ChoiceOption {
    pub method: Method,
    /// English, with `{phone}` where the masked number goes (translated when rendered).
    pub label: &'static str,
    /// The masked number of the user's first phone ("" without one).
    pub phone: String,
}

/// The chooser's options: available methods; the OATH code only when fallback is on or it is
/// the user's own method.
pub async fn chooser(deps: &Deps<'_>, user: &UserInfo) -> Result<Vec<ChoiceOption>, StoreError> {
    let reg = registration::load(deps.store, &user.username).await?;
    let phone = phones(deps, user, &reg)
        .first()
        .map(|p| mask_phone(&p.number))
        .unwrap_or_default();
    let default = default_method(deps, &reg, &available(deps, user, &reg));
    // Without "allow users to select method" the user keeps the default set for them: the
    // chooser offers it again, plus the code fallback.
    let offered = |m: Method| {
        let fallback = m == Method::Oath && deps.mfa.oath_fallback;
        if deps.mfa.allow_method_choice {
            m != Method::Oath || fallback || default == Some(m)
        } else {
            default == Some(m) || fallback
        }
    };
    Ok(available(deps, user, &reg)
        .into_iter()
        .filter(|m| offered(*m))
        .map(|method| ChoiceOption {
            method,
            label: match method {
                Method::Push => msgid("Send notification to my mobile app"),
                Method::Call => msgid("Call me at {phone}"),
                Method::Sms => msgid("Text me at {phone}"),
                Method::Oath => oath_label(deps, &reg),
                Method::Questions => msgid("Answer security questions"),
            },
            phone: phone.clone(),
        })
        .collect())
}

/// "…from my hardware token" for a user whose usable tokens are all key fobs, whom "mobile
/// app" would confuse; "…mobile app or hardware token" when both kinds are usable (both
/// codes are accepted, and a user holding only the fob must not think it is not); the app
/// wording otherwise.
fn oath_label(deps: &Deps<'_>, reg: &Registration) -> &'static str {
    oath_label_for(&reg.tokens, &deps.mfa.oath_tokens)
}

fn oath_label_for(
    tokens: &[crate::mfa::registration::OathToken],
    allowed: &[crate::mfa::settings::OathKind],
) -> &'static str {
    let usable = |k: fn(&TokenKind) -> bool| {
        tokens
            .iter()
            .any(|t| k(&t.kind) && allowed.contains(&t.kind.class()))
    };
    let app = usable(|k| *k == TokenKind::App);
    // A hardware token is in the registration only once activated (`inventory::activate`).
    let hardware = usable(|k| matches!(k, TokenKind::Hardware { .. }));
    match (app, hardware) {
        (true, true) => msgid("Use verification code from my mobile app or hardware token"),
        (true, false) => msgid("Use verification code from my mobile app"),
        _ => msgid("Use verification code from my hardware token"),
    }
}

fn waiting(user: UserInfo, method: Method, c: Option<&Challenge>) -> LoginState {
    LoginState::AwaitSecondFactor(SecondFactor {
        user,
        method,
        challenge: c.map(|c| c.id.clone()),
        deadline: c.map(|c| c.deadline),
        destination: c.and_then(|c| c.destination.clone()),
        number: c.and_then(|c| c.number),
        message: None,
        code_failures: 0,
        make_default: false,
        asked: Vec::new(),
    })
}

fn choose(user: UserInfo, message: &str) -> LoginState {
    LoginState::ChooseMethod {
        user,
        message: Some(message.to_owned()),
        code_failures: 0,
    }
}

/// BeginAuthentication: start `method` for the user.
pub(super) async fn begin(
    flow: &Flow,
    user: UserInfo,
    method: Method,
    reg: &Registration,
    deps: &Deps<'_>,
) -> Step {
    let started = Note::started(Some(method.as_str()), None);
    if method == Method::Call && super::pin::needed(reg, deps) {
        return Ok(super::pin::ask(user, reg));
    }
    let Some(channel) = Channel::of(method) else {
        let mut state = waiting(user, method, None);
        if let LoginState::AwaitSecondFactor(w) = &mut state
            && method == Method::Questions
        {
            // Picked once per attempt of the method and kept in the flow: reloading the
            // page does not show other questions.
            w.asked = questions::pick(&reg.security_answers, deps.mfa);
        }
        return Ok((state, started));
    };
    let sent = match destination(deps, &user, reg, channel) {
        Ok(to) => {
            let purpose = Purpose::SignIn { flow_id: &flow.id };
            let sender = deps.sender();
            let sent = delivery::start(&sender, channel, &to, &user.username, purpose).await;
            deliverable(sent)?.map_err(|e| e.to_string())
        }
        Err(reason) => Err(reason.to_owned()),
    };
    match sent {
        Ok(c) => Ok((waiting(user, method, Some(&c)), started)),
        Err(reason) => {
            let message = "We could not reach your device. Choose another verification option.";
            Ok((
                choose(user, message),
                Note::fail(Some(method.as_str()), reason),
            ))
        }
    }
}

/// Where a sign-in's challenge goes: the first push device, or the first phone.
fn destination(
    deps: &Deps<'_>,
    user: &UserInfo,
    reg: &Registration,
    channel: Channel,
) -> Result<String, &'static str> {
    match channel {
        Channel::Push => reg
            .push_devices
            .first()
            .map(|d| d.topic.clone())
            .ok_or("no push device"),
        Channel::Call | Channel::Text => phones(deps, user, reg)
            .into_iter()
            .next()
            .map(|p| p.number)
            .ok_or("no phone number"),
    }
}

/// A delivery's outcome as a step sees it: `Ok(Err(..))` when the user can route around it
/// (the gateway failed, the destination is not reachable); the step's error when nothing
/// can go on (the store or the random generator failed).
pub(super) fn deliverable(
    sent: Result<Challenge, Refused>,
) -> Result<Result<Challenge, Refused>, StepError> {
    match sent {
        Ok(c) => Ok(Ok(c)),
        Err(Refused::Store(e)) => Err(StepError::Store(e)),
        Err(Refused::Random(e)) => Err(StepError::Random(e)),
        Err(e @ (Refused::Gateway(_) | Refused::Destination(_))) => Ok(Err(e)),
    }
}

/// Methods whose page waits for an answer given elsewhere (and so can time out).
fn waits(method: Method, deps: &Deps<'_>) -> bool {
    method.is_out_of_band() || (method == Method::Sms && deps.mfa.sms_mode == SmsMode::TwoWay)
}

/// Whether `code` is the SMS code of `c` and still within its lifetime.
pub(super) fn sms_code_ok(c: &Challenge, code: &str, deps: &Deps<'_>) -> bool {
    let code = code.trim();
    let fresh = deps.clock.unix() <= c.created + i64::from(deps.mfa.sms_code_lifetime_secs);
    let expected = c.code_hash.as_deref().unwrap_or_default();
    fresh
        && mac_eq(
            expected,
            &code_mac(&delivery::code_key(deps.secrets), &c.id, code),
        )
}

/// Nothing changes; the page simply shows the state again.
fn unchanged(w: SecondFactor, reason: Option<String>) -> (LoginState, Note) {
    let method = Some(w.method.as_str());
    (
        LoginState::AwaitSecondFactor(w),
        Note {
            method,
            outcome: Outcome::Ignored,
            reason,
        },
    )
}

/// TryEndAuthentication for the running method.
pub(super) async fn on_event(mut w: SecondFactor, event: Event, deps: &Deps<'_>) -> Step {
    w.message = None;
    match event {
        Event::Poll => match w.challenge.clone() {
            Some(id) => polled(w, &id, deps).await,
            None => Ok(unchanged(w, None)),
        },
        Event::Code { code } if w.method != Method::Questions => {
            code_entered(w, Typed::Code(code), deps).await
        }
        Event::Answers { answers } if w.method == Method::Questions => {
            code_entered(w, Typed::Answers(answers), deps).await
        }
        Event::UseDifferent => use_different(w, deps).await,
        other => {
            let reason = format!("event {} ignored", other.name());
            Ok(unchanged(w, Some(reason)))
        }
    }
}

/// The waiting page looked again: the challenge's outcome, or its deadline passing.
async fn polled(w: SecondFactor, id: &str, deps: &Deps<'_>) -> Step {
    let m = Some(w.method.as_str());
    let status = challenge::load(deps.store, id).await?.map(|c| c.status);
    let expired = w.deadline.is_some_and(|d| deps.clock.unix() >= d) && waits(w.method, deps);
    match status {
        Some(ChallengeStatus::Approved) => verified(w, deps).await,
        Some(ChallengeStatus::Denied) => denied(w.user, w.method, deps).await,
        Some(ChallengeStatus::Fraud) => fraud(w.user, w.method, deps).await,
        Some(ChallengeStatus::Failed { reason }) => Ok((
            choose(
                w.user,
                "We could not reach you. Choose another verification option.",
            ),
            Note::fail(m, reason),
        )),
        Some(ChallengeStatus::Pending) if expired => {
            let timed_out = ChallengeStatus::Failed {
                reason: "timed out".into(),
            };
            challenge::resolve(deps.store, id, timed_out).await?;
            let next = choose(
                w.user,
                "We didn't receive a response. Choose another verification option.",
            );
            Ok((next, Note::fail(m, "timed out")))
        }
        Some(ChallengeStatus::Pending) => Ok(unchanged(w, None)),
        None => Ok((
            choose(
                w.user,
                "The verification request expired. Choose a verification option.",
            ),
            Note::fail(m, "challenge expired"),
        )),
    }
}

/// "Use a different verification option" while a method runs: back to the chooser.
async fn use_different(w: SecondFactor, deps: &Deps<'_>) -> Step {
    if let Some(id) = w.challenge.as_deref() {
        // A late approval of the abandoned challenge must not count for anything.
        let abandoned = ChallengeStatus::Failed {
            reason: "abandoned".into(),
        };
        challenge::resolve(deps.store, id, abandoned).await?;
    }
    let note = Note {
        method: Some(w.method.as_str()),
        outcome: Outcome::Failure,
        reason: Some("user asked for a different option".into()),
    };
    let next = LoginState::ChooseMethod {
        user: w.user,
        message: None,
        code_failures: w.code_failures,
    };
    Ok((next, note))
}

/// What the user typed: a code, or answers to the security questions asked.
enum Typed {
    Code(String),
    Answers(Vec<String>),
}

/// A typed code (app, hardware token, one-way text) or security answers: counted per user
/// across sign-ins before it is checked (`mfa::lockout`), then per sign-in.
async fn code_entered(mut w: SecondFactor, typed: Typed, deps: &Deps<'_>) -> Step {
    let m = Some(w.method.as_str());
    let now = deps.clock.unix();
    let reg = registration::load(deps.store, &w.user.username).await?;
    let nth = match lockout::reserve(deps.store, deps.mfa, &reg, now).await? {
        lockout::Attempt::Check { nth } => nth,
        lockout::Attempt::Locked { .. } => {
            return codes_locked(w, "code refused: codes locked", deps).await;
        }
    };
    let verdict = match (w.method, w.challenge.as_deref(), &typed) {
        (Method::Questions, _, Typed::Answers(given)) => Verdict::from(questions::all_correct(
            &reg.security_answers,
            &w.asked,
            given,
        )),
        (Method::Oath, _, Typed::Code(code)) => oath_check(&reg, code, deps).await?,
        (Method::Sms, Some(id), Typed::Code(code)) => {
            Verdict::from(match challenge::load(deps.store, id).await? {
                Some(c) if sms_code_ok(&c, code, deps) => {
                    challenge::resolve(deps.store, id, ChallengeStatus::Approved)
                        .await?
                        .is_some()
                }
                _ => false,
            })
        }
        _ => Verdict::Wrong,
    };
    if verdict == Verdict::Accepted {
        deps.later.push(lockout::success_write(&reg));
        return verified(w, deps).await;
    }
    if lockout::failed(deps.store, deps.mfa, &w.user.username, nth, now)
        .await?
        .is_some()
    {
        return codes_locked(w, "wrong code; codes now locked", deps).await;
    }
    w.code_failures += 1;
    if w.code_failures >= deps.mfa.max_code_attempts {
        let message = "Too many incorrect codes. Go back to the application and start again.";
        return Ok(end_with(message, Note::fail(m, "too many wrong codes")));
    }
    // A used code is refused and counted like a wrong one (whoever replays a code is not
    // proving anything), but the log and the user learn which it was.
    let (message, reason) = match (typed, verdict) {
        (Typed::Code(_), Verdict::Replayed) => (ALREADY_USED, "code already used"),
        (Typed::Code(_), _) => (NOT_CORRECT, "wrong code"),
        (Typed::Answers(_), _) => (WRONG_ANSWERS, "wrong answers"),
    };
    w.message = Some(message.into());
    Ok((LoginState::AwaitSecondFactor(w), Note::fail(m, reason)))
}

/// Code entry is locked: the chooser without the code methods, or the end of the sign-in
/// when nothing else is left.
async fn codes_locked(w: SecondFactor, reason: &str, deps: &Deps<'_>) -> Step {
    let m = Some(w.method.as_str());
    if chooser(deps, &w.user).await?.is_empty() {
        return Ok(end_with(CODES_LOCKED_ONLY, Note::fail(m, reason)));
    }
    let next = LoginState::ChooseMethod {
        user: w.user,
        message: Some(CODES_LOCKED.into()),
        code_failures: w.code_failures,
    };
    Ok((next, Note::fail(m, reason)))
}

pub(super) async fn on_choose(
    flow: &Flow,
    user: UserInfo,
    message: Option<String>,
    code_failures: u32,
    event: Event,
    deps: &Deps<'_>,
) -> Step {
    match event {
        Event::Choose {
            method,
            make_default,
        } if chooser(deps, &user)
            .await?
            .iter()
            .any(|o| o.method == method) =>
        {
            let reg = registration::load(deps.store, &user.username).await?;
            let make_default = make_default && deps.mfa.allow_method_choice;
            with_make_default(begin(flow, user, method, &reg, deps).await?, make_default)
        }
        Event::Choose { method, .. } => {
            let message = Some("That option is not available for your account.".into());
            let next = LoginState::ChooseMethod {
                user,
                message,
                code_failures,
            };
            Ok((
                next,
                Note::fail(Some(method.as_str()), "method not available"),
            ))
        }
        other => {
            let same = LoginState::ChooseMethod {
                user,
                message,
                code_failures,
            };
            let reason = Some(format!("event {} ignored", other.name()));
            Ok((
                same,
                Note {
                    method: None,
                    outcome: Outcome::Ignored,
                    reason,
                },
            ))
        }
    }
}

/// Checks the code against each of the user's OATH tokens, each accepted once (RFC 6238 §5.2):
/// accepted by one token, else used already on one (`Replayed`), else wrong.
async fn oath_check(
    reg: &Registration,
    code: &str,
    deps: &Deps<'_>,
) -> Result<Verdict, StoreError> {
    let allowed = reg
        .tokens
        .iter()
        .filter(|t| deps.mfa.oath_tokens.contains(&t.kind.class()));
    let mut verdict = Verdict::Wrong;
    for t in allowed {
        let Ok(secret) = reg.oath_secret(deps.secrets, &t.id) else {
            tracing::error!(user = %reg.username, token = %t.id, "OATH secret cannot be opened (wrong mfa.key?)");
            continue;
        };
        if let TokenKind::Hardware { serial } = &t.kind
            && let Some(v) = hardware_check(reg, serial, code, deps).await?
        {
            match v {
                Verdict::Accepted => return Ok(Verdict::Accepted),
                Verdict::Replayed => verdict = Verdict::Replayed,
                Verdict::Wrong => {}
            }
            continue;
        }
        let replay = format!("{}/{}", reg.username.to_lowercase(), t.id);
        let now = deps.clock.unix();
        match oath::check_once(deps.store, &replay, &secret, &t.params, code.trim(), now).await? {
            Verdict::Accepted => return Ok(Verdict::Accepted),
            Verdict::Replayed => verdict = Verdict::Replayed,
            Verdict::Wrong => {}
        }
    }
    Ok(verdict)
}

/// A hardware token from the inventory (`mfa::tokens::inventory`): assigned to this user,
/// activated, each code used once (TOTP step marker, HOTP counter). `None` for a token that
/// is only in the registration (added before the inventory existed): checked as an app's.
async fn hardware_check(
    reg: &Registration,
    serial: &str,
    code: &str,
    deps: &Deps<'_>,
) -> Result<Option<Verdict>, StoreError> {
    if inventory::get(deps.store, serial).await?.is_none() {
        return Ok(None);
    }
    let inv = inventory::Deps {
        store: deps.store,
        secrets: deps.secrets,
        now: deps.clock.unix(),
    };
    let windows = inventory::HotpWindows::of(deps.mfa);
    match inventory::check_for_within(&inv, windows, serial, &reg.username, code).await {
        Ok(v) => Ok(Some(v)),
        Err(inventory::TokenError::Store(e)) => Err(e),
        Err(e) => {
            tracing::error!(user = %reg.username, serial, error = %e, "hardware token cannot be checked");
            Ok(Some(Verdict::Wrong))
        }
    }
}

/// Marks the step `begin` led to (the wait, or the PIN page before a call) so that its
/// success makes the method the user's default.
pub(super) fn with_make_default(step: (LoginState, Note), make_default: bool) -> Step {
    let (mut state, note) = step;
    match &mut state {
        LoginState::AwaitSecondFactor(w) => w.make_default = make_default,
        LoginState::SetPin {
            make_default: m, ..
        } => *m = make_default,
        _ => {}
    }
    Ok((state, note))
}

/// The running method succeeded; a method picked with "make it my default" becomes the
/// user's default now, not when picked, so only a proven second factor can change it.
async fn verified(w: SecondFactor, deps: &Deps<'_>) -> Step {
    let make_default = w.make_default && deps.mfa.allow_method_choice;
    if make_default {
        registration::update(deps.store, &w.user.username, |r| {
            r.default_method = Some(w.method);
        })
        .await?;
    }
    let (state, mut note) = authenticated(w.user, w.method, deps);
    if make_default {
        note.reason = Some(format!("default method now {}", w.method.as_str()));
    }
    Ok((state, note))
}

pub(super) fn authenticated(user: UserInfo, method: Method, deps: &Deps<'_>) -> (LoginState, Note) {
    let state = LoginState::Authenticated {
        user,
        methods: vec![AuthMethod::Password, method.into()],
        authn_instant: deps.clock.unix(),
    };
    (state, Note::ok(Some(method.as_str()), None))
}

/// A denial counts towards the MFA lockout (MFA Server "lockout counts MFA denials").
async fn denied(user: UserInfo, method: Method, deps: &Deps<'_>) -> Step {
    let (reg, ()) =
        registration::update(deps.store, &user.username, |r| r.mfa_denials += 1).await?;
    let m = Some(method.as_str());
    if reg.mfa_denials >= deps.mfa.denial_lockout_threshold {
        let message = "Your verification is locked after repeated denials. Contact your help desk.";
        return Ok(end_with(message, Note::fail(m, "denied; MFA now locked")));
    }
    Ok((
        choose(user, "The sign-in request was denied on your device."),
        Note::fail(m, "denied by user"),
    ))
}

/// "Deny and report fraud" / 0# on a call: block the account for the configured days.
async fn fraud(user: UserInfo, method: Method, deps: &Deps<'_>) -> Step {
    let until = deps.clock.unix() + i64::from(deps.mfa.fraud_block_days) * 86_400;
    let reason = format!(
        "fraud reported via {} at {}",
        method.as_str(),
        crate::saml::saml_time(deps.clock.now())
    );
    registration::update(deps.store, &user.username, |r| {
        r.blocked_until = Some(until);
        r.block_reason = Some(reason.clone());
    })
    .await?;
    tracing::warn!(target: "audit", user = %user.username, method = method.as_str(), "fraud reported: account blocked");
    let message = "You reported this sign-in as fraud. Your account is blocked; your help desk has been told.";
    Ok(end_with(
        message,
        Note::fail(Some(method.as_str()), "fraud reported"),
    ))
}

#[cfg(test)]
mod label_tests {
    use super::*;
    use crate::mfa::settings::OathKind;

    #[test]
    fn the_oath_label_names_the_kinds_the_user_can_use() {
        let sb = crate::mfa::secrets::SecretBox::from_key([7; 32]);
        let mut reg = Registration::default();
        let params = crate::mfa::oath::OathParams::default();
        reg.add_oath(
            &sb,
            "app",
            TokenKind::App,
            b"12345678901234567890",
            params,
            0,
        );
        let both = [OathKind::App, OathKind::Hardware];
        let label = |r: &Registration, allowed: &[OathKind]| oath_label_for(&r.tokens, allowed);
        assert_eq!(
            label(&reg, &both),
            "Use verification code from my mobile app"
        );
        let fob = TokenKind::Hardware {
            serial: "T1".into(),
        };
        reg.add_oath(&sb, "fob", fob, b"abcdefghijabcdefghij", params, 0);
        assert_eq!(
            label(&reg, &both),
            "Use verification code from my mobile app or hardware token"
        );
        // Hardware tokens switched off: only the app counts, and only the app is named.
        assert_eq!(
            label(&reg, &[OathKind::App]),
            "Use verification code from my mobile app"
        );
        reg.tokens.retain(|t| t.kind != TokenKind::App);
        assert_eq!(
            label(&reg, &both),
            "Use verification code from my hardware token"
        );
    }
}
