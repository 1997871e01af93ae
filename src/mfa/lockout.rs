//! Wrong verification codes counted per user across sign-ins and nodes, and the growing lock on code entry they lead to.
//!
//! A limit per sign-in is not enough: with the password known, a script starts a new
//! sign-in every few guesses. So every typed code (authenticator app, hardware token, text)
//! first takes one attempt from a per-user counter in the store — atomically, before the
//! code is checked, so parallel guesses from many flows and nodes each use one up. After
//! `code_failures_per_user` wrong codes within `code_failure_window_secs`, code entry is
//! locked for `code_lockout_secs`, doubled with each further lock in a row up to
//! `code_lockout_max_secs`. A correct code resets the count; an admin's
//! "unblock" ends a lock (it sets the lock's end to now, which also starts a new count). Push and calls, which the user answers on their own phone, keep
//! working while codes are locked, so an attacker who knows the password cannot use the lock
//! to keep the user out.

use std::time::Duration;

use super::registration::{self, Registration};
use super::settings::MfaSettings;
use crate::store::{Store, StoreError};

/// A lock that ended this long ago no longer makes the next one longer.
const LOCKS_IN_A_ROW_SECS: i64 = 86_400;

/// The store counter of a user's wrong codes (the user is the directory's canonical name,
/// never typed input). Each lock starts a new counter, named after the end of the last lock:
/// a guess from a sign-in that read the record before the lock still counts on the old,
/// spent counter and is refused, and the first guess after a lock starts from zero.
pub fn failure_key(reg: &Registration) -> String {
    format!(
        "codefail:{}:{}",
        reg.username.to_lowercase(),
        reg.codes_locked_until.unwrap_or(0)
    )
}

/// Whether a typed code may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check it; this is the user's `nth` code within the window.
    Check { nth: u32 },
    /// Code entry is locked until then; the code must not be checked.
    Locked { until: i64 },
}

/// Takes one attempt for `reg`'s user before a code is checked.
pub async fn reserve(
    store: &dyn Store,
    mfa: &MfaSettings,
    reg: &Registration,
    now: i64,
) -> Result<Attempt, StoreError> {
    if let Some(until) = reg.codes_locked_until.filter(|&u| u > now) {
        return Ok(Attempt::Locked { until });
    }
    let window = Duration::from_secs(mfa.code_failure_window_secs.into());
    let n = store.incr(&failure_key(reg), 1, Some(window)).await?;
    if n > i64::from(mfa.code_failures_per_user) {
        // Parallel guesses beyond the budget: the one that crossed it locks (or another
        // node already did; `lock` keeps the earlier lock).
        let until = lock(store, mfa, &reg.username, now).await?;
        return Ok(Attempt::Locked { until });
    }
    Ok(Attempt::Check {
        nth: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

/// After a wrong code that was the `nth`: locks code entry when the budget is used up.
/// Returns the lock's end when it did.
pub async fn failed(
    store: &dyn Store,
    mfa: &MfaSettings,
    username: &str,
    nth: u32,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    if nth < mfa.code_failures_per_user {
        return Ok(None);
    }
    lock(store, mfa, username, now).await.map(Some)
}

/// After a correct code: the count starts again. The doubling does not: it fades only a day
/// after the last lock ended, so an attacker cannot reset it by waiting for the user to
/// sign in.
pub async fn succeeded(store: &dyn Store, reg: &Registration) -> Result<(), StoreError> {
    store.delete(&failure_key(reg)).await?;
    Ok(())
}

/// `succeeded` as a write for a sign-in step to defer (`login::Deps::later`).
pub fn success_write(reg: &Registration) -> crate::store::Deferred {
    crate::store::Deferred::Delete {
        key: failure_key(reg),
    }
}

/// Locks code entry (unless already locked) and returns when the lock ends.
async fn lock(
    store: &dyn Store,
    mfa: &MfaSettings,
    username: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let (_, until) = registration::update(store, username, |r| {
        if let Some(until) = r.codes_locked_until.filter(|&u| u > now) {
            return until;
        }
        let in_a_row = r
            .codes_locked_until
            .is_some_and(|u| now - u < LOCKS_IN_A_ROW_SECS);
        r.code_lockouts = if in_a_row { r.code_lockouts + 1 } else { 1 };
        let until = now + lock_secs(mfa, r.code_lockouts);
        r.codes_locked_until = Some(until);
        until
    })
    .await?;
    tracing::warn!(target: "audit", user = %username, until, "verification codes locked after too many wrong codes");
    Ok(until)
}

/// The length of the `nth` lock in a row: the base, doubled each time, capped.
pub fn lock_secs(mfa: &MfaSettings, nth: u32) -> i64 {
    let base = i64::from(mfa.code_lockout_secs);
    let doublings = nth.saturating_sub(1).min(30);
    base.saturating_mul(1 << doublings)
        .min(i64::from(mfa.code_lockout_max_secs))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::embedded::EmbeddedStore;

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("dir");
        let clock = Arc::new(FixedClock::new(time::OffsetDateTime::UNIX_EPOCH));
        let s = EmbeddedStore::open(&dir.path().join("s.redb"), clock).expect("store");
        (dir, s)
    }

    fn settings() -> MfaSettings {
        MfaSettings {
            code_failures_per_user: 3,
            code_lockout_secs: 600,
            code_lockout_max_secs: 3_000,
            ..MfaSettings::default()
        }
    }

    #[test]
    fn locks_double_up_to_the_cap() {
        let m = settings();
        let lengths: Vec<i64> = (1..=5).map(|n| lock_secs(&m, n)).collect();
        assert_eq!(lengths, [600, 1_200, 2_400, 3_000, 3_000]);
        assert_eq!(lock_secs(&m, u32::MAX), 3_000);
    }

    async fn reserve_as(store: &dyn Store, m: &MfaSettings, now: i64) -> Attempt {
        let reg = registration::load(store, "Alice").await.expect("reg");
        reserve(store, m, &reg, now).await.expect("reserve")
    }

    /// Three wrong codes at `at` (the whole budget), each checked; then the next attempt.
    async fn spend_budget(store: &dyn Store, m: &MfaSettings, at: i64) -> Attempt {
        for nth in 1..=3 {
            assert_eq!(reserve_as(store, m, at).await, Attempt::Check { nth });
            let locked = failed(store, m, "alice", nth, at).await.expect("failed");
            assert_eq!(locked.is_some(), nth == 3);
        }
        reserve_as(store, m, at).await
    }

    #[tokio::test]
    async fn the_budget_is_shared_by_every_sign_in_and_then_locks() {
        let (_dir, store) = store();
        let m = settings();
        let now = 1_000_000;
        let locked = |until| Attempt::Locked { until };
        assert_eq!(spend_budget(&store, &m, now).await, locked(now + 600));
        // After the lock, a new budget; the next lock in a row is twice as long.
        let later = now + 601;
        assert_eq!(spend_budget(&store, &m, later).await, locked(later + 1_200));
        // A correct code resets the count, not the doubling: the next lock is longer still.
        let after = later + 1_201;
        let reg = registration::load(&store, "alice").await.expect("reg");
        succeeded(&store, &reg).await.expect("ok");
        assert_eq!(spend_budget(&store, &m, after).await, locked(after + 2_400));
        // A day after the last lock ended, a new lock is the base length again.
        let next_day = after + 2_400 + 86_400;
        assert_eq!(
            spend_budget(&store, &m, next_day).await,
            locked(next_day + 600)
        );
    }

    #[tokio::test]
    async fn guesses_beyond_the_budget_are_never_checked() {
        let (_dir, store) = store();
        let m = settings();
        let reg = registration::load(&store, "bob").await.expect("reg");
        // Five guesses reserved before any is judged (parallel sign-ins): only three may be
        // checked, and the fourth locks.
        let mut checked = 0;
        for _ in 0..5 {
            if let Attempt::Check { .. } = reserve(&store, &m, &reg, 50).await.expect("r") {
                checked += 1;
            }
        }
        assert_eq!(checked, 3);
        let reg = registration::load(&store, "bob").await.expect("reg");
        assert!(reg.codes_locked(51));
    }
}
