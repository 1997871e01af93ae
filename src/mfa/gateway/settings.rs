//! The `[mfa.gateway]` settings, their validation, and `build` which turns them into a Gateway.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Composite, Gateway, GatewayError, Ntfy, Twilio, Unconfigured, Webhook};

/// Account SID the simulator is driven with when none is configured (Twilio's format: AC + 32 hex).
pub const SIMULATOR_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// Auth token the simulator is driven with when none is configured. Development only: the
/// simulator must never be reachable in production anyway (its phone page approves anything).
pub const SIMULATOR_AUTH_TOKEN: &str = "simulator-auth-token";
/// Caller id the simulator is driven with when none is configured (Twilio's magic test number).
pub const SIMULATOR_FROM: &str = "+15005550006";

const DEFAULT_TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// Where pushes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PushKind {
    /// Unset: the simulator when Tessera serves only this machine (public URL on loopback,
    /// i.e. a developer's first run), otherwise `none`. Resolved once at start.
    #[default]
    Auto,
    /// Not configured: every push fails, so the sign-in offers another method.
    None,
    Ntfy,
    Webhook,
    /// The ntfy client pointed at `{public_url}/sim/ntfy`.
    Simulator,
}

/// Where calls and texts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VoiceSmsKind {
    /// See `PushKind::Auto`.
    #[default]
    Auto,
    /// Not configured: every call and text fails (see `PushKind::None`).
    None,
    Twilio,
    Webhook,
    /// The Twilio client pointed at `{public_url}/sim/twilio`.
    Simulator,
}

/// `[mfa.gateway]`. Secrets (`ntfy_token`, `twilio_auth_token`, `webhook_secret`) are
/// redacted from `Debug`, so the settings can be logged.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    pub push: PushKind,
    pub voice_sms: VoiceSmsKind,
    pub ntfy_url: Option<String>,
    pub ntfy_token: Option<String>,
    /// Twilio API root; `https://api.twilio.com` when unset.
    pub twilio_base_url: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    /// Our caller id / sender number, E.164.
    pub twilio_from: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// Per-request limit for every gateway call (connect + answer).
    pub timeout_secs: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            push: PushKind::Auto,
            voice_sms: VoiceSmsKind::Auto,
            ntfy_url: None,
            ntfy_token: None,
            twilio_base_url: None,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_from: None,
            webhook_url: None,
            webhook_secret: None,
            timeout_secs: 10,
        }
    }
}

impl fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("GatewaySettings")
            .field("push", &self.push)
            .field("voice_sms", &self.voice_sms)
            .field("ntfy_url", &self.ntfy_url)
            .field("ntfy_token", &redact(&self.ntfy_token))
            .field("twilio_base_url", &self.twilio_base_url)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &redact(&self.twilio_auth_token))
            .field("twilio_from", &self.twilio_from)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &redact(&self.webhook_secret))
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A validation error: the key (relative to `[mfa.gateway]`), then what is wrong with it.
fn invalid(key: &str, detail: impl std::fmt::Display) -> String {
    format!("{key}: {detail}")
}

fn required<'a>(v: &'a Option<String>, key: &str, when: &str) -> Result<&'a str, String> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(key, format!("required when {when}"))),
    }
}

fn check_http_url(v: &str, key: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(invalid(key, "must be an absolute http(s) URL")),
    }
}

/// E.164: `+`, a non-zero country code digit, at most 15 digits in all (ITU-T E.164 §6).
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl GatewaySettings {
    /// Checks that every key the chosen gateways need is present and well-formed; the
    /// error starts with the offending key (`ntfy_url: required when push = "ntfy"`).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=60).contains(&self.timeout_secs) {
            return Err(invalid("timeout_secs", "must be 1..=60"));
        }
        if self.push == PushKind::Ntfy {
            check_http_url(
                required(&self.ntfy_url, "ntfy_url", "push = \"ntfy\"")?,
                "ntfy_url",
            )?;
        }
        if self.push == PushKind::Webhook || self.voice_sms == VoiceSmsKind::Webhook {
            self.validate_webhook()?;
        }
        match self.voice_sms {
            VoiceSmsKind::Twilio => self.validate_twilio(),
            VoiceSmsKind::Simulator => self.validate_from(),
            VoiceSmsKind::Webhook | VoiceSmsKind::None | VoiceSmsKind::Auto => Ok(()),
        }
    }

    fn validate_webhook(&self) -> Result<(), String> {
        let when = "a gateway is \"webhook\"";
        check_http_url(
            required(&self.webhook_url, "webhook_url", when)?,
            "webhook_url",
        )?;
        // 16 bytes: the least that makes guessing the HMAC key hopeless.
        if required(&self.webhook_secret, "webhook_secret", when)?.len() < 16 {
            return Err(invalid("webhook_secret", "must be at least 16 characters"));
        }
        Ok(())
    }

    fn validate_twilio(&self) -> Result<(), String> {
        let when = "voice_sms = \"twilio\"";
        required(&self.twilio_account_sid, "twilio_account_sid", when)?;
        required(&self.twilio_auth_token, "twilio_auth_token", when)?;
        required(&self.twilio_from, "twilio_from", when)?;
        if let Some(u) = &self.twilio_base_url {
            check_http_url(u, "twilio_base_url")?;
        }
        self.validate_from()
    }

    fn validate_from(&self) -> Result<(), String> {
        match &self.twilio_from {
            Some(f) if !is_e164(f.trim()) => Err(invalid(
                "twilio_from",
                "must be an E.164 number such as +15550100230",
            )),
            _ => Ok(()),
        }
    }

    /// The auth token Tessera checks `X-Twilio-Signature` on voice / SMS callbacks with,
    /// or `None` when calls and texts do not go through a Twilio-style API.
    pub fn twilio_auth_token(&self) -> Option<&str> {
        match self.voice_sms {
            VoiceSmsKind::Twilio => self.twilio_auth_token.as_deref(),
            VoiceSmsKind::Simulator => Some(
                self.twilio_auth_token
                    .as_deref()
                    .unwrap_or(SIMULATOR_AUTH_TOKEN),
            ),
            VoiceSmsKind::Webhook | VoiceSmsKind::None | VoiceSmsKind::Auto => None,
        }
    }

    /// The ntfy server users subscribe to in the app (empty when pushes do not go to ntfy).
    pub fn push_server_url(&self, public_base_url: &str) -> String {
        match self.push {
            PushKind::Ntfy => self
                .ntfy_url
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            PushKind::Simulator => format!("{}/sim/ntfy", public_base_url.trim_end_matches('/')),
            PushKind::Webhook | PushKind::None | PushKind::Auto => String::new(),
        }
    }

    /// True when either gateway is the simulator, so its routes must be mounted.
    /// Replaces `auto` by what it means for this public URL; and refuses the simulator on a
    /// URL other machines can reach, because its phone page approves anything.
    pub fn resolve(&mut self, public_base: &str) -> Result<(), String> {
        let local = is_loopback_url(public_base);
        if self.push == PushKind::Auto {
            self.push = if local {
                PushKind::Simulator
            } else {
                PushKind::None
            };
        }
        if self.voice_sms == VoiceSmsKind::Auto {
            self.voice_sms = if local {
                VoiceSmsKind::Simulator
            } else {
                VoiceSmsKind::None
            };
        }
        if self.uses_simulator() && !local {
            return Err("push / voice_sms: the simulator is for development only; it needs a public_url on localhost".into());
        }
        Ok(())
    }

    pub fn uses_simulator(&self) -> bool {
        self.push == PushKind::Simulator || self.voice_sms == VoiceSmsKind::Simulator
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    fn push_gateway(&self, public_base_url: &str) -> Result<Arc<dyn Gateway>, GatewayError> {
        Ok(match self.push {
            PushKind::Ntfy => Arc::new(Ntfy::new(
                self.ntfy_url.as_deref().unwrap_or_default(),
                self.ntfy_token.clone(),
                self.timeout(),
            )?),
            PushKind::Simulator => Arc::new(Ntfy::new(
                &format!("{public_base_url}/sim/ntfy"),
                self.ntfy_token.clone(),
                self.timeout(),
            )?),
            PushKind::Webhook => Arc::new(self.webhook()?),
            PushKind::None | PushKind::Auto => Arc::new(Unconfigured),
        })
    }

    fn voice_sms_gateway(&self, public_base_url: &str) -> Result<Arc<dyn Gateway>, GatewayError> {
        let or = |v: &Option<String>, d: &str| v.as_deref().unwrap_or(d).trim().to_owned();
        Ok(match self.voice_sms {
            VoiceSmsKind::Twilio => Arc::new(Twilio::new(
                &or(&self.twilio_base_url, DEFAULT_TWILIO_BASE_URL),
                &or(&self.twilio_account_sid, ""),
                &or(&self.twilio_auth_token, ""),
                &or(&self.twilio_from, ""),
                self.timeout(),
            )?),
            VoiceSmsKind::Simulator => Arc::new(Twilio::new(
                &format!("{public_base_url}/sim/twilio"),
                &or(&self.twilio_account_sid, SIMULATOR_ACCOUNT_SID),
                &or(&self.twilio_auth_token, SIMULATOR_AUTH_TOKEN),
                &or(&self.twilio_from, SIMULATOR_FROM),
                self.timeout(),
            )?),
            VoiceSmsKind::Webhook => Arc::new(self.webhook()?),
            VoiceSmsKind::None | VoiceSmsKind::Auto => Arc::new(Unconfigured),
        })
    }

    fn webhook(&self) -> Result<Webhook, GatewayError> {
        Webhook::new(
            self.webhook_url.as_deref().unwrap_or_default(),
            self.webhook_secret.as_deref().unwrap_or_default(),
            self.timeout(),
        )
    }
}

/// `http://localhost:8080`, `http://127.0.0.1:…`, `http://[::1]`: only this machine.
fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The gateway the settings describe. "simulator" means the real ntfy / Twilio clients
/// pointed at this server's own `/sim/ntfy` and `/sim/twilio` (see `crate::sim`), so the
/// simulator is reached through the production code path and real HTTP.
pub fn build(
    settings: &GatewaySettings,
    public_base_url: &str,
) -> Result<Arc<dyn Gateway>, GatewayError> {
    settings
        .validate()
        .map_err(|e| GatewayError::Config(format!("mfa.gateway.{e}")))?;
    let base = public_base_url.trim_end_matches('/');
    Ok(Arc::new(Composite {
        push: settings.push_gateway(base)?,
        voice_sms: settings.voice_sms_gateway(base)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> GatewaySettings {
        match toml::from_str(toml_text) {
            Ok(s) => s,
            Err(e) => panic!("settings should parse: {e}"),
        }
    }

    fn bad_key(s: &GatewaySettings) -> String {
        match s.validate() {
            Err(e) => e.split(':').next().unwrap_or_default().to_owned(),
            Ok(()) => panic!("expected an error"),
        }
    }

    #[test]
    fn validation_names_the_missing_key() {
        let s = parse("push = \"ntfy\"\nvoice_sms = \"simulator\"");
        assert_eq!(bad_key(&s), "ntfy_url");
        let s = parse(
            "push = \"simulator\"\nvoice_sms = \"twilio\"\ntwilio_account_sid = \"AC1\"\ntwilio_auth_token = \"t\"",
        );
        assert_eq!(bad_key(&s), "twilio_from");
        let s = parse(
            "push = \"simulator\"\nvoice_sms = \"twilio\"\ntwilio_account_sid = \"AC1\"\ntwilio_auth_token = \"t\"\ntwilio_from = \"5550100\"",
        );
        assert_eq!(bad_key(&s), "twilio_from");
        let s = parse(
            "push = \"webhook\"\nvoice_sms = \"simulator\"\nwebhook_url = \"https://relay\"\nwebhook_secret = \"short\"",
        );
        assert_eq!(bad_key(&s), "webhook_secret");
        let s = parse("push = \"ntfy\"\nvoice_sms = \"simulator\"\nntfy_url = \"ftp://x\"");
        assert_eq!(bad_key(&s), "ntfy_url");
        assert!(
            toml::from_str::<GatewaySettings>("push = \"pager\"\nvoice_sms = \"twilio\"").is_err()
        );
        assert!(
            parse("push = \"simulator\"\nvoice_sms = \"simulator\"")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = parse(
            "push = \"ntfy\"\nvoice_sms = \"twilio\"\nntfy_url = \"https://n\"\nntfy_token = \"tk_SECRET1\"\ntwilio_account_sid = \"AC1\"\ntwilio_auth_token = \"SECRET2\"\ntwilio_from = \"+15550100\"\nwebhook_secret = \"SECRET3\"",
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(s.twilio_auth_token(), Some("SECRET2"));
        assert_eq!(s.push_server_url("https://idp"), "https://n");
    }

    #[test]
    fn e164() {
        assert!(is_e164("+15550100230"));
        assert!(!is_e164("15550100230"));
        assert!(!is_e164("+0555"));
        assert!(!is_e164("+1555010023012345"));
        assert!(!is_e164("+1 555"));
    }
}
