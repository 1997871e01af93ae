//! The adapter settings as one declarative table: what the admin page shows, how a typed value is read, and each value's bounds.
//!
//! Keys are paths into `MfaSettings` (`timeout_secs`, `gateway.ntfy_url`): a value is read
//! and written through the settings' JSON form, so the table cannot drift from the struct
//! without a test failing (`every_key_exists`). Number bounds live here only;
//! `MfaSettings::validate` checks them from this table, then the cross-field rules.

use serde_json::Value;

use super::settings::MfaSettings;

/// Where a setting appears on the page (in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Methods,
    Timing,
    Lockout,
    Networks,
    Languages,
    Delivery,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Methods,
        Group::Timing,
        Group::Lockout,
        Group::Networks,
        Group::Languages,
        Group::Delivery,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Methods => "Methods",
            Group::Timing => "Timing",
            Group::Lockout => "Lockout, fraud and bypass",
            Group::Networks => "Networks and phone numbers",
            Group::Languages => "Sign-in page languages",
            Group::Delivery => "Delivery gateways",
        }
    }
}

/// A setting's type, which decides its form control and how its text is read.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    /// A whole number within `min..=max`.
    Number {
        min: u32,
        max: u32,
    },
    /// Exactly one of (value, label).
    Choice(&'static [(&'static str, &'static str)]),
    /// Any subset of (value, label).
    Choices(&'static [(&'static str, &'static str)]),
    /// One line of text; empty means "not set" for optional settings.
    Text {
        optional: bool,
    },
    /// One entry per line.
    Lines,
    /// Never shown back; an empty field leaves the stored value alone.
    Secret,
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub group: Group,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl Setting {
    pub fn is_secret(&self) -> bool {
        matches!(self.kind, Kind::Secret)
    }
}

const METHODS: &[(&str, &str)] = &[
    ("push", "Mobile app notification (push)"),
    ("call", "Phone call"),
    ("sms", "Text message"),
    (
        "oath",
        "Verification code (authenticator app or hardware token)",
    ),
    ("questions", "Security questions (weak: see below)"),
];

/// `i18n::Lang::ALL` as choices, each under its own name (a test keeps them in step).
const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("it", "Italiano"),
    ("nl", "Nederlands"),
    ("pt", "Português"),
];

const fn s(
    key: &'static str,
    group: Group,
    label: &'static str,
    help: &'static str,
    kind: Kind,
) -> Setting {
    Setting {
        key,
        group,
        label,
        help,
        kind,
    }
}

/// Every setting an admin may change, in page order.
pub const SETTINGS: &[Setting] = &[
    s(
        "enabled",
        Group::Methods,
        "Require a second factor",
        "Off: every application signs in with the password only.",
        Kind::Bool,
    ),
    s(
        "methods",
        Group::Methods,
        "Methods offered",
        "Methods users may use at all. A user's own enrolled methods are kept when one is switched off.",
        Kind::Choices(METHODS),
    ),
    s(
        "oath_tokens",
        Group::Methods,
        "Verification code from",
        "Which tokens' codes count for the verification-code method. Tokens of a kind switched off stay enrolled but are not accepted.",
        Kind::Choices(&[
            ("app", "Authenticator apps (enrolled by QR code)"),
            ("hardware", "Hardware tokens"),
        ]),
    ),
    s(
        "company_default",
        Group::Methods,
        "Company default method",
        "Used for users who have not chosen a default of their own. Must be one of the methods offered.",
        Kind::Choice(METHODS),
    ),
    s(
        "oath_fallback",
        Group::Methods,
        "Offer the verification code as a fallback",
        "\"Use a different verification option\" lists the code from an app or token when the default method fails.",
        Kind::Bool,
    ),
    s(
        "allow_enrollment",
        Group::Methods,
        "Allow user enrollment",
        "Users without a method may set one up (QR code, phone, push device) during sign-in.",
        Kind::Bool,
    ),
    s(
        "allow_method_choice",
        Group::Methods,
        "Allow users to select method",
        "On: \"Use a different verification option\" lists all of a user's methods and the user may make one the default. Off: users keep the default set for them (the code fallback stays if switched on).",
        Kind::Bool,
    ),
    s(
        "allow_bypass",
        Group::Methods,
        "Allow one-time bypass",
        "Help desk may let a user sign in once without a second factor.",
        Kind::Bool,
    ),
    s(
        "allow_self_bypass",
        Group::Methods,
        "Allow users to create their own one-time bypass",
        "Users may create a one-time bypass for themselves in the portal (/portal), with a reason and a validity of at most one hour. Needs \"Allow one-time bypass\" too. Off by default.",
        Kind::Bool,
    ),
    s(
        "sms_mode",
        Group::Methods,
        "Text message mode",
        "One-way: the user types the texted code. Two-way: the user replies to the text with it.",
        Kind::Choice(&[
            ("one_way", "One-way (type the code)"),
            ("two_way", "Two-way (reply with the code)"),
        ]),
    ),
    s(
        "number_matching",
        Group::Methods,
        "Number matching for push",
        "The page shows a number the user must pick on the phone (defeats MFA fatigue).",
        Kind::Bool,
    ),
    s(
        "pin_mode",
        Group::Methods,
        "PIN mode for calls",
        "Calls ask for the user's PIN followed by # instead of only #. Users without a PIN choose one at their next sign-in by call (when enrollment is allowed).",
        Kind::Bool,
    ),
    s(
        "pin_min_length",
        Group::Methods,
        "PIN policy: minimum length",
        "Fewest digits in a new PIN (at most 10 are possible).",
        Kind::Number { min: 4, max: 10 },
    ),
    s(
        "pin_refuse_weak",
        Group::Methods,
        "PIN policy: refuse easy PINs",
        "Refuse one digit repeated (1111), runs (1234, 9876) and the end of the user's phone number.",
        Kind::Bool,
    ),
    s(
        "pin_expiry_days",
        Group::Methods,
        "PIN policy: expiry (days)",
        "After this many days the user chooses a new PIN, different from the old one, before the next call. 0: never.",
        Kind::Number { min: 0, max: 3650 },
    ),
    s(
        "timeout_secs",
        Group::Timing,
        "Push and call timeout (seconds)",
        "How long the page waits for an answer before offering another method.",
        Kind::Number { min: 10, max: 300 },
    ),
    s(
        "sms_code_lifetime_secs",
        Group::Timing,
        "Text message code lifetime (seconds)",
        "How long a texted code stays valid.",
        Kind::Number { min: 30, max: 900 },
    ),
    s(
        "max_code_attempts",
        Group::Timing,
        "Wrong codes per sign-in",
        "Wrong verification codes allowed in one sign-in before it ends.",
        Kind::Number { min: 1, max: 20 },
    ),
    s(
        "denial_lockout_threshold",
        Group::Lockout,
        "MFA denial lockout threshold",
        "Denied pushes or calls in a row before the user's second factor is locked (an admin unlocks).",
        Kind::Number { min: 1, max: 100 },
    ),
    s(
        "fraud_block_days",
        Group::Lockout,
        "Fraud block (days)",
        "How long a user who reports fraud from the phone is blocked.",
        Kind::Number { min: 1, max: 3650 },
    ),
    s(
        "bypass_default_secs",
        Group::Lockout,
        "One-time bypass length (seconds)",
        "Default validity of a one-time bypass issued by the help desk.",
        Kind::Number {
            min: 30,
            max: 86_400,
        },
    ),
    s(
        "code_failures_per_user",
        Group::Lockout,
        "Wrong codes per user",
        "Wrong verification codes for one user, over all sign-ins, before code entry is locked.",
        Kind::Number { min: 1, max: 100 },
    ),
    s(
        "code_failure_window_secs",
        Group::Lockout,
        "Wrong code window (seconds)",
        "How long wrong codes are counted.",
        Kind::Number {
            min: 60,
            max: 86_400,
        },
    ),
    s(
        "code_lockout_secs",
        Group::Lockout,
        "Code lock (seconds)",
        "How long codes are refused after the first lock; each further lock in a row doubles it.",
        Kind::Number {
            min: 60,
            max: 86_400,
        },
    ),
    s(
        "code_lockout_max_secs",
        Group::Lockout,
        "Longest code lock (seconds)",
        "The doubling stops here. Push and calls keep working while codes are locked.",
        Kind::Number {
            min: 60,
            max: 2_592_000,
        },
    ),
    s(
        "password_failures_per_user",
        Group::Lockout,
        "Failed passwords per user (unfamiliar addresses)",
        "Soft lockout before the directory is asked, for addresses the user has not signed in from. Keep this plus the familiar budget below the directory's own lockout threshold.",
        Kind::Number { min: 1, max: 1000 },
    ),
    s(
        "password_failures_familiar",
        Group::Lockout,
        "Failed passwords per user (familiar addresses)",
        "A separate budget for addresses the user signed in from, so failures elsewhere cannot lock them out there.",
        Kind::Number { min: 1, max: 1000 },
    ),
    s(
        "password_failures_per_ip",
        Group::Lockout,
        "Failed passwords per client address",
        "Soft lockout of one address spraying many user names.",
        Kind::Number {
            min: 1,
            max: 100_000,
        },
    ),
    s(
        "password_failure_window_secs",
        Group::Lockout,
        "Failed password window (seconds)",
        "How long failed passwords are counted; at least as long as the directory's own lockout observation window.",
        Kind::Number {
            min: 60,
            max: 86_400,
        },
    ),
    s(
        "familiar_address_days",
        Group::Lockout,
        "Familiar address memory (days)",
        "How long an address stays familiar after the user's last sign-in from it.",
        Kind::Number { min: 1, max: 365 },
    ),
    s(
        "security_questions",
        Group::Methods,
        "Security questions offered",
        "One per line, at most 20 of up to 200 characters. Warning: answers to security questions are weak secrets (often public or guessable); offer them (Methods offered) only as a last resort. Wrong answers count against the wrong-code lock.",
        Kind::Lines,
    ),
    s(
        "questions_required",
        Group::Methods,
        "Security questions asked at sign-in",
        "How many of the user's questions a sign-in asks, picked at random each time.",
        Kind::Number { min: 1, max: 5 },
    ),
    s(
        "questions_setup",
        Group::Methods,
        "Security questions each user answers",
        "How many questions users answer when they set them up; at least the number asked.",
        Kind::Number { min: 1, max: 20 },
    ),
    s(
        "hotp_window",
        Group::Methods,
        "HOTP look-ahead (presses)",
        "How many button presses ahead of the last accepted code an event-based (HOTP) hardware token's code may be. Larger forgives more presses but accepts more guesses.",
        Kind::Number { min: 1, max: 50 },
    ),
    s(
        "hotp_resync_window",
        Group::Methods,
        "HOTP resynchronisation window (presses)",
        "How far ahead two consecutive codes are searched when an HOTP token is resynchronised; at least the look-ahead.",
        Kind::Number { min: 10, max: 1000 },
    ),
    s(
        "enrollment_link_hours",
        Group::Methods,
        "Enrollment link validity (hours)",
        "How long a link the help desk sends a user to set up an authenticator app stays usable. Each link works once.",
        Kind::Number { min: 1, max: 720 },
    ),
    s(
        "trusted_networks",
        Group::Networks,
        "Trusted networks",
        "One per line: an address, a range (10.0.0.1-10.0.0.9) or a CIDR. Users signing in from these skip the second factor (never for the admin console).",
        Kind::Lines,
    ),
    s(
        "phone_attributes",
        Group::Networks,
        "Directory phone attributes",
        "One per line, first preferred: directory attributes read as the user's phone numbers.",
        Kind::Lines,
    ),
    s(
        "default_country_code",
        Group::Networks,
        "Default country code",
        "Added to numbers stored without +country code (1 to 3 digits).",
        Kind::Text { optional: false },
    ),
    s(
        "languages",
        Group::Languages,
        "Languages offered",
        "The sign-in pages are shown in the browser's preferred language among these; with more than one, users can switch at the foot of the page.",
        Kind::Choices(LANGUAGES),
    ),
    s(
        "default_language",
        Group::Languages,
        "Default language",
        "For browsers that prefer none of the languages offered. Must be one of them.",
        Kind::Choice(LANGUAGES),
    ),
    s(
        "gateway.push",
        Group::Delivery,
        "Push gateway",
        "Where notifications go. None: pushes fail and the user is offered another method.",
        Kind::Choice(&[
            ("none", "None"),
            ("ntfy", "ntfy server"),
            ("webhook", "Webhook"),
            ("simulator", "Phone simulator (development)"),
        ]),
    ),
    s(
        "gateway.ntfy_url",
        Group::Delivery,
        "ntfy server URL",
        "For push = ntfy.",
        Kind::Text { optional: true },
    ),
    s(
        "gateway.ntfy_token",
        Group::Delivery,
        "ntfy access token",
        "Optional bearer token for the ntfy server.",
        Kind::Secret,
    ),
    s(
        "gateway.voice_sms",
        Group::Delivery,
        "Call and text gateway",
        "Where calls and texts go.",
        Kind::Choice(&[
            ("none", "None"),
            ("twilio", "Twilio-compatible API"),
            ("webhook", "Webhook"),
            ("simulator", "Phone simulator (development)"),
        ]),
    ),
    s(
        "gateway.twilio_base_url",
        Group::Delivery,
        "Twilio API URL",
        "Empty: https://api.twilio.com.",
        Kind::Text { optional: true },
    ),
    s(
        "gateway.twilio_account_sid",
        Group::Delivery,
        "Twilio account SID",
        "For voice_sms = twilio.",
        Kind::Text { optional: true },
    ),
    s(
        "gateway.twilio_auth_token",
        Group::Delivery,
        "Twilio auth token",
        "For voice_sms = twilio.",
        Kind::Secret,
    ),
    s(
        "gateway.twilio_from",
        Group::Delivery,
        "Caller id / sender number",
        "E.164, e.g. +15550100200.",
        Kind::Text { optional: true },
    ),
    s(
        "gateway.webhook_url",
        Group::Delivery,
        "Webhook URL",
        "JSON POST signed with X-Tessera-Signature.",
        Kind::Text { optional: true },
    ),
    s(
        "gateway.webhook_secret",
        Group::Delivery,
        "Webhook secret",
        "HMAC key for the webhook signature.",
        Kind::Secret,
    ),
    s(
        "gateway.timeout_secs",
        Group::Delivery,
        "Gateway request timeout (seconds)",
        "Limit for each call to a gateway.",
        Kind::Number { min: 1, max: 60 },
    ),
];

pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

fn pointer(key: &str) -> String {
    format!("/{}", key.replace('.', "/"))
}

/// The setting's value in `settings`, as JSON.
pub fn get(settings: &MfaSettings, key: &str) -> Value {
    serde_json::to_value(settings)
        .ok()
        .and_then(|v| v.pointer(&pointer(key)).cloned())
        .unwrap_or(Value::Null)
}

/// A copy of `settings` with `key` set to `value`; `Err` names why the value does not fit.
pub fn with(settings: &MfaSettings, key: &str, value: Value) -> Result<MfaSettings, String> {
    let mut json = serde_json::to_value(settings).map_err(|e| e.to_string())?;
    let slot = json
        .pointer_mut(&pointer(key))
        .ok_or_else(|| format!("unknown setting {key}"))?;
    *slot = value;
    serde_json::from_value(json).map_err(|e| e.to_string())
}

/// Reads what an admin typed (form field or command line) as the setting's JSON value.
/// `Ok(None)`: leave the setting as it is (an empty secret field).
pub fn parse(setting: &Setting, text: &[String]) -> Result<Option<Value>, String> {
    let one = || text.first().map(|t| t.trim()).unwrap_or("");
    Ok(Some(match setting.kind {
        Kind::Bool => match one() {
            "true" | "on" | "yes" | "1" => Value::Bool(true),
            "" | "false" | "off" | "no" | "0" => Value::Bool(false),
            other => return Err(format!("`{other}` is not on/off")),
        },
        Kind::Number { min, max } => {
            let n: u32 = one()
                .parse()
                .map_err(|_| format!("`{}` is not a whole number", one()))?;
            if !(min..=max).contains(&n) {
                return Err(format!("{n} is outside {min}..={max}"));
            }
            Value::from(n)
        }
        Kind::Choice(options) => {
            let v = one();
            if !options.iter().any(|(o, _)| *o == v) {
                return Err(format!("`{v}` is not one of the choices"));
            }
            Value::from(v)
        }
        Kind::Choices(options) => {
            let mut picked = Vec::new();
            for t in text.iter().flat_map(|t| t.split(',')).map(str::trim) {
                if t.is_empty() {
                    continue;
                }
                if !options.iter().any(|(o, _)| *o == t) {
                    return Err(format!("`{t}` is not one of the choices"));
                }
                if !picked.contains(&t) {
                    picked.push(t);
                }
            }
            Value::from(picked)
        }
        Kind::Text { optional } => match one() {
            "" if optional => Value::Null,
            v => Value::from(v),
        },
        Kind::Lines => Value::from(
            text.iter()
                .flat_map(|t| t.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>(),
        ),
        Kind::Secret => match one() {
            "" => return Ok(None),
            v => Value::from(v),
        },
    }))
}

/// How a value is shown to an admin (page, CLI, change log); secrets are never shown.
pub fn display(setting: &Setting, value: &Value) -> String {
    if setting.is_secret() {
        return if value.is_null() {
            "(not set)"
        } else {
            "(set)"
        }
        .to_owned();
    }
    match value {
        Value::Null => "(not set)".to_owned(),
        Value::Bool(b) => if *b { "on" } else { "off" }.to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The table's number bounds, checked against `settings` (used by `MfaSettings::validate`).
pub fn check_ranges(settings: &MfaSettings) -> Result<(), (String, String)> {
    for s in SETTINGS {
        if let Kind::Number { min, max } = s.kind {
            let v = get(settings, s.key);
            let n = v.as_u64().unwrap_or(u64::MAX);
            if !(u64::from(min)..=u64::from(max)).contains(&n) {
                return Err((s.key.to_owned(), format!("{v} is outside {min}..={max}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_exists() {
        let d = MfaSettings::default();
        for s in SETTINGS {
            let v = get(&d, s.key);
            // Optional text and secrets may be null by default; everything else has a value.
            let may_be_null = matches!(s.kind, Kind::Secret | Kind::Text { optional: true });
            assert!(may_be_null || !v.is_null(), "{} has no value", s.key);
            with(&d, s.key, v).unwrap_or_else(|e| panic!("{}: {e}", s.key));
        }
    }

    #[test]
    fn language_choices_are_the_languages() {
        let ours: Vec<(&str, &str)> = crate::i18n::Lang::ALL
            .iter()
            .map(|l| (l.code(), l.name()))
            .collect();
        assert_eq!(LANGUAGES, ours.as_slice());
        let langs = find("languages").unwrap();
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v = parse(langs, &t(&["de,fr"])).unwrap().unwrap();
        let s = with(&MfaSettings::default(), "languages", v).unwrap();
        assert_eq!(s.languages, [crate::i18n::Lang::De, crate::i18n::Lang::Fr]);
        assert!(parse(langs, &t(&["klingon"])).is_err());
    }

    #[test]
    fn parsing_each_kind() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let timeout = find("timeout_secs").unwrap();
        assert_eq!(parse(timeout, &t(&["30"])).unwrap(), Some(Value::from(30)));
        assert!(parse(timeout, &t(&["5"])).unwrap_err().contains("outside"));
        assert!(parse(timeout, &t(&["-1"])).is_err());
        assert!(parse(timeout, &t(&["1e3"])).is_err());
        let methods = find("methods").unwrap();
        assert_eq!(
            parse(methods, &t(&["push", "oath", "push"])).unwrap(),
            Some(serde_json::json!(["push", "oath"]))
        );
        assert!(parse(methods, &t(&["carrier-pigeon"])).is_err());
        let secret = find("gateway.webhook_secret").unwrap();
        assert_eq!(parse(secret, &t(&[""])).unwrap(), None);
        assert_eq!(display(secret, &Value::from("hunter2")), "(set)");
        let nets = find("trusted_networks").unwrap();
        assert_eq!(
            parse(nets, &t(&["10.0.0.0/8\r\n\r\n 192.168.1.1 \n"])).unwrap(),
            Some(serde_json::json!(["10.0.0.0/8", "192.168.1.1"]))
        );
        let enabled = find("enabled").unwrap();
        assert_eq!(parse(enabled, &[]).unwrap(), Some(Value::Bool(false)));
        assert!(parse(enabled, &t(&["maybe"])).is_err());
        let url = find("gateway.ntfy_url").unwrap();
        assert_eq!(parse(url, &t(&[" "])).unwrap(), Some(Value::Null));
    }

    #[test]
    fn with_refuses_a_wrong_shape() {
        let d = MfaSettings::default();
        assert!(with(&d, "timeout_secs", Value::from("soon")).is_err());
        assert!(with(&d, "no_such", Value::from(1)).is_err());
        let s = with(&d, "gateway.timeout_secs", Value::from(7)).unwrap();
        assert_eq!(s.gateway.timeout_secs, 7);
    }
}
