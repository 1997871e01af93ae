//! `keys`: import an existing token-signing certificate, show the active one.

use std::path::PathBuf;

use clap::Subcommand;
use tessera::config::Config;

use super::{CliError, Result};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Import an existing token-signing certificate and key (e.g. exported from AD FS).
    Import {
        #[arg(long, conflicts_with_all = ["key", "cert"])]
        pfx: Option<PathBuf>,
        /// File holding the PFX password (the password itself never goes on the command line).
        #[arg(long, requires = "pfx")]
        password_file: Option<PathBuf>,
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
    },
    /// Show the active certificate's thumbprints and validity.
    Show,
}

pub fn run(config: &Config, command: KeysCommand) -> Result<()> {
    let data = &config.server.data_dir;
    let keys = match command {
        KeysCommand::Import {
            pfx,
            password_file,
            key,
            cert,
        } => {
            let password = match &password_file {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| CliError::file(p, e))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => String::new(),
            };
            let pem = key.as_deref().zip(cert.as_deref());
            let m =
                tessera::keys::import(data, pfx.as_deref().map(|p| (p, password.as_str())), pem)?;
            println!("imported into {}", data.display());
            m
        }
        KeysCommand::Show => {
            tessera::keys::load_or_create(data, &config.idp.signing, "Tessera Token Signing")?.0
        }
    };
    println!("SHA-1   {}", keys.thumbprint_sha1);
    println!("SHA-256 {}", keys.thumbprint_sha256);
    println!("valid until {}", keys.not_after);
    Ok(())
}
