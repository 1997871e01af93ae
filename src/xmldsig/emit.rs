//! Builder for outbound XML that serialises straight into exclusive-c14n form.
//!
//! Because the bytes we send are already canonical, the digest we compute over `c14n(el)` is
//! exactly what any verifier recomputes after parsing them; there is no second serialiser
//! that could disagree. To keep that true the builder only supports what SAML output needs:
//! namespaced elements, unprefixed attributes, namespaced attributes (`xsi:type` on a
//! federation metadata role, declared where they are first used like element prefixes) and
//! text. No comments, no PIs.

use super::canon::{escape_attr, escape_text};

/// An element under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct El {
    prefix: String,
    local: String,
    ns: String,
    attrs: Vec<(String, String)>,
    /// Namespaced attributes: (prefix, local name, namespace, value).
    ns_attrs: Vec<(String, String, String, String)>,
    /// Declarations written by `document` only, never by `c14n` (see `declare`).
    extra_ns: Vec<(String, String)>,
    children: Vec<Child>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Child {
    El(El),
    Text(String),
}

impl El {
    /// A new element `prefix:local` in namespace `ns`. `prefix` `""` means the default
    /// namespace; `ns` `""` means no namespace.
    pub fn new(prefix: &str, local: &str, ns: &str) -> El {
        El {
            prefix: prefix.to_owned(),
            local: local.to_owned(),
            ns: ns.to_owned(),
            attrs: Vec::new(),
            ns_attrs: Vec::new(),
            extra_ns: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Set an attribute `prefix:local` in namespace `ns` (a non-empty prefix). Setting it
    /// twice keeps the last value.
    pub fn attr_ns(mut self, prefix: &str, local: &str, ns: &str, value: impl Into<String>) -> El {
        let value = value.into();
        match self
            .ns_attrs
            .iter_mut()
            .find(|(_, l, n, _)| l == local && n == ns)
        {
            Some(slot) => slot.3 = value,
            None => self
                .ns_attrs
                .push((prefix.to_owned(), local.to_owned(), ns.to_owned(), value)),
        }
        self
    }

    /// Declare `xmlns:prefix="ns"` on this element in the `document` form only. For a prefix
    /// that only an attribute *value* uses (the `fed:` of `xsi:type="fed:…"`): exclusive
    /// c14n drops such a declaration (it is not visibly utilised, xml-exc-c14n §3), so the
    /// signature never covers it and a verifier's canonical form equals ours, while a
    /// reader resolving the QName finds it bound.
    pub fn declare(mut self, prefix: &str, ns: &str) -> El {
        self.extra_ns.push((prefix.to_owned(), ns.to_owned()));
        self
    }

    /// Set an unprefixed attribute; setting the same name twice keeps the last value, so the
    /// output can never carry a duplicate attribute (XML 1.0 §3.1, WFC: Unique Att Spec).
    pub fn attr(mut self, name: &str, value: impl Into<String>) -> El {
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name.to_owned(), value)),
        }
        self
    }

    /// Append a child element.
    pub fn child(mut self, c: El) -> El {
        self.push(c);
        self
    }

    /// Append several child elements.
    pub fn children(mut self, cs: impl IntoIterator<Item = El>) -> El {
        self.children.extend(cs.into_iter().map(Child::El));
        self
    }

    /// Append text content.
    pub fn text(mut self, t: impl Into<String>) -> El {
        self.children.push(Child::Text(t.into()));
        self
    }

    /// Append a child element in place.
    pub fn push(&mut self, c: El) {
        self.children.push(Child::El(c));
    }

    /// Insert a child at `index` among all children (text included), clamped to the end.
    pub fn insert_child(&mut self, index: usize, c: El) {
        let index = index.min(self.children.len());
        self.children.insert(index, Child::El(c));
    }

    /// The value of the `ID` attribute (the SAML ID type, referenced as `#ID`).
    pub fn id(&self) -> Option<&str> {
        self.attr_value("ID")
    }

    /// The value of an unprefixed attribute.
    pub fn attr_value(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Number of children (elements and text).
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// True when this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &El> {
        self.children.iter().filter_map(|c| match c {
            Child::El(e) => Some(e),
            Child::Text(_) => None,
        })
    }
}

/// Serialise `el` as the apex of a document subset in exclusive canonical form
/// (xml-exc-c14n §3 with Canonical XML 1.0 §2.3 escaping).
pub fn c14n(el: &El) -> String {
    let mut out = String::with_capacity(2048);
    write(el, &mut Vec::new(), &mut out, false);
    out
}

/// The canonical form plus the `declare`d namespace declarations: what we serve when a
/// QName in an attribute value needs its prefix bound. Its exclusive c14n is `c14n(el)`.
pub fn document(el: &El) -> String {
    let mut out = String::with_capacity(2048);
    write(el, &mut Vec::new(), &mut out, true);
    out
}

/// `rendered` is the stack of (prefix, uri) declarations output ancestors rendered.
/// The element's own prefix and its attributes' prefixes are the visibly utilised ones, so
/// a declaration appears exactly where a binding is first needed or changes
/// (xml-exc-c14n §3). Recursion depth equals the depth of the tree our own code built.
fn write<'a>(el: &'a El, rendered: &mut Vec<(&'a str, &'a str)>, out: &mut String, doc: bool) {
    let current = |prefix: &str, rendered: &Vec<(&'a str, &'a str)>| {
        rendered
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|(_, u)| *u)
    };
    let own = current(&el.prefix, rendered);
    let mut declared: Vec<(&'a str, &'a str)> = Vec::new();
    let declare_own = if el.prefix.is_empty() && el.ns.is_empty() {
        // xmlns="" only to undo a default an output ancestor rendered.
        own.is_some_and(|u| !u.is_empty())
    } else {
        own != Some(el.ns.as_str())
    };
    if declare_own {
        declared.push((&el.prefix, &el.ns));
    }
    for (prefix, _, ns, _) in &el.ns_attrs {
        if current(prefix, rendered) != Some(ns.as_str())
            && !declared.iter().any(|(p, _)| p == prefix)
        {
            declared.push((prefix, ns));
        }
    }
    // C14N §2.2: namespace declarations sorted by prefix, the default one first.
    declared.sort();

    out.push('<');
    push_qname(out, el);
    for (prefix, ns) in &declared {
        push_xmlns(out, prefix, ns);
    }
    if doc {
        for (prefix, ns) in &el.extra_ns {
            if !declared.iter().any(|(p, _)| p == prefix) {
                push_xmlns(out, prefix, ns);
            }
        }
    }
    rendered.extend(declared.iter().copied());
    // Unprefixed attributes are in no namespace, so they sort by local name alone and come
    // before namespaced ones, which sort by namespace URI, then local name (C14N §2.2).
    let mut attrs: Vec<&(String, String)> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in attrs {
        push_attr(out, "", name, value);
    }
    let mut ns_attrs: Vec<&(String, String, String, String)> = el.ns_attrs.iter().collect();
    ns_attrs.sort_by(|a, b| (&a.2, &a.1).cmp(&(&b.2, &b.1)));
    for (prefix, local, _, value) in ns_attrs {
        push_attr(out, prefix, local, value);
    }
    out.push('>');
    for c in &el.children {
        match c {
            Child::El(e) => write(e, rendered, out, doc),
            Child::Text(t) => escape_text(t, out),
        }
    }
    // C14N §2.3: no self-closing tags.
    out.push_str("</");
    push_qname(out, el);
    out.push('>');
    rendered.truncate(rendered.len() - declared.len());
}

fn push_xmlns(out: &mut String, prefix: &str, ns: &str) {
    out.push_str(" xmlns");
    if !prefix.is_empty() {
        out.push(':');
        out.push_str(prefix);
    }
    out.push_str("=\"");
    escape_attr(ns, out);
    out.push('"');
}

fn push_attr(out: &mut String, prefix: &str, name: &str, value: &str) {
    out.push(' ');
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push(':');
    }
    out.push_str(name);
    out.push_str("=\"");
    escape_attr(value, out);
    out.push('"');
}

fn push_qname(out: &mut String, el: &El) {
    if !el.prefix.is_empty() {
        out.push_str(&el.prefix);
        out.push(':');
    }
    out.push_str(&el.local);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse};
    use crate::xmldsig::canon::exc_c14n;

    const A: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
    const P: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

    #[test]
    fn escaping() {
        let el = El::new("", "r", "")
            .attr("v", "a&b<c>d\"e'f\tg\nh\ri é 漢")
            .text("a&b<c>d\"e'f\tg\nh\ri é 漢");
        assert_eq!(
            c14n(&el),
            "<r v=\"a&amp;b&lt;c>d&quot;e'f&#x9;g&#xA;h&#xD;i é 漢\">\
             a&amp;b&lt;c&gt;d\"e'f\tg\nh&#xD;i é 漢</r>"
        );
        // Characters XML cannot carry at all are replaced rather than emitted raw.
        assert_eq!(
            c14n(&El::new("", "r", "").text("a\u{1}b")),
            "<r>a\u{FFFD}b</r>"
        );
    }

    #[test]
    fn sorted_attributes_and_no_self_closing() {
        let el = El::new("", "r", "")
            .attr("b", "2")
            .attr("a", "1")
            .attr("B", "3")
            .attr("a", "4")
            .child(El::new("", "e", ""));
        assert_eq!(c14n(&el), r#"<r B="3" a="4" b="2"><e></e></r>"#);
    }

    #[test]
    fn namespaces_declared_where_first_used() {
        let el = El::new("samlp", "Response", P)
            .attr("ID", "_1")
            .child(El::new("saml", "Issuer", A).text("idp"))
            .child(
                El::new("saml", "Assertion", A)
                    .child(El::new("saml", "Subject", A))
                    .child(El::new("x", "Ext", "urn:x").child(El::new("x", "In", "urn:x"))),
            );
        assert_eq!(
            c14n(&el),
            format!(
                "<samlp:Response xmlns:samlp=\"{P}\" ID=\"_1\">\
                 <saml:Issuer xmlns:saml=\"{A}\">idp</saml:Issuer>\
                 <saml:Assertion xmlns:saml=\"{A}\"><saml:Subject></saml:Subject>\
                 <x:Ext xmlns:x=\"urn:x\"><x:In></x:In></x:Ext></saml:Assertion></samlp:Response>"
            )
        );
    }

    #[test]
    fn default_namespace_and_rebinding() {
        let el = El::new("", "a", "urn:d")
            .child(El::new("", "b", ""))
            .child(El::new("p", "c", "urn:1").child(El::new("p", "d", "urn:2")));
        assert_eq!(
            c14n(&el),
            "<a xmlns=\"urn:d\"><b xmlns=\"\"></b><p:c xmlns:p=\"urn:1\">\
             <p:d xmlns:p=\"urn:2\"></p:d></p:c></a>"
        );
    }

    /// The emitter and the verifier's canonicaliser must agree byte for byte: what we emit is
    /// a fixed point of parse + exc-c14n.
    #[test]
    fn emitter_output_is_a_c14n_fixed_point() {
        let el = El::new("samlp", "Response", P)
            .attr("ID", "_1")
            .attr("Dest", "https://sp/x?a=1&b=\"2\"\r\n")
            .child(El::new("saml", "Issuer", A).text(" <idp> & \"é\"\r\n\t"))
            .child(El::new("", "Bare", "").child(El::new("", "D", "urn:d")));
        let out = c14n(&el);
        let root = parse(&out, &Limits::default()).unwrap();
        assert_eq!(exc_c14n(&root, &root, None, &Vec::new()).unwrap(), out);
    }

    /// Namespaced attributes: their prefixes are declared with the element's, sorted, and
    /// sorted after the unprefixed attributes by namespace URI; `document`'s extra
    /// declarations vanish under exc-c14n, so both forms share one digest.
    #[test]
    fn namespaced_attributes_and_document_only_declarations() {
        const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
        let el = El::new("md", "E", "urn:md").child(
            El::new("md", "Role", "urn:md")
                .declare("fed", "urn:fed")
                .attr_ns("xsi", "type", XSI, "fed:T")
                .attr_ns("a", "z", "urn:a", "1")
                .attr("b", "2")
                .child(El::new("fed", "In", "urn:fed").attr_ns("xsi", "nil", XSI, "false")),
        );
        let canonical = c14n(&el);
        assert_eq!(
            canonical,
            "<md:E xmlns:md=\"urn:md\"><md:Role xmlns:a=\"urn:a\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             b=\"2\" xsi:type=\"fed:T\" a:z=\"1\"><fed:In xmlns:fed=\"urn:fed\" xsi:nil=\"false\"></fed:In></md:Role></md:E>"
        );
        let served = document(&el);
        assert!(served.contains("<md:Role xmlns:a=\"urn:a\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:fed=\"urn:fed\" b="));
        for out in [&canonical, &served] {
            let root = parse(out, &Limits::default()).unwrap();
            assert_eq!(
                exc_c14n(&root, &root, None, &Vec::new()).unwrap(),
                canonical
            );
        }
    }
}
