//! The hardware-token inventory (`hwtoken:<serial>`): assign, activate, verify (TOTP and HOTP), resync, remove.
//!
//! One JSON record per token, its secret sealed with the node key and bound to the serial
//! (AAD `hwtoken/<serial>`). Every change is a compare-and-set, so two nodes (or a sign-in
//! and an admin) changing one token cannot lose a write; for HOTP that CAS on the counter is
//! the replay protection across a farm. A token counts for sign-in only once activated with
//! one valid code: activation adds a `TokenKind::Hardware` entry to the user's registration
//! (the per-user index), and sign-in verifies through this record.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{Mode, ParsedToken};
use crate::mfa::oath::{self, OathParams, Verdict};
use crate::mfa::registration::{self, TokenKind};
use crate::mfa::secrets::{Sealed, SecretBox};
use crate::store::{Store, StoreError};

/// Codes ahead of the stored counter an HOTP token may be (button presses not used to sign
/// in), RFC 4226 §7.4's look-ahead parameter s: the default of `mfa.hotp_window`.
pub const HOTP_WINDOW: u64 = 10;
/// How far ahead two consecutive codes may be found when resynchronising (RFC 4226 §7.4:
/// a larger window, safe because two codes in a row must match): the default of
/// `mfa.hotp_resync_window`.
pub const HOTP_RESYNC_WINDOW: u64 = 100;

/// The HOTP windows in force. The functions without `_within` use the defaults, so callers
/// without the settings at hand (and older callers) keep the documented behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotpWindows {
    pub look_ahead: u64,
    pub resync: u64,
}

impl Default for HotpWindows {
    fn default() -> Self {
        HotpWindows {
            look_ahead: HOTP_WINDOW,
            resync: HOTP_RESYNC_WINDOW,
        }
    }
}

impl HotpWindows {
    /// `mfa.hotp_window` and `mfa.hotp_resync_window`.
    pub fn of(mfa: &crate::mfa::settings::MfaSettings) -> HotpWindows {
        HotpWindows {
            look_ahead: u64::from(mfa.hotp_window),
            resync: u64::from(mfa.hotp_resync_window),
        }
    }
}
const KEY_PREFIX: &str = "hwtoken:";

/// What the inventory works with.
pub struct Deps<'a> {
    pub store: &'a dyn Store,
    pub secrets: &'a SecretBox,
    pub now: i64,
}

/// One hardware token in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwToken {
    pub serial: String,
    #[serde(default)]
    pub manufacturer: String,
    #[serde(default)]
    pub model: String,
    /// Sealed with AAD `hwtoken/<serial>`.
    pub secret: Sealed,
    pub params: OathParams,
    pub mode: Mode,
    /// The directory's canonical user name.
    #[serde(default)]
    pub assigned: Option<String>,
    /// When the assigned user's token was activated with a valid code.
    #[serde(default)]
    pub activated: Option<i64>,
    #[serde(default)]
    pub last_used: Option<i64>,
    #[serde(default)]
    pub imported: i64,
}

impl HwToken {
    pub fn kind_name(&self) -> &'static str {
        match self.mode {
            Mode::Totp => "TOTP",
            Mode::Hotp { .. } => "HOTP",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token with serial number {0}")]
    NotFound(String),
    #[error("token {0} is not assigned to a user")]
    NotAssigned(String),
    #[error("token {serial} is already assigned to {user}")]
    AlreadyAssigned { serial: String, user: String },
    /// The help desk's assign-and-activate: the assignment stands, the activation did not.
    #[error(
        "token {serial} is now assigned to {user} but not activated ({reason}); the user can activate it in the portal"
    )]
    NotActivated {
        serial: String,
        user: String,
        reason: String,
    },
    #[error("the code is not correct")]
    WrongCode,
    #[error("time-based tokens need no resynchronisation")]
    NotHotp,
    #[error("the token's secret cannot be opened (wrong mfa.key?)")]
    Secret,
    #[error("no user `{0}` in the directory")]
    UnknownUser(String),
    #[error("directory unavailable: {0}")]
    Directory(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn key(serial: &str) -> String {
    format!("{KEY_PREFIX}{}", serial.to_ascii_lowercase())
}

fn aad(serial: &str) -> String {
    format!("hwtoken/{}", serial.to_ascii_lowercase())
}

pub async fn get(store: &dyn Store, serial: &str) -> Result<Option<HwToken>, StoreError> {
    crate::store::get_json(store, &key(serial)).await
}

/// Every token, sorted by serial. For admin listings.
pub async fn list(store: &dyn Store) -> Result<Vec<HwToken>, StoreError> {
    let mut out = Vec::new();
    for k in store.keys(KEY_PREFIX).await? {
        if let Some(t) = crate::store::get_json(store, &k).await? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Stores checked tokens, each only if its serial is still free; if another import took a
/// serial meanwhile, the ones stored by this call are taken back and that row reported.
pub(super) async fn store_all(
    deps: &Deps<'_>,
    tokens: &[ParsedToken],
) -> Result<super::ImportReport, StoreError> {
    let mut report = super::ImportReport::default();
    for t in tokens {
        let record = HwToken {
            serial: t.serial.clone(),
            manufacturer: t.manufacturer.clone(),
            model: t.model.clone(),
            secret: deps.secrets.seal(&t.secret, aad(&t.serial).as_bytes()),
            params: t.params,
            mode: t.mode,
            assigned: t.user.clone(),
            activated: None,
            last_used: None,
            imported: deps.now,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
            key: key(&t.serial),
            detail: e.to_string(),
        })?;
        if !deps
            .store
            .put_if_absent(&key(&t.serial), &bytes, None)
            .await?
        {
            for s in report.imported.drain(..) {
                deps.store.delete(&key(&s)).await?;
            }
            let p =
                super::RowProblem::at(t.row, &t.serial, "serial number already in the inventory");
            report.problems.push(p);
            return Ok(report);
        }
        report.imported.push(t.serial.clone());
    }
    Ok(report)
}

/// Applies `change` to the token with compare-and-set, retried on a concurrent write.
async fn update<T>(
    store: &dyn Store,
    serial: &str,
    mut change: impl FnMut(&mut HwToken) -> Result<T, TokenError> + Send,
) -> Result<(HwToken, T), TokenError> {
    let k = key(serial);
    for _ in 0..16 {
        let old = store.get(&k).await?;
        let Some(bytes) = &old else {
            return Err(TokenError::NotFound(serial.to_owned()));
        };
        let mut t: HwToken = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            key: k.clone(),
            detail: e.to_string(),
        })?;
        let out = change(&mut t)?;
        let new = serde_json::to_vec(&t).map_err(|e| StoreError::Corrupt {
            key: k.clone(),
            detail: e.to_string(),
        })?;
        if store
            .compare_and_set(&k, old.as_deref(), &new, None)
            .await?
        {
            return Ok((t, out));
        }
    }
    Err(StoreError::Backend(format!("{k}: too many concurrent updates")).into())
}

/// Assigns a token to a user (the directory's canonical name); not usable before activation.
pub async fn assign(store: &dyn Store, serial: &str, user: &str) -> Result<HwToken, TokenError> {
    let (t, ()) = update(store, serial, |t| match &t.assigned {
        Some(u) if !u.eq_ignore_ascii_case(user) => Err(TokenError::AlreadyAssigned {
            serial: t.serial.clone(),
            user: u.clone(),
        }),
        _ => {
            t.assigned = Some(user.to_owned());
            Ok(())
        }
    })
    .await?;
    Ok(t)
}

/// Takes a token from its user: it leaves their registration and must be activated again.
pub async fn unassign(store: &dyn Store, serial: &str) -> Result<HwToken, TokenError> {
    let (t, previous) = update(store, serial, |t| {
        t.activated = None;
        Ok(t.assigned.take())
    })
    .await?;
    if let Some(user) = previous {
        forget(store, &user, &t.serial).await?;
    }
    Ok(t)
}

/// Unassigns and deletes a token.
pub async fn remove(store: &dyn Store, serial: &str) -> Result<HwToken, TokenError> {
    let t = unassign(store, serial).await?;
    store.delete(&key(serial)).await?;
    Ok(t)
}

/// Removes the token from the user's registration.
async fn forget(store: &dyn Store, user: &str, serial: &str) -> Result<(), StoreError> {
    let same = |k: &TokenKind| matches!(k, TokenKind::Hardware { serial: s } if s.eq_ignore_ascii_case(serial));
    registration::update(store, user, |reg| reg.tokens.retain(|t| !same(&t.kind))).await?;
    Ok(())
}

/// Activates an assigned token with one valid code: from now on it counts for sign-in.
pub async fn activate(deps: &Deps<'_>, serial: &str, code: &str) -> Result<HwToken, TokenError> {
    activate_within(deps, HotpWindows::default(), serial, code).await
}

/// `activate` with the HOTP look-ahead in force.
pub async fn activate_within(
    deps: &Deps<'_>,
    windows: HotpWindows,
    serial: &str,
    code: &str,
) -> Result<HwToken, TokenError> {
    let t = get(deps.store, serial)
        .await?
        .ok_or_else(|| TokenError::NotFound(serial.to_owned()))?;
    let user = t
        .assigned
        .clone()
        .ok_or_else(|| TokenError::NotAssigned(serial.to_owned()))?;
    if check_code(deps, &t, code, windows.look_ahead).await? != Verdict::Accepted {
        return Err(TokenError::WrongCode);
    }
    let (t, ()) = update(deps.store, serial, |t| {
        t.activated = Some(deps.now);
        Ok(())
    })
    .await?;
    let label = format!("{} {}", t.model, t.serial).trim().to_owned();
    let secret = open(deps.secrets, &t)?;
    let kind = TokenKind::Hardware {
        serial: t.serial.clone(),
    };
    registration::update(deps.store, &user, |reg| {
        let same = |k: &TokenKind| k == &kind;
        if !reg.tokens.iter().any(|x| same(&x.kind)) {
            // The sealed copy is bound to the user like an app's; codes are still checked
            // against the inventory record, which holds the HOTP counter.
            reg.add_oath(
                deps.secrets,
                &label,
                kind.clone(),
                &secret,
                t.params,
                deps.now,
            );
        }
    })
    .await?;
    Ok(t)
}

fn open(sb: &SecretBox, t: &HwToken) -> Result<Vec<u8>, TokenError> {
    sb.open(&t.secret, aad(&t.serial).as_bytes())
        .map_err(|_| TokenError::Secret)
}

/// The sign-in check: `code` from the token `serial`, which must be assigned to `user` and
/// activated. Each code is accepted once (TOTP step marker, HOTP counter).
pub async fn verify_for(
    deps: &Deps<'_>,
    serial: &str,
    user: &str,
    code: &str,
) -> Result<bool, TokenError> {
    verify_for_within(deps, HotpWindows::default(), serial, user, code).await
}

/// `verify_for` with the HOTP look-ahead in force.
pub async fn verify_for_within(
    deps: &Deps<'_>,
    windows: HotpWindows,
    serial: &str,
    user: &str,
    code: &str,
) -> Result<bool, TokenError> {
    Ok(check_for_within(deps, windows, serial, user, code).await? == Verdict::Accepted)
}

/// The sign-in's check (`verify_for_within`), saying why a code was refused: wrong (or not
/// this user's token), or right but already used.
pub async fn check_for_within(
    deps: &Deps<'_>,
    windows: HotpWindows,
    serial: &str,
    user: &str,
    code: &str,
) -> Result<Verdict, TokenError> {
    let Some(t) = get(deps.store, serial).await? else {
        return Ok(Verdict::Wrong);
    };
    let mine = t
        .assigned
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(user));
    if !mine || t.activated.is_none() {
        return Ok(Verdict::Wrong);
    }
    check_code(deps, &t, code, windows.look_ahead).await
}

/// Checks a code and consumes it: TOTP through the shared step-replay guard
/// (`oath::verify_once`, RFC 6238 §5.2), HOTP by advancing the counter past it (RFC 4226 §7.2)
/// with compare-and-set. Records the time of use. An HOTP code another node consumed first
/// counts as used.
async fn check_code(
    deps: &Deps<'_>,
    t: &HwToken,
    code: &str,
    look_ahead: u64,
) -> Result<Verdict, TokenError> {
    let secret = open(deps.secrets, t)?;
    let code = code.trim();
    let verdict = match t.mode {
        Mode::Totp => {
            let replay = format!("hw/{}", t.serial.to_ascii_lowercase());
            oath::check_once(deps.store, &replay, &secret, &t.params, code, deps.now).await?
        }
        Mode::Hotp { counter } => {
            let Some(at) = hotp_match(&secret, &t.params, counter, look_ahead, &[code]) else {
                return Ok(Verdict::Wrong);
            };
            if advance(deps.store, &t.serial, counter, at + 1).await? {
                Verdict::Accepted
            } else {
                Verdict::Replayed
            }
        }
    };
    if verdict == Verdict::Accepted {
        let now = deps.now;
        update(deps.store, &t.serial, |t| {
            t.last_used = Some(now);
            Ok(())
        })
        .await?;
    }
    Ok(verdict)
}

/// Moves an HOTP counter from `seen` to `next`; `false` when another node moved it first
/// (that code, or a later one, was used there: refusing is the replay protection).
async fn advance(
    store: &dyn Store,
    serial: &str,
    seen: u64,
    next: u64,
) -> Result<bool, TokenError> {
    let r = update(store, serial, |t| match t.mode {
        Mode::Hotp { counter } if counter == seen => {
            t.mode = Mode::Hotp { counter: next };
            Ok(())
        }
        _ => Err(TokenError::WrongCode),
    })
    .await;
    match r {
        Ok(_) => Ok(true),
        Err(TokenError::WrongCode) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The first counter c in `from..from+window` where `codes` are the codes of c, c+1, ….
/// Every candidate is computed and compared in constant time, so timing does not tell how
/// far ahead the token is.
fn hotp_match(
    secret: &[u8],
    p: &OathParams,
    from: u64,
    window: u64,
    codes: &[&str],
) -> Option<u64> {
    let well_formed =
        |c: &&str| c.len() == usize::from(p.digits) && c.bytes().all(|b| b.is_ascii_digit());
    if codes.is_empty() || !codes.iter().all(well_formed) {
        return None;
    }
    let mut found = None;
    for c in from..from.saturating_add(window) {
        let mut all = subtle::Choice::from(1);
        for (i, code) in codes.iter().enumerate() {
            let expected = oath::hotp(secret, p.algorithm, p.digits, c + i as u64);
            all &= expected.as_bytes().ct_eq(code.as_bytes());
        }
        if found.is_none() && bool::from(all) {
            found = Some(c);
        }
    }
    found
}

/// Resynchronises an HOTP token from two consecutive codes found within the larger window
/// (RFC 4226 §7.4); the counter moves past the second.
pub async fn resync(
    deps: &Deps<'_>,
    serial: &str,
    first: &str,
    second: &str,
) -> Result<HwToken, TokenError> {
    resync_within(deps, HotpWindows::default(), serial, first, second).await
}

/// `resync` with the resynchronisation window in force.
pub async fn resync_within(
    deps: &Deps<'_>,
    windows: HotpWindows,
    serial: &str,
    first: &str,
    second: &str,
) -> Result<HwToken, TokenError> {
    let t = get(deps.store, serial)
        .await?
        .ok_or_else(|| TokenError::NotFound(serial.to_owned()))?;
    let Mode::Hotp { counter } = t.mode else {
        return Err(TokenError::NotHotp);
    };
    let secret = open(deps.secrets, &t)?;
    let codes = [first.trim(), second.trim()];
    let at = hotp_match(&secret, &t.params, counter, windows.resync, &codes)
        .ok_or(TokenError::WrongCode)?;
    if !advance(deps.store, serial, counter, at + 2).await? {
        return Err(TokenError::WrongCode);
    }
    get(deps.store, serial)
        .await?
        .ok_or_else(|| TokenError::NotFound(serial.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::embedded::EmbeddedStore;

    const SEED: &[u8] = b"12345678901234567890";
    /// RFC 4226 Appendix D, counters 0..=9.
    const HOTP: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    fn setup() -> (tempfile::TempDir, Arc<EmbeddedStore>, SecretBox) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(
            time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        ));
        let s = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
        (dir, Arc::new(s), SecretBox::from_key([7; 32]))
    }

    fn token(serial: &str, mode: Mode, user: Option<&str>) -> ParsedToken {
        ParsedToken {
            row: 2,
            serial: serial.into(),
            manufacturer: "V".into(),
            model: "M".into(),
            secret: SEED.to_vec(),
            params: OathParams::default(),
            mode,
            user: user.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn hotp_activation_window_replay_and_resync() {
        let (_d, store, sb) = setup();
        let deps = Deps {
            store: &*store,
            secrets: &sb,
            now: 1_700_000_000,
        };
        let r = store_all(
            &deps,
            &[token("H1", Mode::Hotp { counter: 0 }, Some("alice"))],
        )
        .await
        .unwrap();
        assert_eq!(r.imported, ["H1"]);
        // Not activated: sign-in refuses even a right code.
        assert!(!verify_for(&deps, "H1", "alice", HOTP[0]).await.unwrap());
        activate(&deps, "H1", HOTP[1]).await.unwrap();
        let reg = registration::load(&*store, "alice").await.unwrap();
        assert_eq!(reg.tokens.len(), 1);
        assert_eq!(
            reg.tokens[0].kind,
            TokenKind::Hardware {
                serial: "H1".into()
            }
        );
        // Codes at or below the counter are refused (replay), later ones within the window pass.
        assert!(!verify_for(&deps, "H1", "alice", HOTP[1]).await.unwrap());
        assert!(!verify_for(&deps, "H1", "alice", HOTP[0]).await.unwrap());
        assert!(!verify_for(&deps, "H1", "bob", HOTP[3]).await.unwrap());
        assert!(verify_for(&deps, "H1", "alice", HOTP[3]).await.unwrap());
        assert!(!verify_for(&deps, "H1", "alice", HOTP[3]).await.unwrap());
        let t = get(&*store, "H1").await.unwrap().unwrap();
        assert_eq!(t.mode, Mode::Hotp { counter: 4 });
        assert_eq!(t.last_used, Some(1_700_000_000));
        // Resync: two consecutive codes far ahead (computed, beyond the small window).
        let p = OathParams::default();
        let c50 = oath::hotp(SEED, p.algorithm, 6, 50);
        let c51 = oath::hotp(SEED, p.algorithm, 6, 51);
        assert!(!verify_for(&deps, "H1", "alice", &c50).await.unwrap());
        assert!(matches!(
            resync(&deps, "H1", &c51, &c50).await,
            Err(TokenError::WrongCode)
        ));
        let t = resync(&deps, "H1", &c50, &c51).await.unwrap();
        assert_eq!(t.mode, Mode::Hotp { counter: 52 });
        assert!(!verify_for(&deps, "H1", "alice", &c51).await.unwrap());
        let c52 = oath::hotp(SEED, p.algorithm, 6, 52);
        assert!(verify_for(&deps, "H1", "alice", &c52).await.unwrap());
        // Unassign takes it out of the registration and out of sign-in.
        unassign(&*store, "H1").await.unwrap();
        assert!(
            registration::load(&*store, "alice")
                .await
                .unwrap()
                .tokens
                .is_empty()
        );
        remove(&*store, "H1").await.unwrap();
        assert!(get(&*store, "H1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn totp_activation_and_replay() {
        let (_d, store, sb) = setup();
        let now = 1_700_000_000;
        let deps = Deps {
            store: &*store,
            secrets: &sb,
            now,
        };
        store_all(&deps, &[token("T1", Mode::Totp, None)])
            .await
            .unwrap();
        let code = oath::code_at(SEED, &OathParams::default(), now);
        assert!(matches!(
            activate(&deps, "T1", &code).await,
            Err(TokenError::NotAssigned(_))
        ));
        assign(&*store, "T1", "bob").await.unwrap();
        assert!(matches!(
            assign(&*store, "T1", "carol").await,
            Err(TokenError::AlreadyAssigned { .. })
        ));
        assert!(matches!(
            activate(&deps, "T1", "000000").await,
            Err(TokenError::WrongCode)
        ));
        activate(&deps, "T1", &code).await.unwrap();
        // The activation code is used up; the next step's code signs in once.
        assert!(!verify_for(&deps, "T1", "bob", &code).await.unwrap());
        let next = Deps {
            now: now + 30,
            ..deps
        };
        let code2 = oath::code_at(SEED, &OathParams::default(), now + 30);
        assert!(verify_for(&next, "T1", "BOB", &code2).await.unwrap());
        assert!(!verify_for(&next, "T1", "bob", &code2).await.unwrap());
        assert!(matches!(
            resync(&deps, "T1", "1", "2").await,
            Err(TokenError::NotHotp)
        ));
    }

    #[tokio::test]
    async fn secrets_are_sealed_to_the_serial() {
        let (_d, store, sb) = setup();
        let deps = Deps {
            store: &*store,
            secrets: &sb,
            now: 0,
        };
        store_all(&deps, &[token("S1", Mode::Totp, None)])
            .await
            .unwrap();
        let raw = store.get(&key("S1")).await.unwrap().unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            !text.contains("GEZDGNBV") && !text.contains("1234567890"),
            "{text}"
        );
        let mut t = get(&*store, "S1").await.unwrap().unwrap();
        t.serial = "S2".into();
        assert!(open(&sb, &t).is_err());
        // A second import of the same serial is refused and leaves nothing new behind.
        let r = store_all(
            &deps,
            &[token("N1", Mode::Totp, None), token("s1", Mode::Totp, None)],
        )
        .await
        .unwrap();
        assert!(r.imported.is_empty());
        assert_eq!(r.problems.len(), 1);
        assert!(get(&*store, "N1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn hotp_windows_in_force_bound_activation_sign_in_and_resync() {
        let (_d, store, sb) = setup();
        let deps = Deps {
            store: &*store,
            secrets: &sb,
            now: 1_700_000_000,
        };
        let t = token("H2", Mode::Hotp { counter: 0 }, Some("alice"));
        store_all(&deps, &[t]).await.unwrap();
        let narrow = HotpWindows {
            look_ahead: 2,
            resync: 3,
        };
        // Counter 0, look-ahead 2: codes 0 and 1 only.
        let far = activate_within(&deps, narrow, "H2", HOTP[2]).await;
        assert!(matches!(far, Err(TokenError::WrongCode)), "{far:?}");
        activate_within(&deps, narrow, "H2", HOTP[1]).await.unwrap();
        assert!(
            !verify_for_within(&deps, narrow, "H2", "alice", HOTP[4])
                .await
                .unwrap()
        );
        assert!(
            verify_for_within(&deps, narrow, "H2", "alice", HOTP[3])
                .await
                .unwrap()
        );
        // Counter 4: the pair at 8 is beyond a resync window of 3, within the default.
        let far = resync_within(&deps, narrow, "H2", HOTP[8], HOTP[9]).await;
        assert!(matches!(far, Err(TokenError::WrongCode)), "{far:?}");
        resync(&deps, "H2", HOTP[8], HOTP[9]).await.unwrap();
    }
}
