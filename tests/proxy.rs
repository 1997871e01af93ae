//! Tessera behind a load balancer, over real HTTP: the client a trusted proxy names is the one
//! the sign-in log, the soft lockout and trusted networks see; nobody else can name one, and
//! hostile forwarded headers cost nothing but fall back to the connection's own address.
//!
//! The "proxy" is a client at 127.0.0.2 (listed in `server.trusted_proxies`) that sends the
//! headers a NetScaler LB vserver inserts; other 127.x addresses are direct clients.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::net::IpAddr;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use support::browser::{Browser, input_value};
use support::mfa::enrol_all;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::config::Config;
use tessera::mfa::Method;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const PROXY: &str = "127.0.0.2";
const TOO_MANY: &str = "Too many failed sign-in attempts";

struct Env {
    idp: Tessera,
    /// An RP that wants the second factor, and one that is password-only.
    mfa_rp: String,
    open_rp: String,
}

/// Tessera with users alice, bob and carol, 127.0.0.2 as its trusted proxy, an address
/// budget of three failures and person budgets too large to matter here.
async fn env(tweak: impl FnOnce(&mut Config)) -> Env {
    let mut b = TesseraBuilder::new();
    b.config.server.trusted_proxies = vec![PROXY.into()];
    b.config.mfa.password_failures_per_ip = 3;
    b.config.mfa.password_failures_per_user = 50;
    b.config.mfa.password_failures_familiar = 50;
    tweak(&mut b.config);
    b.add_user(&[
        file_user("alice", PW),
        file_user("bob", PW),
        file_user("carol", PW),
    ]);
    let sp = TestSp::new("app");
    b.add_rp("app", &sp.metadata(false), "");
    let open = TestSp::new("open");
    b.add_rp("open", &open.metadata(false), "mfa_required = false\n");
    Env {
        idp: b.start().await,
        mfa_rp: sp.entity_id,
        open_rp: open.entity_id,
    }
}

/// A browser at `peer` whose requests carry `X-Forwarded-For: xff` (none when `None`).
fn browser(peer: &str, xff: Option<&str>) -> Browser {
    let mut h = HeaderMap::new();
    if let Some(v) = xff {
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    Browser::from_address_with(peer.parse::<IpAddr>().expect("ip"), h)
}

fn signed_in(page: &str) -> bool {
    page.contains("name=\"SAMLResponse\"")
}

impl Env {
    /// One whole sign-in in `b` to `rp`: (flow id, status, page after the password).
    async fn attempt(
        &self,
        b: &Browser,
        rp: &str,
        user: &str,
        pw: &str,
    ) -> (String, StatusCode, String) {
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={rp}",
            self.idp.base
        );
        let (url, status, page) = b.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let flow = input_value(&page, "flow").expect("flow");
        let (_, status, page) = b.sign_in(&url, &page, user, pw).await;
        (flow, status, page)
    }

    /// The sign-in log as the console reads it: one JSON object per event.
    async fn log(&self) -> Vec<serde_json::Value> {
        self.idp
            .state
            .store
            .read_log(tessera::audit::SIGNIN_LOG, 0, i64::MAX, 100_000)
            .await
            .expect("sign-in log")
            .into_iter()
            .map(|e| serde_json::from_slice(&e.value).expect("json"))
            .collect()
    }

    /// Every client address the log recorded for `flow`.
    async fn addresses_of(&self, flow: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .log()
            .await
            .into_iter()
            .filter(|e| e["flow"] == flow)
            .map(|e| e["client_ip"].as_str().expect("client_ip").to_owned())
            .collect();
        out.dedup();
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_trusted_proxy_the_forwarded_client_is_logged_and_locked_out() {
    let e = env(|_| {}).await;
    let open = e.open_rp.clone();

    // A sign-in through the balancer is logged with the user's address, not the balancer's.
    let alice = browser(PROXY, Some("203.0.113.7"));
    let (flow, _, page) = e.attempt(&alice, &open, "alice", PW).await;
    assert!(signed_in(&page), "{page}");
    assert_eq!(e.addresses_of(&flow).await, ["203.0.113.7"]);

    // A client spraying passwords through the balancer uses up its own address's budget...
    let attacker = || browser(PROXY, Some("198.51.100.66"));
    for user in ["alice", "bob", "carol"] {
        let (_, status, _) = e.attempt(&attacker(), &open, user, "Winter2026!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
    }
    let (flow, _, page) = e.attempt(&attacker(), &open, "bob", PW).await;
    assert!(page.contains(TOO_MANY), "the sprayer is refused: {page}");
    let refusal = e
        .log()
        .await
        .into_iter()
        .find(|ev| ev["flow"] == flow.as_str() && ev["reason"] == "soft lockout: client address")
        .expect("the refusal is logged");
    assert_eq!(refusal["client_ip"], "198.51.100.66");

    // ...and only its own: everyone else behind the same balancer still signs in.
    let (_, _, page) = e
        .attempt(&browser(PROXY, Some("203.0.113.8")), &open, "bob", PW)
        .await;
    assert!(signed_in(&page), "another forwarded client: {page}");
    let (_, _, page) = e
        .attempt(&browser(PROXY, Some("203.0.113.7")), &open, "alice", PW)
        .await;
    assert!(signed_in(&page), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let e = env(|_| {}).await;
    let open = e.open_rp.clone();
    // A direct client names a new address on every attempt to dodge the address budget.
    let mut flows = Vec::new();
    for (i, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let spoof = format!("192.0.2.{}, {PROXY}", i + 1);
        let (flow, status, _) = e
            .attempt(&browser("127.0.0.3", Some(&spoof)), &open, user, "x")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        flows.push(flow);
    }
    let (flow, _, page) = e
        .attempt(&browser("127.0.0.3", Some("192.0.2.99")), &open, "bob", PW)
        .await;
    assert!(
        page.contains(TOO_MANY),
        "counted on its real address: {page}"
    );
    flows.push(flow);
    for flow in &flows {
        assert_eq!(e.addresses_of(flow).await, ["127.0.0.3"], "flow {flow}");
    }
    // Its real address, not anyone's it named, is the one refused.
    let (_, _, page) = e
        .attempt(&browser("127.0.0.4", None), &open, "bob", PW)
        .await;
    assert!(signed_in(&page), "{page}");
    let (_, _, page) = e
        .attempt(&browser(PROXY, Some("192.0.2.99")), &open, "bob", PW)
        .await;
    assert!(
        signed_in(&page),
        "the named address was never counted: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_network_containing_only_the_proxy_skips_no_one() {
    let e = env(|c| c.mfa.trusted_networks = vec!["127.0.0.0/30".into()]).await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    let asks_code = |page: &str| page.contains("name=\"code\"");

    // Through the balancer, from outside the trusted network: the second factor is asked.
    let (_, _, page) = e
        .attempt(&browser(PROXY, Some("203.0.113.7")), &e.mfa_rp, "alice", PW)
        .await;
    assert!(asks_code(&page), "forwarded client: {page}");
    // The balancer itself (a health check, or a vserver not inserting the header) is not a
    // trusted network either, though the network contains it.
    let (_, _, page) = e
        .attempt(&browser(PROXY, None), &e.mfa_rp, "alice", PW)
        .await;
    assert!(asks_code(&page), "the proxy's own address: {page}");
    // A direct client in the same trusted network is trusted, as before.
    let (_, _, page) = e
        .attempt(&browser("127.0.0.3", None), &e.mfa_rp, "alice", PW)
        .await;
    assert!(signed_in(&page), "direct client in the network: {page}");

    // A trusted network containing the forwarded client does apply to it.
    let e = env(|c| c.mfa.trusted_networks = vec!["203.0.113.0/24".into()]).await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    let (_, _, page) = e
        .attempt(&browser(PROXY, Some("203.0.113.7")), &e.mfa_rp, "alice", PW)
        .await;
    assert!(signed_in(&page), "forwarded client in the network: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_address_has_no_address_budget() {
    // Failures arriving from the balancer without a header stand for everyone behind it:
    // they must not lock the balancer's address, and with it every user, out.
    let e = env(|_| {}).await;
    let open = e.open_rp.clone();
    for user in ["alice", "bob", "carol", "alice", "bob"] {
        let (_, status, _) = e.attempt(&browser(PROXY, None), &open, user, "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (flow, _, page) = e.attempt(&browser(PROXY, None), &open, "carol", PW).await;
    assert!(signed_in(&page), "{page}");
    assert_eq!(e.addresses_of(&flow).await, [PROXY]);
    // The person budget still holds there (the unfamiliar one: a proxy is never familiar).
    let e = env(|c| c.mfa.password_failures_per_user = 2).await;
    for _ in 0..2 {
        e.attempt(&browser(PROXY, None), &e.open_rp, "alice", "x")
            .await;
    }
    let (_, _, page) = e
        .attempt(&browser(PROXY, None), &e.open_rp, "alice", PW)
        .await;
    assert!(page.contains(TOO_MANY), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_forwarded_headers_fall_back_to_the_peer_without_harm() {
    let e = env(|c| c.server.max_header_bytes = 256 * 1024).await;
    let open = e.open_rp.clone();
    let huge = "9".repeat(100 * 1024);
    let hops = vec!["10.9.8.7"; 5000].join(", ");
    let proxies = vec![PROXY; 5000].join(", ");
    for (what, value) in [
        ("garbage", "<script>alert(1)</script>; for=\"\"\", ,,"),
        ("100 KB", huge.as_str()),
        ("only proxies", proxies.as_str()),
        ("bad IPv6", "2001:db8:::1"),
        ("unclosed IPv6", "[2001:db8::1"),
        ("bracketed IPv4", "[192.0.2.1]:80"),
        ("empty", ""),
    ] {
        let (flow, _, page) = e
            .attempt(&browser(PROXY, Some(value)), &open, "alice", PW)
            .await;
        assert!(signed_in(&page), "{what}: {page:.300}");
        assert_eq!(e.addresses_of(&flow).await, [PROXY], "{what}");
    }
    // Thousands of hops written by a client, with the balancer's entry last: the balancer's
    // entry is the one read, however much the client wrote before it.
    for (what, value) in [
        ("thousands of hops", format!("{hops}, 203.0.113.9")),
        ("100 KB then the client", format!("{huge}, 203.0.113.9")),
    ] {
        let (flow, _, page) = e
            .attempt(&browser(PROXY, Some(&value)), &open, "alice", PW)
            .await;
        assert!(signed_in(&page), "{what}: {page:.300}");
        assert_eq!(e.addresses_of(&flow).await, ["203.0.113.9"], "{what}");
    }
    let (_, status, _) = browser("127.0.0.1", None)
        .get(&format!("{}/healthz", e.idp.base))
        .await;
    assert_eq!(status, StatusCode::OK, "the server is still up");
}
