//! Account state and bind outcomes: userAccountControl, lockout, pwdReset and AD bind sub-codes.

use std::collections::BTreeMap;

use ldap3::LdapResult;

use crate::directory::AuthError;

/// AD `userAccountControl` flag ACCOUNTDISABLE ([MS-ADTS] §2.2.16).
const UAC_ACCOUNTDISABLE: i64 = 0x2;

/// Attributes read only to decide the account state; requested in every user search.
/// `pwdAccountLockedTime` and `pwdReset` are operational (draft-behera-ldap-password-policy
/// §5.3), so a server only returns them when asked by name.
pub(super) const STATE_ATTRIBUTES: [&str; 4] = [
    "userAccountControl",
    "lockoutTime",
    "pwdAccountLockedTime",
    "pwdReset",
];

/// Account state read from the user's entry before the bind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct AccountState {
    pub(super) disabled: bool,
    pub(super) locked: bool,
    pub(super) must_change: bool,
}

impl AccountState {
    pub(super) fn of(attrs: &BTreeMap<String, Vec<String>>) -> Self {
        let first = |name: &str| attrs.get(name).and_then(|v| v.first()).map(|s| s.trim());
        let as_int = |name: &str| first(name).and_then(|v| v.parse::<i64>().ok());
        Self {
            // [MS-ADTS] §2.2.16: bit 0x2 ACCOUNTDISABLE (the value is a signed 32-bit int).
            disabled: as_int("useraccountcontrol").is_some_and(|v| v & UAC_ACCOUNTDISABLE != 0),
            // AD keeps lockoutTime > 0 while locked; ppolicy sets pwdAccountLockedTime
            // (draft-behera-ldap-password-policy §5.3.3). Both may outlive the lockout
            // duration until the next good bind, so this is only a hint: the bind decides.
            locked: as_int("lockouttime").is_some_and(|v| v > 0)
                || first("pwdaccountlockedtime").is_some_and(|v| !v.is_empty()),
            // ppolicy pwdReset (§5.3.7): an administrator set the password; it must be changed.
            must_change: first("pwdreset").is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
        }
    }
}

/// Maps a failed bind to the user-facing outcome. Only credential results are the user's
/// problem; anything else (busy, unavailable, protocol errors) is the directory's.
pub(super) fn bind_failure(result: &LdapResult) -> AuthError {
    match result.rc {
        49 => ad_bind_subcode(&result.text)
            .map(ad_subcode_error)
            .unwrap_or(AuthError::InvalidCredentials),
        // noSuchObject / invalidDNSyntax: a direct-bind name that names nobody.
        32 | 34 => AuthError::InvalidCredentials,
        rc => AuthError::Unavailable(format!("bind refused: rc={rc} {}", result.text)),
    }
}

/// A failed user bind, with what the search read about the account: ppolicy answers a
/// locked account with plain invalidCredentials (49) unless the password policy control is
/// used, so its lock attribute tells the two apart. AD says itself (sub-code 775 vs 52e) and
/// keeps lockoutTime set after a lockout expired, so its sub-code wins over the attribute.
pub(super) fn bind_refusal(result: &LdapResult, locked_attribute: bool) -> AuthError {
    let err = bind_failure(result);
    if err == AuthError::InvalidCredentials
        && locked_attribute
        && ad_bind_subcode(&result.text).is_none()
    {
        AuthError::AccountLocked
    } else {
        err
    }
}

/// Extracts AD's Win32 error from a bind diagnostic such as
/// `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563`
/// (hexadecimal, [MS-ERREF] §2.2; documented for LDAP binds in Microsoft's "LDAP error
/// codes" table for invalidCredentials).
pub fn ad_bind_subcode(text: &str) -> Option<u32> {
    text.match_indices("data ").find_map(|(at, _)| {
        let preceded_ok = at == 0 || matches!(text.as_bytes()[at - 1], b' ' | b',');
        if !preceded_ok {
            return None;
        }
        let rest = &text[at + "data ".len()..];
        let hex_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 0 {
            return None;
        }
        u32::from_str_radix(&rest[..hex_len], 16).ok()
    })
}

/// The AD bind sub-codes ([MS-ERREF] §2.2 Win32 error codes).
pub fn ad_subcode_error(code: u32) -> AuthError {
    match code {
        // ERROR_NO_SUCH_USER, ERROR_LOGON_FAILURE: same answer, no user enumeration.
        0x525 | 0x52e => AuthError::InvalidCredentials,
        // ERROR_INVALID_LOGON_HOURS, ERROR_INVALID_WORKSTATION: not allowed to sign in here/now.
        0x530 | 0x531 => AuthError::AccountDisabled,
        0x532 => AuthError::PasswordExpired, // ERROR_PASSWORD_EXPIRED
        0x533 => AuthError::AccountDisabled, // ERROR_ACCOUNT_DISABLED
        0x701 => AuthError::AccountExpired,  // ERROR_ACCOUNT_EXPIRED
        0x773 => AuthError::MustChangePassword, // ERROR_PASSWORD_MUST_CHANGE
        0x775 => AuthError::AccountLocked,   // ERROR_ACCOUNT_LOCKED_OUT
        _ => AuthError::InvalidCredentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> LdapResult {
        LdapResult {
            rc: 49,
            matched: String::new(),
            text: text.into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn ad_sub_code_beats_a_stale_lockout_time() {
        let bad_pw = refused(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563",
        );
        assert_eq!(bind_refusal(&bad_pw, true), AuthError::InvalidCredentials);
        let locked = refused(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563",
        );
        assert_eq!(bind_refusal(&locked, false), AuthError::AccountLocked);
        assert_eq!(
            bind_refusal(&refused(""), true),
            AuthError::AccountLocked,
            "ppolicy: the attribute decides"
        );
        assert_eq!(
            bind_refusal(&refused(""), false),
            AuthError::InvalidCredentials
        );
    }

    #[test]
    fn ad_subcodes_parse_and_map() {
        let text = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(ad_bind_subcode(text), Some(0x52e));
        let cases = [
            ("525", AuthError::InvalidCredentials),
            ("52e", AuthError::InvalidCredentials),
            ("530", AuthError::AccountDisabled),
            ("531", AuthError::AccountDisabled),
            ("532", AuthError::PasswordExpired),
            ("533", AuthError::AccountDisabled),
            ("701", AuthError::AccountExpired),
            ("773", AuthError::MustChangePassword),
            ("775", AuthError::AccountLocked),
        ];
        for (code, expected) in cases {
            let text = format!(
                "80090308: LdapErr: DSID-0C09075A, comment: AcceptSecurityContext error, data {code}, v2580"
            );
            let result = LdapResult {
                rc: 49,
                matched: String::new(),
                text,
                refs: vec![],
                ctrls: vec![],
            };
            assert_eq!(bind_failure(&result), expected, "sub-code {code}");
        }
        assert_eq!(ad_bind_subcode("Invalid credentials"), None);
        assert_eq!(ad_bind_subcode("metadata 52e"), None);
        assert_eq!(ad_bind_subcode("data , v1"), None);
        assert_eq!(ad_bind_subcode(""), None);
        // Unknown codes and plain OpenLDAP 49s are wrong credentials.
        assert_eq!(ad_subcode_error(0x568), AuthError::InvalidCredentials);
        let plain = LdapResult {
            rc: 49,
            matched: String::new(),
            text: String::new(),
            refs: vec![],
            ctrls: vec![],
        };
        assert_eq!(bind_failure(&plain), AuthError::InvalidCredentials);
        let busy = LdapResult { rc: 51, ..plain };
        assert!(matches!(bind_failure(&busy), AuthError::Unavailable(_)));
    }

    #[test]
    fn account_state_from_attributes() {
        // Keys are lower-cased by `lower_attrs` before the state is read.
        let state = |name: &str, value: &str| {
            let attrs = BTreeMap::from([(name.to_ascii_lowercase(), vec![value.to_string()])]);
            let s = AccountState::of(&attrs);
            (s.disabled, s.locked, s.must_change)
        };
        assert_eq!(state("userAccountControl", "514"), (true, false, false));
        assert_eq!(state("userAccountControl", "512"), (false, false, false));
        assert_eq!(state("lockoutTime", "0"), (false, false, false));
        assert_eq!(
            state("lockoutTime", "133497984000000000"),
            (false, true, false)
        );
        assert_eq!(
            state("pwdAccountLockedTime", "000001010000Z"),
            (false, true, false)
        );
        assert_eq!(state("pwdReset", "TRUE"), (false, false, true));
    }
}
