//! The one `Store` contract: every case below runs against the embedded (redb) backend,
//! against the Redis backend on a private redis-server, and against Redis found through a
//! sentinel, plus a few backend-specific checks.

mod support {
    pub mod redis;
    pub mod slapd;
}

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tessera::clock::FixedClock;
use tessera::store::embedded::EmbeddedStore;
use tessera::store::redis::{Endpoint, RedisStore, SentinelSettings};
use tessera::store::{LogEntry, Store, StoreError, Write, get_json, put_json};
use time::macros::datetime;

use support::redis::{MASTER_NAME, RedisServer, SentinelFarm, WatchedMaster};

/// The TTL used by the cases: short, because Redis needs real time to pass.
const TTL: Duration = Duration::from_millis(300);
/// Comfortably past `TTL` (Redis expires with millisecond precision).
const PAST_TTL: Duration = Duration::from_millis(450);

/// How a case makes time pass for its backend.
enum Time {
    /// The embedded store reads an injected clock: move it.
    Fixed(Arc<FixedClock>),
    /// Redis keeps its own clock: really wait.
    Real,
}

struct Fixture {
    store: Arc<dyn Store>,
    time: Time,
    // Whichever backs the store, held so it lives as long as the case.
    _dir: Option<TempDir>,
    _redis: Option<RedisServer>,
    _sentinel: Option<WatchedMaster>,
}

impl Fixture {
    fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(FixedClock::new(datetime!(2030-01-01 0:00 UTC)));
        let store = EmbeddedStore::open(&dir.path().join("tessera.redb"), clock.clone())
            .expect("open embedded store");
        Fixture {
            store: Arc::new(store),
            time: Time::Fixed(clock),
            _dir: Some(dir),
            _redis: None,
            _sentinel: None,
        }
    }

    async fn redis() -> Self {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), "tessera:test:")
            .await
            .expect("connect to the test redis-server");
        Fixture {
            store: Arc::new(store),
            time: Time::Real,
            _dir: None,
            _redis: Some(server),
            _sentinel: None,
        }
    }

    /// Redis again, the master found through a sentinel.
    async fn sentinel() -> Self {
        let watched = WatchedMaster::start();
        let store = RedisStore::connect_to(
            Endpoint::Sentinel(SentinelSettings {
                sentinels: vec![watched.sentinel()],
                master_name: MASTER_NAME.to_owned(),
                password: None,
                sentinel_password: None,
            }),
            "tessera:test:",
        )
        .await
        .expect("connect through the sentinel");
        Fixture {
            store: Arc::new(store),
            time: Time::Real,
            _dir: None,
            _redis: None,
            _sentinel: Some(watched),
        }
    }

    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    async fn pass(&self, by: Duration) {
        match &self.time {
            Time::Fixed(clock) => clock.advance(time::Duration::try_from(by).expect("duration")),
            Time::Real => tokio::time::sleep(by).await,
        }
    }
}

/// Instantiates every listed case once per backend.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Fixture::embedded()).await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Fixture::redis().await).await;
                }
            )*
        }
        mod sentinel_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Fixture::sentinel().await).await;
                }
            )*
        }
    };
}

contract!(
    get_put_delete,
    overwrite_resets_ttl,
    ttl_expiry,
    put_if_absent_once_until_expiry,
    compare_and_set_cases,
    compare_and_set_race_has_one_winner,
    incr_creates_adds_and_subtracts,
    incr_window_does_not_slide,
    incr_on_non_integer_is_corrupt,
    keys_by_prefix,
    keys_prefix_glob_chars_are_literal,
    json_round_trip_and_corrupt_record,
    log_reads_a_window_newest_first,
    log_retention_drops_old_entries,
    write_batch_applies_in_order_and_answers_each,
    wakeups_reach_their_channel_only,
    a_waiter_with_no_wakeup_times_out,
);

async fn get_put_delete(f: &Fixture) {
    let s = f.store();
    assert_eq!(s.get("gpd:a").await.unwrap(), None);
    assert!(
        !s.delete("gpd:a").await.unwrap(),
        "deleting nothing reports false"
    );

    s.put("gpd:a", b"one", None).await.unwrap();
    assert_eq!(s.get("gpd:a").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put("gpd:a", b"two", None).await.unwrap();
    assert_eq!(s.get("gpd:a").await.unwrap().as_deref(), Some(&b"two"[..]));

    // Binary-safe, including the empty value.
    let binary = [0u8, 255, 10, 13, 0];
    s.put("gpd:bin", &binary, None).await.unwrap();
    assert_eq!(
        s.get("gpd:bin").await.unwrap().as_deref(),
        Some(&binary[..])
    );
    s.put("gpd:empty", b"", None).await.unwrap();
    assert_eq!(s.get("gpd:empty").await.unwrap().as_deref(), Some(&b""[..]));

    assert!(s.delete("gpd:a").await.unwrap());
    assert_eq!(s.get("gpd:a").await.unwrap(), None);
    assert!(!s.delete("gpd:a").await.unwrap());

    // An expired record is not live, so deleting it reports false.
    s.put("gpd:short", b"x", Some(TTL)).await.unwrap();
    f.pass(PAST_TTL).await;
    assert!(!s.delete("gpd:short").await.unwrap());
}

async fn overwrite_resets_ttl(f: &Fixture) {
    let s = f.store();
    // A TTL record overwritten without TTL lives on.
    s.put("ttl:keep", b"v1", Some(TTL)).await.unwrap();
    s.put("ttl:keep", b"v2", None).await.unwrap();
    // A permanent record overwritten with a TTL now expires.
    s.put("ttl:drop", b"v1", None).await.unwrap();
    s.put("ttl:drop", b"v2", Some(TTL)).await.unwrap();
    f.pass(PAST_TTL).await;
    assert_eq!(
        s.get("ttl:keep").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(s.get("ttl:drop").await.unwrap(), None);
}

async fn ttl_expiry(f: &Fixture) {
    let s = f.store();
    s.put("exp:a", b"v", Some(TTL)).await.unwrap();
    s.put("exp:forever", b"v", None).await.unwrap();
    assert_eq!(s.get("exp:a").await.unwrap().as_deref(), Some(&b"v"[..]));
    f.pass(PAST_TTL).await;
    assert_eq!(s.get("exp:a").await.unwrap(), None);
    assert_eq!(
        s.get("exp:forever").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

async fn put_if_absent_once_until_expiry(f: &Fixture) {
    let s = f.store();
    assert!(
        s.put_if_absent("otp:123456", b"first", Some(TTL))
            .await
            .unwrap()
    );
    assert!(
        !s.put_if_absent("otp:123456", b"second", Some(TTL))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get("otp:123456").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    f.pass(PAST_TTL).await;
    assert!(s.put_if_absent("otp:123456", b"third", None).await.unwrap());
    assert_eq!(
        s.get("otp:123456").await.unwrap().as_deref(),
        Some(&b"third"[..])
    );
    assert!(
        !s.put_if_absent("otp:123456", b"fourth", None)
            .await
            .unwrap()
    );
}

async fn compare_and_set_cases(f: &Fixture) {
    let s = f.store();
    // Absent: only `None` matches.
    assert!(
        !s.compare_and_set("cas:a", Some(b"v0"), b"v1", None)
            .await
            .unwrap()
    );
    assert_eq!(s.get("cas:a").await.unwrap(), None);
    assert!(s.compare_and_set("cas:a", None, b"v1", None).await.unwrap());
    assert_eq!(s.get("cas:a").await.unwrap().as_deref(), Some(&b"v1"[..]));

    // Present: `None` and a different value both lose, the current value wins.
    assert!(!s.compare_and_set("cas:a", None, b"v2", None).await.unwrap());
    assert!(
        !s.compare_and_set("cas:a", Some(b"other"), b"v2", None)
            .await
            .unwrap()
    );
    assert!(
        !s.compare_and_set("cas:a", Some(b"v"), b"v2", None)
            .await
            .unwrap()
    );
    assert_eq!(s.get("cas:a").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(
        s.compare_and_set("cas:a", Some(b"v1"), b"v2", None)
            .await
            .unwrap()
    );
    assert_eq!(s.get("cas:a").await.unwrap().as_deref(), Some(&b"v2"[..]));

    // An empty value is a value, not absence.
    s.put("cas:empty", b"", None).await.unwrap();
    assert!(
        !s.compare_and_set("cas:empty", None, b"x", None)
            .await
            .unwrap()
    );
    assert!(
        s.compare_and_set("cas:empty", Some(b""), b"x", None)
            .await
            .unwrap()
    );

    // The TTL given with the new value applies; an expired record counts as absent.
    assert!(
        s.compare_and_set("cas:a", Some(b"v2"), b"v3", Some(TTL))
            .await
            .unwrap()
    );
    f.pass(PAST_TTL).await;
    assert_eq!(s.get("cas:a").await.unwrap(), None);
    assert!(
        !s.compare_and_set("cas:a", Some(b"v3"), b"v4", None)
            .await
            .unwrap()
    );
    assert!(s.compare_and_set("cas:a", None, b"v4", None).await.unwrap());
    assert_eq!(s.get("cas:a").await.unwrap().as_deref(), Some(&b"v4"[..]));
}

async fn compare_and_set_race_has_one_winner(f: &Fixture) {
    const RACERS: usize = 16;
    f.store().put("race:flow", b"v0", None).await.unwrap();
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&f.store);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                let mine = format!("v1-from-{i}");
                start.wait().await;
                let won = store
                    .compare_and_set("race:flow", Some(b"v0"), mine.as_bytes(), None)
                    .await
                    .unwrap();
                won.then_some(mine)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(mine) = task.await.unwrap() {
            winners.push(mine);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one CAS must win: {winners:?}");
    assert_eq!(
        f.store().get("race:flow").await.unwrap().as_deref(),
        Some(winners[0].as_bytes())
    );
}

async fn incr_creates_adds_and_subtracts(f: &Fixture) {
    let s = f.store();
    assert_eq!(s.incr("ctr:a", 1, None).await.unwrap(), 1);
    assert_eq!(s.incr("ctr:a", 5, None).await.unwrap(), 6);
    assert_eq!(s.incr("ctr:a", -10, None).await.unwrap(), -4);
    // Counters read back as decimal text from either backend.
    assert_eq!(s.get("ctr:a").await.unwrap().as_deref(), Some(&b"-4"[..]));
    assert_eq!(s.incr("ctr:neg", -3, None).await.unwrap(), -3);
    assert_eq!(s.incr("ctr:zero", 0, None).await.unwrap(), 0);
    // A counter written by `put` as text is a counter.
    s.put("ctr:put", b"41", None).await.unwrap();
    assert_eq!(s.incr("ctr:put", 1, None).await.unwrap(), 42);
    // Full i64 range, no rounding through floating point.
    s.put("ctr:big", b"9223372036854775806", None)
        .await
        .unwrap();
    assert_eq!(s.incr("ctr:big", 1, None).await.unwrap(), i64::MAX);
    // After expiry a counter starts again from zero.
    assert_eq!(s.incr("ctr:win", 7, Some(TTL)).await.unwrap(), 7);
    f.pass(PAST_TTL).await;
    assert_eq!(s.incr("ctr:win", 1, Some(TTL)).await.unwrap(), 1);
}

async fn incr_window_does_not_slide(f: &Fixture) {
    let s = f.store();
    let step = Duration::from_millis(200);
    assert_eq!(s.incr("lock:alice", 1, Some(TTL)).await.unwrap(), 1);
    f.pass(step).await;
    // Inside the window: counted, and the TTL given again must not extend it.
    assert_eq!(s.incr("lock:alice", 1, Some(TTL)).await.unwrap(), 2);
    f.pass(step).await;
    // 400 ms after creation: the 300 ms window is over (a sliding one would last to 500 ms).
    assert_eq!(s.get("lock:alice").await.unwrap(), None);

    // A counter created without TTL stays permanent even when later calls pass one.
    assert_eq!(s.incr("lock:bob", 1, None).await.unwrap(), 1);
    assert_eq!(s.incr("lock:bob", 1, Some(TTL)).await.unwrap(), 2);
    f.pass(PAST_TTL).await;
    assert_eq!(s.get("lock:bob").await.unwrap().as_deref(), Some(&b"2"[..]));
}

async fn incr_on_non_integer_is_corrupt(f: &Fixture) {
    let s = f.store();
    for (key, value) in [("nan:a", &b"abc"[..]), ("nan:b", b"1.5"), ("nan:c", b"+1")] {
        s.put(key, value, None).await.unwrap();
        match s.incr(key, 1, None).await {
            Err(StoreError::Corrupt { key: k, .. }) => assert_eq!(k, key),
            other => panic!("incr on {value:?} should be Corrupt, got {other:?}"),
        }
        // The record is left as it was.
        assert_eq!(s.get(key).await.unwrap().as_deref(), Some(value));
    }
    s.put("nan:max", b"9223372036854775807", None)
        .await
        .unwrap();
    assert!(matches!(
        s.incr("nan:max", 1, None).await,
        Err(StoreError::Corrupt { .. })
    ));
}

async fn keys_by_prefix(f: &Fixture) {
    let s = f.store();
    for key in [
        "flow:b",
        "flow:a",
        "flow:c",
        "flowx",
        "sess:1",
        "audit:flow:1",
    ] {
        s.put(key, b"v", None).await.unwrap();
    }
    s.put("flow:gone", b"v", Some(TTL)).await.unwrap();
    assert_eq!(
        s.keys("flow:").await.unwrap(),
        ["flow:a", "flow:b", "flow:c", "flow:gone"]
    );
    assert_eq!(s.keys("nomatch:").await.unwrap(), Vec::<String>::new());
    f.pass(PAST_TTL).await;
    assert_eq!(
        s.keys("flow:").await.unwrap(),
        ["flow:a", "flow:b", "flow:c"]
    );
    assert_eq!(
        s.keys("flow").await.unwrap(),
        ["flow:a", "flow:b", "flow:c", "flowx"]
    );
    let all = s.keys("").await.unwrap();
    assert_eq!(
        all,
        [
            "audit:flow:1",
            "flow:a",
            "flow:b",
            "flow:c",
            "flowx",
            "sess:1"
        ]
    );

    // Enough keys to need several SCAN steps in Redis; still sorted, without duplicates.
    for i in 0..600 {
        s.put(&format!("bulk:{i:05}"), b"v", None).await.unwrap();
    }
    let bulk = s.keys("bulk:").await.unwrap();
    assert_eq!(bulk.len(), 600);
    assert!(bulk.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
}

async fn keys_prefix_glob_chars_are_literal(f: &Fixture) {
    let s = f.store();
    for key in [
        "g*:1", "gX:1", "g*x", "q?:1", "qQ:1", "b[a]:1", "ba:1", "b[a]x", "s\\:1", "s:1", "c]:1",
    ] {
        s.put(key, b"v", None).await.unwrap();
    }
    assert_eq!(s.keys("g*").await.unwrap(), ["g*:1", "g*x"]);
    assert_eq!(s.keys("g*:").await.unwrap(), ["g*:1"]);
    assert_eq!(s.keys("q?").await.unwrap(), ["q?:1"]);
    assert_eq!(s.keys("b[a]").await.unwrap(), ["b[a]:1", "b[a]x"]);
    assert_eq!(s.keys("b[").await.unwrap(), ["b[a]:1", "b[a]x"]);
    assert_eq!(s.keys("s\\").await.unwrap(), ["s\\:1"]);
    assert_eq!(s.keys("c]").await.unwrap(), ["c]:1"]);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PendingFlow {
    id: String,
    relay_state: String,
    attempts: u32,
    methods: Vec<String>,
}

async fn json_round_trip_and_corrupt_record(f: &Fixture) {
    let s = f.store();
    let flow = PendingFlow {
        id: "f-1".to_owned(),
        relay_state: "https://gw.example/?a=1&b=\u{e9}".to_owned(),
        attempts: 2,
        methods: vec!["push".to_owned(), "oath".to_owned()],
    };
    put_json(s, "flow:f-1", &flow, Some(TTL)).await.unwrap();
    assert_eq!(
        get_json::<PendingFlow>(s, "flow:f-1").await.unwrap(),
        Some(flow)
    );
    assert_eq!(get_json::<PendingFlow>(s, "flow:none").await.unwrap(), None);

    s.put("flow:bad", b"{not json", None).await.unwrap();
    match get_json::<PendingFlow>(s, "flow:bad").await {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "flow:bad"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Valid JSON of the wrong shape is corrupt too.
    s.put("flow:shape", br#"{"id": 5}"#, None).await.unwrap();
    assert!(matches!(
        get_json::<PendingFlow>(s, "flow:shape").await,
        Err(StoreError::Corrupt { .. })
    ));

    f.pass(PAST_TTL).await;
    assert_eq!(get_json::<PendingFlow>(s, "flow:f-1").await.unwrap(), None);
}

// ---- embedded only -------------------------------------------------------------------

#[tokio::test]
async fn embedded_records_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.redb");
    let clock = Arc::new(FixedClock::new(datetime!(2030-01-01 0:00 UTC)));
    {
        let store = EmbeddedStore::open(&path, clock.clone()).unwrap();
        store.put("reg:alice", b"secret-blob", None).await.unwrap();
        store.put("sess:1", b"s", Some(TTL)).await.unwrap();
        store.incr("lock:alice", 3, None).await.unwrap();
        store.put("gone", b"x", None).await.unwrap();
        store.delete("gone").await.unwrap();
    }
    let store = EmbeddedStore::open(&path, clock.clone()).unwrap();
    assert_eq!(
        store.get("reg:alice").await.unwrap().as_deref(),
        Some(&b"secret-blob"[..])
    );
    assert_eq!(
        store.get("sess:1").await.unwrap().as_deref(),
        Some(&b"s"[..])
    );
    assert_eq!(store.incr("lock:alice", 1, None).await.unwrap(), 4);
    assert_eq!(store.get("gone").await.unwrap(), None);
    // The stored expiry survived too.
    clock.advance(time::Duration::milliseconds(450));
    assert_eq!(store.get("sess:1").await.unwrap(), None);
}

#[tokio::test]
async fn embedded_purge_expired_counts_removed_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(datetime!(2030-01-01 0:00 UTC)));
    let store = EmbeddedStore::open(&dir.path().join("purge.redb"), clock.clone()).unwrap();
    for key in ["t:1", "t:2", "t:3"] {
        store.put(key, b"v", Some(TTL)).await.unwrap();
    }
    store
        .put("t:long", b"v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    store.put("p:1", b"v", None).await.unwrap();
    store.incr("p:ctr", 1, None).await.unwrap();

    assert_eq!(store.purge_expired().unwrap(), 0, "nothing expired yet");
    clock.advance(time::Duration::milliseconds(450));
    assert_eq!(store.purge_expired().unwrap(), 3);
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert_eq!(store.keys("").await.unwrap(), ["p:1", "p:ctr", "t:long"]);
}

#[tokio::test]
async fn embedded_open_reports_a_file_that_is_not_redb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.redb");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let clock = Arc::new(FixedClock::new(datetime!(2030-01-01 0:00 UTC)));
    match EmbeddedStore::open(&path, clock) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("not-a-db.redb"), "{msg}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

// ---- wake-ups (publish / subscribe) --------------------------------------------------

/// Long enough for a message through a real Redis; a wake-up that should come comes at once.
const WAKE: Duration = Duration::from_secs(3);
/// How long a waiter that should stay asleep is watched.
const QUIET: Duration = Duration::from_millis(300);

async fn wakeups_reach_their_channel_only(f: &Fixture) {
    let s = f.store();
    let mut one = s.subscribe("chal:w1").await.unwrap();
    let mut two = s.subscribe("chal:w2").await.unwrap();
    let mut one_again = s.subscribe("chal:w1").await.unwrap();
    s.publish("chal:w1").await.unwrap();
    assert!(one.changed(WAKE).await, "the publish wakes its channel");
    assert!(one_again.changed(WAKE).await, "every subscriber of it");
    assert!(!two.changed(QUIET).await, "another channel sleeps on");
    assert!(!one.changed(QUIET).await, "one publish wakes once");
    // Published before the waiter waits (after it subscribed): not lost.
    s.publish("chal:w2").await.unwrap();
    tokio::time::sleep(QUIET).await;
    assert!(two.changed(WAKE).await, "a publish before the wait counts");
    // Nobody listens: nothing is kept, nothing fails.
    drop((one, two, one_again));
    s.publish("chal:nobody").await.unwrap();
    tokio::time::sleep(QUIET).await;
    let mut late = s.subscribe("chal:nobody").await.unwrap();
    assert!(
        !late.changed(QUIET).await,
        "a publish long before subscribing is not replayed"
    );
}

async fn a_waiter_with_no_wakeup_times_out(f: &Fixture) {
    let s = f.store();
    let mut w = s.subscribe("chal:silent").await.unwrap();
    let started = std::time::Instant::now();
    assert!(
        !w.changed(QUIET).await,
        "no publish: the wait ends by timeout"
    );
    assert!(started.elapsed() >= QUIET, "and not before it");
}

/// Two Redis stores on one server are two nodes of a farm: a challenge answered through
/// one wakes the page waiting on the other, whichever way round, and a waiter on another
/// channel or another deployment (key prefix) sleeps on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wakeups_cross_nodes() {
    let server = RedisServer::start();
    let node_a = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let node_b = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let other = RedisStore::connect(&server.url(), "tessera:other:")
        .await
        .unwrap();

    let mut on_a = node_a.subscribe("chal:x").await.unwrap();
    let mut elsewhere_on_a = node_a.subscribe("chal:y").await.unwrap();
    let mut other_deployment = other.subscribe("chal:x").await.unwrap();
    node_b.publish("chal:x").await.unwrap();
    assert!(on_a.changed(WAKE).await, "b's publish wakes a's waiter");
    assert!(!elsewhere_on_a.changed(QUIET).await);
    assert!(!other_deployment.changed(QUIET).await);

    let mut on_b = node_b.subscribe("chal:y").await.unwrap();
    node_a.publish("chal:y").await.unwrap();
    assert!(on_b.changed(WAKE).await, "and the other way round");
    assert!(elsewhere_on_a.changed(WAKE).await, "a's own waiter too");
    assert!(!on_b.changed(QUIET).await, "then nothing more");
}

/// However many pages wait on a node, it holds one pub/sub connection to Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wakeups_use_one_connection_per_node() {
    let server = RedisServer::start();
    let node_a = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let node_b = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let mut waiting = Vec::new();
    for i in 0..200 {
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        waiting.push(node.subscribe(&format!("chal:{i}")).await.unwrap());
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        list.lines().count(),
        2,
        "one pub/sub connection per node for 200 waiters:\n{list}"
    );
    node_b.publish("chal:100").await.unwrap();
    assert!(waiting[100].changed(WAKE).await);
    assert!(!waiting[102].changed(QUIET).await);
}

/// The wake-up connection comes back after Redis does, and its waiters are woken once to
/// look again (a message may have been missed meanwhile); later publishes reach them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wakeups_survive_a_restart() {
    let mut server = RedisServer::start();
    let node_a = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let node_b = RedisStore::connect(&server.url(), "tessera:farm:")
        .await
        .unwrap();
    let mut w = node_a.subscribe("chal:r").await.unwrap();
    server.restart();
    assert!(
        w.changed(Duration::from_secs(10)).await,
        "the reconnect wakes the waiter to look again"
    );
    // The publishing node's own connection reconnects by itself (a retry may be needed).
    let mut published = false;
    for _ in 0..20 {
        if node_b.publish("chal:r").await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(published, "publishing works again after the restart");
    assert!(w.changed(WAKE).await, "and reaches the waiter again");
}

// ---- redis only ----------------------------------------------------------------------

#[tokio::test]
async fn redis_prefixes_keep_deployments_apart() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), "tessera:a:")
        .await
        .unwrap();
    let b = RedisStore::connect(&server.url(), "tessera:b:")
        .await
        .unwrap();

    a.put("flow:1", b"from-a", None).await.unwrap();
    b.put("flow:1", b"from-b", None).await.unwrap();
    b.put("flow:2", b"only-b", None).await.unwrap();

    assert_eq!(
        a.get("flow:1").await.unwrap().as_deref(),
        Some(&b"from-a"[..])
    );
    assert_eq!(
        b.get("flow:1").await.unwrap().as_deref(),
        Some(&b"from-b"[..])
    );
    assert_eq!(a.get("flow:2").await.unwrap(), None);
    assert_eq!(a.keys("").await.unwrap(), ["flow:1"]);
    assert_eq!(b.keys("").await.unwrap(), ["flow:1", "flow:2"]);
    assert!(
        a.put_if_absent("flow:2", b"a-too", None).await.unwrap(),
        "b's record is invisible to a"
    );
    assert_eq!(
        b.get("flow:2").await.unwrap().as_deref(),
        Some(&b"only-b"[..])
    );
    assert!(a.delete("flow:1").await.unwrap());
    assert_eq!(
        b.get("flow:1").await.unwrap().as_deref(),
        Some(&b"from-b"[..])
    );

    // A prefix that is itself glob-like must not widen the scan to other deployments.
    let star = RedisStore::connect(&server.url(), "tessera:*")
        .await
        .unwrap();
    assert_eq!(star.keys("").await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn redis_connect_failure_hides_the_password() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:topsecret@127.0.0.1:{port}/0");
    match RedisStore::connect(&url, "tessera:").await {
        Err(StoreError::Backend(msg)) => {
            assert!(!msg.contains("topsecret"), "password leaked: {msg}");
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn redis_over_tls_checks_the_server_against_the_configured_ca() {
    let certs = tempfile::tempdir().expect("tempdir");
    support::slapd::write_certificates(certs.path());
    let (_server, url) = RedisServer::start_tls(certs.path());
    let ca = std::fs::read(certs.path().join("ca.pem")).expect("ca");
    let endpoint = Endpoint::Url {
        url: url.clone(),
        ca_pem: Some(ca),
    };
    let store = RedisStore::connect_to(endpoint, "tessera:")
        .await
        .expect("TLS with the test CA");
    store.put("k", b"over tls", None).await.expect("put");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"over tls"[..])
    );
    // The system store does not know the test CA: the certificate is really checked.
    let err = RedisStore::connect(&url, "tessera:")
        .await
        .expect_err("an unknown CA is refused");
    assert!(err.to_string().contains(&url), "{err}");
}

/// A store found through sentinels keeps working across a planned failover: its master is
/// demoted to a replica while it runs (its connections are killed or answer `READONLY`), and
/// the store moves to the promoted replica: the very next commands succeed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_store_follows_the_master_across_a_switchover() {
    let mut farm = tokio::task::spawn_blocking(SentinelFarm::start)
        .await
        .expect("sentinel farm");
    let store = RedisStore::connect_to(
        Endpoint::Sentinel(SentinelSettings {
            sentinels: farm.sentinels().split(',').map(str::to_owned).collect(),
            master_name: MASTER_NAME.to_owned(),
            password: None,
            sentinel_password: None,
        }),
        "tessera:",
    )
    .await
    .expect("connect through the sentinels");
    store.put("before", b"1", None).await.expect("put");
    assert_eq!(store.incr("count", 1, None).await.expect("incr"), 1);

    farm = tokio::task::spawn_blocking(move || {
        farm.switch_over();
        farm
    })
    .await
    .expect("switchover");

    store
        .put("after", b"2", None)
        .await
        .expect("a write right after the switchover");
    assert_eq!(
        store.get("before").await.expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(store.incr("count", 1, None).await.expect("incr"), 2);
    // The write went to the promoted replica, not the demoted master.
    let direct = RedisStore::connect(&farm.replica.url(), "tessera:")
        .await
        .expect("new master");
    assert_eq!(
        direct.get("after").await.expect("get").as_deref(),
        Some(&b"2"[..])
    );
}

#[tokio::test]
async fn redis_and_embedded_list_the_same_keys() {
    // The same writes give the same listing from both backends.
    let embedded = Fixture::embedded();
    let redis = Fixture::redis().await;
    let mut listings = BTreeSet::new();
    for f in [&embedded, &redis] {
        let s = f.store();
        for key in ["x:b", "x:a", "x:[1]", "x:*", "y"] {
            s.put(key, b"v", None).await.unwrap();
        }
        listings.insert(s.keys("x:").await.unwrap());
    }
    assert_eq!(listings.len(), 1, "{listings:?}");
}

/// Stamps in the cases below: an arbitrary instant, plus seconds.
const T0: i64 = 1_900_000_000_000;

fn stamps(entries: &[LogEntry]) -> Vec<(i64, String)> {
    entries
        .iter()
        .map(|e| (e.at_ms - T0, String::from_utf8_lossy(&e.value).into_owned()))
        .collect()
}

async fn log_reads_a_window_newest_first(f: &Fixture) {
    let s = f.store.as_ref();
    let year = Duration::from_secs(400 * 86_400);
    for (at, v) in [
        (1000, "a"),
        (2000, "b"),
        (2000, "c"),
        (3000, "d"),
        (5000, "e"),
    ] {
        s.append("audit", T0 + at, v.as_bytes(), year)
            .await
            .expect("append");
    }
    s.append("other", T0 + 2000, b"x", year)
        .await
        .expect("append other");
    let got = s
        .read_log("audit", T0 + 2000, T0 + 3000, 10)
        .await
        .expect("read");
    assert_eq!(
        stamps(&got),
        vec![(3000, "d".into()), (2000, "c".into()), (2000, "b".into())],
        "newest first, same stamp in reverse arrival"
    );
    let got = s.read_log("audit", T0, T0 + 10_000, 2).await.expect("read");
    assert_eq!(stamps(&got), vec![(5000, "e".into()), (3000, "d".into())]);
    assert!(
        s.read_log("audit", T0 + 3000, T0 + 2000, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        s.read_log("nothing", T0, T0 + 10_000, 10)
            .await
            .expect("read")
            .is_empty()
    );
    let other = s
        .read_log("other", T0, T0 + 10_000, 10)
        .await
        .expect("read");
    assert_eq!(stamps(&other), vec![(2000, "x".into())]);
    // Binary values survive.
    s.append("bin", T0, &[0, 255, 10, 13], year)
        .await
        .expect("append");
    let bin = s.read_log("bin", T0, T0, 1).await.expect("read");
    assert_eq!(bin[0].value, vec![0, 255, 10, 13]);
}

async fn write_batch_applies_in_order_and_answers_each(f: &Fixture) {
    let s = f.store.as_ref();
    let year = Duration::from_secs(400 * 86_400);
    assert!(s.write_batch(&[]).await.expect("empty batch").is_empty());
    s.put("wb:gone", b"x", None).await.unwrap();
    s.put("wb:flow", b"v0", None).await.unwrap();
    let batch = [
        Write::Append {
            log: "wb",
            at_ms: T0 + 1000,
            value: b"e1",
            retention: year,
        },
        Write::Append {
            log: "wb",
            at_ms: T0 + 1000,
            value: b"e2",
            retention: year,
        },
        Write::Put {
            key: "wb:new",
            value: b"n",
            ttl: Some(TTL),
        },
        Write::Delete { key: "wb:gone" },
        Write::Delete { key: "wb:missing" },
        // In order: the first compare-and-set replaces v0, so the second finds v1 and loses.
        Write::CompareAndSet {
            key: "wb:flow",
            expected: Some(b"v0"),
            new: b"v1",
            ttl: None,
        },
        Write::CompareAndSet {
            key: "wb:flow",
            expected: Some(b"v0"),
            new: b"v2",
            ttl: None,
        },
        Write::CompareAndSet {
            key: "wb:fresh",
            expected: None,
            new: b"f",
            ttl: Some(TTL),
        },
        Write::Put {
            key: "wb:after",
            value: b"a",
            ttl: None,
        },
    ];
    let answers = s.write_batch(&batch).await.expect("batch");
    assert_eq!(
        answers,
        vec![true, true, true, true, false, true, false, true, true]
    );
    assert_eq!(s.get("wb:flow").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(s.get("wb:gone").await.unwrap(), None);
    assert_eq!(s.get("wb:after").await.unwrap().as_deref(), Some(&b"a"[..]));
    let log = s.read_log("wb", T0, T0 + 10_000, 10).await.expect("read");
    assert_eq!(stamps(&log), vec![(1000, "e2".into()), (1000, "e1".into())]);
    // The TTLs given in the batch apply.
    assert_eq!(s.get("wb:new").await.unwrap().as_deref(), Some(&b"n"[..]));
    f.pass(PAST_TTL).await;
    assert_eq!(s.get("wb:new").await.unwrap(), None);
    assert_eq!(s.get("wb:fresh").await.unwrap(), None);
    assert_eq!(s.get("wb:after").await.unwrap().as_deref(), Some(&b"a"[..]));

    // Another node's clock ran ahead: the entry still goes in, as with `append`.
    s.append("wbskew", T0 + 5000, b"ahead", year).await.unwrap();
    let behind = [Write::Append {
        log: "wbskew",
        at_ms: T0 + 1000,
        value: b"behind",
        retention: year,
    }];
    assert_eq!(
        s.write_batch(&behind).await.expect("skewed batch"),
        vec![true]
    );
    let all = s
        .read_log("wbskew", 0, i64::MAX / 4, 10)
        .await
        .expect("read");
    assert_eq!(all.len(), 2, "{:?}", stamps(&all));
}

async fn log_retention_drops_old_entries(f: &Fixture) {
    let s = f.store.as_ref();
    let ten = Duration::from_secs(10);
    for at in [0, 5_000, 9_000] {
        s.append("audit", T0 + at, b"old", ten)
            .await
            .expect("append");
    }
    s.append("audit", T0 + 16_000, b"new", ten)
        .await
        .expect("append");
    let got = s
        .read_log("audit", T0, T0 + 20_000, 10)
        .await
        .expect("read");
    assert_eq!(
        stamps(&got),
        vec![(16_000, "new".into()), (9_000, "old".into())],
        "entries stamped more than 10 s before the newest are gone"
    );
}
