//! Hostile inbound documents: each must be refused with its specific error, and nothing may
//! be fetched, expanded or executed on the way.

mod xmldsig_util;

use std::net::TcpListener;

use tessera::xml::{Limits, XmlError, parse};
use tessera::xmldsig::emit::c14n;
use tessera::xmldsig::sign::sign_enveloped;
use tessera::xmldsig::verify::{Nested, Verified, VerifyError, verify_root, verify_root_with};
use xmldsig_util::*;

#[derive(Debug, PartialEq)]
enum Refused {
    Xml(XmlError),
    Sig(VerifyError),
}

fn check(doc: &str, k: &TestKey) -> Result<Verified, Refused> {
    let root = parse(doc, &Limits::default()).map_err(Refused::Xml)?;
    verify_root(&root, std::slice::from_ref(&k.cert)).map_err(Refused::Sig)
}

/// A validly signed AuthnRequest, as one canonical line.
fn signed_request(k: &TestKey) -> String {
    let mut req = authn_request("_req");
    sign_enveloped(&mut req, &k.signer(), 1).unwrap();
    c14n(&req)
}

/// The `<ds:Signature …>…</ds:Signature>` substring of `doc`.
fn signature_of(doc: &str) -> &str {
    let start = doc.find("<ds:Signature").unwrap();
    let end = doc.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    &doc[start..end]
}

fn sig_err(e: VerifyError) -> Result<Verified, Refused> {
    Err(Refused::Sig(e))
}

#[test]
fn baseline_and_key_choice() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    assert!(check(&doc, &k).is_ok());
    let root = parse(&doc, &Limits::default()).unwrap();
    let other = TestKey::new("other");
    // Wrong key: the certificate in KeyInfo is the right one, but it is not trusted.
    assert_eq!(
        verify_root(&root, std::slice::from_ref(&other.cert)),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verify_root(&root, &[]), Err(VerifyError::BadSignature));
    let both = [other.cert.clone(), k.cert.clone()];
    assert_eq!(verify_root(&root, &both).unwrap().cert_index, 1);
    // No signature at all.
    let unsigned = c14n(&authn_request("_req"));
    assert_eq!(check(&unsigned, &k), sig_err(VerifyError::NoSignature));
}

#[test]
fn tampering() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    let evil = doc.replace("https://sp.example/acs", "https://evil.example/acs");
    assert_eq!(check(&evil, &k), sig_err(VerifyError::DigestMismatch));
    // SignedInfo altered without touching the digest: a harmless-looking attribute.
    let evil = doc.replace("<ds:Reference ", "<ds:Reference Type=\"urn:x\" ");
    assert_eq!(check(&evil, &k), sig_err(VerifyError::BadSignature));
    // SignatureValue altered.
    let sv = doc.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len() + 10;
    let mut evil = doc.clone();
    let flipped = if &doc[sv..sv + 1] == "A" { "B" } else { "A" };
    evil.replace_range(sv..sv + 1, flipped);
    assert_eq!(check(&evil, &k), sig_err(VerifyError::BadSignature));
    // A comment inside signed text is not covered (XMLDSig §4.4.3.3) and must not truncate.
    let commented = doc.replace(">https://sp.example/<", ">https://sp.<!-- x -->example/<");
    let root = parse(&commented, &Limits::default()).unwrap();
    verify_root(&root, std::slice::from_ref(&k.cert)).unwrap();
    assert_eq!(
        root.child(NS_SAML, "Issuer").unwrap().text(),
        "https://sp.example/"
    );
}

#[test]
fn signature_wrapping() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    let sig = signature_of(&doc);
    let unsigned = doc.replace(sig, "");
    let evil_root = |body: &str| {
        unsigned
            .replace("https://sp.example/acs", "https://evil.example/acs")
            .replace("<samlp:NameIDPolicy", &format!("{body}<samlp:NameIDPolicy"))
    };
    let ext = |inner: &str| format!("<samlp:Extensions>{inner}</samlp:Extensions>");

    // The genuine signed request hidden in Extensions; the root itself is unsigned.
    let wrapped = evil_root(&ext(&doc));
    assert_eq!(
        check(&wrapped, &k),
        sig_err(VerifyError::SignatureNotOnRoot)
    );

    // ...and the genuine Signature also copied onto the forged root.
    let wrapped = evil_root(&format!("{sig}{}", ext(&doc)));
    assert_eq!(
        check(&wrapped, &k),
        sig_err(VerifyError::MultipleSignatures)
    );

    // The genuine Signature on the forged root, the genuine (unsigned) content in Extensions
    // under the same ID, hoping the verifier digests the twin.
    let wrapped = evil_root(&format!("{sig}{}", ext(&unsigned)));
    assert_eq!(check(&wrapped, &k), sig_err(VerifyError::DuplicateId));

    // The forged root renamed, so the Reference can only resolve to the twin.
    let wrapped = wrapped.replacen("ID=\"_req\"", "ID=\"_evil\"", 1);
    assert_eq!(check(&wrapped, &k), sig_err(VerifyError::ReferenceMismatch));

    // A twin that uses a different spelling of the ID attribute is counted too.
    let wrapped = evil_root(&format!(
        "{sig}<samlp:Extensions Id=\"_req\"></samlp:Extensions>"
    ));
    assert_eq!(check(&wrapped, &k), sig_err(VerifyError::DuplicateId));
}

#[test]
fn signature_placement() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    let sig = signature_of(&doc);
    let two = doc.replace(sig, &format!("{sig}{sig}"));
    assert_eq!(check(&two, &k), sig_err(VerifyError::MultipleSignatures));
    let moved = doc.replace(sig, "").replace(
        "\"true\"></samlp:NameIDPolicy>",
        &format!("\"true\">{sig}</samlp:NameIDPolicy>"),
    );
    assert_eq!(check(&moved, &k), sig_err(VerifyError::SignatureNotOnRoot));
}

/// A signed Assertion inside a signed Response (the NetScaler "both" shape): the outer
/// signature verifies only when inner signatures are explicitly allowed, still covers the
/// inner Assertion, and no other placement of a second signature slips through.
#[test]
fn inner_signatures() {
    let k = TestKey::new("idp");
    let mut inner = assertion("_a1");
    sign_enveloped(&mut inner, &k.signer(), 1).unwrap();
    let mut outer = response("_r1", inner);
    sign_enveloped(&mut outer, &k.signer(), 1).unwrap();
    let doc = c14n(&outer);
    let certs = std::slice::from_ref(&k.cert);
    let with = |doc: &str, nested| {
        let root = parse(doc, &Limits::default()).unwrap_or_else(|e| panic!("{e:?}: {doc}"));
        verify_root_with(&root, certs, nested)
    };
    assert!(with(&doc, Nested::AllowInner).is_ok());
    assert_eq!(
        with(&doc, Nested::Refuse),
        Err(VerifyError::MultipleSignatures)
    );
    // The inner Assertion verifies on its own as the root of its own check.
    let root = parse(&doc, &Limits::default()).unwrap();
    let a = root.child(NS_SAML, "Assertion").unwrap();
    assert!(verify_root(a, certs).is_ok());

    // Altering the inner Assertion breaks the outer digest too.
    let altered = doc.replacen(">alice<", ">mallory<", 1);
    assert_ne!(altered, doc);
    assert_eq!(
        with(&altered, Nested::AllowInner),
        Err(VerifyError::DigestMismatch)
    );
    // Two signatures on the root are still refused.
    let first = signature_of(&doc);
    // The Response's own signature comes first in document order (after Issuer).
    assert!(doc.find(first).unwrap() < doc.find("<saml:Assertion").unwrap());
    let doubled = doc.replacen(first, &format!("{first}{first}"), 1);
    assert_eq!(
        with(&doubled, Nested::AllowInner),
        Err(VerifyError::MultipleSignatures)
    );
    // A signature tucked inside another signature (its KeyInfo) is refused.
    let tucked = doc.replacen("</ds:KeyInfo>", &format!("{first}</ds:KeyInfo>"), 1);
    assert_eq!(
        with(&tucked, Nested::AllowInner),
        Err(VerifyError::MultipleSignatures)
    );
    // Only inner signatures, none on the root: nothing verifies the root.
    let unsigned_outer = c14n(&response("_r2", {
        let mut a = assertion("_a2");
        sign_enveloped(&mut a, &k.signer(), 1).unwrap();
        a
    }));
    assert_eq!(
        with(&unsigned_outer, Nested::AllowInner),
        Err(VerifyError::NoSignature)
    );
}

#[test]
fn references_are_never_dereferenced() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    // A live listener: if anything tried to fetch the URI, a connection would be pending.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/x",
        listener.local_addr().unwrap().port()
    );
    for uri in [
        url.as_str(),
        "http://127.0.0.1:9/x",
        "file:///dev/zero",
        "",
        "_req",
    ] {
        let evil = doc.replace("URI=\"#_req\"", &format!("URI=\"{uri}\""));
        assert_eq!(
            check(&evil, &k),
            sig_err(VerifyError::ExternalReference(uri.to_owned())),
            "{uri}"
        );
    }
    let evil = doc.replace(" URI=\"#_req\"", "");
    assert!(matches!(
        check(&evil, &k),
        Err(Refused::Sig(VerifyError::ExternalReference(_)))
    ));
    assert!(
        listener.accept().is_err(),
        "the verifier connected to the Reference URI"
    );
    let evil = doc.replace("URI=\"#_req\"", "URI=\"#xpointer(/)\"");
    assert_eq!(check(&evil, &k), sig_err(VerifyError::ReferenceMismatch));
}

#[test]
fn forbidden_transforms_and_algorithms() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    let exc = "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:Transform>";
    let xslt = "http://www.w3.org/TR/1999/REC-xslt-19991116";
    let evil = doc.replace(
        exc,
        &format!(
            "<ds:Transform Algorithm=\"{xslt}\"><xsl:stylesheet xmlns:xsl=\
             \"http://www.w3.org/1999/XSL/Transform\" version=\"1.0\"><xsl:template match=\"/\">\
             <xsl:value-of select=\"document('http://127.0.0.1:9/')\"/></xsl:template>\
             </xsl:stylesheet></ds:Transform>"
        ),
    );
    assert_eq!(
        check(&evil, &k),
        sig_err(VerifyError::ForbiddenTransform(xslt.into()))
    );
    let xpath = "http://www.w3.org/TR/1999/REC-xpath-19991116";
    let evil = doc.replace(
        exc,
        &format!("<ds:Transform Algorithm=\"{xpath}\"><ds:XPath>1</ds:XPath></ds:Transform>{exc}"),
    );
    assert_eq!(
        check(&evil, &k),
        sig_err(VerifyError::ForbiddenTransform(xpath.into()))
    );
    // Only the exact pair enveloped + exc-c14n is accepted.
    let evil = doc.replace(exc, "");
    assert!(matches!(
        check(&evil, &k),
        Err(Refused::Sig(VerifyError::UnsupportedAlgorithm(_)))
    ));

    for (from, to) in [
        ("xmldsig-more#rsa-sha256", "xmldsig-more#hmac-sha256"),
        ("xmlenc#sha256", "xmldsig-more#md5"),
        (
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"",
        ),
    ] {
        assert_eq!(doc.matches(from).count(), 1, "{from}");
        let evil = doc.replace(from, to);
        assert!(
            matches!(
                check(&evil, &k),
                Err(Refused::Sig(VerifyError::UnsupportedAlgorithm(_)))
            ),
            "{to}: {:?}",
            check(&evil, &k)
        );
    }
}

#[test]
fn hostile_xml_is_refused_before_verification() {
    let k = TestKey::new("sp");
    let doc = signed_request(&k);
    let body = doc.strip_prefix('<').unwrap();
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"lol\">\
         <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\
         <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]><{}",
        body.replace(">https://sp.example/<", ">&d;<")
    );
    assert_eq!(check(&laughs, &k), Err(Refused::Xml(XmlError::Doctype)));
    let xxe = format!(
        "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><{}",
        body.replace(">https://sp.example/<", ">&x;<")
    );
    assert_eq!(check(&xxe, &k), Err(Refused::Xml(XmlError::Doctype)));
    let unknown = doc.replace(">https://sp.example/<", ">&x;<");
    assert_eq!(
        check(&unknown, &k),
        Err(Refused::Xml(XmlError::UnknownEntity("x".into())))
    );

    let big = doc.replace(
        "</samlp:AuthnRequest>",
        &format!("{}</samlp:AuthnRequest>", " ".repeat(300 * 1024)),
    );
    assert_eq!(check(&big, &k), Err(Refused::Xml(XmlError::TooLarge)));
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert_eq!(check(&deep, &k), Err(Refused::Xml(XmlError::TooDeep)));
    let unbound = doc.replace(
        "<samlp:NameIDPolicy",
        "<evil:X></evil:X><samlp:NameIDPolicy",
    );
    assert_eq!(
        check(&unbound, &k),
        Err(Refused::Xml(XmlError::UnboundPrefix("evil".into())))
    );
    let pi = format!("<?xml-stylesheet href=\"http://127.0.0.1:9/\"?>{doc}");
    assert_eq!(
        check(&pi, &k),
        Err(Refused::Xml(XmlError::ProcessingInstruction))
    );
    assert_eq!(
        check("not xml at all", &k),
        Err(Refused::Xml(XmlError::TextOutsideRoot))
    );
    assert!(matches!(
        check("{\"json\": true}", &k),
        Err(Refused::Xml(_))
    ));
    assert!(matches!(
        check(&doc[..doc.len() - 3], &k),
        Err(Refused::Xml(XmlError::Malformed(_)))
    ));
}
