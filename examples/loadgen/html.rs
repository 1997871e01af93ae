//! Just enough HTML reading for a load generator: the forms of a page (inputs, named submit
//! buttons), entity decoding, and a one-line summary of a page for error messages.
//!
//! Not a general HTML parser: it reads the markup Tessera's templates and SimpleSAMLphp's
//! themes produce (well-formed tags, quoted or unquoted attributes).

/// One `<form>` with the fields a browser would submit.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub action: String,
    pub method: String,
    /// Named inputs in document order (checkboxes only when checked), values decoded.
    pub fields: Vec<(String, String)>,
    /// Named submit buttons (`<button>` or `<input type=submit>`) as (name, value).
    pub buttons: Vec<(String, String)>,
}

impl Form {
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The fields with `overrides` set (added when missing) and the named button whose value
    /// is `button` (or the first named button) appended, as the browser submits them.
    pub fn submission(
        &self,
        overrides: &[(&str, &str)],
        button: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = self.fields.clone();
        for (name, value) in overrides {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = (*value).to_owned(),
                None => out.push(((*name).to_owned(), (*value).to_owned())),
            }
        }
        let pressed = match button {
            Some(v) => self.buttons.iter().find(|(_, bv)| bv == v),
            None => self.buttons.first(),
        };
        if let Some(b) = pressed {
            out.push(b.clone());
        }
        out
    }
}

/// Every form of the page.
pub fn forms(page: &str) -> Vec<Form> {
    let lower = page.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = find_tag(&lower, "form", at) {
        let (attrs, open_end) = tag_attributes(page, start + "<form".len());
        let close = lower[open_end..]
            .find("</form")
            .map_or(page.len(), |i| open_end + i);
        out.push(read_form(
            &attrs,
            &page[open_end..close],
            &lower[open_end..close],
        ));
        at = close;
    }
    out
}

fn read_form(attrs: &[(String, String)], body: &str, lower: &str) -> Form {
    let mut form = Form {
        action: get(attrs, "action").unwrap_or_default().to_owned(),
        method: get(attrs, "method").unwrap_or("get").to_ascii_lowercase(),
        ..Form::default()
    };
    let mut at = 0;
    while let Some((tag, start)) = next_control(lower, at) {
        let (a, end) = tag_attributes(body, start + tag.len() + 1);
        at = end;
        let Some(name) = get(&a, "name").map(str::to_owned) else {
            continue;
        };
        let value = get(&a, "value").unwrap_or_default().to_owned();
        let kind = get(&a, "type").unwrap_or(if tag == "button" { "submit" } else { "text" });
        match kind.to_ascii_lowercase().as_str() {
            "submit" | "image" => form.buttons.push((name, value)),
            "button" | "reset" | "file" => {}
            "checkbox" | "radio" if get(&a, "checked").is_none() => {}
            _ => form.fields.push((name, value)),
        }
    }
    form
}

/// The next `<input` or `<button` at or after `from`: (tag name, offset of `<`).
fn next_control(lower: &str, from: usize) -> Option<(&'static str, usize)> {
    let input = find_tag(lower, "input", from).map(|i| ("input", i));
    let button = find_tag(lower, "button", from).map(|i| ("button", i));
    match (input, button) {
        (Some(a), Some(b)) => Some(if a.1 < b.1 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Offset of the next `<name` followed by whitespace, `>` or `/`.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let pat = format!("<{name}");
    let mut at = from;
    while let Some(i) = lower.get(at..)?.find(&pat) {
        let start = at + i;
        let next = lower.as_bytes().get(start + pat.len()).copied();
        if matches!(next, Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/')) {
            return Some(start);
        }
        at = start + pat.len();
    }
    None
}

fn get<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Attributes of the tag whose name ends at `from` (names lower-cased, values decoded), and
/// the offset just past its `>`.
fn tag_attributes(s: &str, from: usize) -> (Vec<(String, String)>, usize) {
    let b = s.as_bytes();
    let mut i = from;
    let mut out = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            return (out, (i + 1).min(b.len()));
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            out.push((name, String::new()));
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let (raw, next) = attribute_value(s, i);
        out.push((name, decode(raw)));
        i = next;
    }
}

/// A quoted or unquoted attribute value starting at `i`, and the offset after it.
fn attribute_value(s: &str, i: usize) -> (&str, usize) {
    let b = s.as_bytes();
    match b.get(i) {
        Some(&q @ (b'"' | b'\'')) => {
            let end = s[i + 1..].find(q as char).map_or(s.len(), |e| i + 1 + e);
            (&s[i + 1..end], (end + 1).min(s.len()))
        }
        _ => {
            let end = s[i..]
                .find(|c: char| c.is_ascii_whitespace() || c == '>')
                .map_or(s.len(), |e| i + e);
            (&s[i..end], end)
        }
    }
}

/// Decodes the character references HTML templates emit (named basics and numeric).
pub fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&e| e <= 10).and_then(|end| {
            let c = match &rest[1..end] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A short description of a page for error reports: its error message if it shows one,
/// else its title, else the start of its text.
pub fn summary(page: &str) -> String {
    let lower = page.to_ascii_lowercase();
    let candidates = ["id=\"error\"", "class=\"error\"", "<title", "<h1", "<body"];
    let start = candidates
        .iter()
        .find_map(|c| lower.find(c))
        .and_then(|i| page[i..].find('>').map(|j| i + j + 1))
        .unwrap_or(0);
    let text = strip_tags(&page[start..]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut line = words.join(" ");
    if line.len() > 160 {
        let mut cut = 160;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars().take(4000) {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tessera_code_form() {
        let page = r#"<form method="post" action="/adfs/ls/login" autocomplete="off">
  <input type="hidden" name="flow" value="ab&amp;c&#x2f;">
  <input type="text" id="code" name="code" required>
  <button type="submit" name="action" value="code" id="verify">Verify</button>
</form><form method="post" action="/x"><button type="submit" name="action" value="different">D</button></form>"#;
        let f = forms(page);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].value("flow"), Some("ab&c/"));
        let sub = f[0].submission(&[("code", "123456")], Some("code"));
        assert!(sub.contains(&("code".into(), "123456".into())));
        assert!(sub.contains(&("action".into(), "code".into())));
    }
}
