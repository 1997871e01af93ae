//! The PIN policy for calls in PIN mode: which new PINs are accepted, when one has expired, and how it is stored.
//!
//! A PIN is a handful of digits typed on a phone keypad, so it is only a second secret on
//! top of possession of the phone; the policy keeps out the PINs an attacker tries first
//! (one digit repeated, a run like 1234 or 9876, the end of the user's own phone number).
//! It is stored only as an argon2id hash, like a password.

use super::settings::MfaSettings;

/// Longest PIN: a keypad entry the call's Gather still collects in one go.
pub const MAX_LEN: usize = 10;

/// Why a new PIN is refused; `message` is what the user reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotDigits,
    TooShort,
    TooLong,
    Mismatch,
    Repeated,
    Sequence,
    PhoneNumber,
    SameAsBefore,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotDigits => "Use digits only for your PIN.",
            Refusal::TooShort => "Your PIN is too short.",
            Refusal::TooLong => "Your PIN can have at most 10 digits.",
            Refusal::Mismatch => "The two PINs you typed are not the same.",
            Refusal::Repeated => "Do not use one digit repeated as your PIN.",
            Refusal::Sequence => "Do not use a run of digits like 1234 as your PIN.",
            Refusal::PhoneNumber => "Do not use the end of your phone number as your PIN.",
            Refusal::SameAsBefore => "Choose a PIN different from your previous one.",
        }
    }

    /// For the audit log: which rule refused it, never the PIN.
    pub fn rule(self) -> &'static str {
        match self {
            Refusal::NotDigits => "not digits",
            Refusal::TooShort => "too short",
            Refusal::TooLong => "too long",
            Refusal::Mismatch => "confirmation differs",
            Refusal::Repeated => "repeated digit",
            Refusal::Sequence => "digit run",
            Refusal::PhoneNumber => "phone number",
            Refusal::SameAsBefore => "same as previous",
        }
    }
}

/// Checks a new PIN (typed twice) against the policy. `phones` are the user's numbers;
/// `previous` is the hash of the PIN it replaces.
pub fn check(
    pin: &str,
    confirm: &str,
    mfa: &MfaSettings,
    phones: &[String],
    previous: Option<&str>,
) -> Result<(), Refusal> {
    if pin.is_empty() || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::NotDigits);
    }
    if pin.len() > MAX_LEN {
        return Err(Refusal::TooLong);
    }
    if pin.len() < mfa.pin_min_length as usize {
        return Err(Refusal::TooShort);
    }
    if pin != confirm {
        return Err(Refusal::Mismatch);
    }
    if mfa.pin_refuse_weak {
        weak(pin, phones)?;
    }
    if previous.is_some_and(|h| crate::directory::file::verify_password(h, pin)) {
        return Err(Refusal::SameAsBefore);
    }
    Ok(())
}

fn weak(pin: &str, phones: &[String]) -> Result<(), Refusal> {
    let d = pin.as_bytes();
    if d.iter().all(|b| *b == d[0]) {
        return Err(Refusal::Repeated);
    }
    let steps: Vec<i16> = d
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    // 0123…, 9876… and their wrap-around forms (7890, 3210…) are among the first guesses.
    let run = |up: bool| {
        steps.iter().all(|s| {
            if up {
                *s == 1 || *s == -9
            } else {
                *s == -1 || *s == 9
            }
        })
    };
    if run(true) || run(false) {
        return Err(Refusal::Sequence);
    }
    let digits_of = |p: &String| p.chars().filter(char::is_ascii_digit).collect::<String>();
    if phones.iter().map(digits_of).any(|p| p.ends_with(pin)) {
        return Err(Refusal::PhoneNumber);
    }
    Ok(())
}

/// Whether a PIN set at `set_at` must be replaced before the next call (0 days = never).
pub fn expired(set_at: Option<i64>, mfa: &MfaSettings, now: i64) -> bool {
    if mfa.pin_expiry_days == 0 {
        return false;
    }
    // A PIN from before expiry was tracked counts as set long ago: it is due now.
    let set_at = set_at.unwrap_or(0);
    now - set_at >= i64::from(mfa.pin_expiry_days) * 86_400
}

/// The argon2id hash kept in the registration.
pub fn hash(pin: &str) -> Result<String, String> {
    crate::directory::file::hash_password(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, weak: bool) -> MfaSettings {
        MfaSettings {
            pin_min_length: min,
            pin_refuse_weak: weak,
            ..Default::default()
        }
    }

    fn refused(pin: &str) -> Option<Refusal> {
        check(
            pin,
            pin,
            &policy(4, true),
            &["+1 555 010 2468".into()],
            None,
        )
        .err()
    }

    #[test]
    fn weak_pins_are_refused_and_good_ones_pass() {
        assert_eq!(refused("7777"), Some(Refusal::Repeated));
        assert_eq!(refused("1234"), Some(Refusal::Sequence));
        assert_eq!(refused("987654"), Some(Refusal::Sequence));
        assert_eq!(refused("7890"), Some(Refusal::Sequence));
        assert_eq!(refused("2468"), Some(Refusal::PhoneNumber));
        assert_eq!(refused("123"), Some(Refusal::TooShort));
        assert_eq!(refused("12345678901"), Some(Refusal::TooLong));
        assert_eq!(refused("4 91"), Some(Refusal::NotDigits));
        assert_eq!(
            refused("٤٩١٢"),
            Some(Refusal::NotDigits),
            "non-ASCII digits"
        );
        assert_eq!(refused(""), Some(Refusal::NotDigits));
        assert_eq!(refused("4912"), None);
        assert_eq!(refused("1357"), None);
    }

    #[test]
    fn confirmation_and_reuse() {
        let p = policy(4, true);
        assert_eq!(check("4912", "4913", &p, &[], None), Err(Refusal::Mismatch));
        let old = hash("4912").unwrap();
        assert_eq!(
            check("4912", "4912", &p, &[], Some(&old)),
            Err(Refusal::SameAsBefore)
        );
        assert_eq!(check("5821", "5821", &p, &[], Some(&old)), Ok(()));
    }

    #[test]
    fn the_policy_can_be_relaxed() {
        let p = policy(6, false);
        assert_eq!(check("1111", "1111", &p, &[], None), Err(Refusal::TooShort));
        assert_eq!(check("111111", "111111", &p, &[], None), Ok(()));
    }

    #[test]
    fn expiry() {
        let mut p = policy(4, true);
        assert!(!expired(Some(0), &p, 10_000_000), "0 days = never");
        p.pin_expiry_days = 90;
        assert!(!expired(Some(1_000_000), &p, 1_000_000 + 89 * 86_400));
        assert!(expired(Some(1_000_000), &p, 1_000_000 + 90 * 86_400));
        assert!(expired(None, &p, 1_000_000_000));
    }
}
