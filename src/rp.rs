//! The relying-party registry: which SPs we trust, where their assertions may go, and how.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::x509::X509;
use serde::{Deserialize, Serialize};

pub mod live;
pub mod name_id;

use crate::directory::UserInfo;
use crate::saml::metadata::{SpMetadata, SpProtocol, parse_sp_metadata};
use crate::saml::request::{Binding, SpView};
use crate::saml::response::{Attribute, NameIdValue, Recipient};
// The SAML vocabulary lives in saml/ (protocol code must not depend on the registry); it is
// re-exported here so the registry's callers keep one short path.
pub use crate::saml::vocab::{
    Acs, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED, check_endpoint_url,
};
pub use crate::wsfed::token::TokenType;

#[derive(Debug, thiserror::Error)]
pub enum RpError {
    #[error("{source_name}: {detail}")]
    Invalid { source_name: String, detail: String },
    #[error("entity ID {entity_id} is registered twice ({first} and {second})")]
    Duplicate {
        entity_id: String,
        first: String,
        second: String,
    },
}

/// Which parts of the Response carry a signature (NetScaler samlRejectUnsignedAssertion:
/// ON = assertion, STRICT = both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignChoice {
    #[default]
    Assertion,
    Response,
    Both,
}

impl SignChoice {
    pub fn assertion(self) -> bool {
        matches!(self, SignChoice::Assertion | SignChoice::Both)
    }
    pub fn response(self) -> bool {
        matches!(self, SignChoice::Response | SignChoice::Both)
    }
}

/// How RequestedAuthnContext is judged. NetScaler sends `exact` with classes we may satisfy
/// by a stronger method; AD FS then fails with MSIS7012 — `lenient` answers instead with the
/// requested class whenever what was done is at least as strong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthnContextMode {
    #[default]
    Strict,
    Lenient,
}

/// The protocol a relying party speaks: SAML 2.0 Web SSO, or the WS-Federation passive
/// requestor profile (MS-WSFED), whose realm is kept as the entity ID and whose registered
/// reply (`wreply`) URLs are kept as the ACS list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Saml,
    Wsfed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Netscaler,
}

/// Where a claim's values come from. Written in config as `upn`, `mail`, `username`,
/// `display_name`, `groups`, `attribute:<ldap name>`, `constant:<value>` or
/// `upn_rewrite:<from suffix>=<to suffix>` (the UPN with its suffix replaced, e.g. guests'
/// UPNs mapped to an internal domain for Citrix FAS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ClaimSource {
    Username,
    Upn,
    Mail,
    DisplayName,
    Groups,
    Attribute(String),
    Constant(String),
    UpnRewrite { from: String, to: String },
}

impl TryFrom<String> for ClaimSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "username" => ClaimSource::Username,
            "upn" => ClaimSource::Upn,
            "mail" => ClaimSource::Mail,
            "display_name" => ClaimSource::DisplayName,
            "groups" => ClaimSource::Groups,
            other => {
                if let Some(a) = other.strip_prefix("attribute:").filter(|a| !a.is_empty()) {
                    ClaimSource::Attribute(a.to_ascii_lowercase())
                } else if let Some(v) = other.strip_prefix("constant:") {
                    ClaimSource::Constant(v.to_owned())
                } else if let Some(rule) = other.strip_prefix("upn_rewrite:") {
                    let (from, to) = rule
                        .split_once('=')
                        .map(|(f, t)| {
                            (
                                f.trim().trim_start_matches('@'),
                                t.trim().trim_start_matches('@'),
                            )
                        })
                        .filter(|(f, t)| is_domain(f) && is_domain(t))
                        .ok_or_else(|| {
                            format!("`{other}`: write upn_rewrite:FROM.SUFFIX=TO.SUFFIX")
                        })?;
                    ClaimSource::UpnRewrite {
                        from: from.to_ascii_lowercase(),
                        to: to.to_ascii_lowercase(),
                    }
                } else {
                    return Err(format!(
                        "unknown claim source `{other}` (expected upn, mail, username, display_name, groups, attribute:NAME, constant:VALUE or upn_rewrite:FROM=TO)"
                    ));
                }
            }
        })
    }
}

impl From<ClaimSource> for String {
    fn from(c: ClaimSource) -> String {
        match c {
            ClaimSource::Username => "username".into(),
            ClaimSource::Upn => "upn".into(),
            ClaimSource::Mail => "mail".into(),
            ClaimSource::DisplayName => "display_name".into(),
            ClaimSource::Groups => "groups".into(),
            ClaimSource::Attribute(a) => format!("attribute:{a}"),
            ClaimSource::Constant(v) => format!("constant:{v}"),
            ClaimSource::UpnRewrite { from, to } => format!("upn_rewrite:{from}={to}"),
        }
    }
}

/// A DNS-style UPN suffix: labels of letters, digits and hyphens.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl ClaimSource {
    /// The values this source yields for a user; empty when the user lacks the attribute.
    pub fn values(&self, user: &UserInfo) -> Vec<String> {
        let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
        match self {
            ClaimSource::Username => vec![user.username.clone()],
            ClaimSource::Upn => one(&user.upn),
            ClaimSource::Mail => one(&user.mail),
            ClaimSource::DisplayName => one(&user.display_name),
            ClaimSource::Groups => user.groups.clone(),
            ClaimSource::Attribute(a) => user.attributes.get(a).cloned().unwrap_or_default(),
            ClaimSource::Constant(v) => vec![v.clone()],
            ClaimSource::UpnRewrite { from, to } => one(&user.upn)
                .into_iter()
                .map(|upn| match upn.rsplit_once('@') {
                    Some((local, suffix)) if suffix.eq_ignore_ascii_case(from) => {
                        format!("{local}@{to}")
                    }
                    _ => upn,
                })
                .collect(),
        }
    }
}

/// One attribute released to the RP: SAML attribute `name` filled from `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    pub name: String,
    pub source: ClaimSource,
}

const CLAIM_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
const CLAIM_MAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const CLAIM_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const CLAIM_GROUP: &str = "http://schemas.xmlsoap.org/claims/Group";

/// A relying party as configured: `[[relying_party]]` in the config file, or the `.toml`
/// beside a metadata file in `metadata/`. Unset options come from the preset, then defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpConfig {
    pub name: Option<String>,
    /// What the sign-in pages call the application ("Sign in to …"); unset: `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub metadata_file: Option<PathBuf>,
    pub entity_id: Option<String>,
    /// HTTP-POST assertion consumer service URLs; the first is the default.
    pub acs: Vec<String>,
    pub slo: Option<String>,
    /// PEM files of the SP's request-signing certificates.
    pub cert_files: Vec<PathBuf>,
    /// More SP certificates, inline PEM (set in the admin console).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cert_pems: Vec<String>,
    pub preset: Option<Preset>,
    /// `saml` or `wsfed`; unset: what the metadata describes (SAML without metadata).
    pub protocol: Option<Protocol>,
    /// WS-Federation only: the token in the RSTR, `saml11` (default, as AD FS) or `saml2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenType>,
    pub sign: Option<SignChoice>,
    pub name_id_source: Option<ClaimSource>,
    pub name_id_format: Option<String>,
    /// The NameID formats an AuthnRequest's NameIDPolicy may ask for (URIs or the short
    /// names `unspecified`, `emailAddress`, `persistent`, `transient`). Unset: all four.
    pub name_id_formats: Option<Vec<String>>,
    pub require_signed_requests: Option<bool>,
    pub authn_context: Option<AuthnContextMode>,
    pub attributes: Option<Vec<ClaimRule>>,
    pub enabled: Option<bool>,
    /// Does signing in to this RP need a second factor (when MFA is on)? Default yes.
    pub mfa_required: Option<bool>,
}

impl RpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.metadata_file.is_none() && self.entity_id.is_none() {
            return Err("needs metadata_file or entity_id".into());
        }
        if self.metadata_file.is_none() && self.acs.is_empty() {
            return Err("needs at least one acs URL (or metadata_file)".into());
        }
        for url in self.acs.iter().chain(self.slo.iter()) {
            check_endpoint_url(url)?;
        }
        Ok(())
    }
}

/// A relying party ready for use.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    pub name: String,
    /// What the sign-in pages call the application: the admin's display name, else `name`.
    pub display_name: String,
    pub entity_id: String,
    /// POST-binding ACS endpoints, default first.
    pub acs: Vec<Acs>,
    pub slo: Option<String>,
    /// How LogoutRequests and LogoutResponses reach `slo`: from the SP's metadata
    /// (HTTP-POST preferred), HTTP-POST for an endpoint set in the config.
    pub slo_binding: Binding,
    pub certs: Vec<X509>,
    pub sign: SignChoice,
    pub name_id_source: ClaimSource,
    pub name_id_format: String,
    /// The formats a NameIDPolicy may ask for, as URIs (`name_id::allowed_formats`); the
    /// configured `name_id_format` and `unspecified` are always among them.
    pub name_id_formats: Vec<String>,
    pub require_signed_requests: bool,
    pub authn_context: AuthnContextMode,
    pub attributes: Vec<ClaimRule>,
    pub preset: Option<Preset>,
    pub protocol: Protocol,
    /// The assertion a WS-Federation RP receives (unused for SAML).
    pub token: TokenType,
    pub enabled: bool,
    pub mfa_required: bool,
    /// Where this trust came from (file path or config), for messages.
    pub origin: String,
}

impl RelyingParty {
    /// SAML core §3.4.1: the ACS is chosen by URL (must be registered), else by index, else
    /// the default. `None` means the request named an endpoint we do not know.
    pub fn pick_acs(&self, url: Option<&str>, index: Option<u16>) -> Option<&Acs> {
        crate::saml::vocab::pick_acs(&self.acs, url, index)
    }

    /// What the SAML response builder needs to answer this RP for `user`: the NameID and the
    /// attributes resolved from the claim rules, and the signing choice.
    pub fn recipient(&self, user: &UserInfo) -> Recipient {
        let name_id = if self.name_id_format == NAMEID_TRANSIENT {
            NameIdValue::Transient
        } else if self.name_id_format == NAMEID_PERSISTENT {
            // Never the source attribute under the persistent label: the pairwise value
            // comes from the store (`name_id::resolve`).
            NameIdValue::Persistent
        } else {
            match self
                .name_id_source
                .values(user)
                .into_iter()
                .next()
                .filter(|v| !v.is_empty())
            {
                Some(v) => NameIdValue::Value(v),
                None => NameIdValue::Missing {
                    user: user.username.clone(),
                    source_name: String::from(self.name_id_source.clone()),
                },
            }
        };
        Recipient {
            entity_id: self.entity_id.clone(),
            sign_assertion: self.sign.assertion(),
            sign_response: self.sign.response(),
            name_id_format: self.name_id_format.clone(),
            name_id,
            name_id_qualifiers: None,
            attributes: self
                .attributes
                .iter()
                .map(|rule| Attribute {
                    name: rule.name.clone(),
                    values: rule.source.values(user),
                })
                .collect(),
        }
    }

    /// Build from config, filling unset options from the metadata, the preset and defaults.
    pub fn from_config(
        cfg: &RpConfig,
        metadata: Option<SpMetadata>,
        origin: &str,
        base_dir: &Path,
    ) -> Result<Self, String> {
        let preset = cfg.preset;
        let netscaler = preset == Some(Preset::Netscaler);
        let (mut entity_id, mut acs, mut slo, mut certs, mut signed_requests) =
            (None, Vec::new(), None, Vec::new(), false);
        let mut protocol = Protocol::Saml;
        let mut slo_binding = Binding::Post;
        if let Some(md) = metadata {
            if md.protocol == SpProtocol::Wsfed {
                protocol = Protocol::Wsfed;
            }
            entity_id = Some(md.entity_id);
            acs = md.acs;
            slo = md.slo;
            slo_binding = md.slo_binding;
            certs = md.certs;
            signed_requests = md.authn_requests_signed;
        }
        if let Some(e) = &cfg.entity_id {
            entity_id = Some(e.clone());
        }
        if !cfg.acs.is_empty() {
            acs = cfg
                .acs
                .iter()
                .enumerate()
                .map(|(i, url)| Acs {
                    url: url.clone(),
                    index: u16::try_from(i).ok(),
                })
                .collect();
        }
        if cfg.slo.is_some() {
            slo = cfg.slo.clone();
            slo_binding = Binding::Post;
        }
        for f in &cfg.cert_files {
            let path = base_dir.join(f);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read cert file {}: {e}", path.display()))?;
            certs.push(
                X509::from_pem(&pem)
                    .map_err(|_| format!("{} is not a PEM certificate", path.display()))?,
            );
        }
        for (i, pem) in cfg.cert_pems.iter().enumerate() {
            certs.push(
                X509::from_pem(pem.as_bytes())
                    .map_err(|_| format!("SP certificate {} is not a PEM certificate", i + 1))?,
            );
        }
        let entity_id = entity_id.ok_or("no entity ID")?;
        if acs.is_empty() {
            return Err(format!(
                "{entity_id}: no HTTP-POST AssertionConsumerService"
            ));
        }
        for a in &acs {
            check_endpoint_url(&a.url)?;
        }
        let require_signed_requests = cfg.require_signed_requests.unwrap_or(signed_requests);
        if require_signed_requests && certs.is_empty() {
            return Err(format!(
                "{entity_id}: signed requests are required but no SP certificate is known"
            ));
        }
        let attributes = cfg.attributes.clone().unwrap_or_else(|| {
            if netscaler {
                netscaler_claims()
            } else {
                default_claims()
            }
        });
        let name_id_format = cfg
            .name_id_format
            .clone()
            .unwrap_or_else(|| NAMEID_UNSPECIFIED.to_owned());
        let name_id_formats =
            name_id::allowed_formats(&name_id_format, cfg.name_id_formats.as_deref())
                .map_err(|e| format!("{entity_id}: {e}"))?;
        let name = cfg.name.clone().unwrap_or_else(|| entity_id.clone());
        Ok(Self {
            display_name: cfg.display_name.clone().unwrap_or_else(|| name.clone()),
            name,
            sign: cfg.sign.unwrap_or(if netscaler {
                SignChoice::Both
            } else {
                SignChoice::Assertion
            }),
            name_id_source: cfg.name_id_source.clone().unwrap_or(ClaimSource::Upn),
            name_id_format,
            name_id_formats,
            require_signed_requests,
            authn_context: cfg.authn_context.unwrap_or(if netscaler {
                AuthnContextMode::Lenient
            } else {
                AuthnContextMode::Strict
            }),
            attributes,
            preset,
            protocol: cfg.protocol.unwrap_or(protocol),
            token: cfg.token.unwrap_or_default(),
            enabled: cfg.enabled.unwrap_or(true),
            mfa_required: cfg.mfa_required.unwrap_or(true),
            origin: origin.to_owned(),
            entity_id,
            acs,
            slo,
            slo_binding,
            certs,
        })
    }
}

/// What the inbound request checks need from a trust (`saml::request::accept`).
impl SpView for RelyingParty {
    fn entity_id(&self) -> &str {
        &self.entity_id
    }
    fn certs(&self) -> &[X509] {
        &self.certs
    }
    fn acs(&self) -> &[Acs] {
        &self.acs
    }
    fn wants_signed_requests(&self) -> bool {
        self.require_signed_requests
    }
}

/// What AD FS releases by default, by claim URI.
fn default_claims() -> Vec<ClaimRule> {
    [
        (CLAIM_UPN, ClaimSource::Upn),
        (CLAIM_MAIL, ClaimSource::Mail),
        (CLAIM_NAME, ClaimSource::DisplayName),
        (CLAIM_GROUP, ClaimSource::Groups),
    ]
    .into_iter()
    .map(|(n, s)| ClaimRule {
        name: n.to_owned(),
        source: s,
    })
    .collect()
}

/// NetScaler reads attributes by short name (samlUserField, groupNameField, Attribute1..16).
fn netscaler_claims() -> Vec<ClaimRule> {
    [
        ("upn", ClaimSource::Upn),
        ("mail", ClaimSource::Mail),
        ("groups", ClaimSource::Groups),
        ("displayName", ClaimSource::DisplayName),
    ]
    .into_iter()
    .map(|(n, s)| ClaimRule {
        name: n.to_owned(),
        source: s,
    })
    .collect()
}

/// All trusted relying parties, by entity ID.
#[derive(Debug, Default)]
pub struct Registry {
    by_entity: HashMap<String, Arc<RelyingParty>>,
}

impl Registry {
    /// Loads `metadata_dir/*.xml` (each with an optional `.toml` beside it) and the
    /// `[[relying_party]]` entries of the config. Any broken trust stops the start with a
    /// message naming the file, rather than silently dropping an SP.
    pub fn load(metadata_dir: &Path, configured: &[RpConfig]) -> Result<Self, RpError> {
        let mut reg = Registry::default();
        if metadata_dir.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(metadata_dir)
                .map_err(|e| RpError::Invalid {
                    source_name: metadata_dir.display().to_string(),
                    detail: e.to_string(),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect();
            files.sort();
            for xml in files {
                let origin = xml.display().to_string();
                let sidecar = xml.with_extension("toml");
                let cfg = if sidecar.is_file() {
                    let text = std::fs::read_to_string(&sidecar).map_err(|e| RpError::Invalid {
                        source_name: sidecar.display().to_string(),
                        detail: e.to_string(),
                    })?;
                    toml::from_str::<RpConfig>(&text).map_err(|e| RpError::Invalid {
                        source_name: sidecar.display().to_string(),
                        detail: e.to_string(),
                    })?
                } else {
                    RpConfig::default()
                };
                let rp = load_one(&cfg, Some(&xml), &origin, metadata_dir)?;
                reg.insert(rp)?;
            }
        }
        for (i, cfg) in configured.iter().enumerate() {
            let origin = format!("relying_party[{i}]");
            let base = Path::new(".");
            let rp = load_one(cfg, cfg.metadata_file.as_deref(), &origin, base)?;
            reg.insert(rp)?;
        }
        Ok(reg)
    }

    pub fn insert(&mut self, rp: RelyingParty) -> Result<(), RpError> {
        if let Some(existing) = self.by_entity.get(&rp.entity_id) {
            return Err(RpError::Duplicate {
                entity_id: rp.entity_id.clone(),
                first: existing.origin.clone(),
                second: rp.origin,
            });
        }
        self.by_entity.insert(rp.entity_id.clone(), Arc::new(rp));
        Ok(())
    }

    /// An enabled relying party by entity ID.
    pub fn get(&self, entity_id: &str) -> Option<Arc<RelyingParty>> {
        self.by_entity
            .get(entity_id)
            .filter(|rp| rp.enabled)
            .cloned()
    }

    /// These trusts plus `extra`; an extra one whose entity ID is already here is skipped
    /// (and logged): the file trust stays in force.
    pub fn merged(&self, extra: Vec<RelyingParty>) -> Registry {
        let mut reg = Registry {
            by_entity: self.by_entity.clone(),
        };
        for rp in extra {
            if let Err(e) = reg.insert(rp) {
                tracing::error!(error = %e, "relying party skipped");
            }
        }
        reg
    }

    /// Any relying party by entity ID, enabled or not.
    pub fn find(&self, entity_id: &str) -> Option<Arc<RelyingParty>> {
        self.by_entity.get(entity_id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<RelyingParty>> {
        let mut v: Vec<_> = self.by_entity.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

fn load_one(
    cfg: &RpConfig,
    metadata_file: Option<&Path>,
    origin: &str,
    base_dir: &Path,
) -> Result<RelyingParty, RpError> {
    let invalid = |detail: String| RpError::Invalid {
        source_name: origin.to_owned(),
        detail,
    };
    let metadata = match metadata_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            Some(parse_sp_metadata(&text).map_err(|e| invalid(e.to_string()))?)
        }
        None => None,
    };
    RelyingParty::from_config(cfg, metadata, origin, base_dir).map_err(invalid)
}

/// A file name for a new trust in `metadata/`, derived from its name or entity ID.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    let mut out = String::new();
    for part in s.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    if out.is_empty() { "rp".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(acs: &[&str]) -> RelyingParty {
        let cfg = RpConfig {
            entity_id: Some("https://gw.corp.example".into()),
            acs: acs.iter().map(|s| s.to_string()).collect(),
            preset: Some(Preset::Netscaler),
            ..Default::default()
        };
        RelyingParty::from_config(&cfg, None, "test", Path::new(".")).expect("rp")
    }

    #[test]
    fn netscaler_preset_signs_both_and_is_lenient() {
        let r = rp(&["https://gw.corp.example/cgi/samlauth"]);
        assert_eq!(r.sign, SignChoice::Both);
        assert_eq!(r.authn_context, AuthnContextMode::Lenient);
        assert_eq!(r.name_id_source, ClaimSource::Upn);
        assert!(r.attributes.iter().any(|a| a.name == "groups"));
    }

    #[test]
    fn the_recipient_carries_resolved_name_id_and_attributes() {
        let r = rp(&["https://gw.corp.example/cgi/samlauth"]);
        let ann = UserInfo {
            username: "ann".into(),
            upn: Some("ann@corp.example".into()),
            ..Default::default()
        };
        let sp = r.recipient(&ann);
        assert_eq!(sp.entity_id, "https://gw.corp.example");
        assert!(sp.sign_assertion && sp.sign_response);
        assert_eq!(sp.name_id, NameIdValue::Value("ann@corp.example".into()));
        assert!(
            sp.attributes
                .iter()
                .any(|a| a.name == "upn" && a.values == ["ann@corp.example"])
        );
        let no_upn = UserInfo {
            username: "bob".into(),
            ..Default::default()
        };
        assert_eq!(
            r.recipient(&no_upn).name_id,
            NameIdValue::Missing {
                user: "bob".into(),
                source_name: "upn".into()
            }
        );
        let transient = RelyingParty {
            name_id_format: NAMEID_TRANSIENT.into(),
            ..r
        };
        assert_eq!(transient.recipient(&no_upn).name_id, NameIdValue::Transient);
        // A persistent default never puts the UPN under the persistent label: the pairwise
        // value is resolved from the store (`name_id`), and the builder refuses an unresolved one.
        let persistent = RelyingParty {
            name_id_format: NAMEID_PERSISTENT.into(),
            ..transient
        };
        assert_eq!(persistent.recipient(&ann).name_id, NameIdValue::Persistent);
    }

    #[test]
    fn acs_must_be_registered() {
        let r = rp(&[
            "https://gw.corp.example/cgi/samlauth",
            "https://gw2.corp.example/cgi/samlauth",
        ]);
        assert_eq!(
            r.pick_acs(None, None).map(|a| a.url.as_str()),
            Some("https://gw.corp.example/cgi/samlauth")
        );
        assert!(
            r.pick_acs(Some("https://evil.example/cgi/samlauth"), None)
                .is_none()
        );
        assert_eq!(
            r.pick_acs(None, Some(1)).map(|a| a.url.as_str()),
            Some("https://gw2.corp.example/cgi/samlauth")
        );
        assert!(r.pick_acs(None, Some(9)).is_none());
    }

    #[test]
    fn hostile_acs_schemes_are_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "/relative",
        ] {
            let cfg = RpConfig {
                entity_id: Some("sp".into()),
                acs: vec![bad.into()],
                ..Default::default()
            };
            assert!(cfg.validate().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn claim_sources_parse_and_refuse_unknown() {
        assert_eq!(
            ClaimSource::try_from("attribute:Department".to_string()),
            Ok(ClaimSource::Attribute("department".into()))
        );
        assert!(ClaimSource::try_from("evil".to_string()).is_err());
        assert!(ClaimSource::try_from("attribute:".to_string()).is_err());
    }

    #[test]
    fn upn_rewrite_replaces_only_the_named_suffix() {
        let rw = ClaimSource::try_from("upn_rewrite:@Guest.Example=corp.example".to_string())
            .expect("parses");
        assert_eq!(
            String::from(rw.clone()),
            "upn_rewrite:guest.example=corp.example"
        );
        let user = |upn: &str| UserInfo {
            upn: Some(upn.into()),
            ..Default::default()
        };
        assert_eq!(
            rw.values(&user("ann@GUEST.example")),
            vec!["ann@corp.example"]
        );
        assert_eq!(
            rw.values(&user("bob@corp.example")),
            vec!["bob@corp.example"]
        );
        assert!(rw.values(&UserInfo::default()).is_empty());
        for bad in [
            "upn_rewrite:",
            "upn_rewrite:a",
            "upn_rewrite:a=",
            "upn_rewrite:x y=z",
            "upn_rewrite:a=b\"\"c",
        ] {
            assert!(ClaimSource::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(
            slug("https://gw.corp.example/metadata/samlsp/ns"),
            "https-gw-corp-example-metadata-samlsp-ns"
        );
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug("///"), "rp");
    }
}
