//! Equal delay: a refused password takes as long as an accepted one, so response times do
//! not tell an attacker which user names exist or which check failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Running average of successful password checks, in microseconds.
#[derive(Debug)]
pub struct Timing {
    avg_success_us: AtomicU64,
}

impl Default for Timing {
    fn default() -> Self {
        // Until the first success is measured, assume a typical LDAP bind.
        Self {
            avg_success_us: AtomicU64::new(50_000),
        }
    }
}

impl Timing {
    pub fn record_success(&self, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX)
            .min(5_000_000);
        // An exponential moving average (1/8): cheap, lock-free, adapts to the directory.
        let _ = self
            .avg_success_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some((avg * 7 + us) / 8)
            });
    }

    /// Sleeps until a failure started at `started` has taken as long as a typical success.
    pub async fn pad_failure(&self, started: Instant) {
        let target = Duration::from_micros(self.avg_success_us.load(Ordering::Relaxed));
        if let Some(rest) = target.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_are_padded_to_the_success_average() {
        let t = Timing::default();
        for _ in 0..50 {
            t.record_success(Duration::from_millis(30));
        }
        let started = Instant::now();
        t.pad_failure(started).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(29), "{took:?}");
    }
}
