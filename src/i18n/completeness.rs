//! Every text users read in a sign-in, on a page or on their phone, has a translation in every language, and the catalogues hold nothing else.
//!
//! Which texts count (the rule, kept deliberately mechanical):
//! - templates: every string literal given to the `t` filter (`{{ "Sign in"|t }}`) in
//!   `templates/*.html`, except `admin_*` and `docs.html` (the console and its guide are
//!   English);
//! - Rust, in the files that make sign-in pages and their messages (`RUST_SOURCES`): every
//!   string literal that reads as a sentence — it starts with an upper-case letter and ends
//!   with `.` — and every literal marked `msgid("…")` (titles and labels, which are not
//!   sentences). Not counted: comments; attributes (`#[error("…")]` is for logs); log and
//!   developer macros (`tracing::warn!(…)`, `panic!`, `assert!`, …) and `.expect("…")`;
//!   `#[cfg(test)]` items; and the functions in `ENGLISH_ONLY`, whose texts are for the
//!   (English) console.
//! - Texts for a phone count the same way: `src/mfa/delivery.rs` makes the text messages and
//!   pushes, `src/web/mfa.rs` the call's script and the answers to the phone's buttons.
//!
//! So a new message in those files fails `every_user_text_is_translated` until every
//! catalogue has it, and a catalogue entry nothing uses any more fails `no_stale_entries`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Catalogue, Lang};

/// Files and folders (recursively) whose Rust code makes sign-in pages and their messages.
const RUST_SOURCES: &[&str] = &[
    "src/login",
    "src/mfa/pin.rs",
    "src/mfa/questions.rs",
    "src/directory",
    "src/web/login.rs",
    "src/web/mfa.rs",
    "src/web/saml.rs",
    "src/web/logout.rs",
    "src/web/views.rs",
    "src/web/enroll_link.rs",
    "src/web/mod.rs",
    "src/web/errors.rs",
    "src/web/pages.rs",
    "src/saml/request.rs",
    "src/web/logout.rs",
    "src/web/wsfed.rs",
    "src/wsfed",
    "src/portal",
    "src/web/portal",
    "src/mfa/delivery.rs",
];

/// (file, function) whose texts are for the console, which is English: the admin's test
/// push, text and call, and what the console says about them.
const ENGLISH_ONLY: &[(&str, &str)] = &[
    ("src/web/mfa.rs", "test_call_voice"),
    ("src/mfa/delivery.rs", "test"),
    ("src/mfa/delivery.rs", "send_test"),
];

/// The languages with a catalogue (English is the message ids themselves).
fn translated() -> impl Iterator<Item = Lang> {
    Lang::ALL.into_iter().filter(|l| *l != Lang::En)
}

/// Macros whose strings are for logs or developers, never for a page.
const QUIET_MACROS: &[&str] = &[
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "event",
    "panic",
    "unreachable",
    "todo",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files() -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .map(|e| e.expect("dir entry").path())
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.to_owned());
        }
    }
    let mut out = Vec::new();
    for s in RUST_SOURCES {
        let p = root().join(s);
        assert!(
            p.exists(),
            "{s} is listed in RUST_SOURCES but does not exist"
        );
        walk(&p, &mut out);
    }
    out
}

fn page_templates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("templates"))
        .expect("templates/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".html") && !name.starts_with("admin_") && name != "docs.html"
        })
        .collect();
    out.sort();
    out
}

// ---- a small Rust lexer: enough to find string literals outside comments ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// A string literal's value; `bytes` for b"…" (never a message).
    Str {
        value: String,
        bytes: bool,
    },
}

fn lex(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i);
        } else if c == '"' {
            let (value, end) = cooked_string(&chars, i + 1);
            toks.push(Tok::Str {
                value,
                bytes: false,
            });
            i = end;
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br");
            let bytes = word.starts_with('b');
            if raw && matches!(chars.get(i), Some('"' | '#')) {
                let (value, end) = raw_string(&chars, i);
                toks.push(Tok::Str { value, bytes });
                i = end;
            } else if word == "b" && chars.get(i) == Some(&'"') {
                let (value, end) = cooked_string(&chars, i + 1);
                toks.push(Tok::Str { value, bytes: true });
                i = end;
            } else if word == "b" && chars.get(i) == Some(&'\'') {
                i = skip_char_or_lifetime(&chars, i);
            } else {
                toks.push(Tok::Ident(word));
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else {
            if !c.is_whitespace() {
                toks.push(Tok::Punct(c));
            }
            i += 1;
        }
    }
    toks
}

fn skip_block_comment(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// `'x'`, `'\n'`, `'\u{..}'` are skipped whole; `'a` (a lifetime) only its quote.
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    i + 1
}

/// A "…" literal's value from just after its opening quote; returns the index after it.
fn cooked_string(chars: &[char], mut i: usize) -> (String, usize) {
    let mut out = String::new();
    while i < chars.len() {
        match chars[i] {
            '"' => return (out, i + 1),
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('\n') => {
                        // A line continuation drops the newline and the next line's indent.
                        while chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                            i += 1;
                        }
                    }
                    Some('u') => {
                        let close = (i..chars.len()).find(|&j| chars[j] == '}').unwrap_or(i);
                        let hex: String = chars[i + 2..close].iter().collect();
                        out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                        i = close;
                    }
                    Some('x') => {
                        let hex: String = chars[i + 1..i + 3].iter().collect();
                        out.extend(u8::from_str_radix(&hex, 16).ok().map(char::from));
                        i += 2;
                    }
                    Some(c) => out.push(*c),
                    None => {}
                }
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, i)
}

/// `r#"…"#` from its first `#` or quote.
fn raw_string(chars: &[char], mut i: usize) -> (String, usize) {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    let start = i;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return (chars[start..i].iter().collect(), i + 1 + hashes);
        }
        i += 1;
    }
    (chars[start..].iter().collect(), i)
}

/// The index after the group that opens at `i` (`(`, `[` or `{`), nested groups included.
fn skip_group(toks: &[Tok], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j < toks.len() {
        match toks[j] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn is_sentence(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_uppercase) && s.ends_with('.')
}

/// The user-facing texts of one Rust file, by the rule in this module's header.
fn rust_texts(src: &str, english_fns: &[&str]) -> Vec<String> {
    let toks = lex(src);
    let mut out = Vec::new();
    // Set by `#[cfg(test)]` or a phone function: the next `{…}` block is not scanned
    // (a `;` first means the item had no block).
    let mut skip_next_block = false;
    let mut i = 0;
    while i < toks.len() {
        let at = |k: usize| toks.get(i + k);
        match &toks[i] {
            Tok::Punct('#') if at(1) == Some(&Tok::Punct('[')) => {
                let end = skip_group(&toks, i + 1);
                let attr = &toks[i + 2..end.saturating_sub(1)];
                if attr.first() == Some(&Tok::Ident("cfg".into()))
                    && attr.contains(&Tok::Ident("test".into()))
                {
                    skip_next_block = true;
                }
                i = end;
            }
            Tok::Ident(name)
                if QUIET_MACROS.contains(&name.as_str()) && at(1) == Some(&Tok::Punct('!')) =>
            {
                i = skip_group(&toks, i + 2);
            }
            Tok::Ident(name) if name == "expect" && at(1) == Some(&Tok::Punct('(')) => {
                i = skip_group(&toks, i + 1);
            }
            Tok::Ident(name) if name == "fn" => {
                if let Some(Tok::Ident(f)) = at(1)
                    && english_fns.contains(&f.as_str())
                {
                    skip_next_block = true;
                }
                i += 1;
            }
            Tok::Ident(name) if name == "msgid" && at(1) == Some(&Tok::Punct('(')) => {
                if let Some(Tok::Str { value, .. }) = at(2) {
                    out.push(value.clone());
                }
                i += 3;
            }
            Tok::Punct(';') => {
                skip_next_block = false;
                i += 1;
            }
            Tok::Punct('{') if skip_next_block => {
                skip_next_block = false;
                i = skip_group(&toks, i);
            }
            Tok::Str {
                value,
                bytes: false,
            } if is_sentence(value) => {
                out.push(value.clone());
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The literals given to the `t` filter in one template.
fn template_texts(src: &str) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_tag = false;
    while i < chars.len() {
        let pair = (chars[i], chars.get(i + 1).copied());
        match pair {
            ('{', Some('{' | '%')) if !in_tag => {
                in_tag = true;
                i += 2;
            }
            ('}' | '%', Some('}')) if in_tag => {
                in_tag = false;
                i += 2;
            }
            ('"' | '\'', _) if in_tag => {
                let (value, end) = template_string(&chars, i);
                if filtered_by_t(&chars[end..]) {
                    out.push(value);
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// A minijinja string literal at `i` (either quote, backslash escapes).
fn template_string(chars: &[char], i: usize) -> (String, usize) {
    let quote = chars[i];
    let mut out = String::new();
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' {
            j += 1;
            match chars.get(j) {
                Some('n') => out.push('\n'),
                Some(c) => out.push(*c),
                None => {}
            }
        } else {
            out.push(chars[j]);
        }
        j += 1;
    }
    (out, j + 1)
}

/// Does `rest` (what follows a literal) start with `|t`, as a whole filter name?
fn filtered_by_t(rest: &[char]) -> bool {
    let mut k = 0;
    let skip_ws = |k: &mut usize| {
        while rest.get(*k).is_some_and(|c| c.is_whitespace()) {
            *k += 1;
        }
    };
    skip_ws(&mut k);
    if rest.get(k) != Some(&'|') {
        return false;
    }
    k += 1;
    skip_ws(&mut k);
    rest.get(k) == Some(&'t')
        && !rest
            .get(k + 1)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Every user-facing text, with where it was found (for the failure message).
fn user_texts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in rust_files() {
        let rel = path
            .strip_prefix(root())
            .expect("under the crate")
            .to_string_lossy()
            .into_owned();
        let english: Vec<&str> = ENGLISH_ONLY
            .iter()
            .filter(|(f, _)| *f == rel)
            .map(|(_, name)| *name)
            .collect();
        for t in rust_texts(&read(&path), &english) {
            out.push((t, rel.clone()));
        }
    }
    for path in page_templates() {
        let rel = format!(
            "templates/{}",
            path.file_name().expect("name").to_string_lossy()
        );
        for t in template_texts(&read(&path)) {
            out.push((t, rel.clone()));
        }
    }
    out
}

fn catalogue() -> Catalogue {
    Catalogue::embedded().expect("locales/*.toml are valid")
}

#[test]
fn every_language_has_the_same_entries_as_german() {
    let c = catalogue();
    let de = c.ids(Lang::De);
    assert!(de.len() > 100, "locales/de.toml is read");
    for lang in translated() {
        let other = c.ids(lang);
        let only_de: Vec<_> = de.difference(&other).collect();
        let only_other: Vec<_> = other.difference(&de).collect();
        assert!(
            only_de.is_empty() && only_other.is_empty(),
            "missing from {lang}.toml: {only_de:#?}\nonly in {lang}.toml: {only_other:#?}"
        );
    }
}

#[test]
fn every_user_text_is_translated() {
    let c = catalogue();
    let mut missing = BTreeSet::new();
    for lang in translated() {
        let ids = c.ids(lang);
        for (text, at) in user_texts() {
            if !ids.contains(text.as_str()) {
                missing.insert(format!("{lang}: {text:?} ({at})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add these to locales/<lang>.toml:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_stale_entries() {
    let used: BTreeSet<String> = user_texts().into_iter().map(|(t, _)| t).collect();
    let c = catalogue();
    let stale: Vec<_> = translated()
        .flat_map(|lang| {
            c.ids(lang)
                .into_iter()
                .filter(|id| !used.contains(*id))
                .map(move |id| format!("{lang}: {id:?}"))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "no page uses these any more; remove them from locales/*.toml: {stale:#?}"
    );
}

#[test]
fn phone_functions_still_exist() {
    for (file, name) in ENGLISH_ONLY {
        let src = read(&root().join(file));
        assert!(
            src.contains(&format!("fn {name}(")),
            "ENGLISH_ONLY names {file}::{name}, which is gone"
        );
    }
}

#[test]
fn the_rule_on_examples() {
    let src = r##"
        //! Module doc. Not counted.
        const A: &str = "That code is not correct. Try again.";
        fn f() {
            tracing::warn!(user = %u, "Refused. Not counted.");
            let t = msgid("Sign in");
            let lifetime: &'static str = "lower case.";
            let c = '"';
            let raw = r#"Raw "quoted" sentence."#;
            let b = b"Bytes are not text.";
            let cont = "Long \
                        sentence.";
            x.expect("Developer text.");
            /* Block comment. */
        }
        #[error("Log text.")]
        Variant,
        fn send_push() { let s = "Phone text."; }
        #[cfg(test)]
        mod tests { const T: &str = "Test text."; }
        const Z: &str = "After the tests.";
    "##;
    assert_eq!(
        rust_texts(src, &["send_push"]),
        [
            "That code is not correct. Try again.",
            "Sign in",
            "Raw \"quoted\" sentence.",
            "Long sentence.",
            "After the tests."
        ]
    );
    let tpl = r#"<p>{{ "Sign in"|t }} {{ 'It\'s {n}.' | t(n=1) }} {{ "x"|title }} {{ message|t }} "not in a tag"|t {% if a == "b" %}{{ "to {app}"|t(app=app) }}{% endif %}</p>"#;
    assert_eq!(template_texts(tpl), ["Sign in", "It's {n}.", "to {app}"]);
}
