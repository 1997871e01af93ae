//! The simulated network's side of each user action: the HTTP requests ntfy and Twilio would send Tessera.
//!
//! Twilio parameters and signing follow twilio.com/docs/usage/webhooks/voice-webhooks,
//! .../messaging-webhooks and twilio.com/docs/usage/security; ntfy's `http` action follows
//! docs.ntfy.sh/publish/#send-http-request (POST, empty body unless configured).

use std::time::Duration;

use serde::Serialize;

use super::SimState;
use super::inbox::{CallState, Direction, Gathered, SimText};
use super::twiml;
use crate::mfa::gateway::twilio_signature;

/// A user action the simulator cannot perform, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    NotFound(&'static str),
    /// The item is in the wrong state (call already over, notification dismissed...).
    Conflict(String),
}

/// What a callback to Tessera returned.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub url: String,
    /// HTTP status, `None` when there was no answer at all.
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn describe(&self) -> String {
        match (&self.status, &self.error) {
            (Some(s), _) => format!("HTTP {s}"),
            (None, Some(e)) => format!("no answer: {e}"),
            (None, None) => "not sent".into(),
        }
    }
}

type Params = Vec<(String, String)>;

fn p(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// Like a carrier, answers after a moment; the page that placed the call has usually
/// stored its challenge by then, as it would have with a real phone ringing for seconds.
const RING_DELAY: Duration = Duration::from_millis(200);

impl SimState {
    /// POSTs a form to `url`, signed as Twilio signs it; the answer's status and body.
    async fn post_signed(&self, url: &str, params: &Params) -> (Outcome, String) {
        let sig = twilio_signature(&self.config().twilio_auth_token, url, params);
        let req = self
            .inner
            .http
            .post(url)
            .header("X-Twilio-Signature", sig)
            .form(params);
        self.finish(url, req).await
    }

    async fn finish(&self, url: &str, req: reqwest::RequestBuilder) -> (Outcome, String) {
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.text().await.unwrap_or_default();
                let o = Outcome {
                    url: url.to_owned(),
                    status: Some(status),
                    error: None,
                };
                (o, body)
            }
            Err(e) => {
                let o = Outcome {
                    url: url.to_owned(),
                    status: None,
                    error: Some(e.without_url().to_string()),
                };
                (o, String::new())
            }
        }
    }

    /// The parameters Twilio sends with every request about call `id`.
    fn call_params(&self, id: &str, status: &str) -> Option<Params> {
        let inbox = self.inbox();
        let c = inbox.calls.iter().find(|c| c.id == id)?;
        Some(vec![
            p("AccountSid", &c.account_sid),
            p("ApiVersion", "2010-04-01"),
            p("CallSid", &c.id),
            p("CallStatus", status),
            p("Direction", "outbound-api"),
            p("From", &c.from),
            p("To", &c.to),
        ])
    }

    /// The phone rings and is picked up: fetch the voice URL and show what it says.
    pub(super) async fn ring(&self, id: String) {
        tokio::time::sleep(RING_DELAY).await;
        let Some(params) = self.call_params(&id, "in-progress") else {
            return;
        };
        let Some(url) = self.inbox().call_mut(&id).map(|c| c.url.clone()) else {
            return;
        };
        let (outcome, body) = self.post_signed(&url, &params).await;
        self.follow_twiml(&id, &url, outcome, &body).await;
    }

    /// Applies the TwiML a callback returned: a new prompt and gather, or the end of the
    /// call. A failed fetch ends the call the way Twilio does (an "application error"
    /// message, then `completed` with ErrorCode 11200, twilio.com/docs/api/errors/11200).
    async fn follow_twiml(&self, id: &str, doc_url: &str, outcome: Outcome, body: &str) {
        let script = if outcome.ok() {
            twiml::parse(body, doc_url)
        } else {
            Err(outcome.describe())
        };
        let ended = {
            let mut inbox = self.inbox();
            let Some(call) = inbox.call_mut(id) else {
                return;
            };
            call.log(format!("fetched {doc_url}: {}", outcome.describe()));
            match script {
                Ok(s) => {
                    let ended = s.gather.is_none();
                    call.prompt = s.prompt;
                    call.fallback = s.fallback;
                    call.gather = s.gather;
                    call.language = s.language;
                    call.state = if ended {
                        CallState::Completed
                    } else {
                        CallState::Ringing
                    };
                    ended.then_some(None)
                }
                Err(e) => {
                    call.log(format!("application error: {e}"));
                    call.state = CallState::Failed;
                    call.gather = None;
                    Some(Some("11200"))
                }
            }
        };
        if let Some(error_code) = ended {
            self.status_callback(id, "completed", error_code).await;
        }
    }

    /// Tells the StatusCallback how the call ended.
    async fn status_callback(&self, id: &str, status: &str, error_code: Option<&str>) -> Outcome {
        let target = self
            .inbox()
            .call_mut(id)
            .and_then(|c| c.status_callback.clone());
        let (Some(url), Some(mut params)) = (target, self.call_params(id, status)) else {
            return Outcome {
                url: String::new(),
                status: None,
                error: None,
            };
        };
        let duration = if status == "completed" { "12" } else { "0" };
        params.push(p("CallDuration", duration));
        if let Some(code) = error_code {
            params.push(p("ErrorCode", code));
        }
        let (outcome, _) = self.post_signed(&url, &params).await;
        if let Some(c) = self.inbox().call_mut(id) {
            c.log(format!("status {status} -> {}", outcome.describe()));
        }
        outcome
    }

    /// The user keys `keys` (e.g. `1234#`) and then stays silent until the gather times out.
    pub async fn press_digits(&self, id: &str, keys: &str) -> Result<Outcome, SimError> {
        self.gather_keys(id, keys, true)
            .await?
            .ok_or_else(|| SimError::Conflict("the call is still waiting for keys".into()))
    }

    /// One key on the page's keypad; `None` while the gather is still collecting.
    pub async fn press_key(&self, id: &str, key: char) -> Result<Option<Outcome>, SimError> {
        self.gather_keys(id, &key.to_string(), false).await
    }

    /// Adds `keys` to what the call has collected and, when Twilio's rules (`Gather::feed`)
    /// end the gather, makes the request Twilio would: the digits to the action URL (whose
    /// TwiML continues the call), or, with no input, the status callback of a call that
    /// said its goodbye and hung up.
    async fn gather_keys(
        &self,
        id: &str,
        keys: &str,
        timed_out: bool,
    ) -> Result<Option<Outcome>, SimError> {
        let (action, result) = {
            let mut inbox = self.inbox();
            let call = inbox.call_mut(id).ok_or(SimError::NotFound("call"))?;
            let gather = match (&call.gather, call.state) {
                (Some(g), CallState::Ringing) => g.clone(),
                _ => {
                    return Err(SimError::Conflict(
                        "the call is not waiting for keys".into(),
                    ));
                }
            };
            let keypad = |c: &char| c.is_ascii_digit() || *c == '*' || *c == '#';
            let typed: String = call
                .typed
                .chars()
                .chain(keys.chars().filter(keypad))
                .collect();
            let result = gather.feed(&typed, timed_out);
            if result == Gathered::Waiting {
                call.typed = typed;
                return Ok(None);
            }
            call.log(format!("pressed {typed:?}"));
            call.typed.clear();
            call.gather = None;
            if result == Gathered::FallThrough {
                call.log("no input: the call says its goodbye and hangs up");
                call.prompt = std::mem::take(&mut call.fallback);
                call.state = CallState::Completed;
            }
            (gather.action, result)
        };
        let Gathered::Submit {
            digits,
            finished_on_key,
        } = result
        else {
            return Ok(Some(self.status_callback(id, "completed", None).await));
        };
        let mut params = self
            .call_params(id, "in-progress")
            .ok_or(SimError::NotFound("call"))?;
        params.push(p("Digits", &digits));
        params.push(p("FinishedOnKey", &finished_on_key));
        let (outcome, body) = self.post_signed(&action, &params).await;
        self.follow_twiml(id, &action, outcome.clone(), &body).await;
        Ok(Some(outcome))
    }

    /// Nobody picks up: the call ends as `no-answer`.
    pub async fn no_answer(&self, id: &str) -> Result<Outcome, SimError> {
        {
            let mut inbox = self.inbox();
            let call = inbox.call_mut(id).ok_or(SimError::NotFound("call"))?;
            if !call.state.is_live() {
                return Err(SimError::Conflict("the call is already over".into()));
            }
            call.state = CallState::NoAnswer;
            call.gather = None;
        }
        Ok(self.status_callback(id, "no-answer", None).await)
    }

    /// The phone `from` replies `body` to the last text it received, via the inbound-SMS webhook.
    pub async fn reply_sms(&self, from: &str, body: &str) -> Result<Outcome, SimError> {
        let (id, params) = {
            let mut inbox = self.inbox();
            let last = inbox.last_text_to(from).ok_or_else(|| {
                SimError::Conflict("nothing was texted to that number; reply to a text".into())
            })?;
            let (to, account_sid) = (last.from.clone(), last.account_sid.clone());
            let id = inbox.new_id("SM");
            let params = vec![
                p("AccountSid", &account_sid),
                p("ApiVersion", "2010-04-01"),
                p("Body", body),
                p("From", from),
                p("MessageSid", &id),
                p("NumMedia", "0"),
                p("SmsSid", &id),
                p("SmsStatus", "received"),
                p("To", &to),
            ];
            inbox.add_text(SimText {
                id: id.clone(),
                account_sid,
                to,
                from: from.to_owned(),
                body: body.to_owned(),
                direction: Direction::FromPhone,
                outcome: None,
            });
            (id, params)
        };
        let url = self.config().inbound_sms_url.clone();
        let (outcome, _) = self.post_signed(&url, &params).await;
        if let Some(t) = self.inbox().text_mut(&id) {
            t.outcome = Some(outcome.describe());
        }
        Ok(outcome)
    }

    /// The user presses button `index` of notification `id`, as the ntfy app does it.
    pub async fn press_push(&self, id: &str, index: usize) -> Result<Outcome, SimError> {
        let action = {
            let mut inbox = self.inbox();
            let push = inbox
                .push_mut(id)
                .ok_or(SimError::NotFound("notification"))?;
            if push.cleared {
                return Err(SimError::Conflict("the notification was dismissed".into()));
            }
            let a = push
                .actions
                .get(index)
                .ok_or(SimError::NotFound("action"))?;
            if a.action != "http" {
                return Err(SimError::Conflict(format!(
                    "`{}` actions are not simulated",
                    a.action
                )));
            }
            a.clone()
        };
        let method =
            reqwest::Method::from_bytes(action.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let req = self.inner.http.request(method, &action.url);
        let (outcome, _) = self.finish(&action.url, req).await;
        if let Some(push) = self.inbox().push_mut(id) {
            push.outcome = Some(format!("{}: {}", action.label, outcome.describe()));
            push.cleared = action.clear && outcome.ok();
        }
        Ok(outcome)
    }
}
