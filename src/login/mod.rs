//! The login state machine: one `Flow` per sign-in, advanced only by `Flow::step`.
//!
//! ```text
//! AwaitPassword ──password ok──▶ (MFA needed? trusted network / bypass / RP policy)
//!      │                               │ no                      │ yes
//!      │ refused (counted,             ▼                         ▼
//!      │  soft lockout, equal delay) Authenticated ◀──ok── AwaitSecondFactor{method, challenge, deadline}
//!      ▼                               ▲                         │ timeout / deny / fail / "different option"
//!   Denied                             └──────ok──── ChooseMethod ◀┘
//!                                      └──────ok──── Enroll (user without any method, if allowed)
//! ```
//! Each transition writes one audit event; each state renders one template (web/login.rs).
//! See DESIGN.md "The login, as a state machine".

pub mod authn_context;
mod enroll;
pub use enroll::app_aad as enroll_aad;
pub mod lockout;
pub use second_factor::{ChoiceOption, bypass_key, chooser};
mod password;
mod pin;
mod second_factor;
pub mod session;
pub mod slo;
pub mod timing;

use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditEvent, Outcome};
use crate::clock::Clock;
use crate::directory::{Directory, UserInfo};
use crate::i18n::{Catalogue, Lang};
use crate::mfa::Method;
use crate::mfa::challenge::TokenSigner;
use crate::mfa::gateway::Gateway;
use crate::mfa::networks::NetRange;
use crate::mfa::secrets::{Sealed, SecretBox};
use crate::mfa::settings::MfaSettings;
use crate::saml::request::{NameIdPolicy, RequestedContext};
use crate::store::{Store, StoreError};

/// How the user proved who they are; feeds AuthnContextClassRef and the `amr` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    Password,
    Push,
    Call,
    Sms,
    Oath,
    Questions,
}

impl AuthMethod {
    /// RFC 8176 authentication method reference values.
    pub fn amr(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Push => "swk",
            AuthMethod::Call => "tel",
            AuthMethod::Sms => "sms",
            AuthMethod::Oath => "otp",
            AuthMethod::Questions => "kba",
        }
    }

    pub fn is_second_factor(self) -> bool {
        self != AuthMethod::Password
    }
}

impl From<Method> for AuthMethod {
    fn from(m: Method) -> Self {
        match m {
            Method::Push => AuthMethod::Push,
            Method::Call => AuthMethod::Call,
            Method::Sms => AuthMethod::Sms,
            Method::Oath => AuthMethod::Oath,
            Method::Questions => AuthMethod::Questions,
        }
    }
}

/// The protocol request waiting for this sign-in to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub rp_entity_id: String,
    pub acs_url: String,
    /// AuthnRequest ID; `None` for IdP-initiated sign-in.
    pub request_id: Option<String>,
    pub relay_state: Option<String>,
    pub force_authn: bool,
    pub requested_context: Option<RequestedContext>,
    /// The request's NameIDPolicy (SAML core §3.4.1.1); flows stored before it existed
    /// load without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_policy: Option<NameIdPolicy>,
}

/// A WS-Federation sign-in (`wa=wsignin1.0`, MS-WSFED §2.2.3) waiting for the user, its
/// reply URL already checked against the relying party's registered ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsFedPending {
    /// `wtrealm`: the relying party.
    pub realm: String,
    /// Where the token goes: the `wreply` asked for, or the RP's default reply URL.
    pub reply: String,
    /// `wctx`, returned byte for byte.
    pub context: Option<String>,
    /// `wfresh` in minutes (0: a new sign-in was demanded).
    pub fresh: Option<u32>,
}

/// What a sign-in is for: closed set, each with its own ending in `web::login::advance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Pending {
    /// A relying party's SAML request (SP- or IdP-initiated): ends in an assertion.
    Saml(PendingRequest),
    /// A WS-Federation relying party's sign-in: ends in an RSTR.
    WsFed(WsFedPending),
    /// The admin console: always with a second factor, ends in an admin session.
    AdminConsole,
    /// The self-service portal: always with a second factor, ends in a portal session.
    Portal,
}

impl Pending {
    /// The relying party's entity ID, or what the audit log calls the console.
    pub fn audit_name(&self) -> &str {
        match self {
            Pending::Saml(p) => &p.rp_entity_id,
            Pending::WsFed(p) => &p.realm,
            Pending::AdminConsole => "admin console",
            Pending::Portal => "portal",
        }
    }
}

/// Whether a sign-in needs the second factor once the password is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorRule {
    /// The RP's policy says password only.
    NotRequired,
    /// Needed when MFA is on, unless a trusted network or a one-time bypass applies.
    Required,
    /// Needed, whatever the MFA switch, trusted networks or bypasses say (admin console).
    Always,
}

/// An enrollment started during sign-in, waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingEnrollment {
    /// An authenticator app: the secret (sealed) shown as a QR code, confirmed by one code.
    App { secret: Sealed },
    /// A phone number, confirmed by the code texted to it.
    Phone { number: String, challenge: String },
    /// A push device (ntfy topic), confirmed by approving a first notification.
    Push { topic: String, challenge: String },
}

/// A second factor in progress (the AwaitSecondFactor state's data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactor {
    pub user: UserInfo,
    pub method: Method,
    /// The challenge in the Store (push, call, text); `None` for OATH codes.
    pub challenge: Option<String>,
    /// Push / call / text: when the page stops waiting or the code expires.
    pub deadline: Option<i64>,
    /// Masked number or device the challenge went to.
    pub destination: Option<String>,
    /// Number matching: what the page shows.
    pub number: Option<u8>,
    pub message: Option<String>,
    pub code_failures: u32,
    /// The user picked this method with "make it my default": stored once it succeeds.
    #[serde(default)]
    pub make_default: bool,
    /// Security questions: the ones this sign-in asks (picked at random when it began).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state")]
pub enum LoginState {
    AwaitPassword {
        /// The name typed last time, so the page can keep it.
        login: Option<String>,
        /// What the page says about the last attempt (user-safe text).
        message: Option<String>,
        failures: u32,
    },
    AwaitSecondFactor(SecondFactor),
    ChooseMethod {
        user: UserInfo,
        message: Option<String>,
        code_failures: u32,
    },
    Enroll {
        user: UserInfo,
        pending: Option<PendingEnrollment>,
        message: Option<String>,
    },
    /// PIN mode and a call is next, but the user has no PIN or it has expired.
    SetPin {
        user: UserInfo,
        message: Option<String>,
        /// The PIN replaces an expired one (which it must differ from).
        renewing: bool,
        /// Carried over from the chooser to the call this PIN is for.
        make_default: bool,
    },
    Authenticated {
        user: UserInfo,
        methods: Vec<AuthMethod>,
        authn_instant: i64,
    },
    Denied {
        message: String,
    },
}

impl LoginState {
    pub fn name(&self) -> &'static str {
        match self {
            LoginState::AwaitPassword { .. } => "await_password",
            LoginState::AwaitSecondFactor(_) => "await_second_factor",
            LoginState::ChooseMethod { .. } => "choose_method",
            LoginState::Enroll { .. } => "enroll",
            LoginState::SetPin { .. } => "set_pin",
            LoginState::Authenticated { .. } => "authenticated",
            LoginState::Denied { .. } => "denied",
        }
    }

    fn user(&self) -> Option<&UserInfo> {
        match self {
            LoginState::AwaitSecondFactor(SecondFactor { user, .. })
            | LoginState::ChooseMethod { user, .. }
            | LoginState::Enroll { user, .. }
            | LoginState::SetPin { user, .. }
            | LoginState::Authenticated { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// What the user (or the passing of time) did.
pub enum Event {
    Password {
        login: String,
        password: String,
    },
    /// The waiting page looked again (push / call / two-way text outcome, deadline).
    Poll,
    Code {
        code: String,
    },
    /// Answers to the security questions asked, in the order asked.
    Answers {
        answers: Vec<String>,
    },
    /// "Use a different verification option".
    UseDifferent,
    Choose {
        method: Method,
        /// "Make this my default method" was ticked.
        make_default: bool,
    },
    /// A new PIN, typed twice.
    SetPin {
        pin: String,
        confirm: String,
    },
    EnrollApp,
    EnrollPhone {
        number: String,
    },
    EnrollPush,
    EnrollConfirm {
        code: String,
    },
}

impl Event {
    /// The event's name for logs; events carry secrets, so they have no `Debug`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Password { .. } => "password",
            Event::Poll => "poll",
            Event::Code { .. } => "code",
            Event::Answers { .. } => "answers",
            Event::UseDifferent => "use_different",
            Event::Choose { .. } => "choose",
            Event::SetPin { .. } => "set_pin",
            Event::EnrollApp => "enroll_app",
            Event::EnrollPhone { .. } => "enroll_phone",
            Event::EnrollPush => "enroll_push",
            Event::EnrollConfirm { .. } => "enroll_confirm",
        }
    }
}

/// Why a step could not be taken. Nothing changed: the flow is not saved, and the user may
/// try the same step again once the store or directory answers.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("directory unavailable: {0}")]
    DirectoryUnavailable(String),
    /// The random generator failed: no challenge id or code can be made safely.
    #[error("random generator failed: {0}")]
    Random(openssl::error::ErrorStack),
}

/// Failed passwords allowed within one flow before it is ended.
pub const MAX_FAILURES_PER_FLOW: u32 = 5;
/// Longest user name accepted from the form (AD's UPN limit is 1024).
pub const MAX_LOGIN_LEN: usize = 256;
/// Longest password accepted from the form; longer input is refused without a directory call.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// How much of a typed user name the audit keeps when the directory did not confirm it.
pub const AUDIT_LOGIN_CHARS: usize = 64;

#[derive(Clone, Serialize, Deserialize)]
pub struct Flow {
    pub id: String,
    /// Random secret also held in a cookie: a flow only advances in the browser that began it.
    pub browser_secret: String,
    pub request: Pending,
    pub state: LoginState,
    pub created: i64,
    pub client_ip: String,
    /// Audit events written by the last steps, for the caller to persist (not stored).
    #[serde(skip)]
    pub audit_events: Vec<(i64, String)>,
    /// The same steps in typed form, for the metrics (not stored).
    #[serde(skip)]
    pub transitions: Vec<Transition>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The browser secret is what binds the flow to its browser: keep it out of logs.
        f.debug_struct("Flow")
            .field("id", &self.id)
            .field("browser_secret", &"<redacted>")
            .field("request", &self.request)
            .field("state", &self.state)
            .field("created", &self.created)
            .field("client_ip", &self.client_ip)
            .field("audit_events", &self.audit_events)
            .field("transitions", &self.transitions)
            .finish()
    }
}

/// One transition as the metrics count it: the states' and method's names are the state
/// machine's own closed sets, never typed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `-` for the flow's start.
    pub from: &'static str,
    pub to: &'static str,
    pub method: Option<&'static str>,
    pub outcome: Outcome,
}

/// What `step` needs from the outside world.
pub struct Deps<'a> {
    pub directory: &'a dyn Directory,
    pub clock: &'a dyn Clock,
    pub store: &'a dyn Store,
    pub gateway: &'a dyn Gateway,
    pub secrets: &'a SecretBox,
    pub tokens: &'a TokenSigner,
    pub mfa: &'a MfaSettings,
    pub trusted: &'a [NetRange],
    /// `server.trusted_proxies`: a client at one of these is a proxy that did not say whom
    /// it forwards (no header), an address shared by everyone behind it.
    pub proxies: &'a [NetRange],
    pub timing: &'a timing::Timing,
    /// Our public URL, for the callback links in pushes and calls.
    pub public_base: &'a str,
    /// Shown in authenticator apps next to the account.
    pub issuer_name: &'a str,
    /// Does this sign-in need a second factor at all?
    pub rule: SecondFactorRule,
    /// The language of the page the user is on: a push, call or text started now is in it.
    pub lang: Lang,
    pub catalogue: &'a Catalogue,
    /// Writes the steps leave for the handler to send with the flow it saves, in one store
    /// round trip (`Store::write_batch`). Only writes of a step that succeeded go here: a
    /// step that fails drops them with the flow.
    pub later: crate::store::Later,
}

/// A transition's outcome as the audit log records it.
pub(crate) struct Note {
    pub method: Option<&'static str>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// The sign-in ends here with `message` for the user.
pub(crate) fn end_with(message: &str, note: Note) -> (LoginState, Note) {
    let state = LoginState::Denied {
        message: message.to_owned(),
    };
    (state, note)
}

impl Note {
    pub fn ok(method: Option<&'static str>, reason: impl Into<Option<String>>) -> Self {
        Note {
            method,
            outcome: Outcome::Success,
            reason: reason.into(),
        }
    }
    pub fn fail(method: Option<&'static str>, reason: impl Into<String>) -> Self {
        Note {
            method,
            outcome: Outcome::Failure,
            reason: Some(reason.into()),
        }
    }
    pub fn started(method: Option<&'static str>, reason: impl Into<Option<String>>) -> Self {
        Note {
            method,
            outcome: Outcome::Started,
            reason: reason.into(),
        }
    }
}

impl Deps<'_> {
    /// What `mfa::delivery` needs to start a challenge, as of now.
    pub fn sender(&self) -> crate::mfa::delivery::Sender<'_> {
        crate::mfa::delivery::Sender {
            gateway: self.gateway,
            store: self.store,
            tokens: self.tokens,
            secrets: self.secrets,
            mfa: self.mfa,
            now: self.clock.unix(),
            public_base: self.public_base,
            display_name: self.issuer_name,
            lang: self.lang,
            catalogue: self.catalogue,
        }
    }

    /// These deps for a page in `lang`.
    pub fn in_lang(self, lang: Lang) -> Self {
        Deps { lang, ..self }
    }

    /// Is `ip` a trusted proxy's own address? Then it stands for everyone behind the proxy:
    /// it never counts as a trusted network, a familiar address or a per-address budget.
    pub fn is_proxy(&self, ip: &str) -> bool {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| self.proxies.iter().any(|n| n.contains(ip)))
    }
}

impl Flow {
    pub fn new(request: Pending, client_ip: &str, now: i64) -> Self {
        let flow = Flow {
            id: crate::saml::random_hex(16),
            browser_secret: crate::saml::random_hex(16),
            request,
            state: LoginState::AwaitPassword {
                login: None,
                message: None,
                failures: 0,
            },
            created: now,
            client_ip: client_ip.to_owned(),
            audit_events: Vec::new(),
            transitions: Vec::new(),
        };
        let mut flow = flow;
        flow.audit(now, "-", None, &Note::started(None, None));
        flow
    }

    /// The only place a transition happens; each one writes one audit event.
    pub async fn step(mut self, event: Event, deps: &Deps<'_>) -> Result<Flow, StepError> {
        let from = self.state.name();
        // A name the directory did not confirm is typed input: the audit keeps only its start.
        let typed_login = match &event {
            Event::Password { login, .. } => Some(audit::shorten(login.trim(), AUDIT_LOGIN_CHARS)),
            _ => None,
        };
        let state = std::mem::replace(
            &mut self.state,
            LoginState::Denied {
                message: String::new(),
            },
        );
        let result = match (state, event) {
            (LoginState::AwaitPassword { failures, .. }, Event::Password { login, password }) => {
                password::on_password(&self, failures, login, password, deps).await?
            }
            (LoginState::AwaitSecondFactor(w), e) => second_factor::on_event(w, e, deps).await?,
            (
                LoginState::ChooseMethod {
                    user,
                    message,
                    code_failures,
                },
                e,
            ) => second_factor::on_choose(&self, user, message, code_failures, e, deps).await?,
            (
                LoginState::Enroll {
                    user,
                    pending,
                    message,
                },
                e,
            ) => enroll::on_event(&self, user, pending, message, e, deps).await?,
            (
                LoginState::SetPin {
                    user,
                    renewing,
                    make_default,
                    ..
                },
                e,
            ) => pin::on_event(&self, user, renewing, make_default, e, deps).await?,
            (s, e) => {
                let note = Note {
                    method: None,
                    outcome: Outcome::Ignored,
                    reason: Some(format!("event {} not valid in state {from}", e.name())),
                };
                self.audit(deps.clock.unix(), from, None, &note);
                self.state = s;
                return Ok(self);
            }
        };
        let (next, note) = result;
        if let LoginState::Authenticated { user, .. } = &next
            && !deps.is_proxy(&self.client_ip)
        {
            deps.later.push(lockout::remember_address(
                deps.mfa,
                &user.username,
                &self.client_ip,
            ));
        }
        if next.name() != from || note.outcome != Outcome::Ignored {
            let user = next.user().map(|u| u.username.clone()).or(typed_login);
            self.state = next;
            self.audit(deps.clock.unix(), from, user.as_deref(), &note);
        } else {
            self.state = next;
        }
        Ok(self)
    }

    fn audit(&mut self, now: i64, from: &'static str, user: Option<&str>, note: &Note) {
        let at = time::OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let user = user
            .map(str::to_owned)
            .or_else(|| self.state.user().map(|u| u.username.clone()));
        let line = audit::record(&AuditEvent {
            at: crate::saml::saml_time(at),
            flow: &self.id,
            user: user.as_deref(),
            rp: self.request.audit_name(),
            client_ip: &self.client_ip,
            from,
            to: self.state.name(),
            method: note.method,
            outcome: note.outcome,
            reason: note.reason.clone(),
        });
        self.audit_events.extend(line.map(|l| (now, l)));
        self.transitions.push(Transition {
            from,
            to: self.state.name(),
            method: note.method,
            outcome: note.outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_browser_secret() {
        let flow = Flow::new(Pending::AdminConsole, "192.0.2.1", 0);
        let shown = format!("{flow:?}");
        assert!(!shown.contains(&flow.browser_secret), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains(&flow.id));
    }
}
