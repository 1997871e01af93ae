//! `users`: the users file (add, hash) and the help desk's per-user second-factor actions.

use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

use tessera::admin::users::Action;

use super::ops::{Ctx, Operation, Out};
use super::{CliError, Result};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user to the users file; the password is read from stdin.
    Add {
        username: String,
        #[arg(long)]
        upn: Option<String>,
        #[arg(long)]
        mail: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Print an argon2id hash of the password read from stdin.
    Hash,
    /// Let NAME sign in once without the second factor (help-desk bypass).
    Bypass {
        username: String,
        /// How long the bypass stays usable; default mfa.bypass_default_secs.
        #[arg(long)]
        secs: Option<u32>,
        /// Why (ticket number); kept with the bypass and in the log.
        #[arg(long)]
        reason: String,
    },
    /// A user's second factor: methods, default, blocks, recent sign-ins.
    Show { username: String },
    /// End a fraud block or MFA lockout and clear failed-password counts.
    Unblock { username: String },
    /// Forget the user's PIN; they choose a new one before their next call (PIN mode).
    ResetPin { username: String },
    /// Set the user's default method (push, call, sms, oath, questions) or `company`.
    SetDefault { username: String, method: String },
    /// Set the user's security answers, replacing earlier ones. Reads lines `N: answer`
    /// from stdin, N the question's number in `tessera settings get security_questions`
    /// (from 1).
    Questions { username: String },
    /// Add a phone number (normalised to E.164; mobile unless --office).
    AddPhone {
        username: String,
        number: String,
        #[arg(long)]
        office: bool,
    },
    /// Assign a hardware token from the inventory (as `tokens assign`); with --code, one
    /// code read off the token, also activate it (otherwise the user does, in the portal).
    AssignToken {
        username: String,
        serial: String,
        #[arg(long)]
        code: Option<String>,
    },
    /// Create a single-use link (valid mfa.enrollment_link_hours) with which the user sets
    /// up an authenticator app; prints its URL.
    EnrollLink { username: String },
    /// Remove one enrolled method (ids as `users show` prints them), or all security
    /// answers (--questions).
    Remove {
        username: String,
        #[arg(long)]
        questions: bool,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        push: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
}

/// Security answers as they travel to where the operation runs; never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Answers(pub Vec<(u32, String)>);

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} answers>", self.0.len())
    }
}

/// Most lines read from stdin for `users questions` (the admin offers at most 20).
const MAX_ANSWER_LINES: usize = 20;

/// Reads `N: answer` lines from stdin (blank lines skipped).
fn read_answers() -> Result<Answers> {
    use std::io::BufRead;
    let mut answers = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once(':')
            .and_then(|(n, a)| Some((n.trim().parse::<u32>().ok()?, a.trim().to_owned())));
        let Some(pair) = parsed else {
            return Err(CliError::Invalid(
                "each line is `N: answer`, N the question's number (from 1)".into(),
            ));
        };
        if answers.len() == MAX_ANSWER_LINES {
            return Err(CliError::Invalid(format!(
                "at most {MAX_ANSWER_LINES} answers"
            )));
        }
        answers.push(pair);
    }
    Ok(Answers(answers))
}

/// Sets the user's security answers through `mfa::questions::set_answers` and logs it
/// (the questions, never the answers).
pub async fn questions(
    ctx: &Ctx<'_>,
    out: &mut Out,
    username: &str,
    answers: Answers,
) -> Result<()> {
    use tessera::admin::changes::{self, Change};
    use tessera::mfa::questions::{self, Refusal, SetError};
    let (mfa, _) = tessera::admin::settings::current(ctx.store, &ctx.config.mfa).await?;
    let offered = &mfa.security_questions;
    let list = || {
        offered
            .iter()
            .enumerate()
            .map(|(i, q)| format!("\n  {}: {q}", i + 1))
            .collect::<String>()
    };
    let mut pairs = Vec::new();
    for (n, a) in answers.0 {
        let Some(q) = (n as usize).checked_sub(1).and_then(|i| offered.get(i)) else {
            return Err(CliError::Invalid(format!(
                "no question {n}; the questions are:{}",
                list()
            )));
        };
        pairs.push((q.clone(), a));
    }
    let now = SystemClock.unix();
    let set = questions::set_answers(ctx.store, &mfa, username, &pairs, now).await;
    let stored = match set {
        Ok(q) => q,
        Err(SetError::Refused(r @ Refusal::TooFew { .. })) => {
            return Err(CliError::Invalid(format!(
                "{}; the questions are:{}",
                r.message(),
                list()
            )));
        }
        Err(SetError::Refused(r)) => return Err(CliError::Invalid(r.message())),
        Err(SetError::Hash(e)) => return Err(CliError::Failed(e)),
        Err(SetError::Store(e)) => return Err(e.into()),
    };
    let target = format!("user:{}", username.to_lowercase());
    let after = format!("{} security questions answered", stored.len());
    let c = Change::new(
        ctx.actor,
        now,
        "user.set_questions",
        &target,
        None,
        Some(after),
    );
    changes::record(ctx.store, now, std::slice::from_ref(&c)).await?;
    out.line(format_args!(
        "user.set_questions: {username} answered {} questions",
        stored.len()
    ));
    Ok(())
}

/// Creates an enrollment link for the user and prints its URL (the change log has no link).
pub async fn enroll_link(ctx: &Ctx<'_>, out: &mut Out, username: &str) -> Result<()> {
    let (mfa, _) = tessera::admin::settings::current(ctx.store, &ctx.config.mfa).await?;
    let key = ctx.config.server.data_dir.join("mfa.key");
    let secrets = tessera::mfa::secrets::SecretBox::load_or_create(&key)?;
    let (change, url) = tessera::admin::users::enrollment_link(
        ctx.store,
        &secrets,
        &mfa,
        ctx.actor,
        SystemClock.unix(),
        username,
        ctx.config.public_base(),
    )
    .await?;
    out.line(format_args!(
        "{}: {}",
        change.action,
        change.after.as_deref().unwrap_or("-")
    ));
    out.line(url);
    Ok(())
}

/// A help-desk action as typed, checked where it runs.
pub enum Act {
    AddPhone {
        number: String,
        office: bool,
    },
    Unblock,
    ResetPin,
    SetDefault(String),
    Remove {
        token: Option<String>,
        push: Option<String>,
        phone: Option<String>,
        questions: bool,
    },
}

/// One help-desk action, through the same code as the admin console.
pub async fn act(ctx: &Ctx<'_>, out: &mut Out, username: &str, act: Act) -> Result<()> {
    let action = match act {
        Act::AddPhone { number, office } => Action::AddPhone {
            number,
            kind: if office {
                tessera::mfa::registration::PhoneKind::Office
            } else {
                tessera::mfa::registration::PhoneKind::Mobile
            },
        },
        Act::Unblock => Action::Unblock,
        Act::ResetPin => Action::ResetPin,
        Act::SetDefault(method) => Action::SetDefault(match method.as_str() {
            "company" => None,
            m => Some(
                m.parse()
                    .map_err(|_| CliError::Invalid(format!("`{m}` is not a method")))?,
            ),
        }),
        Act::Remove {
            token,
            push,
            phone,
            questions,
        } => match (token, push, phone, questions) {
            (Some(id), None, None, false) => Action::RemoveToken { id },
            (None, Some(id), None, false) => Action::RemovePushDevice { id },
            (None, None, Some(number), false) => Action::RemovePhone { number },
            (None, None, None, true) => Action::ClearQuestions,
            _ => {
                return Err(CliError::Invalid(
                    "give exactly one of --token, --push, --phone, --questions".into(),
                ));
            }
        },
    };
    apply(ctx, out, username, action).await
}

async fn apply(ctx: &Ctx<'_>, out: &mut Out, username: &str, action: Action) -> Result<()> {
    let (mfa, _) = tessera::admin::settings::current(ctx.store, &ctx.config.mfa).await?;
    let change = tessera::admin::users::apply(
        ctx.store,
        &mfa,
        ctx.actor,
        SystemClock.unix(),
        username,
        action,
    )
    .await?;
    out.line(format_args!(
        "{}: {} -> {}",
        change.action,
        change.before.as_deref().unwrap_or("-"),
        change.after.as_deref().unwrap_or("-")
    ));
    Ok(())
}

/// Lets the user sign in once without the second factor.
pub async fn bypass(
    ctx: &Ctx<'_>,
    out: &mut Out,
    username: &str,
    secs: Option<u32>,
    reason: String,
) -> Result<()> {
    let (mfa, _) = tessera::admin::settings::current(ctx.store, &ctx.config.mfa).await?;
    let secs = secs.unwrap_or(mfa.bypass_default_secs);
    apply(ctx, out, username, Action::Bypass { secs, reason }).await
}

/// A user's second factor: methods, default, blocks, recent sign-ins.
pub async fn show(ctx: &Ctx<'_>, out: &mut Out, username: &str) -> Result<()> {
    let v = tessera::admin::users::view(ctx.store, username, SystemClock.unix(), 5).await?;
    let r = &v.registration;
    let now = SystemClock.unix();
    out.line(format_args!("user            {username}"));
    out.line(format_args!(
        "default method  {}",
        r.default_method.map_or("company default", |m| m.as_str())
    ));
    for t in &r.tokens {
        out.line(format_args!(
            "token           {} {} ({:?})",
            t.id, t.label, t.kind
        ));
    }
    for d in &r.push_devices {
        out.line(format_args!("push device     {} {}", d.id, d.label));
    }
    for p in &r.phones {
        out.line(format_args!(
            "phone           {} ({:?}, {:?})",
            p.number, p.kind, p.source
        ));
    }
    if !r.security_answers.is_empty() {
        out.line(format_args!(
            "questions       {} answered",
            r.security_answers.len()
        ));
    }
    if r.pin_hash.is_some() {
        let at = r.pin_set_at.map_or("at an unknown time".to_owned(), |t| {
            format!("at {t} (unix)")
        });
        out.line(format_args!("pin             set {at}"));
    }
    out.line(format_args!(
        "status          {}{}{} denials, {} wrong codes, {} + {} failed passwords (unfamiliar + familiar addresses){}",
        if r.is_blocked(now) { "BLOCKED, " } else { "" },
        if r.codes_locked(now) {
            "CODES LOCKED, "
        } else {
            ""
        },
        r.mfa_denials,
        v.code_failures,
        v.password_failures.0,
        v.password_failures.1,
        if v.bypass_pending {
            ", bypass waiting"
        } else {
            ""
        }
    ));
    for a in &v.recent {
        out.line(format_args!(
            "sign-in         {} {} {} {}",
            a.started,
            a.rp,
            a.result.as_str(),
            a.reason.as_deref().unwrap_or("")
        ));
    }
    Ok(())
}

fn read_secret_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        return Err(CliError::Invalid("empty password on stdin".into()));
    }
    Ok(pw)
}

pub async fn run(config: &Config, command: UsersCommand) -> Result<()> {
    use tessera::directory::file::{FileUser, UsersFile, hash_password};
    let op = match command {
        UsersCommand::Hash => {
            println!(
                "{}",
                hash_password(&read_secret_line()?).map_err(CliError::Failed)?
            );
            return Ok(());
        }
        UsersCommand::Bypass {
            username,
            secs,
            reason,
        } => Operation::UsersBypass {
            username,
            secs,
            reason,
        },
        UsersCommand::Show { username } => Operation::UsersShow { username },
        UsersCommand::EnrollLink { username } => Operation::UsersEnrollLink { username },
        UsersCommand::AssignToken {
            username,
            serial,
            code,
        } => Operation::UsersAssignToken {
            username,
            serial,
            code,
        },
        UsersCommand::AddPhone {
            username,
            number,
            office,
        } => Operation::UsersAddPhone {
            username,
            number,
            office,
        },
        UsersCommand::Questions { username } => Operation::UsersQuestions {
            username,
            answers: read_answers()?,
        },
        UsersCommand::Unblock { username } => Operation::UsersUnblock { username },
        UsersCommand::ResetPin { username } => Operation::UsersResetPin { username },
        UsersCommand::SetDefault { username, method } => {
            Operation::UsersSetDefault { username, method }
        }
        UsersCommand::Remove {
            username,
            token,
            push,
            phone,
            questions,
        } => Operation::UsersRemove {
            username,
            token,
            push,
            phone,
            questions,
        },
        UsersCommand::Add {
            username,
            upn,
            mail,
            display_name,
            groups,
        } => {
            let path = config.users_file();
            let mut file: UsersFile = match std::fs::read_to_string(&path) {
                Ok(t) => toml::from_str(&t)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?,
                Err(_) => UsersFile::default(),
            };
            if file
                .users
                .iter()
                .any(|u| u.username.eq_ignore_ascii_case(&username))
            {
                return Err(CliError::Invalid(format!(
                    "user {username} already exists in {}",
                    path.display()
                )));
            }
            file.users.push(FileUser {
                password_hash: hash_password(&read_secret_line()?).map_err(CliError::Failed)?,
                username: username.clone(),
                upn,
                mail,
                display_name,
                groups,
                ..Default::default()
            });
            // Validate the whole file as the server would before replacing it.
            tessera::directory::file::FileDirectory::from_users(file.users.clone())
                .map_err(CliError::Invalid)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let text =
                toml::to_string_pretty(&file).map_err(|e| CliError::Invalid(e.to_string()))?;
            // Written beside and renamed into place: a running server re-reads the file
            // when it changes and must never see half of it.
            let partial = path.with_extension("toml.new");
            std::fs::write(&partial, text).map_err(|e| CliError::file(&partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| CliError::file(&path, e))?;
            println!("added {username} to {}", path.display());
            return Ok(());
        }
    };
    super::ops::run(config, op).await
}
