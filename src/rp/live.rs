//! The relying-party trusts in force: those loaded from files at start plus those admins manage in the console, kept in the Store and re-read at most once a second per node.
//!
//! Console-managed trusts are records `rp:<slug>` (their SP metadata and options); every
//! change bumps the counter `rpversion`, which nodes poll, so a trust added on one node
//! signs users in on every node within a second, without a restart. File trusts are
//! read-only in the console (a console trust may not reuse their entity IDs); the metadata
//! folder is read again whenever the counter moves, so `tessera rp remove` of a file trust
//! (which deletes the files, then bumps the counter) drops it on a running server too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{Registry, RelyingParty, RpConfig};
use crate::saml::metadata::parse_sp_metadata;
use crate::store::watch::Watched;
use crate::store::{self, Store, StoreError};

pub const PREFIX: &str = "rp:";
pub const VERSION_KEY: &str = "rpversion";

/// A console-managed trust as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRp {
    /// The SP's metadata, as imported.
    pub metadata_xml: String,
    /// Options on top of the metadata (the same keys as a sidecar `.toml`).
    pub config: RpConfig,
    pub updated_by: String,
    pub updated_at: i64,
}

impl StoredRp {
    /// Builds the trust; `Err` says why it cannot be used (checked before anything is
    /// stored, so a stored record normally builds).
    pub fn build(&self, slug: &str) -> Result<RelyingParty, String> {
        if !self.config.cert_files.is_empty() {
            return Err(
                "certificates of console trusts come from the metadata, not from files".into(),
            );
        }
        if self.config.metadata_file.is_some() {
            return Err("a console trust carries its metadata itself".into());
        }
        let md = parse_sp_metadata(&self.metadata_xml).map_err(|e| e.to_string())?;
        RelyingParty::from_config(
            &self.config,
            Some(md),
            &format!("console:{slug}"),
            Path::new("."),
        )
    }
}

fn key(slug: &str) -> String {
    format!("{PREFIX}{slug}")
}

/// Every console-managed trust, by slug.
pub async fn load_all(store: &dyn Store) -> Result<Vec<(String, StoredRp)>, StoreError> {
    let mut out = Vec::new();
    for k in store.keys(PREFIX).await? {
        let Some(slug) = k.strip_prefix(PREFIX) else {
            continue;
        };
        if let Some(rp) = store::get_json::<StoredRp>(store, &k).await? {
            out.push((slug.to_owned(), rp));
        }
    }
    Ok(out)
}

pub async fn load(store: &dyn Store, slug: &str) -> Result<Option<StoredRp>, StoreError> {
    store::get_json(store, &key(slug)).await
}

/// Stores (adds or replaces) a trust and tells every node.
pub async fn save(store: &dyn Store, slug: &str, rp: &StoredRp) -> Result<(), StoreError> {
    store::put_json(store, &key(slug), rp, None).await?;
    store.incr(VERSION_KEY, 1, None).await.map(drop)
}

/// Removes a trust and tells every node; `false` when there was none.
pub async fn remove(store: &dyn Store, slug: &str) -> Result<bool, StoreError> {
    let removed = store.delete(&key(slug)).await?;
    store.incr(VERSION_KEY, 1, None).await?;
    Ok(removed)
}

pub struct LiveRegistry {
    /// Behind a lock because a change of `rpversion` re-reads the metadata folder.
    files: RwLock<Arc<Registry>>,
    /// Where the file trusts come from; `None`: they never change (tests, tools).
    sources: Option<(PathBuf, Vec<RpConfig>)>,
    registry: Watched<Registry>,
}

impl LiveRegistry {
    /// `files`: the trusts loaded from the metadata folder and the config at start.
    pub fn new(files: Registry) -> Self {
        let registry = Watched::new("relying parties", files.merged(Vec::new()));
        // Console trusts may exist already: read the store on first use.
        registry.invalidate();
        LiveRegistry {
            files: RwLock::new(Arc::new(files)),
            sources: None,
            registry,
        }
    }

    /// Re-reads the file trusts from `metadata_dir` and `configured` whenever the trusts
    /// change. A folder that no longer loads keeps the last good file trusts, logged: a
    /// half-copied file must not drop every SP.
    pub fn reloading_from(mut self, metadata_dir: PathBuf, configured: Vec<RpConfig>) -> Self {
        self.sources = Some((metadata_dir, configured));
        self
    }

    /// The trusts loaded from files (not editable in the console).
    pub fn files(&self) -> Arc<Registry> {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn reload_files(&self) -> Arc<Registry> {
        if let Some((dir, configured)) = &self.sources {
            match Registry::load(dir, configured) {
                Ok(reg) => {
                    *self
                        .files
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(reg);
                }
                Err(e) => {
                    tracing::error!(error = %e, "metadata folder does not load; keeping the file trusts in force");
                }
            }
        }
        self.files()
    }

    /// The trusts in force now. A store that cannot be read keeps the last good set.
    pub async fn current(&self, store: &dyn Store) -> Arc<Registry> {
        self.registry
            .get(store, VERSION_KEY, |_| async move {
                let stored = load_all(store).await.map_err(|e| e.to_string())?;
                let built = stored
                    .into_iter()
                    .filter_map(|(slug, rp)| match rp.build(&slug) {
                        Ok(rp) => Some(rp),
                        Err(e) => {
                            tracing::error!(slug = %slug, error = %e, "console trust does not build; skipped");
                            None
                        }
                    })
                    .collect();
                Ok(self.reload_files().merged(built))
            })
            .await
    }

    /// The next `current` call reads the store (after a change made through this node).
    pub fn invalidate(&self) {
        self.registry.invalidate();
    }
}
