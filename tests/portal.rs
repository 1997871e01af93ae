//! The self-service portal over HTTP against the real app: signing in through the login flow
//! (password + second factor, or enrolling a first method), every action, and the refusals —
//! the last method, a bypass or a default change the admin does not allow, a missing CSRF
//! token, an expired session, a wrong confirmation code and the code limit.

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod portal;
    pub mod sp;
    pub mod tessera;
}

use reqwest::StatusCode;
use support::browser::{Browser, input_value, unescape};
use support::mfa::{code, inbox, last_text_to, wait_for};
use support::portal::{Env, PHONE, PW, User, element_text, env};
use tessera::clock::Clock;
use tessera::mfa::Method;
use tessera::mfa::oath::{OathParams, code_at, from_base32};
use tessera::mfa::registration::TokenKind;

#[tokio::test]
async fn a_user_sees_their_methods_and_changes_the_default() {
    let e = env(|_| {}).await;
    let (u, page) = e.sign_in("alice").await;
    for kind in ["method-app", "method-push", "method-phone"] {
        assert!(page.contains(kind), "{kind}: {page}");
    }
    assert!(page.contains("+X XXXXXXXX30"), "phones masked: {page}");
    assert!(page.contains("value=\"oath\" selected"), "{page}");
    let (url, status, page) = e.post(&u, "/portal/default", &[("method", "push")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.ends_with("/portal?done=default"), "{url}");
    assert!(page.contains("Your default method is saved."), "{page}");
    assert_eq!(e.reg("alice").await.default_method, Some(Method::Push));
    let log = e.log().await;
    assert!(log.contains("\"to\":\"portal.sign_in\""), "{log}");
    assert!(
        log.contains("\"to\":\"portal.set_default\",\"method\":\"push\",\"outcome\":\"success\""),
        "{log}"
    );
    // The history on the page shows the portal's own actions too.
    assert!(page.contains("portal.set_default"), "{page}");
    // A method the user does not have cannot be the default.
    let (_, status, page) = e
        .post(&u, "/portal/default", &[("method", "nonsense")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("That method is not available for your account."),
        "{page}"
    );
}

#[tokio::test]
async fn the_default_cannot_change_when_users_may_not_choose() {
    let e = env(|c| c.mfa.allow_method_choice = false).await;
    let (u, page) = e.sign_in("alice").await;
    assert!(
        page.contains("Your organisation chooses your default method."),
        "{page}"
    );
    let (_, status, page) = e.post(&u, "/portal/default", &[("method", "push")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(
        page.contains("does not let users choose their default method"),
        "{page}"
    );
    assert_eq!(e.reg("alice").await.default_method, Some(Method::Oath));
    assert!(
        e.log()
            .await
            .contains("\"to\":\"portal.set_default\",\"method\":\"push\",\"outcome\":\"failure\"")
    );
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let (_, status, _) = u
        .browser
        .post(&e.url("/portal/default"), &[("method", "push")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let (_, status, page) = u
        .browser
        .post(
            &e.url("/portal/remove"),
            &[("csrf", &wrong), ("kind", "push"), ("id", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("did not come from the portal"), "{page}");
    assert_eq!(e.reg("alice").await.default_method, Some(Method::Oath));
    assert_eq!(e.reg("alice").await.push_devices.len(), 1);
}

#[tokio::test]
async fn an_expired_session_signs_in_again_and_changes_nothing() {
    let e = env(|c| {
        c.portal.idle_timeout_secs = 300;
        c.portal.max_session_secs = 900;
    })
    .await;
    let (u, _) = e.sign_in("alice").await;
    e.clock.advance(time::Duration::seconds(200));
    let (url, _, _) = u.browser.get(&e.url("/portal")).await;
    assert!(url.ends_with("/portal"), "still signed in: {url}");
    e.clock.advance(time::Duration::seconds(301));
    let (url, _, page) = u.browser.get(&e.url("/portal")).await;
    assert!(
        url.contains("/adfs/ls/login"),
        "idle: a new sign-in: {url} {page}"
    );
    let (url, _, _) = e.post(&u, "/portal/default", &[("method", "push")]).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
    assert_eq!(e.reg("alice").await.default_method, Some(Method::Oath));

    // The absolute limit ends a session that is used all the time.
    let (u, _) = e.sign_in("alice").await;
    for _ in 0..4 {
        e.clock.advance(time::Duration::seconds(250));
        u.browser.get(&e.url("/portal")).await;
    }
    let (url, _, _) = u.browser.get(&e.url("/portal")).await;
    assert!(
        url.contains("/adfs/ls/login"),
        "past max_session_secs: {url}"
    );
}

/// Starts an app setup; returns the secret the page shows.
async fn start_app(e: &Env, u: &User) -> Vec<u8> {
    let (url, status, page) = e.post(u, "/portal/app", &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.ends_with("/portal/app"), "{url}");
    assert!(page.contains("<svg"), "a QR code: {page}");
    let uri = unescape(
        page.split("id=\"otpauth\"")
            .next()
            .and_then(|p| p.rsplit("href=\"").next())
            .and_then(|h| h.split('"').next())
            .expect("otpauth link"),
    );
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = element_text(&page, "secret");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    from_base32(&secret).expect("base32 secret")
}

#[tokio::test]
async fn an_authenticator_app_is_added_with_one_code_and_replaces_the_old_one() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let old = e.reg("alice").await.tokens;
    let secret = start_app(&e, &u).await;
    let (_, _, page) = u.browser.get(&e.url("/portal/app")).await;
    assert!(
        page.contains("A new app replaces the authenticator app you had before."),
        "alice has an app: she is told it will be replaced: {page}"
    );
    let (_, status, page) = e
        .post(&u, "/portal/app/confirm", &[("code", "000000")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("That code is not correct."), "{page}");
    assert!(page.contains("<svg"), "the same setup again: {page}");
    let right = code_at(&secret, &OathParams::default(), e.clock.unix());
    let (url, _, page) = e.post(&u, "/portal/app/confirm", &[("code", &right)]).await;
    assert!(url.ends_with("/portal?done=app"), "{url} {page}");
    let tokens = e.reg("alice").await.tokens;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].kind, TokenKind::App);
    assert_ne!(tokens[0].id, old[0].id, "replaced");
    let log = e.log().await;
    assert!(
        log.contains("\"to\":\"portal.add_app\",\"method\":\"oath\",\"outcome\":\"failure\""),
        "{log}"
    );
    assert!(
        log.contains("\"to\":\"portal.add_app\",\"method\":\"oath\",\"outcome\":\"success\""),
        "{log}"
    );
    // The code that confirmed it cannot confirm anything again.
    let (_, status, page) = e.post(&u, "/portal/app/confirm", &[("code", &right)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("The setup expired. Start again."), "{page}");
}

#[tokio::test]
async fn wrong_confirmation_codes_count_against_the_users_code_limit() {
    let e = env(|c| c.mfa.code_failures_per_user = 3).await;
    let (u, _) = e.sign_in("alice").await;
    let secret = start_app(&e, &u).await;
    for _ in 0..2 {
        let (_, _, page) = e
            .post(&u, "/portal/app/confirm", &[("code", "000000")])
            .await;
        assert!(page.contains("That code is not correct."), "{page}");
    }
    let (_, _, page) = e
        .post(&u, "/portal/app/confirm", &[("code", "000000")])
        .await;
    assert!(page.contains("Too many incorrect codes"), "{page}");
    let right = code_at(&secret, &OathParams::default(), e.clock.unix());
    let (_, _, page) = e.post(&u, "/portal/app/confirm", &[("code", &right)]).await;
    assert!(
        page.contains("Too many incorrect codes"),
        "locked, even for a right code: {page}"
    );
    let reg = e.reg("alice").await;
    assert!(
        reg.codes_locked(e.clock.unix()),
        "the sign-in's lock: {reg:?}"
    );
    assert_eq!(reg.tokens.len(), 1);
}

#[tokio::test]
async fn a_method_can_be_removed_but_never_the_last_one() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let reg = e.reg("alice").await;
    let push = reg.push_devices[0].id.clone();
    let (url, _, _) = e
        .post(&u, "/portal/remove", &[("kind", "push"), ("id", &push)])
        .await;
    assert!(url.ends_with("/portal?done=removed"), "{url}");
    let (url, _, _) = e
        .post(&u, "/portal/remove", &[("kind", "phone"), ("id", PHONE)])
        .await;
    assert!(url.ends_with("/portal?done=removed"), "{url}");
    let reg = e.reg("alice").await;
    assert!(
        reg.push_devices.is_empty() && reg.phones.is_empty(),
        "{reg:?}"
    );
    let token = reg.tokens[0].id.clone();
    let (_, status, page) = e
        .post(&u, "/portal/remove", &[("kind", "token"), ("id", &token)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("You cannot remove your last verification method."),
        "{page}"
    );
    assert_eq!(e.reg("alice").await.tokens.len(), 1);
    let (_, status, page) = e
        .post(&u, "/portal/remove", &[("kind", "token"), ("id", "nope")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("That method was not found."), "{page}");
}

#[tokio::test]
async fn a_pin_is_chosen_under_the_pin_policy() {
    let e = env(|c| c.mfa.pin_mode = true).await;
    let (u, page) = e.sign_in("alice").await;
    assert!(page.contains("action=\"/portal/pin\""), "{page}");
    let (_, status, page) = e
        .post(&u, "/portal/pin", &[("pin", "1234"), ("confirm", "1234")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Do not use a run of digits"), "{page}");
    let (_, _, page) = e
        .post(&u, "/portal/pin", &[("pin", "2580"), ("confirm", "2581")])
        .await;
    assert!(
        page.contains("The two PINs you typed are not the same."),
        "{page}"
    );
    let (url, _, _) = e
        .post(&u, "/portal/pin", &[("pin", "2580"), ("confirm", "2580")])
        .await;
    assert!(url.ends_with("/portal?done=pin"), "{url}");
    let reg = e.reg("alice").await;
    let hash = reg.pin_hash.expect("a PIN");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!e.log().await.contains("2580"), "the PIN is never logged");
}

#[tokio::test]
async fn a_self_service_bypass_only_when_the_admin_allows_it() {
    let off = env(|_| {}).await;
    let (u, page) = off.sign_in("alice").await;
    assert!(
        !page.contains("action=\"/portal/bypass\""),
        "not offered: {page}"
    );
    let form = [("minutes", "15"), ("reason", "phone at home")];
    let (_, status, page) = off.post(&u, "/portal/bypass", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("does not let users create their own one-time bypass"),
        "{page}"
    );
    let key = tessera::login::bypass_key("alice");
    assert!(
        off.idp
            .state
            .store
            .get(&key)
            .await
            .expect("store")
            .is_none()
    );

    let on = env(|c| c.mfa.allow_self_bypass = true).await;
    let (u, page) = on.sign_in("alice").await;
    assert!(page.contains("action=\"/portal/bypass\""), "{page}");
    for bad in [
        [("minutes", "0"), ("reason", "x")],
        [("minutes", "61"), ("reason", "x")],
        [("minutes", "5"), ("reason", " ")],
    ] {
        let (_, status, _) = on.post(&u, "/portal/bypass", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let (url, _, _) = on.post(&u, "/portal/bypass", &form).await;
    assert!(url.ends_with("/portal?done=bypass"), "{url}");
    assert!(on.idp.state.store.get(&key).await.expect("store").is_some());
    assert!(on.log().await.contains("15 min: phone at home"));
    // The next application sign-in uses it up and skips the second factor.
    on.clock.advance(time::Duration::seconds(30));
    let b = Browser::new();
    let sso = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        on.idp.base, on.sp.entity_id
    );
    let (url, _, page) = b.get(&sso).await;
    let (_, _, page) = b.sign_in(&url, &page, "alice", PW).await;
    assert!(
        page.contains("SAMLResponse"),
        "signed in with the bypass: {page}"
    );
    assert!(
        on.idp.state.store.get(&key).await.expect("store").is_none(),
        "used up"
    );
}

/// A one-request HTTP server that hands back the body it received.
async fn webhook() -> (String, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&buf).contains("blocked_until") {
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let _ = s
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await;
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    (url, rx)
}

#[tokio::test]
async fn this_wasnt_me_blocks_the_second_factor_logs_it_and_calls_the_webhook() {
    let (url, received) = webhook().await;
    let e = env(|c| c.portal.report_webhook_url = Some(url)).await;
    // Someone signs in to the application as alice.
    e.clock.advance(time::Duration::seconds(30));
    let b = Browser::new();
    let sso = format!(
        "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
        e.idp.base, e.sp.entity_id
    );
    let (url, _, page) = b.get(&sso).await;
    let flow = input_value(&page, "flow").expect("flow");
    b.sign_in(&url, &page, "alice", PW).await;
    let now = e.clock.unix();
    b.post(
        &e.url("/adfs/ls/login"),
        &[("flow", &flow), ("action", "code"), ("code", &code(now))],
    )
    .await;

    let (u, page) = e.sign_in("alice").await;
    assert!(
        page.contains(&format!("name=\"flow\" value=\"{flow}\"")),
        "listed: {page}"
    );
    let (_, status, page) = e
        .post(&u, "/portal/report", &[("flow", "not-a-flow")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("That sign-in was not found in your recent history."),
        "{page}"
    );
    let (url, _, page) = e.post(&u, "/portal/report", &[("flow", &flow)]).await;
    assert!(url.ends_with("/portal?done=reported"), "{url}");
    assert!(page.contains("id=\"blocked\""), "{page}");
    let reg = e.reg("alice").await;
    assert!(reg.is_blocked(e.clock.unix()), "{reg:?}");
    assert!(reg.block_reason.unwrap_or_default().contains(&flow));
    let log = e.log().await;
    assert!(log.contains("\"to\":\"portal.report\""), "{log}");
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), received)
        .await
        .expect("webhook called")
        .expect("body");
    assert!(
        body.contains("\"event\":\"portal.report\"") && body.contains(&flow),
        "{body}"
    );
    // Blocked like a fraud report: the next sign-in's second factor is refused.
    let (_, _, page) = e.password("alice").await;
    assert!(page.contains("blocked after a fraud report"), "{page}");
}

#[tokio::test]
async fn a_phone_is_added_after_a_texted_code_and_a_push_device_after_approval() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let (_, status, page) = e
        .post(
            &u,
            "/portal/phone",
            &[("number", "no number"), ("channel", "sms")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("does not look like a phone number"), "{page}");
    let new = "+15550100999";
    let (url, _, page) = e
        .post(
            &u,
            "/portal/phone",
            &[
                ("number", "+1 555 010 0999"),
                ("channel", "sms"),
                ("replaces", PHONE),
            ],
        )
        .await;
    assert!(url.ends_with("/portal/phone"), "{url} {page}");
    let body = last_text_to(&e.idp, new).await;
    let texted = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("code")
        .to_owned();
    let (_, status, page) = e
        .post(&u, "/portal/phone/confirm", &[("code", "000000")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("That code is not correct."), "{page}");
    let (url, _, _) = e
        .post(&u, "/portal/phone/confirm", &[("code", &texted)])
        .await;
    assert!(url.ends_with("/portal?done=phone"), "{url}");
    let phones: Vec<String> = e
        .reg("alice")
        .await
        .phones
        .into_iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(phones, vec![new.to_owned()], "changed");

    let (url, _, page) = e.post(&u, "/portal/push", &[]).await;
    assert!(url.ends_with("/portal/push"), "{url}");
    let topic = element_text(&page, "topic");
    let push = wait_for("a push", || {
        inbox(&e.idp)
            .pushes
            .iter()
            .rev()
            .find(|p| p.topic == topic)
            .cloned()
    })
    .await;
    let approve = push
        .actions
        .iter()
        .position(|a| a.label == "Approve")
        .expect("approve");
    let res = u
        .browser
        .http
        .post(e.url(&format!("/sim/api/push/{}/action/{approve}", push.id)))
        .send()
        .await
        .expect("sim");
    assert!(res.status().is_success());
    let (url, _, _) = u.browser.get(&e.url("/portal/push")).await;
    assert!(url.ends_with("/portal?done=push"), "{url}");
    let devices = e.reg("alice").await.push_devices;
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().any(|d| d.topic == topic));
}

#[tokio::test]
async fn a_user_without_a_method_enrols_during_the_portal_sign_in() {
    let e = env(|_| {}).await;
    let (browser, flow, page) = e.password("dave").await;
    assert!(page.contains("Set up verification"), "{page}");
    let (_, _, page) = browser
        .post(
            &e.url("/adfs/ls/login"),
            &[("flow", &flow), ("action", "enroll_app")],
        )
        .await;
    let secret = from_base32(&element_text(&page, "secret")).expect("secret");
    let right = code_at(&secret, &OathParams::default(), e.clock.unix());
    let (url, _, page) = browser
        .post(
            &e.url("/adfs/ls/login"),
            &[
                ("flow", &flow),
                ("action", "enroll_confirm"),
                ("code", &right),
            ],
        )
        .await;
    assert!(url.ends_with("/portal"), "{url} {page}");
    assert!(page.contains("method-app"), "{page}");

    let closed = env(|c| c.mfa.allow_enrollment = false).await;
    let (_, _, page) = closed.password("dave").await;
    assert!(page.contains("No verification method is set up"), "{page}");
}

#[tokio::test]
async fn the_portal_speaks_the_users_language_and_signs_out() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let (_, _, page) = u.browser.get(&e.url("/portal?lang=de")).await;
    assert!(page.contains("lang=\"de\""), "{page}");
    assert!(page.contains("Meine Anmeldemethoden"), "{page}");
    assert!(page.contains("href=\"/portal?lang=fr\""), "{page}");
    let (_, _, page) = u.browser.get(&e.url("/portal")).await;
    assert!(
        page.contains("Meine Anmeldemethoden"),
        "the choice is kept: {page}"
    );
    let (_, status, page) = e.post(&u, "/portal/signout", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"signed-out\""), "{page}");
    let (url, _, _) = u.browser.get(&e.url("/portal")).await;
    assert!(url.contains("/adfs/ls/login"), "{url}");
}

#[tokio::test]
async fn a_phone_is_added_after_an_answered_call() {
    let e = env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let desk = "+15550100777";
    let form = [("number", desk), ("channel", "call"), ("kind", "office")];
    let (url, _, page) = e.post(&u, "/portal/phone", &form).await;
    assert!(url.ends_with("/portal/phone"), "{url} {page}");
    assert!(page.contains("We are calling"), "{page}");
    let (_, status, page) = e.post(&u, "/portal/phone/confirm", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("The call has not been answered yet."),
        "{page}"
    );
    let call = wait_for("a call with its script", || {
        inbox(&e.idp)
            .calls
            .iter()
            .rev()
            .find(|c| c.to == desk && c.gather.is_some())
            .map(|c| c.id.clone())
    })
    .await;
    let res = u
        .browser
        .http
        .post(e.url(&format!("/sim/api/call/{call}/digits")))
        .form(&[("digits", "#")])
        .send()
        .await
        .expect("sim");
    assert!(res.status().is_success());
    let (url, _, _) = e.post(&u, "/portal/phone/confirm", &[]).await;
    assert!(url.ends_with("/portal?done=phone"), "{url}");
    let reg = e.reg("alice").await;
    let added = reg.phones.iter().find(|p| p.number == desk).expect("added");
    assert_eq!(added.kind, tessera::mfa::registration::PhoneKind::Office);
    assert_eq!(reg.phones.len(), 2, "the old number stays: {reg:?}");
}
