//! A user's MFA registration (phones, push devices, OATH tokens, PIN, block state), stored as `reg:<user>`.
//!
//! The record is JSON so an operator can read it; OATH secrets inside it are sealed with the
//! node key (`secrets::SecretBox`) and bound to `<lower-cased username>/<token id>`, so a
//! secret copied into another user's record does not open. Every field has a serde default,
//! so records written by older versions keep loading.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Method;
use super::oath::OathParams;
use super::secrets::{Sealed, SecretBox, SecretError, random_bytes};
use crate::directory::UserInfo;
use crate::store::{self, Store, StoreError};

pub fn key(username: &str) -> String {
    format!("reg:{}", username.to_lowercase())
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Registration {
    pub username: String,
    /// The user's own choice; `None` means the company default applies.
    pub default_method: Option<Method>,
    /// Enrolled phones, and directory phones if a sync copied them here (see `all_phones`).
    pub phones: Vec<Phone>,
    pub push_devices: Vec<PushDevice>,
    pub tokens: Vec<OathToken>,
    /// argon2id PHC string of the PIN (PIN mode); never the PIN.
    pub pin_hash: Option<String>,
    /// When the PIN was chosen, for the PIN expiry policy.
    pub pin_set_at: Option<i64>,
    /// Unix time until which the second factor is refused (fraud report, lockout).
    pub blocked_until: Option<i64>,
    pub block_reason: Option<String>,
    /// Denied / failed second factors since the last success, for the MFA lockout.
    pub mfa_denials: u32,
    /// Typed codes (app, hardware token, text) are refused until then after too many wrong
    /// ones (`mfa::lockout`); kept after it passes, so the next lock can grow.
    pub codes_locked_until: Option<i64>,
    /// Code locks in a row (each within a day of the last one's end), which sets the next
    /// lock's length; cleared by an admin's unblock.
    pub code_lockouts: u32,
    /// Security questions (`mfa::questions`): each question with the argon2id hash of its
    /// normalised answer.
    pub security_answers: Vec<super::questions::SecurityAnswer>,
    pub security_answers_set_at: Option<i64>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PIN hash is offline-guessable (PINs are short): keep it out of logs.
        f.debug_struct("Registration")
            .field("username", &self.username)
            .field("default_method", &self.default_method)
            .field("phones", &self.phones)
            .field("push_devices", &self.push_devices)
            .field("tokens", &self.tokens)
            .field("pin_hash", &self.pin_hash.as_ref().map(|_| "<redacted>"))
            .field("pin_set_at", &self.pin_set_at)
            .field("blocked_until", &self.blocked_until)
            .field("block_reason", &self.block_reason)
            .field("mfa_denials", &self.mfa_denials)
            .field("codes_locked_until", &self.codes_locked_until)
            .field("code_lockouts", &self.code_lockouts)
            .field("security_answers", &self.security_answers)
            .field("security_answers_set_at", &self.security_answers_set_at)
            .finish()
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PhoneKind {
    /// Ordered first: it can take texts as well as calls.
    #[default]
    Mobile,
    Office,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneSource {
    /// Read from a directory attribute (AD `mobile`, `telephoneNumber`, ...).
    Directory,
    /// Added by the user or an admin in Tessera.
    #[default]
    Enrolled,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Phone {
    /// E.164, e.g. `+15550100230`.
    pub number: String,
    pub kind: PhoneKind,
    pub source: PhoneSource,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushDevice {
    pub id: String,
    pub label: String,
    /// The ntfy topic the device subscribes to: 128 random bits in hex, because on ntfy
    /// knowing a topic is what lets one read (and spoof) its notifications.
    pub topic: String,
    pub created: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenKind {
    /// An authenticator app, enrolled by QR code.
    #[default]
    App,
    /// A hardware key fob, imported from the vendor's CSV.
    Hardware { serial: String },
}

impl TokenKind {
    pub fn class(&self) -> super::settings::OathKind {
        match self {
            TokenKind::App => super::settings::OathKind::App,
            TokenKind::Hardware { .. } => super::settings::OathKind::Hardware,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OathToken {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub kind: TokenKind,
    /// The shared secret, sealed with AAD `<lower-cased username>/<id>`.
    pub secret: Sealed,
    #[serde(default)]
    pub params: OathParams,
    #[serde(default)]
    pub created: i64,
}

/// The user's registration; an empty one (no methods) for a user never seen before.
pub async fn load(store: &dyn Store, username: &str) -> Result<Registration, StoreError> {
    let mut reg = store::get_json::<Registration>(store, &key(username))
        .await?
        .unwrap_or_default();
    if reg.username.is_empty() {
        reg.username = username.to_owned();
    }
    Ok(reg)
}

/// Writes the registration unconditionally (admin edits). Concurrent changes to the same
/// user, such as counting denials from two nodes, should go through [`update`].
pub async fn save(store: &dyn Store, reg: &Registration) -> Result<(), StoreError> {
    store::put_json(store, &key(&reg.username), reg, None).await
}

/// Applies `change` to the stored registration atomically (compare-and-set, retried on a
/// concurrent write), so two nodes changing one user at once both take effect. `change` may
/// run more than once and must only modify the registration. Returns the saved record and
/// what `change` returned on the run that was saved.
pub async fn update<T, F>(
    store: &dyn Store,
    username: &str,
    mut change: F,
) -> Result<(Registration, T), StoreError>
where
    F: FnMut(&mut Registration) -> T + Send,
    T: Send,
{
    let k = key(username);
    // Each retry means another writer succeeded; a farm does not change one user's record
    // dozens of times in the same instant, so hitting the bound means something is wrong.
    for _ in 0..16 {
        let old = store.get(&k).await?;
        let mut reg: Registration = match &old {
            None => Registration::default(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                key: k.clone(),
                detail: e.to_string(),
            })?,
        };
        if reg.username.is_empty() {
            reg.username = username.to_owned();
        }
        let out = change(&mut reg);
        let new = serde_json::to_vec(&reg).map_err(|e| StoreError::Corrupt {
            key: k.clone(),
            detail: e.to_string(),
        })?;
        if store
            .compare_and_set(&k, old.as_deref(), &new, None)
            .await?
        {
            return Ok((reg, out));
        }
    }
    Err(StoreError::Backend(format!(
        "registration {k}: too many concurrent updates"
    )))
}

impl Registration {
    /// The AAD that binds a sealed secret to this user and token. Lower-cased like the Store
    /// key, so `Alice` and `alice` (one directory account) open the same secrets.
    fn aad(&self, token_id: &str) -> String {
        format!("{}/{token_id}", self.username.to_lowercase())
    }

    /// A random id not yet used by a token or device of this user.
    fn fresh_id(&self) -> String {
        loop {
            let id = hex::encode(random_bytes::<8>());
            let taken = self.tokens.iter().any(|t| t.id == id)
                || self.push_devices.iter().any(|d| d.id == id);
            if !taken {
                return id;
            }
        }
    }

    /// Adds an OATH token with its secret sealed to this user; returns the token id.
    /// `params` should have passed `OathParams::validate` (codes for invalid ones never match).
    pub fn add_oath(
        &mut self,
        sb: &SecretBox,
        label: &str,
        kind: TokenKind,
        secret: &[u8],
        params: OathParams,
        now: i64,
    ) -> String {
        let id = self.fresh_id();
        let sealed = sb.seal(secret, self.aad(&id).as_bytes());
        self.tokens.push(OathToken {
            id: id.clone(),
            label: label.to_owned(),
            kind,
            secret: sealed,
            params,
            created: now,
        });
        id
    }

    /// The plaintext secret of one token. Fails if the token is unknown, or if its sealed
    /// secret was made for another user or token, or under another key.
    pub fn oath_secret(&self, sb: &SecretBox, token_id: &str) -> Result<Vec<u8>, SecretError> {
        let token = self
            .tokens
            .iter()
            .find(|t| t.id == token_id)
            .ok_or_else(|| SecretError::NoSuchToken(token_id.to_owned()))?;
        sb.open(&token.secret, self.aad(token_id).as_bytes())
    }

    /// Removes a token; `true` when it existed.
    pub fn remove_token(&mut self, token_id: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.id != token_id);
        self.tokens.len() != before
    }

    /// Adds a push device with a fresh unguessable ntfy topic and returns it.
    pub fn add_push_device(&mut self, label: &str, now: i64) -> PushDevice {
        let device = PushDevice {
            id: self.fresh_id(),
            label: label.to_owned(),
            topic: hex::encode(random_bytes::<16>()),
            created: now,
        };
        self.push_devices.push(device.clone());
        device
    }

    /// Whether this record alone holds what `m` needs: a push device, a phone (a mobile one
    /// for texts), or an OATH token. For phones that live in the directory, use
    /// [`Registration::has_method_material_with`].
    pub fn has_method_material(&self, m: Method) -> bool {
        self.material_given(m, &self.phones)
    }

    /// As [`Registration::has_method_material`], counting the user's current directory phones.
    pub fn has_method_material_with(&self, m: Method, directory: &[Phone]) -> bool {
        self.material_given(m, &self.all_phones(directory))
    }

    fn material_given(&self, m: Method, phones: &[Phone]) -> bool {
        match m {
            Method::Push => !self.push_devices.is_empty(),
            Method::Call => !phones.is_empty(),
            // A text needs a phone that can receive one.
            Method::Sms => phones.iter().any(|p| p.kind == PhoneKind::Mobile),
            Method::Oath => !self.tokens.is_empty(),
            // Whether enough of them are to questions still offered is policy
            // (`questions::usable`), checked where the policy is known.
            Method::Questions => !self.security_answers.is_empty(),
        }
    }

    /// Whether the second factor is refused at `now` (fraud report or MFA lockout).
    pub fn is_blocked(&self, now: i64) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }

    /// Whether typed codes are refused at `now` after too many wrong ones.
    pub fn codes_locked(&self, now: i64) -> bool {
        self.codes_locked_until.is_some_and(|until| now < until)
    }

    /// The phones to offer: the directory's current ones, then enrolled ones with a number not
    /// already listed; mobiles first. Directory-sourced copies kept in the record are ignored:
    /// the directory passed in is the current truth, and a number removed there (a returned
    /// company phone) must stop receiving codes.
    pub fn all_phones(&self, directory: &[Phone]) -> Vec<Phone> {
        let enrolled = self
            .phones
            .iter()
            .filter(|p| p.source == PhoneSource::Enrolled);
        mobiles_first_unique(directory.iter().chain(enrolled).cloned().collect())
    }
}

/// Stable sort mobiles first, then keep the first entry of each number (so a number listed
/// both as mobile and as office counts as a mobile).
fn mobiles_first_unique(mut phones: Vec<Phone>) -> Vec<Phone> {
    phones.sort_by_key(|p| p.kind);
    let mut seen = std::collections::HashSet::new();
    phones.retain(|p| seen.insert(p.number.clone()));
    phones
}

/// E.164 allows at most 15 digits including the country code (ITU-T E.164 §6).
const E164_MAX_DIGITS: usize = 15;
/// Fewer digits than this is an extension or a typo, not a reachable number.
const MIN_DIGITS: usize = 7;

/// Brings a phone number as people and directories write it into E.164 (`+<digits>`).
///
/// International forms (`+49 ...`, `0049 ...`, and `011 ...` from NANP) keep their own
/// country code; national forms get `default_country_code` (e.g. "1", "49") after dropping the
/// trunk prefix (a leading 0, or NANP's leading 1). Separators `space - . / ( )` are ignored.
/// Anything else (letters, extensions such as "x12") is refused, as are numbers with fewer
/// than 7 or more than 15 digits.
pub fn normalize_phone(raw: &str, default_country_code: &str) -> Option<String> {
    let cc = default_country_code.trim().trim_start_matches('+');
    let cc_ok = (1..=3).contains(&cc.len())
        && cc.bytes().all(|b| b.is_ascii_digit())
        && !cc.starts_with('0');

    let body = raw.trim();
    let (plus, body) = match body.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    // "+49 (0)30 ..." shows the national trunk 0 for local callers; it is not dialled from
    // abroad, so it is no part of the E.164 number.
    let body = if plus || body.starts_with("00") {
        body.replacen("(0)", "", 1)
    } else {
        body.to_owned()
    };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '.' | '/' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            _ => return None,
        }
    }
    if digits.len() < MIN_DIGITS {
        return None;
    }

    let e164 = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        // "00" is the international call prefix almost everywhere (ITU-T E.164 Annex A).
        rest.to_owned()
    } else if let (Some(rest), "1") = (digits.strip_prefix("011"), cc) {
        // NANP's international call prefix.
        rest.to_owned()
    } else {
        if !cc_ok {
            return None;
        }
        let national = match cc {
            // NANP: an 11-digit number starting with the trunk prefix 1.
            "1" if digits.len() == 11 => digits.strip_prefix('1').unwrap_or(&digits),
            // Italy keeps its leading 0 inside the international number.
            "39" => &digits,
            _ => digits.strip_prefix('0').unwrap_or(&digits),
        };
        format!("{cc}{national}")
    };
    // A country code never starts with 0 (E.164 §6.2.1).
    if e164.starts_with('0') || !(MIN_DIGITS..=E164_MAX_DIGITS).contains(&e164.len()) {
        return None;
    }
    Some(format!("+{e164}"))
}

/// The user's phones from the directory: the values of each configured attribute (names
/// matched lower-cased, as `UserInfo::attributes` stores them), in the order listed;
/// normalised, de-duplicated, mobiles first. An attribute whose name contains "mobile"
/// (`mobile`, `otherMobile`) gives mobiles; any other gives office phones. Only the listed
/// attributes count — not the mapped `user.mobile` / `user.telephone` — so an empty list
/// means no directory phones at all.
pub fn directory_phones(user: &UserInfo, attributes: &[String], cc: &str) -> Vec<Phone> {
    let mut raw: Vec<(PhoneKind, &str)> = Vec::new();
    for attr in attributes {
        let name = attr.to_lowercase();
        let kind = if name.contains("mobile") {
            PhoneKind::Mobile
        } else {
            PhoneKind::Office
        };
        for v in user.attributes.get(&name).into_iter().flatten() {
            raw.push((kind, v));
        }
    }
    let phones = raw
        .into_iter()
        .filter_map(|(kind, value)| {
            Some(Phone {
                number: normalize_phone(value, cc)?,
                kind,
                source: PhoneSource::Directory,
            })
        })
        .collect();
    mobiles_first_unique(phones)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::mfa::oath::Algorithm;
    use crate::store::embedded::EmbeddedStore;

    fn store() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(time::OffsetDateTime::UNIX_EPOCH));
        let s = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
        (dir, Arc::new(s))
    }

    fn sb() -> SecretBox {
        SecretBox::from_key([3u8; 32])
    }

    fn phone(number: &str, kind: PhoneKind, source: PhoneSource) -> Phone {
        Phone {
            number: number.into(),
            kind,
            source,
        }
    }

    #[tokio::test]
    async fn new_user_loads_empty_and_saves_round_trip() {
        let (_dir, s) = store();
        let reg = load(&*s, "Alice").await.unwrap();
        assert_eq!(reg.username, "Alice");
        assert!(reg.tokens.is_empty() && reg.phones.is_empty() && reg.default_method.is_none());
        assert!(
            s.get("reg:alice").await.unwrap().is_none(),
            "load must not write"
        );

        let mut reg = reg;
        reg.default_method = Some(Method::Oath);
        reg.add_oath(
            &sb(),
            "phone app",
            TokenKind::App,
            b"0123456789abcdef0123",
            OathParams::default(),
            10,
        );
        reg.phones.push(phone(
            "+15550100230",
            PhoneKind::Mobile,
            PhoneSource::Enrolled,
        ));
        reg.pin_hash = Some("$argon2id$v=19$...".into());
        save(&*s, &reg).await.unwrap();
        let json = String::from_utf8(s.get("reg:alice").await.unwrap().unwrap()).unwrap();
        assert!(json.contains("\"secret\":\"v1:"), "{json}");
        assert!(
            !json.contains("0123456789abcdef"),
            "secret stored in clear: {json}"
        );
        let back = load(&*s, "ALICE").await.unwrap();
        assert_eq!(back, reg);
        let id = &back.tokens[0].id;
        assert_eq!(
            back.oath_secret(&sb(), id).unwrap(),
            b"0123456789abcdef0123"
        );
    }

    #[tokio::test]
    async fn older_records_with_missing_fields_still_load() {
        let (_dir, s) = store();
        let sealed = serde_json::to_string(&sb().seal(b"0123456789abcdef", b"bob/t1")).unwrap();
        let old = format!(
            r#"{{"tokens":[{{"id":"t1","secret":{sealed}}}],"phones":[{{"number":"+4930123456"}}]}}"#
        );
        s.put("reg:bob", old.as_bytes(), None).await.unwrap();
        let reg = load(&*s, "bob").await.unwrap();
        assert_eq!(reg.username, "bob");
        assert_eq!(reg.tokens[0].kind, TokenKind::App);
        assert_eq!(reg.tokens[0].params, OathParams::default());
        assert_eq!(reg.phones[0].kind, PhoneKind::Mobile);
        assert_eq!(reg.phones[0].source, PhoneSource::Enrolled);
        assert_eq!(reg.mfa_denials, 0);
        assert_eq!(reg.oath_secret(&sb(), "t1").unwrap(), b"0123456789abcdef");
    }

    #[test]
    fn token_kinds_serialise_tagged() {
        let hw = TokenKind::Hardware {
            serial: "1234567".into(),
        };
        assert_eq!(
            serde_json::to_string(&hw).unwrap(),
            r#"{"type":"hardware","serial":"1234567"}"#
        );
        assert_eq!(
            serde_json::to_string(&TokenKind::App).unwrap(),
            r#"{"type":"app"}"#
        );
    }

    #[test]
    fn secrets_are_bound_to_user_and_token() {
        let sb = sb();
        let mut alice = Registration {
            username: "Alice".into(),
            ..Default::default()
        };
        let p = OathParams {
            algorithm: Algorithm::Sha256,
            digits: 8,
            period: 60,
        };
        let hw = TokenKind::Hardware {
            serial: "S1".into(),
        };
        let t1 = alice.add_oath(&sb, "fob", hw, b"alice-secret-0001", p, 5);
        let t2 = alice.add_oath(
            &sb,
            "app",
            TokenKind::App,
            b"alice-secret-0002",
            OathParams::default(),
            6,
        );
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 16);
        assert_eq!(alice.oath_secret(&sb, &t1).unwrap(), b"alice-secret-0001");
        assert_eq!(alice.oath_secret(&sb, &t2).unwrap(), b"alice-secret-0002");
        assert_eq!(alice.tokens[0].params, p);
        assert!(matches!(
            alice.oath_secret(&sb, "nope"),
            Err(SecretError::NoSuchToken(_))
        ));
        // Same account, other spelling: still opens.
        let mut same = alice.clone();
        same.username = "alice".into();
        assert!(same.oath_secret(&sb, &t1).is_ok());

        // Moving alice's token into mallory's record does not give mallory the secret.
        let mut mallory = Registration {
            username: "mallory".into(),
            ..Default::default()
        };
        mallory.tokens.push(alice.tokens[0].clone());
        assert!(matches!(
            mallory.oath_secret(&sb, &t1),
            Err(SecretError::Unseal)
        ));
        // Swapping sealed secrets between two tokens of one user fails as well.
        let mut swapped = alice.clone();
        swapped.tokens[0].secret = alice.tokens[1].secret.clone();
        assert!(swapped.oath_secret(&sb, &t1).is_err());
        // Another node key does not open it.
        assert!(
            alice
                .oath_secret(&SecretBox::from_key([4; 32]), &t1)
                .is_err()
        );

        assert!(alice.remove_token(&t1));
        assert!(!alice.remove_token(&t1));
        assert_eq!(alice.tokens.len(), 1);
    }

    #[test]
    fn debug_hides_pin_hash_and_secrets() {
        let mut reg = Registration {
            username: "a".into(),
            pin_hash: Some("$argon2id$hash".into()),
            ..Default::default()
        };
        reg.add_oath(
            &sb(),
            "app",
            TokenKind::App,
            b"super-secret-value",
            OathParams::default(),
            0,
        );
        let dbg = format!("{reg:?}");
        assert!(
            !dbg.contains("argon2id") && dbg.contains("<redacted>"),
            "{dbg}"
        );
        assert!(
            !dbg.contains("super-secret-value") && !dbg.contains("v1:"),
            "{dbg}"
        );
    }

    #[test]
    fn method_material_and_blocking() {
        let mut reg = Registration::default();
        for m in Method::ALL {
            assert!(!reg.has_method_material(m), "{m:?}");
        }
        reg.phones.push(phone(
            "+4930123456",
            PhoneKind::Office,
            PhoneSource::Enrolled,
        ));
        assert!(reg.has_method_material(Method::Call));
        assert!(
            !reg.has_method_material(Method::Sms),
            "office phones take no texts"
        );
        let dir = [phone(
            "+4917612345678",
            PhoneKind::Mobile,
            PhoneSource::Directory,
        )];
        assert!(reg.has_method_material_with(Method::Sms, &dir));
        assert!(Registration::default().has_method_material_with(Method::Call, &dir));
        let device = reg.add_push_device("Pixel", 7);
        assert_eq!(device.topic.len(), 32);
        assert!(device.topic.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(device.topic, reg.add_push_device("Other", 8).topic);
        assert!(reg.has_method_material(Method::Push));
        reg.add_oath(
            &sb(),
            "app",
            TokenKind::App,
            b"0123456789abcdef",
            OathParams::default(),
            0,
        );
        assert!(reg.has_method_material(Method::Oath));

        assert!(!reg.is_blocked(100));
        reg.blocked_until = Some(200);
        reg.block_reason = Some("fraud reported".into());
        assert!(reg.is_blocked(100));
        assert!(reg.is_blocked(199));
        assert!(!reg.is_blocked(200));
    }

    #[test]
    fn phones_normalise_to_e164() {
        let ok = [
            ("+1 555 0100 230", "49", "+15550100230"),
            ("(555) 010-0230", "1", "+15550100230"),
            ("1 (555) 010-0230", "1", "+15550100230"),
            ("011 49 30 1234567", "1", "+49301234567"),
            ("0049 30 1234567", "1", "+49301234567"),
            ("030 1234567", "49", "+49301234567"),
            ("030/123 45-67", "+49", "+49301234567"),
            ("+49 (0)30 1234567", "49", "+49301234567"),
            ("0049 (0)30 1234567", "1", "+49301234567"),
            ("06 1234 5678", "39", "+390612345678"),
            ("0612345678", "33", "+33612345678"),
            ("  +44 20.7946.0000 ", "1", "+442079460000"),
        ];
        for (raw, cc, want) in ok {
            assert_eq!(
                normalize_phone(raw, cc).as_deref(),
                Some(want),
                "{raw} / {cc}"
            );
        }
        let bad = [
            ("555-CALL-NOW", "1"),
            ("+1 555 0100 x23", "1"),
            ("123456", "1"),
            ("+1 23 45", "1"),
            ("+1234567890123456", "1"),
            ("0049 1234 5678 9012 345", "1"),
            ("1+5550100230", "1"),
            ("++15550100230", "1"),
            ("", "1"),
            ("5550100230", ""),
            ("5550100230", "1234"),
            ("+0 555 010 0230", "1"),
            ("555\u{ff10}100230", "1"),
        ];
        for (raw, cc) in bad {
            assert_eq!(normalize_phone(raw, cc), None, "{raw} / {cc}");
        }
    }

    #[test]
    fn directory_phones_are_normalised_deduplicated_mobile_first() {
        let mut user = UserInfo {
            username: "alice".into(),
            mobile: Some("0176 12345678".into()),
            telephone: Some("+49 30 1234567".into()),
            ..Default::default()
        };
        user.attributes.insert(
            "telephonenumber".into(),
            vec!["030 1234567".into(), "030 7654321".into()],
        );
        user.attributes
            .insert("mobile".into(), vec!["+49 176 12345678".into()]);
        user.attributes.insert(
            "othermobile".into(),
            vec!["not a number".into(), "0151 1111111".into()],
        );
        let attrs = vec![
            "telephoneNumber".to_owned(),
            "mobile".to_owned(),
            "otherMobile".to_owned(),
        ];
        let phones = directory_phones(&user, &attrs, "49");
        let got: Vec<(&str, PhoneKind)> =
            phones.iter().map(|p| (p.number.as_str(), p.kind)).collect();
        assert_eq!(
            got,
            [
                ("+4917612345678", PhoneKind::Mobile),
                ("+491511111111", PhoneKind::Mobile),
                ("+49301234567", PhoneKind::Office),
                ("+49307654321", PhoneKind::Office),
            ]
        );
        assert!(phones.iter().all(|p| p.source == PhoneSource::Directory));
        // An empty list means no directory phones, even with mobile / telephone mapped.
        assert!(directory_phones(&user, &[], "49").is_empty());
        // Only the listed attributes are read.
        let office_only = directory_phones(&user, &["telephoneNumber".to_owned()], "49");
        assert!(office_only.iter().all(|p| p.kind == PhoneKind::Office));
        assert_eq!(office_only.len(), 2);
        assert!(directory_phones(&UserInfo::default(), &attrs, "49").is_empty());
    }

    #[test]
    fn all_phones_merges_directory_and_enrolled() {
        let reg = Registration {
            phones: vec![
                phone("+49301234567", PhoneKind::Office, PhoneSource::Enrolled),
                phone("+15550100230", PhoneKind::Mobile, PhoneSource::Enrolled),
                // A stale copy of a number since removed from the directory.
                phone("+49309999999", PhoneKind::Mobile, PhoneSource::Directory),
            ],
            ..Default::default()
        };
        let dir = [
            phone("+49301234567", PhoneKind::Office, PhoneSource::Directory),
            phone("+4917612345678", PhoneKind::Mobile, PhoneSource::Directory),
        ];
        let got: Vec<(String, PhoneKind, PhoneSource)> = reg
            .all_phones(&dir)
            .into_iter()
            .map(|p| (p.number, p.kind, p.source))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "+4917612345678".into(),
                    PhoneKind::Mobile,
                    PhoneSource::Directory
                ),
                (
                    "+15550100230".into(),
                    PhoneKind::Mobile,
                    PhoneSource::Enrolled
                ),
                (
                    "+49301234567".into(),
                    PhoneKind::Office,
                    PhoneSource::Directory
                ),
            ]
        );
        assert_eq!(reg.all_phones(&[]).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_all_take_effect() {
        let (_dir, s) = store();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    update(&*s, "Dave", |r| {
                        r.mfa_denials += 1;
                        r.mfa_denials
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap().1);
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=8).collect::<Vec<u32>>());
        let reg = load(&*s, "dave").await.unwrap();
        assert_eq!((reg.username.as_str(), reg.mfa_denials), ("Dave", 8));
    }
}
