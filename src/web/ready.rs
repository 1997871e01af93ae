//! `/readyz`: whether this node can carry sign-ins now, i.e. its store and its directory
//! both answer; a load balancer or orchestrator sends traffic elsewhere while they do not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Each check gets this long; a dependency slower than this is as good as down for a
/// sign-in, and a probe must answer well within a balancer's own timeout (often 5 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Written on every probe: a round trip that also proves the store takes writes (a Redis
/// replica left read-only after a failover answers reads but cannot hold a sign-in).
const PROBE_KEY: &str = "readyz:probe";
const PROBE_TTL: Duration = Duration::from_secs(60);

/// What a sign-in depends on outside this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Store,
    Directory,
}

impl Dependency {
    fn name(self) -> &'static str {
        match self {
            Dependency::Store => "store",
            Dependency::Directory => "directory",
        }
    }
}

/// Whether the previous probe found a dependency down, so a failure is logged when it starts
/// and when it ends rather than once per probe (a balancer asks every few seconds).
#[derive(Debug, Default)]
pub struct Seen {
    store_down: AtomicBool,
    directory_down: AtomicBool,
}

impl Seen {
    fn flag(&self, d: Dependency) -> &AtomicBool {
        match d {
            Dependency::Store => &self.store_down,
            Dependency::Directory => &self.directory_down,
        }
    }

    fn record(&self, d: Dependency, result: &Result<(), String>) {
        let was_down = self.flag(d).swap(result.is_err(), Ordering::Relaxed);
        match (was_down, result) {
            (false, Err(why)) => {
                tracing::warn!(dependency = d.name(), error = %why, "not ready: {} unavailable", d.name());
            }
            (true, Ok(())) => {
                tracing::info!(dependency = d.name(), "{} available again", d.name());
            }
            _ => {}
        }
    }
}

/// Both checks at once, each within `CHECK_TIMEOUT`: 200 `ready`, or 503 naming what failed.
/// The body names the dependency only; the reason (server addresses, error text) goes to
/// the log, since the endpoint is reachable by anyone who can reach the sign-in page.
pub async fn readyz(ctx: AppState, seen: Arc<Seen>) -> Response {
    let (store, directory) = tokio::join!(
        within(async {
            ctx.store
                .put(PROBE_KEY, b"1", Some(PROBE_TTL))
                .await
                .map_err(|e| e.to_string())
        }),
        within(async { ctx.directory.check().await.map_err(|e| e.to_string()) }),
    );
    seen.record(Dependency::Store, &store);
    seen.record(Dependency::Directory, &directory);
    let failed: Vec<&str> = [
        (Dependency::Store, &store),
        (Dependency::Directory, &directory),
    ]
    .into_iter()
    .filter(|(_, r)| r.is_err())
    .map(|(d, _)| d.name())
    .collect();
    let mut res = if failed.is_empty() {
        (StatusCode::OK, "ready\n".to_owned()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} unavailable\n", failed.join(", ")),
        )
            .into_response()
    };
    // A cached "ready" would hide the outage the probe exists to see.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn within(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}
