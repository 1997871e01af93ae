//! XML Signature (enveloped, RSA, exclusive c14n): outbound emitter + signer, inbound verifier.
//!
//! Only the small, fixed profile SAML needs is implemented — on purpose. Every algorithm URI
//! we emit or accept is listed here; anything else is refused by the verifier before any
//! digest is computed (see `verify`).

mod canon;
pub mod emit;
pub mod sign;
pub mod verify;

/// XMLDSig namespace (XMLDSig §4).
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Exclusive XML Canonicalization 1.0 without comments (xml-exc-c14n §5.1).
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// Exclusive XML Canonicalization 1.0 with comments (xml-exc-c14n §5.1).
pub const EXC_C14N_WITH_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
/// Enveloped signature transform (XMLDSig §6.6.4).
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// RSA PKCS#1 v1.5 with SHA-256 (RFC 4051 §2.3.2 / RFC 6931).
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// RSA PKCS#1 v1.5 with SHA-1 (XMLDSig §6.4.2); accepted inbound only.
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
/// SHA-256 digest (XMLEnc §5.7.2).
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// SHA-1 digest (XMLDSig §6.2.1); accepted inbound only.
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
