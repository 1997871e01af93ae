//! Requests a browser or a script should never send, against a real Tessera over HTTP: people
//! get Tessera's page in their language with the right status, never the framework's words;
//! machines get exactly what their endpoints answer; and the security headers hold.

mod support {
    pub mod browser;
    pub mod sp;
    pub mod tessera;
}

use reqwest::header::{ACCEPT_LANGUAGE, ALLOW, CONTENT_TYPE, COOKIE};
use reqwest::{Client, Response, StatusCode};
use support::browser::{Browser, input_value};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};

const PASSWORD: &str = "Corr3ct horse!";
/// Every page of ours links the stylesheet; axum's own answers are bare text.
const OUR_PAGE: &str = r#"<link rel="stylesheet" href="/static/tessera.css">"#;

async fn start(public_url: Option<&str>) -> (Tessera, TestSp) {
    let mut b = TesseraBuilder::new();
    b.config.mfa.enabled = false;
    if let Some(url) = public_url {
        b.config.server.public_url = url.into();
    }
    b.add_user(&[file_user("alice", PASSWORD)]);
    let sp = TestSp::new("a");
    b.add_rp("a", &sp.metadata(false), "sign = \"assertion\"\n");
    (b.start().await, sp)
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Sends the request; its status, headers and body.
async fn send(req: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, String) {
    body(req.send().await.expect("request")).await
}

async fn body(res: Response) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.expect("body"))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().expect("ascii header"))
        .unwrap_or_default()
}

/// The Tessera error page, in `lang`, saying `words`, and none of `raw`.
fn assert_page(case: &str, page: &str, lang: &str, words: &str, raw: &str) {
    assert!(page.contains(OUR_PAGE), "{case}: not our page:\n{page}");
    assert!(
        page.contains(&format!(r#"<html lang="{lang}">"#)),
        "{case}: not in {lang}:\n{page}"
    );
    assert!(
        page.contains(words),
        "{case}: expected {words:?} in\n{page}"
    );
    assert!(
        !page.contains(raw),
        "{case}: the framework's text {raw:?} reached the user:\n{page}"
    );
}

#[tokio::test]
async fn every_refused_request_gets_our_page_with_its_status_in_the_users_language() {
    let (idp, _sp) = start(None).await;
    let http = client();
    let base = &idp.base;
    let login = format!("{base}/adfs/ls/login");
    let too_large = format!("flow=x&password={}", "a".repeat(3 * 1024 * 1024));
    // (what, request, status, page language, the page's words, the framework's words)
    let cases = [
        (
            "unknown path",
            http.get(format!("{base}/no/such/page"))
                .header(ACCEPT_LANGUAGE, "de-CH, fr;q=0.5"),
            StatusCode::NOT_FOUND,
            "de",
            "Diese Seite gibt es nicht.",
            "no route",
        ),
        (
            "form without its fields",
            http.post(&login)
                .header(ACCEPT_LANGUAGE, "fr")
                .form(&[("username", "alice")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fr",
            "Le formulaire était incomplet.",
            "Failed to deserialize",
        ),
        (
            "form of the wrong content type",
            http.post(&login)
                .header(CONTENT_TYPE, "text/plain")
                .body("flow=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "en",
            "The form was incomplete. Go back and try again.",
            "Content-Type",
        ),
        (
            "query string without its fields",
            // The language cookie outranks Accept-Language, as on the sign-in pages.
            http.get(format!("{login}?nothing=here"))
                .header(COOKIE, "tessera_lang=de")
                .header(ACCEPT_LANGUAGE, "fr"),
            StatusCode::BAD_REQUEST,
            "de",
            "Die Adresse dieser Seite ist unvollständig oder beschädigt.",
            "Failed to deserialize query string",
        ),
        (
            "body over the limit",
            http.post(&login)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(too_large),
            StatusCode::PAYLOAD_TOO_LARGE,
            "en",
            "What was sent is too large.",
            "length limit",
        ),
        (
            "method the address does not take",
            http.delete(&login),
            StatusCode::METHOD_NOT_ALLOWED,
            "en",
            "This address does not accept that kind of request.",
            "Method Not Allowed",
        ),
        (
            "the admin console stays English",
            http.get(format!("{base}/admin/no-such-page"))
                .header(ACCEPT_LANGUAGE, "de"),
            StatusCode::NOT_FOUND,
            "en",
            "This page does not exist.",
            "no route",
        ),
    ];
    for (case, req, status, lang, words, raw) in cases {
        let (got, headers, page) = body(req.send().await.expect(case)).await;
        assert_eq!(got, status, "{case}: {page}");
        assert_page(case, &page, lang, words, raw);
        assert!(
            header(&headers, "content-type").starts_with("text/html"),
            "{case}"
        );
        assert!(
            header(&headers, "content-security-policy").contains("form-action 'self'"),
            "{case}: the page has the usual security headers"
        );
    }
    // A 405 still says what the address takes.
    let res = http.put(&login).send().await.expect("PUT");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = header(res.headers(), ALLOW.as_str()).to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn deliberate_answers_pass_unchanged() {
    let (idp, _sp) = start(None).await;
    let http = client();
    let base = &idp.base;

    // Our own refusal page keeps its own words (it is HTML, not the framework's text).
    let (status, _, page) = send(http.get(format!("{base}/adfs/ls/"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("There is no sign-in request here."), "{page}");

    // A carrier callback with a bad signature: the carrier gets the short plain answer.
    let (status, headers, text) = send(
        http.post(format!("{base}/mfa/sms/inbound"))
            .header("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl")
            .form(&[("From", "+15550100"), ("Body", "123456")]),
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::FORBIDDEN, "bad signature")
    );
    assert!(header(&headers, "content-type").starts_with("text/plain"));

    // A push button with a forged token: 404 in plain words for the app, not a page.
    let (status, _, text) = send(http.post(format!("{base}/mfa/callback/forged"))).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "unknown request")
    );

    // Even the framework's own refusals stay bare on machine endpoints (a carrier that
    // GETs a POST-only webhook, the simulator's API asked about a call it never placed).
    let (status, _, text) = send(http.get(format!("{base}/mfa/sms/inbound"))).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "")
    );
    let (status, _, text) = send(http.post(format!("{base}/sim/api/call/CAnone/no-answer"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!text.contains(OUR_PAGE), "{text}");

    let (status, _, text) = send(http.get(format!("{base}/healthz"))).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));
    let (status, headers, text) = send(http.get(format!("{base}/saml/metadata"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "content-type"),
        "application/samlmetadata+xml"
    );
    assert!(text.contains("EntityDescriptor"), "{text}");
}

#[tokio::test]
async fn hsts_only_when_the_public_url_is_https() {
    let http = client();
    let paths = ["/", "/no/such/page", "/healthz"];
    // Behind a TLS-terminating proxy: users come over https, the test reaches the socket
    // over plain http.
    let mut b = TesseraBuilder::new();
    let socket = b.base();
    b.config.server.public_url = socket.replace("http://", "https://");
    let _https = b.start().await;
    for path in paths {
        let res = http
            .get(format!("{socket}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(
            header(res.headers(), "strict-transport-security"),
            "max-age=31536000",
            "{path}"
        );
    }

    let (plain, _) = start(None).await;
    for path in paths {
        let res = http
            .get(format!("{}{path}", plain.base))
            .send()
            .await
            .expect("GET");
        assert!(
            res.headers().get("strict-transport-security").is_none(),
            "no HSTS over http: {path}"
        );
    }
}

#[tokio::test]
async fn forms_post_only_where_they_must() {
    let (idp, sp) = start(None).await;
    let browser = Browser::new();
    let q = sp.redirect_query(&sp.xml(&sp.req()), Some("rs"), None);
    let (login_url, status, page) = browser.get(&format!("{}/adfs/ls/?{q}", idp.base)).await;
    assert_eq!(status, StatusCode::OK, "{page}");

    let res = browser.http.get(&login_url).send().await.expect("GET");
    let csp = header(res.headers(), "content-security-policy").to_owned();
    assert!(csp.contains("form-action 'self';"), "login page CSP: {csp}");

    let flow = input_value(&page, "flow").expect("flow");
    let res = browser
        .http
        .post(format!("{}/adfs/ls/login", idp.base))
        .form(&[
            ("flow", flow.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::OK);
    let csp = header(res.headers(), "content-security-policy").to_owned();
    let page = res.text().await.expect("body");
    assert_eq!(Browser::post_form(&page).action, sp.acs);
    // The SP's origin and nothing else: not us, not the ACS path (origins only).
    assert!(csp.contains("form-action https://a.sp.test;"), "{csp}");
    assert!(!csp.contains("form-action 'self'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "the rest of the policy stays: {csp}"
    );
    assert_eq!(csp.matches("form-action").count(), 1, "{csp}");
}
