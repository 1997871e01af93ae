//! Push through an ntfy server, using its JSON publish API (https://docs.ntfy.sh/publish/#publish-as-json).

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{
    CallRequest, Gateway, GatewayError, PushMessage, SmsMessage, check_status, http_client,
    transport,
};

/// ntfy shows at most three action buttons per notification ("You can define up to three
/// user actions", docs.ntfy.sh/publish/#action-buttons) and refuses a publish with more.
pub const MAX_ACTIONS: usize = 3;

/// Highest ntfy priority ("max/urgent"): a sign-in waits on it, so it should ring through.
const PRIORITY_URGENT: u8 = 5;

/// An ntfy publisher. Calls and texts are not ntfy's business and fail with `Config`.
pub struct Ntfy {
    base_url: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The publish body (docs.ntfy.sh/publish/#publish-as-json).
#[derive(Serialize)]
struct Publish<'a> {
    topic: &'a str,
    title: &'a str,
    message: String,
    priority: u8,
    actions: Vec<HttpAction<'a>>,
}

/// An `http` action: the app sends `method` to `url` when the button is pressed and, with
/// `clear`, dismisses the notification once that succeeds (docs.ntfy.sh/publish/#send-http-request).
#[derive(Serialize)]
struct HttpAction<'a> {
    action: &'static str,
    label: &'a str,
    url: &'a str,
    method: &'static str,
    clear: bool,
}

impl Ntfy {
    /// `base_url` is the server root (e.g. `https://ntfy.example.org`); `token` an access token.
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            http: http_client(timeout)?,
        })
    }
}

/// The publish body for `m`. With more choices than ntfy can show as buttons, the first
/// `MAX_ACTIONS` become buttons and every choice is listed in the text, so the user can at
/// least see them all; callers put the most important actions first.
fn publish_body(m: &PushMessage) -> Publish<'_> {
    let mut message = m.body.clone();
    if m.actions.len() > MAX_ACTIONS {
        let labels: Vec<&str> = m.actions.iter().map(|a| a.label.as_str()).collect();
        message.push_str("\n\nChoices: ");
        message.push_str(&labels.join(" · "));
    }
    Publish {
        topic: &m.topic,
        title: &m.title,
        message,
        priority: PRIORITY_URGENT,
        actions: m
            .actions
            .iter()
            .take(MAX_ACTIONS)
            .map(|a| HttpAction {
                action: "http",
                label: &a.label,
                url: &a.url,
                method: "POST",
                clear: true,
            })
            .collect(),
    }
}

#[async_trait]
impl Gateway for Ntfy {
    async fn push(&self, m: &PushMessage) -> Result<(), GatewayError> {
        // JSON publishing goes to the server root, not to /<topic> (docs: publish-as-json).
        let mut req = self
            .http
            .post(format!("{}/", self.base_url))
            .json(&publish_body(m));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        check_status(req.send().await.map_err(transport)?).await?;
        tracing::debug!(actions = m.actions.len(), "ntfy notification published");
        Ok(())
    }

    async fn call(&self, _: &CallRequest) -> Result<(), GatewayError> {
        Err(GatewayError::Config("ntfy cannot place calls".into()))
    }

    async fn sms(&self, _: &SmsMessage) -> Result<(), GatewayError> {
        Err(GatewayError::Config("ntfy cannot send texts".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::PushAction;
    use super::*;

    fn msg(n: usize) -> PushMessage {
        PushMessage {
            topic: "t".into(),
            title: "Sign-in".into(),
            body: "Approve?".into(),
            lang: crate::i18n::Lang::En,
            actions: (0..n)
                .map(|i| PushAction {
                    label: format!("L{i}"),
                    url: format!("https://x/{i}"),
                })
                .collect(),
        }
    }

    #[test]
    fn publish_body_has_ntfys_shape() {
        let v = serde_json::to_value(publish_body(&msg(2))).unwrap_or_default();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["priority"], 5);
        assert_eq!(v["message"], "Approve?");
        assert_eq!(
            v["actions"][1],
            serde_json::json!({"action":"http","label":"L1","url":"https://x/1","method":"POST","clear":true})
        );
    }

    #[test]
    fn more_than_three_choices_are_listed_in_the_text() {
        let v = serde_json::to_value(publish_body(&msg(5))).unwrap_or_default();
        assert_eq!(v["actions"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["message"], "Approve?\n\nChoices: L0 · L1 · L2 · L3 · L4");
    }
}
