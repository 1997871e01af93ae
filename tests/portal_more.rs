//! The portal's hardware-token activation and security questions over HTTP against the real
//! app: a token activated with one code then signs in, wrong codes are counted up to the
//! lock, someone else's serial reads like an unknown one; answers set in the portal are asked
//! at sign-in, bad sets are refused in the user's language, the page is absent while the
//! method is off, and forms without the CSRF token change nothing.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod portal;
    pub mod sp;
    pub mod tessera;
}

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::portal::{Env, PW, User, element_text, env};
use tessera::admin::Actor;
use tessera::admin::tokens;
use tessera::clock::Clock;
use tessera::config::Config;
use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, base32, code_at};
use tessera::mfa::registration::TokenKind;
use tessera::mfa::tokens::inventory::{self, Deps};

const HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";
const FOB: &[u8] = b"hardware-token-secret-20";
const BOB_FOB: &[u8] = b"another-hw-token-secret!";
const QUESTIONS: [&str; 4] = [
    "First pet",
    "Birth city",
    "First school",
    "Favourite colour",
];
const NO_SUCH_TOKEN: &str = "No token with that serial number is assigned to you.";

fn questions_on(c: &mut Config) {
    c.mfa.methods.push(Method::Questions);
    c.mfa.security_questions = QUESTIONS.map(String::from).to_vec();
    c.mfa.questions_required = 2;
    c.mfa.questions_setup = 3;
}

impl Env {
    /// Imports T1 (alice's, a Contoso C200) and B1 (bob's) into the inventory, unactivated.
    async fn import_tokens(&self) {
        let actor = Actor {
            name: "test".into(),
            client_ip: "local".into(),
        };
        let deps = Deps {
            store: self.idp.state.store.as_ref(),
            secrets: &self.idp.state.secrets,
            now: self.clock.unix(),
        };
        let body = format!(
            "{HEADER}\nalice@corp.example,T1,{},30,Contoso,C200\nbob@corp.example,B1,{},30,Contoso,C200\n",
            base32(FOB),
            base32(BOB_FOB)
        );
        let dir = self.idp.state.directory.as_ref();
        let r = tokens::import(&deps, dir, &actor, "f", body.as_bytes(), None)
            .await
            .expect("import");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    /// An SP sign-in up to the page after the password: (browser, flow, page).
    async fn sp_password(&self, user: &str) -> (Browser, String, String) {
        let browser = Browser::new();
        let url = self.url(&format!(
            "/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.sp.entity_id
        ));
        let (url, _, page) = browser.get(&url).await;
        let flow = input_value(&page, "flow").expect("flow");
        let (_, _, page) = browser.sign_in(&url, &page, user, PW).await;
        (browser, flow, page)
    }

    async fn act(&self, b: &Browser, flow: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        b.step(&self.idp.base, flow, fields).await
    }
}

#[tokio::test]
async fn a_hardware_token_is_activated_with_one_code_and_then_signs_in() {
    let e = env(|_| {}).await;
    e.import_tokens().await;
    let (u, page) = e.sign_in("alice").await;
    assert!(page.contains("id=\"activate-token\""), "{page}");
    let p = OathParams::default();
    // Bob's token, even with its right code, reads exactly like a serial that does not exist.
    let bobs = code_at(BOB_FOB, &p, e.clock.unix());
    let (_, status, page) = e
        .post(&u, "/portal/token", &[("serial", "B1"), ("code", &bobs)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let refused_bobs = element_text(&page, "error");
    assert!(refused_bobs.starts_with(NO_SUCH_TOKEN), "{refused_bobs}");
    let (_, status, page) = e
        .post(
            &u,
            "/portal/token",
            &[("serial", "NOPE9"), ("code", "123456")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(element_text(&page, "error"), refused_bobs);
    let long = "X".repeat(300);
    let (_, status, page) = e
        .post(
            &u,
            "/portal/token",
            &[("serial", &long), ("code", "123456")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(element_text(&page, "error"), refused_bobs);
    let store = e.idp.state.store.as_ref();
    let b1 = inventory::get(store, "B1").await.expect("get").expect("b1");
    assert_eq!(b1.activated, None, "bob's token untouched");

    let right = code_at(FOB, &p, e.clock.unix());
    let (url, _, page) = e
        .post(&u, "/portal/token", &[("serial", "t1"), ("code", &right)])
        .await;
    assert!(url.ends_with("/portal?done=token"), "{url} {page}");
    assert!(page.contains("Your hardware token is activated."), "{page}");
    assert!(page.contains("method-hardware"), "{page}");
    assert!(page.contains("C200 T1"), "model and serial: {page}");
    let t1 = inventory::get(store, "T1").await.expect("get").expect("t1");
    assert!(t1.activated.is_some());
    let reg = e.reg("alice").await;
    assert!(
        reg.tokens.iter().any(|t| t.kind
            == TokenKind::Hardware {
                serial: "T1".into()
            }),
        "{reg:?}"
    );
    let log = e.log().await;
    assert!(
        log.contains(
            "\"to\":\"portal.activate_token\",\"method\":\"oath\",\"outcome\":\"success\""
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "\"to\":\"portal.activate_token\",\"method\":\"oath\",\"outcome\":\"failure\""
        ),
        "{log}"
    );

    // The token now signs alice in to an application.
    e.clock.advance(time::Duration::seconds(30));
    let (b, flow, page) = e.sp_password("alice").await;
    assert!(page.contains("name=\"code\""), "{page}");
    let fob = code_at(FOB, &p, e.clock.unix());
    let (_, page) = e
        .act(&b, &flow, &[("action", "code"), ("code", &fob)])
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn wrong_activation_codes_are_counted_and_lock_even_the_right_one() {
    let e = env(|c| c.mfa.code_failures_per_user = 3).await;
    e.import_tokens().await;
    let (u, _) = e.sign_in("alice").await;
    for _ in 0..2 {
        let (_, status, page) = e
            .post(&u, "/portal/token", &[("serial", "T1"), ("code", "000000")])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("That code is not correct."), "{page}");
    }
    let (_, _, page) = e
        .post(&u, "/portal/token", &[("serial", "T1"), ("code", "000000")])
        .await;
    assert!(page.contains("Too many incorrect codes"), "{page}");
    let right = code_at(FOB, &OathParams::default(), e.clock.unix());
    let (_, _, page) = e
        .post(&u, "/portal/token", &[("serial", "T1"), ("code", &right)])
        .await;
    assert!(page.contains("Too many incorrect codes"), "locked: {page}");
    let store = e.idp.state.store.as_ref();
    let t1 = inventory::get(store, "T1").await.expect("get").expect("t1");
    assert_eq!(t1.activated, None);
    let reg = e.reg("alice").await;
    assert!(reg.codes_locked(e.clock.unix()), "{reg:?}");
    assert!(!reg.tokens.iter().any(|t| t.kind != TokenKind::App));
}

/// The questions form: slot i picks question `qs[i]` (an index) and answers `answers[i]`.
fn answer_form<'a>(qs: &'a [String], answers: &'a [String]) -> Vec<(String, &'a str)> {
    let mut form = Vec::new();
    for (i, (q, a)) in qs.iter().zip(answers).enumerate() {
        form.push((format!("q{i}"), q.as_str()));
        form.push((format!("a{i}"), a.as_str()));
    }
    form
}

async fn post_answers(
    e: &Env,
    u: &User,
    qs: &[&str],
    answers: &[&str],
) -> (String, StatusCode, String) {
    let qs: Vec<String> = qs.iter().map(|s| (*s).to_owned()).collect();
    let answers: Vec<String> = answers.iter().map(|s| (*s).to_owned()).collect();
    let form = answer_form(&qs, &answers);
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    e.post(u, "/portal/questions", &fields).await
}

#[tokio::test]
async fn security_answers_set_in_the_portal_are_asked_at_sign_in() {
    let e = env(questions_on).await;
    let (u, page) = e.sign_in("alice").await;
    assert!(page.contains("id=\"questions-link\""), "{page}");
    assert!(
        page.contains("You have not answered security questions yet."),
        "{page}"
    );
    let (_, status, page) = u.browser.get(&e.url("/portal/questions")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for i in 0..3 {
        assert!(page.contains(&format!("name=\"q{i}\"")), "{page}");
    }
    assert!(
        !page.contains("name=\"q3\""),
        "questions_setup slots: {page}"
    );
    assert!(page.contains("Favourite colour"), "{page}");

    // Refusals, shown on the page in the user's language.
    u.browser.get(&e.url("/portal?lang=de")).await;
    let (_, status, page) = post_answers(&e, &u, &["0", "1", "2"], &["Rex", "Bern", ""]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        element_text(&page, "error"),
        "Beantworten Sie mindestens 3 Fragen."
    );
    u.browser.get(&e.url("/portal?lang=en")).await;
    let (_, _, page) = post_answers(&e, &u, &["0", "1", "2"], &["Rex", "Bern", ""]).await;
    assert_eq!(element_text(&page, "error"), "Answer at least 3 questions.");
    let (_, status, page) = post_answers(&e, &u, &["0", "0", "2"], &["Rex", "Bern", "X"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("Each question can be answered only once."),
        "{page}"
    );
    let long = "y".repeat(201);
    let (_, _, page) = post_answers(&e, &u, &["0", "1", "2"], &["Rex", &long, "X"]).await;
    assert!(
        page.contains("An answer can have at most 200 characters."),
        "{page}"
    );
    let (_, _, page) = post_answers(&e, &u, &["0", "1", "9"], &["Rex", "Bern", "X"]).await;
    assert!(
        page.contains("That question is not one of those offered."),
        "{page}"
    );
    assert!(e.reg("alice").await.security_answers.is_empty());

    let (url, _, page) =
        post_answers(&e, &u, &["0", "1", "3"], &["Rex the Dog", "Bern", "Green"]).await;
    assert!(url.ends_with("/portal?done=questions"), "{url} {page}");
    assert!(page.contains("Your security answers are saved."), "{page}");
    assert!(page.contains("method-questions"), "{page}");
    assert!(page.contains("Answers set"), "{page}");
    assert!(!page.contains("Rex"), "never the answers: {page}");
    let reg = e.reg("alice").await;
    let asked: Vec<&str> = reg
        .security_answers
        .iter()
        .map(|a| a.question.as_str())
        .collect();
    assert_eq!(asked, ["First pet", "Birth city", "Favourite colour"]);
    let log = e.log().await;
    assert!(
        log.contains(
            "\"to\":\"portal.set_questions\",\"method\":\"questions\",\"outcome\":\"success\""
        ),
        "{log}"
    );
    assert!(!log.contains("Rex"), "{log}");
    assert!(
        log.contains("Answer at least 3 questions."),
        "refusals logged, filled in: {log}"
    );

    // The next sign-in offers them, and the answers sign in.
    let (b, flow, _) = e.sp_password("alice").await;
    let (_, chooser) = e.act(&b, &flow, &[("action", "different")]).await;
    assert!(chooser.contains("Answer security questions"), "{chooser}");
    let (_, page) = e
        .act(&b, &flow, &[("action", "choose"), ("method", "questions")])
        .await;
    let known = [
        ("First pet", "rex  THE dog"),
        ("Birth city", "bern"),
        ("Favourite colour", "GREEN"),
    ];
    let mut fields: Vec<(String, String)> = vec![("action".into(), "answers".into())];
    for i in 0..2 {
        let label = format!("<label for=\"answer{i}\">");
        let at = page.find(&label).unwrap_or_else(|| panic!("{page}")) + label.len();
        let q = unescape(&page[at..at + page[at..].find("</label>").expect("label")]);
        let a = known.iter().find(|(k, _)| *k == q).expect("one of hers").1;
        fields.push((format!("answer{i}"), a.to_owned()));
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_, done) = e.act(&b, &flow, &fields).await;
    assert!(done.contains("SAMLResponse"), "{done}");
}

#[tokio::test]
async fn the_questions_page_is_absent_while_the_method_is_off() {
    let e = env(|c| c.mfa.security_questions = QUESTIONS.map(String::from).to_vec()).await;
    let (u, page) = e.sign_in("alice").await;
    assert!(!page.contains("questions-link"), "{page}");
    let (_, status, _) = u.browser.get(&e.url("/portal/questions")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, status, page) = post_answers(&e, &u, &["0", "1", "2"], &["Rex", "Bern", "Green"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("Security questions are switched off."),
        "{page}"
    );
    assert!(e.reg("alice").await.security_answers.is_empty());
}

#[tokio::test]
async fn token_and_question_forms_without_the_csrf_token_are_refused() {
    let e = env(questions_on).await;
    e.import_tokens().await;
    let (u, _) = e.sign_in("alice").await;
    let right = code_at(FOB, &OathParams::default(), e.clock.unix());
    let (_, status, _) = u
        .browser
        .post(
            &e.url("/portal/token"),
            &[("serial", "T1"), ("code", &right)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let form = [
        ("q0", "0"),
        ("a0", "a"),
        ("q1", "1"),
        ("a1", "b"),
        ("q2", "2"),
        ("a2", "c"),
    ];
    let (_, status, _) = u.browser.post(&e.url("/portal/questions"), &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let store = e.idp.state.store.as_ref();
    let t1 = inventory::get(store, "T1").await.expect("get").expect("t1");
    assert_eq!(t1.activated, None);
    assert!(e.reg("alice").await.security_answers.is_empty());
}
