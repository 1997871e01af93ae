//! Reads the MFA Server / Azure hardware-token CSV (`upn,serial number,secret key,time interval,manufacturer,model`).
//!
//! Columns are found by header name (case-insensitive, any order); `digits` and `algorithm`
//! are optional. A UTF-8 BOM and CRLF line ends are tolerated, fields may be quoted
//! (RFC 4180 §2). Every row is checked; problems are collected, not returned early.

use super::{Mode, ParsedToken, RowProblem, check_serial};
use crate::mfa::oath::{self, Algorithm, OathParams};

/// Reads the whole file: tokens that parsed, and one problem per bad row.
pub fn parse(text: &str) -> (Vec<ParsedToken>, Vec<RowProblem>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return (Vec::new(), vec![RowProblem::file("the file is empty")]);
    };
    let columns = match Columns::find(header) {
        Ok(c) => c,
        Err(reason) => return (Vec::new(), vec![RowProblem::at(1, "", &reason)]),
    };
    let mut tokens = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in lines {
        let row = index + 1;
        match columns.token(line, row) {
            Ok(t) => tokens.push(t),
            Err((serial, reason)) => problems.push(RowProblem::at(row, &serial, &reason)),
        }
    }
    (tokens, problems)
}

/// Where each column is.
struct Columns {
    upn: usize,
    serial: usize,
    secret: usize,
    interval: usize,
    manufacturer: Option<usize>,
    model: Option<usize>,
    digits: Option<usize>,
    algorithm: Option<usize>,
}

impl Columns {
    fn find(header: &str) -> Result<Columns, String> {
        let names: Vec<String> = split(header)
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let at = |name: &str| names.iter().position(|n| n == name);
        let need =
            |name: &str| at(name).ok_or_else(|| format!("the header has no `{name}` column"));
        Ok(Columns {
            upn: need("upn")?,
            serial: need("serial number")?,
            secret: need("secret key")?,
            interval: need("time interval")?,
            manufacturer: at("manufacturer"),
            model: at("model"),
            digits: at("digits"),
            algorithm: at("algorithm"),
        })
    }

    /// One data row as a token, or (serial, reason).
    fn token(&self, line: &str, row: usize) -> Result<ParsedToken, (String, String)> {
        let fields = split(line);
        let get = |i: usize| fields.get(i).map(|f| f.trim()).unwrap_or("");
        let opt = |i: Option<usize>| i.map(get).unwrap_or("");
        let serial = get(self.serial).to_owned();
        let fail = |reason: String| (serial.clone(), reason);
        check_serial(&serial).map_err(fail)?;
        let secret = oath::from_base32(get(self.secret)).map_err(|e| fail(e.to_string()))?;
        let period = get(self.interval).parse::<u32>().map_err(|_| {
            fail(format!(
                "time interval `{}` is not a number",
                get(self.interval)
            ))
        })?;
        let digits = match opt(self.digits) {
            "" => 6,
            d => d
                .parse::<u8>()
                .map_err(|_| fail(format!("digits `{d}` is not a number")))?,
        };
        let algorithm = match opt(self.algorithm) {
            "" => Algorithm::Sha1,
            a => a
                .parse()
                .map_err(|e: oath::OathError| fail(e.to_string()))?,
        };
        let params = OathParams {
            algorithm,
            digits,
            period,
        };
        params.validate().map_err(|e| fail(e.to_string()))?;
        let upn = get(self.upn);
        Ok(ParsedToken {
            row,
            serial: serial.clone(),
            manufacturer: opt(self.manufacturer).to_owned(),
            model: opt(self.model).to_owned(),
            secret,
            params,
            // Azure's CSV (and the MFA Server's) carries TOTP tokens only.
            mode: Mode::Totp,
            user: (!upn.is_empty()).then(|| upn.to_owned()),
        })
    }
}

/// Splits one CSV line: commas separate fields, a field in double quotes may hold commas and
/// `""` for a quote (RFC 4180 §2 rules 5–7). Quoted line breaks are not supported: no token
/// field needs one.
fn split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn reasons(text: &str) -> Vec<(usize, String, String)> {
        let (_, p) = parse(text);
        p.into_iter().map(|p| (p.row, p.serial, p.reason)).collect()
    }

    #[test]
    fn reads_the_azure_format_with_bom_crlf_and_any_case() {
        let text = format!(
            "\u{feff}UPN,Serial Number,Secret Key,Time Interval,Manufacturer,Model,Digits,Algorithm\r\n\
             alice@example.org,1001,{SECRET},30,Contoso,OTP c200,8,sha256\r\n\
             ,\"1002\",{},60,\"Vendor, Inc.\",K1,,\r\n",
            SECRET.to_lowercase()
        );
        let (tokens, problems) = parse(&text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].row, 2);
        assert_eq!(tokens[0].user.as_deref(), Some("alice@example.org"));
        assert_eq!(tokens[0].params.digits, 8);
        assert_eq!(tokens[0].params.algorithm, Algorithm::Sha256);
        assert_eq!(tokens[0].secret, b"12345678901234567890");
        assert_eq!(tokens[1].manufacturer, "Vendor, Inc.");
        assert_eq!(tokens[1].params.period, 60);
        assert_eq!(tokens[1].user, None);
    }

    #[test]
    fn each_bad_row_is_named() {
        let text = format!(
            "{HEADER}\n\
             a,1,{SECRET}!,30,V,M\n\
             a,2,{},30,V,M\n\
             a,3,{SECRET},45,V,M\n\
             a,4,{SECRET},thirty,V,M\n\
             a,,{SECRET},30,V,M\n",
            &SECRET[..16]
        );
        let r = reasons(&text);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!((r[0].0, r[0].1.as_str()), (2, "1"));
        assert!(r[0].2.contains("Base32"), "{}", r[0].2);
        assert!(r[1].2.contains("128"), "{}", r[1].2);
        assert!(r[2].2.contains("30 or 60"), "{}", r[2].2);
        assert!(r[3].2.contains("not a number"));
        assert!(r[4].2.contains("serial"));
    }

    #[test]
    fn wrong_digits_and_algorithm_are_refused() {
        let text = format!(
            "{HEADER},digits,algorithm\n\
             a,1,{SECRET},30,V,M,9,SHA1\n\
             a,2,{SECRET},30,V,M,6,MD5\n"
        );
        let r = reasons(&text);
        assert!(r[0].2.contains("6, 7 or 8"));
        assert!(r[1].2.contains("MD5"));
    }

    #[test]
    fn missing_header_columns_and_empty_files_are_refused() {
        let r = reasons("upn,serial,secret\na,1,x\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 1);
        assert!(r[0].2.contains("serial number"));
        assert_eq!(reasons("").len(), 1);
        assert_eq!(reasons("\r\n\r\n").len(), 1);
    }

    #[test]
    fn hostile_fields_do_not_panic() {
        let text = format!(
            "{HEADER}\n\"\"\"\n,,,,,,,,,,,,\n\"a\n{}\n",
            "é,".repeat(1000)
        );
        let r = reasons(&text);
        assert_eq!(r.len(), 4);
    }
}
