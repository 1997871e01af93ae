//! The `tessera` command line: serve, check-config, metadata, rp, keys, users.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;

// mimalloc instead of glibc malloc: the login hot path allocates many small short-lived
// buffers across two worker threads; measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "SAML identity provider with LDAP sign-in and MFA"
)]
struct Cli {
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
        command: RpCommand,
    },
    /// Token-signing key and certificate.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Users file (embedded directory).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Token-signing certificate rollover, shared by every node through the store.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// The MFA adapter's settings in force on every node (config file + admin changes).
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// The current and next token-signing certificates.
    Show,
    /// Generate the next certificate; metadata publishes it at once.
    GenerateNext,
    /// Sign with the next certificate from now on.
    Rollover,
    /// Drop the next certificate unused.
    DiscardNext,
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Print every setting (or one), with where its value comes from.
    Get { key: Option<String> },
    /// Change a setting; lists take several values (`methods push oath`), switches on/off.
    Set {
        key: String,
        #[arg(num_args = 0..)]
        values: Vec<String>,
    },
}

#[derive(Subcommand)]
enum RpCommand {
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

#[derive(Subcommand)]
enum KeysCommand {
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

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user to the users file; the password is read from stdin.
    Add {
        username: String,
        #[arg(long)]
        upn: Option<String>,
        #[arg(long)]
        mail: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Print an argon2id hash of the password read from stdin.
    Hash,
    /// Let NAME sign in once without the second factor (help-desk bypass).
    Bypass {
        username: String,
        /// How long the bypass stays usable; default mfa.bypass_default_secs.
        #[arg(long)]
        secs: Option<u32>,
        /// Why (ticket number); kept with the bypass and in the log.
        #[arg(long)]
        reason: String,
    },
    /// A user's second factor: methods, default, blocks, recent sign-ins.
    Show { username: String },
    /// End a fraud block or MFA lockout and clear failed-password counts.
    Unblock { username: String },
    /// Forget the user's PIN; they choose a new one before their next call (PIN mode).
    ResetPin { username: String },
    /// Set the user's default method (push, call, sms, oath) or `company`.
    SetDefault { username: String, method: String },
    /// Remove one enrolled method (ids as `users show` prints them).
    Remove {
        username: String,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        push: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
}

fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let default = Path::new("tessera.toml");
    let path = path.or_else(|| default.exists().then_some(default));
    Config::load(path, std::env::vars()).map_err(|e| e.to_string())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour codes only for a person at a terminal: in a file or a journal they are noise
    // that breaks grep. The log goes to stderr, so that is the stream that decides.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config --login`: reads the password, runs the directory steps and names the one
/// that failed.
async fn check_login(config: &tessera::config::Config, login: &str) -> Result<(), String> {
    let password = read_password(login)?;
    let diagnosis = tessera::directory::diagnose::run(config, login, &password).await?;
    let kind = match config.directory.kind {
        tessera::config::DirectoryKind::Ldap => "LDAP",
        tessera::config::DirectoryKind::File => "users file",
    };
    println!("directory check for {login:?} ({kind}):");
    print!("{diagnosis}");
    match diagnosis.failed_step() {
        Some(step) => Err(format!("directory check failed at: {}", step.label())),
        None => {
            println!("directory check OK");
            Ok(())
        }
    }
}

/// One line from stdin; at a terminal, asked for on stderr with echo off, so the password
/// shows neither on screen nor in the scrollback.
fn read_password(login: &str) -> Result<String, String> {
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
    read.map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::CheckConfig { login } => {
            println!("configuration OK");
            println!("  public URL   {}", config.server.public_url);
            println!("  entity ID    {}", config.entity_id());
            println!("  listen       {}", config.server.listen);
            println!("  data dir     {}", config.server.data_dir.display());
            println!("  directory    {:?}", config.directory.kind);
            println!("  store        {:?}", config.store.backend);
            let rps = tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)
                .map_err(|e| e.to_string())?;
            println!("  relying parties: {}", rps.all().len());
            match login {
                Some(login) => check_login(&config, &login).await,
                None => Ok(()),
            }
        }
        Command::Metadata { cert } => {
            let (keys, _) = tessera::keys::load_or_create(
                &config.server.data_dir,
                &config.idp.signing,
                "Tessera Token Signing",
            )
            .map_err(|e| e.to_string())?;
            if cert {
                print!("{}", keys.cert_pem());
            } else {
                let xml = tessera::saml::metadata::idp_metadata(
                    &tessera::startup::endpoints(&config),
                    &keys,
                    None,
                )
                .map_err(|e| e.to_string())?;
                println!("{xml}");
            }
            Ok(())
        }
        Command::Rp { command } => rp_command(&config, command).await,
        Command::Keys { command } => keys_command(&config, command),
        Command::Users { command } => users_command(&config, command).await,
        Command::Settings { command } => settings_command(&config, command).await,
        Command::Certs { command } => certs_command(&config, command).await,
    }
}

async fn serve(config: Config) -> Result<(), String> {
    init_logging(&config);
    let stop = tessera::shutdown::stop_signal()
        .map_err(|e| format!("cannot install the SIGTERM / SIGINT handlers: {e}"))?;
    // Before anything is created or bound: a certificate that cannot serve is a start-up
    // error naming the key to fix, not a listener that fails every handshake.
    let transport =
        tessera::tls::Transport::from_config(&config.server).map_err(|e| e.to_string())?;
    let scheme = match transport {
        tessera::tls::Transport::Plain => "HTTP",
        tessera::tls::Transport::Tls(_) => "HTTPS",
    };
    // The connection cap is derived from this limit; the soft one is often 1,024 while the
    // hard one allows far more.
    match tessera::server::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(before, after, "raised the file-descriptor limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the file-descriptor limit"),
    }
    let listen = config.server.listen;
    let base = config.public_base().to_owned();
    let admin_group = config.admin.group.clone();
    let (state, first) = tessera::startup::build(config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let mut banner = String::new();
    if first.key_created {
        banner.push_str(&format!(
            "Created a token-signing key and certificate (SHA-1 {}).\n",
            state.keys.file().thumbprint_sha1
        ));
    }
    if let Some(pw) = &first.demo_password {
        banner.push_str(&format!(
            "Created the users file with user `demo` (an admin), password: {pw}\n\
             (shown this once; add users with `tessera users add NAME`)\n"
        ));
    }
    banner.push_str(&format!(
        "Tessera is listening on {listen} ({scheme})\n\
         \x20 home page      {base}/\n\
         \x20 login page     {base}/adfs/ls/  (SPs send their AuthnRequests here)\n\
         \x20 metadata       {base}/FederationMetadata/2007-06/FederationMetadata.xml\n\
         \x20 admin docs     {base}/docs\n\
         \x20 admin console  {base}/admin  (members of `{admin_group}`, with a second factor)\n"
    ));
    // A closed stdout (a supervisor that stopped reading) must not take the server down,
    // which `println!` would do.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        // Expired flows and replay-cache entries would otherwise stay in the redb file until
        // touched again.
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            match store.purge_expired().await {
                Ok(n) if n > 0 => tracing::debug!(removed = n, "expired records purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
            }
        }
    });
    let limits = tessera::server::ServerLimits::from_config(&state.config.server);
    if let Some(addr) = state.config.server.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (server.metrics_listen): {e}"))?;
        tracing::info!(%addr, "metrics served on their own listener");
        let router = tessera::web::metrics_app(state.clone());
        let limits = limits.clone();
        // No graceful stop of its own: a scrape in flight when the process exits is retried
        // by Prometheus at the next interval.
        tokio::spawn(async move {
            let stopped =
                tessera::server::serve(metrics, router, &limits, std::future::pending()).await;
            if let Err(e) = stopped {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let app = tessera::app(state);
    // Every store write is durable when it returns (redb commits with fsync, Redis answers
    // after applying it), so nothing is left to flush once the requests are done; a sign-in
    // waiting on a push is a record in the store and continues on whichever node the
    // browser's next refresh reaches.
    tessera::server::serve_on(listener, app, &limits, transport, async {
        let signal = stop.await;
        tracing::info!(%signal, "stop requested");
    })
    .await
    .map_err(|e| e.to_string())
}

async fn rp_command(config: &Config, command: RpCommand) -> Result<(), String> {
    match command {
        RpCommand::Add {
            metadata,
            preset,
            name,
            sign,
        } => {
            let text = std::fs::read_to_string(&metadata)
                .map_err(|e| format!("{}: {e}", metadata.display()))?;
            let md =
                tessera::saml::metadata::parse_sp_metadata(&text).map_err(|e| e.to_string())?;
            let existing =
                tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)
                    .map_err(|e| e.to_string())?;
            if existing.all().iter().any(|rp| rp.entity_id == md.entity_id) {
                return Err(format!("{} is already registered", md.entity_id));
            }
            let slug = tessera::rp::slug(name.as_deref().unwrap_or(&md.entity_id));
            std::fs::create_dir_all(&config.metadata_dir).map_err(|e| e.to_string())?;
            let xml_path = config.metadata_dir.join(format!("{slug}.xml"));
            if xml_path.exists() {
                return Err(format!(
                    "{} already exists; choose another --name",
                    xml_path.display()
                ));
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
            )?;
            std::fs::write(&xml_path, text).map_err(|e| e.to_string())?;
            let toml = toml::to_string(&sidecar).map_err(|e| e.to_string())?;
            std::fs::write(xml_path.with_extension("toml"), toml).map_err(|e| e.to_string())?;
            println!(
                "registered {} as {} (restart Tessera to load it)",
                md.entity_id,
                xml_path.display()
            );
            Ok(())
        }
        RpCommand::List => {
            let files = tessera::rp::Registry::load(&config.metadata_dir, &config.relying_parties)
                .map_err(|e| e.to_string())?;
            // Trusts added in the admin console live in the store.
            let store = open_store(config).await?;
            let stored = tessera::rp::live::load_all(store.as_ref())
                .await
                .map_err(|e| e.to_string())?;
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
            .await
            .map_err(|e| e.to_string())?;
            println!("removed {} (every node within a second)", c.target);
            Ok(())
        }
    }
}

fn keys_command(config: &Config, command: KeysCommand) -> Result<(), String> {
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
                    .map_err(|e| format!("{}: {e}", p.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => String::new(),
            };
            let pem = key.as_deref().zip(cert.as_deref());
            let m =
                tessera::keys::import(data, pfx.as_deref().map(|p| (p, password.as_str())), pem)
                    .map_err(|e| e.to_string())?;
            println!("imported into {}", data.display());
            m
        }
        KeysCommand::Show => {
            tessera::keys::load_or_create(data, &config.idp.signing, "Tessera Token Signing")
                .map_err(|e| e.to_string())?
                .0
        }
    };
    println!("SHA-1   {}", keys.thumbprint_sha1);
    println!("SHA-256 {}", keys.thumbprint_sha256);
    println!("valid until {}", keys.not_after);
    Ok(())
}

async fn open_store(config: &Config) -> Result<Arc<dyn tessera::store::Store>, String> {
    tessera::startup::open_store(config, Arc::new(SystemClock))
        .await
        .map_err(|e| {
            format!("{e} (is Tessera running? the embedded store allows one process at a time)")
        })
}

async fn certs_command(config: &Config, command: CertsCommand) -> Result<(), String> {
    use tessera::admin::certs;
    let data = &config.server.data_dir;
    let (file, _) =
        tessera::keys::load_or_create(data, &config.idp.signing, "Tessera Token Signing")
            .map_err(|e| e.to_string())?;
    let secrets = tessera::mfa::secrets::SecretBox::load_or_create(&data.join("mfa.key"))
        .map_err(|e| format!("mfa.key: {e}"))?;
    let store = open_store(config).await?;
    let stored = tessera::keys::live::stored(store.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let current = match &stored.current {
        Some(k) => k.open(&secrets).map_err(|e| e.to_string())?,
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
                    let next = k.open(&secrets).map_err(|e| e.to_string())?;
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
    }
    .map_err(|e| e.to_string())?;
    println!(
        "{}: {} -> {} (every node within a second)",
        done.action,
        done.before.as_deref().unwrap_or("-"),
        done.after.as_deref().unwrap_or("-")
    );
    Ok(())
}

async fn settings_command(config: &Config, command: SettingsCommand) -> Result<(), String> {
    use tessera::admin::settings as admin_settings;
    use tessera::mfa::table;
    let store = open_store(config).await?;
    match command {
        SettingsCommand::Get { key } => {
            let (current, overrides) = admin_settings::current(store.as_ref(), &config.mfa)
                .await
                .map_err(|e| e.to_string())?;
            let rows: Vec<_> = match &key {
                Some(k) => vec![table::find(k).ok_or_else(|| format!("no setting {k}"))?],
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
            let setting = table::find(&key).ok_or_else(|| format!("no setting {key}"))?;
            let value = table::parse(setting, &values)
                .map_err(|e| format!("{key}: {e}"))?
                .ok_or_else(|| format!("{key}: a secret needs a value"))?;
            let actor = tessera::admin::Actor {
                name: format!(
                    "cli:{}",
                    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
                ),
                client_ip: "local".into(),
            };
            let now = SystemClock.unix();
            let changed = admin_settings::apply(
                store.as_ref(),
                &config.mfa,
                &actor,
                now,
                &[(setting, value)],
            )
            .await
            .map_err(|e| e.to_string())?;
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

fn cli_actor() -> tessera::admin::Actor {
    tessera::admin::Actor {
        name: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ),
        client_ip: "local".into(),
    }
}

/// One help-desk action from the shell, through the same code as the admin console.
async fn user_action(
    config: &Config,
    username: &str,
    action: tessera::admin::users::Action,
) -> Result<(), String> {
    let store = open_store(config).await?;
    let (mfa, _) = tessera::admin::settings::current(store.as_ref(), &config.mfa)
        .await
        .map_err(|e| e.to_string())?;
    let change = tessera::admin::users::apply(
        store.as_ref(),
        &mfa,
        &cli_actor(),
        SystemClock.unix(),
        username,
        action,
    )
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "{}: {} -> {}",
        change.action,
        change.before.as_deref().unwrap_or("-"),
        change.after.as_deref().unwrap_or("-")
    );
    Ok(())
}

async fn user_show(config: &Config, username: &str) -> Result<(), String> {
    let store = open_store(config).await?;
    let v = tessera::admin::users::view(store.as_ref(), username, SystemClock.unix(), 5)
        .await
        .map_err(|e| e.to_string())?;
    let r = &v.registration;
    let now = SystemClock.unix();
    println!("user            {username}");
    println!(
        "default method  {}",
        r.default_method.map_or("company default", |m| m.as_str())
    );
    for t in &r.tokens {
        println!("token           {} {} ({:?})", t.id, t.label, t.kind);
    }
    for d in &r.push_devices {
        println!("push device     {} {}", d.id, d.label);
    }
    for p in &r.phones {
        println!(
            "phone           {} ({:?}, {:?})",
            p.number, p.kind, p.source
        );
    }
    if r.pin_hash.is_some() {
        let at = r.pin_set_at.map_or("at an unknown time".to_owned(), |t| {
            format!("at {t} (unix)")
        });
        println!("pin             set {at}");
    }
    println!(
        "status          {}{}{} denials, {} wrong codes, {} + {} failed passwords (unfamiliar + familiar addresses){}",
        if r.is_blocked(now) { "BLOCKED, " } else { "" },
        if r.codes_locked(now) {
            "CODES LOCKED, "
        } else {
            ""
        },
        r.mfa_denials,
        v.code_failures,
        v.password_failures.0,
        v.password_failures.1,
        if v.bypass_pending {
            ", bypass waiting"
        } else {
            ""
        }
    );
    for a in &v.recent {
        println!(
            "sign-in         {} {} {} {}",
            a.started,
            a.rp,
            a.result.as_str(),
            a.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn read_secret_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        return Err("empty password on stdin".into());
    }
    Ok(pw)
}

async fn users_command(config: &Config, command: UsersCommand) -> Result<(), String> {
    use tessera::admin::users::Action;
    use tessera::directory::file::{FileUser, UsersFile, hash_password};
    match command {
        UsersCommand::Hash => {
            println!("{}", hash_password(&read_secret_line()?)?);
            Ok(())
        }
        UsersCommand::Bypass {
            username,
            secs,
            reason,
        } => {
            let store = open_store(config).await?;
            let (mfa, _) = tessera::admin::settings::current(store.as_ref(), &config.mfa)
                .await
                .map_err(|e| e.to_string())?;
            drop(store); // the embedded store admits one opener at a time
            let secs = secs.unwrap_or(mfa.bypass_default_secs);
            user_action(config, &username, Action::Bypass { secs, reason }).await
        }
        UsersCommand::Show { username } => user_show(config, &username).await,
        UsersCommand::Unblock { username } => user_action(config, &username, Action::Unblock).await,
        UsersCommand::ResetPin { username } => {
            user_action(config, &username, Action::ResetPin).await
        }
        UsersCommand::SetDefault { username, method } => {
            let m = match method.as_str() {
                "company" => None,
                m => Some(m.parse().map_err(|_| format!("`{m}` is not a method"))?),
            };
            user_action(config, &username, Action::SetDefault(m)).await
        }
        UsersCommand::Remove {
            username,
            token,
            push,
            phone,
        } => {
            let action = match (token, push, phone) {
                (Some(id), None, None) => Action::RemoveToken { id },
                (None, Some(id), None) => Action::RemovePushDevice { id },
                (None, None, Some(number)) => Action::RemovePhone { number },
                _ => return Err("give exactly one of --token, --push, --phone".into()),
            };
            user_action(config, &username, action).await
        }
        UsersCommand::Add {
            username,
            upn,
            mail,
            display_name,
            groups,
        } => {
            let path = config.users_file();
            let mut file: UsersFile = match std::fs::read_to_string(&path) {
                Ok(t) => toml::from_str(&t).map_err(|e| format!("{}: {e}", path.display()))?,
                Err(_) => UsersFile::default(),
            };
            if file
                .users
                .iter()
                .any(|u| u.username.eq_ignore_ascii_case(&username))
            {
                return Err(format!(
                    "user {username} already exists in {}",
                    path.display()
                ));
            }
            file.users.push(FileUser {
                password_hash: hash_password(&read_secret_line()?)?,
                username: username.clone(),
                upn,
                mail,
                display_name,
                groups,
                ..Default::default()
            });
            // Validate the whole file as the server would before replacing it.
            tessera::directory::file::FileDirectory::from_users(file.users.clone())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(
                &path,
                toml::to_string_pretty(&file).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            println!("added {username} to {}", path.display());
            Ok(())
        }
    }
}
