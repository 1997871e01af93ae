//! Enrollment links: a single-use, time-limited link the help desk gives a user to add an authenticator app.
//!
//! The link carries 256 random bits; the store keeps only their SHA-256 (`enrolllink:<hex>`),
//! so a copy of the store does not hold usable links. The record holds the user and the
//! authenticator secret, sealed with the node key and bound to the link, so the QR code is
//! the same on every visit. Confirming with one code from the app adds it to the user's
//! registration and spends the link (deleted first: of two parallel confirmations only the
//! one that deleted it adds the app). Wrong codes take from the user's per-user code budget
//! (`mfa::lockout`) before they are checked, as at sign-in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lockout;
use super::oath::{self, OathParams};
use super::registration::{self, TokenKind};
use super::secrets::{Sealed, SecretBox, random_bytes};
use super::settings::MfaSettings;
use crate::store::{self, Store, StoreError};

/// What the sign-in log calls a link's confirmation (`rp`), as the portal's actions are
/// `rp = "portal"`: the user's history, the console's user page and the sign-in log show it.
pub const RP: &str = "enrollment link";

/// A link token is 32 random bytes in lower-case hex.
pub const TOKEN_LEN: usize = 64;
/// Wrong codes one link takes before it is spent: on top of the user's code lock, so a
/// leaked link cannot be worked on for its whole validity.
pub const MAX_WRONG_CODES: i64 = 10;

/// A link waiting to be used, stored as `enrolllink:<sha256 of the token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollLink {
    pub username: String,
    /// The authenticator secret, sealed with AAD `enroll-link/<sha256 of the token>`.
    pub secret: Sealed,
    pub created: i64,
    pub expires: i64,
}

fn digest(token: &str) -> String {
    hex::encode(openssl::sha::sha256(token.as_bytes()))
}

pub fn key(token: &str) -> String {
    format!("enrolllink:{}", digest(token))
}

/// Wrong codes counted against one link.
fn failures_key(token: &str) -> String {
    format!("enrolllinkfail:{}", digest(token))
}

fn aad(token: &str) -> String {
    format!("enroll-link/{}", digest(token))
}

/// Whether `token` has a link token's shape; anything else is never looked up.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Creates a link for `username`, valid `hours`; returns the token (shown once, never stored)
/// and when it expires.
pub async fn create(
    store: &dyn Store,
    sb: &SecretBox,
    username: &str,
    hours: u32,
    now: i64,
) -> Result<(String, i64), StoreError> {
    let token = hex::encode(random_bytes::<32>());
    let secs = i64::from(hours) * 3600;
    let link = EnrollLink {
        username: username.to_owned(),
        secret: sb.seal(&oath::generate_secret(), aad(&token).as_bytes()),
        created: now,
        expires: now + secs,
    };
    let ttl = Duration::from_secs(secs.unsigned_abs());
    store::put_json(store, &key(&token), &link, Some(ttl)).await?;
    Ok((token, link.expires))
}

/// The link behind `token` if it is live (known, not spent, not expired).
pub async fn open(
    store: &dyn Store,
    token: &str,
    now: i64,
) -> Result<Option<EnrollLink>, StoreError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let link = store::get_json::<EnrollLink>(store, &key(token)).await?;
    Ok(link.filter(|l| now < l.expires))
}

/// The link's authenticator secret, for the QR code; `None` when it does not open (another
/// node key).
pub fn secret(sb: &SecretBox, token: &str, link: &EnrollLink) -> Option<Vec<u8>> {
    sb.open(&link.secret, aad(token).as_bytes()).ok()
}

/// What a confirmation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The app is now one of the user's tokens; the link is spent.
    Added {
        username: String,
        token_id: String,
    },
    WrongCode,
    /// The user's code entry is locked (`mfa::lockout`): nothing was checked.
    Locked,
    /// Unknown, spent or expired link.
    Invalid,
}

/// Checks `code` against the link's secret and, if right, adds the app and spends the link.
pub async fn confirm(
    store: &dyn Store,
    sb: &SecretBox,
    mfa: &MfaSettings,
    token: &str,
    code: &str,
    now: i64,
) -> Result<Confirmed, StoreError> {
    let Some(link) = open(store, token, now).await? else {
        return Ok(Confirmed::Invalid);
    };
    let Some(secret) = secret(sb, token, &link) else {
        return Ok(Confirmed::Invalid);
    };
    let reg = registration::load(store, &link.username).await?;
    let nth = match lockout::reserve(store, mfa, &reg, now).await? {
        lockout::Attempt::Check { nth } => nth,
        lockout::Attempt::Locked { .. } => return Ok(Confirmed::Locked),
    };
    let params = OathParams::default();
    let code = code.trim();
    if code.len() > 10 || oath::matching_step(&secret, &params, code, now).is_none() {
        let locked = lockout::failed(store, mfa, &link.username, nth, now).await?;
        let left = Duration::from_secs((link.expires - now).unsigned_abs());
        let wrong = store.incr(&failures_key(token), 1, Some(left)).await?;
        if wrong >= MAX_WRONG_CODES {
            store.delete(&key(token)).await?;
            tracing::warn!(target: "audit", user = %link.username, "enrollment link spent after too many wrong codes");
        }
        return Ok(if locked.is_some() {
            Confirmed::Locked
        } else {
            Confirmed::WrongCode
        });
    }
    if !store.delete(&key(token)).await? {
        return Ok(Confirmed::Invalid);
    }
    lockout::succeeded(store, &reg).await?;
    let (_, token_id) = registration::update(store, &link.username, |r| {
        r.add_oath(
            sb,
            "Authenticator app",
            TokenKind::App,
            &secret,
            params,
            now,
        )
    })
    .await?;
    // The confirming code is spent like a sign-in's (RFC 6238 §5.2): it cannot also be
    // replayed to sign in within its time step.
    let replay = format!("{}/{token_id}", link.username.to_lowercase());
    oath::verify_once(store, &replay, &secret, &params, code, now).await?;
    tracing::info!(target: "audit", user = %link.username, token = %token_id, "authenticator app added through an enrollment link");
    Ok(Confirmed::Added {
        username: link.username,
        token_id,
    })
}

/// Records a confirmed link in the sign-in log (`audit::SIGNIN_LOG`, besides the `audit`
/// target): the user acted, not an admin, so it is not in the change log. Grouped under the
/// new token's id, which names no secret.
pub async fn record_confirmed(
    store: &dyn Store,
    username: &str,
    token_id: &str,
    client_ip: &str,
    now: i64,
) -> Result<(), StoreError> {
    use crate::audit::{self, AuditEvent, Outcome};
    let at =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let flow = format!("enroll-link/{token_id}");
    let event = AuditEvent {
        at: crate::saml::saml_time(at),
        flow: &flow,
        user: Some(username),
        rp: RP,
        client_ip,
        from: RP,
        to: "enroll_link.confirm",
        method: Some("oath"),
        outcome: Outcome::Success,
        reason: Some("authenticator app added".into()),
    };
    audit::persist_one(store, &event, now).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn a_link_adds_an_app_once_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), clock).expect("store");
        let sb = SecretBox::from_key([7; 32]);
        let mfa = MfaSettings::default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (token, expires) = create(&store, &sb, "bob", 72, now).await.expect("create");
        assert_eq!(expires, now + 72 * 3600);
        assert!(
            store
                .get(&format!("enrolllink:{token}"))
                .await
                .unwrap()
                .is_none()
        );
        let link = open(&store, &token, now).await.unwrap().expect("live");
        assert!(
            open(&store, &token, expires).await.unwrap().is_none(),
            "expired"
        );
        assert!(open(&store, "zz", now).await.unwrap().is_none());
        let secret = secret(&sb, &token, &link).expect("opens");
        let wrong = confirm(&store, &sb, &mfa, &token, "000000x", now).await;
        assert_eq!(wrong.unwrap(), Confirmed::WrongCode);
        let code = oath::code_at(&secret, &OathParams::default(), now);
        let added = confirm(&store, &sb, &mfa, &token, &code, now)
            .await
            .unwrap();
        assert!(matches!(added, Confirmed::Added { .. }), "{added:?}");
        let again = confirm(&store, &sb, &mfa, &token, &code, now)
            .await
            .unwrap();
        assert_eq!(again, Confirmed::Invalid, "spent");
        let reg = registration::load(&store, "bob").await.unwrap();
        assert_eq!(reg.tokens.len(), 1);
        assert_eq!(reg.oath_secret(&sb, &reg.tokens[0].id).unwrap(), secret);
    }

    #[tokio::test]
    async fn a_link_is_spent_after_too_many_wrong_codes() {
        let dir = tempfile::tempdir().expect("dir");
        let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), clock).expect("store");
        let sb = SecretBox::from_key([7; 32]);
        // A budget per user large enough that the link's own cap is what ends it.
        let mfa = MfaSettings {
            code_failures_per_user: 100,
            ..MfaSettings::default()
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (token, _) = create(&store, &sb, "carol", 1, now).await.expect("create");
        for _ in 0..MAX_WRONG_CODES {
            let r = confirm(&store, &sb, &mfa, &token, "x", now).await.unwrap();
            assert_eq!(r, Confirmed::WrongCode);
        }
        assert!(open(&store, &token, now).await.unwrap().is_none(), "spent");
    }
}
