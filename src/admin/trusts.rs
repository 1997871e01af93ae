//! Relying-party trusts managed in the console: metadata imported into a pending record, shown with its differences, applied only when an admin approves; options changed; trusts removed — each logged.

use std::time::Duration;

use openssl::hash::MessageDigest;
use serde::{Deserialize, Serialize};

use super::changes::{self, Change};
use super::{Actor, AdminError, refused};
use crate::rp::live::{self, StoredRp};
use crate::rp::{
    AuthnContextMode, ClaimRule, ClaimSource, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT,
    NAMEID_UNSPECIFIED, Preset, Registry, RelyingParty, RpConfig, SignChoice, slug,
};
use crate::saml::metadata::{SpMetadata, parse_sp_metadata};
use crate::store::{self, Store, StoreError};

/// How long an imported, not yet approved metadata document is kept.
const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

/// Imported metadata waiting for approval (`rppending:<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub xml: String,
    /// Where it came from (pasted, a file name, a URL), for the log.
    pub source: String,
    pub by: String,
}

fn pending_key(id: &str) -> String {
    format!("rppending:{id}")
}

/// Checks the metadata and keeps it for approval; returns the pending id.
pub async fn import(
    store: &dyn Store,
    xml: String,
    source: &str,
    by: &str,
) -> Result<String, AdminError> {
    if let Err(e) = parse_sp_metadata(&xml) {
        return refused(e.to_string());
    }
    let id = crate::saml::random_hex(16);
    let p = Pending {
        xml,
        source: source.to_owned(),
        by: by.to_owned(),
    };
    store::put_json(store, &pending_key(&id), &p, Some(PENDING_TTL)).await?;
    Ok(id)
}

pub async fn pending(store: &dyn Store, id: &str) -> Result<Option<Pending>, StoreError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    store::get_json(store, &pending_key(id)).await
}

/// What an admin sees of metadata before approving it, one line per fact.
pub fn summary(md: &SpMetadata) -> Vec<(String, String)> {
    let wsfed = md.protocol == crate::saml::metadata::SpProtocol::Wsfed;
    let (id, endpoint, protocol) = if wsfed {
        ("Realm", "Reply URL", "WS-Federation (passive requestor)")
    } else {
        ("Entity ID", "ACS", "SAML 2.0")
    };
    let mut out = vec![
        (id.to_owned(), md.entity_id.clone()),
        ("Protocol".to_owned(), protocol.to_owned()),
    ];
    for (i, a) in md.acs.iter().enumerate() {
        out.push((format!("{endpoint} {}", i + 1), a.url.clone()));
    }
    out.push((
        "Single logout".into(),
        md.slo.clone().unwrap_or_else(|| "none".into()),
    ));
    for (i, c) in md.certs.iter().enumerate() {
        let sha1 = c
            .digest(MessageDigest::sha1())
            .map(|d| hex::encode_upper(&*d))
            .unwrap_or_default();
        let subject = c
            .subject_name()
            .entries()
            .filter_map(|e| e.data().to_string().ok())
            .collect::<Vec<_>>()
            .join(", ");
        out.push((
            format!("Certificate {}", i + 1),
            format!("{subject}; SHA-1 {sha1}; valid until {}", c.not_after()),
        ));
    }
    out.push((
        "Signs its requests".into(),
        if md.authn_requests_signed {
            "yes"
        } else {
            "no"
        }
        .into(),
    ));
    out
}

/// Lines present on one side only: (what goes, what comes).
pub fn diff(old: &[(String, String)], new: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let show = |(k, v): &(String, String)| format!("{k}: {v}");
    let gone = old.iter().filter(|l| !new.contains(l)).map(show).collect();
    let added = new.iter().filter(|l| !old.contains(l)).map(show).collect();
    (gone, added)
}

/// The console trust with this entity ID, if any: (slug, record).
pub async fn by_entity(
    store: &dyn Store,
    entity_id: &str,
) -> Result<Option<(String, StoredRp)>, AdminError> {
    for (slug, rp) in live::load_all(store).await? {
        if parse_sp_metadata(&rp.metadata_xml).is_ok_and(|md| md.entity_id == entity_id) {
            return Ok(Some((slug, rp)));
        }
    }
    Ok(None)
}

/// The options an admin sets on a trust (the rest comes from metadata and the preset).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub name: Option<String>,
    /// What the sign-in pages call the application; `Some(None)` follows the name again,
    /// `None` leaves it as it is.
    pub display_name: Option<Option<String>>,
    pub preset: Option<Preset>,
    pub sign: Option<SignChoice>,
    pub mfa_required: bool,
    pub enabled: bool,
    /// `None` leaves these as they are (the import preview does not show them).
    pub name_id_source: Option<ClaimSource>,
    pub name_id_format: Option<String>,
    /// The formats a NameIDPolicy may ask for (`None`: as they are).
    pub name_id_formats: Option<Vec<String>>,
    pub authn_context: Option<AuthnContextMode>,
    /// WS-Federation: the token type; `None` leaves it as it is.
    pub token: Option<crate::rp::TokenType>,
    /// Empty: the preset's (or the default) claims.
    pub claims: Option<Vec<ClaimRule>>,
    /// Overrides of what the metadata says; `Some(empty)` / `Some(None)` follows the
    /// metadata again. `None` leaves them as they are.
    pub entity_id: Option<Option<String>>,
    pub acs: Option<Vec<String>>,
    pub slo: Option<Option<String>>,
    pub cert_pems: Option<Vec<String>>,
}

/// The NameID formats an admin may choose.
pub const NAMEID_FORMATS: [&str; 4] = [
    NAMEID_UNSPECIFIED,
    NAMEID_EMAIL,
    NAMEID_PERSISTENT,
    NAMEID_TRANSIENT,
];

/// Reads claim rules, one per line: `attribute name = source` (see `ClaimSource`).
pub fn parse_claims(text: &str) -> Result<Vec<ClaimRule>, String> {
    let mut rules = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (name, source) = line
            .split_once('=')
            .ok_or_else(|| format!("claim line {}: write `name = source`", n + 1))?;
        let name = name.trim();
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":/._#-".contains(c));
        if !name_ok {
            return Err(format!(
                "claim line {}: `{name}` is not an attribute name",
                n + 1
            ));
        }
        let source = ClaimSource::try_from(source.trim().to_owned())
            .map_err(|e| format!("claim line {}: {e}", n + 1))?;
        rules.push(ClaimRule {
            name: name.to_owned(),
            source,
        });
    }
    Ok(rules)
}

/// The claim rules as the options form shows them.
pub fn claims_text(rules: &[ClaimRule]) -> String {
    rules
        .iter()
        .map(|r| format!("{} = {}", r.name, String::from(r.source.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Options {
    fn apply(&self, cfg: &mut RpConfig) -> Result<(), AdminError> {
        if let Some(n) = &self.name {
            let n = n.trim();
            if n.is_empty() || n.len() > 100 || n.chars().any(char::is_control) {
                return refused("A name is 1 to 100 characters on one line.");
            }
            cfg.name = Some(n.to_owned());
        }
        if let Some(d) = &self.display_name {
            cfg.display_name = display_name(d.as_deref())?;
        }
        cfg.preset = self.preset;
        cfg.sign = self.sign;
        cfg.mfa_required = Some(self.mfa_required);
        cfg.enabled = Some(self.enabled);
        if let Some(source) = &self.name_id_source {
            cfg.name_id_source = Some(source.clone());
        }
        if let Some(format) = &self.name_id_format {
            if !NAMEID_FORMATS.contains(&format.as_str()) {
                return refused("Choose one of the NameID formats offered.");
            }
            cfg.name_id_format = Some(format.clone());
        }
        if let Some(formats) = &self.name_id_formats {
            cfg.name_id_formats = (!formats.is_empty()).then(|| formats.clone());
        }
        if let Some(mode) = self.authn_context {
            cfg.authn_context = Some(mode);
        }
        if let Some(token) = self.token {
            cfg.token = Some(token);
        }
        if let Some(claims) = &self.claims {
            cfg.attributes = (!claims.is_empty()).then(|| claims.clone());
        }
        if let Some(id) = &self.entity_id {
            if id
                .as_deref()
                .is_some_and(|i| i.len() > 1024 || i.chars().any(char::is_control))
            {
                return refused("An identifier is one line of at most 1024 characters.");
            }
            cfg.entity_id = id.clone();
        }
        if let Some(acs) = &self.acs {
            for url in acs {
                crate::rp::check_endpoint_url(url)
                    .map_err(|e| AdminError::Refused(format!("ACS: {e}")))?;
            }
            cfg.acs = acs.clone();
        }
        if let Some(slo) = &self.slo {
            if let Some(url) = slo {
                crate::rp::check_endpoint_url(url)
                    .map_err(|e| AdminError::Refused(format!("single logout: {e}")))?;
            }
            cfg.slo = slo.clone();
        }
        if let Some(pems) = &self.cert_pems {
            cfg.cert_pems = pems.clone();
        }
        Ok(())
    }
}

/// A display name as typed: empty follows the trust's name; else one line of at most 100
/// characters of plain text (the pages escape it anyway).
fn display_name(typed: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(d) = typed.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > 100 || d.chars().any(char::is_control) || d.contains(['<', '>']) {
        return refused("A display name is one line of at most 100 characters, without < or >.");
    }
    Ok(Some(d.to_owned()))
}

fn describe(rp: &RelyingParty) -> String {
    let sign = match rp.sign {
        SignChoice::Assertion => "assertion",
        SignChoice::Response => "response",
        SignChoice::Both => "both",
    };
    let protocol = match rp.protocol {
        crate::rp::Protocol::Saml => String::new(),
        crate::rp::Protocol::Wsfed => format!("ws-federation {}; ", rp.token.name()),
    };
    let shown = if rp.display_name == rp.name {
        String::new()
    } else {
        format!("shown as \"{}\"; ", rp.display_name)
    };
    format!(
        "{} ({}); {shown}{protocol}sign {sign}; mfa {}; {}",
        rp.name,
        rp.acs.first().map_or("", |a| a.url.as_str()),
        if rp.mfa_required {
            "required"
        } else {
            "not required"
        },
        if rp.enabled { "enabled" } else { "disabled" }
    )
}

/// Applies a pending import: adds a new trust, or replaces the metadata of the console trust
/// with the same entity ID (keeping its options unless `options` says otherwise).
pub async fn approve(
    store: &dyn Store,
    files: &Registry,
    actor: &Actor,
    now: i64,
    id: &str,
    options: &Options,
) -> Result<Change, AdminError> {
    let Some(p) = pending(store, id).await? else {
        return refused(
            "This import has expired or was already applied. Import the metadata again.",
        );
    };
    let md = parse_sp_metadata(&p.xml).map_err(|e| AdminError::Refused(e.to_string()))?;
    if let Some(file) = files.find(&md.entity_id) {
        return refused(format!(
            "{} is already trusted from {}; change it there.",
            md.entity_id, file.origin
        ));
    }
    let existing = by_entity(store, &md.entity_id).await?;
    let (slug_name, mut config, before) = match &existing {
        Some((s, old)) => (
            s.clone(),
            old.config.clone(),
            old.build(s).ok().map(|rp| describe(&rp)),
        ),
        None => {
            let base = options.name.clone().unwrap_or_else(|| md.entity_id.clone());
            (
                unique_slug(store, &slug(&base)).await?,
                RpConfig::default(),
                None,
            )
        }
    };
    options.apply(&mut config)?;
    let record = StoredRp {
        metadata_xml: p.xml,
        config,
        updated_by: actor.name.clone(),
        updated_at: now,
    };
    let rp = record.build(&slug_name).map_err(AdminError::Refused)?;
    live::save(store, &slug_name, &record).await?;
    store.delete(&pending_key(id)).await?;
    let action = if existing.is_some() {
        "rp.update"
    } else {
        "rp.add"
    };
    let c = Change::new(
        actor,
        now,
        action,
        &md.entity_id,
        before,
        Some(format!("{}; from {}", describe(&rp), p.source)),
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

async fn unique_slug(store: &dyn Store, base: &str) -> Result<String, StoreError> {
    let base = if base.is_empty() { "sp" } else { base };
    let mut candidate = base.to_owned();
    let mut n = 2;
    while live::load(store, &candidate).await?.is_some() {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    Ok(candidate)
}

/// Changes a console trust's options.
pub async fn set_options(
    store: &dyn Store,
    files: &Registry,
    actor: &Actor,
    now: i64,
    slug_name: &str,
    options: &Options,
) -> Result<Change, AdminError> {
    let Some(mut record) = live::load(store, slug_name).await? else {
        return refused("There is no such trust in the console.");
    };
    let before = record.build(slug_name).ok().map(|rp| describe(&rp));
    options.apply(&mut record.config)?;
    record.updated_by = actor.name.clone();
    record.updated_at = now;
    let rp = record.build(slug_name).map_err(AdminError::Refused)?;
    if let Some(file) = files.find(&rp.entity_id) {
        return refused(format!(
            "{} is already trusted from {}.",
            rp.entity_id, file.origin
        ));
    }
    for (other, stored) in live::load_all(store).await? {
        let clash = other != slug_name
            && stored
                .build(&other)
                .is_ok_and(|o| o.entity_id == rp.entity_id);
        if clash {
            return refused(format!(
                "Another trust in the console already uses {}.",
                rp.entity_id
            ));
        }
    }
    live::save(store, slug_name, &record).await?;
    let c = Change::new(
        actor,
        now,
        "rp.options",
        &rp.entity_id,
        before,
        Some(describe(&rp)),
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

/// Removes a console trust.
pub async fn delete(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
    slug_name: &str,
) -> Result<Change, AdminError> {
    let Some(record) = live::load(store, slug_name).await? else {
        return refused("There is no such trust in the console.");
    };
    let entity = parse_sp_metadata(&record.metadata_xml)
        .map(|m| m.entity_id)
        .unwrap_or_else(|_| slug_name.to_owned());
    let before = record.build(slug_name).ok().map(|rp| describe(&rp));
    live::remove(store, slug_name).await?;
    let c = Change::new(actor, now, "rp.delete", &entity, before, None);
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

/// A trust read from the metadata folder: `<stem>.xml` and its optional `<stem>.toml`.
pub struct FileTrust {
    pub xml: std::path::PathBuf,
    pub sidecar: std::path::PathBuf,
    pub metadata_xml: String,
    pub config: RpConfig,
}

/// The file trust `<stem>.xml` in `metadata_dir`, if there is one. `stem` is a file name
/// without a folder (`..`, `/` and hidden names are refused), so a command line cannot
/// reach outside the folder.
pub fn file_trust(
    metadata_dir: &std::path::Path,
    stem: &str,
) -> Result<Option<FileTrust>, AdminError> {
    let stem = stem.strip_suffix(".xml").unwrap_or(stem);
    if stem.is_empty() || stem.starts_with('.') || stem.contains(['/', '\\', '\0']) {
        return Ok(None);
    }
    let xml = metadata_dir.join(format!("{stem}.xml"));
    let Ok(metadata_xml) = std::fs::read_to_string(&xml) else {
        return Ok(None);
    };
    let sidecar = xml.with_extension("toml");
    let config = match std::fs::read_to_string(&sidecar) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| AdminError::Refused(format!("{}: {e}", sidecar.display())))?,
        Err(_) => RpConfig::default(),
    };
    Ok(Some(FileTrust {
        xml,
        sidecar,
        metadata_xml,
        config,
    }))
}

/// Removes a file trust: deletes its metadata and sidecar, then moves `rpversion` so every
/// node re-reads its metadata folder and stops trusting it within a second.
pub async fn delete_file(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
    trust: &FileTrust,
) -> Result<Change, AdminError> {
    let entity = parse_sp_metadata(&trust.metadata_xml)
        .map(|m| m.entity_id)
        .unwrap_or_else(|_| trust.xml.display().to_string());
    std::fs::remove_file(&trust.xml)
        .map_err(|e| AdminError::Refused(format!("{}: {e}", trust.xml.display())))?;
    match std::fs::remove_file(&trust.sidecar) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return refused(format!("{}: {e}", trust.sidecar.display()));
        }
        _ => {}
    }
    store.incr(live::VERSION_KEY, 1, None).await?;
    let c = Change::new(
        actor,
        now,
        "rp.delete",
        &entity,
        Some(format!("file {}", trust.xml.display())),
        None,
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}
