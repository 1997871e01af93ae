//! `rp`: register, change, list and remove relying-party trusts, through the console's
//! trust code so a change is in force on the running server(s) within a second.
//!
//! `rp add` stores the trust in the store (as the console does) rather than writing a file
//! into the metadata folder: store trusts are re-read by every node when `rpversion` moves,
//! on the embedded store and on Redis alike, so there is no restart and no folder to keep
//! in step across a farm. File trusts (written by hand or by older versions) still load at
//! start; `rp remove` deletes them and `rp add --replace` turns one into a store trust.

use std::path::PathBuf;

use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tessera::admin::trusts::{self, Options};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::rp::{Preset, Registry, RpConfig, SignChoice, TokenType};

use super::ops::{Ctx, Operation, Out};
use super::{CliError, Result};

#[derive(Subcommand)]
pub enum RpCommand {
    /// Register an SP from its metadata file (or a WS-Federation relying party by hand with
    /// --wsfed --realm --reply); in force at once on every running node.
    Add {
        #[arg(long, required_unless_present = "wsfed", conflicts_with = "wsfed")]
        metadata: Option<PathBuf>,
        /// A WS-Federation relying party (passive requestor) without metadata.
        #[arg(long, requires_all = ["realm", "reply"])]
        wsfed: bool,
        /// The WS-Fed realm (wtrealm), e.g. urn:sharepoint:portal.
        #[arg(long, requires = "wsfed")]
        realm: Option<String>,
        /// A registered reply URL (wreply); repeat for more, the first is the default.
        #[arg(long, requires = "wsfed")]
        reply: Vec<String>,
        /// WS-Federation: the token in the answer, saml11 (default, as AD FS) or saml2.
        #[arg(long, value_enum)]
        token: Option<TokenType>,
        #[arg(long, value_parser = ["netscaler"])]
        preset: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// What the sign-in pages call the application ("to continue to …"); default: the name.
        #[arg(long)]
        display_name: Option<String>,
        /// What to sign: assertion (default), response, or both (NetScaler STRICT).
        #[arg(long, value_enum)]
        sign: Option<SignChoice>,
        /// Change the trust already registered for this entity ID (metadata and the options
        /// given; options not given stay as they were).
        #[arg(long)]
        replace: bool,
    },
    /// List the relying parties in force (files, config and admin console).
    List,
    /// Remove a trust: its name as `rp list` shows it (`console:NAME`, or the metadata
    /// file's name for a trust in the metadata folder).
    Remove { slug: String },
}

/// `rp add` as it travels to wherever it runs: the metadata itself, not a path the server
/// might not be able to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTrust {
    pub metadata_xml: String,
    /// Where the metadata came from, for the change log.
    pub source: String,
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    pub netscaler: bool,
    pub sign: Option<SignChoice>,
    #[serde(default)]
    pub token: Option<TokenType>,
    pub replace: bool,
}

pub async fn run(config: &Config, command: RpCommand) -> Result<()> {
    let op = match command {
        RpCommand::Add {
            metadata,
            wsfed: _,
            realm,
            reply,
            token,
            preset,
            name,
            display_name,
            sign,
            replace,
        } => {
            let (metadata_xml, source) = match (metadata, realm) {
                (Some(metadata), _) => (
                    std::fs::read_to_string(&metadata).map_err(|e| CliError::file(&metadata, e))?,
                    format!("tessera rp add {}", metadata.display()),
                ),
                (None, Some(realm)) => (
                    wsfed_metadata(&realm, &reply)?,
                    format!("tessera rp add --wsfed --realm {realm}"),
                ),
                (None, None) => {
                    return Err(CliError::Invalid("give --metadata or --wsfed".into()));
                }
            };
            // Refused here already, so hostile metadata never leaves this process.
            tessera::saml::metadata::parse_sp_metadata(&metadata_xml)?;
            Operation::RpAdd(AddTrust {
                metadata_xml,
                source,
                name,
                display_name,
                netscaler: preset.is_some(),
                sign,
                token,
                replace,
            })
        }
        RpCommand::List => Operation::RpList,
        RpCommand::Remove { slug } => Operation::RpRemove { slug },
    };
    super::ops::run(config, op).await
}

/// The federation metadata of a WS-Fed relying party given by hand: its realm (one line, as
/// long as an entity ID may be) and reply URLs (http(s) with a host, as every ACS).
fn wsfed_metadata(realm: &str, replies: &[String]) -> Result<String> {
    let realm = realm.trim();
    if realm.is_empty() || realm.len() > 1024 || realm.chars().any(char::is_control) {
        return Err(CliError::Invalid(
            "--realm is one line of 1 to 1024 characters".into(),
        ));
    }
    for url in replies {
        tessera::rp::check_endpoint_url(url)
            .map_err(|e| CliError::Invalid(format!("--reply: {e}")))?;
    }
    Ok(tessera::wsfed::metadata::application(realm, replies))
}

/// The options of a replaced trust: what was given on the command line, else what it had.
fn options(add: &AddTrust, old: &RpConfig) -> Options {
    Options {
        name: add.name.clone().or_else(|| old.name.clone()),
        display_name: Some(
            add.display_name
                .clone()
                .or_else(|| old.display_name.clone()),
        ),
        preset: if add.netscaler {
            Some(Preset::Netscaler)
        } else {
            old.preset
        },
        sign: add.sign.or(old.sign),
        token: add.token.or(old.token),
        mfa_required: old.mfa_required.unwrap_or(true),
        enabled: old.enabled.unwrap_or(true),
        name_id_source: old.name_id_source.clone(),
        name_id_format: old.name_id_format.clone(),
        name_id_formats: old.name_id_formats.clone(),
        authn_context: old.authn_context,
        claims: old.attributes.clone(),
        ..Options::default()
    }
}

fn file_trusts(config: &Config) -> Result<Registry> {
    Ok(Registry::load(
        &config.metadata_dir,
        &config.relying_parties,
    )?)
}

pub async fn add(ctx: &Ctx<'_>, out: &mut Out, add: AddTrust) -> Result<()> {
    let md = tessera::saml::metadata::parse_sp_metadata(&add.metadata_xml)?;
    let now = SystemClock.unix();
    let entity = md.entity_id.clone();
    let already = |from: &str| {
        CliError::Invalid(format!(
            "{entity} is already registered ({from}); add --replace to change it"
        ))
    };
    let mut restore = None;
    let opts = if let Some(file) = file_trusts(ctx.config)?.find(&entity) {
        // A trust in the metadata folder is named by its file; one from `[[relying_party]]`
        // in the config file is changed there, not from here.
        let stem = std::path::Path::new(&file.origin)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let found = trusts::file_trust(&ctx.config.metadata_dir, stem)?
            .filter(|t| t.xml.display().to_string() == file.origin);
        let Some(found) = found else {
            return Err(CliError::Invalid(format!(
                "{entity} is configured in {} of the config file; change it there",
                file.origin
            )));
        };
        if !add.replace {
            return Err(already(&file.origin));
        }
        let opts = options(&add, &found.config);
        trusts::delete_file(ctx.store, ctx.actor, now, &found).await?;
        restore = Some(found);
        opts
    } else if let Some((slug, old)) = trusts::by_entity(ctx.store, &entity).await? {
        if !add.replace {
            return Err(already(&format!("console:{slug}")));
        }
        options(&add, &old.config)
    } else {
        options(&add, &RpConfig::default())
    };
    let approved = async {
        let id = trusts::import(
            ctx.store,
            add.metadata_xml.clone(),
            &add.source,
            &ctx.actor.name,
        )
        .await?;
        trusts::approve(
            ctx.store,
            &file_trusts(ctx.config)?,
            ctx.actor,
            now,
            &id,
            &opts,
        )
        .await
        .map_err(CliError::from)
    }
    .await;
    if let (Err(_), Some(file)) = (&approved, &restore) {
        // The file trust was taken out to make room; a refused replacement puts it back.
        std::fs::write(&file.xml, &file.metadata_xml)?;
        if let Ok(text) = toml::to_string(&file.config) {
            std::fs::write(&file.sidecar, text)?;
        }
        ctx.store
            .incr(tessera::rp::live::VERSION_KEY, 1, None)
            .await?;
    }
    let change = approved?;
    let slug = trusts::by_entity(ctx.store, &entity)
        .await?
        .map_or_else(String::new, |(s, _)| s);
    out.line(format_args!(
        "{} {entity} as console:{slug}: {} (in force on every node within a second)",
        if change.action == "rp.add" {
            "registered"
        } else {
            "changed"
        },
        change.after.as_deref().unwrap_or("-")
    ));
    Ok(())
}

/// The relying parties in force: files, config and console.
pub async fn list(ctx: &Ctx<'_>, out: &mut Out) -> Result<()> {
    let files = file_trusts(ctx.config)?;
    // Trusts added in the admin console (and by `rp add`) live in the store.
    let stored = tessera::rp::live::load_all(ctx.store).await?;
    let console = stored
        .iter()
        .filter_map(|(slug, rp)| rp.build(slug).ok())
        .collect();
    for rp in files.merged(console).all() {
        out.line(format_args!(
            "{}\t{}\t{}\tsign={:?}\tacs={}\tname_id_formats={}\t{}\t{}",
            rp.name,
            rp.entity_id,
            match rp.protocol {
                tessera::rp::Protocol::Saml => "saml".to_owned(),
                tessera::rp::Protocol::Wsfed => format!("wsfed token={}", rp.token.name()),
            },
            rp.sign,
            rp.acs.first().map(|a| a.url.as_str()).unwrap_or("-"),
            short_formats(&rp.name_id_formats),
            if rp.enabled { "enabled" } else { "disabled" },
            rp.origin
        ));
    }
    Ok(())
}

/// NameID format URIs by their last segment (`transient,persistent`), as config may write them.
fn short_formats(formats: &[String]) -> String {
    formats
        .iter()
        .map(|f| tessera::rp::name_id::short_name(f))
        .collect::<Vec<_>>()
        .join(",")
}

/// Removes a store trust (`console:NAME` or `NAME`) or, failing that, the file trust
/// `NAME.xml` of the metadata folder.
pub async fn remove(ctx: &Ctx<'_>, out: &mut Out, name: &str) -> Result<()> {
    let now = SystemClock.unix();
    let slug = name.strip_prefix("console:").unwrap_or(name);
    if tessera::rp::live::load(ctx.store, slug).await?.is_some() {
        let c = trusts::delete(ctx.store, ctx.actor, now, slug).await?;
        out.line(format_args!(
            "removed {} (every node within a second)",
            c.target
        ));
        return Ok(());
    }
    let stem = std::path::Path::new(name)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(name);
    match trusts::file_trust(&ctx.config.metadata_dir, stem)? {
        Some(file) => {
            let c = trusts::delete_file(ctx.store, ctx.actor, now, &file).await?;
            out.line(format_args!(
                "removed {} and deleted {} (every node within a second)",
                c.target,
                file.xml.display()
            ));
            Ok(())
        }
        None => Err(CliError::Invalid(format!(
            "There is no such trust in the console or in {}.",
            ctx.config.metadata_dir.display()
        ))),
    }
}
