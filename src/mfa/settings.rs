//! The MFA adapter's settings (`[mfa]`), with defaults matching the old MFA Server's.

use serde::{Deserialize, Serialize};

use super::Method;
use super::gateway::GatewaySettings;
use super::networks::{NetRange, parse_all};
use crate::i18n::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmsMode {
    /// The code is typed into the sign-in page.
    #[default]
    OneWay,
    /// The user replies to the text with the code; the page waits like for a push.
    TwoWay,
}

/// The two kinds of OATH token a code can come from (`mfa.oath_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OathKind {
    /// An authenticator app enrolled by QR code.
    App,
    /// A hardware key fob.
    Hardware,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaSettings {
    /// Off: password only, for every RP.
    pub enabled: bool,
    /// Methods offered at all (company policy).
    pub methods: Vec<Method>,
    /// Used when the user has no default of their own ("Method Defaults").
    pub company_default: Method,
    /// "Use verification code from my mobile app" offered when the default method fails.
    pub oath_fallback: bool,
    /// Which OATH tokens' codes count (the `oath` method): authenticator apps, hardware tokens.
    pub oath_tokens: Vec<OathKind>,
    /// How long the page waits for a push or call before offering the chooser.
    pub timeout_secs: u32,
    pub sms_mode: SmsMode,
    pub sms_code_lifetime_secs: u32,
    /// Push shows a number on the page that the user must pick on the phone (MFA fatigue).
    pub number_matching: bool,
    /// Calls ask for the user's PIN followed by # instead of only #.
    pub pin_mode: bool,
    /// PIN policy for new PINs (`mfa::pin`): fewest digits, refuse easy guesses, and the
    /// days after which a PIN must be replaced (0 = never).
    pub pin_min_length: u32,
    pub pin_refuse_weak: bool,
    pub pin_expiry_days: u32,
    /// Users may pick any of their methods under "Use a different verification option" and
    /// make it their default; off, they keep the default an admin set (plus the code fallback).
    pub allow_method_choice: bool,
    /// Users without a method may set one up during sign-in.
    pub allow_enrollment: bool,
    /// The help desk may issue one-time bypasses (and pending ones are honoured).
    pub allow_bypass: bool,
    /// Users may issue themselves a one-time bypass in the portal (off by default).
    pub allow_self_bypass: bool,
    /// Addresses, ranges (a-b) and CIDRs whose users skip the second factor.
    pub trusted_networks: Vec<String>,
    /// Longest one-time bypass an admin may grant, and the default length.
    pub bypass_default_secs: u32,
    /// Denied pushes/calls before the user's MFA is locked (an admin unlocks).
    pub denial_lockout_threshold: u32,
    /// How long a fraud report blocks the user.
    pub fraud_block_days: u32,
    /// Directory attributes read as phone numbers, first = preferred.
    pub phone_attributes: Vec<String>,
    /// For numbers stored without +country code.
    pub default_country_code: String,
    /// Wrong codes in one sign-in before the flow ends.
    pub max_code_attempts: u32,
    /// Wrong typed codes per user, over all sign-ins and nodes, within
    /// `code_failure_window_secs`, before code entry is locked (`mfa::lockout`).
    pub code_failures_per_user: u32,
    pub code_failure_window_secs: u32,
    /// The first code lock's length; each further lock in a row doubles it, up to
    /// `code_lockout_max_secs`.
    pub code_lockout_secs: u32,
    pub code_lockout_max_secs: u32,
    /// Soft lockout (`login::lockout`), counted before the directory is asked: failed
    /// passwords per user from addresses they have not signed in from, and from familiar
    /// ones (a separate budget, so an attacker elsewhere cannot lock the user out of their
    /// usual places). Keep the sum of both below the directory's own lockout threshold, and
    /// the window at least as long as the directory's, so no account is ever locked in the
    /// directory through Tessera.
    pub password_failures_per_user: u32,
    pub password_failures_familiar: u32,
    pub password_failures_per_ip: u32,
    pub password_failure_window_secs: u32,
    /// How long an address stays familiar after the user's last full sign-in from it.
    pub familiar_address_days: u32,
    /// Languages the sign-in pages are offered in (a browser asking for another one gets
    /// `default_language`); with more than one, the pages link to the others.
    pub languages: Vec<Lang>,
    /// For browsers that ask for none of `languages`.
    pub default_language: Lang,
    /// Security questions (`mfa::questions`), offered only while `questions` is in
    /// `methods` (off by default: answers are weak secrets). The questions users may
    /// answer, at most 20 of at most 200 characters each.
    pub security_questions: Vec<String>,
    /// How many of a user's questions a sign-in asks (1..=5).
    pub questions_required: u32,
    /// How many questions a user answers when setting them up.
    pub questions_setup: u32,
    /// How long a help desk's enrollment link stays usable (`mfa::enroll_link`).
    pub enrollment_link_hours: u32,
    /// HOTP look-ahead: how many presses ahead of the stored counter a hardware token's code
    /// may be (`mfa::tokens::inventory`, RFC 4226 §7.4).
    pub hotp_window: u32,
    /// How far ahead two consecutive codes are searched when an HOTP token is resynchronised.
    pub hotp_resync_window: u32,
    pub gateway: GatewaySettings,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            // Security questions are weak: an admin switches them on deliberately.
            methods: Method::ALL
                .into_iter()
                .filter(|m| *m != Method::Questions)
                .collect(),
            company_default: Method::Push,
            oath_fallback: true,
            oath_tokens: vec![OathKind::App, OathKind::Hardware],
            timeout_secs: 55,
            sms_mode: SmsMode::OneWay,
            sms_code_lifetime_secs: 300,
            number_matching: false,
            pin_mode: false,
            pin_min_length: 4,
            pin_refuse_weak: true,
            pin_expiry_days: 0,
            allow_method_choice: true,
            allow_enrollment: true,
            allow_bypass: true,
            allow_self_bypass: false,
            trusted_networks: Vec::new(),
            bypass_default_secs: 300,
            denial_lockout_threshold: 3,
            fraud_block_days: 90,
            phone_attributes: vec!["mobile".into(), "telephonenumber".into()],
            default_country_code: "1".into(),
            max_code_attempts: 5,
            code_failures_per_user: 5,
            code_failure_window_secs: 900,
            code_lockout_secs: 900,
            code_lockout_max_secs: 86_400,
            password_failures_per_user: 4,
            password_failures_familiar: 5,
            password_failures_per_ip: 20,
            password_failure_window_secs: 900,
            familiar_address_days: 30,
            languages: Lang::ALL.to_vec(),
            default_language: Lang::En,
            security_questions: [
                "What was the name of your first pet?",
                "In what city were you born?",
                "What was the name of your first school?",
                "What was the make of your first car?",
                "What is your oldest cousin's first name?",
            ]
            .map(String::from)
            .to_vec(),
            questions_required: 2,
            questions_setup: 3,
            enrollment_link_hours: 72,
            hotp_window: 10,
            hotp_resync_window: 100,
            gateway: GatewaySettings::default(),
        }
    }
}

impl MfaSettings {
    /// Each error names the key (relative to `[mfa]`; `gateway` for `[mfa.gateway]`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        // Every number's bounds come from the settings table (the admin page uses the same).
        super::table::check_ranges(self)?;
        if self.hotp_resync_window < self.hotp_window {
            return Err((
                "hotp_resync_window".into(),
                "must be at least the HOTP look-ahead (hotp_window)".into(),
            ));
        }
        if self.methods.is_empty() && self.enabled {
            return Err((
                "methods".into(),
                "at least one method, or enabled = false".into(),
            ));
        }
        if self.methods.contains(&Method::Oath) && self.oath_tokens.is_empty() {
            return Err((
                "oath_tokens".into(),
                "at least one kind of token while the verification code is offered".into(),
            ));
        }
        if self.code_lockout_max_secs < self.code_lockout_secs {
            return Err((
                "code_lockout_max_secs".into(),
                "at least code_lockout_secs".into(),
            ));
        }
        if !self.methods.contains(&self.company_default) {
            return Err((
                "company_default".into(),
                format!("`{}` is not in methods", self.company_default.as_str()),
            ));
        }
        if !self
            .default_country_code
            .chars()
            .all(|c| c.is_ascii_digit())
            || !(1..=3).contains(&self.default_country_code.len())
        {
            return Err((
                "default_country_code".into(),
                "1 to 3 digits, without +".into(),
            ));
        }
        // A page is always in some language, so the list cannot be empty.
        if self.languages.is_empty() {
            return Err(("languages".into(), "at least one language".into()));
        }
        // Each one is a link on the page: twice would show it twice.
        if let Some(twice) = self
            .languages
            .iter()
            .enumerate()
            .find_map(|(i, l)| self.languages[..i].contains(l).then_some(l))
        {
            return Err(("languages".into(), format!("`{twice}` is listed twice")));
        }
        if !self.languages.contains(&self.default_language) {
            return Err((
                "default_language".into(),
                format!("`{}` is not in languages", self.default_language),
            ));
        }
        parse_all(&self.trusted_networks).map_err(|e| ("trusted_networks".to_owned(), e))?;
        self.validate_questions()?;
        self.gateway
            .validate()
            .map_err(|e| ("gateway".to_owned(), e))?;
        Ok(())
    }

    /// The security questions' bounds: a short list of one-line questions, each once, and
    /// enough of them for the number users set up, itself at least the number asked.
    fn validate_questions(&self) -> Result<(), (String, String)> {
        use super::questions::{MAX_QUESTION_CHARS, MAX_QUESTIONS};
        let key = "security_questions";
        let err = |k: &str, m: String| Err((k.to_owned(), m));
        if self.security_questions.len() > MAX_QUESTIONS {
            return err(key, format!("at most {MAX_QUESTIONS} questions"));
        }
        for (i, q) in self.security_questions.iter().enumerate() {
            if q.trim().is_empty() || q.chars().count() > MAX_QUESTION_CHARS {
                return err(key, format!("1 to {MAX_QUESTION_CHARS} characters each"));
            }
            if q.chars().any(char::is_control) {
                return err(key, "one line each".into());
            }
            if self.security_questions[..i].contains(q) {
                return err(key, format!("`{q}` is listed twice"));
            }
        }
        if self.questions_setup < self.questions_required {
            return err("questions_setup", "at least questions_required".into());
        }
        if self.methods.contains(&Method::Questions)
            && self.security_questions.len() < self.questions_setup as usize
        {
            return err(
                key,
                "at least questions_setup questions while security questions are offered".into(),
            );
        }
        Ok(())
    }

    /// Whether users may set up an authenticator app (the code method, with app tokens).
    pub fn apps_allowed(&self) -> bool {
        self.methods.contains(&Method::Oath) && self.oath_tokens.contains(&OathKind::App)
    }

    pub fn trusted(&self) -> Vec<NetRange> {
        parse_all(&self.trusted_networks).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hotp_windows_have_bounds_and_resync_covers_the_look_ahead() {
        let with = |hotp_window, hotp_resync_window| MfaSettings {
            hotp_window,
            hotp_resync_window,
            ..Default::default()
        };
        with(50, 1000).validate().expect("upper bounds");
        with(1, 10).validate().expect("lower bounds");
        for (w, r, key) in [
            (0, 100, "hotp_window"),
            (51, 100, "hotp_window"),
            (10, 9, "hotp_resync_window"),
            (10, 1001, "hotp_resync_window"),
            (30, 20, "hotp_resync_window"),
        ] {
            assert_eq!(with(w, r).validate().expect_err("bounds").0, key, "{w} {r}");
        }
    }

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        MfaSettings::default().validate().expect("defaults");
        let s = MfaSettings {
            timeout_secs: 5,
            ..Default::default()
        };
        assert_eq!(s.validate().expect_err("range").0, "timeout_secs");
        let s = MfaSettings {
            trusted_networks: vec!["10.0.0.0/33".into()],
            ..Default::default()
        };
        assert_eq!(s.validate().expect_err("cidr").0, "trusted_networks");
        let s = MfaSettings {
            methods: vec![Method::Oath],
            ..Default::default()
        };
        assert_eq!(s.validate().expect_err("default").0, "company_default");
        let s = MfaSettings {
            oath_tokens: Vec::new(),
            ..Default::default()
        };
        assert_eq!(s.validate().expect_err("tokens").0, "oath_tokens");
        let s = MfaSettings {
            methods: vec![Method::Push],
            oath_tokens: Vec::new(),
            ..Default::default()
        };
        s.validate()
            .expect("no token kind needed without the code method");
        assert!(!s.apps_allowed());
    }

    #[test]
    fn security_questions_are_bounded_and_off_by_default() {
        let d = MfaSettings::default();
        assert!(
            !d.methods.contains(&Method::Questions),
            "weak: off by default"
        );
        let with = |f: &dyn Fn(&mut MfaSettings)| {
            let mut s = MfaSettings::default();
            s.methods.push(Method::Questions);
            f(&mut s);
            s.validate().err().map(|(k, _)| k)
        };
        assert_eq!(with(&|_| {}), None);
        let key = Some("security_questions".to_owned());
        assert_eq!(with(&|s| s.security_questions = vec!["Q".into(); 21]), key);
        assert_eq!(with(&|s| s.security_questions[0] = "x".repeat(201)), key);
        assert_eq!(
            with(&|s| s.security_questions[1] = s.security_questions[0].clone()),
            key
        );
        assert_eq!(with(&|s| s.security_questions.truncate(2)), key);
        assert_eq!(
            with(&|s| s.questions_required = 4),
            Some("questions_setup".to_owned())
        );
        assert_eq!(
            with(&|s| s.questions_required = 6),
            Some("questions_required".to_owned())
        );
    }

    #[test]
    fn languages_are_never_empty_and_hold_the_default() {
        let s = MfaSettings {
            languages: Vec::new(),
            ..Default::default()
        };
        assert_eq!(s.validate().expect_err("empty").0, "languages");
        let s = MfaSettings {
            languages: vec![Lang::De, Lang::Fr],
            ..Default::default()
        };
        let (key, detail) = s.validate().expect_err("default not offered");
        assert_eq!(
            (key.as_str(), detail.as_str()),
            ("default_language", "`en` is not in languages")
        );
        let s = MfaSettings {
            languages: vec![Lang::Fr],
            default_language: Lang::Fr,
            ..Default::default()
        };
        s.validate().expect("french only");
        let s = MfaSettings {
            languages: vec![Lang::En, Lang::De, Lang::En],
            ..Default::default()
        };
        assert_eq!(
            s.validate().expect_err("twice"),
            ("languages".into(), "`en` is listed twice".into())
        );
        let parsed: MfaSettings =
            toml::from_str("languages = [\"de\", \"en\"]\ndefault_language = \"de\"")
                .expect("toml");
        assert_eq!(parsed.languages, [Lang::De, Lang::En]);
        assert_eq!(parsed.default_language, Lang::De);
        assert!(toml::from_str::<MfaSettings>("languages = [\"xx\"]").is_err());
    }
}
