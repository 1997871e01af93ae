//! The MFA adapter's vocabulary: methods, a user's registration, pending challenges.
//!
//! Each method has the contract of the old AD FS adapter (IsAvailableForUser,
//! BeginAuthentication, TryEndAuthentication): `available_for`, begin (start a challenge),
//! check (read its outcome). The login state machine drives them; see `login/`.

pub mod challenge;
pub mod delivery;
pub mod enroll_link;
pub mod gateway;
pub mod live;
pub mod lockout;
pub mod networks;
pub mod oath;
pub mod pin;
pub mod questions;
pub mod registration;
pub mod secrets;
pub mod settings;
pub mod table;
pub mod tokens;

use serde::{Deserialize, Serialize};

use crate::i18n::Lang;

/// A second factor. Closed set: adding one is a code change with its own tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Notification to the user's phone app with approve / deny (/ report fraud).
    Push,
    /// Phone call: press # to approve (PIN mode: PIN then #; 0# reports fraud).
    Call,
    /// Text message with a one-time code (typed into the page, or replied to the text).
    Sms,
    /// OATH TOTP code from an authenticator app or a hardware token.
    Oath,
    /// Answers to the user's security questions (weak: off unless the admin offers it).
    Questions,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Push,
        Method::Call,
        Method::Sms,
        Method::Oath,
        Method::Questions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Push => "push",
            Method::Call => "call",
            Method::Sms => "sms",
            Method::Oath => "oath",
            Method::Questions => "questions",
        }
    }

    /// Methods where the user answers somewhere else and the page waits for the outcome.
    pub fn is_out_of_band(self) -> bool {
        matches!(self, Method::Push | Method::Call)
    }

    /// The `amr` value (RFC 8176) for the method.
    pub fn amr(self) -> &'static str {
        match self {
            Method::Push => "swk",
            Method::Call | Method::Sms => "sms",
            Method::Oath => "otp",
            // RFC 8176 §2: knowledge-based authentication.
            Method::Questions => "kba",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown method `{s}` (push, call, sms, oath, questions)"))
    }
}

/// Where a pending challenge stands. Written by gateway callbacks (push buttons, call
/// keypresses, inbound texts) and read by the waiting page, on any node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChallengeStatus {
    Pending,
    Approved,
    Denied,
    /// The user said "this was not me": deny and block (DESIGN: fraud report).
    Fraud,
    /// Delivery failed or the call was not answered; `reason` is for the log.
    Failed {
        reason: String,
    },
}

/// A second-factor challenge in flight, stored as `chal:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    pub flow_id: String,
    pub username: String,
    pub method: Method,
    pub status: ChallengeStatus,
    pub created: i64,
    /// Unix time after which the page stops waiting and offers the chooser.
    pub deadline: i64,
    /// Number matching: the number the login page shows and the phone must pick.
    pub number: Option<u8>,
    /// SMS: argon2id hash of the one-time code (never the code itself).
    pub code_hash: Option<String>,
    /// Where it was sent, masked for display ("+X XXXXXXXX30").
    pub destination: Option<String>,
    /// The E.164 number texted or called (two-way SMS replies are matched on it).
    pub phone: Option<String>,
    /// The language of the page that started it: the call's script and the answers to the
    /// phone's buttons are in it too. Challenges stored before it existed read as English.
    #[serde(default)]
    pub lang: Lang,
}

impl Challenge {
    /// Whether a sign-in still waits for an answer at `now`: pending and before its
    /// deadline. The live wait page, the phone's callbacks and the dev phone judge by it.
    pub fn awaited(&self, now: i64) -> bool {
        self.status == ChallengeStatus::Pending && now < self.deadline
    }
}

/// Masks a phone number the way the MFA Server did: country code and all but the last two
/// digits hidden, so a shoulder-surfer learns nothing useful.
pub fn mask_phone(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    if digits.len() <= 2 {
        return "X".repeat(digits.len());
    }
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!(
        "+X {}{tail}",
        "X".repeat(digits.len().saturating_sub(3).max(1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_last_two_digits() {
        assert_eq!(mask_phone("+15550100230"), "+X XXXXXXXX30");
        assert_eq!(mask_phone("+4930123"), "+X XXXX23");
    }

    #[test]
    fn methods_round_trip_through_text() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert!("fax".parse::<Method>().is_err());
    }
}
