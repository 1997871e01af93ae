//! The admin guide at /docs agrees with the console: the same NetScaler commands (one
//! generator), our entity ID labelled for what it is, and `/dev/phone` named in the guide and
//! the start-up banner exactly when the phone simulator is on. (The README's copy of the
//! commands is checked against the generator by a unit test in `admin::netscaler`.)

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod tessera;
}

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::mfa::{code, enrol_all};
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::mfa::Method;
use tessera::mfa::gateway::{PushKind, VoiceSmsKind};
use tessera::startup::FirstRun;

const PW: &str = "Corr3ct horse!";

/// A Tessera with an admin (`carol`) and, from the repository's example files, the example
/// NetScaler gateway registered with the preset.
async fn start(simulator: bool) -> Tessera {
    let mut b = TesseraBuilder::new();
    if !simulator {
        b.config.mfa.gateway.push = PushKind::None;
        b.config.mfa.gateway.voice_sms = VoiceSmsKind::None;
    }
    let mut admin = file_user("carol", PW);
    admin.groups.push("Tessera Admins".into());
    b.add_user(&[admin]);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata");
    let read = |name: &str| std::fs::read_to_string(examples.join(name)).expect("example");
    b.add_rp(
        "netscaler-gateway",
        &read("netscaler-gateway.xml.example"),
        &read("netscaler-gateway.toml.example"),
    );
    let idp = b.start().await;
    enrol_all(&idp, "carol", Method::Oath, "+15550100231").await;
    idp
}

/// The text of the first `<pre …>` whose opening tag contains `marker`, unescaped.
fn pre(page: &str, marker: &str) -> String {
    let rest = page
        .split("<pre")
        .find(|p| p.split('>').next().is_some_and(|tag| tag.contains(marker)))
        .unwrap_or_else(|| panic!("no <pre {marker}> in {page}"));
    let body = rest.split_once('>').expect("tag end").1;
    unescape(body.split("</pre>").next().expect("pre end"))
}

async fn docs(idp: &Tessera) -> String {
    let (_, status, page) = Browser::new().get(&format!("{}/docs", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

/// carol signs in to the console and opens the relying-party page.
async fn console_rps(idp: &Tessera) -> String {
    let b = Browser::new();
    let (url, _, page) = b.get(&format!("{}/admin", idp.base)).await;
    let flow = input_value(&page, "flow").expect("console flow");
    b.sign_in(&url, &page, "carol", PW).await;
    let now = idp.state.clock.unix();
    let (_, status, page) = b
        .post(
            &format!("{}/adfs/ls/login", idp.base),
            &[("flow", &flow), ("action", "code"), ("code", &code(now))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "console sign-in: {page}");
    let (_, status, page) = b.get(&format!("{}/admin/rps", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn docs_shows_the_commands_the_console_shows() {
    let idp = start(true).await;
    let guide = docs(&idp).await;
    let in_docs = pre(&guide, "netscaler-commands");
    let in_console = pre(&console_rps(&idp).await, "commands");
    assert_eq!(in_docs, in_console, "/docs and the console disagree");
    // This server's own sign-in URL, the example gateway, no `exact` to trip over.
    assert!(
        in_docs.contains(&format!("-samlRedirectUrl \"{}/adfs/ls/\"", idp.base)),
        "{in_docs}"
    );
    assert!(
        in_docs.contains("-samlIssuerName \"https://gateway.corp.example\""),
        "{in_docs}"
    );
    assert!(!guide.contains("requestedAuthnContext exact"), "{guide}");
    let guide = unescape(&guide);
    assert!(!guide.contains("samlIssuerName on the IdP side"), "{guide}");
    assert!(
        guide.contains("not the NetScaler's samlIssuerName"),
        "our entity ID is labelled for what it is: {guide}"
    );
}

#[tokio::test]
async fn dev_phone_is_named_in_docs_and_banner_only_with_the_simulator() {
    let on = start(true).await;
    assert!(
        on.state.simulator.is_some(),
        "the test set-up has the simulator on"
    );
    assert!(docs(&on).await.contains("href=\"/dev/phone\""));
    let banner = tessera::startup::banner(&on.state, &FirstRun::default(), "HTTP");
    assert!(
        banner.contains(&format!("{}/dev/phone", on.base)),
        "{banner}"
    );
    let (_, status, _) = Browser::new().get(&format!("{}/dev/phone", on.base)).await;
    assert_eq!(status, StatusCode::OK, "the page the banner names is there");

    let off = start(false).await;
    assert!(off.state.simulator.is_none());
    assert!(!docs(&off).await.contains("/dev/phone"));
    let banner = tessera::startup::banner(&off.state, &FirstRun::default(), "HTTP");
    assert!(!banner.contains("/dev/phone"), "{banner}");
    assert!(banner.contains(&format!("{}/docs", off.base)), "{banner}");
}
