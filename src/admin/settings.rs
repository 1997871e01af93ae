//! Applies an admin's setting changes: validated as a whole, stored with compare-and-set, each changed key logged.

use serde_json::Value;

use super::Actor;
use super::changes::{self, Change};
use crate::mfa::live::{self, Invalid, OVERRIDES_KEY, Overrides};
use crate::mfa::settings::MfaSettings;
use crate::mfa::table::{self, Setting};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The new settings do not validate; nothing was stored.
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Other admins kept changing the settings at the same moment.
    #[error("the settings were changed by someone else at the same time; try again")]
    Busy,
}

/// The settings in force now: the config file's with the stored overrides. Overrides that no
/// longer validate against the config file are ignored here as in `LiveSettings`.
pub async fn current(
    store: &dyn Store,
    base: &MfaSettings,
) -> Result<(MfaSettings, Overrides), StoreError> {
    let (overrides, _) = live::load(store).await?;
    let effective = live::effective(base, &overrides).unwrap_or_else(|_| base.clone());
    Ok((effective, overrides))
}

/// Sets each `(setting, value)`; a value equal to the config file's removes the override, so
/// the key follows the file again. Returns the changes made (none when nothing differed).
pub async fn apply(
    store: &dyn Store,
    base: &MfaSettings,
    actor: &Actor,
    now: i64,
    edits: &[(&'static Setting, Value)],
) -> Result<Vec<Change>, ApplyError> {
    for _ in 0..5 {
        let (overrides, raw) = live::load(store).await?;
        let before = live::effective(base, &overrides).unwrap_or_else(|_| base.clone());
        let mut next = overrides.clone();
        for (setting, value) in edits {
            if table::get(base, setting.key) == *value {
                next.remove(setting.key);
            } else {
                next.insert(setting.key.to_owned(), value.clone());
            }
        }
        let after = live::effective(base, &next).map_err(ApplyError::Invalid)?;
        let changed: Vec<Change> = edits
            .iter()
            .filter_map(|(s, _)| {
                let (old, new) = (table::get(&before, s.key), table::get(&after, s.key));
                (old != new).then(|| {
                    Change::new(
                        actor,
                        now,
                        "settings.update",
                        s.key,
                        Some(table::display(s, &old)),
                        Some(table::display(s, &new)),
                    )
                })
            })
            .collect();
        if changed.is_empty() && next == overrides {
            return Ok(Vec::new());
        }
        let bytes = serde_json::to_vec(&next).map_err(|e| StoreError::Corrupt {
            key: OVERRIDES_KEY.into(),
            detail: e.to_string(),
        })?;
        if store
            .compare_and_set(OVERRIDES_KEY, raw.as_deref(), &bytes, None)
            .await?
        {
            changes::record(store, now, &changed).await?;
            return Ok(changed);
        }
    }
    Err(ApplyError::Busy)
}
