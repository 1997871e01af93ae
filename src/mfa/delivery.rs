//! The one place that starts a second factor on a delivery gateway: a push, a call or a text, for a sign-in, an enrollment or an admin's test.
//!
//! [`start`] checks the destination (a push topic, a phone number brought into E.164), stores
//! the pending [`Challenge`] (`chal:<id>`, and `smsin:<phone>` for a two-way text) and hands
//! the message to the [`Gateway`]; it answers with the challenge, or with why nothing could
//! be delivered ([`Refused`]). [`test`] sends the console's test push, text or call.
//!
//! It depends on nothing above `mfa`: callers hand it a [`Sender`] (gateway, store, token
//! signer, the time, our public URL, our display name) and a [`Purpose`].
//! - The login state machine (`login::second_factor::begin`) starts a sign-in's push, call or
//!   text with `Purpose::SignIn`; inline enrollment (`login::enroll`) sends the confirming
//!   text or push with `Purpose::Enroll`.
//! - The console's "send a test" (`web::admin`) calls [`test`]. It is not a `Purpose`: it
//!   stores no challenge and nobody answers it, so it shares the destination checks and the
//!   gateway, not the challenge.
//! - The self-service portal will do as enrollment does: build a `Sender` from `AppContext`
//!   and the policy in force (as the console does), call [`start`] with `Channel::Text` or
//!   `Channel::Push` and `Purpose::Enroll { flow_id: <the portal's enrollment id> }`, keep the
//!   returned challenge's id (and `phone`, the number in E.164) beside the pending change,
//!   and confirm it as `login::enroll` does (the typed code, or the approved push).
//!
//! What reaches the phone is in the language of the page that asked for it (`Sender::lang`,
//! kept in the challenge so the call's script and the button answers follow): the texts are
//! catalogue message ids (`locales/*.toml`), filled in here. The console's test stays English.

use std::time::Duration;

use openssl::error::ErrorStack;

use super::challenge::{self, Action, TokenSigner, hmac_hex};
use super::gateway::{CallRequest, Gateway, GatewayError, PushAction, PushMessage, SmsMessage};
use super::registration::normalize_phone;
use super::secrets::SecretBox;
use super::settings::{MfaSettings, SmsMode};
use super::{Challenge, ChallengeStatus, Method, mask_phone};
use crate::i18n::{Catalogue, Lang, msgid};
use crate::store::{Store, StoreError};

/// How a challenge reaches the user: the methods a gateway delivers (OATH codes need none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Push,
    Call,
    Text,
}

impl Channel {
    /// The channel that delivers `method`; `None` for a code the user's own app makes.
    pub fn of(method: Method) -> Option<Channel> {
        match method {
            Method::Push => Some(Channel::Push),
            Method::Call => Some(Channel::Call),
            Method::Sms => Some(Channel::Text),
            Method::Oath | Method::Questions => None,
        }
    }

    pub fn method(self) -> Method {
        match self {
            Channel::Push => Method::Push,
            Channel::Call => Method::Call,
            Channel::Text => Method::Sms,
        }
    }

    /// The console's names: `push`, `sms`, `call`.
    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Push, Channel::Call, Channel::Text]
            .into_iter()
            .find(|c| c.method().as_str() == s)
    }
}

/// What a challenge is for. Both kinds are stored under the flow that waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// A sign-in's second factor; a text follows the company's `mfa.sms_mode`.
    SignIn { flow_id: &'a str },
    /// Confirming a new phone or push device; a text always carries a code to type, since
    /// the number is not registered yet and a reply could not be matched to it.
    Enroll { flow_id: &'a str },
}

impl Purpose<'_> {
    fn flow_id(&self) -> &str {
        match self {
            Purpose::SignIn { flow_id } | Purpose::Enroll { flow_id } => flow_id,
        }
    }
}

/// What delivery needs from the outside world; callers build it from their own context.
pub struct Sender<'a> {
    pub gateway: &'a dyn Gateway,
    pub store: &'a dyn Store,
    /// Signs the one-time callback URLs in pushes and calls.
    pub tokens: &'a TokenSigner,
    /// Derives the key texted codes are stored under (`code_key`).
    pub secrets: &'a SecretBox,
    /// The policy in force: wait times, number matching, text mode, default country code.
    pub mfa: &'a MfaSettings,
    /// Unix time now: the challenge's start, from which its deadline counts.
    pub now: i64,
    /// Our public URL, for the callback links in pushes and calls.
    pub public_base: &'a str,
    /// The identity provider's display name, which messages are signed with.
    pub display_name: &'a str,
    /// The language of the page the user is on; what reaches the phone is in it.
    pub lang: Lang,
    /// The translations (`AppContext::catalogue`).
    pub catalogue: &'a Catalogue,
}

impl Sender<'_> {
    /// `english` (a catalogue message id) in the user's language, placeholders filled.
    fn say(&self, english: &str, args: &[(&str, &str)]) -> String {
        self.catalogue.text(self.lang, english, args)
    }
}

/// Why nothing was delivered.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The gateway failed or refused; the user can pick another method.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Not a push topic / phone number this channel can reach; nothing was stored or sent.
    #[error("invalid destination for {}", .0.method().as_str())]
    Destination(Channel),
    /// The store failed; nothing was sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed: no unguessable id or code can be made now.
    #[error("random generator failed: {0}")]
    Random(#[from] ErrorStack),
}

/// Starts a challenge for `username` on `channel` to `to` (a topic, or a phone number as
/// typed or registered), stored for `purpose`'s flow; the pending challenge when the gateway
/// took it.
pub async fn start(
    s: &Sender<'_>,
    channel: Channel,
    to: &str,
    username: &str,
    purpose: Purpose<'_>,
) -> Result<Challenge, Refused> {
    let to = destination(s, channel, to)?;
    match channel {
        Channel::Push => push(s, &to, username, purpose).await,
        Channel::Call => call(s, &to, username, purpose).await,
        Channel::Text => text(s, &to, username, purpose).await,
    }
}

/// The console's test: one push, text or call through the gateway in force, with nothing
/// to answer. `channel` is the form's `push`, `sms` or `call`; the answer is what the console
/// shows, whether it was sent or not.
pub async fn test(s: &Sender<'_>, admin: &str, channel: &str, to: &str) -> Result<String, String> {
    let Some(channel) = Channel::parse(channel) else {
        return Err("Choose push, text or call.".into());
    };
    send_test(s, admin, channel, to).await.map_err(|e| match e {
        Refused::Destination(Channel::Push) => {
            "A push test needs an ntfy topic: 1 to 64 letters, digits, - or _.".into()
        }
        Refused::Destination(_) => {
            let shown: String = to.chars().take(40).collect();
            format!("`{shown}` is not a phone number.")
        }
        Refused::Gateway(e) => {
            let noun = match channel {
                Channel::Push => "push",
                Channel::Call => "call",
                Channel::Text => "text",
            };
            format!("The {noun} gateway failed: {e}")
        }
        e @ (Refused::Store(_) | Refused::Random(_)) => format!("Nothing was sent: {e}"),
    })
}

async fn send_test(
    s: &Sender<'_>,
    admin: &str,
    channel: Channel,
    to: &str,
) -> Result<String, Refused> {
    let to = destination(s, channel, to)?;
    let name = s.display_name;
    match channel {
        Channel::Push => {
            let m = PushMessage {
                topic: to.clone(),
                title: format!("{name} test"),
                body: format!("A test notification sent by {admin}."),
                actions: Vec::new(),
                lang: Lang::En,
            };
            s.gateway.push(&m).await?;
            Ok(format!("Test push sent to topic {to}."))
        }
        Channel::Text => {
            let m = SmsMessage {
                to: to.clone(),
                body: format!("{name}: a test message sent by {admin}."),
                lang: Lang::En,
            };
            s.gateway.sms(&m).await?;
            Ok(format!("Test text sent to {to}."))
        }
        Channel::Call => {
            // The call fetches its script from us, like a sign-in call, under a token of its
            // own (no challenge behind it).
            let base = s.public_base;
            let token = s.tokens.token(&random_hex(8)?, Action::TestCall);
            let c = CallRequest {
                to: to.clone(),
                voice_url: format!("{base}/mfa/voice/test/{token}"),
                status_url: format!("{base}/mfa/voice/test-status/{token}"),
                lang: Lang::En,
            };
            s.gateway.call(&c).await?;
            Ok(format!("Test call placed to {to}."))
        }
    }
}

/// The destination as the gateway wants it: an ntfy topic as given, a phone in E.164.
fn destination(s: &Sender<'_>, channel: Channel, to: &str) -> Result<String, Refused> {
    let valid = match channel {
        Channel::Push => topic_ok(to).then(|| to.to_owned()),
        Channel::Call | Channel::Text => normalize_phone(to, &s.mfa.default_country_code),
    };
    valid.ok_or(Refused::Destination(channel))
}

/// ntfy topics: 1 to 64 letters, digits, `-` or `_`.
fn topic_ok(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A pending challenge for `purpose`'s flow that the page waits on for `wait_secs`.
fn pending(
    s: &Sender<'_>,
    channel: Channel,
    username: &str,
    purpose: Purpose<'_>,
    wait_secs: u32,
) -> Result<Challenge, Refused> {
    Ok(Challenge {
        id: random_hex(16)?,
        flow_id: purpose.flow_id().to_owned(),
        username: username.to_owned(),
        method: channel.method(),
        status: ChallengeStatus::Pending,
        created: s.now,
        deadline: s.now + i64::from(wait_secs),
        number: None,
        code_hash: None,
        destination: None,
        phone: None,
        lang: s.lang,
    })
}

/// Kept ten minutes past the deadline, so a late answer still finds it (and is refused).
fn challenge_ttl(c: &Challenge, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(c.deadline - now).unwrap_or(0) + 600)
}

/// A push with approve / deny / report-fraud buttons whose URLs carry signed tokens.
async fn push(
    s: &Sender<'_>,
    topic: &str,
    username: &str,
    purpose: Purpose<'_>,
) -> Result<Challenge, Refused> {
    let mut c = pending(s, Channel::Push, username, purpose, s.mfa.timeout_secs)?;
    c.destination = Some("your mobile app".into());
    let actions = push_actions(s, &mut c)?;
    challenge::create(s.store, &c, challenge_ttl(&c, s.now)).await?;
    let body = match c.number {
        Some(_) => "Sign-in request for {user}. Tap the number shown on the sign-in page.",
        None => "Sign-in request for {user}. Approve if it was you.",
    };
    let msg = PushMessage {
        topic: topic.to_owned(),
        title: s.say(msgid("{name} sign-in"), &[("name", s.display_name)]),
        body: s.say(body, &[("user", username)]),
        actions,
        lang: s.lang,
    };
    s.gateway.push(&msg).await?;
    Ok(c)
}

/// The push's buttons; with number matching, sets the number the page shows.
fn push_actions(s: &Sender<'_>, c: &mut Challenge) -> Result<Vec<PushAction>, Refused> {
    let url = |a: Action| {
        format!(
            "{}/mfa/callback/{}",
            s.public_base,
            s.tokens.token(&c.id, a)
        )
    };
    let mut actions = Vec::new();
    if s.mfa.number_matching {
        // The page shows one number; the phone offers it beside a decoy (MFA-fatigue defence).
        // ntfy shows at most three buttons: two numbers and "Deny and report fraud".
        let mut choices = distinct_numbers(2)?;
        let number = choices.first().copied();
        choices.sort_unstable();
        for n in choices {
            actions.push(PushAction {
                label: n.to_string(),
                url: format!("{}?n={n}", url(Action::Approve)),
            });
        }
        actions.push(fraud_action(s, url(Action::Fraud)));
        c.number = number;
        return Ok(actions);
    }
    actions.push(PushAction {
        label: s.say(msgid("Approve"), &[]),
        url: url(Action::Approve),
    });
    actions.push(PushAction {
        label: s.say(msgid("Deny"), &[]),
        url: url(Action::Deny),
    });
    actions.push(fraud_action(s, url(Action::Fraud)));
    Ok(actions)
}

fn fraud_action(s: &Sender<'_>, url: String) -> PushAction {
    PushAction {
        label: s.say(msgid("Deny and report fraud"), &[]),
        url,
    }
}

/// `n` different two-digit numbers (10 to 99).
fn distinct_numbers(n: usize) -> Result<Vec<u8>, ErrorStack> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut b = [0u8; 1];
        openssl::rand::rand_bytes(&mut b)?;
        let v = 10 + b[0] % 90;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

/// A call whose script (press # to approve) and status report come back under signed tokens.
async fn call(
    s: &Sender<'_>,
    phone: &str,
    username: &str,
    purpose: Purpose<'_>,
) -> Result<Challenge, Refused> {
    let mut c = pending(s, Channel::Call, username, purpose, s.mfa.timeout_secs)?;
    c.destination = Some(mask_phone(phone));
    c.phone = Some(phone.to_owned());
    challenge::create(s.store, &c, challenge_ttl(&c, s.now)).await?;
    let token = |a: Action| s.tokens.token(&c.id, a);
    let req = CallRequest {
        to: phone.to_owned(),
        voice_url: format!("{}/mfa/voice/{}", s.public_base, token(Action::Digits)),
        status_url: format!(
            "{}/mfa/voice/status/{}",
            s.public_base,
            token(Action::Status)
        ),
        lang: s.lang,
    };
    s.gateway.call(&req).await?;
    Ok(c)
}

/// A text with a one-time code: typed into the page (one-way) or replied (two-way).
async fn text(
    s: &Sender<'_>,
    phone: &str,
    username: &str,
    purpose: Purpose<'_>,
) -> Result<Challenge, Refused> {
    let mode = match purpose {
        Purpose::SignIn { .. } => s.mfa.sms_mode,
        Purpose::Enroll { .. } => SmsMode::OneWay,
    };
    let wait = match mode {
        SmsMode::OneWay => s.mfa.sms_code_lifetime_secs,
        SmsMode::TwoWay => s.mfa.timeout_secs,
    };
    let mut c = pending(s, Channel::Text, username, purpose, wait)?;
    let code = six_digits()?;
    c.code_hash = Some(code_mac(&code_key(s.secrets), &c.id, &code));
    c.destination = Some(mask_phone(phone));
    c.phone = Some(phone.to_owned());
    let ttl = challenge_ttl(&c, s.now);
    challenge::create(s.store, &c, ttl).await?;
    let minutes = (s.mfa.sms_code_lifetime_secs / 60).to_string();
    let args = [
        ("name", s.display_name),
        ("code", code.as_str()),
        ("minutes", minutes.as_str()),
    ];
    let body = match mode {
        SmsMode::OneWay => {
            "Your {name} verification code is {code}. It expires in {minutes} minutes."
        }
        SmsMode::TwoWay => {
            s.store
                .put(&sms_inbound_key(phone), c.id.as_bytes(), Some(ttl))
                .await?;
            msgid("{name} sign-in: reply with {code} to approve.")
        }
    };
    let msg = SmsMessage {
        to: phone.to_owned(),
        body: s.say(body, &args),
        lang: s.lang,
    };
    s.gateway.sms(&msg).await?;
    Ok(c)
}

fn six_digits() -> Result<String, ErrorStack> {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(format!("{:06}", u32::from_le_bytes(b) % 1_000_000))
}

/// `n` random bytes, hex; an error (not a panic, not zeros) when the generator fails.
pub fn random_hex(n: usize) -> Result<String, ErrorStack> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf)?;
    Ok(hex::encode(buf))
}

/// The key texted codes are MACed under.
pub fn code_key(secrets: &SecretBox) -> [u8; 32] {
    secrets.derive("sms-code")
}

/// The MAC stored instead of an SMS code: the Store never holds a usable code.
pub fn code_mac(key: &[u8], challenge_id: &str, code: &str) -> String {
    hmac_hex(key, &format!("{challenge_id}:{code}"))
}

/// Two-way texts: which challenge a reply from `phone` answers.
pub fn sms_inbound_key(phone: &str) -> String {
    format!("smsin:{phone}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::mfa::gateway::{GatewaySettings, Unconfigured, build};
    use crate::sim::{SimConfig, SimState};
    use crate::store::embedded::EmbeddedStore;

    const PHONE: &str = "+15550100230";
    const NOW: i64 = 1_700_000_000;

    /// What a `Sender` borrows, owned by the test.
    struct World {
        _dir: tempfile::TempDir,
        store: EmbeddedStore,
        tokens: TokenSigner,
        secrets: SecretBox,
        mfa: MfaSettings,
        gateway: Arc<dyn Gateway>,
        catalogue: Catalogue,
        lang: Lang,
    }

    impl World {
        fn new(gateway: Arc<dyn Gateway>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let at = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
            let store =
                EmbeddedStore::open(&dir.path().join("s.redb"), Arc::new(FixedClock::new(at)))
                    .unwrap();
            World {
                _dir: dir,
                store,
                tokens: TokenSigner::new(b"callback key"),
                secrets: SecretBox::from_key([5u8; 32]),
                mfa: MfaSettings::default(),
                gateway,
                catalogue: Catalogue::embedded().unwrap(),
                lang: Lang::En,
            }
        }

        fn sender(&self) -> Sender<'_> {
            Sender {
                gateway: self.gateway.as_ref(),
                store: &self.store,
                tokens: &self.tokens,
                secrets: &self.secrets,
                mfa: &self.mfa,
                now: NOW,
                public_base: "https://idp.example",
                display_name: "Contoso",
                lang: self.lang,
                catalogue: &self.catalogue,
            }
        }
    }

    /// The simulator on a local port, and the production clients (ntfy, Twilio) pointed at it.
    async fn simulator() -> (SimState, Arc<dyn Gateway>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sim = SimState::new(SimConfig {
            twilio_auth_token: "test-auth-token-0123".into(),
            inbound_sms_url: format!("{base}/mfa/sms/inbound"),
        })
        .unwrap();
        let app: axum::Router = crate::sim::router(sim.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let settings: GatewaySettings = toml::from_str(
            "push = \"simulator\"\nvoice_sms = \"simulator\"\n\
             twilio_account_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
             twilio_from = \"+15005550006\"\ntwilio_auth_token = \"test-auth-token-0123\"\n\
             timeout_secs = 5\n",
        )
        .unwrap();
        (sim, build(&settings, &base).unwrap())
    }

    const SIGN_IN: Purpose<'static> = Purpose::SignIn { flow_id: "flow1" };

    #[tokio::test]
    async fn bad_destinations_are_refused_before_anything_is_stored_or_sent() {
        // The unconfigured gateway fails every delivery: a Destination refusal proves the
        // gateway was never asked.
        let w = World::new(Arc::new(Unconfigured));
        let s = w.sender();
        for (channel, to) in [
            (Channel::Text, "not a number"),
            (Channel::Call, "12"),
            (Channel::Push, ""),
            (Channel::Push, "topic with spaces"),
            (Channel::Push, &"x".repeat(65)),
        ] {
            let r = start(&s, channel, to, "alice", SIGN_IN).await;
            assert!(
                matches!(r, Err(Refused::Destination(c)) if c == channel),
                "{channel:?} {to:?}: {r:?}"
            );
        }
        assert!(w.store.keys("chal:").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failing_gateway_is_reported_with_its_error_after_the_challenge_is_stored() {
        let w = World::new(Arc::new(Unconfigured));
        let r = start(&w.sender(), Channel::Call, PHONE, "alice", SIGN_IN).await;
        let Err(e @ Refused::Gateway(_)) = r else {
            panic!("{r:?}")
        };
        // The audit reason is the gateway's own words, as before delivery had a module.
        assert_eq!(
            e.to_string(),
            "gateway configuration: no voice gateway configured (mfa.gateway.voice_sms)"
        );
        assert_eq!(w.store.keys("chal:").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_sign_in_text_reaches_the_simulated_phone_with_a_code_only_its_mac_is_kept_of() {
        let (sim, gateway) = simulator().await;
        let w = World::new(gateway);
        // As typed by a user: delivery brings it into E.164.
        let c = start(
            &w.sender(),
            Channel::Text,
            "+1 555 0100 230",
            "alice",
            SIGN_IN,
        )
        .await
        .unwrap();
        assert_eq!(
            (c.flow_id.as_str(), c.method, c.phone.as_deref()),
            ("flow1", Method::Sms, Some(PHONE))
        );
        assert_eq!(c.destination.as_deref(), Some("+X XXXXXXXX30"));
        assert_eq!(
            c.deadline,
            NOW + i64::from(w.mfa.sms_code_lifetime_secs),
            "one-way by default: the code's lifetime"
        );
        let stored = challenge::load(&w.store, &c.id).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&c));

        let text = sim.snapshot().texts.pop_back().expect("a text");
        assert_eq!(text.to, PHONE);
        let code: String = text
            .body
            .split_whitespace()
            .find(|t| t.len() == 7 && t.ends_with('.'))
            .map(|t| t.trim_end_matches('.').to_owned())
            .expect("a six-digit code in the text");
        assert!(text.body.starts_with("Your Contoso verification code is "));
        let mac = code_mac(&code_key(&w.secrets), &c.id, &code);
        assert_eq!(c.code_hash.as_deref(), Some(mac.as_str()));
        assert!(!text.body.contains(&c.id));
    }

    #[tokio::test]
    async fn two_way_texts_are_for_sign_in_only_enrollment_always_asks_for_the_code() {
        let (sim, gateway) = simulator().await;
        let mut w = World::new(gateway);
        w.mfa.sms_mode = SmsMode::TwoWay;
        let c = start(&w.sender(), Channel::Text, PHONE, "alice", SIGN_IN)
            .await
            .unwrap();
        assert_eq!(c.deadline, NOW + i64::from(w.mfa.timeout_secs));
        let reply_to = w.store.get(&sms_inbound_key(PHONE)).await.unwrap();
        assert_eq!(reply_to.as_deref(), Some(c.id.as_bytes()));
        let text = sim.snapshot().texts.pop_back().expect("a text");
        assert!(
            text.body.starts_with("Contoso sign-in: reply with "),
            "{}",
            text.body
        );

        w.store.delete(&sms_inbound_key(PHONE)).await.unwrap();
        let purpose = Purpose::Enroll { flow_id: "flow3" };
        let c = start(&w.sender(), Channel::Text, PHONE, "alice", purpose)
            .await
            .unwrap();
        assert_eq!(c.deadline, NOW + i64::from(w.mfa.sms_code_lifetime_secs));
        assert!(
            w.store
                .get(&sms_inbound_key(PHONE))
                .await
                .unwrap()
                .is_none()
        );
        let text = sim.snapshot().texts.pop_back().expect("a text");
        assert!(
            text.body.starts_with("Your Contoso verification code is "),
            "{}",
            text.body
        );
    }

    #[tokio::test]
    async fn a_push_with_number_matching_offers_the_page_number_and_a_decoy() {
        let (sim, gateway) = simulator().await;
        let mut w = World::new(gateway);
        w.mfa.number_matching = true;
        let purpose = Purpose::Enroll { flow_id: "flow2" };
        let c = start(&w.sender(), Channel::Push, "abc123", "bob", purpose)
            .await
            .unwrap();
        let shown = c.number.expect("a number for the page");
        let push = sim.snapshot().pushes.pop_back().expect("a push");
        assert_eq!(
            (push.topic.as_str(), push.title.as_str()),
            ("abc123", "Contoso sign-in")
        );
        let labels: Vec<&str> = push.actions.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert!(labels.contains(&shown.to_string().as_str()));
        assert_eq!(labels[2], "Deny and report fraud");
        assert_ne!(labels[0], labels[1]);
    }

    #[tokio::test]
    async fn what_reaches_the_phone_is_in_the_pages_language_and_the_challenge_keeps_it() {
        let (sim, gateway) = simulator().await;
        let mut w = World::new(gateway);
        w.lang = Lang::Es;
        let c = start(&w.sender(), Channel::Text, PHONE, "alice", SIGN_IN)
            .await
            .unwrap();
        assert_eq!(c.lang, Lang::Es);
        let stored = challenge::load(&w.store, &c.id).await.unwrap();
        assert_eq!(stored.map(|c| c.lang), Some(Lang::Es));
        let text = sim.snapshot().texts.pop_back().expect("a text");
        let minutes = w.mfa.sms_code_lifetime_secs / 60;
        assert!(
            text.body
                .starts_with("Su código de verificación de Contoso es ")
                && text
                    .body
                    .ends_with(&format!(". Caduca en {minutes} minutos.")),
            "{}",
            text.body
        );

        w.lang = Lang::Nl;
        w.mfa.sms_mode = SmsMode::TwoWay;
        start(&w.sender(), Channel::Text, PHONE, "alice", SIGN_IN)
            .await
            .unwrap();
        let text = sim.snapshot().texts.pop_back().expect("a text");
        assert!(
            text.body
                .starts_with("Aanmelden bij Contoso: antwoord met "),
            "{}",
            text.body
        );

        let c = start(&w.sender(), Channel::Push, "abc123", "bob", SIGN_IN)
            .await
            .unwrap();
        assert_eq!(c.lang, Lang::Nl);
        let push = sim.snapshot().pushes.pop_back().expect("a push");
        assert_eq!(push.title, "Aanmelden bij Contoso");
        assert_eq!(
            push.message,
            "Aanmeldverzoek voor bob. Keur het goed als u het was."
        );
        let labels: Vec<&str> = push.actions.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Goedkeuren", "Weigeren", "Weigeren en fraude melden"]
        );

        // A call's script is fetched later: the challenge carries the language to it.
        w.lang = Lang::Pt;
        let c = start(&w.sender(), Channel::Call, PHONE, "alice", SIGN_IN)
            .await
            .unwrap();
        assert_eq!(c.lang, Lang::Pt);
    }

    #[tokio::test]
    async fn challenges_stored_before_languages_read_as_english() {
        let w = World::new(Arc::new(Unconfigured));
        let c = pending(&w.sender(), Channel::Push, "alice", SIGN_IN, 60).unwrap();
        let mut json = serde_json::to_value(&c).unwrap();
        json.as_object_mut().unwrap().remove("lang");
        let old: Challenge = serde_json::from_value(json).unwrap();
        assert_eq!(old.lang, Lang::En);
    }

    #[tokio::test]
    async fn console_tests_say_what_was_sent_or_why_not() {
        let (sim, gateway) = simulator().await;
        let w = World::new(gateway);
        let s = w.sender();
        assert_eq!(
            test(&s, "admin", "fax", PHONE).await,
            Err("Choose push, text or call.".into())
        );
        assert_eq!(
            test(&s, "admin", "push", "no spaces please").await,
            Err("A push test needs an ntfy topic: 1 to 64 letters, digits, - or _.".into())
        );
        assert_eq!(
            test(&s, "admin", "call", "call me").await,
            Err("`call me` is not a phone number.".into())
        );
        assert_eq!(
            test(&s, "admin", "sms", PHONE).await,
            Ok(format!("Test text sent to {PHONE}."))
        );
        let text = sim.snapshot().texts.pop_back().expect("a text");
        assert_eq!(text.body, "Contoso: a test message sent by admin.");
        // The console is English whatever language a sign-in page was in.
        let mut german = World::new(w.gateway.clone());
        german.lang = Lang::De;
        assert!(
            test(&german.sender(), "admin", "push", "topic1")
                .await
                .is_ok()
        );
        let push = sim.snapshot().pushes.pop_back().expect("a push");
        assert_eq!(push.title, "Contoso test");
        let broken = World::new(Arc::new(Unconfigured));
        assert_eq!(
            test(&broken.sender(), "admin", "push", "topic1").await,
            Err("The push gateway failed: gateway configuration: no push gateway configured (mfa.gateway.push)".into())
        );
    }
}
