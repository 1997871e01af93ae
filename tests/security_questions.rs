//! Security questions over HTTP against the real app: asked at random, right answers sign
//! in, wrong ones are refused and count against the per-user code lock across sign-ins, and
//! nothing is offered while the method is off.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod sp;
    pub mod tessera;
}

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::mfa::enrol_all;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::clock::{Clock, FixedClock};
use tessera::mfa::settings::MfaSettings;
use tessera::mfa::{Method, questions, registration};

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const QUESTIONS: [&str; 4] = [
    "First pet",
    "Birth city",
    "First school",
    "Favourite colour",
];

struct Env {
    idp: Tessera,
    clock: Arc<FixedClock>,
    sp: TestSp,
}

fn questions_on(m: &mut MfaSettings) {
    m.methods.push(Method::Questions);
    m.security_questions = QUESTIONS.map(String::from).to_vec();
    m.questions_required = 2;
    m.questions_setup = 3;
    m.code_failures_per_user = 3;
}

async fn env(tweak: impl FnOnce(&mut MfaSettings)) -> Env {
    let mut b = TesseraBuilder::new();
    let clock = Arc::new(FixedClock::new(time::OffsetDateTime::now_utc()));
    b.clock = clock.clone();
    tweak(&mut b.config.mfa);
    b.add_user(&[file_user("alice", PW)]);
    let sp = TestSp::new("mfa");
    b.add_rp("mfa", &sp.metadata(false), "");
    Env {
        idp: b.start().await,
        clock,
        sp,
    }
}

/// The answers alice set, as (question, answer); typed back differently cased and spaced.
fn alice_answers() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("First pet", "Rex  the Dog"),
        ("Birth city", "Zürich"),
        ("First school", "St. Mary's"),
    ])
}

/// Alice with an app, a phone, a push device and three answers (set through the function
/// the portal calls), with `default` as her method.
async fn seed_alice(e: &Env, default: Method) {
    enrol_all(&e.idp, "alice", default, PHONE).await;
    let mfa = e.idp.state.policy().await.mfa.clone();
    let pairs: Vec<(String, String)> = alice_answers()
        .into_iter()
        .map(|(q, a)| (q.to_owned(), a.to_owned()))
        .collect();
    let store = e.idp.state.store.as_ref();
    if mfa.methods.contains(&Method::Questions) {
        questions::set_answers(store, &mfa, "alice", &pairs, e.clock.unix())
            .await
            .expect("answers set");
    } else {
        // Answers from a time the method was on.
        registration::update(store, "alice", |r| {
            r.security_answers = pairs
                .iter()
                .map(|(q, a)| questions::SecurityAnswer {
                    question: q.clone(),
                    hash: questions::hash(a).expect("hash"),
                })
                .collect();
        })
        .await
        .expect("seed answers");
    }
}

/// A sign-in up to the page after the password: (browser, flow id, page).
async fn password(e: &Env) -> (Browser, String, String) {
    let browser = Browser::new();
    let url = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let (url, status, page) = browser.get(&url).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let flow = input_value(&page, "flow").expect("flow");
    let (_, _, page) = browser.sign_in(&url, &page, "alice", PW).await;
    (browser, flow, page)
}

async fn act(e: &Env, b: &Browser, flow: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    b.step(&e.idp.base, flow, fields).await
}

/// The questions the page asks, in order.
fn asked(page: &str) -> Vec<String> {
    (0..5)
        .filter_map(|i| {
            let start = format!("<label for=\"answer{i}\">");
            let at = page.find(&start)? + start.len();
            let end = page[at..].find("</label>")?;
            Some(unescape(&page[at..at + end]))
        })
        .collect()
}

/// Answers the page's questions: right ones, typed in another case and spacing, or wrong.
async fn answer(e: &Env, b: &Browser, flow: &str, page: &str, right: bool) -> (StatusCode, String) {
    let known = alice_answers();
    let given: Vec<String> = asked(page)
        .iter()
        .map(|q| {
            let a = known.get(q.as_str()).expect("one of alice's questions");
            if right {
                format!("  {}  ", a.to_uppercase().replace(' ', "   "))
            } else {
                "wrong".to_owned()
            }
        })
        .collect();
    let names = ["answer0", "answer1", "answer2", "answer3", "answer4"];
    let mut fields: Vec<(&str, &str)> = vec![("action", "answers")];
    for (n, a) in names.iter().zip(&given) {
        fields.push((n, a));
    }
    act(e, b, flow, &fields).await
}

#[tokio::test]
async fn right_answers_sign_in_and_the_questions_are_picked_at_random() {
    let e = env(questions_on).await;
    seed_alice(&e, Method::Questions).await;
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    assert_eq!(reg.security_answers.len(), 3);
    assert!(
        reg.security_answers
            .iter()
            .all(|a| a.hash.starts_with("$argon2id$") && !a.hash.contains("rex")),
        "stored as argon2id hashes only"
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let (_, _, page) = password(&e).await;
        let q = asked(&page);
        assert_eq!(q.len(), 2, "{page}");
        assert_ne!(q[0], q[1]);
        seen.extend(q);
    }
    assert!(
        seen.len() >= 3,
        "all three asked over six sign-ins: {seen:?}"
    );
    let (b, flow, page) = password(&e).await;
    assert!(page.contains("Answer your security questions"), "{page}");
    // The same questions on a reload: the pick is kept in the flow.
    let (_, _, again) = b
        .get(&format!("{}/adfs/ls/login?flow={flow}", e.idp.base))
        .await;
    assert_eq!(asked(&again), asked(&page));
    let (status, done) = answer(&e, &b, &flow, &page, true).await;
    assert_eq!(status, StatusCode::OK);
    let xml = Browser::post_form(&done).xml();
    assert!(xml.contains("kba"), "amr names knowledge-based auth: {xml}");
}

#[tokio::test]
async fn wrong_answers_are_refused_and_lock_typed_codes_across_sign_ins() {
    let e = env(questions_on).await;
    seed_alice(&e, Method::Questions).await;
    // First sign-in: two wrong sets of answers.
    let (b, flow, page) = password(&e).await;
    let (status, page2) = answer(&e, &b, &flow, &page, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page2.contains("At least one answer is not correct"),
        "{page2}"
    );
    assert_eq!(asked(&page2), asked(&page), "same questions after a miss");
    let (status, _) = answer(&e, &b, &flow, &page2, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Second sign-in: the third wrong set uses up the per-user budget of three.
    let (b, flow, page) = password(&e).await;
    let (_, locked) = answer(&e, &b, &flow, &page, false).await;
    assert!(
        locked.contains("codes are not accepted for now"),
        "{locked}"
    );
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    assert!(reg.codes_locked(e.clock.unix()), "codes locked");
    // Questions and app codes alike are now off the chooser; push is still there.
    let (b, flow, _) = password(&e).await;
    let (_, chooser) = act(&e, &b, &flow, &[("action", "different")]).await;
    assert!(!chooser.contains("Answer security questions"), "{chooser}");
    assert!(!chooser.contains("verification code from my mobile app"));
    let (_, refused) = act(
        &e,
        &b,
        &flow,
        &[("action", "choose"), ("method", "questions")],
    )
    .await;
    assert!(refused.contains("not available"), "{refused}");
}

#[tokio::test]
async fn questions_are_not_offered_while_switched_off() {
    let e = env(|_| {}).await;
    seed_alice(&e, Method::Oath).await;
    let (b, flow, page) = password(&e).await;
    assert!(asked(&page).is_empty());
    let (_, chooser) = act(&e, &b, &flow, &[("action", "different")]).await;
    assert!(chooser.contains("Use verification code"), "{chooser}");
    assert!(!chooser.contains("Answer security questions"), "{chooser}");
    let (_, refused) = act(
        &e,
        &b,
        &flow,
        &[("action", "choose"), ("method", "questions")],
    )
    .await;
    assert!(refused.contains("not available"), "{refused}");
    // And answers cannot be set while off.
    let mfa = e.idp.state.policy().await.mfa.clone();
    let set = questions::set_answers(
        e.idp.state.store.as_ref(),
        &mfa,
        "alice",
        &[("First pet".into(), "x".into())],
        0,
    )
    .await;
    assert!(matches!(
        set,
        Err(questions::SetError::Refused(
            questions::Refusal::SwitchedOff
        ))
    ));
}

#[tokio::test]
async fn the_chooser_offers_questions_when_on() {
    let e = env(questions_on).await;
    seed_alice(&e, Method::Oath).await;
    let (b, flow, _) = password(&e).await;
    let (_, chooser) = act(&e, &b, &flow, &[("action", "different")]).await;
    assert!(chooser.contains("Answer security questions"), "{chooser}");
    let (_, page) = act(
        &e,
        &b,
        &flow,
        &[("action", "choose"), ("method", "questions")],
    )
    .await;
    assert_eq!(asked(&page).len(), 2, "{page}");
    let (status, done) = answer(&e, &b, &flow, &page, true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(done.contains("SAMLResponse"), "{done}");
}

#[tokio::test]
async fn an_oversized_answer_is_refused_before_anything_is_counted() {
    let e = env(questions_on).await;
    seed_alice(&e, Method::Questions).await;
    let (b, flow, _) = password(&e).await;
    let long = "x".repeat(801);
    let (status, _) = act(&e, &b, &flow, &[("action", "answers"), ("answer0", &long)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let reg = registration::load(e.idp.state.store.as_ref(), "alice")
        .await
        .expect("reg");
    let key = tessera::mfa::lockout::failure_key(&reg);
    let counted = e.idp.state.store.get(&key).await.expect("store");
    assert_eq!(counted, None, "nothing counted for a refused form");
}
