//! Hand deliveries to your own relay as signed JSON webhooks (for carriers we do not speak natively).
//!
//! Body: `{"kind":"push"|"call"|"sms", ...the message's fields..., "lang": "es", "sent_at":
//! <unix secs>}`. `lang` is the language the texts are in (and a call's script will speak):
//! the sign-in page's, one of `en`, `de`, `fr`, `es`, `it`, `nl`, `pt`.
//! Header: `X-Tessera-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the
//! shared secret>` (the same shape GitHub uses, so existing verifiers fit). `sent_at` is
//! inside the signed body so a receiver can refuse replays of old deliveries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use openssl::hash::MessageDigest;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::{
    CallRequest, Gateway, GatewayError, PushMessage, SmsMessage, check_status, hmac, http_client,
    transport,
};

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Tessera-Signature";

/// A webhook sender.
pub struct Webhook {
    url: String,
    secret: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Event<'a> {
    Push(&'a PushMessage),
    Call(&'a CallRequest),
    Sms(&'a SmsMessage),
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    event: Event<'a>,
    sent_at: u64,
}

impl Webhook {
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<Self, GatewayError> {
        Ok(Self {
            url: url.to_owned(),
            secret: secret.to_owned(),
            http: http_client(timeout)?,
        })
    }

    async fn send(&self, event: Event<'_>) -> Result<(), GatewayError> {
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = serde_json::to_vec(&Envelope { event, sent_at })
            .map_err(|e| GatewayError::Config(format!("webhook body: {e}")))?;
        let res = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                webhook_signature(self.secret.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        check_status(res).await.map(drop)
    }
}

#[async_trait]
impl Gateway for Webhook {
    async fn push(&self, m: &PushMessage) -> Result<(), GatewayError> {
        self.send(Event::Push(m)).await
    }
    async fn call(&self, c: &CallRequest) -> Result<(), GatewayError> {
        self.send(Event::Call(c)).await
    }
    async fn sms(&self, s: &SmsMessage) -> Result<(), GatewayError> {
        self.send(Event::Sms(s)).await
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    let mac = hmac(MessageDigest::sha256(), secret, body).unwrap_or_default();
    format!("sha256={}", hex::encode(mac))
}

/// True when `header_value` signs `body` under `secret` (constant-time compare); for relays
/// written in Rust and for our tests.
pub fn verify_webhook_signature(secret: &[u8], body: &[u8], header_value: &str) -> bool {
    let expected = webhook_signature(secret, body);
    expected.len() > "sha256=".len()
        && bool::from(expected.as_bytes().ct_eq(header_value.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 §4.3 test case 2, in the header's format.
        let sig = webhook_signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_webhook_signature(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
        assert!(!verify_webhook_signature(
            b"Jefe",
            b"what do ya want for nothing!",
            &sig
        ));
        assert!(!verify_webhook_signature(b"Jefe", b"x", "sha256="));
    }

    #[test]
    fn envelope_is_tagged_by_kind() {
        let sms = SmsMessage {
            to: "+15550100230".into(),
            body: "Código 123456".into(),
            lang: crate::i18n::Lang::Es,
        };
        let v = serde_json::to_value(Envelope {
            event: Event::Sms(&sms),
            sent_at: 7,
        })
        .unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"kind":"sms","to":"+15550100230","body":"Código 123456","lang":"es","sent_at":7})
        );
    }
}
