//! The phone's actions as a JSON API, for tests and scripts.
//!
//! Each action answers 200 with the callback's outcome when Tessera accepted it (2xx),
//! 502 with the same body when Tessera refused it or could not be reached, 404 for an
//! unknown item and 409 when the item cannot take that action any more.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::SimState;
use super::carrier::{Outcome, SimError};

pub fn error_response(e: SimError) -> Response {
    let (status, detail) = match e {
        SimError::NotFound(what) => (StatusCode::NOT_FOUND, format!("no such {what}")),
        SimError::Conflict(why) => (StatusCode::CONFLICT, why),
    };
    (status, Json(json!({ "error": detail }))).into_response()
}

fn reply(r: Result<Outcome, SimError>) -> Response {
    match r {
        Ok(o) if o.ok() => Json(o).into_response(),
        Ok(o) => (StatusCode::BAD_GATEWAY, Json(o)).into_response(),
        Err(e) => error_response(e),
    }
}

/// `GET /sim/api/inbox`: everything received, oldest first.
pub async fn inbox(State(state): State<SimState>) -> Response {
    Json(state.snapshot()).into_response()
}

/// `POST /sim/api/push/{id}/action/{index}`.
pub async fn press_push(
    State(state): State<SimState>,
    Path((id, index)): Path<(String, usize)>,
) -> Response {
    reply(state.press_push(&id, index).await)
}

#[derive(Deserialize)]
pub struct DigitsForm {
    pub digits: String,
}

/// `POST /sim/api/call/{id}/digits` with `digits=1234#`.
pub async fn digits(
    State(state): State<SimState>,
    Path(id): Path<String>,
    Form(f): Form<DigitsForm>,
) -> Response {
    reply(state.press_digits(&id, &f.digits).await)
}

/// `POST /sim/api/call/{id}/no-answer`.
pub async fn no_answer(State(state): State<SimState>, Path(id): Path<String>) -> Response {
    reply(state.no_answer(&id).await)
}

#[derive(Deserialize)]
pub struct ReplyForm {
    pub from: String,
    pub body: String,
}

/// `POST /sim/api/sms/reply` with `from=+1555...&body=...`.
pub async fn sms_reply(State(state): State<SimState>, Form(f): Form<ReplyForm>) -> Response {
    reply(state.reply_sms(&f.from, &f.body).await)
}
