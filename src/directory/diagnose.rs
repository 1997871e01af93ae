//! `tessera check-config --login USER`: a sign-in run step by step, each step saying what it saw.
//!
//! The steps are the ones a real sign-in takes, so an admin whose users "just see the form
//! again" learns which one fails: the server, the service account, a `user_filter` that
//! matches nobody, the password, or attributes and phones that are not where Tessera looks.
//! The password is never part of any line.

use std::fmt;

use super::UserInfo;
use super::file::FileDirectory;
use crate::mfa::registration::directory_phones;

/// One step of a sign-in, in the order they run. A closed set: the failing one is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    ServiceBind,
    Filter,
    Search,
    Account,
    UserBind,
    Attributes,
    Groups,
    Phones,
    /// The pooled sign-in path (`Directory::authenticate`) agrees with the steps.
    SignIn,
    UsersFile,
    Password,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ServiceBind => "service bind",
            Self::Filter => "search filter",
            Self::Search => "entries found",
            Self::Account => "account state",
            Self::UserBind => "user bind",
            Self::Attributes => "attributes",
            Self::Groups => "groups",
            Self::Phones => "phones",
            Self::SignIn => "sign-in path",
            Self::UsersFile => "users file",
            Self::Password => "password",
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Did not apply (e.g. no service account in direct-bind mode).
    Skipped,
    /// Worked, but something an admin should look at.
    Warning,
    Failed,
}

/// One printed line: a step, how it went and what it saw.
#[derive(Debug, Clone)]
pub struct Line {
    pub step: Step,
    pub outcome: Outcome,
    pub detail: String,
}

/// Every step that ran, in order; a failed step is the last.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub lines: Vec<Line>,
}

impl Diagnosis {
    pub(crate) fn push(&mut self, step: Step, outcome: Outcome, detail: impl Into<String>) {
        self.lines.push(Line {
            step,
            outcome,
            detail: detail.into(),
        });
    }

    pub(crate) fn ok(&mut self, step: Step, detail: impl Into<String>) {
        self.push(step, Outcome::Ok, detail);
    }

    /// Records a failure and hands the finished diagnosis back (no later step can run).
    pub(crate) fn fail(mut self, step: Step, detail: impl Into<String>) -> Self {
        self.push(step, Outcome::Failed, detail);
        self
    }

    /// The step that failed, if one did.
    pub fn failed_step(&self) -> Option<Step> {
        self.lines
            .iter()
            .find(|l| l.outcome == Outcome::Failed)
            .map(|l| l.step)
    }

    /// The attribute, group and phone steps for a user the directory returned.
    pub(crate) fn user_steps(&mut self, info: &UserInfo, phone_attributes: &[String], cc: &str) {
        // The user name Tessera goes on with, then every attribute as read (names lower-cased).
        let mut attrs: Vec<String> = vec![format!("user name: {}", info.username)];
        for (name, values) in &info.attributes {
            attrs.push(format!("{name}: {}", values.join(" | ")));
        }
        self.ok(Step::Attributes, attrs.join("\n"));
        if info.groups.is_empty() {
            self.push(Step::Groups, Outcome::Warning, "none");
        } else {
            self.ok(Step::Groups, info.groups.join(", "));
        }
        self.phone_step(info, phone_attributes, cc);
    }

    fn phone_step(&mut self, info: &UserInfo, phone_attributes: &[String], cc: &str) {
        if phone_attributes.is_empty() {
            self.push(
                Step::Phones,
                Outcome::Skipped,
                "mfa.phone_attributes is empty: no phones from the directory",
            );
            return;
        }
        let mut notes = Vec::new();
        for attr in phone_attributes {
            let values = info.attributes.get(&attr.to_lowercase());
            match values {
                Some(v) => notes.push(format!("{attr}: {}", v.join(" | "))),
                None => notes.push(format!("{attr}: (not set or not read)")),
            }
        }
        let phones = directory_phones(info, phone_attributes, cc);
        let found = if phones.is_empty() {
            "no usable number".to_owned()
        } else {
            phones
                .iter()
                .map(|p| format!("{} ({:?})", p.number, p.kind).to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let outcome = if phones.is_empty() {
            Outcome::Warning
        } else {
            Outcome::Ok
        };
        self.push(
            Step::Phones,
            outcome,
            format!(
                "{found} (per mfa.phone_attributes = [{}])\n{}",
                phone_attributes.join(", "),
                notes.join("\n")
            ),
        );
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            let mark = match line.outcome {
                Outcome::Ok => "ok",
                Outcome::Skipped => "--",
                Outcome::Warning => "!!",
                Outcome::Failed => "FAILED",
            };
            let mut rows = line.detail.lines();
            writeln!(
                f,
                "  [{mark:>6}] {:<14} {}",
                line.step.label(),
                rows.next().unwrap_or("")
            )?;
            for row in rows {
                writeln!(f, "  {:>8} {:<14} {row}", "", "")?;
            }
        }
        Ok(())
    }
}

/// The users file's steps: is the user there, is the password right.
pub async fn diagnose_file(
    dir: &FileDirectory,
    path: &std::path::Path,
    login: &str,
    password: &str,
    phone_attributes: &[String],
    cc: &str,
) -> Diagnosis {
    use super::Directory as _;
    let mut d = Diagnosis::default();
    let Some(user) = dir.find(login) else {
        return d.fail(
            Step::UsersFile,
            format!(
                "{}: no user named {login:?} (by name or UPN)",
                path.display()
            ),
        );
    };
    d.ok(
        Step::UsersFile,
        format!("{}: found {}", path.display(), user.username),
    );
    if user.disabled {
        return d.fail(Step::Account, "disabled in the users file");
    }
    match dir.authenticate(login, password).await {
        Ok(info) => {
            d.ok(Step::Password, "correct");
            d.user_steps(&info, phone_attributes, cc);
            d
        }
        Err(e) => d.fail(Step::Password, format!("refused: {e}")),
    }
}

/// Builds the configured directory and runs `login` through it. Phones are read with the
/// config file's `mfa.phone_attributes` (an admin's console override lives in the store,
/// which a running server holds).
pub async fn run(
    config: &crate::config::Config,
    login: &str,
    password: &str,
) -> Result<Diagnosis, String> {
    let phones = &config.mfa.phone_attributes;
    let cc = &config.mfa.default_country_code;
    match config.directory.kind {
        crate::config::DirectoryKind::File => {
            let path = config.users_file();
            let dir = FileDirectory::load(&path).map_err(|e| e.to_string())?;
            Ok(diagnose_file(&dir, &path, login, password, phones, cc).await)
        }
        crate::config::DirectoryKind::Ldap => {
            let settings = config
                .directory
                .ldap
                .clone()
                .ok_or("directory.kind is ldap but [directory.ldap] is missing")?;
            let dir = super::ldap::LdapDirectory::new(settings).map_err(|e| e.to_string())?;
            Ok(dir.diagnose(login, password, phones, cc).await)
        }
    }
}
