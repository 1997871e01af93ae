//! Delivery gateways: hand a push, a phone call or a text to the outside world.
//!
//! Each gateway speaks a real wire protocol (ntfy's JSON publish, Twilio's REST API, a signed
//! JSON webhook). The development simulator (`crate::sim`) speaks the same protocols, and
//! `build` points the real clients at it, so tests exercise exactly the code production runs.

mod ntfy;
mod settings;
mod twilio;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::Serialize;

use crate::i18n::Lang;

pub use ntfy::{MAX_ACTIONS as NTFY_MAX_ACTIONS, Ntfy};
pub use settings::{
    GatewaySettings, PushKind, SIMULATOR_ACCOUNT_SID, SIMULATOR_AUTH_TOKEN, SIMULATOR_FROM,
    VoiceSmsKind, build,
};
pub use twilio::{
    Speech, Twilio, twilio_signature, twiml_gather, twiml_gather_one_key, twiml_say,
    verify_twilio_signature,
};
pub use webhook::{
    SIGNATURE_HEADER as WEBHOOK_SIGNATURE_HEADER, Webhook, verify_webhook_signature,
    webhook_signature,
};

pub(crate) use settings::is_e164;

/// A notification for the user's phone app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushMessage {
    /// Where the app listens (ntfy: the topic; unguessable, so it is never logged).
    pub topic: String,
    pub title: String,
    pub body: String,
    /// The language `title`, `body` and the labels are in (the sign-in page's); a webhook
    /// relay gets it as `lang` (`en`, `de`, `fr`, `es`, `it`, `nl`, `pt`).
    pub lang: Lang,
    /// Buttons; each is an HTTP POST to its URL (approve / deny / report fraud; with number
    /// matching one approve action per number offered).
    pub actions: Vec<PushAction>,
}

/// One button of a push notification: pressing it POSTs (empty body) to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushAction {
    pub label: String,
    pub url: String,
}

/// An outbound voice call that reads a prompt and gathers keypresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRequest {
    /// E.164 number to call.
    pub to: String,
    /// Our TwiML URL, fetched when the call is answered.
    pub voice_url: String,
    /// Where the carrier reports how the call ended (no-answer, busy, completed).
    pub status_url: String,
    /// The language the script at `voice_url` speaks (it says so itself in TwiML).
    pub lang: Lang,
}

/// A text message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsMessage {
    /// E.164 number to text.
    pub to: String,
    pub body: String,
    /// The language `body` is in.
    pub lang: Lang,
}

/// Why a delivery did not happen. Details are for the log and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway settings are wrong (names the key).
    #[error("gateway configuration: {0}")]
    Config(String),
    /// The request never got an HTTP answer (DNS, connect, TLS, timeout).
    #[error("gateway unreachable: {0}")]
    Transport(String),
    /// The provider answered with an error status.
    #[error("gateway refused the request (HTTP {status}): {detail}")]
    Rejected { status: u16, detail: String },
}

/// Something that can reach a user's phone.
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    async fn push(&self, m: &PushMessage) -> Result<(), GatewayError>;
    async fn call(&self, c: &CallRequest) -> Result<(), GatewayError>;
    async fn sms(&self, s: &SmsMessage) -> Result<(), GatewayError>;
}

/// Routes pushes to one gateway and calls / texts to another (e.g. ntfy + Twilio).
pub struct Composite {
    pub push: Arc<dyn Gateway>,
    pub voice_sms: Arc<dyn Gateway>,
}

#[async_trait]
impl Gateway for Composite {
    async fn push(&self, m: &PushMessage) -> Result<(), GatewayError> {
        self.push.push(m).await
    }
    async fn call(&self, c: &CallRequest) -> Result<(), GatewayError> {
        self.voice_sms.call(c).await
    }
    async fn sms(&self, s: &SmsMessage) -> Result<(), GatewayError> {
        self.voice_sms.sms(s).await
    }
}

/// The gateway for a channel nobody configured: refuses, so the sign-in offers another method.
pub struct Unconfigured;

#[async_trait]
impl Gateway for Unconfigured {
    async fn push(&self, _: &PushMessage) -> Result<(), GatewayError> {
        Err(GatewayError::Config(
            "no push gateway configured (mfa.gateway.push)".into(),
        ))
    }
    async fn call(&self, _: &CallRequest) -> Result<(), GatewayError> {
        Err(GatewayError::Config(
            "no voice gateway configured (mfa.gateway.voice_sms)".into(),
        ))
    }
    async fn sms(&self, _: &SmsMessage) -> Result<(), GatewayError> {
        Err(GatewayError::Config(
            "no SMS gateway configured (mfa.gateway.voice_sms)".into(),
        ))
    }
}

/// The HTTP client every gateway uses: bounded time, and no redirects, because a provider
/// API never redirects a POST and following one could replay credentials elsewhere.
fn http_client(timeout: Duration) -> Result<reqwest::Client, GatewayError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GatewayError::Config(format!("HTTP client: {e}")))
}

/// A transport error without the URL (it may carry a topic or account id).
fn transport(e: reqwest::Error) -> GatewayError {
    GatewayError::Transport(e.without_url().to_string())
}

/// Turns a non-success answer into `Rejected`, keeping a bounded excerpt of the body for the
/// log (providers explain refusals there; our credentials are never echoed back).
async fn check_status(res: reqwest::Response) -> Result<reqwest::Response, GatewayError> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = res.text().await.unwrap_or_default();
    Err(GatewayError::Rejected {
        status: status.as_u16(),
        detail: excerpt(&body, 300),
    })
}

/// At most `max` characters of `s`, on one line.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// HMAC over `data`. `None` only if openssl itself fails, which callers treat as "no match".
pub(crate) fn hmac(digest: MessageDigest, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let k = PKey::hmac(key).ok()?;
    let mut s = Signer::new(digest, &k).ok()?;
    s.update(data).ok()?;
    s.sign_to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac(
            MessageDigest::sha256(),
            b"Jefe",
            b"what do ya want for nothing?",
        )
        .map(hex::encode);
        assert_eq!(
            mac.as_deref(),
            Some("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn excerpts_are_bounded_and_single_line() {
        assert_eq!(excerpt("a\nb\tc", 10), "a b c");
        assert_eq!(excerpt(&"x".repeat(1000), 5), "xxxxx");
    }
}
