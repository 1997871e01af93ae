//! The `Directory` edge: checks a user's password and looks users up (LDAP/AD or a users file).

pub mod diagnose;
pub mod file;
pub mod ldap;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the rest of Tessera knows about a user after the directory answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserInfo {
    /// The canonical short login name (sAMAccountName on AD; `uid` in a users file).
    pub username: String,
    /// Distinguished name, or `file:<username>` for the users file.
    pub dn: String,
    pub upn: Option<String>,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    pub mobile: Option<String>,
    pub telephone: Option<String>,
    /// Group names (the CN of each memberOf DN for LDAP).
    pub groups: Vec<String>,
    /// Every configured attribute as read, for claim rules (lower-cased attribute names).
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Why a sign-in was refused. The user sees `user_message()`; the log gets the Debug form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid user name or password")]
    InvalidCredentials,
    #[error("empty password refused")]
    EmptyPassword,
    #[error("account locked")]
    AccountLocked,
    #[error("account disabled")]
    AccountDisabled,
    #[error("password expired")]
    PasswordExpired,
    #[error("account expired")]
    AccountExpired,
    #[error("password must be changed")]
    MustChangePassword,
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// What a refused password reads unless the directory confirmed the password.
    pub const GENERIC_MESSAGE: &'static str =
        "Incorrect user ID or password. Type the correct user ID and password, and try again.";

    /// Text safe to show on the login page. A wrong password, an unknown user and a disabled,
    /// locked or expired account all read the same, so the page tells an attacker neither
    /// which user names exist nor their state (the log and the sign-in log say which).
    /// Only what a directory reports once the password is proven right — expired, must be
    /// changed (AD's 532 / 773, ppolicy's pwdReset) — is said, as AD FS does.
    pub fn user_message(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials
            | AuthError::EmptyPassword
            | AuthError::AccountLocked
            | AuthError::AccountDisabled
            | AuthError::AccountExpired => Self::GENERIC_MESSAGE,
            AuthError::PasswordExpired => {
                "Your password has expired. Change it, then sign in again."
            }
            AuthError::MustChangePassword => {
                "You must change your password before you can sign in."
            }
            AuthError::Unavailable(_) => {
                "The sign-in service cannot reach the directory right now. Try again in a moment."
            }
        }
    }
}

/// Who `Directory::find` found: the name every spelling of the login is known by, and the
/// directory's own record of the user when it read one, for `authenticate_found` to check
/// the password against without looking the user up again.
pub struct Found {
    pub name: String,
    /// An LDAP entry, say; only the directory that made it knows its type.
    pub(crate) record: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Found {
    /// A name with nothing kept: `authenticate_found` then does all of `authenticate`.
    pub fn name_only(name: String) -> Self {
        Found { name, record: None }
    }
}

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Checks the password of `login` (`user`, `user@upn.suffix` or `DOMAIN\user`) and
    /// returns the user's attributes on success.
    async fn authenticate(&self, login: &str, password: &str) -> Result<UserInfo, AuthError>;
    /// Finds a user without a password (SSO session refresh, admin search).
    async fn lookup(&self, login: &str) -> Result<Option<UserInfo>, AuthError>;
    /// The name every spelling of `login` (`alice`, `CORP\alice`, `alice.smith@corp`) is
    /// known by, asked before the password is checked so that failed passwords are counted
    /// once per person; `None` when no such user exists. A directory that cannot look users
    /// up without their password answers the typed short name.
    async fn canonical_name(&self, login: &str) -> Result<Option<String>, AuthError> {
        Ok(self.lookup(login).await?.map(|u| u.username))
    }
    /// `canonical_name`, keeping what the directory read to answer it for
    /// `authenticate_found`: a sign-in looks its user up once, not once to count its
    /// attempt and again to check its password.
    async fn find(&self, login: &str) -> Result<Option<Found>, AuthError> {
        Ok(self.canonical_name(login).await?.map(Found::name_only))
    }
    /// `authenticate` for a login that `find` answered with `found` moments before, in the
    /// same request. Directories that keep nothing from `find` ignore `found`.
    async fn authenticate_found(
        &self,
        login: &str,
        password: &str,
        found: Option<Found>,
    ) -> Result<UserInfo, AuthError> {
        drop(found);
        self.authenticate(login, password).await
    }
    /// Users whose login name, UPN or mail starts with `text`, or whose display name contains
    /// it (the admin console's user search); at most `limit`.
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<UserInfo>, AuthError>;
    /// Whether sign-ins could reach the directory now (readiness). A directory held in
    /// memory, like the users file loaded at start, has nothing to reach.
    async fn check(&self) -> Result<(), AuthError> {
        Ok(())
    }
}

/// Splits the three accepted login forms into (short name, upn suffix / domain hint).
/// `DOMAIN\user` -> ("user", None) ; `user@corp.example` -> ("user", Some("corp.example")).
pub fn split_login(login: &str) -> (&str, Option<&str>) {
    if let Some((_, user)) = login.split_once('\\') {
        (user, None)
    } else if let Some((user, suffix)) = login.rsplit_once('@') {
        (user, Some(suffix))
    } else {
        (login, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_forms_split() {
        assert_eq!(split_login("alice"), ("alice", None));
        assert_eq!(split_login("CORP\\alice"), ("alice", None));
        assert_eq!(
            split_login("alice@corp.example"),
            ("alice", Some("corp.example"))
        );
    }
}
