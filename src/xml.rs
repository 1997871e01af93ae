//! Owned XML tree for untrusted input, plus the hardened parser that builds it (see `parse`).
//!
//! The tree is deliberately small: elements with resolved namespaces, attributes whose values
//! are already unescaped and normalised, and text. Comments are dropped, CDATA becomes text,
//! adjacent text is merged. Because the verifier canonicalises this very tree, what a caller
//! reads after `xmldsig::verify::verify_root` is exactly what the signature covered.

mod parse;

pub use parse::parse;

/// The namespace bound to the `xml` prefix by definition (Namespaces in XML 1.0 §3).
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations themselves (Namespaces in XML 1.0 §3).
pub const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Resource limits applied while parsing; exceeding any of them is an error, never a truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input length in bytes (checked before any parsing).
    pub max_bytes: usize,
    /// Maximum element nesting depth (the root is depth 1).
    pub max_depth: usize,
    /// Maximum number of element, text and comment nodes in the whole document.
    pub max_nodes: usize,
    /// Maximum number of attributes (namespace declarations included) on one element.
    pub max_attrs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 * 1024,
            max_depth: 64,
            max_nodes: 20_000,
            max_attrs: 64,
        }
    }
}

/// An element with its namespace already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The prefix as written (`None` for an unprefixed name).
    pub prefix: Option<String>,
    /// The local name.
    pub name: String,
    /// The resolved namespace URI (`None` when the element is in no namespace).
    pub namespace: Option<String>,
    /// `xmlns` / `xmlns:p` declarations as written on this element, in document order.
    /// `(None, "")` is an undeclaration of the default namespace.
    pub ns_decls: Vec<(Option<String>, String)>,
    /// Ordinary attributes (namespace declarations excluded), in document order.
    pub attributes: Vec<Attribute>,
    /// Child elements and text, in document order.
    pub children: Vec<Node>,
}

/// An attribute with its namespace resolved and its value normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The prefix as written; unprefixed attributes are in no namespace (Namespaces in XML §6.2).
    pub prefix: Option<String>,
    /// The local name.
    pub name: String,
    /// The resolved namespace URI.
    pub namespace: Option<String>,
    /// The value, unescaped and normalised per XML 1.0 §3.3.3 (every literal whitespace
    /// character becomes a space; character references are kept as written).
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped, line ends normalised per XML 1.0 §2.11.
    Text(String),
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("input exceeds the size limit")]
    TooLarge,
    #[error("element nesting exceeds the depth limit")]
    TooDeep,
    #[error("document exceeds the node limit")]
    TooManyNodes,
    #[error("element exceeds the attribute limit")]
    TooManyAttributes,
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("processing instructions are not accepted")]
    ProcessingInstruction,
    #[error("unknown entity reference &{0};")]
    UnknownEntity(String),
    #[error("unbound namespace prefix {0:?}")]
    UnboundPrefix(String),
    #[error("more than one root element")]
    MultipleRoots,
    #[error("character data outside the root element")]
    TextOutsideRoot,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

impl Element {
    /// True when this element has namespace `ns` (`""` = no namespace) and local name `local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.name == local && self.namespace.as_deref().unwrap_or("") == ns
    }

    /// The value of the unprefixed (no-namespace) attribute `local`.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attr_ns("", local)
    }

    /// The value of the attribute `local` in namespace `ns` (`""` = no namespace).
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == local && a.namespace.as_deref().unwrap_or("") == ns)
            .map(|a| a.value.as_str())
    }

    /// The first child element named `{ns}local`.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// All child elements named `{ns}local`, in document order.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> {
        self.elements().filter(move |e| e.is(ns, local))
    }

    /// All child elements, in document order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The concatenation of all direct text children. Every text child is included, so a
    /// comment inside a value cannot truncate it (the 2018 SAML comment-truncation attacks).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// This element followed by all its descendant elements, depth first in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            out.push(e);
            // Reverse so that the first child is visited next (document order).
            let kids: Vec<&Element> = e.elements().collect();
            stack.extend(kids.into_iter().rev());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<p:a xmlns:p="urn:p" xmlns="urn:d" ID="x1"><b k="v">one<!-- c -->two</b><p:c/><b>three</b></p:a>"#;

    #[test]
    fn accessors() {
        let root = parse(DOC, &Limits::default()).unwrap();
        assert!(root.is("urn:p", "a"));
        assert_eq!(root.attr("ID"), Some("x1"));
        let b = root.child("urn:d", "b").unwrap();
        assert_eq!(b.attr("k"), Some("v"));
        // The comment is dropped and the two text runs merge: nothing is truncated.
        assert_eq!(b.text(), "onetwo");
        assert_eq!(root.children_named("urn:d", "b").count(), 2);
        assert_eq!(root.elements().count(), 3);
        assert!(root.child("urn:p", "c").is_some());
        assert!(root.child("urn:d", "c").is_none());
        assert_eq!(root.descendants().len(), 4);
    }

    fn p(s: &str) -> Result<Element, XmlError> {
        parse(s, &Limits::default())
    }

    #[test]
    fn namespaces_and_normalisation() {
        let doc = "<?xml version=\"1.0\"?>\r\n<a:r xmlns:a=\"urn:a\" xmlns=\"urn:d\" \
                   a:k=\"x&#xD;y\r\nz\tw&amp;&lt;&#38;\"><c xmlns=\"\">t\r\nu\rv&#xD;<![CDATA[<&>]]></c><d/></a:r>";
        let r = p(doc).unwrap();
        assert_eq!(r.namespace.as_deref(), Some("urn:a"));
        assert_eq!(r.attributes[0].namespace.as_deref(), Some("urn:a"));
        assert_eq!(r.attributes[0].value, "x\ry z w&<&");
        let c = r.child("", "c").unwrap();
        assert_eq!(c.text(), "t\nu\nv\r<&>");
        assert!(r.child("urn:d", "d").is_some());
        assert_eq!(
            r.ns_decls,
            vec![(Some("a".into()), "urn:a".into()), (None, "urn:d".into())]
        );
    }

    #[test]
    fn refusals() {
        let cases: Vec<(&str, XmlError)> = vec![
            ("<!DOCTYPE r><r/>", XmlError::Doctype),
            ("<r><?pi x?></r>", XmlError::ProcessingInstruction),
            (
                "<?xml-stylesheet href='x'?><r/>",
                XmlError::ProcessingInstruction,
            ),
            ("<r>&foo;</r>", XmlError::UnknownEntity("foo".into())),
            ("<r a='&foo;'/>", XmlError::UnknownEntity("foo".into())),
            ("<p:r/>", XmlError::UnboundPrefix("p".into())),
            ("<r p:a='1'/>", XmlError::UnboundPrefix("p".into())),
            ("<r/><r/>", XmlError::MultipleRoots),
            ("<r/>junk", XmlError::TextOutsideRoot),
            ("&amp;<r/>", XmlError::TextOutsideRoot),
            ("not xml at all", XmlError::TextOutsideRoot),
        ];
        for (doc, want) in cases {
            assert_eq!(p(doc), Err(want), "{doc}");
        }
        for doc in [
            "",
            "<r>",
            "<r></s>",
            "<r a='<'/>",
            "<r a='1' a='2'/>",
            "<r xmlns:a='urn:x' xmlns:b='urn:x' a:k='1' b:k='2'/>",
            "<r>&#0;</r>",
            "<r>\u{1}</r>",
            "<r xmlns:p=''/>",
            " <?xml version='1.0'?><r/>",
            "<?xml version='1.1'?><r/>",
            "<?xml version='1.0' encoding='ISO-8859-1'?><r>é</r>",
        ] {
            assert!(
                matches!(p(doc), Err(XmlError::Malformed(_))),
                "{doc}: {:?}",
                p(doc)
            );
        }
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_bytes: 100,
            max_depth: 3,
            max_nodes: 5,
            max_attrs: 2,
        };
        assert_eq!(parse(&"x".repeat(101), &small), Err(XmlError::TooLarge));
        assert_eq!(
            parse("<a><b><c><d/></c></b></a>", &small),
            Err(XmlError::TooDeep)
        );
        assert_eq!(
            parse("<a><b/><b/><b/><b/><b/></a>", &small),
            Err(XmlError::TooManyNodes)
        );
        assert_eq!(
            parse("<a x='1' y='2' z='3'/>", &small),
            Err(XmlError::TooManyAttributes)
        );
        assert!(parse("<a x='1' y='2'><b><c/></b></a>", &small).is_ok());
        let ascii = "<?xml version='1.0' encoding='ISO-8859-1'?><r>e</r>";
        assert!(parse(ascii, &Limits::default()).is_ok());
    }
}
