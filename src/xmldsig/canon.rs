//! Exclusive XML canonicalisation (xml-exc-c14n) of a subtree of a parsed `xml::Element` tree.
//!
//! Used by the verifier for both the enveloped Reference and SignedInfo. Also home of the
//! Canonical XML escaping rules shared with the emitter.

use crate::xml::{Element, Node};

/// Text node escaping (Canonical XML 1.0 §2.3, "Text Nodes"): `&`, `<`, `>` and CR.
///
/// Characters that XML 1.0 §2.2 forbids cannot be represented at all (not even as references);
/// the parser never produces them, and for emitted content they become U+FFFD so the output
/// stays well-formed (the signature then covers the replacement, so it still verifies).
pub(crate) fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(legal(c)),
        }
    }
}

/// Attribute value escaping (Canonical XML 1.0 §2.3, "Attribute Nodes"): `&`, `<`, `"`, TAB,
/// LF, CR. `>` is deliberately not escaped in attributes.
pub(crate) fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(legal(c)),
        }
    }
}

fn legal(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'.. => c,
        _ => '\u{FFFD}',
    }
}

/// Prefixes named by an `InclusiveNamespaces PrefixList` (xml-exc-c14n §3); `None` stands
/// for the `#default` token.
pub(crate) type PrefixList = Vec<Option<String>>;

/// Parse a PrefixList attribute value: whitespace-separated NCNames, `#default` for the
/// default namespace (xml-exc-c14n §3).
pub(crate) fn parse_prefix_list(v: &str) -> PrefixList {
    v.split_ascii_whitespace()
        .map(|t| (t != "#default").then(|| t.to_owned()))
        .collect()
}

/// Canonicalise `apex` (which must be `doc_root` or one of its descendants) as a document
/// subset consisting of the apex subtree minus the `exclude` subtree, without comments
/// (the parser already dropped them).
///
/// Returns `None` only if `apex` is not inside `doc_root`.
pub(crate) fn exc_c14n(
    doc_root: &Element,
    apex: &Element,
    exclude: Option<&Element>,
    inclusive: &PrefixList,
) -> Option<String> {
    // In-scope namespaces of the apex's ancestors matter only for InclusiveNamespaces
    // prefixes, which follow the inclusive Canonical XML rules (xml-exc-c14n §3).
    let mut scope = Vec::new();
    if !ancestors_scope(doc_root, apex, &mut scope) {
        return None;
    }
    let mut c = Canon {
        out: String::with_capacity(4096),
        inclusive,
        exclude: exclude.map(|e| e as *const Element),
    };
    c.element(apex, &mut scope, &mut Vec::new());
    Some(c.out)
}

/// Collect the declarations of all proper ancestors of `target` into `scope`
/// (outermost first). Returns false if `target` is not in the tree.
fn ancestors_scope<'a>(
    el: &'a Element,
    target: &Element,
    scope: &mut Vec<(Option<&'a str>, &'a str)>,
) -> bool {
    if std::ptr::eq(el, target) {
        return true;
    }
    let len = scope.len();
    scope.extend(el.ns_decls.iter().map(|(p, u)| (p.as_deref(), u.as_str())));
    if el.elements().any(|c| ancestors_scope(c, target, scope)) {
        return true;
    }
    scope.truncate(len);
    false
}

/// Innermost binding for `prefix` in a list of bindings.
fn lookup<'a>(bindings: &[(Option<&'a str>, &'a str)], prefix: Option<&str>) -> Option<&'a str> {
    bindings
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, u)| *u)
}

struct Canon<'i> {
    out: String,
    inclusive: &'i PrefixList,
    /// Compared by identity: the enveloped-signature transform removes exactly the Signature
    /// element that contains it, not an equal-looking one (XMLDSig §6.6.4).
    exclude: Option<*const Element>,
}

impl<'i> Canon<'i> {
    /// Render one element. `scope` holds in-scope declarations from the document; `rendered`
    /// holds what output ancestors actually rendered ("ns_rendered" in xml-exc-c14n §3).
    /// Recursion depth equals tree depth, which the parser bounds with `Limits::max_depth`.
    fn element<'a>(
        &mut self,
        el: &'a Element,
        scope: &mut Vec<(Option<&'a str>, &'a str)>,
        rendered: &mut Vec<(Option<&'a str>, &'a str)>,
    ) where
        'i: 'a,
    {
        let scope_len = scope.len();
        let rendered_len = rendered.len();
        scope.extend(el.ns_decls.iter().map(|(p, u)| (p.as_deref(), u.as_str())));

        // Candidate namespace nodes: those visibly utilised by the element or its attributes
        // (xml-exc-c14n §3), plus in-scope ones named by the PrefixList. The xml prefix is
        // never declared (Namespaces in XML §3). Sorted by prefix, default first (C14N §2.2).
        let mut cands: Vec<(Option<&'a str>, &'a str)> = Vec::new();
        let mut add = |p: Option<&'a str>, uri: &'a str| {
            if p != Some("xml") && !cands.iter().any(|(q, _)| *q == p) {
                cands.push((p, uri));
            }
        };
        add(el.prefix.as_deref(), el.namespace.as_deref().unwrap_or(""));
        for a in &el.attributes {
            if let (Some(p), Some(uri)) = (a.prefix.as_deref(), a.namespace.as_deref()) {
                add(Some(p), uri);
            }
        }
        for p in self.inclusive {
            match (p.as_deref(), lookup(scope, p.as_deref())) {
                (p, Some(uri)) => add(p, uri),
                (None, None) => add(None, ""),
                (Some(_), None) => {}
            }
        }
        cands.sort_by(|a, b| a.0.unwrap_or("").cmp(b.0.unwrap_or("")));

        self.out.push('<');
        push_qname(&mut self.out, el.prefix.as_deref(), &el.name);
        for (p, uri) in cands {
            let current = lookup(rendered, p);
            let render = match p {
                // An empty default is only worth saying if an output ancestor said otherwise.
                None if uri.is_empty() => current.is_some_and(|c| !c.is_empty()),
                _ => current != Some(uri),
            };
            if render {
                self.out.push_str(" xmlns");
                if let Some(p) = p {
                    self.out.push(':');
                    self.out.push_str(p);
                }
                self.out.push_str("=\"");
                escape_attr(uri, &mut self.out);
                self.out.push('"');
                rendered.push((p, uri));
            }
        }

        // Attributes sorted by (namespace URI, local name), no namespace first (C14N §2.2).
        let mut attrs: Vec<_> = el.attributes.iter().collect();
        attrs.sort_by(|a, b| {
            (a.namespace.as_deref().unwrap_or(""), a.name.as_str())
                .cmp(&(b.namespace.as_deref().unwrap_or(""), b.name.as_str()))
        });
        for a in attrs {
            self.out.push(' ');
            push_qname(&mut self.out, a.prefix.as_deref(), &a.name);
            self.out.push_str("=\"");
            escape_attr(&a.value, &mut self.out);
            self.out.push('"');
        }
        self.out.push('>');

        for child in &el.children {
            match child {
                Node::Text(t) => escape_text(t, &mut self.out),
                Node::Element(c) if self.exclude == Some(c as *const Element) => {}
                Node::Element(c) => self.element(c, scope, rendered),
            }
        }

        // C14N §2.3: empty elements become start-end tag pairs.
        self.out.push_str("</");
        push_qname(&mut self.out, el.prefix.as_deref(), &el.name);
        self.out.push('>');
        scope.truncate(scope_len);
        rendered.truncate(rendered_len);
    }
}

fn push_qname(out: &mut String, prefix: Option<&str>, local: &str) {
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(local);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse};

    fn canon_of(doc: &str, inclusive: &str) -> String {
        let root = parse(doc, &Limits::default()).unwrap();
        exc_c14n(&root, &root, None, &parse_prefix_list(inclusive)).unwrap()
    }

    #[test]
    fn escaping_and_ordering() {
        let doc = "<r b=\"&quot;&#9;&#10;&#13;>&lt;&amp;\" a='x'>&lt;&gt;&amp;&#13;\"é\r\n<e/></r>";
        assert_eq!(
            canon_of(doc, ""),
            "<r a=\"x\" b=\"&quot;&#x9;&#xA;&#xD;>&lt;&amp;\">&lt;&gt;&amp;&#xD;\"é\n<e></e></r>"
        );
    }

    #[test]
    fn namespaces_only_where_utilised() {
        let doc = r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:z="urn:z" xmlns="urn:d">
            <b:c z:k="1" a:k="2" k="3"><a:d/><e xmlns=""/></b:c><f/></a:r>"#;
        let want = "<a:r xmlns:a=\"urn:a\">\n            \
            <b:c xmlns:b=\"urn:b\" xmlns:z=\"urn:z\" k=\"3\" a:k=\"2\" z:k=\"1\"><a:d></a:d><e></e></b:c>\
            <f xmlns=\"urn:d\"></f></a:r>";
        assert_eq!(canon_of(doc, ""), want);
    }

    #[test]
    fn empty_default_is_rendered_only_against_a_rendered_default() {
        let doc = r#"<r xmlns="urn:d"><e xmlns=""><f xmlns="urn:d"/></e></r>"#;
        assert_eq!(
            canon_of(doc, ""),
            r#"<r xmlns="urn:d"><e xmlns=""><f xmlns="urn:d"></f></e></r>"#
        );
    }

    #[test]
    fn inclusive_prefix_list_is_honoured() {
        let doc = r#"<a:r xmlns:a="urn:a" xmlns:xs="urn:xs" xmlns="urn:d"><c/></a:r>"#;
        assert_eq!(
            canon_of(doc, "xs #default"),
            r#"<a:r xmlns="urn:d" xmlns:a="urn:a" xmlns:xs="urn:xs"><c></c></a:r>"#
        );
        // Apex below the declarations: in-scope ancestors' bindings are pulled in.
        let root = parse(doc, &Limits::default()).unwrap();
        let c = root.elements().next().unwrap();
        let got = exc_c14n(&root, c, None, &parse_prefix_list("xs")).unwrap();
        assert_eq!(got, r#"<c xmlns="urn:d" xmlns:xs="urn:xs"></c>"#);
    }

    #[test]
    fn exclusion_is_by_identity() {
        let root = parse("<r><s/><t/><s/></r>", &Limits::default()).unwrap();
        let first = root.elements().next().unwrap();
        let got = exc_c14n(&root, &root, Some(first), &Vec::new()).unwrap();
        assert_eq!(got, "<r><t></t><s></s></r>");
        let stranger = parse("<s/>", &Limits::default()).unwrap();
        assert_eq!(exc_c14n(&root, &stranger, None, &Vec::new()), None);
    }
}
