//! The users file: a TOML list of users with argon2id password hashes; the embedded default.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{AuthError, Directory, UserInfo, split_login};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(rename = "user", default)]
    pub users: Vec<FileUser>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUser {
    pub username: String,
    /// PHC string, `$argon2id$...` (`tessera users hash` makes one).
    pub password_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl FileUser {
    fn info(&self) -> UserInfo {
        let mut attributes = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                attributes.insert(k.to_owned(), vec![v.clone()]);
            }
        };
        put("userprincipalname", &self.upn);
        put("mail", &self.mail);
        put("displayname", &self.display_name);
        put("mobile", &self.mobile);
        put("telephonenumber", &self.telephone);
        UserInfo {
            username: self.username.clone(),
            dn: format!("file:{}", self.username),
            upn: self.upn.clone(),
            mail: self.mail.clone(),
            display_name: self.display_name.clone(),
            mobile: self.mobile.clone(),
            telephone: self.telephone.clone(),
            groups: self.groups.clone(),
            attributes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read users file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("users file {path}: {detail}")]
    Invalid { path: String, detail: String },
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| e.to_string())?;
    PasswordHasher::<PasswordHash>::hash_password_with_salt(
        &Argon2::default(),
        password.as_bytes(),
        &salt,
    )
    .map(|h| h.to_string())
    .map_err(|e| e.to_string())
}

/// Checks a password (or PIN) against a PHC hash; false for a malformed hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub struct FileDirectory {
    /// Lower-cased username and lower-cased UPN both map to the user.
    index: HashMap<String, Arc<FileUser>>,
    /// Verified against when the user does not exist, so unknown users cost the same time.
    dummy_hash: String,
}

impl FileDirectory {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FileError::Read {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        let file: UsersFile = toml::from_str(&text).map_err(|e| FileError::Invalid {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        Self::from_users(file.users).map_err(|detail| FileError::Invalid { path: p, detail })
    }

    pub fn from_users(users: Vec<FileUser>) -> Result<Self, String> {
        let mut index = HashMap::new();
        for u in users {
            PasswordHash::new(&u.password_hash).map_err(|e| {
                format!(
                    "user {}: password_hash is not a PHC string: {e}",
                    u.username
                )
            })?;
            let u = Arc::new(u);
            let mut keys = vec![u.username.to_lowercase()];
            keys.extend(u.upn.iter().map(|x| x.to_lowercase()));
            for k in keys {
                if index.insert(k.clone(), u.clone()).is_some() {
                    return Err(format!("user name or UPN {k} appears twice"));
                }
            }
        }
        Ok(Self {
            index,
            dummy_hash: hash_password("tessera-timing-equaliser")?,
        })
    }

    pub(super) fn find(&self, login: &str) -> Option<Arc<FileUser>> {
        let lower = login.to_lowercase();
        if let Some(u) = self.index.get(&lower) {
            return Some(u.clone());
        }
        let (short, _) = split_login(&lower);
        self.index.get(short).cloned()
    }
}

#[async_trait]
impl Directory for FileDirectory {
    async fn authenticate(&self, login: &str, password: &str) -> Result<UserInfo, AuthError> {
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        let user = self.find(login);
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        // argon2 is deliberately slow: keep it off the async worker threads.
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        match user {
            Some(u) if ok && u.disabled => Err(AuthError::AccountDisabled),
            Some(u) if ok => Ok(u.info()),
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    async fn lookup(&self, login: &str) -> Result<Option<UserInfo>, AuthError> {
        Ok(self.find(login).filter(|u| !u.disabled).map(|u| u.info()))
    }

    async fn canonical_name(&self, login: &str) -> Result<Option<String>, AuthError> {
        // Disabled users too: their failures count like anyone's.
        Ok(self.find(login).map(|u| u.username.clone()))
    }

    async fn search(&self, text: &str, limit: usize) -> Result<Vec<UserInfo>, AuthError> {
        let t = text.trim().to_lowercase();
        let starts = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| v.to_lowercase().starts_with(&t))
        };
        // The index holds each user under its name and its UPN: one entry per user here.
        let users: std::collections::BTreeMap<&str, &Arc<FileUser>> = self
            .index
            .values()
            .map(|u| (u.username.as_str(), u))
            .collect();
        let mut found: Vec<UserInfo> = users
            .into_values()
            .filter(|u| !u.disabled)
            .filter(|u| {
                u.username.to_lowercase().starts_with(&t)
                    || starts(&u.upn)
                    || starts(&u.mail)
                    || u.display_name
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(&t))
            })
            .map(|u| u.info())
            .collect();
        found.truncate(limit);
        Ok(found)
    }
}

/// Writes a users file with one demo user and returns the generated password (shown once).
pub fn create_demo(path: &Path, domain: &str) -> Result<String, String> {
    let password = crate::saml::random_hex(9);
    let user = FileUser {
        username: "demo".into(),
        password_hash: hash_password(&password)?,
        upn: Some(format!("demo@{domain}")),
        mail: Some(format!("demo@{domain}")),
        display_name: Some("Demo User".into()),
        groups: vec!["Gateway Users".into(), "Tessera Admins".into()],
        ..Default::default()
    };
    let text =
        toml::to_string_pretty(&UsersFile { users: vec![user] }).map_err(|e| e.to_string())?;
    let header = "# Tessera users file. Add users with `tessera users add NAME`.\n";
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, format!("{header}{text}")).map_err(|e| e.to_string())?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> FileDirectory {
        FileDirectory::from_users(vec![
            FileUser {
                username: "alice".into(),
                password_hash: hash_password("correct horse").expect("hash"),
                upn: Some("alice@corp.example".into()),
                groups: vec!["Staff".into()],
                ..Default::default()
            },
            FileUser {
                username: "dave".into(),
                password_hash: hash_password("pw").expect("hash"),
                disabled: true,
                ..Default::default()
            },
        ])
        .expect("dir")
    }

    #[tokio::test]
    async fn all_login_forms_and_refusals() {
        let d = dir();
        for login in ["alice", "ALICE", "alice@corp.example", "CORP\\alice"] {
            let u = d.authenticate(login, "correct horse").await.expect(login);
            assert_eq!(u.username, "alice");
            assert_eq!(u.groups, vec!["Staff".to_string()]);
        }
        assert_eq!(
            d.authenticate("alice", "wrong").await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            d.authenticate("nobody", "x").await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            d.authenticate("alice", "").await,
            Err(AuthError::EmptyPassword)
        );
        assert_eq!(
            d.authenticate("dave", "pw").await,
            Err(AuthError::AccountDisabled)
        );
        // A disabled account with a wrong password looks like any wrong password.
        assert_eq!(
            d.authenticate("dave", "nope").await,
            Err(AuthError::InvalidCredentials)
        );
    }

    #[test]
    fn duplicate_and_malformed_entries_are_refused() {
        let h = hash_password("x").expect("hash");
        let u = |n: &str| FileUser {
            username: n.into(),
            password_hash: h.clone(),
            ..Default::default()
        };
        assert!(FileDirectory::from_users(vec![u("a"), u("A")]).is_err());
        let mut bad = u("b");
        bad.password_hash = "plaintext".into();
        assert!(FileDirectory::from_users(vec![bad]).is_err());
    }
}
