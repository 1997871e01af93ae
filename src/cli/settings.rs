//! `settings`: read and change the MFA adapter's settings in force on every node.

use clap::Subcommand;
use tessera::admin::settings as admin_settings;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::mfa::table;

use super::ops::{Ctx, Operation, Out};
use super::{CliError, Result};

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// Print every setting (or one), with where its value comes from.
    Get { key: Option<String> },
    /// Change a setting; lists take several values (`methods push oath`), switches on/off.
    Set {
        key: String,
        #[arg(num_args = 0..)]
        values: Vec<String>,
    },
}

pub async fn run(config: &Config, command: SettingsCommand) -> Result<()> {
    let op = match command {
        SettingsCommand::Get { key } => Operation::SettingsGet { key },
        SettingsCommand::Set { key, values } => Operation::SettingsSet { key, values },
    };
    super::ops::run(config, op).await
}

fn no_such(key: &str) -> CliError {
    CliError::Invalid(format!("no setting {key}"))
}

/// Every setting (or one) with where its value comes from.
pub async fn get(ctx: &Ctx<'_>, out: &mut Out, key: Option<&str>) -> Result<()> {
    let (current, overrides) = admin_settings::current(ctx.store, &ctx.config.mfa).await?;
    let rows: Vec<_> = match key {
        Some(k) => vec![table::find(k).ok_or_else(|| no_such(k))?],
        None => table::SETTINGS.iter().collect(),
    };
    for s in rows {
        let from = if overrides.contains_key(s.key) {
            "admin"
        } else {
            "config"
        };
        out.line(format_args!(
            "{:<32} {:<40} ({from})",
            s.key,
            table::display(s, &table::get(&current, s.key))
        ));
    }
    Ok(())
}

/// Changes one setting, through the same code (and change log) as the admin console.
pub async fn set(ctx: &Ctx<'_>, out: &mut Out, key: &str, values: &[String]) -> Result<()> {
    let setting = table::find(key).ok_or_else(|| no_such(key))?;
    let value = table::parse(setting, values)
        .map_err(|e| CliError::Invalid(format!("{key}: {e}")))?
        .ok_or_else(|| CliError::Invalid(format!("{key}: a secret needs a value")))?;
    let changed = admin_settings::apply(
        ctx.store,
        &ctx.config.mfa,
        ctx.actor,
        SystemClock.unix(),
        &[(setting, value)],
    )
    .await?;
    match changed.first() {
        Some(c) => out.line(format_args!(
            "{key}: {} -> {} (in force on every node within a second)",
            c.before.as_deref().unwrap_or(""),
            c.after.as_deref().unwrap_or("")
        )),
        None => out.line(format_args!("{key}: unchanged")),
    }
    Ok(())
}
