//! `check-config` (with `--login`, a step-by-step directory sign-in) and `metadata`.

use tessera::config::Config;

use super::{CliError, Result};

pub async fn check_config(config: &Config, login: Option<&str>) -> Result<()> {
    println!("configuration OK");
    println!("  public URL   {}", config.server.public_url);
    println!("  entity ID    {}", config.entity_id());
    println!("  listen       {}", config.server.listen);
    println!("  data dir     {}", config.server.data_dir.display());
    println!("  directory    {:?}", config.directory.kind);
    println!("  store        {:?}", config.store.backend);
    let rps = tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)?;
    println!("  relying parties: {}", rps.all().len());
    match login {
        Some(login) => check_login(config, login).await,
        None => Ok(()),
    }
}

/// `check-config --login`: reads the password, runs the directory steps and names the one
/// that failed.
async fn check_login(config: &Config, login: &str) -> Result<()> {
    let password = read_password(login)?;
    let diagnosis = tessera::directory::diagnose::run(config, login, &password)
        .await
        .map_err(CliError::Failed)?;
    let kind = match config.directory.kind {
        tessera::config::DirectoryKind::Ldap => "LDAP",
        tessera::config::DirectoryKind::File => "users file",
    };
    println!("directory check for {login:?} ({kind}):");
    print!("{diagnosis}");
    match diagnosis.failed_step() {
        Some(step) => Err(CliError::Failed(format!(
            "directory check failed at: {}",
            step.label()
        ))),
        None => {
            println!("directory check OK");
            Ok(())
        }
    }
}

/// One line from stdin; at a terminal, asked for on stderr with echo off, so the password
/// shows neither on screen nor in the scrollback.
fn read_password(login: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved = None;
    if tty {
        eprint!("Password for {login}: ");
        let _ = std::io::stderr().flush();
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own; the saved state is
        // put back below whatever the read returned.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: as above, restoring the state read before.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        eprintln!();
    }
    read.map_err(|e| CliError::Invalid(format!("cannot read the password from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Our IdP metadata, or only the signing certificate in PEM.
pub fn metadata(config: &Config, cert: bool) -> Result<()> {
    let (keys, _) = tessera::keys::load_or_create(
        &config.server.data_dir,
        &config.idp.signing,
        "Tessera Token Signing",
    )?;
    if cert {
        print!("{}", keys.cert_pem());
    } else {
        let xml = tessera::saml::metadata::idp_metadata(
            &tessera::startup::endpoints(config),
            &keys,
            None,
        )?;
        println!("{xml}");
    }
    Ok(())
}
