//! The `tessera` command line: the clap definitions, the dispatch to one file per command
//! family, and the one error every command returns.

mod certs;
mod check;
mod keys;
mod ops;
mod rp;
mod serve;
mod settings;
mod socket;
mod tokens;
mod users;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tessera::config::Config;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "SAML identity provider with LDAP sign-in and MFA"
)]
pub struct Cli {
    /// Config file (TOML). Without one, `tessera.toml` is used if present, else defaults.
    #[arg(long, short, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the identity provider (first run: creates keys, store and a demo user).
    Serve,
    /// Load and validate the configuration, then print a summary; with `--login`, also sign
    /// that user in against the directory step by step (password read from stdin).
    CheckConfig {
        /// A user to sign in (`user`, `user@suffix` or `DOMAIN\user`).
        #[arg(long)]
        login: Option<String>,
    },
    /// Print our IdP metadata (or only the signing certificate in PEM).
    Metadata {
        #[arg(long)]
        cert: bool,
    },
    /// Relying-party trusts.
    Rp {
        #[command(subcommand)]
        command: rp::RpCommand,
    },
    /// Token-signing key and certificate.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Users file (embedded directory).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Token-signing certificate rollover, shared by every node through the store.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Hardware OATH tokens: import (CSV / PSKC), list, assign, activate, resync, remove.
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// The MFA adapter's settings in force on every node (config file + admin changes).
    Settings {
        #[command(subcommand)]
        command: settings::SettingsCommand,
    },
}

/// Everything a command can fail with. The message is what the admin reads after `error:`,
/// so each variant carries the library's own wording rather than re-phrasing it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] tessera::config::ConfigError),
    #[error(transparent)]
    Start(#[from] tessera::startup::StartError),
    #[error(transparent)]
    Tls(#[from] tessera::tls::TlsError),
    #[error(transparent)]
    Rp(#[from] tessera::rp::RpError),
    #[error(transparent)]
    Keys(#[from] tessera::keys::KeyError),
    #[error(transparent)]
    Metadata(#[from] tessera::saml::metadata::MetadataError),
    #[error(transparent)]
    Sign(#[from] tessera::xmldsig::sign::SignError),
    #[error(transparent)]
    Admin(#[from] tessera::admin::AdminError),
    #[error(transparent)]
    Settings(#[from] tessera::admin::settings::ApplyError),
    #[error(transparent)]
    Store(#[from] tessera::store::StoreError),
    #[error("mfa.key: {0}")]
    MfaKey(#[from] tessera::mfa::secrets::SecretError),
    /// The store could not be opened (and is not merely held by a running server).
    #[error("{0}")]
    StoreUnavailable(String),
    /// The store is held by another process and no server answers on the admin socket.
    #[error("{0}")]
    NoServer(String),
    /// The running server refused the operation; its words, as the CLI would have said them.
    #[error("{0}")]
    Remote(String),
    /// A file the command reads or writes.
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The command's input does not make sense (unknown setting, bad method, ...).
    #[error("{0}")]
    Invalid(String),
    /// A check ran and found a fault (e.g. `check-config --login`).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn file(path: &Path, source: std::io::Error) -> Self {
        CliError::File {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs one parsed command line to the end.
pub async fn run(cli: Cli) -> Result<()> {
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve::serve(config).await,
        Command::CheckConfig { login } => check::check_config(&config, login.as_deref()).await,
        Command::Metadata { cert } => check::metadata(&config, cert),
        Command::Rp { command } => rp::run(&config, command).await,
        Command::Keys { command } => keys::run(&config, command),
        Command::Users { command } => users::run(&config, command).await,
        Command::Settings { command } => settings::run(&config, command).await,
        Command::Certs { command } => certs::command(&config, command).await,
        Command::Tokens { command } => tokens::run(&config, command).await,
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let default = Path::new("tessera.toml");
    let path = path.or_else(|| default.exists().then_some(default));
    Ok(Config::load(path, std::env::vars())?)
}

/// Who the change log names for a change made from the shell.
pub(crate) fn cli_actor() -> tessera::admin::Actor {
    tessera::admin::Actor {
        name: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ),
        client_ip: "local".into(),
    }
}
