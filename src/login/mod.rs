//! The login state machine: one `Flow` per sign-in, advanced only by `Flow::step`.
//!
//! AwaitPassword ──password ok──▶ Authenticated
//!      │ refused
//!      ▼
//! AwaitPassword (with a message) … or Denied when the flow cannot continue.
//! The second factor (AwaitSecondFactor / ChooseMethod) slots in between password and
//! Authenticated; see DESIGN.md "The login, as a state machine".

pub mod authn_context;
pub mod session;

use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditEvent, Outcome};
use crate::clock::Clock;
use crate::directory::{AuthError, Directory, UserInfo};
use crate::saml::request::RequestedContext;

/// How the user proved who they are; feeds AuthnContextClassRef and the `amr` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    Password,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
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
            LoginState::Authenticated { .. } => "authenticated",
            LoginState::Denied { .. } => "denied",
        }
    }
}

/// What the user (or the system) did.
pub enum Event {
    Password { login: String, password: String },
}

impl Event {
    /// The event's name for logs; events carry secrets, so they have no `Debug`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Password { .. } => "password",
        }
    }
}

/// Failed passwords allowed within one flow before it is ended.
pub const MAX_FAILURES_PER_FLOW: u32 = 5;
/// Longest user name accepted from the form (AD's UPN limit is 1024).
pub const MAX_LOGIN_LEN: usize = 256;
/// Longest password accepted from the form; longer input is refused without a directory call.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub id: String,
    /// Random secret also held in a cookie: a flow only advances in the browser that began it.
    pub browser_secret: String,
    pub request: PendingRequest,
    pub state: LoginState,
    pub created: i64,
    pub client_ip: String,
}

/// What `step` needs from the outside world.
pub struct Deps<'a> {
    pub directory: &'a dyn Directory,
    pub clock: &'a dyn Clock,
}

impl Flow {
    pub fn new(request: PendingRequest, client_ip: &str, now: i64) -> Self {
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
        };
        flow.audit(
            now,
            Note {
                user: None,
                from: "-",
                to: "await_password",
                outcome: Outcome::Started,
                method: None,
                reason: None,
            },
        );
        flow
    }

    /// The only place a transition happens; each one writes one audit event.
    pub async fn step(mut self, event: Event, deps: &Deps<'_>) -> Flow {
        let from = self.state.name();
        let next = match (&self.state, event) {
            (LoginState::AwaitPassword { failures, .. }, Event::Password { login, password }) => {
                let failures = *failures;
                let login = login.trim().to_owned();
                let oversize = login.len() > MAX_LOGIN_LEN || password.len() > MAX_PASSWORD_LEN;
                let result = if login.is_empty() || oversize {
                    Err(AuthError::InvalidCredentials)
                } else {
                    deps.directory.authenticate(&login, &password).await
                };
                match result {
                    Ok(user) => {
                        let next = LoginState::Authenticated {
                            user,
                            methods: vec![AuthMethod::Password],
                            authn_instant: deps.clock.unix(),
                        };
                        self.transition(
                            deps.clock.unix(),
                            from,
                            next,
                            Some(&login),
                            Outcome::Success,
                            None,
                        )
                    }
                    Err(e) => {
                        let failures = failures + 1;
                        let next = if failures >= MAX_FAILURES_PER_FLOW {
                            LoginState::Denied {
                                message: "Too many failed attempts. Go back to the application and start again.".into(),
                            }
                        } else {
                            LoginState::AwaitPassword {
                                login: Some(login.clone()),
                                message: Some(e.user_message().to_owned()),
                                failures,
                            }
                        };
                        self.transition(
                            deps.clock.unix(),
                            from,
                            next,
                            Some(&login),
                            Outcome::Failure,
                            Some(format!("{e:?}")),
                        )
                    }
                }
            }
            (_, event) => {
                let reason = format!("event {} not valid in state {from}", event.name());
                let note = Note {
                    user: None,
                    from,
                    to: from,
                    outcome: Outcome::Ignored,
                    method: None,
                    reason: Some(reason),
                };
                self.audit(deps.clock.unix(), note);
                return self;
            }
        };
        self.state = next;
        self
    }

    fn transition(
        &self,
        now: i64,
        from: &'static str,
        to: LoginState,
        login: Option<&str>,
        outcome: Outcome,
        reason: Option<String>,
    ) -> LoginState {
        let user = match &to {
            LoginState::Authenticated { user, .. } => Some(user.username.as_str()),
            _ => login,
        };
        self.audit(
            now,
            Note {
                user,
                from,
                to: to.name(),
                outcome,
                method: Some("password"),
                reason,
            },
        );
        to
    }

    fn audit(&self, now: i64, note: Note<'_>) {
        let at = time::OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        audit::record(&AuditEvent {
            at: crate::saml::saml_time(at),
            flow: &self.id,
            user: note.user,
            rp: &self.request.rp_entity_id,
            client_ip: &self.client_ip,
            from: note.from,
            to: note.to,
            method: note.method,
            outcome: note.outcome,
            reason: note.reason,
        });
    }
}

/// The parts of one audit event that differ per transition.
struct Note<'a> {
    user: Option<&'a str>,
    from: &'a str,
    to: &'a str,
    outcome: Outcome,
    method: Option<&'a str>,
    reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::directory::file::{FileDirectory, FileUser, hash_password};

    fn flow() -> Flow {
        Flow::new(
            PendingRequest {
                rp_entity_id: "sp".into(),
                acs_url: "https://sp/acs".into(),
                request_id: Some("_r".into()),
                relay_state: None,
                force_authn: false,
                requested_context: None,
            },
            "127.0.0.1",
            0,
        )
    }

    fn directory() -> FileDirectory {
        FileDirectory::from_users(vec![FileUser {
            username: "alice".into(),
            password_hash: hash_password("pw").expect("hash"),
            ..Default::default()
        }])
        .expect("dir")
    }

    #[tokio::test]
    async fn password_ok_authenticates_and_bad_ones_end_in_denied() {
        let dir = directory();
        let clock = FixedClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let deps = Deps {
            directory: &dir,
            clock: &clock,
        };
        let ok = flow()
            .step(
                Event::Password {
                    login: "alice".into(),
                    password: "pw".into(),
                },
                &deps,
            )
            .await;
        assert!(matches!(ok.state, LoginState::Authenticated { .. }));

        let mut f = flow();
        for i in 1..MAX_FAILURES_PER_FLOW {
            f = f
                .step(
                    Event::Password {
                        login: "alice".into(),
                        password: "no".into(),
                    },
                    &deps,
                )
                .await;
            match &f.state {
                LoginState::AwaitPassword {
                    failures, message, ..
                } => {
                    assert_eq!(*failures, i);
                    assert!(message.as_deref().unwrap_or_default().contains("Incorrect"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        f = f
            .step(
                Event::Password {
                    login: "alice".into(),
                    password: "no".into(),
                },
                &deps,
            )
            .await;
        assert!(matches!(f.state, LoginState::Denied { .. }));
        // A correct password after denial changes nothing.
        f = f
            .step(
                Event::Password {
                    login: "alice".into(),
                    password: "pw".into(),
                },
                &deps,
            )
            .await;
        assert!(matches!(f.state, LoginState::Denied { .. }));
    }

    #[tokio::test]
    async fn oversize_input_is_refused_without_directory_call() {
        let dir = directory();
        let clock = FixedClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let deps = Deps {
            directory: &dir,
            clock: &clock,
        };
        let f = flow()
            .step(
                Event::Password {
                    login: "a".repeat(MAX_LOGIN_LEN + 1),
                    password: "pw".into(),
                },
                &deps,
            )
            .await;
        assert!(matches!(
            f.state,
            LoginState::AwaitPassword { failures: 1, .. }
        ));
    }
}
