//! MFA test helpers: seed a user's registration, read the simulated phone, wait for it.

#![allow(dead_code)]

use std::time::Duration;

use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at};
use tessera::mfa::registration::{self, Phone, PhoneKind, PhoneSource, TokenKind};
use tessera::sim::inbox::Inbox;

use super::tessera::Tessera;

/// A 20-byte TOTP secret the tests compute codes from.
pub const SECRET: &[u8] = b"12345678901234567890";

/// Gives `user` a push device, a mobile phone and an authenticator app; `default` first.
/// Returns the push topic.
pub async fn enrol_all(idp: &Tessera, user: &str, default: Method, phone: &str) -> String {
    enrol(
        idp.state.store.as_ref(),
        &idp.state.secrets,
        user,
        default,
        phone,
    )
    .await
}

/// `enrol_all` straight into a store, sealed with `secrets` (a farm's shared mfa.key).
pub async fn enrol(
    store: &dyn tessera::store::Store,
    secrets: &tessera::mfa::secrets::SecretBox,
    user: &str,
    default: Method,
    phone: &str,
) -> String {
    let (_, topic) = registration::update(store, user, |r| {
        r.default_method = Some(default);
        r.phones = vec![Phone {
            number: phone.to_owned(),
            kind: PhoneKind::Mobile,
            source: PhoneSource::Enrolled,
        }];
        r.tokens.clear();
        r.add_oath(
            secrets,
            "Authenticator app",
            TokenKind::App,
            SECRET,
            OathParams::default(),
            0,
        );
        r.push_devices.clear();
        r.add_push_device("Test phone", 0).topic
    })
    .await
    .expect("seed registration");
    topic
}

/// The TOTP code for `unix` time.
pub fn code(unix: i64) -> String {
    code_at(SECRET, &OathParams::default(), unix)
}

pub fn inbox(idp: &Tessera) -> Inbox {
    idp.state
        .simulator
        .as_ref()
        .expect("simulator gateway")
        .snapshot()
}

/// Polls `f` until it yields (the simulator delivers asynchronously, like a carrier).
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The newest text message the simulator delivered to `number`, waiting for one.
#[allow(dead_code)] // not every test binary that includes this module reads texts
pub async fn last_text_to(idp: &Tessera, number: &str) -> String {
    wait_for(&format!("a text to {number}"), || {
        inbox(idp)
            .texts
            .iter()
            .rev()
            .find(|t| t.to == number)
            .map(|t| t.body.clone())
    })
    .await
}
