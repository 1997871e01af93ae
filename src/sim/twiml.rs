//! Reads the TwiML a voice URL returns into what the simulated phone says and which keys it gathers.
//!
//! Follows twilio.com/docs/voice/twiml: verbs run in order; `<Gather>` speaks its nested
//! `<Say>`s while collecting keys, and the verbs after it run only if nothing was pressed.
//! A relative `action` is resolved against the document's URL; no `action` means the
//! document's own URL (twilio.com/docs/voice/twiml/gather#action).

use super::inbox::Gather;
use crate::xml::{Element, Limits};

/// What a TwiML document makes the phone do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    pub prompt: Vec<String>,
    pub fallback: Vec<String>,
    pub gather: Option<Gather>,
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
    use crate::mfa::gateway::{twiml_gather, twiml_say};

    #[test]
    fn reads_our_own_gather() {
        let doc = twiml_gather("Press 1 2 & pound", "/mfa/voice/gather?t=a&u=b", '#', 7);
        let s = parse(&doc, "https://idp.example/mfa/voice?t=x");
        assert_eq!(
            s,
            Ok(Script {
                prompt: vec!["Press 1 2 & pound".into()],
                fallback: vec!["No input received. Goodbye.".into()],
                gather: Some(Gather {
                    action: "https://idp.example/mfa/voice/gather?t=a&u=b".into(),
                    finish_on_key: "#".into(),
                    num_digits: None,
                    timeout_secs: 7,
                }),
            })
        );
    }

    #[test]
    fn say_only_and_refusals() {
        let s = parse(&twiml_say("Bye"), "https://x/");
        assert_eq!(
            s.map(|s| (s.prompt, s.gather)),
            Ok((vec!["Bye".into()], None))
        );
        assert!(parse("<html/>", "https://x/").is_err());
        assert!(parse("not xml", "https://x/").is_err());
        assert!(parse("<!DOCTYPE x><Response/>", "https://x/").is_err());
    }
}
