//! The operations that touch the store, as one closed set: run here on the store when this
//! process can open it, or handed to the running server over the admin socket when the
//! embedded store is held by `tessera serve`; either way the same code prints the same lines.

use std::fmt::Display;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tessera::admin::Actor;
use tessera::config::Config;
use tessera::store::Store;

use super::{CliError, Result, certs, rp, settings, socket, tokens, users};

/// One store operation, as it travels over the admin socket (JSON, tagged by `op`). Only
/// these can be asked for: anything else does not parse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Operation {
    UsersShow {
        username: String,
    },
    UsersBypass {
        username: String,
        secs: Option<u32>,
        reason: String,
    },
    UsersUnblock {
        username: String,
    },
    UsersResetPin {
        username: String,
    },
    UsersSetDefault {
        username: String,
        method: String,
    },
    UsersRemove {
        username: String,
        token: Option<String>,
        push: Option<String>,
        phone: Option<String>,
        /// Older clients do not send it.
        #[serde(default)]
        questions: bool,
    },
    /// Sets the user's security answers: (number of the question in
    /// `mfa.security_questions`, from 1; the answer as typed).
    UsersQuestions {
        username: String,
        answers: users::Answers,
    },
    UsersEnrollLink {
        username: String,
    },
    UsersAddPhone {
        username: String,
        number: String,
        office: bool,
    },
    /// Assigns a hardware token (and activates it with `code` when given).
    UsersAssignToken {
        username: String,
        serial: String,
        code: Option<String>,
    },
    SettingsGet {
        key: Option<String>,
    },
    SettingsSet {
        key: String,
        values: Vec<String>,
    },
    RpAdd(rp::AddTrust),
    RpList,
    RpRemove {
        slug: String,
    },
    CertsShow,
    CertsGenerateNext,
    CertsRollover,
    CertsDiscardNext,
    Tokens(tokens::TokensOp),
}

/// What an operation runs against: the config and store of whichever process runs it, and
/// who asked (the change log names them).
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub store: &'a dyn Store,
    pub actor: &'a Actor,
}

/// The lines an operation prints, collected so they can travel back over the socket.
#[derive(Default)]
pub struct Out(String);

impl Out {
    pub fn line(&mut self, text: impl Display) {
        self.0.push_str(&text.to_string());
        self.0.push('\n');
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Runs `op` on `ctx` and returns what it prints.
pub async fn exec(op: Operation, ctx: &Ctx<'_>) -> Result<String> {
    let mut out = Out::default();
    match op {
        Operation::UsersShow { username } => users::show(ctx, &mut out, &username).await?,
        Operation::UsersBypass {
            username,
            secs,
            reason,
        } => users::bypass(ctx, &mut out, &username, secs, reason).await?,
        Operation::UsersUnblock { username } => {
            users::act(ctx, &mut out, &username, users::Act::Unblock).await?
        }
        Operation::UsersResetPin { username } => {
            users::act(ctx, &mut out, &username, users::Act::ResetPin).await?
        }
        Operation::UsersSetDefault { username, method } => {
            users::act(ctx, &mut out, &username, users::Act::SetDefault(method)).await?
        }
        Operation::UsersRemove {
            username,
            token,
            push,
            phone,
            questions,
        } => {
            let act = users::Act::Remove {
                token,
                push,
                phone,
                questions,
            };
            users::act(ctx, &mut out, &username, act).await?
        }
        Operation::UsersQuestions { username, answers } => {
            users::questions(ctx, &mut out, &username, answers).await?
        }
        Operation::UsersEnrollLink { username } => {
            users::enroll_link(ctx, &mut out, &username).await?
        }
        Operation::UsersAddPhone {
            username,
            number,
            office,
        } => {
            let act = users::Act::AddPhone { number, office };
            users::act(ctx, &mut out, &username, act).await?
        }
        Operation::UsersAssignToken {
            username,
            serial,
            code,
        } => tokens::assign_to_user(ctx, &mut out, &username, &serial, code.as_deref()).await?,
        Operation::SettingsGet { key } => settings::get(ctx, &mut out, key.as_deref()).await?,
        Operation::SettingsSet { key, values } => {
            settings::set(ctx, &mut out, &key, &values).await?
        }
        Operation::RpAdd(add) => rp::add(ctx, &mut out, add).await?,
        Operation::RpList => rp::list(ctx, &mut out).await?,
        Operation::RpRemove { slug } => rp::remove(ctx, &mut out, &slug).await?,
        Operation::CertsShow => certs::run(ctx, &mut out, certs::CertsCommand::Show).await?,
        Operation::CertsGenerateNext => {
            certs::run(ctx, &mut out, certs::CertsCommand::GenerateNext).await?
        }
        Operation::CertsRollover => {
            certs::run(ctx, &mut out, certs::CertsCommand::Rollover).await?
        }
        Operation::CertsDiscardNext => {
            certs::run(ctx, &mut out, certs::CertsCommand::DiscardNext).await?
        }
        Operation::Tokens(op) => tokens::exec(ctx, &mut out, op).await?,
    }
    Ok(out.into_string())
}

/// Runs `op` where it can run: on the store when this process may open it (always with
/// Redis; with the embedded store when no server holds it), else through the running
/// server's admin socket. Prints what the operation printed.
pub async fn run(config: &Config, op: Operation) -> Result<()> {
    let actor = super::cli_actor();
    // Another short-lived command (not a server) may hold the store for a moment: then
    // there is no socket to talk to, and the store is free again shortly.
    let mut attempts = 0;
    let output = loop {
        attempts += 1;
        match tessera::startup::open_store(config, Arc::new(tessera::clock::SystemClock)).await {
            Ok(store) => {
                let ctx = Ctx {
                    config,
                    store: store.as_ref(),
                    actor: &actor,
                };
                break exec(op, &ctx).await?;
            }
            Err(tessera::startup::StartError::StoreInUse(_)) => {
                match socket::send(config, &actor, op.clone()).await {
                    Err(CliError::NoServer(_)) if attempts < 20 => {
                        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    }
                    sent => break sent?,
                }
            }
            Err(e) => return Err(CliError::StoreUnavailable(e.to_string())),
        }
    };
    print!("{output}");
    Ok(())
}
