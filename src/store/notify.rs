//! In-process wake-ups by channel name: what `Store::publish` / `Store::subscribe` fan out to.
//!
//! Each channel with a live subscriber is a `watch` sender whose value is a change counter;
//! a subscriber remembers the count it has seen, so a publish that lands between its
//! subscribing and its waiting is not lost. A channel goes away with its last subscriber, so
//! the hub holds one small entry per waiting page and nothing for channels nobody watches.
//! The embedded store uses a hub alone; the Redis store feeds its hub from one pub/sub
//! connection per node (see `redis::Wakeups`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// The channels of one node.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes this node's subscribers of `channel` (none: nothing happens).
    pub fn publish(&self, channel: &str) {
        if let Some(tx) = self.lock().get(channel) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every subscriber of every channel: after the Redis pub/sub connection was lost,
    /// a message may have been missed, so everyone looks again (a spurious wake-up only
    /// costs a store read).
    pub fn publish_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A subscription to `channel`, counting from now.
    pub fn subscribe(self: &Arc<Self>, channel: &str) -> Subscription {
        let rx = self
            .lock()
            .entry(channel.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            rx,
            hub: self.clone(),
            channel: channel.to_owned(),
        }
    }

    /// How many channels have subscribers (for tests and the benchmark's sanity).
    pub fn channels(&self) -> usize {
        self.lock().len()
    }
}

/// One waiter's interest in a channel; dropping it unsubscribes.
pub struct Subscription {
    rx: watch::Receiver<u64>,
    hub: Arc<Hub>,
    channel: String,
}

impl Subscription {
    /// Waits until the channel is published (since subscribing, or since the last `changed`)
    /// or `timeout` passes; `true` when it was published.
    pub async fn changed(&mut self, timeout: Duration) -> bool {
        // The sender lives in the hub as long as this subscription does, so `changed` fails
        // only if the hub itself is gone; treat that as a wake-up: the caller looks again.
        tokio::time::timeout(timeout, self.rx.changed())
            .await
            .is_ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.lock();
        // Subscribing happens under the same lock, so the count cannot grow meanwhile; this
        // receiver is still alive here, hence "1".
        if channels
            .get(&self.channel)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            channels.remove(&self.channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_publish_before_waiting_is_not_lost() {
        let hub = Arc::new(Hub::default());
        let mut s = hub.subscribe("chal:a");
        hub.publish("chal:a");
        assert!(s.changed(SHORT).await);
        assert!(!s.changed(SHORT).await, "one publish wakes once");
    }

    #[tokio::test]
    async fn channels_are_apart_and_go_with_their_last_subscriber() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.subscribe("a");
        let b1 = hub.subscribe("b");
        let b2 = hub.subscribe("b");
        hub.publish("b");
        assert!(!a.changed(SHORT).await);
        assert_eq!(hub.channels(), 2);
        drop(b1);
        assert_eq!(hub.channels(), 2);
        drop(b2);
        assert_eq!(hub.channels(), 1);
        hub.publish_all();
        assert!(a.changed(SHORT).await);
        drop(a);
        assert_eq!(hub.channels(), 0);
    }
}
