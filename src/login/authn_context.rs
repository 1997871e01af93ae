//! RequestedAuthnContext (SAML core §3.3.2.2.1): which class we state, or why we cannot.

use crate::rp::AuthnContextMode;
use crate::saml::request::{Comparison, RequestedContext};
use crate::saml::{AC_PASSWORD, AC_PASSWORD_PROTECTED, AC_UNSPECIFIED};

use super::AuthMethod;

/// Classes that mean "more than a password" in the AD FS / Azure world.
const MFA_CLASSES: &[&str] = &[
    "http://schemas.microsoft.com/claims/multipleauthn",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
];

/// Strength of a class: 0 unspecified, 1 password, 2 multi-factor, None unknown.
fn level(class: &str) -> Option<u8> {
    match class {
        AC_UNSPECIFIED => Some(0),
        AC_PASSWORD | AC_PASSWORD_PROTECTED => Some(1),
        c if MFA_CLASSES.contains(&c) => Some(2),
        _ => None,
    }
}

/// The class that describes what was done: a second factor makes it AD FS's
/// `multipleauthn`; a password alone is PasswordProtectedTransport (Tessera runs behind TLS).
fn achieved(methods: &[AuthMethod]) -> (&'static str, u8) {
    if methods.iter().any(|m| m.is_second_factor()) {
        (MFA_CLASSES[0], 2)
    } else {
        (AC_PASSWORD_PROTECTED, 1)
    }
}

/// The `amr` values (RFC 8176) for what was done, plus `mfa` when there were two factors.
pub fn amr(methods: &[AuthMethod]) -> Vec<String> {
    let mut out: Vec<String> = methods.iter().map(|m| m.amr().to_owned()).collect();
    if methods.iter().any(|m| m.is_second_factor()) {
        out.push("mfa".to_owned());
    }
    out
}

/// The AuthnContextClassRef to put in the assertion, or `None` when the request cannot be
/// satisfied (the caller then answers with status NoAuthnContext).
pub fn choose(
    requested: Option<&RequestedContext>,
    mode: AuthnContextMode,
    methods: &[AuthMethod],
) -> Option<String> {
    let (ours, our_level) = achieved(methods);
    let Some(req) = requested.filter(|r| !r.classes.is_empty()) else {
        return Some(ours.to_owned());
    };
    let levels: Vec<Option<u8>> = req.classes.iter().map(|c| level(c)).collect();
    let satisfied = match req.comparison {
        Comparison::Exact => req.classes.iter().any(|c| c == ours),
        Comparison::Minimum => levels.iter().any(|l| l.is_some_and(|l| l <= our_level)),
        Comparison::Better => levels.iter().all(|l| l.is_some_and(|l| l < our_level)),
        Comparison::Maximum => levels.iter().any(|l| l.is_some_and(|l| l >= our_level)),
    };
    if satisfied {
        return Some(ours.to_owned());
    }
    if mode == AuthnContextMode::Lenient && req.comparison == Comparison::Exact {
        // NetScaler sends `exact` with whatever class the admin typed: answer with the first
        // requested class that is no stronger than what was actually done.
        return req
            .classes
            .iter()
            .find(|c| level(c).is_some_and(|l| l <= our_level))
            .cloned();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cmp: Comparison, classes: &[&str]) -> RequestedContext {
        RequestedContext {
            comparison: cmp,
            classes: classes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn exact_strict_and_lenient() {
        let pw = [AuthMethod::Password];
        let r = req(Comparison::Exact, &[AC_PASSWORD]);
        assert_eq!(choose(Some(&r), AuthnContextMode::Strict, &pw), None);
        assert_eq!(
            choose(Some(&r), AuthnContextMode::Lenient, &pw).as_deref(),
            Some(AC_PASSWORD)
        );
        let r = req(Comparison::Exact, &[AC_PASSWORD_PROTECTED]);
        assert_eq!(
            choose(Some(&r), AuthnContextMode::Strict, &pw).as_deref(),
            Some(AC_PASSWORD_PROTECTED)
        );
    }

    #[test]
    fn a_second_factor_meets_mfa_requests_and_shows_in_amr() {
        let both = [AuthMethod::Password, AuthMethod::Oath];
        let r = req(Comparison::Exact, &[MFA_CLASSES[0]]);
        assert_eq!(
            choose(Some(&r), AuthnContextMode::Strict, &both).as_deref(),
            Some(MFA_CLASSES[0])
        );
        let r = req(Comparison::Exact, &[AC_PASSWORD_PROTECTED]);
        assert_eq!(choose(Some(&r), AuthnContextMode::Strict, &both), None);
        assert_eq!(
            choose(Some(&r), AuthnContextMode::Lenient, &both).as_deref(),
            Some(AC_PASSWORD_PROTECTED)
        );
        assert_eq!(amr(&both), vec!["pwd", "otp", "mfa"]);
        assert_eq!(amr(&[AuthMethod::Password]), vec!["pwd"]);
    }

    #[test]
    fn mfa_requests_are_not_met_by_a_password() {
        let pw = [AuthMethod::Password];
        let r = req(Comparison::Exact, &[MFA_CLASSES[0]]);
        assert_eq!(choose(Some(&r), AuthnContextMode::Lenient, &pw), None);
        let r = req(Comparison::Minimum, &[MFA_CLASSES[0]]);
        assert_eq!(choose(Some(&r), AuthnContextMode::Strict, &pw), None);
        let r = req(Comparison::Minimum, &[AC_PASSWORD]);
        assert!(choose(Some(&r), AuthnContextMode::Strict, &pw).is_some());
        let r = req(Comparison::Exact, &["urn:custom:unknown"]);
        assert_eq!(choose(Some(&r), AuthnContextMode::Lenient, &pw), None);
        assert!(choose(None, AuthnContextMode::Strict, &pw).is_some());
    }
}
