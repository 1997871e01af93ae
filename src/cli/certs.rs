//! `certs`: token-signing certificate rollover through the store, shared by every node.

use clap::Subcommand;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

use super::{Result, cli_actor, open_store};

#[derive(Subcommand)]
pub enum CertsCommand {
    /// The current and next token-signing certificates.
    Show,
    /// Generate the next certificate; metadata publishes it at once.
    GenerateNext,
    /// Sign with the next certificate from now on.
    Rollover,
    /// Drop the next certificate unused.
    DiscardNext,
}

pub async fn run(config: &Config, command: CertsCommand) -> Result<()> {
    use tessera::admin::certs;
    let data = &config.server.data_dir;
    let (file, _) =
        tessera::keys::load_or_create(data, &config.idp.signing, "Tessera Token Signing")?;
    let secrets = tessera::mfa::secrets::SecretBox::load_or_create(&data.join("mfa.key"))?;
    let store = open_store(config).await?;
    let stored = tessera::keys::live::stored(store.as_ref()).await?;
    let current = match &stored.current {
        Some(k) => k.open(&secrets)?,
        None => file,
    };
    let now = SystemClock.unix();
    let done = match command {
        CertsCommand::Show => {
            let from = if stored.current.is_some() {
                "store"
            } else {
                "data folder"
            };
            println!(
                "current  SHA-1 {}  valid until {}  ({from})",
                current.thumbprint_sha1, current.not_after
            );
            match &stored.next {
                Some(k) => {
                    let next = k.open(&secrets)?;
                    println!(
                        "next     SHA-1 {}  valid until {}  (published in metadata)",
                        next.thumbprint_sha1, next.not_after
                    );
                }
                None => println!("next     none"),
            }
            return Ok(());
        }
        CertsCommand::GenerateNext => {
            let cn = format!(
                "Tessera Token Signing - {}",
                tessera::saml::saml_time(SystemClock.now())
            );
            certs::generate_next(store.as_ref(), &secrets, &cli_actor(), now, &cn).await
        }
        CertsCommand::Rollover => {
            certs::rollover(store.as_ref(), &secrets, &current, &cli_actor(), now).await
        }
        CertsCommand::DiscardNext => {
            certs::discard_next(store.as_ref(), &secrets, &cli_actor(), now).await
        }
    }?;
    println!(
        "{}: {} -> {} (every node within a second)",
        done.action,
        done.before.as_deref().unwrap_or("-"),
        done.after.as_deref().unwrap_or("-")
    );
    Ok(())
}
