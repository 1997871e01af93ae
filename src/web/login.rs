//! The sign-in pages: load the flow, map the form to an `Event`, `Flow::step`, save, render.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{AppContext, AppState, PageLang};
use crate::login::session;
use crate::login::{
    Event, Flow, LoginState, MAX_LOGIN_LEN, MAX_PASSWORD_LEN, Pending, SecondFactorRule, StepError,
};
use crate::store::StoreError;

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
}

/// Longest code, PIN, phone number or choice a sign-in form field may carry; real ones are
/// a few characters. (User name and password have their own limits in `login`.)
const MAX_SHORT_FIELD: usize = 64;

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

/// Persists the audit events of a flow's last steps and counts them in the metrics: the one
/// place both happen, so the sign-in log and `/metrics` cannot disagree.
async fn record_steps(ctx: &AppContext, flow: &mut Flow) -> Result<(), StoreError> {
    let events = std::mem::take(&mut flow.audit_events);
    let transitions = std::mem::take(&mut flow.transitions);
    let rp = crate::metrics::rp_label(&*ctx.registry().await, &flow.request);
    for t in &transitions {
        ctx.metrics.transition(t, &rp);
    }
    crate::audit::persist(ctx.store.as_ref(), &events).await
}

/// Saves a new flow and sends the browser to its first page, with the cookie that binds the
/// flow to this browser.
pub async fn begin(ctx: &AppContext, lang: &PageLang, mut flow: Flow, jar: CookieJar) -> Response {
    if let Err(e) = record_steps(ctx, &mut flow).await {
        return super::saml::store_failure_in(ctx, lang, &e);
    }
    let ttl = std::time::Duration::from_secs(ctx.config.idp.flow_lifetime_secs.into());
    if let Err(e) =
        crate::store::put_json(ctx.store.as_ref(), &flow_key(&flow.id), &flow, Some(ttl)).await
    {
        return super::saml::store_failure_in(ctx, lang, &e);
    }
    let cookie = Cookie::build((flow_cookie_name(&flow.id), flow.browser_secret.clone()))
        .path("/adfs/ls/")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(
            ctx.config.idp.flow_lifetime_secs.into(),
        ))
        .build();
    (
        jar.add(cookie),
        Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)),
    )
        .into_response()
}

const TOO_LONG: &str =
    "Something you typed is longer than this page accepts. Go back and try again.";

const DIRECTORY_DOWN: &str =
    "The sign-in service cannot reach the directory right now. Try again in a moment.";

const EXPIRED: &str = "This sign-in page has expired. Go back to the application and start again.";

/// Loads the flow and checks it belongs to this browser. Returns the stored bytes too, for
/// the compare-and-set that saves the next state.
async fn load(
    ctx: &AppContext,
    lang: &PageLang,
    id: &str,
    jar: &CookieJar,
) -> Result<(Flow, Vec<u8>), Response> {
    let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if valid_id {
        ctx.store
            .get(&flow_key(id))
            .await
            .map_err(|e| super::saml::store_failure_in(ctx, lang, &e))?
    } else {
        None
    };
    let flow = bytes
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Flow>(b).ok());
    let Some((flow, bytes)) = flow.zip(bytes) else {
        return Err(ctx.error_in(lang, StatusCode::NOT_FOUND, EXPIRED));
    };
    let presented = jar
        .get(&flow_cookie_name(id))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(flow.browser_secret.as_bytes())) {
        tracing::warn!(flow = id, "flow used from a browser that did not start it");
        return Err(ctx.error_in(lang, StatusCode::FORBIDDEN, EXPIRED));
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
    let res = match load(&ctx, &lang, &q.flow, &jar).await {
        Ok((flow, old)) if super::views::is_waiting(&flow.state) => {
            advance(&ctx, &lang, flow, old, Event::Poll, jar).await
        }
        Ok((flow, _)) => super::views::render(&ctx, &lang, &flow).await,
        Err(r) => r,
    };
    lang.remembered(res)
}

pub async fn submit(
    State(ctx): State<AppState>,
    lang: PageLang,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some((field, len)) = form.oversized() {
        tracing::warn!(field, len, "sign-in form refused: field too long");
        return ctx.error_in(&lang, StatusCode::BAD_REQUEST, TOO_LONG);
    }
    let (flow, old) = match load(&ctx, &lang, &form.flow, &jar).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(event) = form.event() else {
        tracing::warn!(flow = %flow.id, "unknown sign-in form action");
        return ctx.error_in(
            &lang,
            StatusCode::BAD_REQUEST,
            "The sign-in page sent something unexpected. Reload it and try again.",
        );
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
) -> Response {
    let rule = match &flow.request {
        Pending::Saml(p) => match ctx.registry().await.get(&p.rp_entity_id) {
            Some(rp) if !rp.mfa_required => SecondFactorRule::NotRequired,
            _ => SecondFactorRule::Required,
        },
        Pending::AdminConsole => SecondFactorRule::Always,
    };
    let policy = ctx.policy().await;
    let flow_id = flow.id.clone();
    let mut flow = match flow.step(event, &ctx.deps(&policy, rule)).await {
        Ok(f) => f,
        Err(StepError::Store(e)) => return super::saml::store_failure_in(ctx, lang, &e),
        Err(StepError::DirectoryUnavailable(detail)) => {
            // Nothing was saved: the same page works again once the directory answers.
            tracing::error!(flow = %flow_id, error = %detail, "directory unavailable");
            return ctx.error_in(lang, StatusCode::SERVICE_UNAVAILABLE, DIRECTORY_DOWN);
        }
        Err(StepError::Random(e)) => {
            // Nothing was saved or sent: no challenge goes out with a guessable id or code.
            tracing::error!(flow = %flow_id, error = %e, "random generator failed");
            let message = "The sign-in service is temporarily unavailable. Try again in a moment.";
            return ctx.error_in(lang, StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    if let Err(e) = record_steps(ctx, &mut flow).await {
        return super::saml::store_failure_in(ctx, lang, &e);
    }
    let key = flow_key(&flow.id);
    if let LoginState::Authenticated {
        user,
        methods,
        authn_instant,
    } = &flow.state
    {
        // The flow is consumed: it ends here, once.
        match ctx
            .store
            .compare_and_set(
                &key,
                Some(&old),
                b"{}",
                Some(std::time::Duration::from_secs(1)),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)).into_response();
            }
            Err(e) => return super::saml::store_failure_in(ctx, lang, &e),
        }
        return match &flow.request {
            Pending::Saml(pending) => {
                let s = session::start(
                    user.clone(),
                    methods.clone(),
                    *authn_instant,
                    ctx.clock.unix(),
                    ctx.config.idp.session_lifetime_secs.into(),
                );
                super::saml::issue(ctx, lang, pending, s, jar).await
            }
            Pending::AdminConsole => {
                super::admin::signed_in(ctx, user, methods, &flow.client_ip, jar).await
            }
        };
    }
    let saved = match serde_json::to_vec(&flow) {
        Ok(new) if new == old => Ok(true),
        Ok(new) => {
            let ttl = std::time::Duration::from_secs(ctx.config.idp.flow_lifetime_secs.into());
            ctx.store
                .compare_and_set(&key, Some(&old), &new, Some(ttl))
                .await
        }
        Err(e) => Err(StoreError::Corrupt {
            key: key.clone(),
            detail: e.to_string(),
        }),
    };
    match saved {
        Ok(true) => super::views::render(ctx, lang, &flow).await,
        // Someone else moved the flow on (another tab, another node): show what is current.
        Ok(false) => Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)).into_response(),
        Err(e) => super::saml::store_failure_in(ctx, lang, &e),
    }
}
