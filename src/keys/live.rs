//! The token-signing keys in force on every node: the current key (the data dir's file until a console rollover, then the store's) and the next key, published in metadata ahead of a rollover.
//!
//! Keys made in the console are kept in the store sealed with the farm's `mfa.key`
//! (AES-256-GCM), so every node signs with the same key and none is ever stored in clear.

use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use super::{KeyError, KeyMaterial};
use crate::mfa::secrets::{Sealed, SecretBox};
use crate::saml::metadata::{IdpEndpoints, idp_metadata};
use crate::store::watch::Watched;
use crate::store::{self, Store, StoreError};

pub const KEYS_KEY: &str = "signing:keys";
/// Additional data binding sealed signing keys to their purpose.
const AAD: &[u8] = b"token-signing-key";

/// A key pair kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// PKCS#8 PEM of the private key, sealed.
    pub key: Sealed,
    pub cert_pem: String,
    pub created: i64,
}

/// The store record: no `current` means the data dir's key is current.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredKeys {
    pub current: Option<StoredKey>,
    pub next: Option<StoredKey>,
}

impl StoredKey {
    pub fn seal(
        secrets: &SecretBox,
        key: &PKey<openssl::pkey::Private>,
        cert: &X509,
        now: i64,
    ) -> Result<Self, KeyError> {
        let pem = key.private_key_to_pem_pkcs8()?;
        Ok(StoredKey {
            key: secrets.seal(&pem, AAD),
            cert_pem: String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
            created: now,
        })
    }

    pub fn open(&self, secrets: &SecretBox) -> Result<KeyMaterial, KeyError> {
        let pem = secrets
            .open(&self.key, AAD)
            .map_err(|e| KeyError::Unusable(format!("stored signing key: {e}")))?;
        let key = PKey::private_key_from_pem(&pem)?;
        let cert = X509::from_pem(self.cert_pem.as_bytes())?;
        KeyMaterial::new(key, cert)
    }
}

/// What signing and metadata use, derived together.
pub struct Signing {
    pub current: KeyMaterial,
    pub next: Option<KeyMaterial>,
    /// Our signed metadata, rebuilt whenever the keys change (signing it per request would
    /// waste CPU).
    pub metadata_xml: String,
    /// The current key is the data dir's file (no console rollover yet).
    pub current_from_file: bool,
}

impl Signing {
    pub fn new(
        current: KeyMaterial,
        next: Option<KeyMaterial>,
        endpoints: &IdpEndpoints,
        from_file: bool,
    ) -> Result<Self, String> {
        let metadata_xml =
            idp_metadata(endpoints, &current, next.as_ref()).map_err(|e| e.to_string())?;
        Ok(Signing {
            current,
            next,
            metadata_xml,
            current_from_file: from_file,
        })
    }
}

pub async fn load(store: &dyn Store) -> Result<(StoredKeys, Option<Vec<u8>>), StoreError> {
    let raw = store.get(KEYS_KEY).await?;
    let keys = match &raw {
        Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
            key: KEYS_KEY.into(),
            detail: e.to_string(),
        })?,
        None => StoredKeys::default(),
    };
    Ok((keys, raw))
}

/// Replaces the record only if it is still `expected` (two admins rolling over at once:
/// one wins, the other is told).
pub async fn save(
    store: &dyn Store,
    expected: Option<&[u8]>,
    keys: &StoredKeys,
) -> Result<bool, StoreError> {
    let bytes = serde_json::to_vec(keys).map_err(|e| StoreError::Corrupt {
        key: KEYS_KEY.into(),
        detail: e.to_string(),
    })?;
    store
        .compare_and_set(KEYS_KEY, expected, &bytes, None)
        .await
}

pub struct LiveKeys {
    file: KeyMaterial,
    endpoints: IdpEndpoints,
    signing: Watched<Signing>,
}

impl LiveKeys {
    pub fn new(file: KeyMaterial, endpoints: IdpEndpoints) -> Result<Self, String> {
        let first = Signing::new(file.clone(), None, &endpoints, true)?;
        let signing = Watched::new("token-signing keys", first);
        // A rollover made before this node started applies from its first request.
        signing.invalidate();
        Ok(LiveKeys {
            file,
            endpoints,
            signing,
        })
    }

    /// The data dir's key, loaded at start.
    pub fn file(&self) -> &KeyMaterial {
        &self.file
    }

    /// The keys in force now.
    pub async fn current(&self, store: &dyn Store, secrets: &SecretBox) -> Arc<Signing> {
        self.signing
            .get(store, KEYS_KEY, |raw| async move {
                let keys: StoredKeys = match raw {
                    Some(b) => serde_json::from_slice(&b).map_err(|e| e.to_string())?,
                    None => StoredKeys::default(),
                };
                let (current, from_file) = match &keys.current {
                    Some(k) => (k.open(secrets).map_err(|e| e.to_string())?, false),
                    None => (self.file.clone(), true),
                };
                let next = match &keys.next {
                    Some(k) => Some(k.open(secrets).map_err(|e| e.to_string())?),
                    None => None,
                };
                Signing::new(current, next, &self.endpoints, from_file)
            })
            .await
    }

    pub fn invalidate(&self) {
        self.signing.invalidate();
    }
}

/// Reads a stored record for display without opening keys.
pub async fn stored(store: &dyn Store) -> Result<StoredKeys, StoreError> {
    Ok(store::get_json(store, KEYS_KEY).await?.unwrap_or_default())
}
