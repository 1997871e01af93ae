//! `/metrics` as a Prometheus scrape sees it, against a real Tessera: a real sign-in moves
//! the counters and histograms an admin would graph, and hostile requests (unknown RPs,
//! made-up paths, flow ids and SAMLRequests in the query) add no label values.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod slapd;
    pub mod sp;
    pub mod tessera;
}

use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::mfa::{code, enrol_all};
use support::slapd::Slapd;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::Method;

const PW: &str = "Corr3ct horse!";

async fn scrape(base: &str) -> String {
    let res = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("body")
}

/// The value of the sample line that starts with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

/// Every `label="value"` of `label` found in the text, for checking what hostile input made.
fn label_values(text: &str, label: &str) -> Vec<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let start = l.find(&key)? + key.len();
            Some(l[start..].split('"').next()?.to_owned())
        })
        .collect()
}

/// A six-digit code that is none of the codes valid around `now`.
fn wrong_code(now: i64) -> String {
    let valid: Vec<String> = [-30, 0, 30].iter().map(|d| code(now + d)).collect();
    (0..)
        .map(|i: u32| format!("{:06}", (123_456 + i * 7_919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    rp: String,
}

async fn env() -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    b.add_user(&[file_user("alice", PW)]);
    let sp = TestSp::new("app");
    b.add_rp("app", &sp.metadata(false), "");
    let idp = b.start().await;
    enrol_all(&idp, "alice", Method::Oath, "+15550100230").await;
    Env {
        idp,
        clock,
        rp: sp.entity_id,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_sign_in_moves_the_counters_and_hostile_requests_add_no_labels() {
    let e = env().await;
    let base = &e.idp.base;

    // Password, one wrong code, then the right one: a whole sign-in with a second factor.
    let browser = Browser::new();
    let url = format!("{base}/adfs/ls/idpinitiatedsignon?loginToRp={}", e.rp);
    let (url, status, page) = browser.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flow = input_value(&page, "flow").expect("flow");
    let (_, status, page) = browser.sign_in(&url, &page, "alice", PW).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("name=\"code\""), "the code page: {page}");
    let login = format!("{base}/adfs/ls/login");
    let bad = wrong_code(e.clock.unix());
    browser
        .post(
            &login,
            &[("flow", &flow), ("action", "code"), ("code", &bad)],
        )
        .await;
    let good = code(e.clock.unix());
    let (_, status, page) = browser
        .post(
            &login,
            &[("flow", &flow), ("action", "code"), ("code", &good)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("SAMLResponse"), "signed in: {page}");

    // Hostile traffic: an RP nobody registered, a made-up path, secrets in a query.
    let anon = reqwest::Client::new();
    for path in [
        "/adfs/ls/idpinitiatedsignon?loginToRp=https://evil.example/hostile-rp".to_owned(),
        "/no/such/hostile-path-4711".to_owned(),
        "/adfs/ls/login?flow=hostileflow0123&SAMLRequest=hostile-saml".to_owned(),
        "/adfs/ls/?SAMLRequest=hostile-saml&RelayState=hostile-relay".to_owned(),
    ] {
        anon.get(format!("{base}{path}"))
            .send()
            .await
            .expect("hostile GET");
    }

    let text = scrape(base).await;
    let rp = &e.rp;
    for (series, at_least) in [
        (
            format!(r#"tessera_sign_ins_total{{rp="{rp}",outcome="started"}}"#),
            1.0,
        ),
        (
            format!(r#"tessera_sign_ins_total{{rp="{rp}",outcome="success"}}"#),
            1.0,
        ),
        (
            r#"tessera_second_factor_attempts_total{method="oath",outcome="failure"}"#.into(),
            1.0,
        ),
        (
            r#"tessera_second_factor_attempts_total{method="oath",outcome="success"}"#.into(),
            1.0,
        ),
        (
            r#"tessera_directory_seconds_count{op="authenticate"}"#.into(),
            1.0,
        ),
        (
            r#"tessera_store_seconds_count{op="compare_and_set"}"#.into(),
            1.0,
        ),
        ("tessera_saml_response_signing_seconds_count".into(), 1.0),
        (
            r#"tessera_http_requests_total{method="POST",route="/adfs/ls/login",status="200"}"#
                .into(),
            // The wrong code's page and the auto-POST page (the password is answered by a
            // redirect).
            2.0,
        ),
        (
            r#"tessera_http_requests_total{method="GET",route="unmatched",status="404"}"#.into(),
            1.0,
        ),
    ] {
        let value = sample(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(
            value >= at_least,
            "{series} = {value}, expected >= {at_least}"
        );
    }
    // Waits begun minus waits settled: the one code wait ended with the sign-in.
    let started = sample(&text, "tessera_second_factor_challenges_started_total");
    let settled = sample(&text, "tessera_second_factor_challenges_settled_total");
    assert_eq!(started, settled, "{text}");
    assert!(started >= Some(1.0), "{text}");

    // Nothing typed by the hostile client became a label value.
    assert!(!text.contains("hostile"), "{text}");
    assert!(
        !text.contains(&flow),
        "the flow id leaked into a label: {text}"
    );
    for rp_label in label_values(&text, "rp") {
        assert!(
            rp_label == *rp || rp_label == "unknown" || rp_label == "admin console",
            "unexpected rp label {rp_label}"
        );
    }
    for route in label_values(&text, "route") {
        assert!(
            route == "unmatched" || route.starts_with('/') && !route.contains('?'),
            "unexpected route label {route}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_metrics_listener_the_public_one_does_not_answer_metrics() {
    let mut b = TesseraBuilder::new();
    let side = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let side_addr = side.local_addr().expect("addr");
    b.config.server.metrics_listen = Some(side_addr);
    let idp = b.start().await;
    // What `tessera serve` does with `server.metrics_listen`.
    side.set_nonblocking(true).expect("nonblocking");
    let side = tokio::net::TcpListener::from_std(side).expect("listener");
    let limits = tessera::server::ServerLimits::from_config(&idp.state.config.server);
    let router = tessera::web::metrics_app(idp.state.clone());
    let task = tokio::spawn(async move {
        let _ = tessera::server::serve(side, router, &limits, std::future::pending()).await;
    });

    let public = reqwest::get(format!("{}/metrics", idp.base))
        .await
        .expect("GET");
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let text = scrape(&format!("http://{side_addr}")).await;
    assert!(text.contains("tessera_http_requests_total"), "{text}");
    // The public 404 was counted, under no raw path.
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    task.abort();
}

/// Against a real slapd: an LDAP sign-in is timed, and a directory that went away shows as
/// directory errors (a wrong password does not).
#[tokio::test(flavor = "multi_thread")]
async fn ldap_calls_are_timed_and_an_outage_counts_as_directory_errors() {
    let mut slapd = Slapd::start();
    slapd.add_user("lena", PW, "");
    let mut b = TesseraBuilder::new();
    b.config.directory.kind = tessera::config::DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    let sp = TestSp::new("open");
    b.add_rp("open", &sp.metadata(false), "mfa_required = false\n");
    let idp = b.start().await;
    let start = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        idp.base, sp.entity_id
    );

    let attempt = |password: &'static str| {
        let start = start.clone();
        async move {
            let browser = Browser::new();
            let (url, status, page) = browser.get(&start).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            browser.sign_in(&url, &page, "lena", password).await
        }
    };
    let (_, _, page) = attempt("not the password").await;
    assert!(!page.contains("SAMLResponse"), "{page}");
    let (_, _, page) = attempt(PW).await;
    assert!(page.contains("SAMLResponse"), "signed in: {page}");
    let text = scrape(&idp.base).await;
    let binds = sample(
        &text,
        r#"tessera_directory_seconds_count{op="authenticate"}"#,
    )
    .unwrap_or_else(|| panic!("no directory timing in\n{text}"));
    assert!(binds >= 2.0, "{text}");
    assert!(
        !text.contains("tessera_directory_errors_total{"),
        "a wrong password is not a directory error: {text}"
    );

    slapd.stop();
    let (_, status, _) = attempt(PW).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = scrape(&idp.base).await;
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("tessera_directory_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 1.0, "{text}");
}
