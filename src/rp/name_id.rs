//! The NameID a relying party gets: a request's NameIDPolicy judged against the trust's
//! allowed formats (SAML core §3.4.1.1), and the pairwise persistent identifiers kept in the
//! store (SAML core §8.3.7).
//!
//! Persistent identifiers are random (128 bits, hex), never derived from the user's name, so
//! two SPs cannot join their records and nobody can compute one from a UPN. Each is stored
//! once per (SP, user) under `nameid:persistent:<sha256(SP entity ID)>:<sha256(user key)>`
//! and created with `put_if_absent`: two nodes of a farm racing on a first sign-in agree on
//! the value the store kept. The record has no TTL: it must outlive every restart.

use crate::directory::UserInfo;
use crate::saml::request::NameIdPolicy;
use crate::saml::response::{NameIdValue, NameQualifiers, Recipient};
use crate::store::{Store, StoreError};

use super::{NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED, RelyingParty};

/// The formats Tessera can issue on request (SAML core §8.3). Others — x509SubjectName,
/// windowsDomainQualifiedName, kerberos, entity — are refused with InvalidNameIDPolicy.
const SUPPORTED: [&str; 4] = [
    NAMEID_UNSPECIFIED,
    NAMEID_EMAIL,
    NAMEID_PERSISTENT,
    NAMEID_TRANSIENT,
];

/// A format written in config: the URI, or its last segment (`transient`, `emailAddress`).
fn format_uri(written: &str) -> Option<&'static str> {
    let w = written.trim();
    SUPPORTED
        .into_iter()
        .find(|uri| *uri == w || short_name(uri) == w)
}

/// A NameID format URI by its last segment (`transient`, `emailAddress`): how config may
/// write it and how the console and `tessera rp list` show it.
pub fn short_name(format: &str) -> &str {
    format.rsplit(':').next().unwrap_or(format)
}

/// The formats a trust allows a NameIDPolicy to ask for: the configured list (default: every
/// supported format), always with the trust's own default format and `unspecified` (which
/// asks for nothing in particular: SAML core §8.3.1).
pub fn allowed_formats(
    default: &str,
    configured: Option<&[String]>,
) -> Result<Vec<String>, String> {
    let mut out = vec![default.to_owned()];
    let listed: Vec<&str> = match configured {
        None => SUPPORTED.to_vec(),
        Some(list) => list
            .iter()
            .map(|f| {
                format_uri(f).ok_or_else(|| {
                    format!(
                        "name_id_formats: `{f}` is not a format Tessera issues (unspecified, emailAddress, persistent, transient)"
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    for f in std::iter::once(NAMEID_UNSPECIFIED).chain(listed) {
        if !out.iter().any(|o| o == f) {
            out.push(f.to_owned());
        }
    }
    Ok(out)
}

/// Why a NameIDPolicy cannot be met: answered to the SP as InvalidNameIDPolicy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("NameID format {0:?} is not one Tessera issues")]
    Unsupported(String),
    #[error("NameID format {0:?} is not allowed for this relying party")]
    NotAllowed(String),
    /// SAML core §3.4.1.1: affiliations (a qualifier naming a group of SPs) are not
    /// supported; only the requester itself may be named.
    #[error("SPNameQualifier {0:?} is not the requester's entity ID")]
    ForeignQualifier(String),
    #[error("no persistent NameID exists yet and the request says AllowCreate=false")]
    NoCreate,
    #[error("user {0} has no mail address for an emailAddress NameID")]
    NoMail(String),
}

/// What the NameID resolution failed on.
#[derive(Debug, thiserror::Error)]
pub enum NameIdError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which kind of NameID a request resolves to, before the store is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The trust's configured NameID: its source attribute under its default format (as
    /// before NameIDPolicy was honoured: NetScaler keeps the UPN for Citrix FAS).
    Configured,
    /// SAML core §8.3.2: the user's mail attribute.
    Mail,
    /// SAML core §8.3.8: an opaque value per SSO session and relying party.
    Transient,
    /// SAML core §8.3.7: the stored pairwise value; created when none exists only if
    /// `allow_create`.
    Persistent { allow_create: bool },
}

/// Judges the request's NameIDPolicy (none for IdP-initiated sign-in and WS-Federation)
/// against the trust. An absent or `unspecified` Format gets the trust's default format.
/// AllowCreate only matters for persistent identifiers: transient ones are new by nature.
/// An absent NameIDPolicy constrains nothing, so creating is allowed then.
pub fn choose(rp: &RelyingParty, policy: Option<&NameIdPolicy>) -> Result<Choice, PolicyError> {
    if let Some(q) = policy.and_then(|p| p.sp_name_qualifier.as_deref())
        && q != rp.entity_id
    {
        return Err(PolicyError::ForeignQualifier(q.to_owned()));
    }
    let requested = policy
        .and_then(|p| p.format.as_deref())
        .filter(|f| *f != NAMEID_UNSPECIFIED);
    let format = match requested {
        None => rp.name_id_format.as_str(),
        Some(f) if f == rp.name_id_format => f,
        Some(f) if !SUPPORTED.contains(&f) => return Err(PolicyError::Unsupported(f.to_owned())),
        Some(f) if !rp.name_id_formats.iter().any(|a| a == f) => {
            return Err(PolicyError::NotAllowed(f.to_owned()));
        }
        Some(f) => f,
    };
    Ok(match format {
        NAMEID_TRANSIENT => Choice::Transient,
        NAMEID_PERSISTENT => Choice::Persistent {
            allow_create: policy.is_none_or(|p| p.allow_create),
        },
        f if f == rp.name_id_format => Choice::Configured,
        _ => Choice::Mail,
    })
}

/// A resolved NameID: what goes into the assertion and what the session remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameId {
    pub value: String,
    pub format: String,
    pub qualifiers: Option<NameQualifiers>,
}

impl NameId {
    /// Puts this NameID into the recipient the response builder reads.
    pub fn apply(&self, r: &mut Recipient) {
        r.name_id = NameIdValue::Value(self.value.clone());
        r.name_id_format = self.format.clone();
        r.name_id_qualifiers = self.qualifiers.clone();
    }
}

/// Resolves the NameID `rp` gets for `user`. `transient` gives the session's value for this
/// RP (made once per SSO session and RP by the caller). `Ok(None)`: the user has no value for
/// the trust's configured source (the "your account lacks the attribute" page).
pub async fn resolve(
    store: &dyn Store,
    rp: &RelyingParty,
    user: &UserInfo,
    policy: Option<&NameIdPolicy>,
    idp_entity_id: &str,
    transient: impl FnOnce() -> String,
) -> Result<Option<NameId>, NameIdError> {
    let plain = |value: String, format: &str| NameId {
        value,
        format: format.to_owned(),
        qualifiers: None,
    };
    Ok(match choose(rp, policy)? {
        Choice::Configured => rp
            .name_id_source
            .values(user)
            .into_iter()
            .next()
            .filter(|v| !v.is_empty())
            .map(|v| plain(v, &rp.name_id_format)),
        Choice::Mail => match user.mail.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => Some(plain(m.to_owned(), NAMEID_EMAIL)),
            _ => return Err(PolicyError::NoMail(user.username.clone()).into()),
        },
        Choice::Transient => Some(plain(transient(), NAMEID_TRANSIENT)),
        Choice::Persistent { allow_create } => {
            let value = persistent(store, &rp.entity_id, user, allow_create)
                .await?
                .ok_or(PolicyError::NoCreate)?;
            Some(NameId {
                value,
                format: NAMEID_PERSISTENT.to_owned(),
                qualifiers: Some(NameQualifiers {
                    name_qualifier: idp_entity_id.to_owned(),
                    sp_name_qualifier: rp.entity_id.clone(),
                }),
            })
        }
    })
}

/// The user keys a persistent identifier may be stored under, preferred first. A directory
/// object's immutable ID (AD `objectGUID`, OpenLDAP `entryUUID`, when the directory is set
/// to read it) survives renames; the lower-cased user name is the fallback and stays a
/// lookup candidate, so turning the object ID on later keeps the identifiers already issued.
fn user_keys(user: &UserInfo) -> Vec<String> {
    let object_id = ["objectguid", "entryuuid"].into_iter().find_map(|a| {
        user.attributes
            .get(a)
            .and_then(|v| v.first())
            .filter(|v| !v.trim().is_empty())
            .map(|v| format!("{a}:{}", v.trim()))
    });
    object_id
        .into_iter()
        .chain(std::iter::once(format!(
            "username:{}",
            user.username.to_lowercase()
        )))
        .collect()
}

/// The store key of the identifier for `sp` and one user key. Hashed: the key stays short
/// whatever the entity ID, and a copy of the store does not list who uses which SP by name.
fn store_key(sp: &str, user_key: &str) -> String {
    format!(
        "nameid:persistent:{}:{}",
        crate::store::sha256_hex(sp),
        crate::store::sha256_hex(user_key)
    )
}

/// The pairwise persistent identifier of `user` at `sp`: the stored one, or (when `create`)
/// a new random one. `None` when none exists and `create` is false.
pub async fn persistent(
    store: &dyn Store,
    sp: &str,
    user: &UserInfo,
    create: bool,
) -> Result<Option<String>, StoreError> {
    let keys: Vec<String> = user_keys(user).iter().map(|k| store_key(sp, k)).collect();
    for key in &keys {
        if let Some(v) = store.get(key).await? {
            return Ok(Some(String::from_utf8_lossy(&v).into_owned()));
        }
    }
    if !create {
        return Ok(None);
    }
    let fresh = crate::saml::random_hex(16);
    if store
        .put_if_absent(&keys[0], fresh.as_bytes(), None)
        .await?
    {
        return Ok(Some(fresh));
    }
    // Another node created it first: the value the store kept is the one everyone uses.
    let kept = store
        .get(&keys[0])
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            key: keys[0].clone(),
            detail: "persistent NameID vanished after a lost creation race".into(),
        })?;
    Ok(Some(String::from_utf8_lossy(&kept).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::rp::RpConfig;
    use crate::store::embedded::EmbeddedStore;

    fn rp(entity: &str, default: Option<&str>, formats: Option<&[&str]>) -> RelyingParty {
        let cfg = RpConfig {
            entity_id: Some(entity.into()),
            acs: vec![format!("{entity}/acs")],
            name_id_format: default.map(str::to_owned),
            name_id_formats: formats.map(|f| f.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        RelyingParty::from_config(&cfg, None, "test", Path::new(".")).expect("rp")
    }

    fn policy(format: Option<&str>, allow_create: bool) -> NameIdPolicy {
        NameIdPolicy {
            format: format.map(str::to_owned),
            sp_name_qualifier: None,
            allow_create,
        }
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            username: name.into(),
            upn: Some(format!("{name}@corp.example")),
            mail: Some(format!("{}.mail@corp.example", name.to_lowercase())),
            ..Default::default()
        }
    }

    #[test]
    fn the_default_allows_every_supported_format_and_config_names_them_short() {
        let all = rp("https://sp", None, None);
        assert_eq!(all.name_id_formats.len(), 4);
        let narrow = rp("https://sp", Some(NAMEID_EMAIL), Some(&["transient"]));
        assert_eq!(
            narrow.name_id_formats,
            [NAMEID_EMAIL, NAMEID_UNSPECIFIED, NAMEID_TRANSIENT]
        );
        let bad = allowed_formats(
            NAMEID_UNSPECIFIED,
            Some(&["urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName".into()]),
        );
        assert!(bad.is_err_and(|e| e.contains("X509SubjectName")));
    }

    #[test]
    fn the_policy_picks_the_kind_of_name_id() {
        let sp = rp("https://sp", None, None);
        assert_eq!(choose(&sp, None), Ok(Choice::Configured));
        let ask = |f: &str, create| choose(&sp, Some(&policy(Some(f), create)));
        assert_eq!(ask(NAMEID_UNSPECIFIED, false), Ok(Choice::Configured));
        assert_eq!(ask(NAMEID_TRANSIENT, false), Ok(Choice::Transient));
        assert_eq!(ask(NAMEID_EMAIL, false), Ok(Choice::Mail));
        assert_eq!(
            ask(NAMEID_PERSISTENT, false),
            Ok(Choice::Persistent {
                allow_create: false
            })
        );
        let x509 = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";
        assert_eq!(ask(x509, true), Err(PolicyError::Unsupported(x509.into())));
        // A persistent default without a policy may create (nothing constrains it).
        let p = rp("https://sp", Some(NAMEID_PERSISTENT), None);
        assert_eq!(
            choose(&p, None),
            Ok(Choice::Persistent { allow_create: true })
        );
        let narrow = rp("https://sp", None, Some(&["unspecified"]));
        assert_eq!(
            choose(&narrow, Some(&policy(Some(NAMEID_TRANSIENT), true))),
            Err(PolicyError::NotAllowed(NAMEID_TRANSIENT.into()))
        );
    }

    #[test]
    fn only_the_requester_may_qualify_the_name() {
        let sp = rp("https://sp", None, None);
        let mut p = policy(Some(NAMEID_PERSISTENT), true);
        p.sp_name_qualifier = Some("https://sp".into());
        assert!(choose(&sp, Some(&p)).is_ok());
        p.sp_name_qualifier = Some("https://affiliation".into());
        assert_eq!(
            choose(&sp, Some(&p)),
            Err(PolicyError::ForeignQualifier("https://affiliation".into()))
        );
    }

    #[tokio::test]
    async fn persistent_ids_are_pairwise_stable_and_never_the_upn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let (a, b) = (rp("https://a", None, None), rp("https://b", None, None));
        let ann = user("Ann");
        let ask = Some(policy(Some(NAMEID_PERSISTENT), true));
        async fn get(
            store: &EmbeddedStore,
            sp: &RelyingParty,
            u: &UserInfo,
            p: Option<&NameIdPolicy>,
        ) -> Result<Option<NameId>, NameIdError> {
            resolve(store, sp, u, p, "https://idp", String::new).await
        }
        let first = get(&store, &a, &ann, ask.as_ref())
            .await
            .expect("ok")
            .expect("id");
        assert_eq!(first.format, NAMEID_PERSISTENT);
        assert_eq!(first.value.len(), 32);
        assert!(!first.value.contains("ann"), "{}", first.value);
        let q = first.qualifiers.clone().expect("qualifiers");
        assert_eq!(
            (q.name_qualifier.as_str(), q.sp_name_qualifier.as_str()),
            ("https://idp", "https://a")
        );
        // The same user (whatever the case of the name typed) gets it again at `a`.
        let again = get(&store, &a, &user("ANN"), ask.as_ref())
            .await
            .expect("ok");
        assert_eq!(again.map(|n| n.value), Some(first.value.clone()));
        let other_sp = get(&store, &b, &ann, ask.as_ref())
            .await
            .expect("ok")
            .expect("id");
        assert_ne!(other_sp.value, first.value);
        let other_user = get(&store, &a, &user("bob"), ask.as_ref())
            .await
            .expect("ok");
        assert_ne!(other_user.map(|n| n.value), Some(first.value.clone()));
        // AllowCreate=false: the existing one is given, a new one is not made.
        let no_create = Some(policy(Some(NAMEID_PERSISTENT), false));
        let kept = get(&store, &a, &ann, no_create.as_ref()).await.expect("ok");
        assert_eq!(kept.map(|n| n.value), Some(first.value.clone()));
        let refused = get(&store, &a, &user("carol"), no_create.as_ref()).await;
        assert!(matches!(
            refused,
            Err(NameIdError::Policy(PolicyError::NoCreate))
        ));
        // Turning on objectGUID later keeps the identifier issued under the name.
        let mut with_guid = ann.clone();
        with_guid
            .attributes
            .insert("objectguid".into(), vec!["AbC=".into()]);
        let found = get(&store, &a, &with_guid, no_create.as_ref())
            .await
            .expect("ok");
        assert_eq!(found.map(|n| n.value), Some(first.value));
    }

    #[tokio::test]
    async fn a_lost_creation_race_yields_the_winners_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let ann = user("ann");
        let key = store_key("https://a", &user_keys(&ann)[0]);
        // Stands for the other node's write landing between our read and our create.
        assert!(
            store
                .put_if_absent(&key, b"winner", None)
                .await
                .expect("put")
        );
        let ours = persistent(&store, "https://a", &ann, true)
            .await
            .expect("ok");
        assert_eq!(ours.as_deref(), Some("winner"));
    }

    #[tokio::test]
    async fn email_and_configured_names_come_from_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let sp = rp("https://sp", None, None);
        let ann = user("ann");
        let mail = Some(policy(Some(NAMEID_EMAIL), false));
        let got = resolve(&store, &sp, &ann, mail.as_ref(), "i", String::new)
            .await
            .expect("ok")
            .expect("id");
        assert_eq!(
            (got.value.as_str(), got.format.as_str()),
            ("ann.mail@corp.example", NAMEID_EMAIL)
        );
        let no_mail = UserInfo {
            mail: None,
            ..ann.clone()
        };
        let r = resolve(&store, &sp, &no_mail, mail.as_ref(), "i", String::new).await;
        assert!(matches!(
            r,
            Err(NameIdError::Policy(PolicyError::NoMail(_)))
        ));
        let plain = resolve(&store, &sp, &ann, None, "i", String::new)
            .await
            .expect("ok")
            .expect("id");
        assert_eq!(plain.value, "ann@corp.example");
        let no_upn = UserInfo { upn: None, ..ann };
        let missing = resolve(&store, &sp, &no_upn, None, "i", String::new).await;
        assert!(matches!(missing, Ok(None)));
    }
}
