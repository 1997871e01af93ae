//! Translations of what users read during a sign-in: the languages, the catalogue, `{placeholder}` filling.
//!
//! Gettext-style: the English text is the message id. Code and templates keep English;
//! a page is translated when it is rendered (`web::lang`), so a message stored in a login
//! state reads right in whatever language the next request asks for. A text missing from a
//! catalogue falls back to English (a completeness test keeps that from happening).

#[cfg(test)]
mod completeness;
mod negotiate;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use negotiate::{Asked, Negotiated, accept_language, negotiate};

/// The languages Tessera's sign-in pages exist in. Closed: adding one means a catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    De,
    Fr,
    Es,
    It,
    Nl,
    Pt,
}

impl Lang {
    pub const ALL: [Lang; 7] = [
        Lang::En,
        Lang::De,
        Lang::Fr,
        Lang::Es,
        Lang::It,
        Lang::Nl,
        Lang::Pt,
    ];

    /// The ISO 639-1 code (also the `lang` attribute, the cookie and the config value).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::It => "it",
            Lang::Nl => "nl",
            Lang::Pt => "pt",
        }
    }

    /// The language's name in itself: what a reader of that language looks for in a list.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
            Lang::Fr => "Français",
            Lang::Es => "Español",
            Lang::It => "Italiano",
            Lang::Nl => "Nederlands",
            Lang::Pt => "Português",
        }
    }

    /// The BCP-47 tag a phone call speaks this language under (Twilio `<Say language>`,
    /// twilio.com/docs/voice/twiml/say#language): the language with the region whose voice
    /// fits the catalogue (Portuguese is written for Portugal, so `pt-PT`).
    pub fn speech_tag(self) -> &'static str {
        match self {
            Lang::En => "en-US",
            Lang::De => "de-DE",
            Lang::Fr => "fr-FR",
            Lang::Es => "es-ES",
            Lang::It => "it-IT",
            Lang::Nl => "nl-NL",
            Lang::Pt => "pt-PT",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language `{0}` (en, de, fr, es, it, nl, pt)")]
pub struct UnknownLang(pub String);

impl FromStr for Lang {
    type Err = UnknownLang;
    /// Language tags are case-insensitive (RFC 5646 §2.1.1).
    fn from_str(s: &str) -> Result<Self, UnknownLang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLang(s.chars().take(16).collect()))
    }
}

/// Marks a user-facing text that is not a sentence (a page title, a button label) as a
/// message id, so the completeness test finds it. Sentences need no marker.
pub const fn msgid(english: &'static str) -> &'static str {
    english
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("locales/{lang}.toml: {detail}")]
    Syntax { lang: Lang, detail: String },
    #[error("locales/{lang}.toml: \"{key}\" has an empty translation")]
    Empty { lang: Lang, key: String },
    #[error(
        "locales/{lang}.toml: \"{key}\": the translation's placeholders differ from the English"
    )]
    Placeholders { lang: Lang, key: String },
}

/// English text → translation, per language other than English. Built once at startup.
#[derive(Debug, Default)]
pub struct Catalogue {
    by_lang: HashMap<Lang, HashMap<String, String>>,
}

impl Catalogue {
    /// The catalogues compiled into the binary.
    pub fn embedded() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_sources(&[
            (Lang::De, include_str!("../locales/de.toml")),
            (Lang::Fr, include_str!("../locales/fr.toml")),
            (Lang::Es, include_str!("../locales/es.toml")),
            (Lang::It, include_str!("../locales/it.toml")),
            (Lang::Nl, include_str!("../locales/nl.toml")),
            (Lang::Pt, include_str!("../locales/pt.toml")),
        ])
    }

    /// Each source is a TOML table of `"English text" = "translation"`.
    pub fn from_sources(sources: &[(Lang, &str)]) -> Result<Catalogue, CatalogueError> {
        let mut by_lang = HashMap::new();
        for (lang, text) in sources {
            by_lang.insert(*lang, parse(*lang, text)?);
        }
        Ok(Catalogue { by_lang })
    }

    /// `english` in `lang`; the English itself when there is no translation.
    pub fn tr<'a>(&'a self, lang: Lang, english: &'a str) -> &'a str {
        self.by_lang
            .get(&lang)
            .and_then(|m| m.get(english))
            .map_or(english, String::as_str)
    }

    /// `english` in `lang` with its `{placeholders}` filled: a text for a phone, which no
    /// template renders (a text message, a push, a call's script).
    pub fn text(&self, lang: Lang, english: &str, args: &[(&str, &str)]) -> String {
        fill(self.tr(lang, english), args)
    }

    /// The message ids `lang` translates, sorted (English has none: it needs no catalogue).
    pub fn ids(&self, lang: Lang) -> BTreeSet<&str> {
        self.by_lang
            .get(&lang)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// One catalogue file. A translation must keep the English placeholders exactly: a dropped
/// `{destination}` would hide the phone number the user needs to see.
fn parse(lang: Lang, text: &str) -> Result<HashMap<String, String>, CatalogueError> {
    let map: HashMap<String, String> =
        toml::from_str(text).map_err(|e| CatalogueError::Syntax {
            lang,
            detail: e.to_string(),
        })?;
    for (key, value) in &map {
        if value.trim().is_empty() {
            return Err(CatalogueError::Empty {
                lang,
                key: key.clone(),
            });
        }
        if placeholders(key) != placeholders(value) {
            return Err(CatalogueError::Placeholders {
                lang,
                key: key.clone(),
            });
        }
    }
    Ok(map)
}

/// A part of a message: literal text, or a `{name}` placeholder (lower-case letters, digits
/// and `_`, starting with a letter). Any other brace is literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Arg(&'a str),
}

/// The pieces of `message`, in order.
pub fn pieces(message: &str) -> Pieces<'_> {
    Pieces { rest: message }
}

pub struct Pieces<'a> {
    rest: &'a str,
}

/// The placeholder name if `s` starts with one.
fn placeholder_at(s: &str) -> Option<&str> {
    let body = s.strip_prefix('{')?;
    let name = &body[..body.find('}')?];
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (first_ok && rest_ok).then_some(name)
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        if let Some(name) = placeholder_at(self.rest) {
            self.rest = &self.rest[name.len() + 2..];
            return Some(Piece::Arg(name));
        }
        let end = self
            .rest
            .match_indices('{')
            .map(|(i, _)| i)
            .find(|&i| i > 0 && placeholder_at(&self.rest[i..]).is_some())
            .unwrap_or(self.rest.len());
        let (text, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(Piece::Text(text))
    }
}

/// The placeholder names `message` uses.
pub fn placeholders(message: &str) -> BTreeSet<&str> {
    pieces(message)
        .filter_map(|p| match p {
            Piece::Arg(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

/// `message` with each `{name}` replaced by its value in `args`; a placeholder without a
/// value stays as it is, so a mistake shows on the page instead of hiding text.
pub fn fill(message: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(message.len());
    for piece in pieces(message) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Arg(name) => match args.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_parsing() {
        for l in Lang::ALL {
            assert_eq!(l.code().parse::<Lang>(), Ok(l));
            assert_eq!(l.to_string(), l.code());
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.code()));
            assert_eq!(serde_json::from_str::<Lang>(&json).unwrap(), l);
        }
        assert_eq!("DE".parse::<Lang>(), Ok(Lang::De));
        assert_eq!("Pt".parse::<Lang>(), Ok(Lang::Pt));
        assert_eq!(Lang::Fr.name(), "Français");
        assert_eq!(Lang::Es.name(), "Español");
        assert_eq!(Lang::Pt.name(), "Português");
        assert!("de-CH".parse::<Lang>().is_err());
        assert!("".parse::<Lang>().is_err());
        let long = "x".repeat(10_000);
        assert_eq!(long.parse::<Lang>().unwrap_err().0.len(), 16);
    }

    #[test]
    fn each_language_is_spoken_under_a_tag_of_its_own() {
        for l in Lang::ALL {
            let tag = l.speech_tag();
            let (primary, region) = tag.split_once('-').expect("language-REGION");
            assert_eq!(primary, l.code());
            assert!(region.len() == 2 && region.chars().all(|c| c.is_ascii_uppercase()));
        }
        assert_eq!(Lang::Es.speech_tag(), "es-ES");
        assert_eq!(
            Lang::Pt.speech_tag(),
            "pt-PT",
            "the catalogue is European Portuguese"
        );
    }

    #[test]
    fn placeholders_are_filled_and_odd_braces_stay_text() {
        let args = [("phone", "+X XXXX30"), ("n", "7")];
        assert_eq!(fill("Call me at {phone}", &args), "Call me at +X XXXX30");
        assert_eq!(fill("{n}{n}", &args), "77");
        assert_eq!(fill("{missing} here", &args), "{missing} here");
        for literal in [
            "{}",
            "{ phone }",
            "{Phone}",
            "{1x}",
            "a { b",
            "}{",
            "{phone",
            "{{phone}",
        ] {
            let expected = literal.replace("{phone}", "+X XXXX30");
            assert_eq!(fill(literal, &args), expected, "{literal}");
        }
        assert_eq!(fill("", &args), "");
        assert_eq!(fill("Grüße, {n} €", &args), "Grüße, 7 €");
        assert_eq!(
            pieces("to {app}.").collect::<Vec<_>>(),
            [Piece::Text("to "), Piece::Arg("app"), Piece::Text(".")]
        );
        assert_eq!(
            placeholders("{a} {b_2} {a} {C}"),
            BTreeSet::from(["a", "b_2"])
        );
    }

    #[test]
    fn catalogue_translates_and_falls_back_to_english() {
        let c = Catalogue::from_sources(&[
            (Lang::De, "\"Sign in\" = \"Anmelden\"\n\"Call me at {phone}\" = \"Rufen Sie mich unter {phone} an\"\n"),
            (Lang::Fr, ""),
        ])
        .unwrap();
        assert_eq!(c.tr(Lang::De, "Sign in"), "Anmelden");
        assert_eq!(c.tr(Lang::Fr, "Sign in"), "Sign in");
        assert_eq!(c.tr(Lang::En, "Sign in"), "Sign in");
        assert_eq!(c.tr(Lang::De, "Unknown."), "Unknown.");
        assert_eq!(c.ids(Lang::De).len(), 2);
        assert!(c.ids(Lang::En).is_empty());
    }

    #[test]
    fn catalogue_files_are_checked() {
        let bad = |src: &str| Catalogue::from_sources(&[(Lang::De, src)]).unwrap_err();
        assert!(matches!(bad("not toml ="), CatalogueError::Syntax { .. }));
        assert!(matches!(bad("\"A\" = 1"), CatalogueError::Syntax { .. }));
        assert!(matches!(
            bad("[table]\n\"A\" = \"B\""),
            CatalogueError::Syntax { .. }
        ));
        assert!(matches!(bad("\"A\" = \" \""), CatalogueError::Empty { .. }));
        let e = bad("\"Text me at {phone}\" = \"SMS an {telefon}\"");
        assert_eq!(
            e,
            CatalogueError::Placeholders {
                lang: Lang::De,
                key: "Text me at {phone}".into()
            }
        );
        assert!(e.to_string().contains("locales/de.toml"));
    }

    #[test]
    fn embedded_catalogues_parse() {
        let c = Catalogue::embedded().expect("locales/*.toml are valid");
        let signs_in = Lang::ALL.map(|l| c.tr(l, "Sign in"));
        assert_eq!(
            signs_in,
            [
                "Sign in",
                "Anmelden",
                "Se connecter",
                "Iniciar sesión",
                "Accedi",
                "Aanmelden",
                "Iniciar sessão"
            ]
        );
        assert_eq!(
            c.text(Lang::Nl, "Call me at {phone}", &[("phone", "+X XXXX30")]),
            "Bel mij op +X XXXX30"
        );
    }
}
