//! The simulated Twilio REST API: create a Call, create a Message (twilio.com/docs/voice/api/call-resource, .../messaging/api/message-resource).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::SimState;
use super::inbox::{CallState, Direction, SimCall, SimText};
use crate::mfa::gateway::is_e164;

/// A refusal in Twilio's error shape (twilio.com/docs/usage/twilios-response#response-formats-exceptions).
struct TwilioError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        res
    }
}

fn refusal(status: StatusCode, code: u32, message: &str) -> TwilioError {
    TwilioError {
        status,
        code,
        message: message.to_owned(),
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    refusal(status, code, message).into_response()
}

/// HTTP basic auth must be the account SID of the URL and the auth token; Twilio answers
/// anything else with 401 and error 20003 (twilio.com/docs/errors/20003).
fn authenticate(state: &SimState, sid: &str, headers: &HeaderMap) -> Result<(), TwilioError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = presented
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .is_some_and(|(user, pass)| {
            let token = state.config().twilio_auth_token.as_bytes();
            bool::from(user.as_bytes().ct_eq(sid.as_bytes()) & pass.as_bytes().ct_eq(token))
        });
    if ok {
        Ok(())
    } else {
        Err(refusal(StatusCode::UNAUTHORIZED, 20003, "Authenticate"))
    }
}

/// A form parameter (first occurrence).
fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `To`, `From` and the mandatory extra parameter, or Twilio's 400 for the first one wrong.
fn addresses<'a>(
    form: &'a [(String, String)],
    extra: (&str, u32),
) -> Result<(&'a str, &'a str, &'a str), TwilioError> {
    let bad = |code, msg: &str| refusal(StatusCode::BAD_REQUEST, code, msg);
    let to = param(form, "To")
        .filter(|t| is_e164(t))
        .ok_or_else(|| bad(21211, "Invalid 'To' Phone Number"))?;
    let from = param(form, "From")
        .filter(|f| is_e164(f))
        .ok_or_else(|| bad(21212, "Invalid 'From' Phone Number"))?;
    let value = param(form, extra.0)
        .ok_or_else(|| bad(extra.1, &format!("A '{}' parameter is required", extra.0)))?;
    Ok((to, from, value))
}

/// `POST .../Accounts/{sid}/Calls.json`: queue the call, answer 201 with the resource, then
/// ring the phone in the background.
pub async fn create_call(
    State(state): State<SimState>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticate(&state, &sid, &headers) {
        return e.into_response();
    }
    let form = parse_form(&body);
    let (to, from, url) = match addresses(&form, ("Url", 21205)) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    // We only fetch TwiML by POST; our own client always asks for that.
    if param(&form, "Method").is_some_and(|m| !m.eq_ignore_ascii_case("POST")) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21205,
            "simulator supports Method=POST only",
        );
    }
    let call = {
        let mut inbox = state.inbox();
        let call = SimCall {
            id: inbox.new_id("CA"),
            account_sid: sid,
            to: to.to_owned(),
            from: from.to_owned(),
            url: url.to_owned(),
            status_callback: param(&form, "StatusCallback").map(str::to_owned),
            state: CallState::Queued,
            prompt: Vec::new(),
            fallback: Vec::new(),
            gather: None,
            language: None,
            typed: String::new(),
            events: Vec::new(),
        };
        inbox.add_call(call.clone());
        call
    };
    let ringer = state.clone();
    let id = call.id.clone();
    tokio::spawn(async move { ringer.ring(id).await });
    let body = json!({"sid": call.id, "account_sid": call.account_sid, "to": call.to,
        "from": call.from, "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01"});
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Twilio's limit on a message body (twilio.com/docs/errors/21617).
const MAX_BODY_CHARS: usize = 1600;

/// `POST .../Accounts/{sid}/Messages.json`: deliver the text to the phone.
pub async fn create_message(
    State(state): State<SimState>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authenticate(&state, &sid, &headers) {
        return e.into_response();
    }
    let form = parse_form(&body);
    let (to, from, text) = match addresses(&form, ("Body", 21602)) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if text.chars().count() > MAX_BODY_CHARS {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit",
        );
    }
    let msg = {
        let mut inbox = state.inbox();
        let msg = SimText {
            id: inbox.new_id("SM"),
            account_sid: sid,
            to: to.to_owned(),
            from: from.to_owned(),
            body: text.to_owned(),
            direction: Direction::ToPhone,
            outcome: None,
        };
        inbox.add_text(msg.clone());
        msg
    };
    let body = json!({"sid": msg.id, "account_sid": msg.account_sid, "to": msg.to,
        "from": msg.from, "body": msg.body, "status": "queued", "direction": "outbound-api",
        "api_version": "2010-04-01"});
    (StatusCode::CREATED, Json(body)).into_response()
}
