//! The simulated ntfy server's publish endpoints (docs.ntfy.sh/publish/).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::SimState;
use super::inbox::{SimAction, SimPush};
use crate::mfa::gateway::NTFY_MAX_ACTIONS;

/// A JSON publish (docs.ntfy.sh/publish/#publish-as-json); fields we do not simulate
/// (tags, click, attach, delay...) are accepted and ignored, as a client may send them.
#[derive(Deserialize)]
pub struct Publish {
    topic: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    actions: Vec<ActionJson>,
}

#[derive(Deserialize)]
struct ActionJson {
    action: String,
    label: String,
    #[serde(default)]
    url: String,
    method: Option<String>,
    #[serde(default)]
    clear: bool,
}

/// An error in ntfy's JSON shape (`{"code","http","error"}`).
fn refuse(detail: &str) -> Response {
    let body = json!({"code": 40000, "http": 400, "error": format!("invalid request: {detail}")});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// ntfy topic names: 1–64 of `[-_A-Za-z0-9]`.
fn valid_topic(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn store(state: &SimState, topic: String, p: Publish) -> Response {
    if !valid_topic(&topic) {
        return refuse("invalid topic");
    }
    if p.actions.len() > NTFY_MAX_ACTIONS {
        return refuse("too many actions (max 3)");
    }
    let actions = p
        .actions
        .into_iter()
        .map(|a| SimAction {
            // http actions default to POST (docs.ntfy.sh/publish/#send-http-request).
            method: a.method.unwrap_or_else(|| "POST".into()).to_uppercase(),
            action: a.action,
            label: a.label,
            url: a.url,
            clear: a.clear,
        })
        .collect();
    let mut inbox = state.inbox();
    let id = inbox.new_id("");
    let reply = json!({"id": id, "event": "message", "topic": topic, "title": p.title, "message": p.message});
    inbox.add_push(SimPush {
        id,
        topic,
        title: p.title,
        message: p.message,
        actions,
        cleared: false,
        outcome: None,
    });
    Json(reply).into_response()
}

/// `POST /sim/ntfy/` with the JSON body naming the topic.
pub async fn publish_json(State(state): State<SimState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Publish>(&body) {
        Ok(p) => {
            let topic = p.topic.clone().unwrap_or_default();
            store(&state, topic, p)
        }
        Err(e) => refuse(&format!("body is not a JSON publish: {e}")),
    }
}

/// `POST /sim/ntfy/{topic}`: a JSON publish, or (as ntfy does) a plain-text message with an
/// optional `Title` header.
pub async fn publish_to_topic(
    State(state): State<SimState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = serde_json::from_slice::<Publish>(&body).unwrap_or_else(|_| Publish {
        topic: None,
        message: String::from_utf8_lossy(&body).into_owned(),
        title: ["Title", "X-Title", "t"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .unwrap_or_default()
            .to_owned(),
        actions: Vec::new(),
    });
    store(&state, topic, p)
}
