//! Guarded verification of an enveloped signature over the root element of an inbound message.
//!
//! Two phases, in this order:
//! 1. a strict structural pre-check that accepts only the one shape SAML needs — exactly one
//!    `ds:Signature`, a direct child of the root, with exactly one Reference to the root's ID,
//!    that ID unique in the document, enveloped + exc-c14n transforms, RSA-SHA256/SHA-1 —
//!    and refuses everything else before a single byte is digested. This is what defeats
//!    signature wrapping (the signature provably covers the element the caller reads) and
//!    why there is nothing to fetch (no external URIs) or execute (no XSLT/XPath).
//! 2. our own exclusive canonicalisation of the parsed tree, digest compare (constant time)
//!    and RSA verification against the caller's trusted certificates only. `ds:KeyInfo` in
//!    the message is ignored: a certificate supplied by the sender proves nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::{MessageDigest, hash};
use openssl::sign::Verifier;
use openssl::x509::X509;

use super::canon::{PrefixList, exc_c14n, parse_prefix_list};
use super::{
    DSIG_NS, ENVELOPED, EXC_C14N, EXC_C14N_WITH_COMMENTS, RSA_SHA1, RSA_SHA256, SHA1, SHA256,
};
use crate::xml::Element;

/// Signature algorithm that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    RsaSha256,
    /// Accepted because some SPs (NetScaler) still send it; callers should log it.
    RsaSha1,
}

/// Digest algorithm of the Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    Sha256,
    Sha1,
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub alg: SigAlg,
    pub digest: DigestAlg,
    /// Index into `trusted` of the certificate whose key verified the signature.
    pub cert_index: usize,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no ds:Signature in the document")]
    NoSignature,
    #[error("more than one ds:Signature in the document")]
    MultipleSignatures,
    #[error("ds:Signature is not a direct child of the root element")]
    SignatureNotOnRoot,
    #[error("the Reference does not point at the root element's ID")]
    ReferenceMismatch,
    #[error("the referenced ID occurs more than once")]
    DuplicateId,
    #[error("forbidden transform {0}")]
    ForbiddenTransform(String),
    #[error("external or empty Reference URI {0:?}")]
    ExternalReference(String),
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("digest mismatch: signed content was altered")]
    DigestMismatch,
    #[error("signature does not verify with any trusted certificate")]
    BadSignature,
    #[error("malformed signature: {0}")]
    Malformed(String),
}

/// Everything phase 2 needs, extracted and validated by phase 1.
struct Plan<'a> {
    signature: &'a Element,
    signed_info: &'a Element,
    signed_info_prefixes: PrefixList,
    reference_prefixes: PrefixList,
    alg: SigAlg,
    digest: DigestAlg,
    digest_value: Vec<u8>,
    signature_value: Vec<u8>,
}

/// Whether signatures other than the root's own may appear deeper in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    /// Exactly one ds:Signature in the whole document (every inbound request we accept).
    Refuse,
    /// The root's own signature plus signatures that are direct children of descendant
    /// elements — the shape of a signed Response enclosing a signed Assertion (SAML core
    /// §5.2). The inner ones are not verified here: they are signed content of the outer
    /// signature, which covers the root and so everything a caller reads.
    AllowInner,
}

/// Verify the enveloped signature on `root` against `trusted` certificates; the document
/// must hold no other signature.
pub fn verify_root(root: &Element, trusted: &[X509]) -> Result<Verified, VerifyError> {
    verify_root_with(root, trusted, Nested::Refuse)
}

/// Verify the enveloped signature on `root`, with `nested` deciding whether descendants may
/// carry signatures of their own.
pub fn verify_root_with(
    root: &Element,
    trusted: &[X509],
    nested: Nested,
) -> Result<Verified, VerifyError> {
    let plan = precheck(root, nested)?;

    // Reference: enveloped-signature removes our Signature element (XMLDSig §6.6.4), then
    // exc-c14n (xml-exc-c14n §3). A "#id" reference drops comments (XMLDSig §4.4.3.3); ours
    // are gone already, so the WithComments variant gives the same octets.
    let content = exc_c14n(root, root, Some(plan.signature), &plan.reference_prefixes)
        .ok_or_else(|| malformed("root not canonicalisable"))?;
    let md = match plan.digest {
        DigestAlg::Sha256 => MessageDigest::sha256(),
        DigestAlg::Sha1 => MessageDigest::sha1(),
    };
    let digest = hash(md, content.as_bytes()).map_err(|_| VerifyError::DigestMismatch)?;
    // Constant-time comparison; the length is public (fixed by the algorithm).
    if digest.len() != plan.digest_value.len() || !openssl::memcmp::eq(&digest, &plan.digest_value)
    {
        return Err(VerifyError::DigestMismatch);
    }

    // SignedInfo is canonicalised as its own apex with the document's in-scope namespaces
    // (XMLDSig §4.3.1). With the WithComments CanonicalizationMethod a comment inside
    // SignedInfo would be signed; we dropped it, so such a signature fails — closed, never
    // open, since we only ever accept bytes the trusted key signed.
    let signed_info = exc_c14n(root, plan.signed_info, None, &plan.signed_info_prefixes)
        .ok_or_else(|| malformed("SignedInfo not canonicalisable"))?;
    let md = match plan.alg {
        SigAlg::RsaSha256 => MessageDigest::sha256(),
        SigAlg::RsaSha1 => MessageDigest::sha1(),
    };
    for (cert_index, cert) in trusted.iter().enumerate() {
        let Ok(key) = cert.public_key() else { continue };
        if key.rsa().is_err() {
            continue;
        }
        let ok = Verifier::new(md, &key)
            .and_then(|mut v| v.verify_oneshot(&plan.signature_value, signed_info.as_bytes()))
            .unwrap_or(false);
        if ok {
            return Ok(Verified {
                alg: plan.alg,
                digest: plan.digest,
                cert_index,
            });
        }
    }
    Err(VerifyError::BadSignature)
}

fn malformed(why: &str) -> VerifyError {
    VerifyError::Malformed(why.to_owned())
}

/// Phase 1: the structural pre-check. Pure inspection of the tree; computes nothing.
fn precheck(root: &Element, nested: Nested) -> Result<Plan<'_>, VerifyError> {
    let all = root.descendants();
    let signature = match nested {
        Nested::Refuse => {
            let mut signatures = all.iter().filter(|e| e.is(DSIG_NS, "Signature"));
            let signature = *signatures.next().ok_or(VerifyError::NoSignature)?;
            if signatures.next().is_some() {
                return Err(VerifyError::MultipleSignatures);
            }
            if !root.elements().any(|c| std::ptr::eq(c, signature)) {
                return Err(VerifyError::SignatureNotOnRoot);
            }
            signature
        }
        Nested::AllowInner => root_signature_among_inner(root, &all)?,
    };

    // XMLDSig §4.1: SignedInfo, SignatureValue, KeyInfo?, Object*. We also refuse Object:
    // nothing of ours references it, and unreferenced signed-looking content invites confusion.
    let parts = ds_children(signature, &["SignedInfo", "SignatureValue", "KeyInfo"])?;
    let [Some(signed_info), Some(signature_value), _] = parts[..] else {
        return Err(malformed("Signature needs SignedInfo then SignatureValue"));
    };

    // XMLDSig §4.3: CanonicalizationMethod, SignatureMethod, Reference+ — and we allow
    // exactly one Reference, so nothing but the root can be "covered".
    let parts: Vec<&Element> = signed_info.elements().collect();
    let [c14n_method, sig_method, references @ ..] = &parts[..] else {
        return Err(malformed(
            "SignedInfo needs CanonicalizationMethod, SignatureMethod",
        ));
    };
    if !c14n_method.is(DSIG_NS, "CanonicalizationMethod")
        || !sig_method.is(DSIG_NS, "SignatureMethod")
    {
        return Err(malformed(
            "SignedInfo needs CanonicalizationMethod, SignatureMethod",
        ));
    }
    if let Some(other) = references.iter().find(|r| !r.is(DSIG_NS, "Reference")) {
        return Err(VerifyError::Malformed(format!(
            "unexpected {} in SignedInfo",
            other.name
        )));
    }
    let [reference] = references else {
        return Err(VerifyError::ReferenceMismatch);
    };

    let signed_info_prefixes = exc_c14n_params(c14n_method, VerifyError::UnsupportedAlgorithm)?;
    no_children(sig_method)?;
    let alg = match algorithm_of(sig_method)? {
        RSA_SHA256 => SigAlg::RsaSha256,
        RSA_SHA1 => SigAlg::RsaSha1,
        other => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    };

    // XMLDSig §4.4.3: only a same-document bare-name reference to the root's own ID.
    let id = match reference.attr("URI") {
        None => return Err(VerifyError::ExternalReference("(no URI)".into())),
        Some(uri) => match uri.strip_prefix('#') {
            Some(id) if !id.is_empty() => id,
            _ => return Err(VerifyError::ExternalReference(uri.to_owned())),
        },
    };
    if root.attr("ID") != Some(id) {
        return Err(VerifyError::ReferenceMismatch);
    }

    // XMLDSig §4.4: Transforms?, DigestMethod, DigestValue.
    let parts = ds_children(reference, &["Transforms", "DigestMethod", "DigestValue"])?;
    let [transforms, Some(digest_method), Some(digest_value)] = parts[..] else {
        return Err(malformed("Reference needs DigestMethod and DigestValue"));
    };
    let reference_prefixes = check_transforms(transforms)?;
    no_children(digest_method)?;
    let digest = match algorithm_of(digest_method)? {
        SHA256 => DigestAlg::Sha256,
        SHA1 => DigestAlg::Sha1,
        other => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    };

    // Signature wrapping defence: the ID must name exactly one element, the root. Any
    // attribute spelled ID/Id/id counts, so no ID-attribute convention can smuggle a twin.
    let twins = all
        .iter()
        .flat_map(|e| e.attributes.iter())
        .filter(|a| a.name.eq_ignore_ascii_case("id") && a.value == id)
        .count();
    if twins != 1 {
        return Err(VerifyError::DuplicateId);
    }

    Ok(Plan {
        signature,
        signed_info,
        signed_info_prefixes,
        reference_prefixes,
        alg,
        digest,
        digest_value: base64_value(digest_value)?,
        signature_value: base64_value(signature_value)?,
    })
}

/// The one ds:Signature that is a direct child of `root`; every other ds:Signature must be a
/// direct child of some other element (never nested in a Signature, never the root itself).
fn root_signature_among_inner<'a>(
    root: &'a Element,
    all: &[&'a Element],
) -> Result<&'a Element, VerifyError> {
    if root.is(DSIG_NS, "Signature") {
        return Err(VerifyError::SignatureNotOnRoot);
    }
    let mut own = root.elements().filter(|c| c.is(DSIG_NS, "Signature"));
    let signature = own.next().ok_or(VerifyError::NoSignature)?;
    if own.next().is_some() {
        return Err(VerifyError::MultipleSignatures);
    }
    // An inner signature placed inside another signature (in KeyInfo or Object, say) is
    // not a shape SAML produces; refuse it rather than reason about it.
    let inside_signature = all
        .iter()
        .filter(|e| e.is(DSIG_NS, "Signature"))
        .flat_map(|s| s.descendants().into_iter().skip(1))
        .any(|d| d.is(DSIG_NS, "Signature"));
    if inside_signature {
        return Err(VerifyError::MultipleSignatures);
    }
    Ok(signature)
}

/// Match the element children of `el` against an ordered list of ds: names, each optional
/// and at most once, in that order; any other element child is refused.
fn ds_children<'a>(
    el: &'a Element,
    names: &[&str],
) -> Result<Vec<Option<&'a Element>>, VerifyError> {
    let mut out = vec![None; names.len()];
    let mut next = 0;
    for child in el.elements() {
        let pos = names[next..].iter().position(|n| child.is(DSIG_NS, n));
        let Some(p) = pos.map(|p| p + next) else {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} in {}",
                child.name, el.name
            )));
        };
        out[p] = Some(child);
        next = p + 1;
    }
    Ok(out)
}

fn no_children(el: &Element) -> Result<(), VerifyError> {
    match el.elements().next() {
        Some(c) => Err(VerifyError::Malformed(format!(
            "unexpected {} in {}",
            c.name, el.name
        ))),
        None => Ok(()),
    }
}

fn algorithm_of(el: &Element) -> Result<&str, VerifyError> {
    el.attr("Algorithm")
        .ok_or_else(|| VerifyError::Malformed(format!("{} without Algorithm", el.name)))
}

/// Accept an exc-c14n method (either variant) and return its InclusiveNamespaces PrefixList
/// (xml-exc-c14n §3); any other algorithm is reported through `refuse`.
fn exc_c14n_params(
    el: &Element,
    refuse: fn(String) -> VerifyError,
) -> Result<PrefixList, VerifyError> {
    let alg = algorithm_of(el)?;
    if alg != EXC_C14N && alg != EXC_C14N_WITH_COMMENTS {
        return Err(refuse(alg.to_owned()));
    }
    let mut prefixes = PrefixList::new();
    for (i, c) in el.elements().enumerate() {
        if i > 0 || !c.is(EXC_C14N, "InclusiveNamespaces") || c.elements().next().is_some() {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} in {}",
                c.name, el.name
            )));
        }
        prefixes = parse_prefix_list(c.attr("PrefixList").unwrap_or(""));
    }
    Ok(prefixes)
}

/// Transforms must be exactly enveloped-signature then exc-c14n (XMLDSig §6.6.4, §6.5.2).
/// Anything else — XSLT, XPath, Filter 2.0, Base64, inclusive C14N — is refused by name.
fn check_transforms(transforms: Option<&Element>) -> Result<PrefixList, VerifyError> {
    let list: Vec<&Element> = transforms
        .map(|t| t.elements().collect())
        .unwrap_or_default();
    for t in &list {
        if !t.is(DSIG_NS, "Transform") {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} in Transforms",
                t.name
            )));
        }
        let alg = algorithm_of(t)?;
        if ![ENVELOPED, EXC_C14N, EXC_C14N_WITH_COMMENTS].contains(&alg) {
            return Err(VerifyError::ForbiddenTransform(alg.to_owned()));
        }
    }
    match list[..] {
        [env, exc] if algorithm_of(env)? == ENVELOPED => {
            no_children(env)?;
            exc_c14n_params(exc, VerifyError::ForbiddenTransform)
        }
        // Without a trailing exc-c14n the node-set would be serialised with inclusive
        // Canonical XML 1.0 (XMLDSig §4.4.3.2), which we do not implement.
        _ => Err(VerifyError::UnsupportedAlgorithm(
            "transforms other than enveloped-signature followed by exc-c14n".into(),
        )),
    }
}

/// Decode a base64 element value, ignoring the whitespace XMLDSig allows inside it (§4.2).
fn base64_value(el: &Element) -> Result<Vec<u8>, VerifyError> {
    let text: String = el
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(text)
        .map_err(|e| VerifyError::Malformed(format!("{}: {e}", el.name)))
}
