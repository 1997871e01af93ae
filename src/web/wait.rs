//! The waiting page's live line: a Server-Sent Events stream saying when its push, call or text is answered or runs out.
//!
//! `GET /adfs/ls/login/wait?flow=ID` checks the flow cookie as the sign-in page does, then
//! listens on the challenge's wake-up channel (`Store::subscribe`, so an answer reaching any
//! node wakes it) and sends, per the HTML Living Standard "Server-sent events" (§9.2):
//! - `event: progress` with the seconds left, every `PROGRESS` (for the page's live region,
//!   which a screen reader announces: not every second);
//! - `event: state` once the challenge is no longer pending or its deadline has passed; the
//!   page then submits its own poll form, so `Flow::step` moves the sign-in on as before.
//!   The stream ends there;
//! - `event: replaced` when a newer stream of the same flow took over (a duplicated tab):
//!   that page stops listening. The stream ends there too.
//!
//! Comment lines keep proxies from cutting a quiet stream. This handler never writes the
//! flow. Bounds: one stream per flow (a newer one takes over and the older ends) and
//! `STREAMS_PER_USER` streams per user, counted in the store so they hold across nodes.
//! Beyond that the answer is 429 and the page works on through its Continue button.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use futures_util::stream;
use serde::Deserialize;

use super::AppState;
use crate::login::{Flow, LoginState, PendingEnrollment};
use crate::mfa::challenge;
use crate::store::notify::Subscription;
use crate::store::{Store, StoreError};

/// How often the seconds left are announced.
pub const PROGRESS: Duration = Duration::from_secs(20);
/// How often the challenge is re-read without a wake-up: a backstop for a wake-up lost with
/// a dropped Redis connection, and for a clock that jumps (the tests' fixed clock). One read
/// per waiting page per period; the reloads this replaces cost a whole page every 2 s.
const RECHECK: Duration = Duration::from_secs(5);
/// How often a comment line goes out on a quiet stream; below the usual 30-60 s proxy idle
/// timeouts.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Live streams one user may hold at once, across all nodes: a few tabs, not a flood.
pub const STREAMS_PER_USER: usize = 5;
/// How long a slot outlives its stream's deadline, should its node die before freeing it.
const SLOT_GRACE: i64 = 30;
/// Longest flow id accepted in the query (real ones have 32 hex digits).
const MAX_FLOW_ID: usize = 64;

/// The waiting pages' Content-Security-Policy: every page's (`web::csp`) plus
/// `connect-src 'self'` for their EventSource, which `default-src 'none'` would forbid.
/// Only these pages get it; the others stay without any `connect-src`.
pub fn page_csp() -> HeaderValue {
    let policy = format!("{}; connect-src 'self'", super::csp("'self'"));
    // Built from constants: always a valid header value.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// Marks a waiting page's response with `page_csp` (the security layer keeps a policy a
/// handler set).
pub fn live_page(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, page_csp());
    res
}

#[derive(Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    flow: String,
}

/// The answers are read by a program (the page's EventSource), so refusals are short text;
/// the details are in the log.
fn refusal(status: StatusCode, text: &'static str) -> Response {
    let mut res = (status, text).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// GET /adfs/ls/login/wait?flow=ID
pub async fn events(
    State(ctx): State<AppState>,
    jar: CookieJar,
    Query(q): Query<WaitQuery>,
) -> Response {
    if q.flow.len() > MAX_FLOW_ID {
        return refusal(StatusCode::BAD_REQUEST, "flow id too long");
    }
    let flow = match super::login::load(&ctx, &q.flow, &jar).await {
        Ok((flow, _)) => flow,
        // `load` logged why; the status (404 gone, 403 another browser's) is all we repeat.
        Err(e) => return refusal(e.into_response().status(), "no such sign-in here"),
    };
    let Some((challenge_id, user)) = waits_on(&flow) else {
        // Nothing to wait for (any more): the page should look at once.
        return stream_of(None);
    };
    match Live::start(&ctx, &flow.id, challenge_id, user).await {
        Ok(Start::Live(live)) => stream_of(Some(live)),
        Ok(Start::Gone) => stream_of(None),
        Ok(Start::Full) => {
            tracing::warn!(flow = %flow.id, "live wait refused: too many streams for this user");
            let mut res = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "too many waiting pages open for this user; use the page's Continue button",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            res
        }
        Err(e) => {
            tracing::error!(flow = %flow.id, error = %e, "live wait: store failure");
            refusal(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// The challenge a waiting flow waits on, and whose sign-in it is.
fn waits_on(flow: &Flow) -> Option<(&str, &str)> {
    match &flow.state {
        LoginState::AwaitSecondFactor(w) => Some((w.challenge.as_deref()?, &w.user.username)),
        LoginState::Enroll {
            user,
            pending: Some(PendingEnrollment::Push { challenge, .. }),
            ..
        } => Some((challenge, &user.username)),
        _ => None,
    }
}

/// Where the stream stands between two events.
enum Phase {
    Wait(Live),
    /// Only the `state` event is left to send.
    Settle,
    Done,
}

/// The event stream: the waiting loop, or (`None`) a single `state` event.
fn stream_of(live: Option<Live>) -> Response {
    let first = live.map_or(Phase::Settle, Phase::Wait);
    let events = stream::unfold(first, |phase| async move {
        let (event, next) = match phase {
            Phase::Wait(live) => live.next().await?,
            Phase::Settle => (settled(), Phase::Done),
            Phase::Done => return None,
        };
        Some((Ok::<_, Infallible>(event), next))
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // nginx buffers responses by default; a buffered event arrives too late to matter.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    // Written by the connection itself rather than hyper: a held stream then costs its own
    // few kilobytes, not hyper's per-connection buffers (`server::HandOver`).
    res.extensions_mut().insert(crate::server::HandOver);
    res
}

fn settled() -> Event {
    Event::default().event("state").data("changed")
}

/// One open stream: what it waits on, and the slots it holds.
struct Live {
    ctx: AppState,
    challenge_id: String,
    wakeups: Subscription,
    slots: Slots,
    /// When the next progress event is due (Unix seconds, the app clock).
    next_progress: i64,
}

/// How a stream begins.
enum Start {
    Live(Live),
    /// The challenge is gone already: the page should look at once.
    Gone,
    /// The user holds `STREAMS_PER_USER` streams already.
    Full,
}

/// Where one look at the challenge leaves the stream.
enum Look {
    /// Answered, failed, gone, or past its deadline: tell the page.
    Settled,
    /// A newer stream for the same flow took over: end quietly.
    Replaced,
    Pending {
        left: i64,
    },
}

impl Live {
    /// Reads the deadline, takes a user slot and the flow's stream, and subscribes.
    async fn start(
        ctx: &AppState,
        flow_id: &str,
        challenge_id: &str,
        user: &str,
    ) -> Result<Start, StoreError> {
        let store = ctx.store.as_ref();
        let Some(c) = challenge::load(store, challenge_id).await? else {
            return Ok(Start::Gone);
        };
        let now = ctx.clock.unix();
        let ttl = Duration::from_secs((c.deadline - now + SLOT_GRACE).max(1).unsigned_abs());
        let Some(slots) = Slots::take(ctx.store.clone(), user, flow_id, ttl).await? else {
            return Ok(Start::Full);
        };
        // Subscribed before anything is read again, so an answer from now on cannot be missed.
        let wakeups = store.subscribe(&challenge::channel(challenge_id)).await?;
        // Older streams of this flow wake up, see they were replaced, and end.
        store.publish(&challenge::channel(challenge_id)).await?;
        Ok(Start::Live(Live {
            ctx: ctx.clone(),
            challenge_id: challenge_id.to_owned(),
            wakeups,
            slots,
            next_progress: now + PROGRESS.as_secs().cast_signed(),
        }))
    }

    /// The next event, after waiting as long as needed; `None` ends the stream.
    async fn next(mut self) -> Option<(Event, Phase)> {
        // A new stream was just woken by its own take-over of the flow.
        let mut woken = true;
        loop {
            let left = match self.look(woken).await {
                Ok(Look::Settled) => return Some((settled(), Phase::Done)),
                // The page behind the older stream (a duplicated tab) stops listening rather
                // than reconnect and take the flow back, over and over.
                Ok(Look::Replaced) => {
                    return Some((Event::default().event("replaced").data("-"), Phase::Done));
                }
                Ok(Look::Pending { left }) => left,
                Err(e) => {
                    // The browser reconnects by itself (EventSource), and the page's
                    // Continue button works meanwhile.
                    tracing::warn!(challenge = %self.challenge_id, error = %e, "live wait: store failure, stream ends");
                    return None;
                }
            };
            let now = self.ctx.clock.unix();
            if now >= self.next_progress {
                self.next_progress = now + PROGRESS.as_secs().cast_signed();
                let event = Event::default().event("progress").data(left.to_string());
                return Some((event, Phase::Wait(self)));
            }
            let until =
                Duration::from_secs((self.next_progress - now).min(left).max(1).unsigned_abs());
            woken = self.wakeups.changed(until.min(RECHECK)).await;
        }
    }

    /// `woken`: a publish, which may be a newer stream of the flow taking over.
    async fn look(&self, woken: bool) -> Result<Look, StoreError> {
        let store = self.ctx.store.as_ref();
        if woken && !self.slots.own_flow(store).await? {
            return Ok(Look::Replaced);
        }
        let now = self.ctx.clock.unix();
        Ok(match challenge::load(store, &self.challenge_id).await? {
            Some(c) if c.awaited(now) => Look::Pending {
                left: c.deadline - now,
            },
            _ => Look::Settled,
        })
    }
}

/// The store records a stream holds: one of its user's `STREAMS_PER_USER` slots, and its
/// flow's "current stream" mark. Both expire on their own shortly after the deadline, and
/// are released as soon as the stream goes (the browser left, or the stream ended).
struct Slots {
    store: Arc<dyn Store>,
    token: String,
    user_slot: String,
    flow_mark: String,
}

impl Slots {
    async fn take(
        store: Arc<dyn Store>,
        user: &str,
        flow_id: &str,
        ttl: Duration,
    ) -> Result<Option<Slots>, StoreError> {
        let token = crate::saml::random_hex(16);
        let user_key = crate::store::hashed_key("wait:user", &user.to_lowercase());
        let mut user_slot = None;
        for n in 0..STREAMS_PER_USER {
            let key = format!("{user_key}:{n}");
            if store
                .put_if_absent(&key, token.as_bytes(), Some(ttl))
                .await?
            {
                user_slot = Some(key);
                break;
            }
        }
        let Some(user_slot) = user_slot else {
            return Ok(None);
        };
        let flow_mark = format!("wait:flow:{flow_id}");
        let slots = Slots {
            store,
            token,
            user_slot,
            flow_mark,
        };
        // Unconditional: the newest stream of a flow is the one its page listens to.
        slots
            .store
            .put(&slots.flow_mark, slots.token.as_bytes(), Some(ttl))
            .await?;
        Ok(Some(slots))
    }

    async fn own_flow(&self, store: &dyn Store) -> Result<bool, StoreError> {
        Ok(store.get(&self.flow_mark).await?.as_deref() == Some(self.token.as_bytes()))
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let (store, token) = (self.store.clone(), std::mem::take(&mut self.token));
        let (user_slot, flow_mark) = (
            std::mem::take(&mut self.user_slot),
            std::mem::take(&mut self.flow_mark),
        );
        // Dropped inside the runtime (the response body goes with its connection).
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let release = async {
                store.delete(&user_slot).await?;
                // Only our own mark: a newer stream of the flow keeps its.
                if store.get(&flow_mark).await?.as_deref() == Some(token.as_bytes()) {
                    store.delete(&flow_mark).await?;
                }
                Ok::<_, StoreError>(())
            };
            if let Err(e) = release.await {
                tracing::warn!(error = %e, "live wait: could not free a stream slot; it expires on its own");
            }
        });
    }
}
