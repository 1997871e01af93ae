//! Enveloped RSA-SHA256 signing of an `El` tree with a key loaded once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;

use super::emit::{El, c14n};
use super::{DSIG_NS, ENVELOPED, EXC_C14N, RSA_SHA256, SHA256};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key is not an RSA key")]
    NotRsa,
    #[error("certificate does not match the signing key")]
    CertificateMismatch,
    #[error("element to sign has no ID attribute")]
    MissingId,
    #[error("element to sign already carries a ds:Signature child")]
    AlreadySigned,
    #[error("signature position {position} is past the {children} children")]
    BadPosition { position: usize, children: usize },
    #[error("openssl: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// An RSA private key and its certificate, prepared once at start-up: parsing a PEM key per
/// signature costs more than the signature itself (reference/xml-signatures.md).
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
    cert_b64: String,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Check that `key` is RSA and that `cert` certifies it, then keep both.
    pub fn new(key: PKey<Private>, cert: &X509) -> Result<Self, SignError> {
        if key.rsa().is_err() {
            return Err(SignError::NotRsa);
        }
        // A mismatched pair would produce signatures no relying party can verify.
        if !cert.public_key()?.public_eq(&key) {
            return Err(SignError::CertificateMismatch);
        }
        Ok(SigningKey {
            key,
            cert_b64: STANDARD.encode(cert.to_der()?),
        })
    }

    /// The certificate as base64 DER, as it appears in `ds:X509Certificate` and metadata.
    pub fn certificate_base64(&self) -> &str {
        &self.cert_b64
    }

    /// An RSA-SHA256 signature over `octets` as they are: the detached signature of SAML's
    /// HTTP-Redirect binding (SAML bindings §3.4.4.1), which signs a query string, not XML.
    pub fn sign_rsa_sha256(&self, octets: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        Ok(signer.sign_oneshot_to_vec(octets)?)
    }
}

fn ds(local: &str) -> El {
    El::new("ds", local, DSIG_NS)
}

fn algorithm(local: &str, uri: &str) -> El {
    ds(local).attr("Algorithm", uri)
}

/// Sign `el` with an enveloped signature and insert `ds:Signature` as its child at
/// `position` (an index among its children; SAML wants it right after Issuer, i.e. 1 —
/// SAML core §5.4.1 and the schema's element order).
///
/// The digest is taken over `c14n(el)` *before* the Signature is inserted, which is what the
/// enveloped-signature transform followed by exc-c14n yields on the verifier's side
/// (XMLDSig §6.6.4). Because exclusive c14n does not inherit namespaces or `xml:` attributes
/// from ancestors (xml-exc-c14n §1.1), the digest stays valid when `el` is later placed inside
/// a parent — so an Assertion can be signed, inserted into a Response, and the Response
/// signed afterwards.
pub fn sign_enveloped(el: &mut El, key: &SigningKey, position: usize) -> Result<(), SignError> {
    sign_enveloped_by(el, key, position, "ID")
}

/// `sign_enveloped` for an element whose ID attribute has another name: SAML 1.1's
/// `AssertionID` (SAML 1.1 core §2.3.2), as a WS-Federation token carries it.
pub fn sign_enveloped_by(
    el: &mut El,
    key: &SigningKey,
    position: usize,
    id_attr: &str,
) -> Result<(), SignError> {
    let id = el
        .attr_value(id_attr)
        .ok_or(SignError::MissingId)?
        .to_owned();
    if el.elements().any(|c| c.is(DSIG_NS, "Signature")) {
        // A second enveloped signature on the same element would be refused by our own
        // verifier (exactly one Signature) and is never what SAML wants.
        return Err(SignError::AlreadySigned);
    }
    if position > el.child_count() {
        return Err(SignError::BadPosition {
            position,
            children: el.child_count(),
        });
    }

    let digest = hash(MessageDigest::sha256(), c14n(el).as_bytes())?;
    let reference = ds("Reference")
        .attr("URI", format!("#{id}"))
        .child(ds("Transforms").children([
            algorithm("Transform", ENVELOPED),
            algorithm("Transform", EXC_C14N),
        ]))
        .child(algorithm("DigestMethod", SHA256))
        .child(ds("DigestValue").text(STANDARD.encode(digest)));
    let signed_info = ds("SignedInfo")
        .child(algorithm("CanonicalizationMethod", EXC_C14N))
        .child(algorithm("SignatureMethod", RSA_SHA256))
        .child(reference);

    // XMLDSig §3.1.2: the signature is over the canonical form of SignedInfo, canonicalised
    // as its own apex — the same bytes a verifier gets from exc-c14n of this subtree.
    let mut signer = Signer::new(MessageDigest::sha256(), &key.key)?;
    let signature = signer.sign_oneshot_to_vec(c14n(&signed_info).as_bytes())?;

    let sig = ds("Signature")
        .child(signed_info)
        .child(ds("SignatureValue").text(STANDARD.encode(signature)))
        .child(
            ds("KeyInfo")
                .child(ds("X509Data").child(ds("X509Certificate").text(key.cert_b64.clone()))),
        );
    el.insert_child(position, sig);
    Ok(())
}

/// A throwaway RSA-2048 key and self-signed v3 certificate valid for 30 days, for unit tests
/// anywhere in the crate (xmlsec1 checks the validity dates).
#[cfg(test)]
pub(crate) fn test_key_and_cert() -> (PKey<Private>, X509) {
    use openssl::asn1::Asn1Time;
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "idp").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("later"))
        .expect("not after");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (key, b.build())
}

/// `test_key_and_cert` as the `SigningKey` the builders take.
#[cfg(test)]
pub(crate) fn test_signing_key() -> (SigningKey, X509) {
    let (key, cert) = test_key_and_cert();
    (SigningKey::new(key, &cert).expect("signing key"), cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Limits, parse};
    use crate::xmldsig::verify::verify_root;

    use super::test_key_and_cert as key_and_cert;

    #[test]
    fn refuses_bad_inputs() {
        let (key, cert) = key_and_cert();
        let (other_key, _) = key_and_cert();
        assert!(matches!(
            SigningKey::new(other_key, &cert),
            Err(SignError::CertificateMismatch)
        ));
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap();
        assert!(matches!(SigningKey::new(ec, &cert), Err(SignError::NotRsa)));

        let k = SigningKey::new(key, &cert).unwrap();
        assert!(format!("{k:?}").starts_with("SigningKey"));
        let mut no_id = El::new("", "r", "urn:r");
        assert!(matches!(
            sign_enveloped(&mut no_id, &k, 0),
            Err(SignError::MissingId)
        ));
        let mut el = El::new("", "r", "urn:r").attr("ID", "_1");
        assert!(matches!(
            sign_enveloped(&mut el, &k, 1),
            Err(SignError::BadPosition {
                position: 1,
                children: 0
            })
        ));
        sign_enveloped(&mut el, &k, 0).unwrap();
        assert!(matches!(
            sign_enveloped(&mut el, &k, 0),
            Err(SignError::AlreadySigned)
        ));
    }

    /// A default-namespace root with the `ds` prefix declared only on the Signature, placed
    /// last: our verifier accepts it and trusts the configured certificate, not KeyInfo.
    #[test]
    fn round_trips_through_verifier() {
        let (key, cert) = key_and_cert();
        let k = SigningKey::new(key, &cert).unwrap();
        let mut el = El::new("", "Root", "urn:r")
            .attr("ID", "_abc")
            .child(El::new("", "A", "urn:r").text("1 < 2 & \"x\"\r"));
        sign_enveloped(&mut el, &k, 1).unwrap();
        let doc = c14n(&el);
        assert!(doc.contains("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"));
        let root = parse(&doc, &Limits::default()).unwrap();
        verify_root(&root, std::slice::from_ref(&cert)).unwrap();
    }
}
