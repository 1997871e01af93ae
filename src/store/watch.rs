//! A value every node derives from one store record, re-derived when the record's bytes change and checked at most once per `REFRESH`.
//!
//! This is how admin changes reach every node of a farm without a message bus: the settings
//! overrides and the relying-party version counter are both watched this way.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::Store;

/// How stale a node's view may be.
pub const REFRESH: Duration = Duration::from_secs(1);

struct Snapshot<T> {
    raw: Option<Vec<u8>>,
    /// When the record was last read; `None` forces a read.
    checked: Option<Instant>,
    value: Arc<T>,
}

pub struct Watched<T> {
    what: &'static str,
    snapshot: RwLock<Snapshot<T>>,
}

impl<T> Watched<T> {
    /// `initial` stands for an absent record; `what` names the value in log lines.
    pub fn new(what: &'static str, initial: T) -> Self {
        Watched {
            what,
            snapshot: RwLock::new(Snapshot {
                raw: None,
                checked: Some(Instant::now()),
                value: Arc::new(initial),
            }),
        }
    }

    /// The next `get` reads the record (after a change made through this node).
    pub fn invalidate(&self) {
        self.snapshot
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .checked = None;
    }

    /// The value as last derived, without reading the store (for code that cannot wait; a
    /// `get` elsewhere keeps it fresh).
    pub fn peek(&self) -> Arc<T> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .value
            .clone()
    }

    /// The current value. When `key`'s bytes changed, `derive` builds the new value from
    /// them; a store that cannot be read, or a `derive` that fails, keeps the last good value
    /// and says so in the log.
    pub async fn get<F, Fut>(&self, store: &dyn Store, key: &str, derive: F) -> Arc<T>
    where
        F: FnOnce(Option<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        {
            let snap = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
            if snap.checked.is_some_and(|c| c.elapsed() < REFRESH) {
                return snap.value.clone();
            }
        }
        let raw = match store.get(key).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(what = self.what, error = %e, "store unreadable, keeping the value in force");
                return self.touch(None);
            }
        };
        let unchanged = self.snapshot.read().unwrap_or_else(|p| p.into_inner()).raw == raw;
        if unchanged {
            return self.touch(None);
        }
        match derive(raw.clone()).await {
            Ok(value) => self.touch(Some((raw, Arc::new(value)))),
            Err(e) => {
                // Remember the bytes so the same bad record is reported once, not every second.
                tracing::error!(what = self.what, error = %e, "changed record does not apply, keeping the value in force");
                let mut snap = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
                snap.checked = Some(Instant::now());
                snap.raw = raw;
                snap.value.clone()
            }
        }
    }

    fn touch(&self, new: Option<(Option<Vec<u8>>, Arc<T>)>) -> Arc<T> {
        let mut snap = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        snap.checked = Some(Instant::now());
        if let Some((raw, value)) = new {
            snap.raw = raw;
            snap.value = value;
        }
        snap.value.clone()
    }
}
