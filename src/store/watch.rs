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
    /// One re-read at a time: requests that find the value due while another re-reads it
    /// wait for that one instead of each reading (and, after a change, each deriving) it
    /// again. At a node's start under load that was a herd: every request in flight listed
    /// the relying parties' keys in full (BENCHMARKS.md).
    refreshing: tokio::sync::Mutex<()>,
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
            refreshing: tokio::sync::Mutex::new(()),
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
        if let Some(fresh) = self.fresh() {
            return fresh;
        }
        let _turn = self.refreshing.lock().await;
        // Whoever held the turn before may have just re-read it.
        if let Some(fresh) = self.fresh() {
            return fresh;
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

    /// The value, when it was checked less than `REFRESH` ago.
    fn fresh(&self) -> Option<Arc<T>> {
        let snap = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        snap.checked
            .is_some_and(|c| c.elapsed() < REFRESH)
            .then(|| snap.value.clone())
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_find_the_value_due_together_derive_it_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(crate::clock::SystemClock);
        let store =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"), clock).expect("store"));
        store.put("version", b"2", None).await.expect("put");
        let watched = Arc::new(Watched::new("test value", 1u32));
        watched.invalidate();
        let derived = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, watched) = (store.clone(), watched.clone());
                let (derived, start) = (derived.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let value = watched
                        .get(store.as_ref(), "version", |raw| async move {
                            derived.fetch_add(1, Ordering::SeqCst);
                            // A slow derivation (a metadata folder, a keyspace scan).
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(raw.map_or(0, |r| u32::from(r[0] - b'0')))
                        })
                        .await;
                    *value
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(
                task.await.expect("task"),
                2,
                "every request sees the new value"
            );
        }
        assert_eq!(
            derived.load(Ordering::SeqCst),
            1,
            "derived once, not once per request"
        );
    }
}
