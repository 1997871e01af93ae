//! Token-signing certificate rollover: generate the next key (published in metadata at once), roll over to it, or discard it — each logged, shared by every node through the store.

use super::changes::{self, Change};
use super::{Actor, AdminError, refused};
use crate::keys::live::{self, StoredKey, StoredKeys};
use crate::keys::{KeyMaterial, generate};
use crate::mfa::secrets::SecretBox;
use crate::store::Store;

/// How long a generated token-signing certificate is valid (AD FS uses one year and renews
/// automatically; rollover here is deliberate, so allow more time between them).
pub const VALIDITY_DAYS: u32 = 3 * 365;

/// What a rollover step did, for the log: SHA-1 thumbprints.
fn thumb(k: &KeyMaterial) -> String {
    format!("SHA-1 {}", k.thumbprint_sha1)
}

/// Generates the next key pair; it is published in metadata from now on.
pub async fn generate_next(
    store: &dyn Store,
    secrets: &SecretBox,
    actor: &Actor,
    now: i64,
    common_name: &str,
) -> Result<Change, AdminError> {
    let (keys, raw) = live::load(store).await?;
    if keys.next.is_some() {
        return refused("A next certificate exists already: roll over to it or discard it first.");
    }
    let (key, cert) =
        generate(common_name, VALIDITY_DAYS).map_err(|e| AdminError::Refused(e.to_string()))?;
    let material = KeyMaterial::new(key.clone(), cert.clone())
        .map_err(|e| AdminError::Refused(e.to_string()))?;
    let stored = StoredKey::seal(secrets, &key, &cert, now)
        .map_err(|e| AdminError::Refused(e.to_string()))?;
    let next = StoredKeys {
        next: Some(stored),
        ..keys
    };
    if !live::save(store, raw.as_deref(), &next).await? {
        return refused(
            "The certificates were changed at the same moment by someone else; reload and try again.",
        );
    }
    let c = Change::new(
        actor,
        now,
        "cert.generate_next",
        "token-signing",
        None,
        Some(thumb(&material)),
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

/// Makes the next key the current one. `current` is what signs now (file or store).
pub async fn rollover(
    store: &dyn Store,
    secrets: &SecretBox,
    current: &KeyMaterial,
    actor: &Actor,
    now: i64,
) -> Result<Change, AdminError> {
    let (keys, raw) = live::load(store).await?;
    let Some(next) = keys.next.clone() else {
        return refused("There is no next certificate to roll over to: generate one first.");
    };
    let new = next
        .open(secrets)
        .map_err(|e| AdminError::Refused(e.to_string()))?;
    let rolled = StoredKeys {
        current: Some(next),
        next: None,
    };
    if !live::save(store, raw.as_deref(), &rolled).await? {
        return refused(
            "The certificates were changed at the same moment by someone else; reload and try again.",
        );
    }
    let c = Change::new(
        actor,
        now,
        "cert.rollover",
        "token-signing",
        Some(thumb(current)),
        Some(thumb(&new)),
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}

/// Drops the next key without using it.
pub async fn discard_next(
    store: &dyn Store,
    secrets: &SecretBox,
    actor: &Actor,
    now: i64,
) -> Result<Change, AdminError> {
    let (keys, raw) = live::load(store).await?;
    let Some(next) = &keys.next else {
        return refused("There is no next certificate.");
    };
    let before = next.open(secrets).map(|k| thumb(&k)).ok();
    let kept = StoredKeys {
        next: None,
        ..keys.clone()
    };
    if !live::save(store, raw.as_deref(), &kept).await? {
        return refused(
            "The certificates were changed at the same moment by someone else; reload and try again.",
        );
    }
    let c = Change::new(
        actor,
        now,
        "cert.discard_next",
        "token-signing",
        before,
        None,
    );
    changes::record(store, now, std::slice::from_ref(&c)).await?;
    Ok(c)
}
