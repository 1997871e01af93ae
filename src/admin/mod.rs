//! The admin console's rules, apart from HTTP: who is an admin, admin sessions, the change log, and applying setting changes.
//!
//! The web pages (`web::admin`) and the CLI (`tessera settings …`) both go through here, so a
//! change made either way is validated, stored and logged the same way.

pub mod branding;
pub mod certs;
pub mod changes;
pub mod metadata_fetch;
pub mod netscaler;
pub mod session;
pub mod settings;
pub mod signins;
pub mod tokens;
pub mod trusts;
pub mod users;

use crate::config::AdminConfig;
use crate::directory::UserInfo;
use crate::directory::ldap::group_name;
use crate::store::StoreError;

/// Members of the configured group are admins. The group may be given as a name or as a DN
/// (its first CN is compared), case-insensitively as directories compare them.
pub fn is_admin(config: &AdminConfig, user: &UserInfo) -> bool {
    let wanted = group_name(config.group.trim());
    !wanted.is_empty() && user.groups.iter().any(|g| g.eq_ignore_ascii_case(&wanted))
}

/// Why an admin operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// It does not apply (the message is for the admin); nothing changed.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An `AdminError::Refused` result.
pub fn refused<T>(message: impl Into<String>) -> Result<T, AdminError> {
    Err(AdminError::Refused(message.into()))
}

/// Who made a change, for the change log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The admin's user name, or `cli:<os user>` for the command line.
    pub name: String,
    pub client_ip: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_by_group_name_or_dn() {
        let user = UserInfo {
            groups: vec!["Staff".into(), "tessera admins".into()],
            ..Default::default()
        };
        let mut c = AdminConfig::default();
        assert!(is_admin(&c, &user));
        c.group = "CN=Tessera Admins,OU=Groups,DC=corp,DC=example".into();
        assert!(is_admin(&c, &user));
        c.group = "Domain Admins".into();
        assert!(!is_admin(&c, &user));
        c.group = String::new();
        assert!(!is_admin(&c, &UserInfo::default()));
    }
}
