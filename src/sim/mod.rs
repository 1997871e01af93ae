//! Development carrier simulator: an ntfy server, a Twilio API and a web "phone", all in memory.
//!
//! The gateways (`crate::mfa::gateway`) talk to it over real HTTP with the same client code
//! they use against ntfy and Twilio, and it calls Tessera back exactly as those services do
//! (ntfy action requests; Twilio voice, gather, status and inbound-SMS webhooks, signed with
//! `X-Twilio-Signature`). So the whole MFA flow runs on a laptop and in tests, no carrier.
//!
//! Routes (mounted at the application root):
//! - `POST /sim/ntfy/`, `POST /sim/ntfy/{topic}` — ntfy publish.
//! - `POST /sim/twilio/2010-04-01/Accounts/{sid}/Calls.json` and `.../Messages.json`.
//! - `POST /sim/api/push/{id}/action/{index}`, `/sim/api/call/{id}/digits`,
//!   `/sim/api/call/{id}/no-answer`, `/sim/api/sms/reply`, `GET /sim/api/inbox` — what a
//!   user does with the phone, for tests (JSON answers).
//! - `GET /dev/phone` — the same as a page of plain HTML forms; pushes no sign-in waits for
//!   any more show as expired (`liveness`).
//!
//! DEVELOPMENT ONLY. Anyone who can reach these routes can approve any push or call, read
//! every code sent, and make the server POST to any URL. Never mount it in production.

mod api;
mod carrier;
pub mod inbox;
mod liveness;
mod ntfy;
mod phone;
mod twilio;
mod twiml;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

pub use liveness::Liveness;

pub use inbox::{
    CAP as INBOX_CAP, CallState, Direction, Gather, Inbox, SimAction, SimCall, SimPush, SimText,
};

use crate::mfa::gateway::{GatewayError, GatewaySettings, SIMULATOR_AUTH_TOKEN};

/// How the simulator authenticates and where it delivers inbound texts.
#[derive(Clone)]
pub struct SimConfig {
    /// Checked (with the account SID in the URL) on API requests, and used to sign every
    /// callback, like a Twilio account's auth token.
    pub twilio_auth_token: String,
    /// Tessera's inbound SMS webhook, e.g. `{base}/mfa/sms/inbound`.
    pub inbound_sms_url: String,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("twilio_auth_token", &"<redacted>")
            .field("inbound_sms_url", &self.inbound_sms_url)
            .finish()
    }
}

impl SimConfig {
    /// The simulator matching `settings` (same auth token as the Twilio client `build`
    /// points at it), or `None` when neither gateway is "simulator".
    pub fn from_settings(settings: &GatewaySettings, inbound_sms_url: String) -> Option<Self> {
        settings.uses_simulator().then(|| SimConfig {
            twilio_auth_token: settings
                .twilio_auth_token()
                .unwrap_or(SIMULATOR_AUTH_TOKEN)
                .to_owned(),
            inbound_sms_url,
        })
    }
}

/// The simulator's shared state; cheap to clone.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    inbox: Mutex<Inbox>,
    http: reqwest::Client,
    pages: minijinja::Environment<'static>,
    /// Tells the dev phone which pushes are expired; without it none are shown so.
    liveness: Option<Liveness>,
}

/// How long a simulated callback to Tessera may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

impl SimState {
    /// Fails only if the HTTP client cannot be set up (TLS backend) or the page template is
    /// broken (a unit test renders it).
    pub fn new(config: SimConfig) -> Result<Self, GatewayError> {
        Self::build(config, None)
    }

    /// `new`, with the dev phone greying out pushes whose challenge nobody waits for.
    pub fn watching(config: SimConfig, liveness: Liveness) -> Result<Self, GatewayError> {
        Self::build(config, Some(liveness))
    }

    fn build(config: SimConfig, liveness: Option<Liveness>) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("TwilioProxy/1.1 (tessera-sim)")
            .build()
            .map_err(|e| GatewayError::Config(format!("simulator HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                inbox: Mutex::new(Inbox::default()),
                http,
                pages: phone::templates()?,
                liveness,
            }),
        })
    }

    /// A copy of everything the phones have received.
    pub fn snapshot(&self) -> Inbox {
        self.inbox().clone()
    }

    /// The inbox, locked. Held only for quick in-memory edits, never across an await. A
    /// panic elsewhere while holding it cannot leave it half-updated in a way that matters
    /// (each edit is a single push or field write), so a poisoned lock is simply reused.
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inner
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids of the pushes in `pushes` that no sign-in waits for any more. Only pushes
    /// still on screen (not cleared) are looked up: one store read each.
    async fn expired_pushes(&self, pushes: &VecDeque<SimPush>) -> HashSet<String> {
        let mut out = HashSet::new();
        let Some(l) = &self.inner.liveness else {
            return out;
        };
        for p in pushes.iter().filter(|p| !p.cleared) {
            if l.expired(p).await {
                out.insert(p.id.clone());
            }
        }
        out
    }

    fn config(&self) -> &SimConfig {
        &self.inner.config
    }
}

/// The simulator's routes, with their state; merge into the app at the root (generic over
/// the app's state type so it merges into any router).
pub fn router<S: Clone + Send + Sync + 'static>(state: SimState) -> Router<S> {
    let twilio_base = "/sim/twilio/2010-04-01/Accounts/{sid}";
    Router::new()
        .route("/sim/ntfy", post(ntfy::publish_json))
        .route("/sim/ntfy/", post(ntfy::publish_json))
        .route("/sim/ntfy/{topic}", post(ntfy::publish_to_topic))
        .route(
            &format!("{twilio_base}/Calls.json"),
            post(twilio::create_call),
        )
        .route(
            &format!("{twilio_base}/Messages.json"),
            post(twilio::create_message),
        )
        .route("/sim/api/inbox", get(api::inbox))
        .route("/sim/api/push/{id}/action/{index}", post(api::press_push))
        .route("/sim/api/call/{id}/digits", post(api::digits))
        .route("/sim/api/call/{id}/no-answer", post(api::no_answer))
        .route("/sim/api/sms/reply", post(api::sms_reply))
        .route("/dev/phone", get(phone::page))
        .route("/dev/phone.css", get(phone::css))
        .route(
            "/dev/phone/push/{id}/action/{index}",
            post(phone::press_push),
        )
        .route("/dev/phone/call/{id}/key", post(phone::key))
        .route("/dev/phone/call/{id}/digits", post(phone::digits))
        .route("/dev/phone/call/{id}/no-answer", post(phone::no_answer))
        .route("/dev/phone/sms/reply", post(phone::sms_reply))
        .with_state(state)
}
