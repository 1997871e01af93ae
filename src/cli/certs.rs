//! `certs`: token-signing certificate rollover through the store, shared by every node.

use clap::Subcommand;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

use super::Result;
use super::ops::{Ctx, Operation, Out};

#[derive(Subcommand, Clone, Copy)]
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

pub async fn command(config: &Config, command: CertsCommand) -> Result<()> {
    let op = match command {
        CertsCommand::Show => Operation::CertsShow,
        CertsCommand::GenerateNext => Operation::CertsGenerateNext,
        CertsCommand::Rollover => Operation::CertsRollover,
        CertsCommand::DiscardNext => Operation::CertsDiscardNext,
    };
    super::ops::run(config, op).await
}

pub async fn run(ctx: &Ctx<'_>, out: &mut Out, command: CertsCommand) -> Result<()> {
    use tessera::admin::certs;
    let config = ctx.config;
    let store = ctx.store;
    let actor = ctx.actor;
    let data = &config.server.data_dir;
    let (file, _) =
        tessera::keys::load_or_create(data, &config.idp.signing, "Tessera Token Signing")?;
    let secrets = tessera::mfa::secrets::SecretBox::load_or_create(&data.join("mfa.key"))?;
    let stored = tessera::keys::live::stored(store).await?;
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
            out.line(format_args!(
                "current  SHA-1 {}  valid until {}  ({from})",
                current.thumbprint_sha1, current.not_after
            ));
            match &stored.next {
                Some(k) => {
                    let next = k.open(&secrets)?;
                    out.line(format_args!(
                        "next     SHA-1 {}  valid until {}  (published in metadata)",
                        next.thumbprint_sha1, next.not_after
                    ));
                }
                None => out.line("next     none"),
            }
            return Ok(());
        }
        CertsCommand::GenerateNext => {
            let cn = format!(
                "Tessera Token Signing - {}",
                tessera::saml::saml_time(SystemClock.now())
            );
            certs::generate_next(store, &secrets, actor, now, &cn).await
        }
        CertsCommand::Rollover => certs::rollover(store, &secrets, &current, actor, now).await,
        CertsCommand::DiscardNext => certs::discard_next(store, &secrets, actor, now).await,
    }?;
    out.line(format_args!(
        "{}: {} -> {} (every node within a second)",
        done.action,
        done.before.as_deref().unwrap_or("-"),
        done.after.as_deref().unwrap_or("-")
    ));
    Ok(())
}
