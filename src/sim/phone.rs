//! The `/dev/phone` page: the simulated devices as plain HTML forms (no JavaScript).
//!
//! Everything shown (titles, prompts, texts, labels) comes from requests anyone can make,
//! so the page is rendered by minijinja with HTML auto-escaping (the template is `.html`).

use std::collections::{BTreeMap, HashSet};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};

use super::SimState;
use super::api::{DigitsForm, ReplyForm};
use super::carrier::SimError;
use super::inbox::{Direction, Inbox, SimCall, SimPush, SimText};
use crate::mfa::gateway::GatewayError;

const KEYS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

/// The page's template environment (one template, auto-escaped as HTML).
pub fn templates() -> Result<Environment<'static>, GatewayError> {
    let mut env = Environment::new();
    env.add_template("phone.html", include_str!("phone.html"))
        .map_err(|e| GatewayError::Config(format!("dev phone template: {e}")))?;
    Ok(env)
}

#[derive(Serialize)]
struct App {
    topic: String,
    pushes: Vec<PushView>,
}

/// A push as the page shows it: greyed out, buttons disabled, when `expired`.
#[derive(Serialize)]
struct PushView {
    #[serde(flatten)]
    push: SimPush,
    expired: bool,
}

#[derive(Serialize, Default)]
struct Phone {
    number: String,
    calls: Vec<SimCall>,
    texts: Vec<SimText>,
}

/// Groups the inbox by device: one app per ntfy topic, one phone per number. Newest
/// notifications and calls first; texts in conversation order. `expired` names the pushes
/// no sign-in waits for any more.
fn devices(inbox: Inbox, expired: &HashSet<String>) -> (Vec<App>, Vec<Phone>) {
    let mut apps: BTreeMap<String, Vec<PushView>> = BTreeMap::new();
    for p in inbox.pushes.into_iter().rev() {
        let expired = !p.cleared && expired.contains(&p.id);
        apps.entry(p.topic.clone())
            .or_default()
            .push(PushView { push: p, expired });
    }
    let mut phones: BTreeMap<String, Phone> = BTreeMap::new();
    for c in inbox.calls.into_iter().rev() {
        phone(&mut phones, &c.to).calls.push(c);
    }
    for t in inbox.texts {
        let n = match t.direction {
            Direction::ToPhone => t.to.clone(),
            Direction::FromPhone => t.from.clone(),
        };
        phone(&mut phones, &n).texts.push(t);
    }
    let apps = apps
        .into_iter()
        .map(|(topic, pushes)| App { topic, pushes })
        .collect();
    (apps, phones.into_values().collect())
}

fn phone<'a>(phones: &'a mut BTreeMap<String, Phone>, number: &str) -> &'a mut Phone {
    phones.entry(number.to_owned()).or_insert_with(|| Phone {
        number: number.to_owned(),
        ..Phone::default()
    })
}

/// The page for these devices.
fn render(
    env: &Environment<'static>,
    apps: &[App],
    phones: &[Phone],
    refresh: bool,
) -> Result<String, minijinja::Error> {
    let ctx = minijinja::context! {
        apps => Value::from(Serde(apps)),
        phones => Value::from(Serde(phones)),
        keys => Value::from(Serde(KEYS)),
        refresh,
    };
    env.get_template("phone.html")?.render(ctx)
}

#[derive(Deserialize)]
pub struct PageQuery {
    refresh: Option<u8>,
}

/// `GET /dev/phone`; `?refresh=1` makes the page reload itself every 3 seconds. Not by
/// default: a reload throws keyboard focus back to the top and makes screen readers start
/// over (axe-core's `meta-refresh`, WCAG 2.2.1), and the page must stay usable for them.
pub async fn page(State(state): State<SimState>, Query(q): Query<PageQuery>) -> Response {
    let inbox = state.snapshot();
    let expired = state.expired_pushes(&inbox.pushes).await;
    let (apps, phones) = devices(inbox, &expired);
    match render(
        &state.inner.pages,
        &apps,
        &phones,
        q.refresh.is_some_and(|r| r > 0),
    ) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dev phone page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
        }
    }
}

/// `GET /dev/phone.css` (a file, not inline, so a strict style-src CSP still allows it).
pub async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css")],
        include_str!("phone.css"),
    )
        .into_response()
}

/// After a form: back to the page (303, so a reload does not repeat the POST), or a plain
/// text explanation of why the action was impossible.
fn back<T>(r: Result<T, SimError>) -> Response {
    match r {
        Ok(_) => Redirect::to("/dev/phone").into_response(),
        Err(SimError::NotFound(what)) => {
            (StatusCode::NOT_FOUND, format!("No such {what}.")).into_response()
        }
        Err(SimError::Conflict(why)) => (StatusCode::CONFLICT, why).into_response(),
    }
}

pub async fn press_push(
    State(state): State<SimState>,
    Path((id, index)): Path<(String, usize)>,
) -> Response {
    back(state.press_push(&id, index).await)
}

#[derive(Deserialize)]
pub struct KeyForm {
    key: String,
}

/// One keypad button.
pub async fn key(
    State(state): State<SimState>,
    Path(id): Path<String>,
    Form(f): Form<KeyForm>,
) -> Response {
    match f
        .key
        .chars()
        .next()
        .filter(|k| KEYS.iter().any(|x| x.starts_with(*k)))
    {
        Some(k) => back(state.press_key(&id, k).await),
        None => (StatusCode::BAD_REQUEST, "Not a keypad key.").into_response(),
    }
}

pub async fn digits(
    State(state): State<SimState>,
    Path(id): Path<String>,
    Form(f): Form<DigitsForm>,
) -> Response {
    back(state.press_digits(&id, &f.digits).await)
}

pub async fn no_answer(State(state): State<SimState>, Path(id): Path<String>) -> Response {
    back(state.no_answer(&id).await)
}

pub async fn sms_reply(State(state): State<SimState>, Form(f): Form<ReplyForm>) -> Response {
    back(state.reply_sms(&f.from, &f.body).await)
}

#[cfg(test)]
mod tests {
    use super::super::inbox::{CallState, Gather, SimAction};
    use super::*;

    #[test]
    fn page_renders_and_escapes_everything() {
        let mut inbox = Inbox::default();
        inbox.add_push(SimPush {
            id: "p1".into(),
            topic: "t<x>".into(),
            title: "<script>alert(1)</script>".into(),
            message: "\"quoted\" & <b>".into(),
            actions: vec![SimAction {
                action: "http".into(),
                label: "<img src=x onerror=alert(2)>".into(),
                url: "https://x".into(),
                method: "POST".into(),
                clear: true,
            }],
            cleared: false,
            outcome: None,
        });
        inbox.add_call(SimCall {
            id: "CA1".into(),
            account_sid: "AC".into(),
            to: "+15550100".into(),
            from: "+15005550006".into(),
            url: "https://x".into(),
            status_callback: None,
            state: CallState::Ringing,
            prompt: vec!["Press </p><script>".into()],
            fallback: vec![],
            gather: Some(Gather {
                action: "https://x/g".into(),
                finish_on_key: "#".into(),
                num_digits: None,
                timeout_secs: 5,
            }),
            language: Some("es\" onclick=\"x".into()),
            typed: "12".into(),
            events: vec![],
        });
        let (apps, phones) = devices(inbox, &HashSet::new());
        let env = templates().unwrap_or_else(|e| panic!("template: {e}"));
        let html = render(&env, &apps, &phones, true).unwrap_or_else(|e| panic!("render: {e}"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("es\" onclick"), "{html}");
        assert!(html.contains("lang=\"es&quot; onclick=&quot;x\""), "{html}");
        assert!(html.contains("/dev/phone/call/CA1/key"));
        assert!(html.contains("http-equiv=\"refresh\""));
        let still = render(&env, &apps, &phones, false).unwrap_or_else(|e| panic!("render: {e}"));
        assert!(
            !still.contains("http-equiv"),
            "no reload unless asked: {still}"
        );
    }

    fn push(id: &str, cleared: bool) -> SimPush {
        SimPush {
            id: id.into(),
            topic: "t1".into(),
            title: format!("Sign-in {id}"),
            message: "Approve if it was you.".into(),
            actions: vec![SimAction {
                action: "http".into(),
                label: "Approve".into(),
                url: format!("https://idp.example/mfa/callback/{id}"),
                method: "POST".into(),
                clear: true,
            }],
            cleared,
            outcome: None,
        }
    }

    #[test]
    fn expired_pushes_are_marked_and_their_buttons_disabled() {
        let mut inbox = Inbox::default();
        inbox.add_push(push("live", false));
        inbox.add_push(push("old", false));
        inbox.add_push(push("answered", true));
        let expired = HashSet::from(["old".to_owned(), "answered".to_owned()]);
        let (apps, phones) = devices(inbox, &expired);
        let env = templates().unwrap_or_else(|e| panic!("template: {e}"));
        let html = render(&env, &apps, &phones, false).unwrap_or_else(|e| panic!("render: {e}"));
        let article = |id: &str| {
            let title = format!("Sign-in {id}");
            let at = html
                .find(&title)
                .unwrap_or_else(|| panic!("{title}: {html}"));
            let start = html[..at].rfind("<article").unwrap_or(0);
            let end = at + html[at..].find("</article>").unwrap_or(html.len() - at);
            html[start..end].to_owned()
        };
        let old = article("old");
        assert!(
            old.contains("class=\"push expired\"") && old.contains("Expired"),
            "{old}"
        );
        assert!(old.contains(" disabled>Approve"), "{old}");
        let live = article("live");
        assert!(
            !live.contains("Expired") && !live.contains("disabled"),
            "{live}"
        );
        // A cleared push shows as done (its buttons gone), not as expired.
        let answered = article("answered");
        assert!(
            !answered.contains("Expired") && !answered.contains("<button"),
            "{answered}"
        );
    }
}
