//! The protocol layers stay free of the layers above them: `xml`, `xmldsig`, `saml` and `wsfed` name
//! no registry, configuration, web, login or admin code (issue 12).
//!
//! A source scan, not a compiler check: Rust lets any module name any other, so the rule is
//! kept by this test. Comments and string literals are skipped; `crate::x`, grouped
//! `crate::{x, ...}` and `super::super::x` paths that climb to the crate root are resolved.

use std::path::{Path, PathBuf};

/// The protocol code: these files and everything under these folders.
const PROTOCOL: [&str; 6] = [
    "src/xml.rs",
    "src/xml",
    "src/xmldsig.rs",
    "src/xmldsig",
    "src/saml",
    "src/wsfed",
];

/// Top-level modules the protocol code must not name: everything above it. Only `xml`,
/// `xmldsig`, `saml` themselves and the edges below them (`store` for the replay cache,
/// `clock`) may be named. The issue names the first five; the rest keep the code a crate of
/// its own in waiting (`keys` publishes through the `PublishedKey` trait, the directory's
/// user reaches a response as a `Recipient`).
const ABOVE: [&str; 19] = [
    "rp",
    "config",
    "web",
    "login",
    "admin",
    "portal",
    "keys",
    "directory",
    "mfa",
    "i18n",
    "audit",
    "cli",
    "startup",
    "metrics",
    "server",
    "tls",
    "sim",
    "shutdown",
    "sessions",
];

/// The modules the protocol code may name: itself and the edges below it.
const BELOW: [&str; 6] = ["xml", "xmldsig", "saml", "wsfed", "store", "clock"];

/// A new top-level module must be placed on one side, or the rule above would let the
/// protocol code name it unseen.
#[test]
fn every_top_level_module_is_placed() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read src/lib.rs");
    let mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .filter_map(|l| l.strip_suffix(';'))
        .collect();
    assert!(mods.contains(&"saml"), "the scan found the module list");
    let unplaced: Vec<&&str> = mods
        .iter()
        .filter(|m| !ABOVE.contains(m) && !BELOW.contains(m))
        .collect();
    assert!(
        unplaced.is_empty(),
        "place these modules in ABOVE or BELOW in tests/layering.rs: {unplaced:?}"
    );
}

#[test]
fn protocol_code_names_no_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PROTOCOL {
        collect(&root.join(p), &mut files);
    }
    assert!(
        files.iter().any(|f| f.ends_with("saml/request.rs")),
        "the scan found the protocol sources"
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        let rel = f.strip_prefix(root).unwrap_or(f).display().to_string();
        for (line, module) in upward_references(&text, module_depth(&rel)) {
            found.push(format!("{rel}:{line}: names crate::{module}"));
        }
    }
    assert!(
        found.is_empty(),
        "protocol code depends on a layer above it:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_every_form_of_reference() {
    let hits = |src: &str, depth: usize| -> Vec<(usize, String)> { upward_references(src, depth) };
    assert_eq!(hits("use crate::rp::Acs;", 2), vec![(1, "rp".to_owned())]);
    assert_eq!(
        hits(
            "use crate::{xml, rp::RelyingParty};\nuse crate :: {\n  config,\n};",
            2
        ),
        vec![(1, "rp".to_owned()), (3, "config".to_owned())]
    );
    assert_eq!(
        hits("fn f() { crate::{ saml::{a, b}, web::x }; }", 1),
        vec![(1, "web".to_owned())]
    );
    // From saml/request.rs (depth 2) `super::super` is the crate root; from its inline test
    // module it is only `saml`.
    assert_eq!(
        hits("use super::super::login::Flow;\nuse super::vocab::Acs;", 2),
        vec![(1, "login".to_owned())]
    );
    assert_eq!(
        hits(
            "mod tests {\n use super::super::admin;\n}\nuse super::super::{admin};",
            2
        ),
        vec![(4, "admin".to_owned())]
    );
    assert!(
        hits(
            "// crate::rp in a comment\n/* crate::web */ let s = \"crate::config\"; let r = r#\"crate::login\"#; let c = '\"'; let u = crate::xml::parse;",
            2
        )
        .is_empty()
    );
    assert!(hits("use crate::rpc; use crate::configure;", 1).is_empty());
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("read dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// How many `super`s reach the crate root from a file: `src/xml.rs` and `src/saml/mod.rs`
/// are one module deep, `src/saml/request.rs` two.
fn module_depth(rel: &str) -> usize {
    let parts: Vec<&str> = rel.trim_start_matches("src/").split('/').collect();
    match parts.last() {
        Some(&"mod.rs") => parts.len() - 1,
        _ => parts.len(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Open,
    Close,
    Comma,
    Other,
}

/// The code tokens of `src` with their line numbers; comments and literals are dropped.
fn tokens(src: &str) -> Vec<(usize, Tok)> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == 'r' && (at(i + 1) == '#' || at(i + 1) == '"') && !ident_char(prev(&c, i)) {
            // Raw string r#"..."#: ends at a quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                i += 1;
                continue;
            }
            j += 1;
            while j < c.len() && !(c[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#')) {
                line += usize::from(c[j] == '\n');
                j += 1;
            }
            i = j + 1 + hashes;
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ident_char(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            out.push((line, Tok::Ident(c[start..i].iter().collect())));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((line, Tok::Path));
            i += 2;
        } else {
            out.push((
                line,
                match ch {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    c if c.is_whitespace() => {
                        i += 1;
                        continue;
                    }
                    _ => Tok::Other,
                },
            ));
            i += 1;
        }
    }
    out
}

fn prev(c: &[char], i: usize) -> char {
    if i == 0 { '\0' } else { c[i - 1] }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// (line, module) for every path that reaches a top-level module in `ABOVE`. `depth` is the
/// file's module depth; inline `mod x { }` blocks add one while open.
fn upward_references(src: &str, depth: usize) -> Vec<(usize, String)> {
    let t = tokens(src);
    let ident = |k: usize| match t.get(k) {
        Some((_, Tok::Ident(s))) => Some(s.as_str()),
        _ => None,
    };
    let is = |k: usize, tok: Tok| t.get(k).is_some_and(|(_, x)| *x == tok);
    let mut found = Vec::new();
    // Brace depths at which an inline module was opened.
    let mut mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut k = 0;
    while k < t.len() {
        match &t[k].1 {
            Tok::Open => braces += 1,
            Tok::Close => {
                if mods.last() == Some(&braces) {
                    mods.pop();
                }
                braces = braces.saturating_sub(1);
            }
            Tok::Ident(s) if s == "mod" && ident(k + 1).is_some() && is(k + 2, Tok::Open) => {
                mods.push(braces + 1);
            }
            Tok::Ident(s)
                if (s == "crate" || s == "super") && !is(k.wrapping_sub(1), Tok::Path) =>
            {
                // Climb: `crate` is the root; each `super` one module up.
                let mut j = k;
                let reached_root = if s == "crate" {
                    j += 1;
                    true
                } else {
                    let mut supers = 0;
                    while ident(j) == Some("super") {
                        supers += 1;
                        j += 1;
                        if is(j, Tok::Path) && ident(j + 1) == Some("super") {
                            j += 1;
                        }
                    }
                    supers >= depth + mods.len()
                };
                if reached_root && is(j, Tok::Path) {
                    roots_named(&t, j + 1, &mut found);
                }
                k = j;
                continue;
            }
            _ => {}
        }
        k += 1;
    }
    found
}

/// At token `k`, just after `crate::`: the top-level module named there, or each one a
/// group `{a, b::c, ...}` lists.
fn roots_named(t: &[(usize, Tok)], k: usize, found: &mut Vec<(usize, String)>) {
    match t.get(k) {
        Some((line, Tok::Ident(name))) if ABOVE.contains(&name.as_str()) => {
            found.push((*line, name.clone()));
        }
        Some((_, Tok::Open)) => {
            let mut depth = 0;
            let mut at_item_start = true;
            for (line, tok) in &t[k + 1..] {
                match tok {
                    Tok::Open => depth += 1,
                    Tok::Close if depth == 0 => break,
                    Tok::Close => depth -= 1,
                    Tok::Comma if depth == 0 => {
                        at_item_start = true;
                        continue;
                    }
                    Tok::Ident(name)
                        if depth == 0 && at_item_start && ABOVE.contains(&name.as_str()) =>
                    {
                        found.push((*line, name.clone()));
                    }
                    _ => {}
                }
                at_item_start = false;
            }
        }
        _ => {}
    }
}
