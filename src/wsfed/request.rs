//! The passive requestor's query (MS-WSFED §2.2.3): `wa` and its parameters, read strictly
//! and bounded, from a URL query or a form body (both are `application/x-www-form-urlencoded`).

/// The whole query or form body we read at all.
pub const MAX_INPUT: usize = 16 * 1024;
/// `wctx` is opaque to us and echoed back; AD FS and the RPs keep it short (a return URL or
/// a state key), so more than this is refused rather than carried.
pub const MAX_CONTEXT: usize = 2048;
/// `wtrealm`, `whr`: identifiers, as long as an entity ID may be (saml/metadata.rs).
pub const MAX_REALM: usize = 1024;
/// `wreply`: a URL.
pub const MAX_REPLY: usize = 2048;
/// `wct`: an xs:dateTime, with room for fractions and an offset.
pub const MAX_TIME: usize = 64;
/// `wfresh` in minutes: a year is already more than any session lives.
pub const MAX_FRESH: u32 = 525_600;

/// What a passive request asks for (MS-WSFED §2.2.3, the `wa` parameter). Any other `wa` is
/// refused: a closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFedRequest {
    /// `wsignin1.0`: issue a token for `wtrealm`.
    SignIn(SignIn),
    /// `wsignout1.0`: end the session; `wreply` is where the RP wants the browser next.
    SignOut { reply: Option<String> },
    /// `wsignoutcleanup1.0`: another party signs the user out; end our session too.
    SignOutCleanup,
}

/// A `wsignin1.0` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `wtrealm`: the relying party's identifier (required, MS-WSFED §2.2.3).
    pub realm: String,
    /// `wreply`: where the RP wants the token; must be one of its registered reply URLs.
    pub reply: Option<String>,
    /// `wctx`: opaque, returned byte for byte.
    pub context: Option<String>,
    /// `wfresh`: the longest age, in minutes, an earlier sign-in may have; 0 forces a new one.
    pub fresh: Option<u32>,
    /// `whr`: the home realm hint. We are the only account store, so it is only logged.
    pub home_realm: Option<String>,
    /// `wct`: the RP's clock when it sent the request; accepted, not judged.
    pub current_time: Option<String>,
}

/// Why a request was refused. `Display` is the log line; `user_message` the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsFedError {
    #[error("request is {0} bytes, over {MAX_INPUT}")]
    TooLarge(usize),
    #[error("parameter {0} is not correctly percent-encoded UTF-8")]
    BadEncoding(String),
    #[error("parameter {0} appears more than once")]
    Duplicate(String),
    #[error("no wa parameter")]
    NoAction,
    #[error("unknown wa {0:?}")]
    UnknownAction(String),
    #[error("wsignin1.0 without wtrealm")]
    NoRealm,
    #[error("parameter {name} is {len} bytes, over {max}")]
    TooLong {
        name: &'static str,
        len: usize,
        max: usize,
    },
    #[error("parameter {0} contains control characters")]
    ControlCharacters(&'static str),
    #[error("wfresh {0:?} is not a number of minutes")]
    BadFresh(String),
}

impl WsFedError {
    /// What the user reads (an English message id from the catalogue).
    pub fn user_message(&self) -> &'static str {
        match self {
            WsFedError::TooLarge(_) | WsFedError::TooLong { .. } => {
                "The application sent a sign-in request that is too long."
            }
            _ => "The sign-in request from the application is not valid.",
        }
    }
}

/// The WS-Federation parameters we read, with their bounds. Others (`wauth`, `wattr`,
/// `wp`, …) are ignored, within `MAX_INPUT`.
const KNOWN: [(&str, usize); 7] = [
    ("wa", 32),
    ("wtrealm", MAX_REALM),
    ("wreply", MAX_REPLY),
    ("wctx", MAX_CONTEXT),
    ("wfresh", 16),
    ("whr", MAX_REALM),
    ("wct", MAX_TIME),
];

/// Does this query or form body carry a WS-Federation action (a `wa` parameter)?
pub fn is_wsfed(input: &[u8]) -> bool {
    input
        .split(|b| *b == b'&')
        .any(|pair| pair == b"wa" || pair.starts_with(b"wa="))
}

/// Reads a query string or form body (without the leading `?`).
pub fn parse(input: &[u8]) -> Result<WsFedRequest, WsFedError> {
    if input.len() > MAX_INPUT {
        return Err(WsFedError::TooLarge(input.len()));
    }
    let mut found: [Option<String>; KNOWN.len()] = Default::default();
    for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(k).map_err(|()| WsFedError::BadEncoding(lossy(k)))?;
        let Some(slot) = KNOWN.iter().position(|(n, _)| *n == key) else {
            continue;
        };
        let (name, max) = KNOWN[slot];
        let value = decode(v).map_err(|()| WsFedError::BadEncoding(name.to_owned()))?;
        // Two values for one parameter: which one did the RP mean, and which did a proxy or
        // an attacker add? Neither is guessed.
        if found[slot].is_some() {
            return Err(WsFedError::Duplicate(name.to_owned()));
        }
        if value.len() > max {
            return Err(WsFedError::TooLong {
                name,
                len: value.len(),
                max,
            });
        }
        // wctx is opaque and may carry anything printable or not, but no other value has a
        // reason to hold a control character (a header or log line splitter).
        if name != "wctx" && value.chars().any(char::is_control) {
            return Err(WsFedError::ControlCharacters(name));
        }
        found[slot] = Some(value);
    }
    let [wa, realm, reply, context, fresh, home_realm, current_time] = found;
    match wa.as_deref() {
        None => Err(WsFedError::NoAction),
        Some("wsignin1.0") => {
            let realm = realm
                .filter(|r| !r.trim().is_empty())
                .ok_or(WsFedError::NoRealm)?;
            let fresh = fresh
                .map(|f| {
                    f.parse::<u32>()
                        .ok()
                        .filter(|m| *m <= MAX_FRESH)
                        .ok_or(WsFedError::BadFresh(f))
                })
                .transpose()?;
            Ok(WsFedRequest::SignIn(SignIn {
                realm,
                reply: reply.filter(|r| !r.is_empty()),
                context,
                fresh,
                home_realm,
                current_time,
            }))
        }
        Some("wsignout1.0") => Ok(WsFedRequest::SignOut {
            reply: reply.filter(|r| !r.is_empty()),
        }),
        Some("wsignoutcleanup1.0") => Ok(WsFedRequest::SignOutCleanup),
        Some(other) => Err(WsFedError::UnknownAction(other.chars().take(32).collect())),
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte), strict:
/// a broken escape or bytes that are not UTF-8 are refused rather than replaced, so what
/// we echo (`wctx`) is exactly what was sent.
fn decode(raw: &[u8]) -> Result<String, ()> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(())?;
                let hex = std::str::from_utf8(hex).map_err(drop)?;
                out.push(u8::from_str_radix(hex, 16).map_err(drop)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(drop)
}

/// A parameter name for the log, short and printable.
fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(32)])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in(q: &str) -> SignIn {
        match parse(q.as_bytes()) {
            Ok(WsFedRequest::SignIn(s)) => s,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn a_sign_in_with_every_parameter() {
        let s = sign_in(
            "wa=wsignin1.0&wtrealm=urn%3Aapp%3Aone&wreply=https%3A%2F%2Fapp.example%2F&wctx=rm%3D0%26id%3Dx+y%25&wfresh=0&whr=corp&wct=2026-12-05T18%3A00%3A00Z&wauth=ignored",
        );
        assert_eq!(s.realm, "urn:app:one");
        assert_eq!(s.reply.as_deref(), Some("https://app.example/"));
        assert_eq!(s.context.as_deref(), Some("rm=0&id=x y%"));
        assert_eq!(s.fresh, Some(0));
        assert_eq!(s.home_realm.as_deref(), Some("corp"));
        assert_eq!(s.current_time.as_deref(), Some("2026-12-05T18:00:00Z"));
    }

    #[test]
    fn the_context_keeps_every_byte() {
        let ctx = "a&b<c>\"d\"'e' ü 漢 \u{1F600} %41 +";
        let encoded: String = form_urlencoded::byte_serialize(ctx.as_bytes()).collect();
        let s = sign_in(&format!("wa=wsignin1.0&wtrealm=r&wctx={encoded}"));
        assert_eq!(s.context.as_deref(), Some(ctx));
    }

    #[test]
    fn sign_out_and_cleanup() {
        assert_eq!(
            parse(b"wa=wsignout1.0&wreply=https%3A%2F%2Fa.example%2Fbye"),
            Ok(WsFedRequest::SignOut {
                reply: Some("https://a.example/bye".into())
            })
        );
        assert_eq!(
            parse(b"wa=wsignout1.0"),
            Ok(WsFedRequest::SignOut { reply: None })
        );
        assert_eq!(
            parse(b"wa=wsignoutcleanup1.0&wreply=x"),
            Ok(WsFedRequest::SignOutCleanup)
        );
    }

    #[test]
    fn hostile_queries_are_refused() {
        let long_ctx = "x".repeat(MAX_CONTEXT + 1);
        let cases: Vec<(String, WsFedError)> = vec![
            ("wtrealm=r".into(), WsFedError::NoAction),
            ("wa=wsignin1.0".into(), WsFedError::NoRealm),
            ("wa=wsignin1.0&wtrealm=+".into(), WsFedError::NoRealm),
            (
                "wa=wsignin2.0&wtrealm=r".into(),
                WsFedError::UnknownAction("wsignin2.0".into()),
            ),
            (
                "wa=WSIGNIN1.0&wtrealm=r".into(),
                WsFedError::UnknownAction("WSIGNIN1.0".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wtrealm=s".into(),
                WsFedError::Duplicate("wtrealm".into()),
            ),
            (
                "wa=wsignin1.0&wa=wsignout1.0&wtrealm=r".into(),
                WsFedError::Duplicate("wa".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wreply=a&%77reply=b".into(),
                WsFedError::Duplicate("wreply".into()),
            ),
            (
                format!("wa=wsignin1.0&wtrealm=r&wctx={long_ctx}"),
                WsFedError::TooLong {
                    name: "wctx",
                    len: MAX_CONTEXT + 1,
                    max: MAX_CONTEXT,
                },
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wctx=%FF%FE".into(),
                WsFedError::BadEncoding("wctx".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wctx=%4".into(),
                WsFedError::BadEncoding("wctx".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wctx=%zz".into(),
                WsFedError::BadEncoding("wctx".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r%0D%0ASet-Cookie:x".into(),
                WsFedError::ControlCharacters("wtrealm"),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wfresh=-1".into(),
                WsFedError::BadFresh("-1".into()),
            ),
            (
                "wa=wsignin1.0&wtrealm=r&wfresh=99999999999".into(),
                WsFedError::BadFresh("99999999999".into()),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(parse(q.as_bytes()), Err(want), "{q}");
        }
        let huge = format!("wa=wsignin1.0&wtrealm=r&x={}", "y".repeat(MAX_INPUT));
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(WsFedError::TooLarge(_))
        ));
        // Exactly at the bound is fine.
        let at = "x".repeat(MAX_CONTEXT);
        assert_eq!(
            sign_in(&format!("wa=wsignin1.0&wtrealm=r&wctx={at}")).context,
            Some(at)
        );
    }

    #[test]
    fn wsfed_is_told_apart_by_its_wa_parameter() {
        assert!(is_wsfed(b"wa=wsignin1.0&wtrealm=r"));
        assert!(is_wsfed(b"wtrealm=r&wa=wsignout1.0"));
        assert!(!is_wsfed(b"SAMLRequest=abc&RelayState=wa%3Dx"));
        assert!(!is_wsfed(b"swa=1&waz=2"));
    }
}
