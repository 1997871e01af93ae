//! Gives bench users their second factor directly in Tessera's Redis store, and computes
//! their TOTP codes.
//!
//! Seeding writes the same registration records `tessera` itself writes
//! (`mfa::registration::update`), sealed with the node's `mfa.key`. Every seeding replaces
//! the user's tokens, so the new token ids carry no replay marker from an earlier run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at};
use tessera::mfa::registration::{self, TokenKind};
use tessera::mfa::secrets::SecretBox;
use tessera::store::Store;
use tessera::store::redis::RedisStore;
use tokio::task::JoinSet;

/// Registrations written at once while seeding.
const SEED_PARALLEL: usize = 64;

/// What to give every user.
#[derive(Clone)]
pub enum Factor {
    /// An authenticator-app token with this secret, as the user's default method.
    Totp(Vec<u8>),
    /// A push device (fresh random ntfy topic), as the user's default method.
    Push,
}

/// Seeds `users` in the store at `redis_url` (prefix `tessera:`) with `factor`, sealing with
/// `data_dir/mfa.key` (created if missing, as Tessera would). Returns (user, push topic)
/// pairs for `Factor::Push`, in no particular order.
pub async fn seed(
    data_dir: &Path,
    redis_url: &str,
    users: &[String],
    factor: Factor,
) -> Result<Vec<(String, String)>, String> {
    let secrets = Arc::new(
        SecretBox::load_or_create(&data_dir.join("mfa.key"))
            .map_err(|e| format!("mfa.key: {e}"))?,
    );
    let store = Arc::new(
        RedisStore::connect(redis_url, "tessera:")
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut tasks = JoinSet::new();
    let mut topics = Vec::new();
    for user in users {
        if tasks.len() >= SEED_PARALLEL
            && let Some(done) = tasks.join_next().await
        {
            topics.extend(done.map_err(|e| e.to_string())??);
        }
        let (store, secrets, factor, user) =
            (store.clone(), secrets.clone(), factor.clone(), user.clone());
        tasks.spawn(async move { seed_one(store.as_ref(), &secrets, &user, &factor).await });
    }
    while let Some(done) = tasks.join_next().await {
        topics.extend(done.map_err(|e| e.to_string())??);
    }
    Ok(topics)
}

async fn seed_one(
    store: &dyn Store,
    secrets: &SecretBox,
    user: &str,
    factor: &Factor,
) -> Result<Option<(String, String)>, String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_, topic) = registration::update(store, user, |r| match factor {
        Factor::Totp(secret) => {
            r.default_method = Some(Method::Oath);
            r.tokens.clear();
            r.add_oath(
                secrets,
                "bench",
                TokenKind::App,
                secret,
                OathParams::default(),
                now,
            );
            None
        }
        Factor::Push => {
            r.default_method = Some(Method::Push);
            r.push_devices.clear();
            Some(r.add_push_device("bench", now).topic)
        }
    })
    .await
    .map_err(|e| format!("seeding {user}: {e}"))?;
    Ok(topic.map(|t| (user.to_owned(), t)))
}

/// TOTP codes for users sharing one secret, never reusing a time step per user: Tessera
/// accepts each step once per token (and nothing older), within ±1 step of its clock.
pub struct Totp {
    secret: Vec<u8>,
    params: OathParams,
    /// Per user index: the last step handed out (0 = none).
    last: Vec<AtomicU64>,
}

impl Totp {
    pub fn new(secret: Vec<u8>, users: usize) -> Self {
        Self {
            secret,
            params: OathParams::default(),
            last: (0..users).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The code for the next unused step of user `index`: the current step, else the next
    /// one (valid now, the server allows +1), else it waits for the clock to move on.
    pub async fn code(&self, index: usize) -> String {
        let period = u64::from(self.params.period);
        loop {
            let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
            let step = now / period;
            let slot = &self.last[index % self.last.len()];
            let prev = slot.load(Ordering::Acquire);
            let want = step.max(prev + 1);
            if want <= step + 1 {
                if slot
                    .compare_exchange(prev, want, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let at = i64::try_from(want * period).unwrap_or(i64::MAX);
                    return code_at(&self.secret, &self.params, at);
                }
                continue;
            }
            let wait = (step + 1) * period - now;
            tokio::time::sleep(std::time::Duration::from_secs(wait.max(1))).await;
        }
    }
}

/// The bench user names: `prefix` + 5-digit number, from 1.
pub fn user_names(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i:05}")).collect()
}
