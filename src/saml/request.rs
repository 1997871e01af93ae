//! Inbound SAML requests: decode (Redirect or POST binding), verify signatures, validate,
//! and accept or refuse them in one call (`accept`).

use std::sync::Arc;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use time::OffsetDateTime;

use crate::store::{Store, StoreError};
use crate::xml::{self, Element, Limits};
use crate::xmldsig::verify::verify_root;

use super::logout::{LogoutRequest, read_logout_request};
use super::vocab::{Acs, pick_acs};
use super::{BINDING_POST, NS_SAML, NS_SAMLP, STATUS_REQUESTER, STATUS_RESPONDER, parse_saml_time};

/// Encoded SAMLRequest larger than this is refused before decoding.
const MAX_ENCODED: usize = 128 * 1024;
/// SAML bindings §3.4.4.1: DEFLATE; capped so a deflate bomb cannot exhaust memory.
const MAX_INFLATED: usize = 256 * 1024;
/// AuthnContextClassRef values accepted in one RequestedAuthnContext, and their length.
const MAX_CONTEXT_CLASSES: usize = 16;
const MAX_CONTEXT_CLASS_BYTES: usize = 512;
/// NameIDPolicy Format and SPNameQualifier are URIs kept in the sign-in's flow: bounded.
const MAX_POLICY_VALUE_BYTES: usize = 1024;

const SIG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SIG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

/// Why a request was refused. `Display` is the log detail; `user_message` is for the page.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("no SAMLRequest parameter")]
    Missing,
    #[error("SAMLRequest too large ({0} bytes)")]
    TooLarge(usize),
    #[error("SAMLRequest is not valid base64")]
    BadBase64,
    #[error("SAMLRequest does not inflate: {0}")]
    BadDeflate(String),
    #[error("SAMLRequest inflates beyond {MAX_INFLATED} bytes")]
    InflateBomb,
    #[error("SAMLRequest is not acceptable XML: {0}")]
    Xml(String),
    #[error("SAMLRequest is not a SAML 2.0 AuthnRequest: {0}")]
    Malformed(String),
    #[error("unknown service provider {0:?}")]
    UnknownSp(String),
    #[error("AssertionConsumerService {0:?} is not registered for this service provider")]
    UnregisteredAcs(String),
    #[error("the service provider asked for an unsupported response binding {0:?}")]
    UnsupportedBinding(String),
    #[error("request Destination {0:?} is not this IdP")]
    WrongDestination(String),
    #[error("request issued at {0} is outside the accepted window")]
    Stale(String),
    #[error("request ID {0:?} was already used")]
    Replayed(String),
    #[error("request must be signed but is not")]
    SignatureRequired,
    #[error("request signature invalid: {0}")]
    BadSignature(String),
    #[error("RelayState is {0} bytes, over the limit")]
    RelayStateTooLong(usize),
}

impl RequestError {
    pub fn user_message(&self) -> &'static str {
        match self {
            RequestError::UnknownSp(_) => {
                "The application that sent you here is not registered with this sign-in service."
            }
            RequestError::UnregisteredAcs(_) => {
                "The application asked to send your sign-in to an address that is not registered."
            }
            // SAML core §3.2.1: the request names another IdP endpoint (a misconfigured SP,
            // or a request captured elsewhere and replayed here).
            RequestError::WrongDestination(_) => {
                "This sign-in request was addressed to a different sign-in service. Go back to the application and start again; if it happens again, tell your help desk."
            }
            RequestError::Stale(_) | RequestError::Replayed(_) => {
                "This sign-in request has expired or was already used. Go back to the application and start again."
            }
            RequestError::SignatureRequired | RequestError::BadSignature(_) => {
                "The sign-in request could not be verified as coming from the application."
            }
            RequestError::RelayStateTooLong(_) => {
                "The application sent a sign-in request that is too long."
            }
            _ => "The sign-in request from the application is not valid.",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Comparison {
    Exact,
    Minimum,
    Maximum,
    Better,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestedContext {
    pub comparison: Comparison,
    pub classes: Vec<String>,
}

/// The fields of an AuthnRequest we act on (SAML core §3.4.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthnRequest {
    pub id: String,
    pub issuer: String,
    pub issue_instant: String,
    pub destination: Option<String>,
    pub acs_url: Option<String>,
    pub acs_index: Option<u16>,
    pub protocol_binding: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
    /// SAML core §3.4.1.1: `None` when the request has no NameIDPolicy element.
    pub name_id_policy: Option<NameIdPolicy>,
    pub requested_context: Option<RequestedContext>,
}

/// What an SP asks of the NameID (SAML core §3.4.1.1). Carried in the sign-in's flow until
/// the assertion is built; the registry decides what it is given (`rp::name_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameIdPolicy {
    /// The NameID format URI asked for; `None` when the attribute is absent.
    pub format: Option<String>,
    /// The namespace the identifier is to be in (an SP or an affiliation of SPs).
    pub sp_name_qualifier: Option<String>,
    /// Whether the IdP may create a new identifier for the user; "false" when absent.
    pub allow_create: bool,
}

/// The request as it arrived: raw parameters kept for signature checks.
#[derive(Debug, Default)]
pub struct Incoming {
    pub saml_request: String,
    pub relay_state: Option<String>,
    /// Redirect binding only: the raw (still percent-encoded) query parameters.
    pub raw_redirect: Option<RawRedirect>,
}

#[derive(Debug, Default)]
pub struct RawRedirect {
    /// The SAMLRequest value, or the SAMLResponse value when `response` is set.
    pub saml_request: String,
    /// The query carried a SAMLResponse (a LogoutResponse coming back to us) rather than
    /// a SAMLRequest: the signed octets start with that parameter's name.
    pub response: bool,
    pub relay_state: Option<String>,
    pub sig_alg: Option<String>,
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Redirect,
    Post,
}

/// What the inbound checks need to know about the SP that sent a request. The registry's
/// relying party implements it; `accept` hands the same value back, so the caller keeps all
/// else it knows about the SP (its SLO endpoint, its policies) without this module naming it.
pub trait SpView {
    fn entity_id(&self) -> &str;
    /// The certificates registered for the SP's request signatures (the only keys trusted:
    /// a KeyInfo in the request is never used).
    fn certs(&self) -> &[X509];
    /// Its HTTP-POST AssertionConsumerService endpoints, default first.
    fn acs(&self) -> &[Acs];
    /// Whether an unsigned request from it is refused.
    fn wants_signed_requests(&self) -> bool;
}

impl<T: SpView + ?Sized> SpView for Arc<T> {
    fn entity_id(&self) -> &str {
        (**self).entity_id()
    }
    fn certs(&self) -> &[X509] {
        (**self).certs()
    }
    fn acs(&self) -> &[Acs] {
        (**self).acs()
    }
    fn wants_signed_requests(&self) -> bool {
        (**self).wants_signed_requests()
    }
}

/// Splits a raw query string without re-encoding anything: SAML bindings §3.4.4.1 says the
/// signature covers the parameters exactly as they were URL-encoded by the sender.
pub fn parse_redirect_query(raw: &str) -> Result<Incoming, RequestError> {
    let mut r = RawRedirect::default();
    let mut both = false;
    for pair in raw.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "SAMLRequest" => {
                both |= r.response;
                &mut r.saml_request
            }
            "SAMLResponse" => {
                both |= !r.saml_request.is_empty() && !r.response;
                r.response = true;
                &mut r.saml_request
            }
            "RelayState" => r.relay_state.get_or_insert_default(),
            "SigAlg" => r.sig_alg.get_or_insert_default(),
            "Signature" => r.signature.get_or_insert_default(),
            _ => continue,
        };
        *slot = v.to_owned();
    }
    if r.saml_request.is_empty() {
        return Err(RequestError::Missing);
    }
    if both {
        return Err(RequestError::Malformed(
            "both SAMLRequest and SAMLResponse in one query".into(),
        ));
    }
    if r.saml_request.len() > MAX_ENCODED {
        return Err(RequestError::TooLarge(r.saml_request.len()));
    }
    Ok(Incoming {
        saml_request: form_decode(&r.saml_request),
        relay_state: r.relay_state.as_deref().map(form_decode),
        raw_redirect: Some(r),
    })
}

fn form_decode(v: &str) -> String {
    let plus_as_space = v.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

fn b64(text: &str) -> Result<Vec<u8>, RequestError> {
    if text.len() > MAX_ENCODED {
        return Err(RequestError::TooLarge(text.len()));
    }
    // Some SPs wrap base64 at 64/76 columns.
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| RequestError::BadBase64)
}

fn inflate(deflated: &[u8]) -> Result<String, RequestError> {
    // One call into the output buffer, which is also the window: no stream state and
    // 32 KiB buffer allocated (and zeroed) per request, as a streaming decoder would.
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, MAX_INFLATED).map_err(
        |e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => RequestError::InflateBomb,
            status => RequestError::BadDeflate(format!("{status:?}")),
        },
    )?;
    String::from_utf8(out).map_err(|_| RequestError::Xml("not UTF-8".into()))
}

/// Decodes the message to its XML tree.
pub(crate) fn decode(incoming: &Incoming, binding: Binding) -> Result<Element, RequestError> {
    let bytes = b64(&incoming.saml_request)?;
    let text = match binding {
        Binding::Redirect => inflate(&bytes)?,
        Binding::Post => {
            String::from_utf8(bytes).map_err(|_| RequestError::Xml("not UTF-8".into()))?
        }
    };
    xml::parse(&text, &Limits::default()).map_err(|e| RequestError::Xml(e.to_string()))
}

/// The header every SAML request carries (SAML core §3.2.1): ID, IssueInstant, Issuer.
pub(crate) struct Header {
    pub id: String,
    pub issuer: String,
    pub issue_instant: String,
}

/// Checks the root is `samlp:<local>` version 2.0 and reads its header.
pub(crate) fn read_header(root: &Element, local: &str) -> Result<Header, RequestError> {
    let bad = |s: &str| RequestError::Malformed(s.to_owned());
    if !root.is(NS_SAMLP, local) {
        return Err(bad(&format!("root element is not samlp:{local}")));
    }
    if root.attr("Version") != Some("2.0") {
        return Err(bad("Version is not 2.0"));
    }
    let id = root
        .attr("ID")
        .filter(|id| valid_id(id))
        .ok_or_else(|| bad("ID missing or not an xs:ID"))?
        .to_owned();
    let issuer = root
        .child(NS_SAML, "Issuer")
        .map(|i| i.text().trim().to_owned())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("Issuer missing"))?;
    let issue_instant = root
        .attr("IssueInstant")
        .ok_or_else(|| bad("IssueInstant missing"))?
        .to_owned();
    Ok(Header {
        id,
        issuer,
        issue_instant,
    })
}

/// Reads the AuthnRequest fields from the (already decoded) root element.
fn read_authn_request(root: &Element) -> Result<AuthnRequest, RequestError> {
    let bad = |s: &str| RequestError::Malformed(s.to_owned());
    let Header {
        id,
        issuer,
        issue_instant,
    } = read_header(root, "AuthnRequest")?;
    let boolean = |name| matches!(root.attr(name).map(str::trim), Some("true") | Some("1"));
    let acs_index = match root.attr("AssertionConsumerServiceIndex") {
        Some(i) => Some(
            i.trim()
                .parse::<u16>()
                .map_err(|_| bad("AssertionConsumerServiceIndex not a number"))?,
        ),
        None => None,
    };
    let requested_context = root
        .child(NS_SAMLP, "RequestedAuthnContext")
        .map(|rc| {
            let comparison = match rc.attr("Comparison").unwrap_or("exact") {
                "exact" => Comparison::Exact,
                "minimum" => Comparison::Minimum,
                "maximum" => Comparison::Maximum,
                "better" => Comparison::Better,
                _ => return Err(bad("unknown RequestedAuthnContext Comparison")),
            };
            let classes: Vec<String> = rc
                .children_named(NS_SAML, "AuthnContextClassRef")
                .map(|c| c.text().trim().to_owned())
                .collect();
            // The classes are kept in the sign-in's flow: a request must not be able to
            // park a quarter megabyte there. Real SPs ask for one or two.
            if classes.len() > MAX_CONTEXT_CLASSES
                || classes.iter().any(|c| c.len() > MAX_CONTEXT_CLASS_BYTES)
            {
                return Err(bad(
                    "RequestedAuthnContext lists too many or too long classes",
                ));
            }
            Ok(RequestedContext {
                comparison,
                classes,
            })
        })
        .transpose()?;
    Ok(AuthnRequest {
        id,
        issuer,
        issue_instant,
        destination: root.attr("Destination").map(str::to_owned),
        acs_url: root.attr("AssertionConsumerServiceURL").map(str::to_owned),
        acs_index,
        protocol_binding: root.attr("ProtocolBinding").map(str::to_owned),
        force_authn: boolean("ForceAuthn"),
        is_passive: boolean("IsPassive"),
        name_id_policy: read_name_id_policy(root)?,
        requested_context,
    })
}

/// SAML core §3.4.1.1: at most one NameIDPolicy; AllowCreate an xs:boolean ("true",
/// "false", "1", "0", whitespace collapsed); the URIs bounded.
fn read_name_id_policy(root: &Element) -> Result<Option<NameIdPolicy>, RequestError> {
    let bad = |s: &str| RequestError::Malformed(s.to_owned());
    let mut policies = root.children_named(NS_SAMLP, "NameIDPolicy");
    let Some(p) = policies.next() else {
        return Ok(None);
    };
    if policies.next().is_some() {
        return Err(bad("more than one NameIDPolicy"));
    }
    let uri = |name: &str| -> Result<Option<String>, RequestError> {
        match p.attr(name).map(str::trim) {
            None => Ok(None),
            Some(v) if v.is_empty() || v.len() > MAX_POLICY_VALUE_BYTES => Err(bad(&format!(
                "NameIDPolicy {name} is empty or longer than {MAX_POLICY_VALUE_BYTES} bytes"
            ))),
            Some(v) if v.chars().any(char::is_control) => Err(bad(&format!(
                "NameIDPolicy {name} holds control characters"
            ))),
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let allow_create = match p.attr("AllowCreate").map(str::trim) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(bad("NameIDPolicy AllowCreate is not an xs:boolean")),
    };
    Ok(Some(NameIdPolicy {
        format: uri("Format")?,
        sp_name_qualifier: uri("SPNameQualifier")?,
        allow_create,
    }))
}

pub(crate) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && id.len() <= 256
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The signature the binding carries (query signature or enveloped ds:Signature), checked
/// against `certs` only; `Ok(false)` when the message carries none. Requests and the
/// LogoutResponses that come back to us (`saml::logout`) share it.
pub(crate) fn binding_signature(
    incoming: &Incoming,
    root: &Element,
    binding: Binding,
    certs: &[X509],
) -> Result<bool, RequestError> {
    Ok(match binding {
        Binding::Redirect => {
            let raw = incoming
                .raw_redirect
                .as_ref()
                .ok_or(RequestError::Missing)?;
            match (&raw.sig_alg, &raw.signature) {
                (Some(alg), Some(sig)) => {
                    verify_redirect(raw, alg, sig, certs)?;
                    true
                }
                (None, None) => false,
                _ => {
                    return Err(RequestError::BadSignature(
                        "SigAlg without Signature or the reverse".into(),
                    ));
                }
            }
        }
        Binding::Post => {
            let has_signature = root.elements().any(|e| e.is(super::NS_DS, "Signature"));
            if has_signature {
                if certs.is_empty() {
                    return Err(RequestError::BadSignature(
                        "signed, but no SP certificate is registered to check it".into(),
                    ));
                }
                verify_root(root, certs).map_err(|e| RequestError::BadSignature(e.to_string()))?;
                true
            } else {
                false
            }
        }
    })
}

/// Checks the signature the binding carries against the RP's registered certificates only.
/// Returns whether the request was signed (and verified).
fn check_signature(
    incoming: &Incoming,
    root: &Element,
    binding: Binding,
    sp: &impl SpView,
) -> Result<bool, RequestError> {
    let signed = binding_signature(incoming, root, binding, sp.certs())?;
    if sp.wants_signed_requests() && !signed {
        return Err(RequestError::SignatureRequired);
    }
    Ok(signed)
}

/// SAML bindings §3.4.4.1: the signed octets are `SAMLRequest=…&RelayState=…&SigAlg=…` with
/// each value exactly as it appeared (URL-encoded) in the received query.
fn verify_redirect(
    raw: &RawRedirect,
    alg: &str,
    signature: &str,
    certs: &[X509],
) -> Result<(), RequestError> {
    let digest = match form_decode(alg).as_str() {
        SIG_RSA_SHA256 => MessageDigest::sha256(),
        SIG_RSA_SHA1 => MessageDigest::sha1(),
        other => {
            return Err(RequestError::BadSignature(format!(
                "unsupported SigAlg {other}"
            )));
        }
    };
    let param = if raw.response {
        "SAMLResponse"
    } else {
        "SAMLRequest"
    };
    let mut signed = format!("{param}={}", raw.saml_request);
    if let Some(rs) = &raw.relay_state {
        signed.push_str("&RelayState=");
        signed.push_str(rs);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(alg);
    let sig = b64(&form_decode(signature))
        .map_err(|_| RequestError::BadSignature("Signature is not base64".into()))?;
    if certs.is_empty() {
        return Err(RequestError::BadSignature(
            "signed, but no SP certificate is registered to check it".into(),
        ));
    }
    for cert in certs {
        let Ok(key) = cert.public_key() else { continue };
        let ok = Verifier::new(digest, &key)
            .and_then(|mut v| {
                v.update(signed.as_bytes())?;
                v.verify(&sig)
            })
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
    }
    Err(RequestError::BadSignature(
        "no registered certificate verifies the query signature".into(),
    ))
}

/// What the rest of the checks need from configuration.
pub struct Window {
    pub now: OffsetDateTime,
    pub max_age: time::Duration,
    pub skew: time::Duration,
    pub sso_urls: Vec<String>,
    pub relay_state_max: usize,
}

/// RelayState size, Destination and IssueInstant freshness: the checks every inbound
/// request shares (SAML core §3.2.1, bindings §3.4.3).
pub(super) fn check_envelope(
    relay_state: Option<&str>,
    destination: Option<&str>,
    issue_instant: &str,
    w: &Window,
) -> Result<(), RequestError> {
    if let Some(rs) = relay_state
        && rs.len() > w.relay_state_max
    {
        return Err(RequestError::RelayStateTooLong(rs.len()));
    }
    if let Some(d) = destination
        && !w.sso_urls.iter().any(|u| u == d)
    {
        return Err(RequestError::WrongDestination(d.to_owned()));
    }
    let issued = parse_saml_time(issue_instant)
        .ok_or_else(|| RequestError::Malformed("IssueInstant is not an xs:dateTime".into()))?;
    if issued > w.now + w.skew || issued < w.now - w.max_age - w.skew {
        return Err(RequestError::Stale(issue_instant.to_owned()));
    }
    Ok(())
}

/// Destination, freshness, ACS, binding and RelayState checks (SAML core §3.2.1, §3.4.1).
/// Returns the ACS endpoint the response must go to.
fn validate(
    req: &AuthnRequest,
    relay_state: Option<&str>,
    acs: &[Acs],
    w: &Window,
) -> Result<Acs, RequestError> {
    check_envelope(
        relay_state,
        req.destination.as_deref(),
        &req.issue_instant,
        w,
    )?;
    if let Some(b) = &req.protocol_binding
        && b != BINDING_POST
    {
        return Err(RequestError::UnsupportedBinding(b.clone()));
    }
    pick_acs(acs, req.acs_url.as_deref(), req.acs_index)
        .cloned()
        .ok_or_else(|| {
            RequestError::UnregisteredAcs(
                req.acs_url
                    .clone()
                    .unwrap_or_else(|| format!("index {}", req.acs_index.unwrap_or_default())),
            )
        })
}

/// What an accepted request asks for.
#[derive(Debug)]
pub enum Message {
    /// Web SSO (SAML core §3.4): authenticate and answer at `acs`, the registered endpoint
    /// the request chose (SAML core §3.4.1).
    AuthnRequest { request: AuthnRequest, acs: Acs },
    /// Single logout (SAML core §3.7): end the session named by the request.
    LogoutRequest(LogoutRequest),
}

impl Message {
    /// The replay-cache namespace of this kind of request.
    fn replay_kind(&self) -> &'static str {
        match self {
            Message::AuthnRequest { .. } => "authnreq",
            Message::LogoutRequest(_) => "logoutreq",
        }
    }

    fn id(&self) -> &str {
        match self {
            Message::AuthnRequest { request, .. } => &request.id,
            Message::LogoutRequest(r) => &r.id,
        }
    }
}

/// A request that passed every check, with the SP that sent it.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The SP as the lookup returned it.
    pub sp: S,
    pub message: Message,
    /// Bindings §3.4.3 / §3.5.3: returned untouched with the answer.
    pub relay_state: Option<String>,
    /// Whether the request carried a signature (and it verified).
    pub signed: bool,
}

/// Why a request was refused, by the check that failed (in the order they run).
#[derive(Debug)]
pub enum Refusal {
    /// The binding's encoding or the XML is unacceptable (bindings §3.4.4.1, §3.5.4).
    Undecodable(RequestError),
    /// Not a SAML 2.0 AuthnRequest or LogoutRequest of the expected shape (core §3.2.1).
    Malformed(RequestError),
    /// The Issuer names no enabled SP.
    UnknownSp(RequestError),
    /// A required signature is missing, or the signature does not verify against the SP's
    /// registered certificates.
    Signature { sp: String, error: RequestError },
    /// RelayState, Destination, freshness, response binding or ACS out of bounds.
    Invalid { sp: String, error: RequestError },
    /// The request ID was already used within its window.
    Replayed { sp: String, error: RequestError },
    /// The replay cache could not be consulted; nothing is known to be wrong with the request.
    Store(StoreError),
}

impl Refusal {
    /// What is wrong with the request (for the log and the page), or the store failure that
    /// kept it from being checked.
    pub fn cause(&self) -> Result<&RequestError, &StoreError> {
        match self {
            Refusal::Undecodable(e) | Refusal::Malformed(e) | Refusal::UnknownSp(e) => Ok(e),
            Refusal::Signature { error, .. }
            | Refusal::Invalid { error, .. }
            | Refusal::Replayed { error, .. } => Ok(error),
            Refusal::Store(e) => Err(e),
        }
    }

    /// The request error, or the store failure, by value (for a caller that answers with it).
    pub fn into_cause(self) -> Result<RequestError, StoreError> {
        match self {
            Refusal::Undecodable(e) | Refusal::Malformed(e) | Refusal::UnknownSp(e) => Ok(e),
            Refusal::Signature { error, .. }
            | Refusal::Invalid { error, .. }
            | Refusal::Replayed { error, .. } => Ok(error),
            Refusal::Store(e) => Err(e),
        }
    }

    /// The sender's entity ID once it is known (from the SP lookup onwards).
    pub fn sp(&self) -> Option<&str> {
        match self {
            Refusal::Signature { sp, .. }
            | Refusal::Invalid { sp, .. }
            | Refusal::Replayed { sp, .. } => Some(sp),
            Refusal::Undecodable(_)
            | Refusal::Malformed(_)
            | Refusal::UnknownSp(_)
            | Refusal::Store(_) => None,
        }
    }

    /// The top-level SAML status an answer would carry (SAML core §3.2.2.2): the
    /// requester's fault, or ours when the store failed.
    pub fn status(&self) -> &'static str {
        match self {
            Refusal::Store(_) => STATUS_RESPONDER,
            _ => STATUS_REQUESTER,
        }
    }

    /// Whether the refusal may be answered to the SP as a SAML status, rather than only
    /// explained on a page. Never today: before every check has passed, the ACS a request
    /// names may be an attacker's, and an answer must not carry anything there. Listed per
    /// variant so a new kind of refusal has to decide.
    pub fn may_answer_sp(&self) -> bool {
        match self {
            Refusal::Undecodable(_)
            | Refusal::Malformed(_)
            | Refusal::UnknownSp(_)
            | Refusal::Signature { .. }
            | Refusal::Invalid { .. }
            | Refusal::Replayed { .. }
            | Refusal::Store(_) => false,
        }
    }
}

/// Accepts an inbound SAML request in one call: decode the binding, read the message
/// (AuthnRequest or LogoutRequest), find the sending SP by its Issuer (`lookup`), check the
/// signature against that SP's certificates only, check RelayState, Destination, freshness
/// and (for an AuthnRequest) the response binding and ACS (SAML core §3.2.1, §3.4.1), and
/// finally record the request ID in the replay cache (`store`), so a request is accepted
/// once. The checks run in this order, and the first to fail is the refusal.
///
/// The shape is meant to serve the other inbound messages too: a LogoutRequest already
/// comes through here (`Message::LogoutRequest`). WS-Federation sign-in will be another
/// input (wtrealm, wreply, wctx instead of `Incoming`) read into a further `Message` variant;
/// its wtrealm is the lookup key, its wreply is checked against the SP's endpoints like an
/// ACS URL, wctx plays RelayState, and it shares the same `Window`, replay cache and
/// `Refusal`.
pub async fn accept<S: SpView>(
    incoming: Incoming,
    binding: Binding,
    lookup: impl FnOnce(&str) -> Option<S>,
    store: &dyn Store,
    w: &Window,
) -> Result<Accepted<S>, Refusal> {
    let root = decode(&incoming, binding).map_err(Refusal::Undecodable)?;
    let relay_state = incoming.relay_state.as_deref();
    let (sp, signed, message) = if root.is(NS_SAMLP, "LogoutRequest") {
        let req = read_logout_request(&root).map_err(Refusal::Malformed)?;
        let sp = find(lookup, &req.issuer)?;
        let signed = signature(&incoming, &root, binding, &sp)?;
        // SAML profiles §4.4.4.1: the requester must authenticate its LogoutRequest. An SP
        // with a registered certificate can sign, so an unsigned one is refused even when
        // its AuthnRequests may go unsigned: a forged logout would end a user's sessions.
        if !signed && !sp.certs().is_empty() {
            return Err(Refusal::Signature {
                sp: sp.entity_id().to_owned(),
                error: RequestError::SignatureRequired,
            });
        }
        check_envelope(
            relay_state,
            req.destination.as_deref(),
            &req.issue_instant,
            w,
        )
        .map_err(invalid(&sp))?;
        (sp, signed, Message::LogoutRequest(req))
    } else {
        let req = read_authn_request(&root).map_err(Refusal::Malformed)?;
        let sp = find(lookup, &req.issuer)?;
        let signed = signature(&incoming, &root, binding, &sp)?;
        let acs = validate(&req, relay_state, sp.acs(), w).map_err(invalid(&sp))?;
        (sp, signed, Message::AuthnRequest { request: req, acs })
    };
    first_use(
        store,
        message.replay_kind(),
        sp.entity_id(),
        message.id(),
        w,
    )
    .await?;
    Ok(Accepted {
        sp,
        message,
        relay_state: incoming.relay_state,
        signed,
    })
}

/// The signature check of `check_signature`, refused in the SP's name.
fn signature<S: SpView>(
    incoming: &Incoming,
    root: &Element,
    binding: Binding,
    sp: &S,
) -> Result<bool, Refusal> {
    check_signature(incoming, root, binding, sp).map_err(|error| Refusal::Signature {
        sp: sp.entity_id().to_owned(),
        error,
    })
}

/// A failed envelope or content check, refused in the SP's name.
fn invalid<S: SpView>(sp: &S) -> impl FnOnce(RequestError) -> Refusal + '_ {
    move |error| Refusal::Invalid {
        sp: sp.entity_id().to_owned(),
        error,
    }
}

/// The enabled SP the request's Issuer names.
fn find<S>(lookup: impl FnOnce(&str) -> Option<S>, issuer: &str) -> Result<S, Refusal> {
    lookup(issuer).ok_or_else(|| Refusal::UnknownSp(RequestError::UnknownSp(issuer.to_owned())))
}

/// Replay cache: a request ID is accepted once per SP within its validity window (the
/// accepted age plus the clock skew either side).
async fn first_use(
    store: &dyn Store,
    kind: &str,
    sp: &str,
    id: &str,
    w: &Window,
) -> Result<(), Refusal> {
    let ttl = (w.max_age + w.skew * 2_i32).unsigned_abs();
    match store
        .put_if_absent(&format!("{kind}:{sp}:{id}"), b"1", Some(ttl))
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Refusal::Replayed {
            sp: sp.to_owned(),
            error: RequestError::Replayed(id.to_owned()),
        }),
        Err(e) => Err(Refusal::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate_b64(xml: &str) -> String {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(xml.as_bytes()).expect("write");
        base64::engine::general_purpose::STANDARD.encode(e.finish().expect("finish"))
    }

    const REQ: &str = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_abc" Version="2.0" IssueInstant="2026-11-23T10:00:00Z" AssertionConsumerServiceURL="https://gw/cgi/samlauth" ForceAuthn="true"><saml:Issuer>https://gw</saml:Issuer><samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>"#;

    #[test]
    fn redirect_request_decodes_and_reads() {
        let q = format!(
            "SAMLRequest={}&RelayState=a%2Bb+c",
            percent_encoding::utf8_percent_encode(
                &deflate_b64(REQ),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let inc = parse_redirect_query(&q).expect("query");
        assert_eq!(inc.relay_state.as_deref(), Some("a+b c"));
        let root = decode(&inc, Binding::Redirect).expect("decode");
        let r = read_authn_request(&root).expect("read");
        assert_eq!(r.id, "_abc");
        assert_eq!(r.issuer, "https://gw");
        assert!(r.force_authn);
        assert_eq!(
            r.requested_context.expect("rac").comparison,
            Comparison::Exact
        );
    }

    #[test]
    fn a_request_cannot_park_a_flood_of_context_classes_in_the_flow() {
        let class = "<saml:AuthnContextClassRef>urn:x</saml:AuthnContextClassRef>";
        let many = REQ.replace(
            "<saml:AuthnContextClassRef>",
            &format!(
                "{}<saml:AuthnContextClassRef>",
                class.repeat(MAX_CONTEXT_CLASSES)
            ),
        );
        let long = REQ.replace(
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            &"u".repeat(MAX_CONTEXT_CLASS_BYTES + 1),
        );
        for xml in [many, long] {
            let root = xml::parse(&xml, &Limits::default()).expect("parse");
            assert!(
                matches!(read_authn_request(&root), Err(RequestError::Malformed(_))),
                "refused"
            );
        }
        let root = xml::parse(REQ, &Limits::default()).expect("parse");
        assert!(read_authn_request(&root).is_ok());
    }

    #[test]
    fn name_id_policy_is_read_bounded_and_refused_when_hostile() {
        let with = |policy: &str| {
            let xml = REQ.replace(
                "<samlp:RequestedAuthnContext",
                &format!("{policy}<samlp:RequestedAuthnContext"),
            );
            read_authn_request(&xml::parse(&xml, &Limits::default()).expect("xml"))
        };
        let r = with(r#"<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" SPNameQualifier="https://gw" AllowCreate=" 1 "/>"#)
            .expect("read");
        assert_eq!(
            r.name_id_policy,
            Some(NameIdPolicy {
                format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
                sp_name_qualifier: Some("https://gw".into()),
                allow_create: true,
            })
        );
        // SAML core §3.4.1.1: AllowCreate defaults to false; no element, no policy.
        let r = with(r#"<samlp:NameIDPolicy AllowCreate="false"/>"#).expect("read");
        assert_eq!(r.name_id_policy, Some(NameIdPolicy::default()));
        assert_eq!(with("").expect("read").name_id_policy, None);
        let huge = format!(r#"<samlp:NameIDPolicy Format="urn:{}"/>"#, "x".repeat(2000));
        for hostile in [
            r#"<samlp:NameIDPolicy AllowCreate="yes"/>"#,
            r#"<samlp:NameIDPolicy AllowCreate="TRUE"/>"#,
            r#"<samlp:NameIDPolicy/><samlp:NameIDPolicy/>"#,
            r#"<samlp:NameIDPolicy Format=""/>"#,
            r#"<samlp:NameIDPolicy SPNameQualifier="a&#10;b"/>"#,
            huge.as_str(),
        ] {
            assert!(
                matches!(with(hostile), Err(RequestError::Malformed(_))),
                "{hostile} accepted"
            );
        }
    }

    #[test]
    fn a_wrong_destination_is_not_called_an_unregistered_address() {
        let wrong = RequestError::WrongDestination("https://other.example/sso".into());
        let acs = RequestError::UnregisteredAcs("https://evil.example/acs".into());
        assert_ne!(wrong.user_message(), acs.user_message());
        assert!(wrong.user_message().contains("different sign-in service"));
    }

    #[test]
    fn hostile_encodings_are_refused() {
        assert_eq!(
            parse_redirect_query("RelayState=x").err(),
            Some(RequestError::Missing)
        );
        let inc = Incoming {
            saml_request: "***not base64***".into(),
            ..Default::default()
        };
        assert_eq!(
            decode(&inc, Binding::Post).err(),
            Some(RequestError::BadBase64)
        );
        let inc = Incoming {
            saml_request: base64::engine::general_purpose::STANDARD.encode(b"not deflate at all"),
            ..Default::default()
        };
        assert!(matches!(
            decode(&inc, Binding::Redirect),
            Err(RequestError::BadDeflate(_))
        ));
        // A deflate bomb: 50 MB of zeros compresses to ~50 KB.
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 50 * 1024 * 1024]).expect("write");
        let bomb = base64::engine::general_purpose::STANDARD.encode(e.finish().expect("finish"));
        let inc = Incoming {
            saml_request: bomb,
            ..Default::default()
        };
        assert_eq!(
            decode(&inc, Binding::Redirect).err(),
            Some(RequestError::InflateBomb)
        );
        // The limit itself: exactly MAX_INFLATED bytes inflate (and then fail as XML), one
        // more is a bomb; a stream cut short is refused as deflate.
        let deflated = |n: usize| {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&vec![b' '; n]).expect("write");
            e.finish().expect("finish")
        };
        let inc = |bytes: &[u8]| Incoming {
            saml_request: base64::engine::general_purpose::STANDARD.encode(bytes),
            ..Default::default()
        };
        assert!(matches!(
            decode(&inc(&deflated(MAX_INFLATED)), Binding::Redirect),
            Err(RequestError::Xml(_))
        ));
        assert_eq!(
            decode(&inc(&deflated(MAX_INFLATED + 1)), Binding::Redirect).err(),
            Some(RequestError::InflateBomb)
        );
        let whole = deflated(4000);
        assert!(matches!(
            decode(&inc(&whole[..whole.len() / 2]), Binding::Redirect),
            Err(RequestError::BadDeflate(_))
        ));
        // One message per query: a request and a response together are neither.
        for q in [
            "SAMLRequest=a&SAMLResponse=b",
            "SAMLResponse=b&SAMLRequest=a",
        ] {
            assert!(matches!(
                parse_redirect_query(q),
                Err(RequestError::Malformed(_))
            ));
        }
        let r = parse_redirect_query("SAMLResponse=b&SigAlg=x").expect("response");
        assert!(r.raw_redirect.expect("raw").response);
        let huge = "A".repeat(MAX_ENCODED + 10);
        assert!(matches!(
            parse_redirect_query(&format!("SAMLRequest={huge}")),
            Err(RequestError::TooLarge(_))
        ));
        let inc = Incoming {
            saml_request: deflate_b64(
                "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>",
            ),
            ..Default::default()
        };
        assert!(matches!(
            decode(&inc, Binding::Redirect),
            Err(RequestError::Xml(_))
        ));
    }

    #[test]
    fn request_shape_is_checked() {
        let parse = |s: &str| read_authn_request(&xml::parse(s, &Limits::default()).expect("xml"));
        assert!(parse(&REQ.replace("Version=\"2.0\"", "Version=\"1.1\"")).is_err());
        assert!(parse(&REQ.replace("ID=\"_abc\"", "ID=\"1bad\"")).is_err());
        assert!(parse(&REQ.replace("<saml:Issuer>https://gw</saml:Issuer>", "")).is_err());
        assert!(
            parse("<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>")
                .is_err()
        );
    }

    /// An SP as `accept` sees it, without a registry.
    #[derive(Debug)]
    struct TestSp {
        acs: Vec<Acs>,
        signed: bool,
    }

    impl SpView for TestSp {
        fn entity_id(&self) -> &str {
            "https://gw"
        }
        fn certs(&self) -> &[X509] {
            &[]
        }
        fn acs(&self) -> &[Acs] {
            &self.acs
        }
        fn wants_signed_requests(&self) -> bool {
            self.signed
        }
    }

    fn gw(signed: bool) -> Option<TestSp> {
        Some(TestSp {
            acs: vec![Acs {
                url: "https://gw/cgi/samlauth".into(),
                index: Some(0),
            }],
            signed,
        })
    }

    fn window() -> Window {
        Window {
            now: parse_saml_time("2026-11-23T10:01:00Z").expect("now"),
            max_age: time::Duration::minutes(5),
            skew: time::Duration::minutes(1),
            sso_urls: vec!["https://idp/adfs/ls/".into()],
            relay_state_max: 80,
        }
    }

    fn posted(xml: &str, relay_state: Option<&str>) -> Incoming {
        Incoming {
            saml_request: base64::engine::general_purpose::STANDARD.encode(xml),
            relay_state: relay_state.map(str::to_owned),
            raw_redirect: None,
        }
    }

    #[tokio::test]
    async fn accept_runs_every_check_and_names_the_one_that_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::embedded::EmbeddedStore::open(
            &dir.path().join("s.redb"),
            std::sync::Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let w = window();
        let run = |xml: &str, rs: Option<&str>, sp: Option<TestSp>| {
            accept(
                posted(xml, rs),
                Binding::Post,
                move |id: &str| sp.filter(|_| id == "https://gw"),
                &store,
                &w,
            )
        };

        let a = run(REQ, Some("rs"), gw(false)).await.expect("accepted");
        assert_eq!(a.relay_state.as_deref(), Some("rs"));
        assert!(!a.signed);
        match a.message {
            Message::AuthnRequest { request, acs } => {
                assert_eq!(request.id, "_abc");
                assert_eq!(acs.url, "https://gw/cgi/samlauth");
            }
            Message::LogoutRequest(_) => panic!("an AuthnRequest"),
        }

        let r = run(REQ, None, gw(false)).await.expect_err("replay");
        assert!(matches!(&r, Refusal::Replayed { sp, .. } if sp == "https://gw"));
        assert_eq!(r.cause().ok(), Some(&RequestError::Replayed("_abc".into())));
        assert!(!r.may_answer_sp());

        let fresh = |id: &str| REQ.replace("ID=\"_abc\"", &format!("ID=\"{id}\""));
        let r = run(&fresh("_b"), None, None).await.expect_err("unknown");
        assert!(matches!(r, Refusal::UnknownSp(RequestError::UnknownSp(_))));
        assert_eq!(r.sp(), None);
        let r = run(&fresh("_c"), None, gw(true))
            .await
            .expect_err("unsigned");
        assert!(matches!(
            r,
            Refusal::Signature {
                error: RequestError::SignatureRequired,
                ..
            }
        ));
        let other_acs = fresh("_d").replace("https://gw/cgi/samlauth", "https://evil/acs");
        let r = run(&other_acs, None, gw(false)).await.expect_err("acs");
        assert!(matches!(
            r,
            Refusal::Invalid {
                error: RequestError::UnregisteredAcs(_),
                ..
            }
        ));
        let r = run(&fresh("_e"), Some(&"x".repeat(81)), gw(false))
            .await
            .expect_err("rs");
        assert!(matches!(
            r,
            Refusal::Invalid {
                error: RequestError::RelayStateTooLong(81),
                ..
            }
        ));
        let r = run("<x/>", None, gw(false)).await.expect_err("shape");
        assert!(matches!(r, Refusal::Malformed(_)));
        assert_eq!(r.status(), crate::saml::STATUS_REQUESTER);
        let r = accept(
            Incoming {
                saml_request: "%%%".into(),
                ..Default::default()
            },
            Binding::Post,
            |_: &str| gw(false),
            &store,
            &w,
        )
        .await
        .expect_err("base64");
        assert!(matches!(r, Refusal::Undecodable(RequestError::BadBase64)));

        // A LogoutRequest with the same ID is a different message: its own replay namespace.
        let logout = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_abc" Version="2.0" IssueInstant="2026-11-23T10:00:00Z"><saml:Issuer>https://gw</saml:Issuer><saml:NameID>ann</saml:NameID></samlp:LogoutRequest>"#;
        let a = run(logout, None, gw(false)).await.expect("logout accepted");
        assert!(matches!(a.message, Message::LogoutRequest(ref l) if l.name_id == "ann"));
        let stale = logout
            .replace("2026-11-23T10:00:00Z", "2026-11-23T09:00:00Z")
            .replace("_abc", "_f");
        let r = run(&stale, None, gw(false)).await.expect_err("stale");
        assert!(matches!(
            r,
            Refusal::Invalid {
                error: RequestError::Stale(_),
                ..
            }
        ));
    }
}
