//! The MFA policy in force: the config file's `[mfa]` with the admin's overrides from the Store, re-read at most once a second per node.
//!
//! Overrides are one JSON object under `settings:mfa`, mapping table keys (`mfa::table`) to
//! values; only keys an admin changed are in it, so an untouched key still follows the
//! config file. Every node reads the same record, so a change made on one node is in force
//! on all of them within `REFRESH` — no restart, no message bus.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::gateway::{self, Gateway};
use super::gateway::{PushKind, VoiceSmsKind};
use super::networks::NetRange;
use super::settings::MfaSettings;
use super::table;
use crate::store::watch::Watched;
use crate::store::{Store, StoreError};

pub const OVERRIDES_KEY: &str = "settings:mfa";
pub use crate::store::watch::REFRESH;

/// Admin overrides: table key → value.
pub type Overrides = BTreeMap<String, Value>;

/// What a sign-in step needs from the settings, derived together so they always agree.
pub struct Policy {
    pub mfa: MfaSettings,
    pub trusted: Vec<NetRange>,
    pub gateway: Arc<dyn Gateway>,
}

pub struct LiveSettings {
    base: MfaSettings,
    public_base: String,
    policy: Watched<Policy>,
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
        let policy = Watched::new("mfa settings", policy);
        // Overrides stored before this node started apply from its first sign-in.
        policy.invalidate();
        LiveSettings {
            base,
            public_base: public_base.to_owned(),
            policy,
        }
    }

    /// The config file's settings, before overrides.
    pub fn base(&self) -> &MfaSettings {
        &self.base
    }

    /// The policy in force. A store that cannot be read, or overrides that no longer apply
    /// (the config file changed under them), keep the last good policy and say so in the log.
    pub async fn policy(&self, store: &dyn Store) -> Arc<Policy> {
        self.policy
            .get(store, OVERRIDES_KEY, |raw| async move {
                self.derive(raw.as_deref())
            })
            .await
    }

    /// The next `policy` call reads the store: a change made through this node is in force
    /// here at once (other nodes follow within `REFRESH`).
    pub fn invalidate(&self) {
        self.policy.invalidate();
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
