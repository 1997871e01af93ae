//! The MFA policy in force: the config file's `[mfa]` with the admin's overrides from the Store, re-read at most once a second per node.
//!
//! Overrides are one JSON object under `settings:mfa`, mapping table keys (`mfa::table`) to
//! values; only keys an admin changed are in it, so an untouched key still follows the
//! config file. Every node reads the same record, so a change made on one node is in force
//! on all of them within `REFRESH` — no restart, no message bus.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::gateway::{self, Gateway};
use super::gateway::{PushKind, VoiceSmsKind};
use super::networks::NetRange;
use super::settings::MfaSettings;
use super::table;
use crate::store::{Store, StoreError};

pub const OVERRIDES_KEY: &str = "settings:mfa";
/// How stale a node's view of the settings may be.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Admin overrides: table key → value.
pub type Overrides = BTreeMap<String, Value>;

/// What a sign-in step needs from the settings, derived together so they always agree.
pub struct Policy {
    pub mfa: MfaSettings,
    pub trusted: Vec<NetRange>,
    pub gateway: Arc<dyn Gateway>,
}

struct Snapshot {
    raw: Option<Vec<u8>>,
    /// When the store was last read; `None` forces a read (after a change on this node).
    checked: Option<Instant>,
    policy: Arc<Policy>,
}

pub struct LiveSettings {
    base: MfaSettings,
    public_base: String,
    snapshot: RwLock<Snapshot>,
}

/// Why overrides could not be applied; `key` names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {detail}")]
pub struct Invalid {
    pub key: String,
    pub detail: String,
}

/// `base` with `overrides` applied and validated as a whole.
pub fn effective(base: &MfaSettings, overrides: &Overrides) -> Result<MfaSettings, Invalid> {
    let mut s = base.clone();
    for (key, value) in overrides {
        if table::find(key).is_none() {
            return Err(Invalid {
                key: key.clone(),
                detail: "not a setting".into(),
            });
        }
        s = table::with(&s, key, value.clone()).map_err(|detail| Invalid {
            key: key.clone(),
            detail,
        })?;
    }
    s.validate().map_err(
        |(key, detail)| match (key.as_str(), detail.split_once(": ")) {
            // `[mfa.gateway]` errors read "field: detail"; name the table key instead.
            ("gateway", Some((field, rest))) => Invalid {
                key: format!("gateway.{field}"),
                detail: rest.to_owned(),
            },
            _ => Invalid { key, detail },
        },
    )?;
    // The simulator's endpoints are mounted at start only on a development install; pointing
    // a production node's gateway at them would make every push or call fail.
    let sim = "the phone simulator is available only when Tessera was started with it (development installs)";
    if s.gateway.push == PushKind::Simulator && base.gateway.push != PushKind::Simulator {
        return Err(Invalid {
            key: "gateway.push".into(),
            detail: sim.into(),
        });
    }
    if s.gateway.voice_sms == VoiceSmsKind::Simulator
        && base.gateway.voice_sms != VoiceSmsKind::Simulator
    {
        return Err(Invalid {
            key: "gateway.voice_sms".into(),
            detail: sim.into(),
        });
    }
    Ok(s)
}

/// Reads the stored overrides (empty when none); the raw bytes come along for a later
/// compare-and-set.
pub async fn load(store: &dyn Store) -> Result<(Overrides, Option<Vec<u8>>), StoreError> {
    let raw = store.get(OVERRIDES_KEY).await?;
    let overrides = match &raw {
        Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
            key: OVERRIDES_KEY.into(),
            detail: e.to_string(),
        })?,
        None => Overrides::new(),
    };
    Ok((overrides, raw))
}

impl LiveSettings {
    /// `gateway` is the one built at start from `base` (so a node without overrides builds
    /// nothing twice).
    pub fn new(base: MfaSettings, gateway: Arc<dyn Gateway>, public_base: &str) -> Self {
        let policy = Policy {
            trusted: base.trusted(),
            mfa: base.clone(),
            gateway,
        };
        LiveSettings {
            base,
            public_base: public_base.to_owned(),
            snapshot: RwLock::new(Snapshot {
                raw: None,
                checked: Some(Instant::now()),
                policy: Arc::new(policy),
            }),
        }
    }

    /// The config file's settings, before overrides.
    pub fn base(&self) -> &MfaSettings {
        &self.base
    }

    pub fn public_base(&self) -> &str {
        &self.public_base
    }

    /// The policy in force. A store that cannot be read, or overrides that no longer apply
    /// (the config file changed under them), keep the last good policy and say so in the log.
    pub async fn policy(&self, store: &dyn Store) -> Arc<Policy> {
        {
            let snap = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
            if snap.checked.is_some_and(|c| c.elapsed() < REFRESH) {
                return snap.policy.clone();
            }
        }
        let raw = match store.get(OVERRIDES_KEY).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(error = %e, "settings: store unreadable, keeping the settings in force");
                return self.touch(None);
            }
        };
        let unchanged = {
            let snap = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
            snap.raw == raw
        };
        if unchanged {
            return self.touch(None);
        }
        match self.derive(raw.as_deref()) {
            Ok(policy) => self.touch(Some((raw, Arc::new(policy)))),
            Err(e) => {
                tracing::error!(error = %e, "settings: stored overrides do not apply, keeping the settings in force");
                self.touch(None)
            }
        }
    }

    /// The next `policy` call reads the store: a change made through this node is in force
    /// here at once (other nodes follow within `REFRESH`).
    pub fn invalidate(&self) {
        self.snapshot
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .checked = None;
    }

    fn derive(&self, raw: Option<&[u8]>) -> Result<Policy, String> {
        let overrides: Overrides = match raw {
            Some(b) => serde_json::from_slice(b).map_err(|e| e.to_string())?,
            None => Overrides::new(),
        };
        let mfa = effective(&self.base, &overrides).map_err(|e| e.to_string())?;
        let gateway = gateway::build(&mfa.gateway, &self.public_base).map_err(|e| e.to_string())?;
        Ok(Policy {
            trusted: mfa.trusted(),
            mfa,
            gateway,
        })
    }

    /// Marks the snapshot fresh, replacing it when `new` is given; returns the one in force.
    fn touch(&self, new: Option<(Option<Vec<u8>>, Arc<Policy>)>) -> Arc<Policy> {
        let mut snap = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        snap.checked = Some(Instant::now());
        if let Some((raw, policy)) = new {
            snap.raw = raw;
            snap.policy = policy;
        }
        snap.policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_bad_ones_name_their_key() {
        let base = MfaSettings::default();
        let mut o = Overrides::new();
        o.insert("timeout_secs".into(), Value::from(30));
        assert_eq!(effective(&base, &o).unwrap().timeout_secs, 30);
        o.insert(
            "trusted_networks".into(),
            serde_json::json!(["10.0.0.0/33"]),
        );
        assert_eq!(effective(&base, &o).unwrap_err().key, "trusted_networks");
        let mut o = Overrides::new();
        o.insert("methods".into(), serde_json::json!(["oath"]));
        // company_default (push) is no longer offered: the cross-field rule names it.
        assert_eq!(effective(&base, &o).unwrap_err().key, "company_default");
        let mut o = Overrides::new();
        o.insert("secret_backdoor".into(), Value::from(true));
        assert_eq!(effective(&base, &o).unwrap_err().key, "secret_backdoor");
    }
}
