//! Two Tessera processes sharing one real Redis: a sign-in begun on node A is finished on
//! node B (code checked there, push answered there), as behind a load balancer without
//! affinity. The nodes share what a farm deployment provisions: key files, users file, RP
//! metadata, entity ID and the Redis store.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod process;
    pub mod redis;
    pub mod sp;
    pub mod tessera;
}

use std::path::Path;

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::process::{Node, provision_node};
use support::redis::{MASTER_NAME, RedisServer, SentinelFarm};
use support::sp::TestSp;
use support::tessera::file_user;
use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at};
use tessera::mfa::secrets::SecretBox;
use tessera::sim::inbox::Inbox;
use tessera::store::redis::RedisStore;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const SECRET: &[u8] = b"12345678901234567890";

struct Farm {
    a: Node,
    b: Node,
    sp: TestSp,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn copy_provisioning(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("tessera-data")).expect("data");
    std::fs::create_dir_all(to.join("metadata")).expect("metadata");
    for f in [
        "tessera-data/signing.key",
        "tessera-data/signing.crt",
        "tessera-data/mfa.key",
        "tessera-data/users.toml",
        "metadata/sp.xml",
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
}

async fn farm(redis: &RedisServer, name: &str, default: Method) -> Farm {
    let store_env = [
        ("TESSERA__STORE__BACKEND", "redis".to_owned()),
        ("TESSERA__STORE__REDIS_URL", redis.url()),
    ];
    farm_with(&redis.url(), &store_env, name, default).await
}

/// Two nodes whose store settings are `store_env`; alice is enrolled through `seed_url`.
async fn farm_with(
    seed_url: &str,
    store_env: &[(&str, String)],
    name: &str,
    default: Method,
) -> Farm {
    let sp = TestSp::new(name);
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    provision_node(da.path(), &sp.metadata(false), vec![file_user("alice", PW)]);
    copy_provisioning(da.path(), db.path());
    // Seed alice's registration through the shared store, sealed with the shared key.
    let store = RedisStore::connect(seed_url, "tessera:")
        .await
        .expect("redis");
    let secrets = SecretBox::load_or_create(&da.path().join("tessera-data/mfa.key")).expect("key");
    support::mfa::enrol(&store, &secrets, "alice", default, PHONE).await;
    let mut env = store_env.to_vec();
    env.push((
        "TESSERA__IDP__ENTITY_ID",
        "https://idp.corp.example/adfs/services/trust".to_owned(),
    ));
    let a = Node::start(da.path(), &env).await;
    let b = Node::start(db.path(), &env).await;
    Farm {
        a,
        b,
        sp,
        _dirs: (da, db),
    }
}

async fn inbox(node: &Node) -> Inbox {
    reqwest::get(format!("{}/sim/api/inbox", node.base))
        .await
        .expect("inbox")
        .json()
        .await
        .expect("inbox json")
}

async fn wait_inbox<T>(node: &Node, what: &str, f: impl Fn(&Inbox) -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f(&inbox(node).await) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn start_on(node: &Node, sp: &TestSp, browser: &Browser) -> (String, String) {
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        node.base, sp.entity_id
    );
    let (url, status, page) = browser.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flow = input_value(&page, "flow").expect("flow");
    let (_, _, page) = browser.sign_in(&url, &page, "alice", PW).await;
    (flow, page)
}

#[tokio::test]
async fn a_push_sent_by_node_a_is_answered_and_completed_on_node_b() {
    let redis = RedisServer::start();
    let f = farm(&redis, "farm", Method::Push).await;
    let browser = Browser::new();
    let (flow, page) = start_on(&f.a, &f.sp, &browser).await;
    assert!(page.contains("We've sent a notification"), "{page}");
    // The page's live stream is held by node A.
    let mut stream = browser
        .http
        .get(format!("{}/adfs/ls/login/wait?flow={flow}", f.a.base))
        .send()
        .await
        .expect("live stream");
    assert_eq!(stream.status(), StatusCode::OK);

    // The phone's "Approve" reaches node B (the callback URL's host is the load balancer).
    let push = wait_inbox(&f.a, "push", |i| i.pushes.front().cloned()).await;
    let approve = push
        .actions
        .iter()
        .find(|x| x.label == "Approve")
        .expect("approve")
        .url
        .replace(&f.a.base, &f.b.base);
    assert_eq!(
        browser
            .http
            .post(&approve)
            .send()
            .await
            .expect("callback")
            .status(),
        StatusCode::OK
    );

    // Node A's stream learns of it through the store's wake-up (Redis pub/sub) and tells
    // the page, whose poll then lands on node B, which finishes the sign-in.
    let mut seen = String::new();
    while !seen.contains("event: state\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(4), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("node A's stream said nothing for 4 s:\n{seen}"));
        match chunk.expect("stream") {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("node A's stream ended without `state`:\n{seen}"),
        }
    }
    let (_, status, page) = browser
        .get(&format!("{}/adfs/ls/login?flow={flow}", f.b.base))
        .await;
    assert_eq!(status, StatusCode::OK);
    let xml = Browser::post_form(&page).xml();
    assert!(
        xml.contains("alice@corp.example")
            && xml.contains("<saml:AttributeValue>swk</saml:AttributeValue>"),
        "{xml}"
    );
    assert!(
        xml.contains("https://idp.corp.example/adfs/services/trust"),
        "both nodes are one IdP"
    );

    // The SSO session made on B serves the next request on A.
    let (_, _, again) = browser
        .get(&format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            f.a.base, f.sp.entity_id
        ))
        .await;
    assert!(
        again.contains("SAMLResponse"),
        "A sees B's session: {again}"
    );
}

#[tokio::test]
async fn codes_sent_on_node_a_are_checked_on_node_b_once() {
    let redis = RedisServer::start();
    let f = farm(&redis, "farm2", Method::Sms).await;

    // One-way text sent by node A, typed into node B (MFA Server could not do this).
    let browser = Browser::new();
    let (flow, page) = start_on(&f.a, &f.sp, &browser).await;
    assert!(page.contains("Enter the code we texted"), "{page}");
    let body = wait_inbox(&f.a, "text", |i| {
        i.texts
            .iter()
            .find(|t| t.to == PHONE)
            .map(|t| t.body.clone())
    })
    .await;
    let sms = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("code")
        .to_owned();
    let (_, _, page) = browser
        .post(
            &format!("{}/adfs/ls/login", f.b.base),
            &[("flow", &flow), ("action", "code"), ("code", &sms)],
        )
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");

    // A TOTP code accepted on B is spent on A too (the replay cache is shared).
    let mut flows = Vec::new();
    for node in [&f.a, &f.b] {
        let fresh = Browser::new();
        let (flow, _) = start_on(node, &f.sp, &fresh).await;
        let login = format!("{}/adfs/ls/login", node.base);
        fresh
            .post(&login, &[("flow", &flow), ("action", "different")])
            .await;
        fresh
            .post(
                &login,
                &[("flow", &flow), ("action", "choose"), ("method", "oath")],
            )
            .await;
        flows.push((fresh, login, flow));
    }
    let totp = code_at(
        SECRET,
        &OathParams::default(),
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let (fb, lb, flb) = &flows[1];
    let (_, _, page) = fb
        .post(lb, &[("flow", flb), ("action", "code"), ("code", &totp)])
        .await;
    assert!(page.contains("SAMLResponse"), "B accepts the code: {page}");
    let (fa, la, fla) = &flows[0];
    let (_, _, page) = fa
        .post(la, &[("flow", fla), ("action", "code"), ("code", &totp)])
        .await;
    // Said as a replay since the sign-in log merge (i15-log): the code was right, but spent.
    assert!(
        page.contains("This code has already been used."),
        "A refuses the code B already accepted: {page}"
    );
}

#[tokio::test]
async fn wrong_codes_and_passwords_on_two_nodes_share_one_budget() {
    let redis = RedisServer::start();
    let f = farm(&redis, "farm3", Method::Oath).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let valid: Vec<String> = [-30, 0, 30, 60]
        .iter()
        .map(|d| code_at(SECRET, &OathParams::default(), now + d))
        .collect();
    let wrong = ["111111", "222222", "333333", "444444", "555555", "666666"]
        .into_iter()
        .find(|c| !valid.iter().any(|v| v == c))
        .expect("a wrong code");

    // A script alternates nodes and starts a new sign-in for every guess (the default
    // budget: 5 wrong codes per user).
    let mut locked_at = None;
    for guess in 1..=8 {
        let node = if guess % 2 == 0 { &f.b } else { &f.a };
        let browser = Browser::new();
        let (flow, page) = start_on(node, &f.sp, &browser).await;
        assert!(page.contains("name=\"code\"") || guess > 5, "{page}");
        let (_, _, page) = browser
            .post(
                &format!("{}/adfs/ls/login", node.base),
                &[("flow", &flow), ("action", "code"), ("code", wrong)],
            )
            .await;
        if page.contains("codes are not accepted for now") {
            locked_at = Some(guess);
            break;
        }
    }
    assert_eq!(
        locked_at,
        Some(5),
        "the fifth wrong code, over both nodes, locks"
    );

    // The soft lockout is shared too: 4 wrong passwords over both nodes (the default
    // unfamiliar budget), then even the right one is refused on either node.
    for guess in 0..4 {
        let node = if guess % 2 == 0 { &f.a } else { &f.b };
        let browser = Browser::new();
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            node.base, f.sp.entity_id
        );
        let (url, _, page) = browser.get(&url).await;
        let (_, status, _) = browser.sign_in(&url, &page, "alice", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for node in [&f.a, &f.b] {
        let browser = Browser::new();
        let (_, page) = start_on(node, &f.sp, &browser).await;
        assert!(page.contains("Too many failed sign-in attempts"), "{page}");
    }
}

/// Redis Sentinel: the master dies, a sentinel vote promotes the replica, and the nodes follow
/// it. A sign-in waiting at the code page on node A before the failover is finished on node B
/// after it, and both nodes keep serving new sign-ins.
#[tokio::test]
async fn a_sign_in_begun_before_a_sentinel_failover_completes_after_it() {
    let mut redis = tokio::task::spawn_blocking(SentinelFarm::start)
        .await
        .expect("sentinel farm");
    assert_eq!(redis.master_port(), Some(redis.master.port()));
    let store_env = [
        ("TESSERA__STORE__BACKEND", "redis".to_owned()),
        ("TESSERA__STORE__REDIS_SENTINELS", redis.sentinels()),
        ("TESSERA__STORE__REDIS_MASTER_NAME", MASTER_NAME.to_owned()),
    ];
    let f = farm_with(&redis.master.url(), &store_env, "failover", Method::Oath).await;
    let browser = Browser::new();
    let (flow, page) = start_on(&f.a, &f.sp, &browser).await;
    assert!(page.contains("name=\"code\""), "{page}");

    let replica = redis.replica.port();
    redis = tokio::task::spawn_blocking(move || {
        redis.fail_over();
        redis
    })
    .await
    .expect("failover");
    assert_eq!(redis.master_port(), Some(replica));
    // The flow record written before the failover reached the replica, and node B finds the
    // new master by itself: the first request after the failover completes the sign-in.
    let totp = code_at(
        SECRET,
        &OathParams::default(),
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    let (_, status, page) = browser
        .post(
            &format!("{}/adfs/ls/login", f.b.base),
            &[("flow", &flow), ("action", "code"), ("code", &totp)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("SAMLResponse"), "{page}");

    // Node A, whose connection also went to the dead master, serves a new sign-in: the
    // password page, then the code page (flow and lockout records written to the new master).
    let fresh = Browser::new();
    let (_, page) = start_on(&f.a, &f.sp, &fresh).await;
    assert!(page.contains("name=\"code\""), "{page}");
}

/// A node whose Redis is gone answers the "temporarily unavailable" page (503), and serves
/// sign-ins again by itself once Redis is back on its address: no restart of Tessera.
#[tokio::test]
async fn a_node_whose_redis_is_gone_answers_503_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let f = farm(&redis, "outage", Method::Oath).await;
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        f.a.base, f.sp.entity_id
    );
    let browser = Browser::new();
    let (_, status, page) = browser.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    redis.stop();
    let (_, status, down) = browser.get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{down}");
    assert!(down.contains("temporarily unavailable"), "{down}");
    assert!(
        down.contains("/static/tessera.css"),
        "a Tessera page: {down}"
    );

    // Back, empty (the test server persists nothing): alice's registration is provisioned
    // again, as a restore from the AOF would bring it back.
    redis.restart();
    let store = RedisStore::connect(&redis.url(), "tessera:")
        .await
        .expect("redis is back");
    let secrets =
        SecretBox::load_or_create(&f._dirs.0.path().join("tessera-data/mfa.key")).expect("key");
    support::mfa::enrol(&store, &secrets, "alice", Method::Oath, PHONE).await;
    // The node reconnects in the background; poll, bounded, until its page is back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, status, _) = browser.get(&url).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node A did not recover: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, page) = start_on(&f.a, &f.sp, &browser).await;
    assert!(page.contains("name=\"code\""), "{page}");
}
