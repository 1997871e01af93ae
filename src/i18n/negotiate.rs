//! Which language a page is served in: the user's pick (link, then cookie), else the browser's `Accept-Language`, else the default.

use std::cmp::Reverse;

use super::Lang;

/// Longest `Accept-Language` read: browsers send well under 200 bytes, and the header is
/// attacker-controlled, so the work per request stays bounded whatever arrives.
const MAX_HEADER: usize = 1024;
/// Most language ranges read from it.
const MAX_RANGES: usize = 32;

/// What a request says about languages, each part as sent (any of them may be hostile).
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    /// `?lang=` on a sign-in page: the user clicked a language link just now.
    pub query: Option<&'a str>,
    /// The `tessera_lang` cookie: an earlier pick.
    pub cookie: Option<&'a str>,
    pub accept_language: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub lang: Lang,
    /// The user picked `lang` with this request: the caller remembers it in the cookie.
    pub remember: bool,
}

/// The page language among `offered`. A pick of a language that is not offered (any more)
/// is ignored, as if it had not been made.
pub fn negotiate(offered: &[Lang], default: Lang, asked: Asked<'_>) -> Negotiated {
    let pick = |s: Option<&str>| {
        s.and_then(|s| s.parse::<Lang>().ok())
            .filter(|l| offered.contains(l))
    };
    if let Some(lang) = pick(asked.query) {
        return Negotiated {
            lang,
            remember: true,
        };
    }
    let lang = pick(asked.cookie)
        .or_else(|| {
            asked
                .accept_language
                .and_then(|h| accept_language(h, offered, default))
        })
        .unwrap_or(default);
    Negotiated {
        lang,
        remember: false,
    }
}

/// A language range of `Accept-Language` (RFC 4647 §2.1), reduced to what we match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range<'a> {
    /// `*`: any language not named elsewhere in the header.
    Any,
    /// The primary subtag: `de-CH` asks for `de`, the only German we have.
    Primary(&'a str),
}

/// The offered language the browser prefers (RFC 9110 §12.5.4), or `None` when it accepts
/// none of them. Highest weight wins; a tie goes to the range listed first, and among the
/// languages `*` stands for, to `default`. `q=0` refuses a language (also against `*`).
/// A language named twice (`de-CH, de;q=0.5`) counts with its higher weight. Malformed
/// ranges are skipped, never fatal.
pub fn accept_language(header: &str, offered: &[Lang], default: Lang) -> Option<Lang> {
    // (language, weight, position in the header)
    let mut named: Vec<(Lang, u16, usize)> = Vec::new();
    let mut any: Option<(u16, usize)> = None;
    for (pos, (range, q)) in ranges(header).enumerate() {
        match range {
            Range::Any => {
                any.get_or_insert((q, pos));
            }
            Range::Primary(tag) => {
                let Ok(lang) = tag.parse::<Lang>() else {
                    continue;
                };
                match named.iter_mut().find(|(l, ..)| *l == lang) {
                    Some(seen) => seen.1 = seen.1.max(q),
                    None => named.push((lang, q, pos)),
                }
            }
        }
    }
    let mut candidates = named.clone();
    if let Some((q, pos)) = any {
        for lang in std::iter::once(default).chain(offered.iter().copied()) {
            if !candidates.iter().any(|(l, ..)| *l == lang) {
                candidates.push((lang, q, pos));
            }
        }
    }
    candidates
        .into_iter()
        .filter(|(l, q, _)| *q > 0 && offered.contains(l))
        .min_by_key(|(_, q, pos)| (Reverse(*q), *pos))
        .map(|(l, ..)| l)
}

/// The well-formed ranges of the header's bounded head, with weights in thousandths.
fn ranges(header: &str) -> impl Iterator<Item = (Range<'_>, u16)> {
    let mut cut = header.len().min(MAX_HEADER);
    while !header.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut head = &header[..cut];
    if cut < header.len() {
        // The range the cut went through may be half a range: drop it.
        head = head.rsplit_once(',').map_or("", |(h, _)| h);
    }
    head.split(',').take(MAX_RANGES).filter_map(range)
}

/// `range *( OWS ";" OWS "q=" qvalue )`; anything else is malformed.
fn range(entry: &str) -> Option<(Range<'_>, u16)> {
    let mut parts = entry.split(';');
    let tag = parts.next()?.trim();
    let range = if tag == "*" {
        Range::Any
    } else {
        Range::Primary(primary_subtag(tag)?)
    };
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            return None;
        }
        q = qvalue(value.trim())?;
    }
    Some((range, q))
}

/// `1*8ALPHA *("-" 1*8alphanum)` (RFC 4647 §2.1) → the first subtag.
fn primary_subtag(tag: &str) -> Option<&str> {
    let ok = |s: &str, alpha_only: bool| {
        (1..=8).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphabetic() || (!alpha_only && b.is_ascii_digit()))
    };
    let mut subtags = tag.split('-');
    let primary = subtags.next()?;
    (ok(primary, true) && subtags.all(|s| ok(s, false))).then_some(primary)
}

/// `"0" [ "." 0*3DIGIT ] / "1" [ "." 0*3"0" ]` (RFC 9110 §12.4.2), in thousandths.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lang::{De, En, Es, Fr, It, Nl, Pt};

    const ALL: &[Lang] = &Lang::ALL;

    fn best(header: &str) -> Option<Lang> {
        accept_language(header, ALL, En)
    }

    #[test]
    fn weights_subtags_and_order() {
        assert_eq!(best("de-DE,de;q=0.9,en;q=0.5"), Some(De));
        assert_eq!(best("de-CH"), Some(De));
        assert_eq!(best("FR-ca"), Some(Fr));
        assert_eq!(best("en;q=0.5, fr;q=0.8"), Some(Fr));
        assert_eq!(best("fr, de"), Some(Fr), "a tie goes to the first listed");
        assert_eq!(best("zh-Hant, ja;q=0.9, de;q=0.1"), Some(De));
        assert_eq!(best("zh-Hant, ja"), None);
        assert_eq!(
            best("de-CH, de;q=0.1, fr;q=0.5"),
            Some(De),
            "higher weight counts"
        );
        assert_eq!(best("  de ;q=0.7 , fr;Q=0.8"), Some(Fr));
        assert_eq!(best("sgn-CH-de, de;q=0.2"), Some(De));
        assert_eq!(best("de;q=1.000, fr;q=0.999"), Some(De));
        assert_eq!(best("es-419, en;q=0.5"), Some(Es), "Latin-American Spanish");
        assert_eq!(best("pt-BR, pt;q=0.9"), Some(Pt));
        assert_eq!(best("nl-BE, fr-BE;q=0.8"), Some(Nl));
        assert_eq!(best("it-CH;q=0.4, de-CH;q=0.3"), Some(It));
        assert_eq!(best(""), None);
    }

    #[test]
    fn wildcard_and_refusals() {
        assert_eq!(best("*"), Some(En), "any: the default first");
        assert_eq!(accept_language("*", ALL, Fr), Some(Fr));
        assert_eq!(accept_language("*", &[De, Fr], En), Some(De));
        assert_eq!(best("*;q=0"), None);
        assert_eq!(best("de;q=0, *"), Some(En));
        assert_eq!(best("en;q=0, *;q=0.5"), Some(De));
        assert_eq!(best("de;q=0"), None);
        assert_eq!(best("ja, *;q=0.1, fr;q=0.2"), Some(Fr));
        assert_eq!(
            accept_language("de, fr", &[Fr], En),
            Some(Fr),
            "only offered ones"
        );
        assert_eq!(accept_language("de", &[En, Fr], En), None);
    }

    #[test]
    fn hostile_headers_are_bounded_and_skipped() {
        assert_eq!(best("de;q=abc, fr;q=0.5"), Some(Fr));
        assert_eq!(best(";;;"), None);
        assert_eq!(best(",,,;,=,;q=,q=1"), None);
        assert_eq!(best("de;q=2, fr;q=0.3"), Some(Fr));
        assert_eq!(
            best("de;q=1.5, de;q=-1, de;q=0.1234, de;q=.5, de;q=1e0, fr;q=0.01"),
            Some(Fr)
        );
        assert_eq!(best("de;level=1, fr;q=0.2"), Some(Fr), "unknown parameters");
        assert_eq!(
            best("deutschland, fr;q=0.2"),
            Some(Fr),
            "subtag longer than 8"
        );
        assert_eq!(best("d3, de-, -de, de--ch, fr;q=0.2"), Some(Fr));
        assert_eq!(best("dé, 中文, ✓;q=0.5, \u{0}, fr;q=0.2"), Some(Fr));
        assert_eq!(best("\u{feff}de"), None);
        // 100 KB: only the head is read, so the French range at the end never counts.
        let huge = format!("{}fr", "de;q=0.1,".repeat(100_000 / 9));
        assert!(huge.len() > 100_000);
        assert_eq!(best(&huge), Some(De));
        let huge_junk = "x".repeat(100_000);
        assert_eq!(best(&huge_junk), None);
        // More ranges than read: the 40th is never looked at.
        let many = format!("{}fr", "ja,".repeat(39));
        assert_eq!(best(&many), None);
        // A multi-byte character across the cut must not panic.
        for pad in 1020..1030 {
            let h = format!("{}ü,de", "a".repeat(pad));
            let _ = best(&h);
            let h = format!("de,{}", "ü".repeat(pad));
            assert_eq!(best(&h), Some(De), "{pad}");
        }
    }

    #[test]
    fn qvalues() {
        for (s, q) in [
            ("0", 0),
            ("0.", 0),
            ("0.5", 500),
            ("0.05", 50),
            ("0.001", 1),
            ("1", 1000),
            ("1.0", 1000),
            ("1.000", 1000),
        ] {
            assert_eq!(qvalue(s), Some(q), "{s}");
        }
        for s in [
            "", "2", "1.1", "1.0001", "0.0001", "abc", "-0", "+1", ".5", "0,5", "0.5 ",
        ] {
            assert_eq!(qvalue(s), None, "{s:?}");
        }
    }

    #[test]
    fn a_pick_beats_the_browser_and_is_remembered_only_when_new() {
        let asked = |query, cookie, accept| Asked {
            query,
            cookie,
            accept_language: accept,
        };
        let n = negotiate(ALL, En, asked(Some("fr"), Some("de"), Some("de")));
        assert_eq!(
            n,
            Negotiated {
                lang: Fr,
                remember: true
            }
        );
        let n = negotiate(ALL, En, asked(None, Some("de"), Some("fr")));
        assert_eq!(
            n,
            Negotiated {
                lang: De,
                remember: false
            }
        );
        let n = negotiate(ALL, En, asked(None, None, Some("fr-FR")));
        assert_eq!(n.lang, Fr);
        let n = negotiate(ALL, De, asked(None, None, None));
        assert_eq!(
            n,
            Negotiated {
                lang: De,
                remember: false
            }
        );
    }

    #[test]
    fn picks_of_languages_not_offered_are_ignored() {
        let only_en = &[En];
        let n = negotiate(
            only_en,
            En,
            Asked {
                query: Some("de"),
                cookie: Some("fr"),
                accept_language: Some("de"),
            },
        );
        assert_eq!(
            n,
            Negotiated {
                lang: En,
                remember: false
            }
        );
        let n = negotiate(
            ALL,
            En,
            Asked {
                query: Some("xx"),
                cookie: Some("../../etc"),
                accept_language: None,
            },
        );
        assert_eq!(
            n,
            Negotiated {
                lang: En,
                remember: false
            }
        );
        let long = "d".repeat(100_000);
        let n = negotiate(
            ALL,
            Fr,
            Asked {
                query: Some(&long),
                cookie: Some(&long),
                accept_language: Some(&long),
            },
        );
        assert_eq!(
            n,
            Negotiated {
                lang: Fr,
                remember: false
            }
        );
    }
}
