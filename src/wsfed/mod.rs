//! WS-Federation passive requestor profile (MS-WSFED): the request query in, the
//! RequestSecurityTokenResponse with a signed SAML 1.1 or 2.0 assertion out.
//!
//! Like `saml/`, this is protocol code: it names only `xml`, `xmldsig`, `saml`, `store` and
//! `clock` (tests/layering.rs), so the registry and the web layer reach it through plain
//! values (`saml::response::Recipient`-like inputs), never the other way round.

pub mod metadata;
pub mod request;
pub mod token;

/// The WS-Federation namespace (federation metadata, `fed:` elements; MS-WSFED §2.2).
pub const NS_FED: &str = "http://docs.oasis-open.org/wsfed/federation/200706";
/// WS-Trust February 2005, the version AD FS speaks on the passive endpoint.
pub const NS_TRUST: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
/// WS-Policy 2004/09, home of `wsp:AppliesTo`.
pub const NS_POLICY: &str = "http://schemas.xmlsoap.org/ws/2004/09/policy";
/// WS-Addressing 1.0: `wsa:EndpointReference` / `wsa:Address`.
pub const NS_ADDRESSING: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Security utility: `wsu:Created` / `wsu:Expires`.
pub const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// XML Schema instance, for `xsi:type` on metadata role descriptors.
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// SAML 1.x assertion namespace (SAML 1.1 core §2).
pub const NS_SAML1: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
