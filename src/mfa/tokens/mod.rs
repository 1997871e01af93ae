//! Hardware OATH tokens: reading vendor files (CSV, PSKC) whole, and checking them before anything is stored.
//!
//! An import is all or nothing: the file is parsed, every row is checked (format, secret
//! size, parameters, duplicate serials in the file and in the inventory, unknown users), and
//! only a file without a single problem reaches the inventory (`inventory.rs`). The report
//! names each bad row so an admin can fix the vendor's file and import it again.

pub mod csv;
pub mod inventory;
pub mod pskc;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::oath::OathParams;
use crate::directory::Directory;
use crate::store::Store;

/// Largest import file: a vendor's CSV line is under 100 bytes and a PSKC KeyPackage under
/// 2 KB, so 1 MiB holds far more tokens than one delivery and keeps a hostile upload small.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most tokens in one file.
pub const MAX_ROWS: usize = 10_000;
/// Longest serial number accepted (vendors print 8–16 characters).
const MAX_SERIAL_CHARS: usize = 64;

/// How a token moves: by time (RFC 6238) or by button presses (RFC 4226).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mode {
    Totp,
    /// `counter` is the next counter value a code may have; every code below it was used or
    /// skipped (RFC 4226 §7.2).
    Hotp {
        counter: u64,
    },
}

/// One token read from a file, not yet stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedToken {
    /// Line number in a CSV file (the header is line 1), KeyPackage number in PSKC.
    pub row: usize,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub secret: Vec<u8>,
    pub params: OathParams,
    pub mode: Mode,
    /// The CSV's upn as written; the directory's canonical name after `check`.
    pub user: Option<String>,
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: these reach logs and test output.
        f.debug_struct("ParsedToken")
            .field("row", &self.row)
            .field("serial", &self.serial)
            .field("params", &self.params)
            .field("mode", &self.mode)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why one row (or, with `row` 0, the whole file) cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub row: usize,
    pub serial: String,
    pub reason: String,
}

impl RowProblem {
    pub fn at(row: usize, serial: &str, reason: &str) -> RowProblem {
        RowProblem {
            row,
            // A hostile file's "serial" may be anything: keep the report line short.
            serial: serial.chars().take(MAX_SERIAL_CHARS).collect(),
            // Reasons quote the file's text now and then; a hostile field stays short.
            reason: reason.chars().take(300).collect(),
        }
    }

    pub fn file(reason: &str) -> RowProblem {
        RowProblem::at(0, "", reason)
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row {
            0 => write!(f, "file: {}", self.reason),
            row if self.serial.is_empty() => write!(f, "row {row}: {}", self.reason),
            row => write!(f, "row {row} (serial {}): {}", self.serial, self.reason),
        }
    }
}

/// Serial numbers become store keys and page text: letters, digits, `-`, `_`, `.` only.
pub(crate) fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() {
        return Err("the serial number is missing".into());
    }
    if serial.chars().count() > MAX_SERIAL_CHARS {
        return Err(format!(
            "the serial number is longer than {MAX_SERIAL_CHARS} characters"
        ));
    }
    if !serial
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("the serial number may hold only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Reads a file as PSKC (it starts with `<`) or CSV, bounded in size and rows, and finds
/// serials repeated within it. `psk` is the PSKC pre-shared key, if any.
pub fn parse_file(bytes: &[u8], psk: Option<&[u8]>) -> (Vec<ParsedToken>, Vec<RowProblem>) {
    if bytes.len() > MAX_FILE_BYTES {
        let reason = format!("the file is larger than {} KiB", MAX_FILE_BYTES / 1024);
        return (Vec::new(), vec![RowProblem::file(&reason)]);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (
            Vec::new(),
            vec![RowProblem::file("the file is not UTF-8 text")],
        );
    };
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let (tokens, mut problems) = if body.starts_with('<') {
        pskc::parse(body, psk)
    } else {
        csv::parse(text)
    };
    if tokens.len() + problems.len() > MAX_ROWS {
        let reason = format!("the file holds more than {MAX_ROWS} tokens");
        return (Vec::new(), vec![RowProblem::file(&reason)]);
    }
    let mut first: HashMap<String, usize> = HashMap::new();
    for t in &tokens {
        // Serials are compared without case: vendors' labels and admins' typing differ.
        match first.get(&t.serial.to_ascii_lowercase()) {
            Some(row) => problems.push(RowProblem::at(
                t.row,
                &t.serial,
                &format!("serial number repeated (first on row {row})"),
            )),
            None => {
                first.insert(t.serial.to_ascii_lowercase(), t.row);
            }
        }
    }
    problems.sort_by_key(|p| p.row);
    (tokens, problems)
}

/// Checks parsed tokens against the world: each serial not yet in the inventory, each upn a
/// user the directory knows (then replaced by its canonical name).
pub async fn check(
    tokens: &mut [ParsedToken],
    directory: &dyn Directory,
    store: &dyn Store,
) -> Result<Vec<RowProblem>, inventory::TokenError> {
    let mut problems = Vec::new();
    for t in tokens.iter_mut() {
        if inventory::get(store, &t.serial).await?.is_some() {
            problems.push(RowProblem::at(
                t.row,
                &t.serial,
                "serial number already in the inventory",
            ));
        }
        let Some(upn) = t.user.clone() else { continue };
        match directory.canonical_name(&upn).await {
            Ok(Some(name)) => t.user = Some(name),
            Ok(None) => problems.push(RowProblem::at(
                t.row,
                &t.serial,
                &format!(
                    "unknown user `{}`",
                    upn.chars().take(100).collect::<String>()
                ),
            )),
            Err(e) => return Err(inventory::TokenError::Directory(e.to_string())),
        }
    }
    Ok(problems)
}

/// What an import did: the serials stored, or why nothing was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub imported: Vec<String>,
    pub problems: Vec<RowProblem>,
}

/// Parses, checks and, only when no row has a problem, stores every token of the file.
pub async fn import(
    deps: &inventory::Deps<'_>,
    directory: &dyn Directory,
    bytes: &[u8],
    psk: Option<&[u8]>,
) -> Result<ImportReport, inventory::TokenError> {
    let (mut tokens, mut problems) = parse_file(bytes, psk);
    if problems.is_empty() {
        problems = check(&mut tokens, directory, deps.store).await?;
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.row);
        return Ok(ImportReport {
            imported: Vec::new(),
            problems,
        });
    }
    Ok(inventory::store_all(deps, &tokens).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn repeated_serials_name_the_second_row() {
        let text =
            format!("{HEADER}\n,A1,{SECRET},30,V,M\n,b2,{SECRET},30,V,M\n,a1,{SECRET},30,V,M\n");
        let (tokens, problems) = parse_file(text.as_bytes(), None);
        assert_eq!(tokens.len(), 3);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].row, problems[0].serial.as_str()), (4, "a1"));
        assert!(problems[0].reason.contains("row 2"));
    }

    #[test]
    fn oversized_binary_and_too_many_rows_are_refused() {
        let big = vec![b'a'; MAX_FILE_BYTES + 1];
        assert!(parse_file(&big, None).1[0].reason.contains("larger"));
        assert!(
            parse_file(&[0xff, 0xfe, 0], None).1[0]
                .reason
                .contains("UTF-8")
        );
        let mut text = format!("{HEADER}\n");
        for i in 0..=MAX_ROWS {
            text.push_str(&format!(",{i},{SECRET},30,V,M\n"));
        }
        let (tokens, problems) = parse_file(text.as_bytes(), None);
        assert!(tokens.is_empty());
        assert!(problems[0].reason.contains("more than"), "{problems:?}");
    }

    #[test]
    fn serials_are_bounded_and_plain() {
        assert!(check_serial("SN-0001_a.b").is_ok());
        assert!(check_serial("").is_err());
        assert!(check_serial("a b").is_err());
        assert!(check_serial("a:b").is_err());
        assert!(check_serial("<script>").is_err());
        assert!(check_serial(&"1".repeat(65)).is_err());
        let p = RowProblem::at(3, &"x".repeat(500), "r");
        assert_eq!(p.serial.len(), 64);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let text = format!("{HEADER}\n,A1,{SECRET},30,V,M\n");
        let (tokens, _) = parse_file(text.as_bytes(), None);
        let shown = format!("{:?}", tokens[0]);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("49, 50"), "{shown}");
    }
}

#[cfg(test)]
mod import_tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::directory::file::{FileDirectory, FileUser};
    use crate::mfa::secrets::SecretBox;
    use crate::store::embedded::EmbeddedStore;

    const HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[tokio::test]
    async fn unknown_users_and_inventory_duplicates_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        ));
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
        let users = FileDirectory::from_users(vec![FileUser {
            username: "alice".into(),
            password_hash: crate::directory::file::hash_password("pw").unwrap(),
            upn: Some("alice@example.org".into()),
            ..FileUser::default()
        }])
        .unwrap();
        let sb = SecretBox::from_key([1; 32]);
        let deps = inventory::Deps {
            store: &store,
            secrets: &sb,
            now: 0,
        };
        let good = format!("{HEADER}\nalice@example.org,A1,{SECRET},30,V,M\n");
        let r = import(&deps, &users, good.as_bytes(), None).await.unwrap();
        assert_eq!(r.imported, ["A1"], "{r:?}");
        let t = inventory::get(&store, "A1").await.unwrap().unwrap();
        assert_eq!(t.assigned.as_deref(), Some("alice"));
        let bad = format!(
            "{HEADER}\n,B1,{SECRET},30,V,M\nmallory@example.org,B2,{SECRET},30,V,M\n,a1,{SECRET},30,V,M\n"
        );
        let r = import(&deps, &users, bad.as_bytes(), None).await.unwrap();
        assert!(r.imported.is_empty());
        let rows: Vec<_> = r
            .problems
            .iter()
            .map(|p| (p.row, p.serial.as_str()))
            .collect();
        assert_eq!(rows, [(3, "B2"), (4, "a1")]);
        assert!(r.problems[0].reason.contains("unknown user"));
        assert!(r.problems[1].reason.contains("already in the inventory"));
        assert!(inventory::get(&store, "B1").await.unwrap().is_none());
    }
}
