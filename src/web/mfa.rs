//! Gateway callbacks: push buttons, call keypresses and status, inbound texts.
//!
//! Every URL handed to a gateway carries a signed one-time token (mfa::challenge); Twilio-
//! style requests also carry X-Twilio-Signature, checked when a Twilio auth token is set.

use axum::Form;
use axum::extract::{
    FromRequest, FromRequestParts, MatchedPath, OriginalUri, Path, Query, Request, State,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{AppContext, AppState};
use crate::i18n::Lang;
use crate::mfa::challenge::{self, Action};
use crate::mfa::gateway::{
    Speech, twiml_gather, twiml_gather_one_key, twiml_say, verify_twilio_signature,
};
use crate::mfa::{Challenge, ChallengeStatus};

#[derive(Deserialize)]
pub struct NumberQuery {
    n: Option<u8>,
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

fn twiml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Loads the challenge a token grants `allowed` actions on; `None` when the store no longer
/// holds it (kept ten minutes past its deadline, so the sign-in is long over).
async fn granted(
    ctx: &AppContext,
    token: &str,
    allowed: &[Action],
) -> Result<(Option<Challenge>, Action), Response> {
    let Some((id, action)) = ctx
        .tokens
        .verify(token)
        .filter(|(_, a)| allowed.contains(a))
    else {
        tracing::warn!("callback with an invalid token");
        return Err(plain(StatusCode::NOT_FOUND, "unknown request"));
    };
    match challenge::load(ctx.store.as_ref(), &id).await {
        Ok(c) => Ok((c, action)),
        Err(e) => {
            tracing::error!(error = %e, "store failure in callback");
            Err(plain(StatusCode::SERVICE_UNAVAILABLE, "try again"))
        }
    }
}

/// What became of an answer from the phone (`take`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// It settled the challenge: the waiting page moves on.
    Taken,
    /// The sign-in had stopped waiting (deadline passed, timed out, abandoned for another
    /// option, or long gone): nothing changes, and the sign-in log says so.
    Late,
    /// The challenge was answered already: a repeated callback.
    Repeated,
    /// The store failed; the phone may try again.
    Unavailable,
}

/// Applies a gateway's answer to the challenge, unless the sign-in stopped waiting for it.
/// A late approval must never count: `login::second_factor` reads an approved challenge
/// before it looks at the deadline, so the deadline is enforced here too.
async fn take(ctx: &AppContext, c: Option<&Challenge>, status: ChallengeStatus) -> Answer {
    let Some(c) = c else {
        tracing::info!(
            answer = answer_name(&status),
            "answer for a challenge no longer stored: sign-in no longer waiting"
        );
        return Answer::Late;
    };
    // A call that ended (status callback) is not an answer from the user.
    let from_user = !matches!(status, ChallengeStatus::Failed { .. });
    // Past the deadline only an approval is refused while the page has not yet noticed: a
    // denial or a fraud report still reaches the sign-in (and a fraud report blocks).
    let approval = status == ChallengeStatus::Approved;
    let late = match &c.status {
        ChallengeStatus::Pending if approval && !c.awaited(ctx.clock.unix()) => {
            Some("timed out".to_owned())
        }
        ChallengeStatus::Pending => None,
        ChallengeStatus::Failed { reason } if from_user => Some(reason.clone()),
        _ => return Answer::Repeated,
    };
    if let Some(why) = late {
        record_late(ctx, c, &status, &why).await;
        return Answer::Late;
    }
    let label = format!("{status:?}");
    match challenge::resolve(ctx.store.as_ref(), &c.id, status.clone()).await {
        Ok(Some(_)) => {
            tracing::info!(user = %c.username, method = c.method.as_str(), outcome = %label, "challenge answered");
            Answer::Taken
        }
        // Changed under us: by the waiting page giving up (then this answer is late), or by
        // another answer.
        Ok(None) => match challenge::load(ctx.store.as_ref(), &c.id).await {
            Ok(Some(now)) if from_user && matches!(now.status, ChallengeStatus::Failed { .. }) => {
                Box::pin(take(ctx, Some(&now), status)).await
            }
            _ => Answer::Repeated,
        },
        Err(e) => {
            tracing::error!(error = %e, "store failure in callback");
            Answer::Unavailable
        }
    }
}

fn answer_name(status: &ChallengeStatus) -> &'static str {
    match status {
        ChallengeStatus::Approved => "approval",
        ChallengeStatus::Denied => "denial",
        ChallengeStatus::Fraud => "fraud report",
        ChallengeStatus::Pending | ChallengeStatus::Failed { .. } => "answer",
    }
}

/// Late answers one challenge may add to the sign-in log: a phone (or whoever holds its
/// callback URL) pressing again and again must not fill the store.
const LATE_NOTES_PER_CHALLENGE: i64 = 3;

/// Notes a late answer in the sign-in log, on its sign-in's row ("late approval: sign-in no
/// longer waiting (timed out)"). The flow, while still stored, names the application and
/// the state the sign-in is in now; it changes nothing (only `Flow::step` does).
async fn record_late(ctx: &AppContext, c: &Challenge, status: &ChallengeStatus, why: &str) {
    let store = ctx.store.as_ref();
    let now = ctx.clock.unix();
    let reason = format!(
        "late {}: sign-in no longer waiting ({why})",
        answer_name(status)
    );
    tracing::info!(user = %c.username, method = c.method.as_str(), %reason, "late answer refused");
    let budget = store
        .incr(
            &format!("late_answer:{}", c.id),
            1,
            Some(std::time::Duration::from_secs(1200)),
        )
        .await;
    if !budget.is_ok_and(|n| n <= LATE_NOTES_PER_CHALLENGE) {
        return;
    }
    let flow: Option<crate::login::Flow> =
        crate::store::get_json(store, &super::login::flow_key(&c.flow_id))
            .await
            .ok()
            .flatten();
    let event = crate::audit::AuditEvent {
        at: crate::saml::saml_time(ctx.clock.now()),
        flow: &c.flow_id,
        user: Some(&c.username),
        rp: flow.as_ref().map_or("", |f| f.request.audit_name()),
        client_ip: flow.as_ref().map_or("", |f| f.client_ip.as_str()),
        from: crate::audit::FROM_PHONE,
        to: flow.as_ref().map_or("ended", |f| f.state.name()),
        method: Some(c.method.as_str()),
        outcome: crate::audit::Outcome::Ignored,
        reason: Some(reason),
    };
    if let Err(e) = crate::audit::persist_one(store, &event, now).await {
        tracing::error!(error = %e, "late answer not stored in the sign-in log");
    }
}

/// What the phone is told about its answer (the ntfy app or a webhook consumer shows it), in
/// the challenge's language.
async fn settle(ctx: &AppContext, c: Option<&Challenge>, status: ChallengeStatus) -> Response {
    let lang = c.map_or(Lang::En, |c| c.lang);
    let tr = |english| ctx.catalogue.tr(lang, english).to_owned();
    match take(ctx, c, status).await {
        Answer::Taken => plain(
            StatusCode::OK,
            tr("Thank you. You can close this notification."),
        ),
        Answer::Late => plain(StatusCode::GONE, tr("This sign-in is no longer waiting.")),
        Answer::Repeated => plain(
            StatusCode::GONE,
            tr("This request was already answered or has expired."),
        ),
        Answer::Unavailable => plain(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    }
}

/// Push action buttons (ntfy `http` actions / webhook consumers POST here).
pub async fn push_action(
    State(ctx): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<NumberQuery>,
) -> Response {
    let (c, action) = match granted(
        &ctx,
        &token,
        &[Action::Approve, Action::Deny, Action::Fraud],
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let number = c.as_ref().and_then(|c| c.number);
    let status = match action {
        // Number matching: approving with the wrong number is a denial (MFA fatigue defence).
        Action::Approve if number.is_some() && q.n != number => ChallengeStatus::Denied,
        Action::Approve => ChallengeStatus::Approved,
        Action::Fraud => ChallengeStatus::Fraud,
        _ => ChallengeStatus::Denied,
    };
    settle(&ctx, c.as_ref(), status).await
}

/// A carrier callback's form, taken only with a valid X-Twilio-Signature when a Twilio auth
/// token is set (Twilio signs the full URL it requested plus the POST parameters); webhook
/// gateways rely on the signed one-time token in the URL alone.
pub struct CarrierForm(pub BTreeMap<String, String>);

impl FromRequest<AppState> for CarrierForm {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(uri) = OriginalUri::from_request_parts(&mut parts, ctx).await;
        let headers = parts.headers.clone();
        // The route pattern, not the path: the path carries a callback token.
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(String::new, |m| m.as_str().to_owned());
        let Form(form) =
            Form::<BTreeMap<String, String>>::from_request(Request::from_parts(parts, body), ctx)
                .await
                .map_err(IntoResponse::into_response)?;
        if !twilio_ok(ctx, &headers, &uri, &form).await {
            tracing::warn!(route, "carrier callback with a bad X-Twilio-Signature");
            return Err(plain(StatusCode::FORBIDDEN, "bad signature"));
        }
        Ok(CarrierForm(form))
    }
}

async fn twilio_ok(
    ctx: &AppContext,
    headers: &HeaderMap,
    uri: &OriginalUri,
    form: &BTreeMap<String, String>,
) -> bool {
    let policy = ctx.policy().await;
    let Some(token) = policy.mfa.gateway.twilio_auth_token() else {
        return true; // webhook gateways authenticate by the signed one-time token alone
    };
    let url = format!("{}{}", ctx.config.public_base(), uri.0);
    let params: Vec<(String, String)> = form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    verify_twilio_signature(token, &url, &params, sig)
}

/// The call's script: first request → "press # to approve" (PIN mode: PIN then #); the
/// Gather action posts the digits back here.
pub async fn voice(
    State(ctx): State<AppState>,
    Path(token): Path<String>,
    uri: OriginalUri,
    CarrierForm(form): CarrierForm,
) -> Response {
    let (c, _) = match granted(&ctx, &token, &[Action::Digits]).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(c) = c else {
        // The challenge (and with it the call's language) is gone.
        let words = "This sign-in is no longer waiting. Goodbye.";
        return twiml(twiml_say(Lang::En.speech_tag(), words));
    };
    let pin_mode = ctx.policy().await.mfa.pin_mode;
    let Some(digits) = form.get("Digits") else {
        let action = format!("{}{}", ctx.config.public_base(), uri.0);
        return twiml(call_script(&ctx, c.lang, pin_mode, &action));
    };
    let status = if digits == "0" || digits == "0#" {
        ChallengeStatus::Fraud
    } else if pin_mode {
        pin_status(&ctx, &c, digits.trim_end_matches('#')).await
    } else if digits == "#" {
        ChallengeStatus::Approved
    } else {
        ChallengeStatus::Denied
    };
    let words = match (take(&ctx, Some(&c), status.clone()).await, status) {
        (Answer::Late | Answer::Repeated, _) => "This sign-in is no longer waiting. Goodbye.",
        (Answer::Taken, ChallengeStatus::Approved) => "Thank you. You are signed in. Goodbye.",
        (Answer::Taken, ChallengeStatus::Fraud) => {
            "Fraud has been reported and your account is blocked. Goodbye."
        }
        _ => "Sign-in was not approved. Goodbye.",
    };
    let words = ctx.catalogue.tr(c.lang, words);
    twiml(twiml_say(c.lang.speech_tag(), words))
}

/// The call's first words in `lang`, gathering keys for `action`: "press # to approve", or
/// in PIN mode "your PIN, then #".
fn call_script(ctx: &AppContext, lang: Lang, pin_mode: bool, action: &str) -> String {
    let name = [("name", ctx.config.idp.display_name.as_str())];
    let prompt = if pin_mode {
        "This is {name}. Someone is signing in as you. Enter your PIN followed by the pound key to approve. To report fraud, press zero then pound."
    } else {
        "This is {name}. Someone is signing in as you. Press the pound key to approve. To report fraud, press zero then pound."
    };
    let prompt = ctx.catalogue.text(lang, prompt, &name);
    let speech = Speech {
        language: lang.speech_tag(),
        prompt: &prompt,
        no_input: ctx.catalogue.tr(lang, "No input received. Goodbye."),
    };
    // Twilio sends nothing when the finish key is the first key pressed, so "press #"
    // collects one key with no finish key (Digits=#); PIN mode ends the PIN with #.
    if pin_mode {
        twiml_gather(&speech, action, '#', 20)
    } else {
        twiml_gather_one_key(&speech, action, 20)
    }
}

async fn pin_status(ctx: &AppContext, c: &Challenge, digits: &str) -> ChallengeStatus {
    match crate::mfa::registration::load(ctx.store.as_ref(), &c.username).await {
        Ok(reg) => match reg.pin_hash {
            Some(h) if crate::directory::file::verify_password(&h, digits) => {
                ChallengeStatus::Approved
            }
            Some(_) => ChallengeStatus::Denied,
            None => ChallengeStatus::Failed {
                reason: "PIN mode but no PIN set".into(),
            },
        },
        Err(e) => ChallengeStatus::Failed {
            reason: e.to_string(),
        },
    }
}

/// An admin's test call (settings page): reads one message and hangs up. The token proves
/// the URL came from us; there is no challenge behind it.
pub async fn test_call_voice(
    State(ctx): State<AppState>,
    Path(token): Path<String>,
    _: CarrierForm,
) -> Response {
    if !matches!(ctx.tokens.verify(&token), Some((_, Action::TestCall))) {
        tracing::warn!("test call script with an invalid token");
        return plain(StatusCode::NOT_FOUND, "unknown request");
    }
    let name = &ctx.config.idp.display_name;
    twiml(twiml_say(
        Lang::En.speech_tag(),
        &format!("This is a test call from {name}. Calls for sign-in verification work. Goodbye."),
    ))
}

/// How the admin's test call ended, for the log (no-answer, busy, completed…).
pub async fn test_call_status(
    State(ctx): State<AppState>,
    Path(token): Path<String>,
    CarrierForm(form): CarrierForm,
) -> Response {
    let Some((id, Action::TestCall)) = ctx.tokens.verify(&token) else {
        return plain(StatusCode::NOT_FOUND, "unknown request");
    };
    let status = form.get("CallStatus").map_or("unknown", String::as_str);
    // Only a short, known word reaches the log: the carrier's field is outside input.
    let status =
        if status.len() <= 20 && status.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
            status
        } else {
            "unrecognised"
        };
    tracing::info!(target: "audit", test_call = %id, status, "admin test call ended");
    StatusCode::NO_CONTENT.into_response()
}

/// The call ended: unanswered, busy or failed calls end the wait at once.
pub async fn voice_status(
    State(ctx): State<AppState>,
    Path(token): Path<String>,
    CarrierForm(form): CarrierForm,
) -> Response {
    let (c, _) = match granted(&ctx, &token, &[Action::Status]).await {
        Ok((Some(c), a)) => (c, a),
        Ok((None, _)) => return plain(StatusCode::GONE, "this request has expired"),
        Err(r) => return r,
    };
    let call_status = form
        .get("CallStatus")
        .map(String::as_str)
        .unwrap_or("unknown");
    if c.status != ChallengeStatus::Pending {
        return plain(StatusCode::OK, "ok");
    }
    settle(
        &ctx,
        Some(&c),
        ChallengeStatus::Failed {
            reason: format!("call {call_status}"),
        },
    )
    .await
}

/// Two-way SMS: the user's reply, matched to the pending challenge of the number it came from.
pub async fn sms_inbound(State(ctx): State<AppState>, CarrierForm(form): CarrierForm) -> Response {
    let from = form.get("From").cloned().unwrap_or_default();
    let body = form
        .get("Body")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default();
    let id = match ctx
        .store
        .get(&crate::mfa::delivery::sms_inbound_key(&from))
        .await
    {
        Ok(Some(id)) => String::from_utf8_lossy(&id).into_owned(),
        Ok(None) => return twiml("<Response></Response>".into()),
        Err(e) => {
            tracing::error!(error = %e, "store failure in inbound SMS");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let Ok(Some(c)) = challenge::load(ctx.store.as_ref(), &id).await else {
        return twiml("<Response></Response>".into());
    };
    let expected = c.code_hash.clone().unwrap_or_default();
    let key = crate::mfa::delivery::code_key(&ctx.secrets);
    let presented = crate::mfa::delivery::code_mac(&key, &c.id, &body);
    let status = if crate::mfa::challenge::mac_eq(&expected, &presented) {
        ChallengeStatus::Approved
    } else {
        ChallengeStatus::Denied
    };
    let _ = settle(&ctx, Some(&c), status).await;
    twiml("<Response></Response>".into())
}
