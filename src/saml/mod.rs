//! SAML 2.0 protocol pieces: inbound AuthnRequests, outbound Responses, metadata.

pub mod logout;
pub mod metadata;
pub mod request;
pub mod response;
pub mod vocab;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const STATUS_NO_PASSIVE: &str = "urn:oasis:names:tc:SAML:2.0:status:NoPassive";
pub const STATUS_NO_AUTHN_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext";
/// SAML core §3.2.2.2: the NameIDPolicy cannot or will not be met (format not allowed or
/// not supported, a foreign SPNameQualifier, or no identifier yet and AllowCreate false).
pub const STATUS_INVALID_NAME_ID_POLICY: &str =
    "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";

pub const AC_PASSWORD_PROTECTED: &str =
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
pub const AC_PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password";
pub const AC_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

/// SAML core §1.3.3: xs:dateTime in UTC, written with a `Z`, without fractions.
pub fn saml_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn parse_saml_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// SAML core §1.3.4: IDs must be unguessable and start with a letter or `_`.
pub fn new_id() -> String {
    format!("_{}", random_hex(16))
}

/// `n` random bytes from the OS CSPRNG as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The kernel's CSPRNG (getrandom(2)): a sign-in draws several ids, and one system call
    // costs less than OpenSSL's DRBG path (BENCHMARKS.md). It fails only when the OS cannot
    // give randomness at all; nothing safe can continue then, so a panic is the honest outcome.
    getrandom::fill(&mut buf).expect("OS random generator unavailable");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_without_fraction() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("t");
        assert_eq!(saml_time(t), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_saml_time("2023-11-14T22:13:20Z"),
            Some(t.replace_nanosecond(0).expect("n"))
        );
    }

    #[test]
    fn ids_are_unique_and_well_formed() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('_') && a.len() == 33);
    }
}
