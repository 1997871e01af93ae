//! Keeps the web layer easy to read: no function in `src/web/` is longer than `MAX_LINES`.
//!
//! A simple scan, not a Rust parser: a line that starts (after `pub`, `async`, … ) with `fn`
//! opens a function, and the function ends where the braces opened after it balance again.
//! Braces inside strings, chars and comments are skipped, so a `"{"` in a format string does
//! not throw the count off.

use std::path::{Path, PathBuf};

/// Longest function allowed, counted from its `fn` line to its closing brace.
const MAX_LINES: usize = 60;

/// Every `.rs` file under `dir`, depth first.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/web")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The name of the function a line declares, if it does.
fn declared_fn(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    // Twice: `pub async fn`, `pub(super) async fn`.
    for prefix in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    Some(name[..end].to_owned())
}

/// The code of each line with strings, chars and comments blanked out (braces in them do
/// not count). Raw strings with `#`s and nested block comments are handled well enough for
/// this source tree.
fn code_only(source: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum In {
        Code,
        Str,
        RawStr(usize),
        Block,
    }
    let mut state = In::Code;
    let mut lines = Vec::new();
    for line in source.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut kept = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match state {
                In::Code => {
                    if c == '/' && next == Some('/') {
                        break;
                    } else if c == '/' && next == Some('*') {
                        state = In::Block;
                        i += 1;
                    } else if c == '"' {
                        state = In::Str;
                    } else if c == 'r' && (next == Some('"') || next == Some('#')) {
                        let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                        if chars.get(i + 1 + hashes) == Some(&'"') {
                            state = In::RawStr(hashes);
                            i += 1 + hashes;
                        } else {
                            kept.push(c);
                        }
                    } else if c == '\'' {
                        // A char literal ('{', '\'', '\u{7b}') rather than a lifetime.
                        if next == Some('\\') {
                            let close = chars[i + 2..].iter().position(|&x| x == '\'');
                            i += close.map_or(1, |p| p + 2);
                        } else if chars.get(i + 2) == Some(&'\'') {
                            i += 2;
                        }
                    } else {
                        kept.push(c);
                    }
                }
                In::Str => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        state = In::Code;
                    }
                }
                In::RawStr(hashes) => {
                    if c == '"'
                        && chars[i + 1..].iter().take_while(|&&h| h == '#').count() >= hashes
                    {
                        state = In::Code;
                        i += hashes;
                    }
                }
                In::Block => {
                    if c == '*' && next == Some('/') {
                        state = In::Code;
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        lines.push(kept);
    }
    lines
}

/// Each function's name, first line (1-based) and length in lines.
fn functions(source: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(source);
    let mut found = Vec::new();
    for (start, line) in code.iter().enumerate() {
        let Some(name) = declared_fn(line) else {
            continue;
        };
        // The body opens at the first `{` after the signature; a `;` before it is a
        // declaration without a body (a trait's).
        let mut depth = 0usize;
        let mut opened = false;
        'scan: for (at, l) in code.iter().enumerate().skip(start) {
            let from = if at == start {
                line.find("fn ").unwrap_or(0)
            } else {
                0
            };
            for c in l[from..].chars() {
                match c {
                    ';' if !opened => break 'scan,
                    '{' => {
                        opened = true;
                        depth += 1;
                    }
                    '}' if opened => {
                        depth -= 1;
                        if depth == 0 {
                            found.push((name.clone(), start + 1, at - start + 1));
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    found
}

#[test]
fn web_functions_are_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut long = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read source");
        for (name, line, len) in functions(&source) {
            if len > MAX_LINES {
                let shown = file
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(file);
                long.push(format!("{}:{line} fn {name}: {len} lines", shown.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions in src/web longer than {MAX_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}
