//! The soft lockout: failed passwords counted before the directory is asked, per person (familiar addresses on a budget of their own) and per client address.
//!
//! Modelled on AD FS Extranet Smart Lockout. Each attempt takes one unit from the person's
//! counter *before* the directory bind — atomically, so twenty parallel guesses cannot all
//! slip past a check-then-count — and an attempt over the budget, or from an address with
//! too many failures, is refused without a bind. So at
//! most `password_failures_per_user + password_failures_familiar` binds per person and window
//! ever reach the directory, which the admin keeps below the directory's own threshold: an
//! attacker can never lock the directory account through Tessera. The person is the name
//! the directory resolves every spelling to (`fjones`, `CORP\fjones`,
//! `frank.jones@example.com` count once). An address the user completed a sign-in from is
//! familiar for `familiar_address_days`; failures from familiar addresses use a separate
//! budget, so failures from elsewhere do not lock the user out of their usual places.
//!
//! Store keys never hold typed input: the person is hashed (an unknown name is typed input).
//!
//! A trusted proxy's own address (`server.trusted_proxies`; the client is the proxy only
//! when it sent no usable forwarded header) stands for everyone behind it. It has no
//! per-address budget — counting it would lock every user out at once — and it is never
//! familiar, so attempts through it use each person's stricter unfamiliar budget, which
//! still keeps the directory account safe.

use std::time::Duration;

use super::{Deps, StepError};
use crate::directory::AuthError;
use crate::directory::Found;
use crate::mfa::settings::MfaSettings;
use crate::store::{Deferred, Later, Store, StoreError};

/// Which budget an attempt is counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// An address the user has not completed a sign-in from lately.
    Unfamiliar,
    /// An address the user completed a sign-in from within `familiar_address_days`.
    Familiar,
}

impl Budget {
    fn tag(self) -> &'static str {
        match self {
            Budget::Unfamiliar => "new",
            Budget::Familiar => "fam",
        }
    }

    fn limit(self, mfa: &MfaSettings) -> u32 {
        match self {
            Budget::Unfamiliar => mfa.password_failures_per_user,
            Budget::Familiar => mfa.password_failures_familiar,
        }
    }
}

/// An attempt admitted to the directory; settle it with `passed` or `not_counted`.
pub struct Gate {
    /// `None` for a trusted proxy's own address, which has no budget.
    ip_key: Option<String>,
    user_key: String,
    /// Whom the directory found for the login, for the password check to reuse.
    found: Option<Found>,
}

/// Why an attempt does not reach the directory.
pub enum Refusal {
    /// The client address has too many failures: refused before the directory is asked
    /// anything, not even who the user is.
    Address,
    /// The person's budget for this kind of address is used up: refused without a bind.
    Person(Budget),
}

impl Refusal {
    /// What the sign-in log says.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Address => "soft lockout: client address",
            Refusal::Person(Budget::Unfamiliar) => "soft lockout: unfamiliar address",
            Refusal::Person(Budget::Familiar) => "soft lockout: familiar address",
        }
    }
}

/// A short, fixed-length stand-in for a person in store keys.
fn person_hash(person: &str) -> String {
    hex::encode(&crate::store::sha256(person.as_bytes())[..16])
}

/// The person an attempt counts for: the directory's name for the user, lower-cased; for a
/// name the directory does not know, the typed name marked as such (so it cannot collide
/// with a real user's).
fn person(canonical: Option<&str>, typed: &str) -> String {
    match canonical {
        Some(name) => name.to_lowercase(),
        None => format!("?{}", typed.to_lowercase()),
    }
}

fn user_key(person: &str, budget: Budget) -> String {
    format!("pwfail:{}:{}", budget.tag(), person_hash(person))
}

fn ip_key(ip: &str) -> String {
    format!("pwfail:ip:{ip}")
}

fn familiar_key(person: &str, ip: &str) -> String {
    format!("pwfam:{}:{ip}", person_hash(person))
}

/// Takes one attempt from the person's budget (never given back for a wrong password) and
/// refuses when it, or the address's failure budget, is used up. Fails when the directory
/// cannot say who the user is.
pub async fn admit(
    deps: &Deps<'_>,
    login: &str,
    ip: &str,
) -> Result<Result<Gate, Refusal>, StepError> {
    let mfa = deps.mfa;
    let proxy = deps.is_proxy(ip);
    let ip_key = (!proxy).then(|| ip_key(ip));
    // The address's count is read, not taken: it only counts failures. Taking it up front
    // would refuse good sign-ins whenever more of them than the budget are in flight from
    // one address at once (an office behind one NAT at nine o'clock); the per-person
    // budget, which protects the directory account, is the one that must be exact.
    if let Some(key) = &ip_key
        && read_count(deps.store, key).await? >= i64::from(mfa.password_failures_per_ip)
    {
        return Ok(Err(Refusal::Address));
    }
    let found = match deps.directory.find(login).await {
        Ok(f) => f,
        Err(AuthError::Unavailable(detail)) => return Err(StepError::DirectoryUnavailable(detail)),
        // A login the directory refuses to parse names nobody.
        Err(_) => None,
    };
    let person = person(found.as_ref().map(|f| f.name.as_str()), login);
    let budget = if !proxy && deps.store.get(&familiar_key(&person, ip)).await?.is_some() {
        Budget::Familiar
    } else {
        Budget::Unfamiliar
    };
    let window = Some(Duration::from_secs(mfa.password_failure_window_secs.into()));
    let user_key = user_key(&person, budget);
    if deps.store.incr(&user_key, 1, window).await? > i64::from(budget.limit(mfa)) {
        return Ok(Err(Refusal::Person(budget)));
    }
    Ok(Ok(Gate {
        ip_key,
        user_key,
        found,
    }))
}

async fn read_count(store: &dyn Store, key: &str) -> Result<i64, StoreError> {
    Ok(store
        .get(key)
        .await?
        .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0))
}

impl Gate {
    /// Whom the directory found when the attempt was admitted (`Directory::find`), handed
    /// over to the password check.
    pub fn take_found(&mut self) -> Option<Found> {
        self.found.take()
    }

    /// The password was right: the person's count of this budget starts again, when the
    /// step is saved (until then the attempt stays counted, which errs on the safe side).
    pub fn passed(self, later: &Later) {
        later.push(Deferred::Delete { key: self.user_key });
    }

    /// The password was wrong: the address's count grows (the person's was taken already).
    pub async fn failed(self, store: &dyn Store, mfa: &MfaSettings) -> Result<(), StoreError> {
        let window = Duration::from_secs(mfa.password_failure_window_secs.into());
        if let Some(key) = &self.ip_key {
            store.incr(key, 1, Some(window)).await?;
        }
        Ok(())
    }

    /// The directory could not answer: the attempt counts for nothing.
    pub async fn not_counted(self, store: &dyn Store) -> Result<(), StoreError> {
        store.incr(&self.user_key, -1, None).await?;
        Ok(())
    }
}

/// After a completed sign-in (password and, where required, second factor): `ip` is familiar
/// for the user from now on. The write goes with the flow's save.
pub fn remember_address(mfa: &MfaSettings, username: &str, ip: &str) -> Deferred {
    let ttl = Duration::from_secs(u64::from(mfa.familiar_address_days) * 86_400);
    Deferred::Put {
        key: familiar_key(&username.to_lowercase(), ip),
        value: b"1".to_vec(),
        ttl: Some(ttl),
    }
}

/// The user's current failure counts (unfamiliar, familiar), for the help desk.
pub async fn failures(store: &dyn Store, username: &str) -> Result<(i64, i64), StoreError> {
    let person = username.to_lowercase();
    let mut counts = [0i64; 2];
    for (count, budget) in counts
        .iter_mut()
        .zip([Budget::Unfamiliar, Budget::Familiar])
    {
        *count = read_count(store, &user_key(&person, budget)).await?;
    }
    Ok((counts[0], counts[1]))
}

/// Forgets the user's failure counts (the help desk's "unblock").
pub async fn clear(store: &dyn Store, username: &str) -> Result<(), StoreError> {
    let person = username.to_lowercase();
    for budget in [Budget::Unfamiliar, Budget::Familiar] {
        store.delete(&user_key(&person, budget)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_hold_no_typed_input() {
        let long = "x".repeat(256);
        let k = user_key(&person(None, &long), Budget::Unfamiliar);
        assert!(!k.contains("xxxx"), "{k}");
        assert!(k.len() < 48, "{k}");
        let f = familiar_key(&person(None, "Mallory<script>"), "192.0.2.7");
        assert!(!f.to_lowercase().contains("mallory"), "{f}");
    }

    #[test]
    fn spellings_resolved_by_the_directory_share_one_key_and_unknown_names_do_not_collide() {
        let a = user_key(&person(Some("FJones"), "fjones"), Budget::Unfamiliar);
        let b = user_key(
            &person(Some("fjones"), "frank.jones@example.com"),
            Budget::Unfamiliar,
        );
        assert_eq!(a, b);
        let unknown = user_key(&person(None, "fjones"), Budget::Unfamiliar);
        assert_ne!(a, unknown);
        assert_ne!(a, user_key(&person(Some("fjones"), "x"), Budget::Familiar));
    }
}
