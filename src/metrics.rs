//! The process's Prometheus metrics: one `Registry` held by `AppContext`, never a global.
//!
//! Every label value comes from a closed set (an enum, a route pattern, a registered RP's
//! entity ID), so a hostile request cannot grow the number of series.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::audit::Outcome;
use crate::directory::{AuthError, Directory, UserInfo};
use crate::store::{LogEntry, Store, StoreError};

/// The RP label of a sign-in that is neither a registered RP nor the admin console.
pub const UNKNOWN_RP: &str = "unknown";

/// The `rp` label of a flow: a registered trust's entity ID, the console, or `UNKNOWN_RP`;
/// never what a request claimed (a flow outlives a trust the admin removes meanwhile).
pub fn rp_label(registry: &crate::rp::Registry, pending: &crate::login::Pending) -> String {
    match pending {
        crate::login::Pending::AdminConsole | crate::login::Pending::Portal => {
            pending.audit_name().to_owned()
        }
        crate::login::Pending::Saml(crate::login::PendingRequest {
            rp_entity_id: rp, ..
        })
        | crate::login::Pending::WsFed(crate::login::WsFedPending { realm: rp, .. }) => {
            match registry.find(rp) {
                Some(rp) => rp.entity_id.clone(),
                None => UNKNOWN_RP.to_owned(),
            }
        }
    }
}

/// A closed set of label values: an enum whose label is the text given for each variant.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                let text = match self {
                    $($name::$variant => $text),+
                };
                EncodeLabelValue::encode(&text, encoder)
            }
        }
    };
}

label_values! {
    /// How a sign-in flow ended (or that one began).
    SignIn {
        Started => "started",
        Success => "success",
        Denied => "denied",
    }
}

label_values! {
    /// A second-factor answer's result.
    Attempt {
        Success => "success",
        Failure => "failure",
    }
}

label_values! {
    /// The `Store` calls, as measured by `MeasuredStore`.
    StoreOp {
        Get => "get",
        Put => "put",
        PutIfAbsent => "put_if_absent",
        CompareAndSet => "compare_and_set",
        Delete => "delete",
        Incr => "incr",
        Keys => "keys",
        Append => "append",
        ReadLog => "read_log",
        PurgeExpired => "purge_expired",
        WriteBatch => "write_batch",
    }
}

label_values! {
    /// The `Directory` calls, as measured by `MeasuredDirectory`.
    DirectoryOp {
        Authenticate => "authenticate",
        Lookup => "lookup",
        CanonicalName => "canonical_name",
        Search => "search",
        Check => "check",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignInLabels {
    rp: String,
    outcome: SignIn,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    method: &'static str,
    outcome: Attempt,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    op: StoreOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectoryLabels {
    op: DirectoryOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// From 0.5 ms to ~8 s: a store round trip sits at the low end, an LDAP bind to a slow
/// domain controller at the high end.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The metrics of this process and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    sign_ins: Family<SignInLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    challenges_started: Counter,
    challenges_settled: Counter,
    store_seconds: Histograms<StoreLabels>,
    store_errors: Family<StoreLabels, Counter>,
    directory_seconds: Histograms<DirectoryLabels>,
    directory_errors: Family<DirectoryLabels, Counter>,
    signing_seconds: Histogram,
    http_requests: Family<HttpLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let m = Metrics {
            sign_ins: Family::default(),
            attempts: Family::default(),
            challenges_started: Counter::default(),
            challenges_settled: Counter::default(),
            store_seconds: Family::new_with_constructor(latency),
            store_errors: Family::default(),
            directory_seconds: Family::new_with_constructor(latency),
            directory_errors: Family::default(),
            signing_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 12)),
            http_requests: Family::default(),
            registry: Registry::default(),
        };
        // Counters get the `_total` suffix from the registry itself.
        registry.register(
            "sign_ins",
            "Sign-in flows started, completed (success) and ended without a sign-in (denied), by relying party",
            m.sign_ins.clone(),
        );
        registry.register(
            "second_factor_attempts",
            "Second-factor answers by method and outcome",
            m.attempts.clone(),
        );
        registry.register(
            "second_factor_challenges_started",
            "Waits for a second factor begun; pending = started - settled",
            m.challenges_started.clone(),
        );
        registry.register(
            "second_factor_challenges_settled",
            "Waits for a second factor that ended (answered, failed or left for another method)",
            m.challenges_settled.clone(),
        );
        registry.register(
            "store_seconds",
            "Latency of store calls",
            m.store_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Store calls that failed",
            m.store_errors.clone(),
        );
        registry.register(
            "directory_seconds",
            "Latency of directory (LDAP or users file) calls",
            m.directory_seconds.clone(),
        );
        registry.register(
            "directory_errors",
            "Directory calls that failed for want of the directory (not wrong passwords)",
            m.directory_errors.clone(),
        );
        registry.register(
            "saml_response_signing_seconds",
            "Time to build and sign one SAML Response",
            m.signing_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route pattern and status",
            m.http_requests.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus / OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `rp` must already be a registered entity ID, the console's name or `UNKNOWN_RP`.
    pub fn sign_in(&self, rp: &str, outcome: SignIn) {
        self.sign_ins
            .get_or_create(&SignInLabels {
                rp: rp.to_owned(),
                outcome,
            })
            .inc();
    }

    /// `method` is one of the state machine's own method names (a closed set).
    pub fn attempt(&self, method: &'static str, outcome: Attempt) {
        self.attempts
            .get_or_create(&AttemptLabels { method, outcome })
            .inc();
    }

    pub fn challenge_started(&self) {
        self.challenges_started.inc();
    }

    pub fn challenge_settled(&self) {
        self.challenges_settled.inc();
    }

    pub fn signed(&self, took: Duration) {
        self.signing_seconds.observe(took.as_secs_f64());
    }

    /// `route` is the matched route pattern (never the raw path), or a fixed word.
    pub fn http(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    fn store_call(&self, op: StoreOp, started: Instant, failed: bool) {
        let labels = StoreLabels { op };
        self.store_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&labels).inc();
        }
    }

    fn directory_call(&self, op: DirectoryOp, started: Instant, failed: bool) {
        let labels = DirectoryLabels { op };
        self.directory_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if failed {
            self.directory_errors.get_or_create(&labels).inc();
        }
    }

    /// Counts what one login transition means for the sign-in metrics. `rp` is already a
    /// bounded label (see `UNKNOWN_RP`).
    pub fn transition(&self, t: &crate::login::Transition, rp: &str) {
        if t.from == "-" {
            self.sign_in(rp, SignIn::Started);
        }
        if t.from != t.to {
            match t.to {
                "authenticated" => self.sign_in(rp, SignIn::Success),
                "denied" => self.sign_in(rp, SignIn::Denied),
                _ => {}
            }
            if t.to == "await_second_factor" {
                self.challenge_started();
            }
            if t.from == "await_second_factor" {
                self.challenge_settled();
            }
        }
        // The password and enrollment steps carry a method name too; they are not a
        // second-factor answer.
        if let Some(method) = t.method
            && !matches!(method, "password" | "enroll")
        {
            match t.outcome {
                Outcome::Success => self.attempt(method, Attempt::Success),
                Outcome::Failure => self.attempt(method, Attempt::Failure),
                Outcome::Started | Outcome::Ignored => {}
            }
        }
    }
}

/// A `Store` that times every call of the one it wraps (see `startup`).
pub struct MeasuredStore {
    pub inner: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

macro_rules! measured {
    ($self:ident, $record:ident, $op:expr, $call:expr, $failed:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.metrics.$record($op, started, $failed(&result));
        result
    }};
}

fn store_failed<T>(r: &Result<T, StoreError>) -> bool {
    r.is_err()
}

#[async_trait]
impl Store for MeasuredStore {
    async fn get(&self, key: &str) -> crate::store::Result<Option<Vec<u8>>> {
        measured!(
            self,
            store_call,
            StoreOp::Get,
            self.inner.get(key),
            store_failed
        )
    }
    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> crate::store::Result<()> {
        measured!(
            self,
            store_call,
            StoreOp::Put,
            self.inner.put(key, value, ttl),
            store_failed
        )
    }
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> crate::store::Result<bool> {
        measured!(
            self,
            store_call,
            StoreOp::PutIfAbsent,
            self.inner.put_if_absent(key, value, ttl),
            store_failed
        )
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> crate::store::Result<bool> {
        measured!(
            self,
            store_call,
            StoreOp::CompareAndSet,
            self.inner.compare_and_set(key, expected, new, ttl),
            store_failed
        )
    }
    async fn delete(&self, key: &str) -> crate::store::Result<bool> {
        measured!(
            self,
            store_call,
            StoreOp::Delete,
            self.inner.delete(key),
            store_failed
        )
    }
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> crate::store::Result<i64> {
        measured!(
            self,
            store_call,
            StoreOp::Incr,
            self.inner.incr(key, by, ttl),
            store_failed
        )
    }
    async fn keys(&self, prefix: &str) -> crate::store::Result<Vec<String>> {
        measured!(
            self,
            store_call,
            StoreOp::Keys,
            self.inner.keys(prefix),
            store_failed
        )
    }
    async fn append(
        &self,
        log: &str,
        at_ms: i64,
        value: &[u8],
        retention: Duration,
    ) -> crate::store::Result<()> {
        measured!(
            self,
            store_call,
            StoreOp::Append,
            self.inner.append(log, at_ms, value, retention),
            store_failed
        )
    }
    async fn read_log(
        &self,
        log: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> crate::store::Result<Vec<LogEntry>> {
        measured!(
            self,
            store_call,
            StoreOp::ReadLog,
            self.inner.read_log(log, from_ms, to_ms, limit),
            store_failed
        )
    }
    async fn write_batch(
        &self,
        writes: &[crate::store::Write<'_>],
    ) -> crate::store::Result<Vec<bool>> {
        measured!(
            self,
            store_call,
            StoreOp::WriteBatch,
            self.inner.write_batch(writes),
            store_failed
        )
    }
    async fn purge_expired(&self) -> crate::store::Result<usize> {
        measured!(
            self,
            store_call,
            StoreOp::PurgeExpired,
            self.inner.purge_expired(),
            store_failed
        )
    }
    // Wake-ups are not timed: a subscription's wait lasts as long as a waiting page does.
    async fn publish(&self, channel: &str) -> crate::store::Result<()> {
        self.inner.publish(channel).await
    }
    async fn subscribe(
        &self,
        channel: &str,
    ) -> crate::store::Result<crate::store::notify::Subscription> {
        self.inner.subscribe(channel).await
    }
}

/// A `Directory` that times every call of the one it wraps (see `startup`).
pub struct MeasuredDirectory {
    pub inner: Arc<dyn Directory>,
    pub metrics: Arc<Metrics>,
}

/// Only a directory that could not be asked is an error; a wrong password or a locked
/// account is the directory answering.
fn directory_failed<T>(r: &Result<T, AuthError>) -> bool {
    matches!(r, Err(AuthError::Unavailable(_)))
}

#[async_trait]
impl Directory for MeasuredDirectory {
    async fn authenticate(&self, login: &str, password: &str) -> Result<UserInfo, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::Authenticate,
            self.inner.authenticate(login, password),
            directory_failed
        )
    }
    async fn lookup(&self, login: &str) -> Result<Option<UserInfo>, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::Lookup,
            self.inner.lookup(login),
            directory_failed
        )
    }
    async fn canonical_name(&self, login: &str) -> Result<Option<String>, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::CanonicalName,
            self.inner.canonical_name(login),
            directory_failed
        )
    }
    async fn find(&self, login: &str) -> Result<Option<crate::directory::Found>, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::CanonicalName,
            self.inner.find(login),
            directory_failed
        )
    }
    async fn authenticate_found(
        &self,
        login: &str,
        password: &str,
        found: Option<crate::directory::Found>,
    ) -> Result<UserInfo, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::Authenticate,
            self.inner.authenticate_found(login, password, found),
            directory_failed
        )
    }
    async fn search(&self, text: &str, limit: usize) -> Result<Vec<UserInfo>, AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::Search,
            self.inner.search(text, limit),
            directory_failed
        )
    }
    async fn check(&self) -> Result<(), AuthError> {
        measured!(
            self,
            directory_call,
            DirectoryOp::Check,
            self.inner.check(),
            directory_failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::Transition;

    fn t(
        from: &'static str,
        to: &'static str,
        method: Option<&'static str>,
        outcome: Outcome,
    ) -> Transition {
        Transition {
            from,
            to,
            method,
            outcome,
        }
    }

    #[test]
    fn an_rp_nobody_registered_is_labelled_unknown() {
        let registry = crate::rp::Registry::default();
        let hostile = crate::login::Pending::Saml(crate::login::PendingRequest {
            rp_entity_id: "https://evil.example/made-up".into(),
            acs_url: "https://evil.example/acs".into(),
            request_id: None,
            relay_state: None,
            force_authn: false,
            requested_context: None,
            name_id_policy: None,
        });
        assert_eq!(rp_label(&registry, &hostile), UNKNOWN_RP);
        assert_eq!(
            rp_label(&registry, &crate::login::Pending::AdminConsole),
            "admin console"
        );
    }

    #[test]
    fn transitions_count_sign_ins_attempts_and_waits() {
        let m = Metrics::new();
        m.transition(&t("-", "await_password", None, Outcome::Started), "sp");
        m.transition(
            &t(
                "await_password",
                "await_second_factor",
                Some("push"),
                Outcome::Started,
            ),
            "sp",
        );
        m.transition(
            &t(
                "await_second_factor",
                "authenticated",
                Some("push"),
                Outcome::Success,
            ),
            "sp",
        );
        m.transition(
            &t(
                "await_password",
                "await_password",
                Some("password"),
                Outcome::Failure,
            ),
            "sp",
        );
        let text = m.render();
        for line in [
            r#"tessera_sign_ins_total{rp="sp",outcome="started"} 1"#,
            r#"tessera_sign_ins_total{rp="sp",outcome="success"} 1"#,
            r#"tessera_second_factor_attempts_total{method="push",outcome="success"} 1"#,
            "tessera_second_factor_challenges_started_total 1",
            "tessera_second_factor_challenges_settled_total 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // A wrong password is not a second-factor attempt.
        assert!(!text.contains(r#"method="password""#), "{text}");
    }
}
