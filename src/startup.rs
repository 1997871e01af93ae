//! Builds the one `AppContext` from a `Config` (first-run files, keys, store, directory, RPs), starts its background housekeeping and words the start-up banner.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, DirectoryKind, StoreKind};
use crate::directory::Directory;
use crate::directory::file::{FileDirectory, create_demo};
use crate::directory::ldap::LdapDirectory;
use crate::i18n::Catalogue;
use crate::keys;
use crate::keys::live::LiveKeys;
use crate::login::timing::Timing;
use crate::metrics::{MeasuredDirectory, MeasuredStore, Metrics};
use crate::mfa::challenge::TokenSigner;
use crate::mfa::gateway;
use crate::mfa::live::LiveSettings;
use crate::mfa::secrets::SecretBox;
use crate::rp::Registry;
use crate::rp::live::LiveRegistry;
use crate::saml::metadata::IdpEndpoints;
use crate::sim::{SimConfig, SimState};
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::{Endpoint, RedisStore, SentinelSettings};
use crate::web::{AppContext, AppState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(String, String),
    #[error("token-signing key: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("store: {0}")]
    Store(String),
    /// The embedded store's file is held by another process (usually a running server).
    #[error("store: {0}")]
    StoreInUse(crate::store::StoreError),
    #[error("directory: {0}")]
    Directory(String),
    #[error("relying parties: {0}")]
    RelyingParties(#[from] crate::rp::RpError),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("MFA: {0}")]
    Mfa(String),
    #[error("translations: {0}")]
    Catalogue(#[from] crate::i18n::CatalogueError),
}

/// What a first run created, so `serve` can tell the admin once.
#[derive(Debug, Default)]
pub struct FirstRun {
    pub key_created: bool,
    /// The demo user's password, generated now; printed once and never stored in clear.
    pub demo_password: Option<String>,
}

/// What `serve` prints once it listens: what a first run created, then where everything
/// is. `scheme` is `HTTP` or `HTTPS`. With the phone simulator on, its page is named too: a
/// developer's first sign-in with a push or a call is answered there.
pub fn banner(state: &AppContext, first: &FirstRun, scheme: &str) -> String {
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
    let listen = state.config.server.listen;
    let base = state.config.public_base();
    let admin_group = &state.config.admin.group;
    banner.push_str(&format!(
        "Tessera is listening on {listen} ({scheme})\n\
         \x20 home page      {base}/\n\
         \x20 login page     {base}/adfs/ls/  (SPs send their AuthnRequests here)\n\
         \x20 metadata       {base}/FederationMetadata/2007-06/FederationMetadata.xml\n\
         \x20 admin docs     {base}/docs\n\
         \x20 admin console  {base}/admin  (members of `{admin_group}`, with a second factor)\n"
    ));
    if state.simulator.is_some() {
        banner.push_str(&format!(
            "\x20 dev phone      {base}/dev/phone  (phone simulator: pushes, calls and texts arrive here; development only)\n"
        ));
    }
    banner
}

pub async fn build(
    mut config: Config,
    clock: Arc<dyn Clock>,
) -> Result<(AppState, FirstRun), StartError> {
    // Config::load resolves this already; configs built in code (tests, tools) may not have.
    let base = config.public_base().to_owned();
    config.mfa.gateway.resolve(&base).map_err(StartError::Mfa)?;
    let mut first = FirstRun::default();
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StartError::DataDir(data_dir.display().to_string(), e.to_string()))?;

    let host = url::Url::parse(&config.server.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".into());
    let (keys, created) = keys::load_or_create(
        data_dir,
        &config.idp.signing,
        &format!("Tessera Token Signing - {host}"),
    )?;
    first.key_created = created;

    let metrics = Arc::new(Metrics::new());
    // Every store and directory call is timed here, once, instead of at each call site.
    let store: Arc<dyn Store> = Arc::new(MeasuredStore {
        inner: open_store(&config, clock.clone()).await?,
        metrics: metrics.clone(),
    });

    let directory: Arc<dyn Directory> = match config.directory.kind {
        DirectoryKind::File => {
            let path = config.users_file();
            if !path.exists() {
                // A DNS name makes a plausible UPN suffix; an IP address or bare host does not.
                let dns_name = host.contains('.') && host.parse::<std::net::IpAddr>().is_err();
                let domain = if dns_name {
                    host.clone()
                } else {
                    "tessera.local".into()
                };
                first.demo_password =
                    Some(create_demo(&path, &domain).map_err(StartError::Directory)?);
            }
            Arc::new(FileDirectory::load(&path).map_err(|e| StartError::Directory(e.to_string()))?)
        }
        DirectoryKind::Ldap => {
            let settings = config
                .directory
                .ldap
                .clone()
                .ok_or_else(|| StartError::Directory("no [directory.ldap]".into()))?;
            Arc::new(
                LdapDirectory::new(settings).map_err(|e| StartError::Directory(e.to_string()))?,
            )
        }
    };

    let directory: Arc<dyn Directory> = Arc::new(MeasuredDirectory {
        inner: directory,
        metrics: metrics.clone(),
    });

    let rps = Registry::load(&config.metadata_dir, &config.relying_parties)?;

    // MFA: secrets sealed with a key in the data dir (every node of a farm needs the same
    // file), callback tokens signed with a sub-key of it.
    let secrets = SecretBox::load_or_create(&data_dir.join("mfa.key"))
        .map_err(|e| StartError::Mfa(e.to_string()))?;
    let tokens = TokenSigner::new(&secrets.derive("callback-token"));
    let gateway = gateway::build(&config.mfa.gateway, config.public_base())
        .map_err(|e| StartError::Mfa(e.to_string()))?;
    let simulator = match SimConfig::from_settings(
        &config.mfa.gateway,
        format!("{}/mfa/sms/inbound", config.public_base()),
    ) {
        Some(c) => {
            let liveness = crate::sim::Liveness {
                store: store.clone(),
                clock: clock.clone(),
                tokens: tokens.clone(),
            };
            Some(SimState::watching(c, liveness).map_err(|e| StartError::Mfa(e.to_string()))?)
        }
        None => None,
    };
    let keys = LiveKeys::new(keys, endpoints(&config)).map_err(StartError::Metadata)?;

    let rps = LiveRegistry::new(rps)
        .reloading_from(config.metadata_dir.clone(), config.relying_parties.clone());
    let catalogue = Arc::new(Catalogue::embedded()?);
    let ctx = AppContext {
        templates: crate::web::templates(catalogue.clone()),
        catalogue,
        settings: LiveSettings::new(config.mfa.clone(), gateway, config.public_base()),
        secrets,
        tokens,
        timing: Timing::default(),
        simulator,
        proxies: Arc::new(crate::web::client::Proxies::from_config(&config.server)),
        config,
        keys,
        rps,
        store,
        directory,
        clock,
        metrics,
        branding: Default::default(),
    };
    Ok((Arc::new(ctx), first))
}

/// How often expired records are swept out of the store.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Starts the background housekeeping of a built context: expired flows and replay-cache
/// entries would otherwise stay in the redb file until touched again. The first sweep runs
/// at once. Runs until the handle is aborted (the end of `serve`, a test's server dropped).
pub fn spawn_housekeeping(ctx: &AppState) -> tokio::task::JoinHandle<()> {
    let store = ctx.store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            match store.purge_expired().await {
                Ok(n) if n > 0 => tracing::debug!(removed = n, "expired records purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
            }
        }
    })
}

/// The configured store. The embedded one is a file only one process may hold open.
pub async fn open_store(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StartError> {
    Ok(match config.store.backend {
        StoreKind::Embedded => Arc::new({
            let path = config.store_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StartError::DataDir(dir.display().to_string(), e.to_string()))?;
            }
            EmbeddedStore::open(&path, clock).map_err(|e| match e {
                e @ crate::store::StoreError::InUse(_) => StartError::StoreInUse(e),
                e => StartError::Store(e.to_string()),
            })?
        }),
        StoreKind::Redis => {
            let s = &config.store;
            // Validation made sure there are sentinels with a master name, or a URL.
            let endpoint = match &s.redis_master_name {
                Some(name) if !s.redis_sentinels.is_empty() => {
                    Endpoint::Sentinel(SentinelSettings {
                        sentinels: s.redis_sentinels.clone(),
                        master_name: name.clone(),
                        password: s.redis_password.clone(),
                        sentinel_password: s.redis_sentinel_password.clone(),
                    })
                }
                _ => Endpoint::Url {
                    url: s.redis_url.clone().unwrap_or_default(),
                    ca_pem: match &s.redis_ca_file {
                        Some(path) => Some(std::fs::read(path).map_err(|e| {
                            StartError::Store(format!(
                                "store.redis_ca_file {}: {e}",
                                path.display()
                            ))
                        })?),
                        None => None,
                    },
                },
            };
            Arc::new(
                RedisStore::connect_to(endpoint, &s.redis_prefix)
                    .await
                    .map_err(|e| StartError::Store(e.to_string()))?,
            )
        }
    })
}

pub fn endpoints(config: &Config) -> IdpEndpoints {
    IdpEndpoints {
        entity_id: config.entity_id(),
        sso: format!("{}/adfs/ls/", config.public_base()),
        // SLO shares the AD FS endpoint: the message type tells requests apart.
        slo: Some(format!("{}/adfs/ls/", config.public_base())),
    }
}
