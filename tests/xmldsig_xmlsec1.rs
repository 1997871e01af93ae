//! Interoperability with xmlsec1: it must accept what we sign, and we must accept what it signs.

mod xmldsig_util;

use tessera::xml::{Limits, parse};
use tessera::xmldsig::emit::{El, c14n};
use tessera::xmldsig::sign::sign_enveloped;
use tessera::xmldsig::verify::{DigestAlg, SigAlg, verify_root};
use xmldsig_util::*;

const ASSERTION_SIG: &str =
    "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']";
const RESPONSE_SIG: &str = "/*[local-name()='Response']/*[local-name()='Signature']";

fn signed_assertion(k: &TestKey) -> El {
    let mut a = assertion("_a0123456789abcdef0123456789abcdef");
    sign_enveloped(&mut a, &k.signer(), 1).unwrap();
    a
}

fn signed_response(k: &TestKey, inner: El) -> El {
    let mut r = response("_r0123456789abcdef0123456789abcdef", inner);
    sign_enveloped(&mut r, &k.signer(), 1).unwrap();
    r
}

/// xmlsec1 accepts `doc` (each listed signature), our verifier accepts the root's signature
/// if it has one, and one changed character makes xmlsec1 refuse it.
fn assert_xmlsec1_accepts(k: &TestKey, doc: &str, xpaths: &[&str], root_signed: bool) {
    let file = k.write("doc.xml", doc);
    for x in xpaths {
        let (ok, out) = xmlsec1_verify(&k.cert_pem(), &file, Some(x));
        assert!(ok, "xmlsec1 rejected {x}: {out}\n{doc}");
        assert!(out.contains("OK"), "{out}");
    }
    if root_signed {
        let root = parse(doc, &Limits::default()).unwrap();
        let v = verify_root(&root, std::slice::from_ref(&k.cert)).unwrap();
        assert_eq!(
            (v.alg, v.digest, v.cert_index),
            (SigAlg::RsaSha256, DigestAlg::Sha256, 0)
        );
    }
    // Teeth: "alice" occurs once, inside the (innermost) signed Assertion.
    assert_eq!(doc.matches(">alice<").count(), 1);
    let tampered = doc.replace(">alice<", ">alicf<");
    let file = k.write("tampered.xml", &tampered);
    for x in xpaths {
        let (ok, out) = xmlsec1_verify(&k.cert_pem(), &file, Some(x));
        assert!(!ok, "xmlsec1 accepted a tampered document at {x}: {out}");
    }
}

#[test]
fn xmlsec1_accepts_signed_assertion() {
    let k = TestKey::new("idp");
    let doc = c14n(&signed_assertion(&k));
    assert!(doc.contains("&#xD;") && doc.contains("漢字") && doc.contains("&quot;"));
    assert_xmlsec1_accepts(&k, &doc, &["/*/*[local-name()='Signature']"], true);
}

#[test]
fn xmlsec1_accepts_response_with_signed_assertion() {
    let k = TestKey::new("idp");
    let doc = c14n(&response("_r1", signed_assertion(&k)));
    assert_xmlsec1_accepts(&k, &doc, &[ASSERTION_SIG], false);
}

#[test]
fn xmlsec1_accepts_signed_response() {
    let k = TestKey::new("idp");
    let doc = c14n(&signed_response(&k, assertion("_a1")));
    assert_xmlsec1_accepts(&k, &doc, &[RESPONSE_SIG], true);
}

/// Both signed: xmlsec1 verifies one Signature per run (the first in document order unless
/// `--node-xpath` picks another), so each is checked in its own run. Our verifier rightly
/// refuses this document as an *inbound* message (two signatures) — it is outbound only.
#[test]
fn xmlsec1_accepts_both_signatures() {
    let k = TestKey::new("idp");
    let doc = c14n(&signed_response(&k, signed_assertion(&k)));
    assert_xmlsec1_accepts(&k, &doc, &[RESPONSE_SIG, ASSERTION_SIG], false);
    // And the default (no xpath) run checks the Response's, which comes first.
    let (ok, out) = xmlsec1_verify(&k.cert_pem(), &k.write("d.xml", &doc), None);
    assert!(ok, "{out}");
}

/// xmlsec1 must not accept our signature under a certificate it was not made with.
#[test]
fn xmlsec1_rejects_untrusted_signer() {
    let k = TestKey::new("idp");
    let other = TestKey::new("other");
    let doc = c14n(&signed_assertion(&k));
    let (ok, out) = xmlsec1_verify(&other.cert_pem(), &k.write("d.xml", &doc), None);
    assert!(!ok, "{out}");
}

/// Lasso (mod_auth_mellon) style: default-namespace Signature, InclusiveNamespaces on both
/// the Reference transform and SignedInfo's CanonicalizationMethod, including `#default` and
/// prefixes declared on the root but never used (so ignoring the PrefixList breaks the digest).
const LASSO_TEMPLATE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r
<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
xmlns=\"urn:example:unused-default\" ID=\"_lasso1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" \
Destination=\"https://idp.example/sso\" AssertionConsumerServiceURL=\"https://sp.example/acs?x=1&amp;y=&quot;2&quot;\" \
ProviderName=\"Jos\u{e9} &lt;SP&gt;&#9;&#xD;\">\r
  <saml:Issuer>https://sp.example/metadata</saml:Issuer>\r
  <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\r
    <SignedInfo>\r
      <CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">\
<ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"samlp xs\"/>\
</CanonicalizationMethod>\r
      <SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\r
      <Reference URI=\"#_lasso1\">\r
        <Transforms>\r
          <Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\r
          <Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">\
<InclusiveNamespaces xmlns=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"xs #default\"/>\
</Transform>\r
        </Transforms>\r
        <DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\r
        <DigestValue/>\r
      </Reference>\r
    </SignedInfo>\r
    <SignatureValue/>\r
    <KeyInfo><X509Data/></KeyInfo>\r
  </Signature>\r
  <samlp:Extensions><saml:Attribute Name=\"a\"><!-- dropped by both sides -->x &amp; y<![CDATA[ <z> ]]></saml:Attribute></samlp:Extensions>\r
  <samlp:NameIDPolicy Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" AllowCreate=\"true\"/>\r
</samlp:AuthnRequest>\r
";

/// NetScaler style: `ds:` prefix, RSA-SHA1 and SHA-1 digest, no InclusiveNamespaces.
const NETSCALER_TEMPLATE: &str = r##"<?xml version="1.0"?>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_ns1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" AssertionConsumerServiceURL="https://sp.example/cgi/samlauth"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">netscaler</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/><ds:Reference URI="#_ns1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate></ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>
"##;

/// A `ds:`-prefixed, exc-c14n, RSA-SHA256 LogoutRequest (the common modern shape).
const DS_TEMPLATE: &str = r##"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lo1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">
  <saml:Issuer>https://sp.example/</saml:Issuer>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#_lo1">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
  </ds:Signature>
  <saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">b&#xE9;b&#xD;</saml:NameID>
  <samlp:SessionIndex>_s1</samlp:SessionIndex>
</samlp:LogoutRequest>"##;

fn foreign(template: &str, node: &str, alg: SigAlg, digest: DigestAlg) -> tessera::xml::Element {
    let k = TestKey::new("sp");
    let other = TestKey::new("other");
    let signed = xmlsec1_sign(&k, template, node);
    let root = parse(&signed, &Limits::default()).unwrap();
    let trusted = [other.cert.clone(), k.cert.clone()];
    let v = verify_root(&root, &trusted).unwrap_or_else(|e| panic!("{e}\n{signed}"));
    assert_eq!((v.alg, v.digest, v.cert_index), (alg, digest, 1));
    root
}

#[test]
fn verifies_lasso_style_request_signed_by_xmlsec1() {
    let node = "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest";
    let root = foreign(LASSO_TEMPLATE, node, SigAlg::RsaSha256, DigestAlg::Sha256);
    assert_eq!(
        root.attr("AssertionConsumerServiceURL"),
        Some("https://sp.example/acs?x=1&y=\"2\"")
    );
    assert_eq!(root.attr("ProviderName"), Some("José <SP>\t\r"));
}

#[test]
fn verifies_netscaler_style_sha1_request_signed_by_xmlsec1() {
    let node = "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest";
    foreign(NETSCALER_TEMPLATE, node, SigAlg::RsaSha1, DigestAlg::Sha1);
}

#[test]
fn verifies_ds_prefixed_logout_request_signed_by_xmlsec1() {
    let node = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest";
    let root = foreign(DS_TEMPLATE, node, SigAlg::RsaSha256, DigestAlg::Sha256);
    let name_id = root.child(NS_SAML, "NameID").unwrap();
    assert_eq!(name_id.text(), "béb\r");
}

/// Our verifier accepts our own output, including an Assertion signed before being wrapped.
#[test]
fn verifies_own_output() {
    let k = TestKey::new("idp");
    for doc in [
        c14n(&signed_assertion(&k)),
        c14n(&signed_response(&k, assertion("_a1"))),
    ] {
        let root = parse(&doc, &Limits::default()).unwrap();
        verify_root(&root, std::slice::from_ref(&k.cert)).unwrap();
    }
    // The inner Assertion's signature stays valid once the Assertion sits in a Response:
    // re-parse it on its own and verify.
    let doc = c14n(&response("_r2", signed_assertion(&k)));
    let root = parse(&doc, &Limits::default()).unwrap();
    let inner = root.child(NS_SAML, "Assertion").unwrap().clone();
    verify_root(&inner, std::slice::from_ref(&k.cert)).unwrap();
}
