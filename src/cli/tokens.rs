//! `tokens`: the hardware-token inventory (import CSV / PSKC, list, assign, activate, resync, remove).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tessera::admin::tokens::{self, Action};
use tessera::clock::{Clock, SystemClock};
use tessera::config::{Config, DirectoryKind};
use tessera::directory::Directory;
use tessera::mfa::secrets::SecretBox;
use tessera::mfa::tokens::MAX_FILE_BYTES;
use tessera::mfa::tokens::inventory::{self, Deps, TokenError};

use super::ops::{Ctx, Operation, Out};
use super::{CliError, Result};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Import a CSV (`upn,serial number,secret key,time interval,manufacturer,model`) or PSKC
    /// file; nothing is stored when any row has a problem.
    Import {
        file: PathBuf,
        /// The PSKC pre-shared key (AES-128) in hex.
        #[arg(long, conflicts_with = "pskc_key_file")]
        pskc_key: Option<String>,
        /// A file holding the PSKC pre-shared key in hex (keeps it out of the shell history).
        #[arg(long)]
        pskc_key_file: Option<PathBuf>,
    },
    /// Serial, model, assigned user, activated, last used.
    List,
    /// Assign a token to a user; it counts once activated with a code.
    Assign { serial: String, user: String },
    /// Take a token from its user.
    Unassign { serial: String },
    /// Activate an assigned token with one code it shows.
    Activate { serial: String, code: String },
    /// Resynchronise an event (HOTP) token from two consecutive codes.
    Resync {
        serial: String,
        code1: String,
        code2: String,
    },
    /// Delete a token from the inventory.
    Remove { serial: String },
}

/// What `tokens` asks of the store, as it travels over the admin socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TokensOp {
    Import {
        name: String,
        text: String,
        psk_hex: Option<String>,
    },
    List,
    Assign {
        serial: String,
        user: String,
    },
    Unassign {
        serial: String,
    },
    Activate {
        serial: String,
        code: String,
    },
    Resync {
        serial: String,
        code1: String,
        code2: String,
    },
    Remove {
        serial: String,
    },
}

pub async fn run(config: &Config, command: TokensCommand) -> Result<()> {
    let op = match command {
        TokensCommand::Import {
            file,
            pskc_key,
            pskc_key_file,
        } => import_op(&file, pskc_key, pskc_key_file.as_deref())?,
        TokensCommand::List => TokensOp::List,
        TokensCommand::Assign { serial, user } => TokensOp::Assign { serial, user },
        TokensCommand::Unassign { serial } => TokensOp::Unassign { serial },
        TokensCommand::Activate { serial, code } => TokensOp::Activate { serial, code },
        TokensCommand::Resync {
            serial,
            code1,
            code2,
        } => TokensOp::Resync {
            serial,
            code1,
            code2,
        },
        TokensCommand::Remove { serial } => TokensOp::Remove { serial },
    };
    super::ops::run(config, Operation::Tokens(op)).await
}

/// Reads the file (bounded) and the key here, so the server never opens a path it is given.
fn import_op(
    file: &std::path::Path,
    key: Option<String>,
    key_file: Option<&std::path::Path>,
) -> Result<TokensOp> {
    let len = std::fs::metadata(file)
        .map_err(|e| CliError::file(file, e))?
        .len();
    if len > MAX_FILE_BYTES as u64 {
        return Err(CliError::Invalid(format!(
            "{}: larger than {} KiB",
            file.display(),
            MAX_FILE_BYTES / 1024
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| CliError::file(file, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Invalid(format!("{}: not UTF-8 text", file.display())))?;
    let psk_hex = match (key, key_file) {
        (Some(k), _) => Some(k),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| CliError::file(f, e))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    Ok(TokensOp::Import {
        name: file.display().to_string(),
        text,
        psk_hex,
    })
}

/// Runs one operation against the store of this process (or the server's).
pub async fn exec(ctx: &Ctx<'_>, out: &mut Out, op: TokensOp) -> Result<()> {
    let data = &ctx.config.server.data_dir;
    let secrets = SecretBox::load_or_create(&data.join("mfa.key"))?;
    let deps = Deps {
        store: ctx.store,
        secrets: &secrets,
        now: SystemClock.unix(),
    };
    let action = match op {
        TokensOp::List => return list(ctx, out).await,
        TokensOp::Import {
            name,
            text,
            psk_hex,
        } => return import(ctx, &deps, out, &name, &text, psk_hex.as_deref()).await,
        TokensOp::Assign { serial, user } => Action::Assign { serial, user },
        TokensOp::Unassign { serial } => Action::Unassign { serial },
        TokensOp::Activate { serial, code } => Action::Activate { serial, code },
        TokensOp::Resync {
            serial,
            code1,
            code2,
        } => Action::Resync {
            serial,
            first: code1,
            second: code2,
        },
        TokensOp::Remove { serial } => Action::Remove { serial },
    };
    let directory = directory(ctx.config)?;
    let windows = hotp_windows(ctx).await?;
    let change = tokens::apply_within(&deps, windows, directory.as_ref(), ctx.actor, action)
        .await
        .map_err(token_error)?;
    out.line(format_args!(
        "{} {}: {} -> {}",
        change.action,
        change.target,
        change.before.as_deref().unwrap_or("-"),
        change.after.as_deref().unwrap_or("-")
    ));
    Ok(())
}

/// `users assign-token`: the same assign (and activate) as `tokens assign` / `activate`,
/// through `admin::tokens::assign_to_user` like the console's user page.
pub async fn assign_to_user(
    ctx: &Ctx<'_>,
    out: &mut Out,
    username: &str,
    serial: &str,
    code: Option<&str>,
) -> Result<()> {
    let secrets = SecretBox::load_or_create(&ctx.config.server.data_dir.join("mfa.key"))?;
    let deps = Deps {
        store: ctx.store,
        secrets: &secrets,
        now: SystemClock.unix(),
    };
    let directory = directory(ctx.config)?;
    let windows = hotp_windows(ctx).await?;
    let changes = tokens::assign_to_user(
        &deps,
        windows,
        directory.as_ref(),
        ctx.actor,
        username,
        serial,
        code,
    )
    .await
    .map_err(token_error)?;
    for change in &changes {
        out.line(format_args!(
            "{} {}: {} -> {}",
            change.action,
            change.target,
            change.before.as_deref().unwrap_or("-"),
            change.after.as_deref().unwrap_or("-")
        ));
    }
    let waiting = changes
        .last()
        .and_then(|c| c.after.as_deref())
        .is_some_and(|a| a.ends_with("activated=no"));
    if waiting {
        out.line(
            "waiting for activation: the user activates it in the portal, or run again with --code",
        );
    }
    Ok(())
}

async fn list(ctx: &Ctx<'_>, out: &mut Out) -> Result<()> {
    let all = inventory::list(ctx.store).await?;
    out.line("SERIAL\tKIND\tMODEL\tUSER\tACTIVATED\tLAST USED");
    let when = |t: Option<i64>| {
        t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map_or("-".to_owned(), tessera::saml::saml_time)
    };
    for t in &all {
        out.line(format_args!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            t.serial,
            t.kind_name(),
            if t.model.is_empty() { "-" } else { &t.model },
            t.assigned.as_deref().unwrap_or("-"),
            when(t.activated),
            when(t.last_used)
        ));
    }
    Ok(())
}

async fn import(
    ctx: &Ctx<'_>,
    deps: &Deps<'_>,
    out: &mut Out,
    name: &str,
    text: &str,
    psk_hex: Option<&str>,
) -> Result<()> {
    let psk = psk_hex
        .map(|h| hex::decode(h.trim()))
        .transpose()
        .map_err(|_| CliError::Invalid("the PSKC key is not hex".into()))?;
    let directory = directory(ctx.config)?;
    let report = tokens::import(
        deps,
        directory.as_ref(),
        ctx.actor,
        name,
        text.as_bytes(),
        psk.as_deref(),
    )
    .await
    .map_err(token_error)?;
    if report.problems.is_empty() {
        out.line(format_args!("imported {} tokens", report.imported.len()));
        return Ok(());
    }
    // In the error, so the report also comes back from a server over the admin socket.
    let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    Err(CliError::Failed(format!(
        "nothing imported: {} problem(s)\n{}",
        report.problems.len(),
        lines.join("\n")
    )))
}

/// The HOTP windows in force: the config's `[mfa]` with the console's overrides.
async fn hotp_windows(ctx: &Ctx<'_>) -> Result<inventory::HotpWindows> {
    let (mfa, _) = tessera::admin::settings::current(ctx.store, &ctx.config.mfa).await?;
    Ok(inventory::HotpWindows::of(&mfa))
}

fn token_error(e: TokenError) -> CliError {
    match e {
        TokenError::Store(s) => CliError::Store(s),
        other => CliError::Failed(other.to_string()),
    }
}

/// The configured directory, to check user names (assign, a CSV's upn column).
fn directory(config: &Config) -> Result<Arc<dyn Directory>> {
    use tessera::directory::file::FileDirectory;
    use tessera::directory::ldap::LdapDirectory;
    let dir: Arc<dyn Directory> = match config.directory.kind {
        DirectoryKind::File => Arc::new(
            FileDirectory::load(&config.users_file())
                .map_err(|e| CliError::Failed(format!("directory: {e}")))?,
        ),
        DirectoryKind::Ldap => {
            let settings = config
                .directory
                .ldap
                .clone()
                .ok_or_else(|| CliError::Failed("directory: no [directory.ldap]".into()))?;
            Arc::new(
                LdapDirectory::new(settings)
                    .map_err(|e| CliError::Failed(format!("directory: {e}")))?,
            )
        }
    };
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_operations_travel_over_the_admin_socket() {
        for op in [
            TokensOp::List,
            TokensOp::Import {
                name: "f.csv".into(),
                text: "upn,serial number\n".into(),
                psk_hex: Some("00".into()),
            },
            TokensOp::Resync {
                serial: "S".into(),
                code1: "1".into(),
                code2: "2".into(),
            },
        ] {
            let json = serde_json::to_string(&Operation::Tokens(op.clone())).unwrap();
            let back: Operation = serde_json::from_str(&json).unwrap();
            let Operation::Tokens(back) = back else {
                panic!("{json}")
            };
            assert_eq!(format!("{back:?}"), format!("{op:?}"), "{json}");
        }
        let odd = r#"{"op":"tokens","what":"format-disk"}"#;
        assert!(serde_json::from_str::<Operation>(odd).is_err());
    }
}
