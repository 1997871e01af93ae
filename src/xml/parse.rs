//! Hardened parser: turns untrusted text into an owned `Element` tree or refuses it.
//!
//! quick-xml only tokenises; everything that decides what the document *means* (entities,
//! namespaces, normalisation, limits) is done here so that it can be reasoned about in one
//! place. Nothing is ever fetched or expanded beyond the five predefined entities and
//! character references: any DOCTYPE is refused outright, which rules out internal entity
//! expansion ("billion laughs") and external entities (XXE) before they can be declared.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{Attribute, Element, Limits, Node, XML_NS, XMLNS_NS, XmlError};

/// Parse `input` and return its root element, enforcing `limits`.
pub fn parse(input: &str, limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge);
    }
    // A byte order mark is permitted before the XML declaration (XML 1.0 §4.3.3, Appendix F).
    let input = input.strip_prefix('\u{FEFF}').unwrap_or(input);
    Parser::new(limits).run(input)
}

/// An element whose end tag has not been seen yet.
struct Open {
    el: Element,
    /// Length of the namespace scope before this element's declarations were pushed.
    scope_len: usize,
}

struct Parser<'l> {
    limits: &'l Limits,
    /// In-scope namespace bindings in document order; the innermost binding wins.
    scope: Vec<(Option<String>, String)>,
    stack: Vec<Open>,
    root: Option<Element>,
    nodes: usize,
}

impl<'l> Parser<'l> {
    fn new(limits: &'l Limits) -> Self {
        Parser {
            limits,
            scope: Vec::new(),
            stack: Vec::new(),
            root: None,
            nodes: 0,
        }
    }

    fn run(mut self, input: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(input);
        // Keep quick-xml's own well-formedness checks on: matching end tags, `--` in comments.
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        let mut first = true;
        loop {
            let event = reader.read_event().map_err(|e| {
                XmlError::Malformed(format!("{e} at byte {}", reader.error_position()))
            })?;
            let was_first = std::mem::replace(&mut first, false);
            match event {
                Event::Decl(d) => {
                    // XML 1.0 §2.8: the declaration may only appear at the very start.
                    if !was_first {
                        return Err(XmlError::Malformed("misplaced XML declaration".into()));
                    }
                    let version = d
                        .version()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    if version != "1.0" {
                        return Err(XmlError::Malformed(format!("XML version {version}")));
                    }
                    // We are handed already-decoded text. A document declaring another
                    // encoding (XML 1.0 §4.3.3) would mean different characters to the
                    // sender; that is only harmless when every byte is ASCII.
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|e| XmlError::Malformed(e.to_string()))?;
                        if !enc.eq_ignore_ascii_case("utf-8") && !input.is_ascii() {
                            return Err(XmlError::Malformed(format!("encoding {enc}")));
                        }
                    }
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::PI(_) => return Err(XmlError::ProcessingInstruction),
                Event::Comment(_) => self.count_node()?,
                Event::Start(s) => {
                    let open = self.start(&s)?;
                    self.stack.push(open);
                }
                Event::Empty(s) => {
                    let open = self.start(&s)?;
                    self.finish(open)?;
                }
                Event::End(_) => {
                    // quick-xml has already checked that the name matches the open tag.
                    let open = self
                        .stack
                        .pop()
                        .ok_or_else(|| XmlError::Malformed("unmatched end tag".into()))?;
                    self.finish(open)?;
                }
                Event::Text(t) => self.text(&t.xml10_content(), true)?,
                Event::CData(c) => self.text(&c.xml10_content(), false)?,
                Event::GeneralRef(r) => {
                    let c = resolve_ref(&r)?;
                    self.text(c.encode_utf8(&mut [0u8; 4]), false)?;
                }
                Event::Eof => break,
            }
        }
        if !self.stack.is_empty() {
            return Err(XmlError::Malformed(
                "unclosed element at end of input".into(),
            ));
        }
        self.root
            .ok_or_else(|| XmlError::Malformed("no root element".into()))
    }

    fn count_node(&mut self) -> Result<(), XmlError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(XmlError::TooManyNodes);
        }
        Ok(())
    }

    /// Append character data to the open element, merging with a preceding text node.
    /// `plain_markup_text` marks text that may legally be whitespace outside the root.
    fn text(&mut self, t: &str, plain_markup_text: bool) -> Result<(), XmlError> {
        let Some(open) = self.stack.last_mut() else {
            // XML 1.0 §2.1 (Misc*): only whitespace may surround the root element.
            if plain_markup_text && t.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(XmlError::TextOutsideRoot);
        };
        if let Some(bad) = t.chars().find(|c| !is_xml_char(*c)) {
            return Err(XmlError::Malformed(format!("illegal character {bad:?}")));
        }
        if let Some(Node::Text(prev)) = open.el.children.last_mut() {
            prev.push_str(t);
            return Ok(());
        }
        open.el.children.push(Node::Text(t.to_owned()));
        self.count_node()
    }

    /// Attach a completed element to its parent, or make it the root.
    fn finish(&mut self, open: Open) -> Result<(), XmlError> {
        self.scope.truncate(open.scope_len);
        match self.stack.last_mut() {
            Some(parent) => parent.el.children.push(Node::Element(open.el)),
            None => {
                if self.root.is_some() {
                    return Err(XmlError::MultipleRoots);
                }
                self.root = Some(open.el);
            }
        }
        Ok(())
    }

    fn start(&mut self, s: &BytesStart) -> Result<Open, XmlError> {
        if self.stack.is_empty() && self.root.is_some() {
            return Err(XmlError::MultipleRoots);
        }
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(XmlError::TooDeep);
        }
        self.count_node()?;
        let (prefix, name) = split_qname(s.name().0)?;
        let mut ns_decls = Vec::new();
        let mut raw_attrs = Vec::new();
        for (n, a) in s.attributes().with_checks(true).enumerate() {
            if n + 1 > self.limits.max_attrs {
                return Err(XmlError::TooManyAttributes);
            }
            let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
            let value = normalize_attr_value(&a.value)?;
            let key = a.key.0;
            if key == "xmlns" {
                ns_decls.push((None, value));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                check_ns_decl(p, &value)?;
                ns_decls.push((Some(p.to_owned()), value));
            } else {
                raw_attrs.push((split_qname(key)?, value));
            }
        }
        let scope_len = self.scope.len();
        self.scope.extend(ns_decls.iter().cloned());

        let namespace = self.resolve(prefix.as_deref(), true)?;
        let mut attributes: Vec<Attribute> = Vec::with_capacity(raw_attrs.len());
        for ((prefix, name), value) in raw_attrs {
            // Namespaces in XML §6.2: an unprefixed attribute is in no namespace.
            let namespace = match &prefix {
                Some(p) => self.resolve(Some(p), false)?,
                None => None,
            };
            // Namespaces in XML §6.3: no two attributes with the same expanded name.
            if attributes
                .iter()
                .any(|a| a.name == name && a.namespace == namespace)
            {
                return Err(XmlError::Malformed(format!("duplicate attribute {name}")));
            }
            attributes.push(Attribute {
                prefix,
                name,
                namespace,
                value,
            });
        }
        Ok(Open {
            el: Element {
                prefix,
                name,
                namespace,
                ns_decls,
                attributes,
                children: Vec::new(),
            },
            scope_len,
        })
    }

    /// Resolve a prefix against the in-scope declarations. `None` is the default namespace,
    /// which only applies to elements; `xmlns=""` leaves an element in no namespace.
    fn resolve(&self, prefix: Option<&str>, element: bool) -> Result<Option<String>, XmlError> {
        if prefix == Some("xml") {
            return Ok(Some(XML_NS.to_owned()));
        }
        if prefix.is_none() && !element {
            return Ok(None);
        }
        let found = self
            .scope
            .iter()
            .rev()
            .find(|(p, _)| p.as_deref() == prefix)
            .map(|(_, uri)| uri.clone());
        match (prefix, found) {
            (None, Some(uri)) if uri.is_empty() => Ok(None),
            (None, found) => Ok(found),
            (Some(_), Some(uri)) => Ok(Some(uri)),
            (Some(p), None) => Err(XmlError::UnboundPrefix(p.to_owned())),
        }
    }
}

/// Namespaces in XML 1.0 §3 constraints on `xmlns:p="value"`.
fn check_ns_decl(prefix: &str, value: &str) -> Result<(), XmlError> {
    let bad = |why: &str| Err(XmlError::Malformed(format!("xmlns:{prefix}: {why}")));
    if prefix.is_empty() || prefix.contains(':') {
        return bad("invalid prefix");
    }
    if prefix == "xmlns" {
        return bad("the xmlns prefix must not be declared");
    }
    if (prefix == "xml") != (value == XML_NS) {
        return bad("the xml prefix and namespace are reserved for each other");
    }
    if value == XMLNS_NS {
        return bad("the xmlns namespace must not be bound");
    }
    // Prefix undeclaration is XML 1.1 only (Namespaces in XML 1.0 §3, Namespace constraint).
    if value.is_empty() {
        return bad("empty namespace name");
    }
    Ok(())
}

/// Split a QName into prefix and local part (Namespaces in XML §4).
fn split_qname(q: &str) -> Result<(Option<String>, String), XmlError> {
    let bad = || XmlError::Malformed(format!("invalid name {q:?}"));
    let valid = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
            && !s
                .chars()
                .any(|c| is_xml_space(c) || "<>&\"'=/:".contains(c))
    };
    match q.split_once(':') {
        Some((p, l)) if valid(p) && valid(l) => Ok((Some(p.to_owned()), l.to_owned())),
        None if valid(q) => Ok((None, q.to_owned())),
        _ => Err(bad()),
    }
}

/// XML 1.0 §2.3 S production.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// XML 1.0 §2.2 Char production (Rust `char` already excludes surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Resolve a reference: character references (XML 1.0 §4.1) and the five predefined entities
/// (§4.6). Anything else would need a DTD, which is refused, so it is an unknown entity.
fn resolve_ref(name: &str) -> Result<char, XmlError> {
    if let Some(num) = name.strip_prefix('#') {
        let parsed = match num.strip_prefix('x') {
            Some(hex) if !hex.is_empty() && hex.len() <= 8 => u32::from_str_radix(hex, 16).ok(),
            None if !num.is_empty() && num.len() <= 10 => num.parse::<u32>().ok(),
            _ => None,
        };
        // WFC: Legal Character — the referenced character must match Char.
        return parsed
            .and_then(char::from_u32)
            .filter(|c| is_xml_char(*c))
            .ok_or_else(|| XmlError::Malformed(format!("invalid character reference &{name};")));
    }
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(XmlError::UnknownEntity(other.to_owned())),
    }
}

/// Attribute-value normalisation for CDATA attributes (XML 1.0 §3.3.3; with no DTD every
/// attribute is CDATA). Line ends were not yet normalised by quick-xml, so `\r\n` is folded
/// into one space here (§2.11 then §3.3.3). Characters from references are kept verbatim.
fn normalize_attr_value(raw: &str) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '&' => {
                let end = rest
                    .find(';')
                    .ok_or_else(|| XmlError::Malformed("unterminated reference".into()))?;
                out.push(resolve_ref(&rest[..end])?);
                rest = &rest[end + 1..];
            }
            // XML 1.0 WFC: No < in Attribute Values.
            '<' => return Err(XmlError::Malformed("'<' in attribute value".into())),
            '\r' => {
                rest = rest.strip_prefix('\n').unwrap_or(rest);
                out.push(' ');
            }
            '\n' | '\t' => out.push(' '),
            c if is_xml_char(c) => out.push(c),
            c => return Err(XmlError::Malformed(format!("illegal character {c:?}"))),
        }
    }
    Ok(out)
}
