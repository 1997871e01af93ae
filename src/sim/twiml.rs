//! Reads the TwiML a voice URL returns into what the simulated phone says and which keys it gathers.
//!
//! Follows twilio.com/docs/voice/twiml: verbs run in order; `<Gather>` speaks its nested
//! `<Say>`s while collecting keys, and the verbs after it run only if nothing was pressed.
//! A relative `action` is resolved against the document's URL; no `action` means the
//! document's own URL (twilio.com/docs/voice/twiml/gather#action). `<Say language>` is kept
//! (twilio.com/docs/voice/twiml/say#attributes-language), so a test can hear which language
//! a call speaks.

use super::inbox::Gather;
use crate::xml::{Element, Limits};

/// What a TwiML document makes the phone do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    pub prompt: Vec<String>,
    pub fallback: Vec<String>,
    pub gather: Option<Gather>,
    /// The `language` of the first `<Say>` that names one (a BCP-47 tag as sent, at most
    /// 35 characters, RFC 5646 §4.4.1); `None` means Twilio's default, `en-US`.
    pub language: Option<String>,
}

/// Parses `doc`, fetched from `doc_url`, with the project's hardened XML parser (it is input
/// from the network, even if from our own server).
pub fn parse(doc: &str, doc_url: &str) -> Result<Script, String> {
    let root = crate::xml::parse(doc.trim(), &Limits::default()).map_err(|e| e.to_string())?;
    if !root.is("", "Response") {
        return Err(format!("root element is <{}>, not <Response>", root.name));
    }
    let mut script = Script::default();
    for verb in root.elements() {
        if script.language.is_none() {
            script.language = language(verb);
        }
        match verb.name.as_str() {
            "Say" if script.gather.is_none() => script.prompt.push(said(verb)),
            "Say" => script.fallback.push(said(verb)),
            "Gather" if script.gather.is_none() => {
                script
                    .prompt
                    .extend(verb.children_named("", "Say").map(said));
                script.gather = Some(gather(verb, doc_url)?);
            }
            // Other verbs (Pause, Hangup, Play, a second Gather...) do not change what the
            // simulated handset can show or do.
            _ => {}
        }
    }
    Ok(script)
}

/// The language a verb (or the first `<Say>` inside a `<Gather>`) speaks, if it says.
fn language(verb: &Element) -> Option<String> {
    let say = if verb.name == "Say" {
        Some(verb)
    } else {
        verb.children_named("", "Say").next()
    };
    say.and_then(|s| s.attr("language"))
        .map(|l| l.chars().take(35).collect())
}

fn said(e: &Element) -> String {
    e.text().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn gather(e: &Element, doc_url: &str) -> Result<Gather, String> {
    let base = url::Url::parse(doc_url).map_err(|e| format!("document URL: {e}"))?;
    let action = match e.attr("action") {
        Some(a) => base
            .join(a)
            .map_err(|err| format!("Gather action: {err}"))?
            .to_string(),
        None => doc_url.to_owned(),
    };
    Ok(Gather {
        action,
        // Twilio's default finish key is `#`; an empty attribute disables it.
        finish_on_key: e.attr("finishOnKey").unwrap_or("#").to_owned(),
        num_digits: e
            .attr("numDigits")
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0),
        timeout_secs: e.attr("timeout").and_then(|t| t.parse().ok()).unwrap_or(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::gateway::{Speech, twiml_gather, twiml_say};

    #[test]
    fn reads_our_own_gather() {
        let speech = Speech {
            language: "es-ES",
            prompt: "Pulse 1 2 & almohadilla",
            no_input: "No se ha recibido respuesta. Adiós.",
        };
        let doc = twiml_gather(&speech, "/mfa/voice/gather?t=a&u=b", '#', 7);
        let s = parse(&doc, "https://idp.example/mfa/voice?t=x");
        assert_eq!(
            s,
            Ok(Script {
                prompt: vec!["Pulse 1 2 & almohadilla".into()],
                fallback: vec!["No se ha recibido respuesta. Adiós.".into()],
                gather: Some(Gather {
                    action: "https://idp.example/mfa/voice/gather?t=a&u=b".into(),
                    finish_on_key: "#".into(),
                    num_digits: None,
                    timeout_secs: 7,
                }),
                language: Some("es-ES".into()),
            })
        );
    }

    #[test]
    fn say_only_and_refusals() {
        let s = parse(&twiml_say("it-IT", "Arrivederci"), "https://x/");
        assert_eq!(
            s.map(|s| (s.prompt, s.gather, s.language)),
            Ok((vec!["Arrivederci".into()], None, Some("it-IT".into())))
        );
        let plain = parse("<Response><Say>Bye</Say></Response>", "https://x/");
        assert_eq!(plain.map(|s| s.language), Ok(None));
        let long = format!(
            "<Response><Say language=\"{}\">x</Say></Response>",
            "a".repeat(500)
        );
        assert_eq!(
            parse(&long, "https://x/").map(|s| s.language.map(|l| l.len())),
            Ok(Some(35))
        );
        assert!(parse("<html/>", "https://x/").is_err());
        assert!(parse("not xml", "https://x/").is_err());
        assert!(parse("<!DOCTYPE x><Response/>", "https://x/").is_err());
    }
}
