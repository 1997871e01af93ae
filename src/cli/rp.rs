//! `rp`: register, list and remove relying-party trusts.

use std::path::PathBuf;

use clap::Subcommand;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

use super::{CliError, Result, cli_actor, open_store};

#[derive(Subcommand)]
pub enum RpCommand {
    /// Register an SP from its metadata file (copied into the metadata folder).
    Add {
        #[arg(long)]
        metadata: PathBuf,
        #[arg(long, value_parser = ["netscaler"])]
        preset: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// What to sign: assertion (default), response, or both (NetScaler STRICT).
        #[arg(long, value_enum)]
        sign: Option<tessera::rp::SignChoice>,
    },
    /// List the relying parties in force (files, config and admin console).
    List,
    /// Remove a trust added in the admin console (its name after `console:` in `rp list`).
    Remove { slug: String },
}

pub async fn run(config: &Config, command: RpCommand) -> Result<()> {
    match command {
        RpCommand::Add {
            metadata,
            preset,
            name,
            sign,
        } => {
            let text =
                std::fs::read_to_string(&metadata).map_err(|e| CliError::file(&metadata, e))?;
            let md = tessera::saml::metadata::parse_sp_metadata(&text)?;
            let existing =
                tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)?;
            if existing.all().iter().any(|rp| rp.entity_id == md.entity_id) {
                return Err(CliError::Invalid(format!(
                    "{} is already registered",
                    md.entity_id
                )));
            }
            let slug = tessera::rp::slug(name.as_deref().unwrap_or(&md.entity_id));
            std::fs::create_dir_all(&config.metadata_dir)?;
            let xml_path = config.metadata_dir.join(format!("{slug}.xml"));
            if xml_path.exists() {
                return Err(CliError::Invalid(format!(
                    "{} already exists; choose another --name",
                    xml_path.display()
                )));
            }
            let sidecar = tessera::rp::RpConfig {
                name: name.clone(),
                preset: preset.as_deref().map(|_| tessera::rp::Preset::Netscaler),
                sign,
                ..Default::default()
            };
            // Check the combination builds before writing anything.
            tessera::rp::RelyingParty::from_config(
                &sidecar,
                Some(md.clone()),
                "new",
                &config.metadata_dir,
            )
            .map_err(CliError::Invalid)?;
            std::fs::write(&xml_path, text)?;
            let toml = toml::to_string(&sidecar).map_err(|e| CliError::Invalid(e.to_string()))?;
            std::fs::write(xml_path.with_extension("toml"), toml)?;
            println!(
                "registered {} as {} (restart Tessera to load it)",
                md.entity_id,
                xml_path.display()
            );
            Ok(())
        }
        RpCommand::List => {
            let files = tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)?;
            // Trusts added in the admin console live in the store.
            let store = open_store(config).await?;
            let stored = tessera::rp::live::load_all(store.as_ref()).await?;
            let console = stored
                .iter()
                .filter_map(|(slug, rp)| rp.build(slug).ok())
                .collect();
            for rp in files.merged(console).all() {
                println!(
                    "{}\t{}\tsign={:?}\tacs={}\t{}\t{}",
                    rp.name,
                    rp.entity_id,
                    rp.sign,
                    rp.acs.first().map(|a| a.url.as_str()).unwrap_or("-"),
                    if rp.enabled { "enabled" } else { "disabled" },
                    rp.origin
                );
            }
            Ok(())
        }
        RpCommand::Remove { slug } => {
            let store = open_store(config).await?;
            let c = tessera::admin::trusts::delete(
                store.as_ref(),
                &cli_actor(),
                SystemClock.unix(),
                &slug,
            )
            .await?;
            println!("removed {} (every node within a second)", c.target);
            Ok(())
        }
    }
}
