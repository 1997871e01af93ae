//! The users file: a TOML list of users with argon2id password hashes; the embedded default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

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
    users: RwLock<Loaded>,
    /// The file the users came from, re-read when it changes (`tessera users add` on a
    /// running server); `None` for users given in code.
    source: Option<Watched>,
    dummy_hash: String,
}

/// The users in force: each under its lower-cased name and UPN.
type Index = Arc<HashMap<String, Arc<FileUser>>>;

struct Loaded {
    index: Index,
    /// The file's modification time when `index` was read.
    modified: Option<SystemTime>,
}

struct Watched {
    path: PathBuf,
    /// When the file was last looked at: at most once per `LOOK_EVERY`.
    looked: Mutex<Instant>,
}

/// How often a running server looks whether the users file changed.
const LOOK_EVERY: Duration = Duration::from_secs(1);

impl FileDirectory {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let index = read_index(path)?;
        Ok(Self {
            users: RwLock::new(Loaded { index, modified }),
            source: Some(Watched {
                path: path.to_owned(),
                looked: Mutex::new(Instant::now()),
            }),
            dummy_hash: dummy_hash().map_err(|detail| FileError::Invalid {
                path: path.display().to_string(),
                detail,
            })?,
        })
    }

    pub fn from_users(users: Vec<FileUser>) -> Result<Self, String> {
        Ok(Self {
            users: RwLock::new(Loaded {
                index: Arc::new(index(users)?),
                modified: None,
            }),
            source: None,
            dummy_hash: dummy_hash()?,
        })
    }

    /// The users in force, re-read first when the file changed since (looked at no more
    /// than once a second). A file that no longer parses keeps the last good users, with a
    /// log line, so a half-saved edit never signs everybody out.
    fn current(&self) -> Index {
        if let Some(w) = &self.source {
            let due = {
                let mut looked = w.looked.lock().unwrap_or_else(PoisonError::into_inner);
                let due = looked.elapsed() >= LOOK_EVERY;
                if due {
                    *looked = Instant::now();
                }
                due
            };
            if due {
                self.reload_if_changed(&w.path);
            }
        }
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .index
            .clone()
    }

    fn reload_if_changed(&self, path: &Path) {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let known = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .modified;
        if modified == known {
            return;
        }
        match read_index(path) {
            Ok(index) => {
                tracing::info!(file = %path.display(), users = index.len(), "users file re-read");
                *self.users.write().unwrap_or_else(PoisonError::into_inner) =
                    Loaded { index, modified };
            }
            Err(e) => {
                tracing::warn!(error = %e, "users file changed but cannot be read; the last good one stays in force");
                // Not again until it changes once more.
                self.users
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .modified = modified;
            }
        }
    }

    pub(super) fn find(&self, login: &str) -> Option<Arc<FileUser>> {
        let index = self.current();
        let lower = login.to_lowercase();
        if let Some(u) = index.get(&lower) {
            return Some(u.clone());
        }
        let (short, _) = split_login(&lower);
        index.get(short).cloned()
    }
}

fn read_index(path: &Path) -> Result<Index, FileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Read {
        path: p.clone(),
        detail: e.to_string(),
    })?;
    let file: UsersFile = toml::from_str(&text).map_err(|e| FileError::Invalid {
        path: p.clone(),
        detail: e.to_string(),
    })?;
    index(file.users)
        .map(Arc::new)
        .map_err(|detail| FileError::Invalid { path: p, detail })
}

/// Each user under its lower-cased name and UPN; a name or UPN twice is refused.
fn index(users: Vec<FileUser>) -> Result<HashMap<String, Arc<FileUser>>, String> {
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
    Ok(index)
}

/// A hash checked for unknown users, so they take as long as known ones.
fn dummy_hash() -> Result<String, String> {
    hash_password("tessera-timing-equaliser")
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
        let index = self.current();
        let users: std::collections::BTreeMap<&str, &Arc<FileUser>> =
            index.values().map(|u| (u.username.as_str(), u)).collect();
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
    async fn a_changed_users_file_is_read_again_and_a_broken_one_keeps_the_last_good() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("users.toml");
        let write = |users: Vec<FileUser>| {
            let text = toml::to_string(&UsersFile { users }).expect("toml");
            std::fs::write(&path, text).expect("write");
        };
        let user = |name: &str| FileUser {
            username: name.into(),
            password_hash: hash_password("pw-1").expect("hash"),
            ..Default::default()
        };
        write(vec![user("alice")]);
        let d = FileDirectory::load(&path).expect("load");
        assert!(d.authenticate("bob", "pw-1").await.is_err());
        write(vec![user("alice"), user("bob")]);
        // The file is looked at no more than once a second.
        std::thread::sleep(LOOK_EVERY + Duration::from_millis(100));
        assert_eq!(
            d.authenticate("bob", "pw-1").await.expect("bob").username,
            "bob"
        );
        std::fs::write(&path, "[[user]]\nusername = \"half-writ").expect("write");
        std::thread::sleep(LOOK_EVERY + Duration::from_millis(100));
        assert!(
            d.authenticate("bob", "pw-1").await.is_ok(),
            "the last good file stays"
        );
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
