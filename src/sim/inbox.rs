//! What the simulated phones have received: pushes, calls, texts, in bounded queues.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Each queue keeps only its newest `CAP` items, so a long-running dev server (or a
/// flood of requests) cannot grow memory without bound.
pub const CAP: usize = 500;

/// Steps kept per call (what was pressed, which callbacks answered what).
const MAX_EVENTS: usize = 20;

/// A notification as the ntfy app would show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimPush {
    pub id: String,
    pub topic: String,
    pub title: String,
    pub message: String,
    pub actions: Vec<SimAction>,
    /// Dismissed after an action with `clear` succeeded (ntfy's behaviour).
    pub cleared: bool,
    /// What happened when a button was last pressed.
    pub outcome: Option<String>,
}

/// One ntfy action button.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimAction {
    /// `http` (the app sends a request), `view` or `broadcast` (not simulated).
    pub action: String,
    pub label: String,
    pub url: String,
    pub method: String,
    pub clear: bool,
}

/// Where a simulated call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    /// Accepted; the voice URL has not been fetched yet.
    Queued,
    /// The prompt is known and the phone is ringing / waiting for keys.
    Ringing,
    Completed,
    NoAnswer,
    Failed,
}

impl CallState {
    pub fn is_live(self) -> bool {
        matches!(self, CallState::Queued | CallState::Ringing)
    }
}

/// A `<Gather>` waiting for keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gather {
    /// Absolute URL the digits are POSTed to.
    pub action: String,
    /// Empty when the gather has no finish key.
    pub finish_on_key: String,
    /// Submit as soon as this many keys were pressed.
    pub num_digits: Option<usize>,
    pub timeout_secs: u32,
}

/// Where a gather stands after some keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gathered {
    /// Twilio POSTs these `Digits` (and the finish key that ended them, if any) to the action.
    Submit {
        digits: String,
        finished_on_key: String,
    },
    /// No input: Twilio makes no request and runs the verbs after the `<Gather>`.
    FallThrough,
    /// Still waiting for keys.
    Waiting,
}

impl Gather {
    /// Applies Twilio's rules (twilio.com/docs/voice/twiml/gather#finishonkey, #numdigits):
    /// the finish key submits the keys before it, without itself, and a finish key pressed
    /// before any other key is no input at all; `numDigits` keys submit at once. When the
    /// keys run out, `timed_out` decides between waiting and the timeout (which submits
    /// what was collected, or falls through when nothing was).
    pub fn feed(&self, keys: &str, timed_out: bool) -> Gathered {
        let mut digits = String::new();
        for k in keys.chars() {
            if self.finish_on_key.starts_with(k) {
                if digits.is_empty() {
                    return Gathered::FallThrough;
                }
                return Gathered::Submit {
                    digits,
                    finished_on_key: k.to_string(),
                };
            }
            digits.push(k);
            if self.num_digits == Some(digits.len()) {
                return Gathered::Submit {
                    digits,
                    finished_on_key: String::new(),
                };
            }
        }
        match (timed_out, digits.is_empty()) {
            (false, _) => Gathered::Waiting,
            (true, true) => Gathered::FallThrough,
            (true, false) => Gathered::Submit {
                digits,
                finished_on_key: String::new(),
            },
        }
    }
}

/// A call as the simulated handset shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimCall {
    /// The Call SID (`CA…`).
    pub id: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub url: String,
    pub status_callback: Option<String>,
    pub state: CallState,
    /// What the call says before / while gathering keys.
    pub prompt: Vec<String>,
    /// What it says if no key is pressed.
    pub fallback: Vec<String>,
    pub gather: Option<Gather>,
    /// The language the call speaks (`<Say language>`, e.g. `es-ES`); `None`: not said,
    /// Twilio's default (`en-US`).
    #[serde(default)]
    pub language: Option<String>,
    /// Keys pressed on the dev page's keypad, not yet submitted.
    pub typed: String,
    pub events: Vec<String>,
}

impl SimCall {
    pub fn log(&mut self, event: impl Into<String>) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(event.into());
    }
}

/// Which way a text went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    ToPhone,
    FromPhone,
}

/// A text message, to or from a simulated phone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimText {
    /// The Message SID (`SM…`).
    pub id: String,
    pub account_sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub direction: Direction,
    /// For replies: how the inbound-SMS webhook answered.
    pub outcome: Option<String>,
}

/// Everything received, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inbox {
    pub pushes: VecDeque<SimPush>,
    pub calls: VecDeque<SimCall>,
    pub texts: VecDeque<SimText>,
    #[serde(skip)]
    seq: u64,
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() >= CAP {
        q.pop_front();
    }
    q.push_back(item);
}

impl Inbox {
    /// A fresh identifier in Twilio's shape (two letters + 32 hex): a counter, so ids never
    /// repeat within this simulator, then random hex so they are not guessable across runs.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        let mut rnd = [0u8; 12];
        // Without randomness the counter alone still keeps ids unique; that is all we need.
        let _ = openssl::rand::rand_bytes(&mut rnd);
        format!("{prefix}{:08x}{}", self.seq, hex::encode(rnd))
    }

    pub fn add_push(&mut self, p: SimPush) {
        push_capped(&mut self.pushes, p);
    }
    pub fn add_call(&mut self, c: SimCall) {
        push_capped(&mut self.calls, c);
    }
    pub fn add_text(&mut self, t: SimText) {
        push_capped(&mut self.texts, t);
    }

    pub fn push_mut(&mut self, id: &str) -> Option<&mut SimPush> {
        self.pushes.iter_mut().find(|p| p.id == id)
    }
    pub fn call_mut(&mut self, id: &str) -> Option<&mut SimCall> {
        self.calls.iter_mut().find(|c| c.id == id)
    }
    pub fn text_mut(&mut self, id: &str) -> Option<&mut SimText> {
        self.texts.iter_mut().find(|t| t.id == id)
    }

    /// The newest text sent to `phone`: a reply goes back to its sender, on its account.
    pub fn last_text_to(&self, phone: &str) -> Option<&SimText> {
        self.texts
            .iter()
            .rev()
            .find(|t| t.direction == Direction::ToPhone && t.to == phone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: usize) -> SimText {
        SimText {
            id: i.to_string(),
            account_sid: "AC".into(),
            to: "+1555".into(),
            from: "+1666".into(),
            body: String::new(),
            direction: Direction::ToPhone,
            outcome: None,
        }
    }

    #[test]
    fn queues_keep_only_the_newest() {
        let mut inbox = Inbox::default();
        for i in 0..CAP + 7 {
            inbox.add_text(text(i));
        }
        assert_eq!(inbox.texts.len(), CAP);
        assert_eq!(inbox.texts.front().map(|t| t.id.as_str()), Some("7"));
    }

    fn gather(finish: &str, num: Option<usize>) -> Gather {
        Gather {
            action: "https://t/g".into(),
            finish_on_key: finish.into(),
            num_digits: num,
            timeout_secs: 5,
        }
    }

    fn submit(d: &str, f: &str) -> Gathered {
        Gathered::Submit {
            digits: d.into(),
            finished_on_key: f.into(),
        }
    }

    #[test]
    fn gathers_follow_twilios_key_rules() {
        let g = gather("#", None);
        assert_eq!(g.feed("1234#99", true), submit("1234", "#"));
        assert_eq!(g.feed("#", true), Gathered::FallThrough);
        assert_eq!(g.feed("12", false), Gathered::Waiting);
        assert_eq!(g.feed("12", true), submit("12", ""));
        assert_eq!(g.feed("", true), Gathered::FallThrough);
        let one = gather("", Some(1));
        assert_eq!(one.feed("#", false), submit("#", ""));
        assert_eq!(one.feed("05", false), submit("0", ""));
    }

    #[test]
    fn ids_are_unique_and_twilio_shaped() {
        let mut inbox = Inbox::default();
        let a = inbox.new_id("CA");
        let b = inbox.new_id("CA");
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("CA00000001"));
    }
}
