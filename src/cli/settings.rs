//! `settings`: read and change the MFA adapter's settings in force on every node.

use clap::Subcommand;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

use super::{CliError, Result, cli_actor, open_store};

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
    use tessera::admin::settings as admin_settings;
    use tessera::mfa::table;
    let no_such = |k: &str| CliError::Invalid(format!("no setting {k}"));
    let store = open_store(config).await?;
    match command {
        SettingsCommand::Get { key } => {
            let (current, overrides) = admin_settings::current(store.as_ref(), &config.mfa).await?;
            let rows: Vec<_> = match &key {
                Some(k) => vec![table::find(k).ok_or_else(|| no_such(k))?],
                None => table::SETTINGS.iter().collect(),
            };
            for s in rows {
                let from = if overrides.contains_key(s.key) {
                    "admin"
                } else {
                    "config"
                };
                println!(
                    "{:<32} {:<40} ({from})",
                    s.key,
                    table::display(s, &table::get(&current, s.key))
                );
            }
            Ok(())
        }
        SettingsCommand::Set { key, values } => {
            let setting = table::find(&key).ok_or_else(|| no_such(&key))?;
            let value = table::parse(setting, &values)
                .map_err(|e| CliError::Invalid(format!("{key}: {e}")))?
                .ok_or_else(|| CliError::Invalid(format!("{key}: a secret needs a value")))?;
            let changed = admin_settings::apply(
                store.as_ref(),
                &config.mfa,
                &cli_actor(),
                SystemClock.unix(),
                &[(setting, value)],
            )
            .await?;
            match changed.first() {
                Some(c) => println!(
                    "{key}: {} -> {} (in force on every node within a second)",
                    c.before.as_deref().unwrap_or(""),
                    c.after.as_deref().unwrap_or("")
                ),
                None => println!("{key}: unchanged"),
            }
            Ok(())
        }
    }
}
