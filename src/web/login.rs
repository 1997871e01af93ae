//! The sign-in pages: load the flow, map the form to an `Event`, `Flow::step`, save, render.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::WebError;
use super::{AppContext, AppState, PageLang};
use crate::login::session;
use crate::login::{
    Event, Flow, LoginState, MAX_LOGIN_LEN, MAX_PASSWORD_LEN, Pending, SecondFactorRule, StepError,
};
use crate::store::{Deferred, StoreError, Write};

pub fn flow_key(id: &str) -> String {
    format!("flow:{id}")
}

/// One cookie per flow, so sign-ins in two tabs do not disturb each other.
pub fn flow_cookie_name(id: &str) -> String {
    format!("tf_{}", &id[..id.len().min(12)])
}

#[derive(Deserialize)]
pub struct FlowQuery {
    flow: String,
}

/// Every form of the sign-in pages posts here; `action` says which button was used.
#[derive(Deserialize)]
pub struct LoginForm {
    flow: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    make_default: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    confirm: String,
    /// Security answers, one field per question asked (at most `questions_required` ≤ 5).
    #[serde(default)]
    answer0: String,
    #[serde(default)]
    answer1: String,
    #[serde(default)]
    answer2: String,
    #[serde(default)]
    answer3: String,
    #[serde(default)]
    answer4: String,
}

/// Longest code, PIN, phone number or choice a sign-in form field may carry; real ones are
/// a few characters. (User name and password have their own limits in `login`.)
const MAX_SHORT_FIELD: usize = 64;
/// Longest security answer field in bytes: 200 characters of up to 4 bytes each.
const MAX_ANSWER_FIELD: usize = crate::mfa::questions::MAX_ANSWER_CHARS * 4;

impl LoginForm {
    /// The first field longer than anything a sign-in needs, with its length: such a form
    /// is refused before anything of it is checked, stored or logged.
    fn oversized(&self) -> Option<(&'static str, usize)> {
        let short = MAX_SHORT_FIELD;
        [
            ("flow", self.flow.len(), short),
            ("action", self.action.len(), short),
            ("username", self.username.len(), MAX_LOGIN_LEN),
            ("password", self.password.len(), MAX_PASSWORD_LEN),
            ("code", self.code.len(), short),
            ("method", self.method.len(), short),
            ("number", self.number.len(), short),
            ("make_default", self.make_default.len(), short),
            ("pin", self.pin.len(), short),
            ("confirm", self.confirm.len(), short),
            ("answer0", self.answer0.len(), MAX_ANSWER_FIELD),
            ("answer1", self.answer1.len(), MAX_ANSWER_FIELD),
            ("answer2", self.answer2.len(), MAX_ANSWER_FIELD),
            ("answer3", self.answer3.len(), MAX_ANSWER_FIELD),
            ("answer4", self.answer4.len(), MAX_ANSWER_FIELD),
        ]
        .into_iter()
        .find(|(_, len, max)| len > max)
        .map(|(name, len, _)| (name, len))
    }

    fn event(self) -> Option<Event> {
        Some(match self.action.as_str() {
            "" | "password" => Event::Password {
                login: self.username,
                password: self.password,
            },
            "code" => Event::Code { code: self.code },
            "answers" => {
                let all = [
                    self.answer0,
                    self.answer1,
                    self.answer2,
                    self.answer3,
                    self.answer4,
                ];
                // The page has one field per question asked; the step compares the count.
                let n = all.iter().rposition(|a| !a.is_empty()).map_or(0, |i| i + 1);
                Event::Answers {
                    answers: all.into_iter().take(n).collect(),
                }
            }
            "different" => Event::UseDifferent,
            "choose" => Event::Choose {
                method: self.method.parse().ok()?,
                make_default: self.make_default == "on",
            },
            "set_pin" => Event::SetPin {
                pin: self.pin,
                confirm: self.confirm,
            },
            "poll" => Event::Poll,
            "enroll_app" => Event::EnrollApp,
            "enroll_phone" => Event::EnrollPhone {
                number: self.number,
            },
            "enroll_push" => Event::EnrollPush,
            "enroll_confirm" => Event::EnrollConfirm { code: self.code },
            _ => return None,
        })
    }
}

/// What a step leaves to save besides the flow: its audit events and the writes it deferred.
struct StepWrites {
    events: Vec<(i64, String)>,
    deferred: Vec<Deferred>,
}

/// Takes the audit events of a flow's last steps, for the caller to save with the flow and
/// the step's `deferred` writes, and counts them in the metrics: the one place both happen,
/// so the sign-in log and `/metrics` cannot disagree.
async fn take_steps(ctx: &AppContext, flow: &mut Flow, deferred: Vec<Deferred>) -> StepWrites {
    let transitions = std::mem::take(&mut flow.transitions);
    let rp = crate::metrics::rp_label(&*ctx.registry().await, &flow.request);
    for t in &transitions {
        ctx.metrics.transition(t, &rp);
    }
    StepWrites {
        events: std::mem::take(&mut flow.audit_events),
        deferred,
    }
}

/// A step's writes in one batch (one store round trip): its audit events, the writes it
/// deferred, then the flow's own write (if any); that write's answer (`true` for a put or
/// for none).
async fn save_step(
    ctx: &AppContext,
    step: &StepWrites,
    flow_write: Option<Write<'_>>,
) -> Result<bool, StoreError> {
    let mut writes: Vec<Write<'_>> = crate::audit::appends(&step.events).collect();
    writes.extend(step.deferred.iter().map(Deferred::as_write));
    let flow_written = flow_write.is_some();
    writes.extend(flow_write);
    let answers = ctx.store.write_batch(&writes).await?;
    Ok(!flow_written || answers.last() == Some(&true))
}

fn flow_ttl(ctx: &AppContext) -> std::time::Duration {
    std::time::Duration::from_secs(ctx.config.idp.flow_lifetime_secs.into())
}

fn flow_bytes(flow: &Flow) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(flow).map_err(|e| StoreError::Corrupt {
        key: flow_key(&flow.id),
        detail: e.to_string(),
    })
}

/// Saves a new flow and sends the browser to its first page, with the cookie that binds the
/// flow to this browser.
pub async fn begin(ctx: &AppContext, mut flow: Flow, jar: CookieJar) -> Result<Response, WebError> {
    let step = take_steps(ctx, &mut flow, Vec::new()).await;
    let (key, value) = (flow_key(&flow.id), flow_bytes(&flow)?);
    let ttl = Some(flow_ttl(ctx));
    save_step(
        ctx,
        &step,
        Some(Write::Put {
            key: &key,
            value: &value,
            ttl,
        }),
    )
    .await?;
    let cookie = Cookie::build((flow_cookie_name(&flow.id), flow.browser_secret.clone()))
        .path("/adfs/ls/")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            ctx.config.idp.flow_lifetime_secs.into(),
        ))
        .build();
    Ok((
        jar.add(cookie),
        Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)),
    )
        .into_response())
}

const TOO_LONG: &str =
    "Something you typed is longer than this page accepts. Go back and try again.";

const DIRECTORY_DOWN: &str =
    "The sign-in service cannot reach the directory right now. Try again in a moment.";

const EXPIRED: &str = "This sign-in page has expired. Go back to the application and start again.";

/// Loads the flow and checks it belongs to this browser. Returns the stored bytes too, for
/// the compare-and-set that saves the next state.
pub(super) async fn load(
    ctx: &AppContext,
    id: &str,
    jar: &CookieJar,
) -> Result<(Flow, Vec<u8>), WebError> {
    let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if valid_id {
        ctx.store.get(&flow_key(id)).await?
    } else {
        None
    };
    let flow = bytes
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Flow>(b).ok());
    let Some((flow, bytes)) = flow.zip(bytes) else {
        return Err(WebError::not_found(EXPIRED));
    };
    let presented = jar
        .get(&flow_cookie_name(id))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(flow.browser_secret.as_bytes())) {
        tracing::warn!(flow = id, "flow used from a browser that did not start it");
        return Err(WebError::forbidden(EXPIRED));
    }
    Ok((flow, bytes))
}

/// GET: shows the current state; a waiting page's refresh is a `Poll`. `?lang=` (a
/// language link) is remembered in a cookie, whatever the page turns out to be.
pub async fn show(
    State(ctx): State<AppState>,
    lang: PageLang,
    jar: CookieJar,
    Query(q): Query<FlowQuery>,
) -> Response {
    let res = current(&ctx, &lang, &q.flow, jar).await.into_response();
    lang.remembered(res)
}

/// The flow's page as it stands (a waiting page asks for news first).
async fn current(
    ctx: &AppContext,
    lang: &PageLang,
    id: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let (flow, old) = load(ctx, id, &jar).await?;
    if super::views::is_waiting(&flow.state) {
        advance(ctx, lang, flow, old, Event::Poll, jar).await
    } else {
        super::views::render(ctx, lang, &flow).await
    }
}

pub async fn submit(
    State(ctx): State<AppState>,
    lang: PageLang,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    if let Some((field, len)) = form.oversized() {
        tracing::warn!(field, len, "sign-in form refused: field too long");
        return Err(WebError::bad_request(TOO_LONG));
    }
    let (flow, old) = load(&ctx, &form.flow, &jar).await?;
    let Some(event) = form.event() else {
        tracing::warn!(flow = %flow.id, "unknown sign-in form action");
        return Err(WebError::bad_request(
            "The sign-in page sent something unexpected. Reload it and try again.",
        ));
    };
    advance(&ctx, &lang, flow, old, event, jar).await
}

/// Steps the flow, saves it (compare-and-set: a double submit or another node racing on the
/// same flow cannot both win) and renders the new state — or finishes the sign-in.
async fn advance(
    ctx: &AppContext,
    lang: &PageLang,
    flow: Flow,
    old: Vec<u8>,
    event: Event,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let rule = second_factor_rule(ctx, &flow.request).await;
    let policy = ctx.policy().await;
    let flow_id = flow.id.clone();
    let deps = ctx.deps(&policy, rule).in_lang(lang.lang);
    let mut flow = match flow.step(event, &deps).await {
        Ok(f) => f,
        Err(StepError::Store(e)) => return Err(e.into()),
        Err(StepError::DirectoryUnavailable(detail)) => {
            // Nothing was saved: the same page works again once the directory answers.
            tracing::error!(flow = %flow_id, error = %detail, "directory unavailable");
            return Err(WebError::Unavailable(DIRECTORY_DOWN.into()));
        }
        Err(StepError::Random(e)) => {
            // Nothing was saved or sent: no challenge goes out with a guessable id or code.
            tracing::error!(flow = %flow_id, error = %e, "random generator failed");
            return Err(WebError::Unavailable(
                "The sign-in service is temporarily unavailable. Try again in a moment.".into(),
            ));
        }
    };
    let step = take_steps(ctx, &mut flow, deps.later.take()).await;
    if matches!(flow.state, LoginState::Authenticated { .. }) {
        return finish(ctx, lang, flow, old, &step, jar).await;
    }
    if save(ctx, &flow, old, &step).await? {
        super::views::render(ctx, lang, &flow).await
    } else {
        // Someone else moved the flow on (another tab, another node): show what is current.
        Ok(again(&flow))
    }
}

/// Whether the sign-in's application asks for a second factor.
async fn second_factor_rule(ctx: &AppContext, request: &Pending) -> SecondFactorRule {
    let rp = match request {
        Pending::Saml(p) => &p.rp_entity_id,
        Pending::WsFed(p) => &p.realm,
        // The portal changes the second factor itself: a password alone never opens it.
        Pending::AdminConsole | Pending::Portal => return SecondFactorRule::Always,
    };
    match ctx.registry().await.get(rp) {
        Some(rp) if !rp.mfa_required => SecondFactorRule::NotRequired,
        _ => SecondFactorRule::Required,
    }
}

/// The flow's page again, as it now stands.
fn again(flow: &Flow) -> Response {
    Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)).into_response()
}

/// Saves the stepped flow over `old`, with what its steps left to write; `false` when someone
/// else saved first (the rest is written either way: the steps happened).
async fn save(
    ctx: &AppContext,
    flow: &Flow,
    old: Vec<u8>,
    step: &StepWrites,
) -> Result<bool, StoreError> {
    let (key, new) = (flow_key(&flow.id), flow_bytes(flow)?);
    if new == old {
        return save_step(ctx, step, None).await;
    }
    let cas = Write::CompareAndSet {
        key: &key,
        expected: Some(&old),
        new: &new,
        ttl: Some(flow_ttl(ctx)),
    };
    save_step(ctx, step, Some(cas)).await
}

/// An authenticated flow ends here, once (the flow is consumed): an SSO session and the
/// assertion for an application, or a console session.
async fn finish(
    ctx: &AppContext,
    lang: &PageLang,
    flow: Flow,
    old: Vec<u8>,
    step: &StepWrites,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let LoginState::Authenticated {
        user,
        methods,
        authn_instant,
    } = &flow.state
    else {
        return Ok(again(&flow));
    };
    let key = flow_key(&flow.id);
    let consume = Write::CompareAndSet {
        key: &key,
        expected: Some(&old),
        new: b"{}",
        ttl: Some(std::time::Duration::from_secs(1)),
    };
    if !save_step(ctx, step, Some(consume)).await? {
        return Ok(again(&flow));
    }
    let new_session = || {
        session::start(
            user.clone(),
            methods.clone(),
            *authn_instant,
            ctx.clock.unix(),
            ctx.config.idp.session_lifetime_secs.into(),
        )
    };
    match &flow.request {
        Pending::Saml(pending) => super::saml::issue(ctx, lang, pending, new_session(), jar).await,
        Pending::WsFed(pending) => {
            super::wsfed::issue(ctx, lang, pending, new_session(), jar).await
        }
        Pending::AdminConsole => {
            super::admin::signed_in(ctx, user, methods, &flow.client_ip, jar).await
        }
        Pending::Portal => super::portal::signed_in(ctx, user, methods, &flow.client_ip, jar).await,
    }
}
