//! Calls and texts through Twilio's REST API, plus the TwiML and request-signature helpers its callbacks need.
//!
//! Protocol references: Calls resource (twilio.com/docs/voice/api/call-resource), Messages
//! resource (twilio.com/docs/messaging/api/message-resource), TwiML `<Gather>`
//! (twilio.com/docs/voice/twiml/gather), webhook signatures (twilio.com/docs/usage/security).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use subtle::ConstantTimeEq;

use super::{
    CallRequest, Gateway, GatewayError, PushMessage, SmsMessage, check_status, hmac, http_client,
    transport,
};
use crate::mfa::mask_phone;

/// A Twilio account (or anything answering Twilio's API, such as the simulator).
pub struct Twilio {
    base_url: String,
    account_sid: String,
    auth_token: String,
    from: String,
    http: reqwest::Client,
}

impl Twilio {
    /// `base_url` is the API root (`https://api.twilio.com`); `from` our E.164 caller id.
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            from: from.to_owned(),
            http: http_client(timeout)?,
        })
    }

    /// POSTs a form to `/2010-04-01/Accounts/{sid}/{resource}`, authenticated with HTTP
    /// basic auth (account SID : auth token), as the API requires.
    async fn create(&self, resource: &str, form: &[(&str, &str)]) -> Result<(), GatewayError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/{resource}",
            self.base_url, self.account_sid
        );
        let res = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(form)
            .send()
            .await
            .map_err(transport)?;
        check_status(res).await.map(drop)
    }
}

#[async_trait]
impl Gateway for Twilio {
    async fn push(&self, _: &PushMessage) -> Result<(), GatewayError> {
        Err(GatewayError::Config(
            "Twilio cannot send push notifications".into(),
        ))
    }

    async fn call(&self, c: &CallRequest) -> Result<(), GatewayError> {
        // Only `completed` is asked for: it also reports no-answer / busy / failed endings
        // (CallStatus tells which), and intermediate events would be noise.
        let form = [
            ("To", c.to.as_str()),
            ("From", self.from.as_str()),
            ("Url", c.voice_url.as_str()),
            ("Method", "POST"),
            ("StatusCallback", c.status_url.as_str()),
            ("StatusCallbackEvent", "completed"),
            ("StatusCallbackMethod", "POST"),
        ];
        self.create("Calls.json", &form).await?;
        tracing::debug!(to = %mask_phone(&c.to), "call placed");
        Ok(())
    }

    async fn sms(&self, s: &SmsMessage) -> Result<(), GatewayError> {
        let form = [
            ("To", s.to.as_str()),
            ("From", self.from.as_str()),
            ("Body", s.body.as_str()),
        ];
        self.create("Messages.json", &form).await?;
        tracing::debug!(to = %mask_phone(&s.to), "text sent");
        Ok(())
    }
}

/// Escapes text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// What a call says, in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speech<'a> {
    /// `<Say language>`: the BCP-47 tag of the words, so Twilio reads them with a voice of
    /// that language (twilio.com/docs/voice/twiml/say#attributes-language), e.g. `es-ES`.
    pub language: &'a str,
    /// Read while keys are collected.
    pub prompt: &'a str,
    /// Read when no key was pressed, before the call ends.
    pub no_input: &'a str,
}

/// TwiML that reads the prompt and collects keypresses up to `finish_on_key`, then POSTs
/// them (without the finish key) as `Digits` to `action_url`. `finish_on_key` should be a
/// keypad key (0-9, `*`, `#`).
///
/// Twilio makes no request when nothing but the finish key is pressed, nor on a timeout
/// without keys: it falls through to the goodbye and hangs up
/// (twilio.com/docs/voice/twiml/gather#finishonkey). So "press # to approve" cannot be
/// built on this; use `twiml_gather_one_key`.
pub fn twiml_gather(
    speech: &Speech<'_>,
    action_url: &str,
    finish_on_key: char,
    timeout_secs: u32,
) -> String {
    let finish = finish_on_key.to_string();
    gather_document(speech, action_url, &finish, None, timeout_secs)
}

/// TwiML that reads the prompt and POSTs the first key pressed, whichever it is (`#` and `*`
/// included, e.g. `Digits=#` to approve, `Digits=0` to report fraud) to `action_url`: one
/// digit and no finish key (twilio.com/docs/voice/twiml/gather#numdigits).
pub fn twiml_gather_one_key(speech: &Speech<'_>, action_url: &str, timeout_secs: u32) -> String {
    gather_document(speech, action_url, "", Some(1), timeout_secs)
}

fn gather_document(
    speech: &Speech<'_>,
    action_url: &str,
    finish_on_key: &str,
    num_digits: Option<u32>,
    timeout_secs: u32,
) -> String {
    let num = num_digits.map_or(String::new(), |n| format!(" numDigits=\"{n}\""));
    format!(
        "<Response><Gather input=\"dtmf\"{num} finishOnKey=\"{}\" action=\"{}\" method=\"POST\" timeout=\"{timeout_secs}\">{}</Gather>{}</Response>",
        xml_escape(finish_on_key),
        xml_escape(action_url),
        say(speech.language, speech.prompt),
        say(speech.language, speech.no_input),
    )
}

/// One `<Say>` of `text` in `language`.
fn say(language: &str, text: &str) -> String {
    format!(
        "<Say language=\"{}\">{}</Say>",
        xml_escape(language),
        xml_escape(text)
    )
}

/// TwiML that says `text` in `language` (a BCP-47 tag) and ends the call.
pub fn twiml_say(language: &str, text: &str) -> String {
    format!("<Response>{}</Response>", say(language, text))
}

/// The `X-Twilio-Signature` Twilio sends with a webhook: base64 HMAC-SHA1, keyed with the
/// auth token, over the full URL followed by each POST parameter's name and value, sorted
/// by name (case-sensitive), with no separators (twilio.com/docs/usage/security).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Repeated names keep a defined order too: by value, as Twilio's own validators do.
    sorted.sort();
    let mut data = String::from(url);
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    hmac(
        MessageDigest::sha1(),
        auth_token.as_bytes(),
        data.as_bytes(),
    )
    .map(|mac| STANDARD.encode(mac))
    .unwrap_or_default()
}

/// True when `header_value` is the right signature for this request (constant-time compare).
/// `url` must be exactly the URL Twilio was given, query string included.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_value: &str,
) -> bool {
    let expected = twilio_signature(auth_token, url, params);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(header_value.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    /// The worked example of twilio.com/docs/usage/security (auth token `12345`), with the
    /// parameters deliberately out of order.
    #[test]
    fn signature_matches_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = pairs(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675309"),
            ("Caller", "+14158675309"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert_eq!(twilio_signature("12345", url, &params), sig);
        assert!(verify_twilio_signature("12345", url, &params, sig));
        assert!(!verify_twilio_signature("12346", url, &params, sig));
        assert!(!verify_twilio_signature(
            "12345",
            &format!("{url}&x=1"),
            &params,
            sig
        ));
        let mut tampered = params.clone();
        tampered[0].1 = "9999".into();
        assert!(!verify_twilio_signature("12345", url, &tampered, sig));
        assert!(!verify_twilio_signature("12345", url, &params, ""));
    }

    fn speech(prompt: &str) -> Speech<'_> {
        Speech {
            language: "en-US",
            prompt,
            no_input: "No input received. Goodbye.",
        }
    }

    #[test]
    fn twiml_gather_escapes_everything() {
        let x = twiml_gather(&speech("Press <1> & \"#\""), "https://t/g?a=1&b=2", '#', 10);
        assert_eq!(
            x,
            "<Response><Gather input=\"dtmf\" finishOnKey=\"#\" action=\"https://t/g?a=1&amp;b=2\" method=\"POST\" timeout=\"10\"><Say language=\"en-US\">Press &lt;1&gt; &amp; &quot;#&quot;</Say></Gather><Say language=\"en-US\">No input received. Goodbye.</Say></Response>"
        );
        assert_eq!(
            twiml_say("es-ES", "Adiós <ya>"),
            "<Response><Say language=\"es-ES\">Adiós &lt;ya&gt;</Say></Response>"
        );
    }

    #[test]
    fn one_key_gather_has_no_finish_key() {
        assert_eq!(
            twiml_gather_one_key(&speech("Press pound"), "https://t/g", 20),
            "<Response><Gather input=\"dtmf\" numDigits=\"1\" finishOnKey=\"\" action=\"https://t/g\" method=\"POST\" timeout=\"20\"><Say language=\"en-US\">Press pound</Say></Gather><Say language=\"en-US\">No input received. Goodbye.</Say></Response>"
        );
    }

    #[test]
    fn twiml_parses_back_to_what_was_meant() {
        let x = twiml_gather(
            &Speech {
                language: "nl-NL",
                prompt: "a<b & 'c'",
                no_input: "Tot ziens.",
            },
            "https://t/g?a=1&b=2",
            '*',
            5,
        );
        let root = crate::xml::parse(&x, &crate::xml::Limits::default());
        let Ok(root) = root else {
            panic!("TwiML must be well-formed: {root:?}")
        };
        let g = root.child("", "Gather");
        assert_eq!(
            g.and_then(|g| g.attr("action")),
            Some("https://t/g?a=1&b=2")
        );
        assert_eq!(g.and_then(|g| g.attr("finishOnKey")), Some("*"));
        let say = g.and_then(|g| g.child("", "Say"));
        assert_eq!(say.map(|s| s.text()).as_deref(), Some("a<b & 'c'"));
        assert_eq!(say.and_then(|s| s.attr("language")), Some("nl-NL"));
    }
}
