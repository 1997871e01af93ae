//! OATH one-time codes: RFC 4226 HOTP, RFC 6238 TOTP, enrolment URIs / QR codes, replay-safe checks.
//!
//! Implemented directly on OpenSSL's HMAC rather than with `totp-rs`: the adapter needs the
//! *time step* a code matched (to refuse it and every older code afterwards, across a farm),
//! which `totp-rs` does not expose, and the core is a dozen lines already covered by the
//! RFC test vectors below. It also keeps every MAC in one crypto library.

use std::fmt::Write as _;
use std::time::Duration;

use openssl::hash::MessageDigest;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::secrets::{hmac, random_bytes};
use crate::store::{Store, StoreError};

/// Smallest shared secret accepted: RFC 4226 §4 R6 requires 128 bits (160 recommended).
pub(crate) const MIN_SECRET_BYTES: usize = 16;
/// Largest shared secret accepted; generous for SHA-512 tokens (64-byte seeds), and keeps a
/// pasted novel out of the registration record.
pub(crate) const MAX_SECRET_BYTES: usize = 128;
/// Bytes of a generated secret: 160 bits, RFC 4226 §4 R6's recommendation and the SHA-1
/// output size (RFC 4226 §A.3 / the Key Uri Format's SHA1 default).
const GENERATED_SECRET_BYTES: usize = 20;
/// How far apart two nodes' clocks may drift. Active Directory's Kerberos refuses more than
/// five minutes of skew by default, so nodes of a domain-joined farm are within it.
const MAX_NODE_CLOCK_SKEW: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OathError {
    #[error("secret is not valid Base32 (RFC 4648 §6: letters A-Z and digits 2-7)")]
    Base32,
    #[error("secret has {bits} bits; at least 128 are required (RFC 4226 §4)")]
    SecretTooShort { bits: usize },
    #[error("secret has {bits} bits; at most 1024 are accepted")]
    SecretTooLong { bits: usize },
    #[error("{0} digits is not supported; use 6, 7 or 8 (RFC 4226 §5.3)")]
    Digits(u8),
    #[error("a time step of {0} s is not supported; use 30 or 60")]
    Period(u32),
    #[error("unknown OATH algorithm `{0}`; use SHA1, SHA256 or SHA512")]
    Algorithm(String),
}

/// The HMAC hash of a token (RFC 6238 §1.2 allows SHA-256 and SHA-512 besides SHA-1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name the Key Uri Format and token vendors' CSV files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Algorithm::Sha1 => MessageDigest::sha1(),
            Algorithm::Sha256 => MessageDigest::sha256(),
            Algorithm::Sha512 => MessageDigest::sha512(),
        }
    }
}

impl std::str::FromStr for Algorithm {
    type Err = OathError;
    /// Case-insensitive, with or without the hyphen ("sha1", "SHA-256").
    fn from_str(s: &str) -> Result<Self, OathError> {
        match s.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(OathError::Algorithm(s.to_owned())),
        }
    }
}

/// How a token computes its codes. Missing fields of a stored record take the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct OathParams {
    pub algorithm: Algorithm,
    /// Code length, 6..=8.
    pub digits: u8,
    /// Time step X in seconds (RFC 6238 §4.1), 30 or 60.
    pub period: u32,
}

impl Default for OathParams {
    /// SHA-1, 6 digits, 30 s: what every authenticator app assumes (RFC 6238 §5.2).
    fn default() -> Self {
        OathParams {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

impl OathParams {
    /// Refuses what authenticator apps and hardware tokens do not support: fewer than 6
    /// digits is too guessable (RFC 4226 §5.3 minimum), more than 8 is not interoperable,
    /// and time steps other than 30 / 60 s are not offered by tokens (Azure's CSV allows both).
    pub fn validate(&self) -> Result<(), OathError> {
        if !(6..=8).contains(&self.digits) {
            return Err(OathError::Digits(self.digits));
        }
        if self.period != 30 && self.period != 60 {
            return Err(OathError::Period(self.period));
        }
        Ok(())
    }
}

/// A new random shared secret (160 bits).
pub fn generate_secret() -> Vec<u8> {
    random_bytes::<GENERATED_SECRET_BYTES>().to_vec()
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 §6 Base32 without the `=` padding (authenticator apps and the Key Uri Format
/// expect it unpadded).
pub fn base32(secret: &[u8]) -> String {
    let mut out = String::with_capacity(secret.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in secret {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 31) as usize],
            ));
        }
    }
    if bits > 0 {
        // The last group is padded with zero bits on the right (RFC 4648 §6).
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize],
        ));
    }
    out
}

/// Parses a Base32 secret as people type or token vendors ship it: any case, with spaces
/// (and optional trailing `=` padding). Refuses secrets shorter than 128 bits.
pub fn from_base32(s: &str) -> Result<Vec<u8>, OathError> {
    let cleaned: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data = match cleaned.iter().position(|&b| b == b'=') {
        Some(i) if cleaned[i..].iter().all(|&b| b == b'=') => &cleaned[..i],
        Some(_) => return Err(OathError::Base32),
        None => &cleaned[..],
    };
    // 1, 3 or 6 characters left over cannot encode whole bytes (RFC 4648 §6 final quanta).
    if matches!(data.len() % 8, 1 | 3 | 6) {
        return Err(OathError::Base32);
    }
    let mut out = Vec::with_capacity(data.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(OathError::Base32),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    let bits = out.len() * 8;
    if out.len() < MIN_SECRET_BYTES {
        return Err(OathError::SecretTooShort { bits });
    }
    if out.len() > MAX_SECRET_BYTES {
        return Err(OathError::SecretTooLong { bits });
    }
    Ok(out)
}

/// Everything but RFC 3986 unreserved characters is percent-encoded, so issuer and account
/// names with spaces, `:`, `@`, `&` or non-ASCII letters survive the URI intact.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The enrolment URI authenticator apps scan, in the Key Uri Format:
/// `otpauth://totp/Issuer:account?secret=..&issuer=..&algorithm=..&digits=..&period=..`.
/// The issuer appears both as the label prefix and as a parameter, as the format recommends.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], p: &OathParams) -> String {
    let enc = |s: &str| utf8_percent_encode(s, URI_COMPONENT).to_string();
    let mut uri = String::from("otpauth://totp/");
    if !issuer.is_empty() {
        uri.push_str(&enc(issuer));
        uri.push(':');
    }
    uri.push_str(&enc(account));
    uri.push_str("?secret=");
    uri.push_str(&base32(secret));
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        uri.push_str(&enc(issuer));
    }
    let _ = write!(
        uri,
        "&algorithm={}&digits={}&period={}",
        p.algorithm.as_str(),
        p.digits,
        p.period
    );
    uri
}

/// Pixels per QR module: a version 7–10 code (an otpauth URI) comes out 250–300 px wide.
const QR_SCALE: usize = 5;
/// The light border a QR code needs around it (ISO/IEC 18004 §6.3.8: four modules).
const QR_QUIET_ZONE: usize = 4;

/// An inline SVG QR code of `data`, for embedding in an HTML page: no XML declaration, no
/// script, no style, no external reference — only a rect and one path, so a strict CSP
/// (`default-src 'none'`) renders it. Empty when `data` is too long for a QR code (about
/// 2.3 KB at this error-correction level); the enrolment page also shows the Base32 text.
pub fn qr_svg(data: &str) -> String {
    // Level M (15% recovery): a screen photographed by a phone needs little correction, and
    // a lower level keeps the code sparse enough to scan from a small laptop display.
    let Ok(code) = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M) else {
        return String::new();
    };
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QR_QUIET_ZONE;
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        // One subpath per horizontal run of dark modules keeps the SVG small.
        let mut x = 0;
        while x < width {
            if row[x] != qrcode::Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && row[x] == qrcode::Color::Dark {
                x += 1;
            }
            let _ = write!(
                path,
                "M{} {}h{}v1h-{}z",
                start + QR_QUIET_ZONE,
                y + QR_QUIET_ZONE,
                x - start,
                x - start
            );
        }
    }
    let px = size * QR_SCALE;
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {s} {s}" width="{px}" "#,
            r#"height="{px}" shape-rendering="crispEdges" role="img" aria-label="QR code">"#,
            r##"<rect width="{s}" height="{s}" fill="#fff"/><path fill="#000" d="{d}"/></svg>"##
        ),
        s = size,
        px = px,
        d = path
    )
}

/// RFC 4226 §5.3 HOTP: HMAC of the 8-byte big-endian counter, dynamic truncation to 31 bits,
/// modulo 10^digits, left-padded with zeros. RFC 6238 §1.2 uses the same truncation for
/// SHA-256/512 (offset from the last byte of the longer MAC).
pub fn hotp(secret: &[u8], algorithm: Algorithm, digits: u8, counter: u64) -> String {
    let mac = hmac(algorithm.digest(), secret, &counter.to_be_bytes());
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    // Clamped only so a corrupt record cannot overflow 10^digits; `validate` keeps 6..=8.
    let digits = u32::from(digits.clamp(1, 9));
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// RFC 6238 §4.2: T = floor((unix - T0) / X) with T0 = 0. Times before 1970 count as step 0.
fn step_at(unix: i64, period: u32) -> u64 {
    u64::try_from(unix).unwrap_or(0) / u64::from(period.max(1))
}

/// The TOTP code at Unix time `unix`.
pub fn code_at(secret: &[u8], p: &OathParams, unix: i64) -> String {
    hotp(secret, p.algorithm, p.digits, step_at(unix, p.period))
}

/// The time step whose code equals `code`, looking one step back and one ahead of `unix`
/// (RFC 6238 §5.2: allow for clock drift and the seconds it takes to type the code). When
/// more than one step matches (a 1-in-10^digits coincidence) the newest wins, which makes the
/// replay marker as strict as possible. Every candidate is computed and compared in constant
/// time, so the answer's timing does not tell which step matched.
pub fn matching_step(secret: &[u8], p: &OathParams, code: &str, unix: i64) -> Option<u64> {
    if p.validate().is_err()
        || code.len() != usize::from(p.digits)
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let now = step_at(unix, p.period);
    let mut found = None;
    for step in [now.checked_sub(1), Some(now), now.checked_add(1)]
        .into_iter()
        .flatten()
    {
        let candidate = hotp(secret, p.algorithm, p.digits, step);
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The Store key of the last accepted step of one token.
fn replay_store_key(replay_key: &str) -> String {
    format!("otp_last:{replay_key}")
}

/// How long the last accepted step must be remembered. A code for step s is accepted while
/// the verifier's time is within steps s-1..=s+1, i.e. for up to three periods after it could
/// first have been accepted; a node whose clock lags the writer's extends that by its lag.
/// After that, step s is outside every node's window and the marker is no longer needed.
fn replay_ttl(p: &OathParams) -> Duration {
    Duration::from_secs(3 * u64::from(p.period) + MAX_NODE_CLOCK_SKEW)
}

/// Checks `code` and accepts it at most once: only if its time step is newer than the last
/// step accepted for `replay_key` (e.g. `username/token-id`). So a code cannot be replayed,
/// nor can an older code still inside the window be used after a newer one (RFC 6238 §5.2:
/// "the verifier MUST NOT accept the second attempt of the OTP after the successful
/// validation has been issued"). The marker is advanced with compare-and-set, so two nodes
/// racing with the same code see exactly one success.
pub async fn verify_once(
    store: &dyn Store,
    replay_key: &str,
    secret: &[u8],
    p: &OathParams,
    code: &str,
    unix: i64,
) -> Result<bool, StoreError> {
    let Some(step) = matching_step(secret, p, code, unix) else {
        return Ok(false);
    };
    let key = replay_store_key(replay_key);
    let new = step.to_string();
    // Each failed compare-and-set means another verifier advanced the marker; the loop ends
    // as soon as the marker reaches our step. The bound only guards against a misbehaving
    // backend: refusing a valid code is the safe failure.
    for _ in 0..8 {
        let current = store.get(&key).await?;
        if let Some(bytes) = &current {
            let last = std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    detail: "last OTP step is not a number".into(),
                })?;
            if step <= last {
                return Ok(false);
            }
        }
        if store
            .compare_and_set(
                &key,
                current.as_deref(),
                new.as_bytes(),
                Some(replay_ttl(p)),
            )
            .await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::embedded::EmbeddedStore;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn params(algorithm: Algorithm, digits: u8) -> OathParams {
        OathParams {
            algorithm,
            digits,
            period: 30,
        }
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        // (time, SHA1, SHA256, SHA512), 8 digits, X = 30, T0 = 0.
        let vectors: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in vectors {
            assert_eq!(code_at(SEED_SHA1, &params(Algorithm::Sha1, 8), t), c1);
            assert_eq!(code_at(SEED_SHA256, &params(Algorithm::Sha256, 8), t), c256);
            assert_eq!(code_at(SEED_SHA512, &params(Algorithm::Sha512, 8), t), c512);
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(SEED_SHA1, Algorithm::Sha1, 6, counter as u64), *code);
        }
    }

    #[test]
    fn empty_secret_does_not_panic() {
        assert_eq!(code_at(b"", &OathParams::default(), 0).len(), 6);
    }

    #[test]
    fn params_validate_and_default() {
        let d = OathParams::default();
        assert_eq!((d.algorithm, d.digits, d.period), (Algorithm::Sha1, 6, 30));
        assert!(d.validate().is_ok());
        for digits in [6, 7, 8] {
            for period in [30, 60] {
                let p = OathParams {
                    digits,
                    period,
                    ..d
                };
                assert!(p.validate().is_ok());
            }
        }
        let e = OathParams { digits: 5, ..d }.validate().unwrap_err();
        assert_eq!(e, OathError::Digits(5));
        assert!(e.to_string().contains("6, 7 or 8"));
        assert_eq!(
            OathParams { digits: 9, ..d }.validate(),
            Err(OathError::Digits(9))
        );
        let e = OathParams { period: 45, ..d }.validate().unwrap_err();
        assert!(e.to_string().contains("30 or 60"), "{e}");
        assert_eq!(
            OathParams { period: 0, ..d }.validate(),
            Err(OathError::Period(0))
        );
    }

    #[test]
    fn params_serde_with_defaults_for_missing_fields() {
        let p = OathParams {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"algorithm":"SHA256","digits":8,"period":60}"#);
        assert_eq!(serde_json::from_str::<OathParams>(&json).unwrap(), p);
        let old: OathParams = serde_json::from_str(r#"{"digits":8}"#).unwrap();
        assert_eq!(
            old,
            OathParams {
                digits: 8,
                ..OathParams::default()
            }
        );
        assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert!("md5".parse::<Algorithm>().is_err());
    }

    #[test]
    fn base32_rfc4648_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(base32(plain.as_bytes()), enc);
        }
        let secret = generate_secret();
        assert_eq!(secret.len(), 20);
        assert_ne!(secret, generate_secret());
        assert_eq!(from_base32(&base32(&secret)).unwrap(), secret);
        assert_eq!(from_base32(&base32(SEED_SHA512)).unwrap(), SEED_SHA512);
    }

    #[test]
    fn from_base32_is_lenient_in_form_and_strict_in_content() {
        let secret = SEED_SHA1;
        let b32 = base32(secret); // GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
        let spaced = b32
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(from_base32(&spaced).unwrap(), secret);
        assert_eq!(from_base32(&format!(" {b32}\n")).unwrap(), secret);
        // 16 bytes = 26 chars + 6 padding characters in padded form.
        let sixteen = base32(&[0x42; 16]);
        assert_eq!(
            from_base32(&format!("{sixteen}======")).unwrap(),
            [0x42; 16]
        );
        assert_eq!(
            from_base32(&base32(&[1; 15])),
            Err(OathError::SecretTooShort { bits: 120 })
        );
        assert!(matches!(
            from_base32(&base32(&[1; 129])),
            Err(OathError::SecretTooLong { .. })
        ));
        assert_eq!(from_base32(&b32.replace('G', "1")), Err(OathError::Base32));
        assert_eq!(from_base32(&b32.replace('G', "8")), Err(OathError::Base32));
        assert_eq!(from_base32(&format!("{b32}=A")), Err(OathError::Base32));
        assert_eq!(from_base32(&format!("{b32}A")), Err(OathError::Base32));
        assert_eq!(
            from_base32(&b32.replacen('G', "-", 1)),
            Err(OathError::Base32)
        );
    }

    #[test]
    fn otpauth_uri_is_key_uri_format_and_percent_encoded() {
        let secret = SEED_SHA1;
        let uri = otpauth_uri(
            "Contoso",
            "alice@contoso.com",
            secret,
            &OathParams::default(),
        );
        assert_eq!(
            uri,
            "otpauth://totp/Contoso:alice%40contoso.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Contoso&algorithm=SHA1&digits=6&period=30"
        );
        let p = OathParams {
            algorithm: Algorithm::Sha512,
            digits: 8,
            period: 60,
        };
        let uri = otpauth_uri("Big Co: R&D", "bob smith", secret, &p);
        assert!(
            uri.starts_with("otpauth://totp/Big%20Co%3A%20R%26D:bob%20smith?secret="),
            "{uri}"
        );
        assert!(uri.contains("&issuer=Big%20Co%3A%20R%26D&algorithm=SHA512&digits=8&period=60"));
        let parsed = url::Url::parse(&uri).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().collect();
        assert_eq!(q["issuer"], "Big Co: R&D");
        assert_eq!(q["secret"], base32(secret));
        assert_eq!(
            otpauth_uri("", "x", secret, &OathParams::default()),
            format!(
                "otpauth://totp/x?secret={}&algorithm=SHA1&digits=6&period=30",
                base32(secret)
            )
        );
    }

    #[test]
    fn qr_svg_is_inline_and_inert() {
        let uri = otpauth_uri("Contoso", "alice", SEED_SHA1, &OathParams::default());
        let svg = qr_svg(&uri);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        for forbidden in ["<?xml", "<script", "style", "href", "on", "url(", "<!"] {
            // "on" would catch event handlers such as onload=.
            let hay = svg.replace("crispEdges", "").replace("version", "");
            assert!(!hay.contains(forbidden), "{forbidden} in {svg}");
        }
        assert!(
            svg.contains("<path fill=\"#000\" d=\"M4 4h7v1h-7z"),
            "{svg}"
        );
        // The matrix matches the encoder's: count dark modules drawn vs. the code.
        let code = qrcode::QrCode::with_error_correction_level(&uri, qrcode::EcLevel::M).unwrap();
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == qrcode::Color::Dark)
            .count();
        let drawn: usize = svg
            .split('M')
            .skip(1)
            .map(|run| {
                let h = run.split('h').nth(1).unwrap();
                h.split('v').next().unwrap().parse::<usize>().unwrap()
            })
            .sum();
        assert_eq!(drawn, dark);
        assert_eq!(qr_svg(&"x".repeat(5000)), "");
    }

    #[test]
    fn matching_step_allows_one_step_either_side() {
        let p = OathParams::default();
        let t = 1_700_000_015; // inside step 56_666_667
        let now = step_at(t, 30);
        for (offset, expect) in [
            (-60, None),
            (-30, Some(now - 1)),
            (0, Some(now)),
            (30, Some(now + 1)),
            (60, None),
        ] {
            let code = code_at(SEED_SHA1, &p, t + offset);
            assert_eq!(
                matching_step(SEED_SHA1, &p, &code, t),
                expect,
                "offset {offset}"
            );
        }
        let code = code_at(SEED_SHA1, &p, t);
        assert_eq!(matching_step(SEED_SHA1, &p, &format!("{code}0"), t), None);
        assert_eq!(matching_step(SEED_SHA1, &p, &code[..5], t), None);
        assert_eq!(
            matching_step(SEED_SHA1, &p, &format!(" {}", &code[1..]), t),
            None
        );
        assert_eq!(matching_step(SEED_SHA1, &p, "12345a", t), None);
        assert_eq!(matching_step(SEED_SHA1, &p, "", t), None);
        assert_eq!(matching_step(b"another secret!!", &p, &code, t), None);
        // Step 0 has no earlier neighbour.
        assert_eq!(
            matching_step(SEED_SHA1, &p, &code_at(SEED_SHA1, &p, 0), 5),
            Some(0)
        );
        // Non-ASCII digits are not digits.
        assert_eq!(matching_step(SEED_SHA1, &p, "١٢٣٤٥٦", t), None);
    }

    fn store() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        ));
        let s = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
        (dir, Arc::new(s))
    }

    #[tokio::test]
    async fn verify_once_refuses_replays_and_older_codes() {
        let (_dir, s) = store();
        let p = OathParams::default();
        let t = 1_700_000_000;
        let code_now = code_at(SEED_SHA1, &p, t);
        let code_prev = code_at(SEED_SHA1, &p, t - 30);
        let code_next = code_at(SEED_SHA1, &p, t + 30);
        assert!(
            !verify_once(&*s, "alice/t1", SEED_SHA1, &p, "000000x", t)
                .await
                .unwrap()
        );
        assert!(
            verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_now, t)
                .await
                .unwrap()
        );
        assert!(
            !verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_now, t)
                .await
                .unwrap()
        );
        assert!(
            !verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_now, t + 10)
                .await
                .unwrap()
        );
        // An older code still inside the window is refused once a newer one was used.
        assert!(
            !verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_prev, t)
                .await
                .unwrap()
        );
        // Another token's marker is separate.
        assert!(
            verify_once(&*s, "alice/t2", SEED_SHA1, &p, &code_now, t)
                .await
                .unwrap()
        );
        // The next step's code is still fine, once.
        assert!(
            verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_next, t + 30)
                .await
                .unwrap()
        );
        assert!(
            !verify_once(&*s, "alice/t1", SEED_SHA1, &p, &code_next, t + 30)
                .await
                .unwrap()
        );
        let stored = s.get("otp_last:alice/t1").await.unwrap().unwrap();
        assert_eq!(stored, (step_at(t, 30) + 1).to_string().into_bytes());
    }

    #[tokio::test]
    async fn corrupt_marker_is_an_error_not_an_accept() {
        let (_dir, s) = store();
        let p = OathParams::default();
        s.put("otp_last:bob/t", b"garbage", None).await.unwrap();
        let code = code_at(SEED_SHA1, &p, 1_700_000_000);
        let r = verify_once(&*s, "bob/t", SEED_SHA1, &p, &code, 1_700_000_000).await;
        assert!(matches!(r, Err(StoreError::Corrupt { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_verifications_of_one_code_accept_exactly_once() {
        let (_dir, s) = store();
        let p = OathParams::default();
        let t = 1_700_000_000;
        let code = code_at(SEED_SHA1, &p, t);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                let code = code.clone();
                tokio::spawn(async move {
                    verify_once(&*s, "carol/t1", SEED_SHA1, &p, &code, t)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            accepted += usize::from(task.await.unwrap());
        }
        assert_eq!(accepted, 1);
    }

    #[test]
    fn replay_marker_outlives_the_window() {
        for period in [30, 60] {
            let p = OathParams {
                period,
                ..OathParams::default()
            };
            assert!(replay_ttl(&p) >= Duration::from_secs(3 * u64::from(period)));
        }
    }
}
