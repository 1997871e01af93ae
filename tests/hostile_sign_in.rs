//! A browser-less attacker at the sign-in form, against a real Tessera (and a real slapd where
//! the directory's own lockout is at stake): the second factor is not brute-forced across
//! sign-ins, the soft lockout never locks the directory account and cannot be turned against
//! a user at their usual address, account state does not leak, oversized input is refused
//! without being stored, and a directory outage is a 503 page.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod slapd;
    pub mod sp;
    pub mod tessera;
}

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value};
use support::mfa::{code, enrol_all};
use support::slapd::{Slapd, password_of, person_dn};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::admin::Actor;
use tessera::admin::users::{self, Action};
use tessera::clock::{Clock, FixedClock};
use tessera::config::DirectoryKind;
use tessera::mfa::Method;
use tessera::mfa::settings::MfaSettings;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const GENERIC: &str = "Incorrect user ID or password";
const TOO_MANY: &str = "Too many failed sign-in attempts";
const CODES_LOCKED: &str = "codes are not accepted for now";

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    /// An RP that wants the second factor, and one that is password-only.
    mfa_rp: String,
    open_rp: String,
    _slapd: Option<Slapd>,
}

/// Tessera with the users file (alice, bob) or, given a slapd, the real directory.
async fn env(slapd: Option<Slapd>, tweak: impl FnOnce(&mut MfaSettings)) -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    tweak(&mut b.config.mfa);
    match &slapd {
        Some(s) => {
            b.config.directory.kind = DirectoryKind::Ldap;
            b.config.directory.ldap = Some(s.settings());
        }
        None => b.add_user(&[file_user("alice", PW), file_user("bob", PW)]),
    }
    let sp = TestSp::new("app");
    b.add_rp("app", &sp.metadata(false), "");
    let open = TestSp::new("open");
    b.add_rp("open", &open.metadata(false), "mfa_required = false\n");
    Env {
        idp: b.start().await,
        clock,
        mfa_rp: sp.entity_id,
        open_rp: open.entity_id,
        _slapd: slapd,
    }
}

impl Env {
    /// A new sign-in to `rp` in `browser`: (login URL, page with the password form).
    async fn start(&self, browser: &Browser, rp: &str) -> (String, String) {
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={rp}",
            self.idp.base
        );
        let (url, status, page) = browser.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        (url, page)
    }

    /// One whole attempt from a fresh browser at `ip`: start, type the password.
    async fn attempt_from(&self, ip: &str, rp: &str, user: &str, pw: &str) -> (StatusCode, String) {
        let browser = Browser::from_address(ip.parse::<IpAddr>().expect("ip"));
        let (url, page) = self.start(&browser, rp).await;
        let (_, status, page) = browser.sign_in(&url, &page, user, pw).await;
        (status, page)
    }

    /// Password accepted, at the code page of a user whose default is the app: (browser, flow).
    async fn at_code_page(&self, user: &str) -> (Browser, String) {
        let browser = Browser::new();
        let (url, page) = self.start(&browser, &self.mfa_rp).await;
        let flow = input_value(&page, "flow").expect("flow");
        let (_, status, page) = browser.sign_in(&url, &page, user, PW).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("name=\"code\""), "the code page: {page}");
        (browser, flow)
    }

    async fn send_code(&self, browser: &Browser, flow: &str, code: &str) -> (StatusCode, String) {
        let (_, status, page) = browser
            .post(
                &format!("{}/adfs/ls/login", self.idp.base),
                &[("flow", flow), ("action", "code"), ("code", code)],
            )
            .await;
        (status, page)
    }

    fn signin_log(&self) -> Vec<String> {
        let store = self.idp.state.store.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                store
                    .read_log(tessera::audit::SIGNIN_LOG, 0, i64::MAX, 100_000)
                    .await
                    .expect("sign-in log")
                    .into_iter()
                    .map(|e| String::from_utf8(e.value).expect("utf8"))
                    .collect()
            })
        })
    }
}

/// A six-digit code that is none of the codes valid around `now` (±1 step).
fn wrong_code(now: i64) -> String {
    let valid: Vec<String> = [-30, 0, 30].iter().map(|d| code(now + d)).collect();
    (0..)
        .map(|i: u32| format!("{:06}", (123_456 + i * 7_919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

fn signed_in(page: &str) -> bool {
    page.contains("name=\"SAMLResponse\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_across_sign_ins_locks_code_entry_until_unblocked() {
    let e = env(None, |m| {
        m.max_code_attempts = 2;
        m.code_failures_per_user = 5;
    })
    .await;
    enrol_all(&e.idp, "alice", Method::Oath, PHONE).await;
    // A sign-in the real user left open at the code page before the attack.
    let (victim, victim_flow) = e.at_code_page("alice").await;

    // The attacker knows the password and starts a new sign-in every two guesses.
    let wrong = wrong_code(e.clock.unix());
    let mut guesses = 0;
    let locked_page = loop {
        let (browser, flow) = e.at_code_page("alice").await;
        let mut locked = None;
        for _ in 0..2 {
            guesses += 1;
            let (_, page) = e.send_code(&browser, &flow, &wrong).await;
            if page.contains(CODES_LOCKED) {
                locked = Some(page);
                break;
            }
        }
        if let Some(page) = locked {
            break page;
        }
        assert!(guesses < 20, "never locked after {guesses} wrong codes");
    };
    assert_eq!(guesses, 5, "locked at the fifth wrong code");
    assert!(
        !locked_page.contains("Use verification code from my mobile app"),
        "the chooser no longer offers codes: {locked_page}"
    );

    // The right code is refused now, in the sign-in that was open before the lock.
    let (_, page) = e
        .send_code(&victim, &victim_flow, &code(e.clock.unix()))
        .await;
    assert!(!signed_in(&page), "a valid code is refused while locked");
    assert!(page.contains(CODES_LOCKED), "{page}");

    // A new sign-in goes to the push the user answers on their phone, not to the code page.
    let browser = Browser::new();
    let (url, page) = e.start(&browser, &e.mfa_rp).await;
    let (_, _, page) = browser.sign_in(&url, &page, "alice", PW).await;
    assert!(!page.contains("name=\"code\""), "no code page: {page}");

    // The help desk sees the lock and unblocks; the right code works again.
    let store = e.idp.state.store.as_ref();
    let now = e.clock.unix();
    let view = users::view(store, "alice", now, 10).await.expect("view");
    assert!(view.registration.codes_locked(now));
    let admin = Actor {
        name: "helpdesk".into(),
        client_ip: "127.0.0.1".into(),
    };
    users::apply(
        store,
        &e.idp.state.config.mfa,
        &admin,
        now,
        "alice",
        Action::Unblock,
    )
    .await
    .expect("unblock");
    let (browser, flow) = e.at_code_page("alice").await;
    let (_, page) = e.send_code(&browser, &flow, &code(e.clock.unix())).await;
    assert!(signed_in(&page), "after the unblock: {page}");

    // The audit shows each guess judged at most five times, and the refusals.
    let log = e.signin_log();
    let judged = log.iter().filter(|l| l.contains("wrong code")).count();
    assert_eq!(judged, 5, "{log:#?}");
    assert!(log.iter().any(|l| l.contains("codes locked")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_lock_ends_by_itself_and_parallel_guesses_are_judged_at_most_the_budget() {
    let e = env(None, |m| {
        m.code_failures_per_user = 4;
        m.code_lockout_secs = 600;
    })
    .await;
    enrol_all(&e.idp, "bob", Method::Oath, PHONE).await;
    let mut flows = Vec::new();
    for _ in 0..12 {
        flows.push(e.at_code_page("bob").await);
    }
    let wrong = wrong_code(e.clock.unix());
    // Twelve sign-ins guess at once, as a script on many connections would.
    let mut guesses = tokio::task::JoinSet::new();
    for (browser, flow) in flows.drain(1..) {
        let (url, wrong) = (format!("{}/adfs/ls/login", e.idp.base), wrong.clone());
        guesses.spawn(async move {
            let form = [
                ("flow", flow.as_str()),
                ("action", "code"),
                ("code", &wrong),
            ];
            browser.post(&url, &form).await.2
        });
    }
    while let Some(page) = guesses.join_next().await {
        assert!(!signed_in(&page.expect("guess")));
    }
    let log = e.signin_log();
    let judged = log.iter().filter(|l| l.contains("wrong code")).count();
    assert!(judged <= 4, "{judged} guesses judged: {log:#?}");

    // Locked now; after the lock's length the right code works without anybody's help.
    let (browser, flow) = flows.pop().expect("a flow");
    let (_, page) = e.send_code(&browser, &flow, &code(e.clock.unix())).await;
    assert!(!signed_in(&page));
    e.clock.advance(time::Duration::seconds(601));
    let (browser, flow) = e.at_code_page("bob").await;
    let (_, page) = e.send_code(&browser, &flow, &code(e.clock.unix())).await;
    assert!(signed_in(&page), "after the lock ended: {page}");
}

/// Failed binds slapd's password policy recorded for `uid` (one pwdFailureTime per bind).
fn binds_refused(slapd: &Slapd, uid: &str) -> usize {
    slapd.read_attr(&person_dn(uid), "pwdFailureTime").len()
}

fn directory_locked(slapd: &Slapd, uid: &str) -> bool {
    !slapd
        .read_attr(&person_dn(uid), "pwdAccountLockedTime")
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_reach_the_directory_at_most_the_budget() {
    let e = env(Some(Slapd::start()), |m| m.password_failures_per_user = 3).await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let base = e.idp.base.clone();
        let rp = e.open_rp.clone();
        attempts.spawn(async move {
            let browser = Browser::new();
            let url = format!("{base}/adfs/ls/idpinitiatedsignon?loginToRp={rp}");
            let (url, _, page) = browser.get(&url).await;
            browser.sign_in(&url, &page, "wrongpw1", "not-it").await.2
        });
    }
    let mut too_many = 0;
    while let Some(page) = attempts.join_next().await {
        let page = page.expect("attempt");
        assert!(page.contains(GENERIC) || page.contains(TOO_MANY), "{page}");
        too_many += usize::from(page.contains(TOO_MANY));
    }
    let slapd = e._slapd.as_ref().expect("slapd");
    assert_eq!(
        binds_refused(slapd, "wrongpw1"),
        3,
        "only the budget was bound"
    );
    assert_eq!(too_many, 17, "the rest were refused without a bind");
    assert!(
        !directory_locked(slapd, "wrongpw1"),
        "slapd's lockout untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_user_counts_once() {
    let e = env(Some(Slapd::start()), |m| m.password_failures_per_user = 2).await;
    let ip = "127.0.0.1";
    let open = e.open_rp.clone();
    for login in ["dbrown", "dan.brown@corp.example"] {
        let (status, page) = e.attempt_from(ip, &open, login, "not-it").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains(GENERIC), "{page}");
    }
    // A third spelling with the right password: the person's budget is spent.
    let (_, page) = e
        .attempt_from(ip, &open, "CORP\\DBrown", &password_of("dbrown"))
        .await;
    assert!(page.contains(TOO_MANY), "{page}");
    let slapd = e._slapd.as_ref().expect("slapd");
    assert_eq!(binds_refused(slapd, "dbrown"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_elsewhere_do_not_lock_the_user_out_of_their_usual_address() {
    let e = env(Some(Slapd::start()), |m| {
        m.password_failures_per_user = 3;
        m.password_failures_familiar = 1;
    })
    .await;
    let (home, away) = ("127.0.0.1", "127.0.0.2");
    let open = e.open_rp.clone();
    let pw = password_of("carol");
    let (_, page) = e.attempt_from(home, &open, "carol", &pw).await;
    assert!(signed_in(&page), "carol signs in at home: {page}");

    // An attacker elsewhere spends the unfamiliar budget, and more.
    for _ in 0..6 {
        e.attempt_from(away, &open, "carol", "guess-1").await;
    }
    let (_, page) = e.attempt_from(away, &open, "carol", &pw).await;
    assert!(page.contains(TOO_MANY), "elsewhere is locked: {page}");
    let slapd = e._slapd.as_ref().expect("slapd");
    assert_eq!(
        binds_refused(slapd, "carol"),
        3,
        "only the budget was bound"
    );
    // At home carol still signs in.
    let (_, page) = e.attempt_from(home, &open, "carol", &pw).await;
    assert!(signed_in(&page), "home still works: {page}");
    assert!(!directory_locked(slapd, "carol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_state_is_told_only_once_the_password_is_proven() {
    let e = env(Some(Slapd::start()), |_| {}).await;
    let ip = "127.0.0.1";
    let open = e.open_rp.clone();
    for (uid, pw) in [
        ("disabled1", "wrong-1".to_owned()),
        ("locked1", "wrong-1".to_owned()),
        ("nobody-here", "wrong-1".to_owned()),
        ("wrongpw2", "wrong-1".to_owned()),
        // Disabled and locked are not even told with the right password.
        ("disabled1", password_of("disabled1")),
        ("locked1", password_of("locked1")),
    ] {
        let (status, page) = e.attempt_from(ip, &open, uid, &pw).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uid}");
        assert!(page.contains(GENERIC), "{uid}: {page}");
        for leak in ["is disabled", "is locked", "has expired"] {
            assert!(!page.contains(leak), "{uid} leaks that it {leak}");
        }
    }
    // With the password proven, what the user must do is said (as AD FS does).
    let (_, page) = e
        .attempt_from(ip, &open, "mustchange1", &password_of("mustchange1"))
        .await;
    assert!(page.contains("You must change your password"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_outage_is_a_503_page_and_the_sign_in_survives_it() {
    let mut e = env(Some(Slapd::start()), |_| {}).await;
    let browser = Browser::new();
    let open = e.open_rp.clone();
    let (url, page) = e.start(&browser, &open).await;
    drop(e._slapd.take());
    let (_, status, down) = browser
        .sign_in(&url, &page, "alice", &password_of("alice"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{down}");
    assert!(down.contains("cannot reach the directory"), "{down}");
    assert!(down.contains("/static/tessera.css"), "a Tessera page");
    // Nothing was counted against alice: the form still takes her password (it would say
    // "too many" otherwise once the directory is back); the flow was not used up.
    let (_, status, again) = browser.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again.contains("name=\"password\""), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_user_names_are_refused_and_nothing_of_them_is_stored() {
    let e = env(None, |_| {}).await;
    let browser = Browser::new();
    let mfa_rp = e.mfa_rp.clone();
    let (url, page) = e.start(&browser, &mfa_rp).await;
    let flow = input_value(&page, "flow").expect("flow");
    let login = format!("{}/adfs/ls/login", e.idp.base);

    // A megabyte, and a name longer than any account's: both a clear page, no sign-in step.
    let huge = "m".repeat(1 << 20);
    let long = "q".repeat(300);
    for name in [&huge, &long] {
        let (_, status, page) = browser
            .post(
                &login,
                &[("flow", &flow), ("username", name), ("password", "x")],
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{status}"
        );
        assert!(
            page.contains("/static/tessera.css"),
            "a Tessera page: {page}"
        );
        assert!(page.len() < 20_000, "the name is not echoed");
    }
    // An unknown name within the limit: refused like any wrong password; the audit keeps
    // only its start, and no store key holds it.
    let unknown = "u".repeat(200);
    let (_, status, _) = browser.sign_in(&url, &page, &unknown, "x").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let store = e.idp.state.store.as_ref();
    for key in store.keys("").await.expect("keys") {
        assert!(
            !key.contains("mmmm") && !key.contains("qqqq") && !key.contains("uuuu"),
            "{key}"
        );
        let value = store.get(&key).await.expect("get").unwrap_or_default();
        let value = String::from_utf8_lossy(&value);
        assert!(
            !value.contains("mmmmmmmm") && !value.contains("qqqqqqqq"),
            "{key}"
        );
    }
    let log = e.signin_log();
    assert!(log.iter().all(|l| !l.contains(&"u".repeat(65))), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("{}…", "u".repeat(64))))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_sign_ins_in_flight_together_from_one_address_are_never_refused() {
    // The address budget counts failures only: an office behind one NAT signing in at once
    // is not a password spray.
    let e = env(None, |m| m.password_failures_per_ip = 2).await;
    let mut sign_ins = tokio::task::JoinSet::new();
    // Three each for two people: more than the address budget, within each person's.
    for i in 0..6 {
        let base = e.idp.base.clone();
        let rp = e.open_rp.clone();
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        sign_ins.spawn(async move {
            let browser = Browser::new();
            let url = format!("{base}/adfs/ls/idpinitiatedsignon?loginToRp={rp}");
            let (url, _, page) = browser.get(&url).await;
            browser.sign_in(&url, &page, user, PW).await.2
        });
    }
    while let Some(page) = sign_ins.join_next().await {
        let page = page.expect("sign-in");
        assert!(signed_in(&page), "{page}");
    }
    // Two failures from the address, and it is refused, whoever signs in.
    for _ in 0..2 {
        let (status, _) = e.attempt_from("127.0.0.1", &e.open_rp, "alice", "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (_, page) = e.attempt_from("127.0.0.1", &e.open_rp, "bob", PW).await;
    assert!(page.contains(TOO_MANY), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_spraying_many_users_is_stopped_before_the_directory() {
    let e = env(Some(Slapd::start()), |m| m.password_failures_per_ip = 3).await;
    let open = e.open_rp.clone();
    for uid in ["alice", "bob", "carol"] {
        let (_, page) = e.attempt_from("127.0.0.3", &open, uid, "Winter2026!").await;
        assert!(page.contains(GENERIC), "{uid}: {page}");
    }
    let (_, page) = e
        .attempt_from("127.0.0.3", &open, "wrongpw2", "Winter2026!")
        .await;
    assert!(page.contains(TOO_MANY), "{page}");
    let slapd = e._slapd.as_ref().expect("slapd");
    assert_eq!(binds_refused(slapd, "alice"), 1);
    assert_eq!(
        binds_refused(slapd, "wrongpw2"),
        0,
        "no bind for the fourth"
    );
    // Another address is not affected.
    let (_, page) = e
        .attempt_from("127.0.0.4", &open, "wrongpw2", &password_of("wrongpw2"))
        .await;
    assert!(signed_in(&page), "{page}");
}
