//! "Languages offered", over HTTP against a real Tessera: the browser's Accept-Language,
//! the language links and their cookie, languages an admin does not offer, translated
//! messages that carry a masked phone number, and the language travelling with a challenge
//! to the phone (the text, the call's spoken script, the push).

mod support {
    pub mod browser;
    pub mod mfa;
    pub mod portal;
    pub mod sp;
    pub mod tessera;
}

use reqwest::header::{ACCEPT_LANGUAGE, HeaderMap, HeaderValue, SET_COOKIE};
use reqwest::{Client, StatusCode, redirect::Policy};
use support::browser::{Browser, input_value};
use support::mfa::{enrol_all, inbox, last_text_to, wait_for};
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::admin::Actor;
use tessera::i18n::Lang;
use tessera::mfa::Method;
use tessera::mfa::settings::MfaSettings;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
const GERMAN: &str = "de-DE,de;q=0.9,en;q=0.5";

struct Env {
    idp: Tessera,
    sp: TestSp,
}

async fn env(tweak: impl FnOnce(&mut MfaSettings)) -> Env {
    let mut b = TesseraBuilder::new();
    tweak(&mut b.config.mfa);
    b.add_user(&[file_user("alice", PW)]);
    let sp = TestSp::new("lang");
    b.add_rp("lang", &sp.metadata(false), "");
    Env {
        idp: b.start().await,
        sp,
    }
}

/// A browser whose every request says which languages its user reads.
fn browser(accept_language: &str) -> Browser {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT_LANGUAGE,
        HeaderValue::from_str(accept_language).expect("header"),
    );
    Browser {
        http: Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .default_headers(headers)
            .build()
            .expect("client"),
    }
}

impl Env {
    /// IdP-initiated sign-in up to the login page: (its URL, the page).
    async fn login_page(&self, b: &Browser) -> (String, String) {
        let url = format!(
            "{}/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.idp.base, self.sp.entity_id
        );
        let (url, status, page) = b.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        (url, page)
    }

    /// GET of a sign-in page with `?lang=`, following nothing: (Set-Cookie values, page).
    /// Its status is the page's own (401 after a wrong password), so it is not checked.
    async fn switch(&self, b: &Browser, flow: &str, lang: &str) -> (Vec<String>, String) {
        let res = b
            .http
            .get(format!(
                "{}/adfs/ls/login?flow={flow}&lang={lang}",
                self.idp.base
            ))
            .send()
            .await
            .expect("GET");
        let cookies = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        (cookies, res.text().await.expect("body"))
    }

    async fn act(&self, b: &Browser, flow: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        b.step(&self.idp.base, flow, fields).await
    }
}

fn lang_cookie(cookies: &[String]) -> Option<&String> {
    cookies.iter().find(|c| c.starts_with("tessera_lang="))
}

#[tokio::test]
async fn a_german_browser_signs_in_in_german() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Sms, PHONE).await;
    let b = browser(GERMAN);
    let (url, page) = e.login_page(&b).await;
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(page.contains("<title>Anmelden</title>"), "{page}");
    assert!(page.contains("<h1>Anmelden</h1>"), "{page}");
    assert!(page.contains("<label for=\"password\">Kennwort</label>"));
    assert!(page.contains("weiter zu <strong>"), "{page}");
    // The other languages, by their own names; the current one is not a link.
    let flow = input_value(&page, "flow").expect("flow");
    assert!(page.contains(&format!(
        "href=\"/adfs/ls/login?flow={flow}&amp;lang=fr\" lang=\"fr\" hreflang=\"fr\" id=\"lang-fr\">Français</a>"
    )));
    assert!(page.contains("id=\"lang-en\">English</a>"));
    assert!(page.contains("<span lang=\"de\" aria-current=\"true\">Deutsch</span>"));

    let (_, status, page) = b.sign_in(&url, &page, "alice", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("Falsche Benutzer-ID oder falsches Kennwort."),
        "{page}"
    );

    let (_, _, page) = b.sign_in(&url, &page, "alice", PW).await;
    assert!(page.contains("<h1>Identität überprüfen</h1>"), "{page}");
    assert!(
        page.contains("Geben Sie den Code ein, den wir per SMS an +X XXXXXXXX30 gesendet haben"),
        "{page}"
    );
    let (_, page) = e
        .act(&b, &flow, &[("action", "code"), ("code", "000000")])
        .await;
    assert!(
        page.contains("Dieser Code ist nicht korrekt. Versuchen Sie es erneut."),
        "a message stored in the flow is translated when shown: {page}"
    );

    let (_, page) = e.act(&b, &flow, &[("action", "different")]).await;
    assert!(
        page.contains("<h1>Andere Überprüfungsoption verwenden</h1>"),
        "{page}"
    );
    assert!(
        page.contains(">Mich unter +X XXXXXXXX30 anrufen</button>"),
        "{page}"
    );
    assert!(
        page.contains(">SMS an +X XXXXXXXX30 senden</button>"),
        "{page}"
    );
    assert!(page.contains(">Benachrichtigung an meine mobile App senden</button>"));
    assert!(!page.contains("Call me"), "{page}");
}

#[tokio::test]
async fn a_language_link_switches_and_the_cookie_keeps_the_choice() {
    let e = env(|_| {}).await;
    let b = browser(GERMAN);
    let (url, page) = e.login_page(&b).await;
    let flow = input_value(&page, "flow").expect("flow");

    let (cookies, page) = e.switch(&b, &flow, "fr").await;
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(page.contains("<h1>Se connecter</h1>"), "{page}");
    assert!(page.contains("id=\"lang-de\">Deutsch</a>"));
    let cookie = lang_cookie(&cookies).expect("the pick is remembered");
    for part in [
        "tessera_lang=fr",
        "Path=/",
        "SameSite=Lax",
        "HttpOnly",
        "Max-Age=31536000",
    ] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }

    // The next page carries no ?lang=, and the browser still says German: the cookie wins.
    let (_, status, page) = b.sign_in(&url, &page, "alice", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(
        page.contains("ID d'utilisateur ou mot de passe incorrect."),
        "{page}"
    );
    // And so does a new sign-in.
    let (_, page) = e.login_page(&b).await;
    assert!(page.contains("<h1>Se connecter</h1>"), "{page}");

    // Unknown languages are ignored, and set no cookie.
    let (cookies, page) = e.switch(&b, &flow, "xx").await;
    assert!(lang_cookie(&cookies).is_none(), "{cookies:?}");
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
}

#[tokio::test]
async fn languages_not_offered_are_ignored() {
    let e = env(|m| m.languages = vec![Lang::En]).await;
    let b = browser(GERMAN);
    let (_, page) = e.login_page(&b).await;
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("<h1>Sign in</h1>"), "{page}");
    assert!(
        !page.contains("hreflang"),
        "one language: nothing to switch to"
    );
    let flow = input_value(&page, "flow").expect("flow");
    let (cookies, page) = e.switch(&b, &flow, "de").await;
    assert!(lang_cookie(&cookies).is_none(), "{cookies:?}");
    assert!(page.contains("<h1>Sign in</h1>"), "{page}");

    // An admin offers French too (the settings override, in force without a restart).
    let edit = tessera::mfa::table::find("languages").expect("setting");
    let actor = Actor {
        name: "test".into(),
        client_ip: "local".into(),
    };
    tessera::admin::settings::apply(
        e.idp.state.store.as_ref(),
        e.idp.state.settings.base(),
        &actor,
        0,
        &[(edit, serde_json::json!(["en", "fr"]))],
    )
    .await
    .expect("override");
    tokio::time::sleep(tessera::mfa::live::REFRESH + std::time::Duration::from_millis(200)).await;
    let (_, page) = e.login_page(&b).await;
    assert!(
        page.contains("<h1>Sign in</h1>"),
        "German is still not offered: {page}"
    );
    let flow = input_value(&page, "flow").expect("flow");
    let (cookies, page) = e.switch(&b, &flow, "fr").await;
    assert!(lang_cookie(&cookies).is_some());
    assert!(page.contains("<h1>Se connecter</h1>"), "{page}");
}

#[tokio::test]
async fn error_pages_before_any_sign_in_follow_the_browser() {
    let e = env(|m| m.default_language = Lang::De).await;
    let (_, status, page) = browser("fr-CA, en;q=0.1")
        .get(&format!("{}/adfs/ls/", e.idp.base))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("<title>Problème de connexion</title>"),
        "{page}"
    );
    assert!(page.contains("Aucune demande de connexion ici."), "{page}");
    // A browser that asks for nothing we have gets the default language.
    let (_, _, page) = browser("ja, zh;q=0.5")
        .get(&format!("{}/adfs/ls/", e.idp.base))
        .await;
    assert!(
        page.contains("Hier liegt keine Anmeldeanforderung vor."),
        "{page}"
    );
    // A hostile header is survived, and falls back the same way (kept under
    // server.max_header_bytes: a larger head gets 431 before any handler sees it).
    let hostile = format!("{}fr", "de;q=abc,;;;,*;q=0,".repeat(600));
    let (_, status, page) = browser(&hostile)
        .get(&format!("{}/adfs/ls/", e.idp.base))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("<html lang=\"de\">"), "{page}");
}

/// The newest call to PHONE once the carrier has fetched a script that waits for keys.
async fn ringing_call(idp: &Tessera) -> tessera::sim::SimCall {
    wait_for("a call with its script", || {
        inbox(idp)
            .calls
            .iter()
            .rev()
            .find(|c| c.to == PHONE && c.gather.is_some())
            .cloned()
    })
    .await
}

#[tokio::test]
async fn a_spanish_sign_in_texts_and_calls_in_spanish() {
    let e = env(|_| {}).await;
    enrol_all(&e.idp, "alice", Method::Sms, PHONE).await;
    let b = browser("es-ES,es;q=0.9,en;q=0.3");
    let (url, page) = e.login_page(&b).await;
    assert!(page.contains("<html lang=\"es\">"), "{page}");
    assert!(page.contains("<h1>Iniciar sesión</h1>"), "{page}");
    let flow = input_value(&page, "flow").expect("flow");

    let (_, _, page) = b.sign_in(&url, &page, "alice", PW).await;
    assert!(
        page.contains("Introduzca el código que le hemos enviado por SMS al +X XXXXXXXX30"),
        "{page}"
    );
    let text = wait_for("a text", || inbox(&e.idp).texts.back().cloned()).await;
    assert_eq!(text.to, PHONE);
    assert!(
        text.body.starts_with("Su código de verificación de ") && text.body.contains("Caduca en "),
        "the text is in Spanish: {}",
        text.body
    );
    assert!(!text.body.contains("verification"), "{}", text.body);

    // The same sign-in by phone call: the script speaks Spanish, and says so.
    let (_, page) = e.act(&b, &flow, &[("action", "different")]).await;
    assert!(
        page.contains(">Llamarme al +X XXXXXXXX30</button>"),
        "{page}"
    );
    let (_, page) = e
        .act(&b, &flow, &[("action", "choose"), ("method", "call")])
        .await;
    assert!(page.contains("Estamos llamando a su teléfono"), "{page}");
    let call = ringing_call(&e.idp).await;
    assert_eq!(call.language.as_deref(), Some("es-ES"), "{call:?}");
    let said = call.prompt.join(" ");
    assert!(
        said.contains("Alguien está iniciando sesión con su cuenta.")
            && said.contains("pulse la tecla almohadilla"),
        "{said}"
    );
    assert_eq!(
        call.fallback,
        ["No se ha recibido ninguna respuesta. Adiós."]
    );
    let res = b
        .http
        .post(format!("{}/sim/api/call/{}/digits", e.idp.base, call.id))
        .form(&[("digits", "#")])
        .send()
        .await
        .expect("keys");
    assert_eq!(res.status(), StatusCode::OK);
    let ended = inbox(&e.idp)
        .calls
        .into_iter()
        .find(|c| c.id == call.id)
        .expect("the call");
    assert_eq!(ended.prompt, ["Gracias. Ha iniciado sesión. Adiós."]);
    assert_eq!(ended.language.as_deref(), Some("es-ES"));
    // And the sign-in goes on to the application.
    let (_, status, page) = b
        .get(&format!("{}/adfs/ls/login?flow={flow}", e.idp.base))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn a_push_follows_the_language_the_user_picked() {
    let e = env(|_| {}).await;
    let topic = enrol_all(&e.idp, "alice", Method::Push, PHONE).await;
    // The browser says German; the user picks Italian on the page, and the phone follows.
    let b = browser(GERMAN);
    let (url, page) = e.login_page(&b).await;
    let flow = input_value(&page, "flow").expect("flow");
    let (_, page) = e.switch(&b, &flow, "it").await;
    assert!(page.contains("<html lang=\"it\">"), "{page}");
    let (_, _, page) = b.sign_in(&url, &page, "alice", PW).await;
    assert!(
        page.contains("Abbiamo inviato una notifica alla Sua app"),
        "{page}"
    );
    let push = wait_for("a push", || {
        inbox(&e.idp).pushes.into_iter().find(|p| p.topic == topic)
    })
    .await;
    assert!(push.title.starts_with("Accesso a "), "{}", push.title);
    assert_eq!(
        push.message,
        "Richiesta di accesso per alice. La approvi se è stato Lei."
    );
    let labels: Vec<&str> = push.actions.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["Approva", "Rifiuta", "Rifiuta e segnala frode"]);

    // The phone app's request on "Approva" is answered in Italian too.
    let res = Client::new()
        .post(&push.actions[0].url)
        .send()
        .await
        .expect("approve");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.text().await.expect("body"),
        "Grazie. Può chiudere questa notifica."
    );
    let (_, _, page) = b
        .get(&format!("{}/adfs/ls/login?flow={flow}", e.idp.base))
        .await;
    assert!(page.contains("SAMLResponse"), "{page}");
}

#[tokio::test]
async fn the_language_links_offer_all_seven_languages() {
    let e = env(|_| {}).await;
    let b = browser("nl-BE, nl;q=0.9");
    let (_, page) = e.login_page(&b).await;
    assert!(page.contains("<html lang=\"nl\">"), "{page}");
    assert!(page.contains("<h1>Aanmelden</h1>"), "{page}");
    assert!(page.contains("<span lang=\"nl\" aria-current=\"true\">Nederlands</span>"));
    let flow = input_value(&page, "flow").expect("flow");
    for (code, name) in [
        ("en", "English"),
        ("de", "Deutsch"),
        ("fr", "Français"),
        ("es", "Español"),
        ("it", "Italiano"),
        ("pt", "Português"),
    ] {
        assert!(
            page.contains(&format!(
                "href=\"/adfs/ls/login?flow={flow}&amp;lang={code}\" lang=\"{code}\" hreflang=\"{code}\" id=\"lang-{code}\">{name}</a>"
            )),
            "a link to {name}: {page}"
        );
    }
    let (cookies, page) = e.switch(&b, &flow, "pt").await;
    assert!(lang_cookie(&cookies).is_some_and(|c| c.starts_with("tessera_lang=pt;")));
    assert!(page.contains("<h1>Iniciar sessão</h1>"), "{page}");
    assert!(
        page.contains("<label for=\"password\">Palavra-passe</label>"),
        "{page}"
    );
}

#[tokio::test]
async fn hostile_language_requests_fall_back_safely() {
    let e = env(|m| m.default_language = Lang::It).await;
    let b = browser("es");
    let (_, page) = e.login_page(&b).await;
    let flow = input_value(&page, "flow").expect("flow");
    // Unknown, garbage and huge picks are ignored: the page stays Spanish, no cookie is set,
    // and nothing of what was sent shows on the page.
    let huge = "es".repeat(2000);
    for pick in [
        "xx",
        "es-ES",
        "e%73%00",
        "%3Cscript%3Ees",
        "..%2Fes",
        "es;q=1",
        huge.as_str(),
    ] {
        let (cookies, page) = e.switch(&b, &flow, pick).await;
        assert!(lang_cookie(&cookies).is_none(), "{pick}: {cookies:?}");
        assert!(page.contains("<html lang=\"es\">"), "{pick}: {page}");
        assert!(!page.contains("<script>es"), "{pick}");
        assert!(!page.contains(&huge), "{pick}");
    }
    // A pick is case-insensitive, as language tags are.
    let (cookies, page) = e.switch(&b, &flow, "NL").await;
    assert!(lang_cookie(&cookies).is_some_and(|c| c.starts_with("tessera_lang=nl;")));
    assert!(page.contains("<html lang=\"nl\">"), "{page}");

    // Browsers that send nonsense get the default language (Italian here); what can be
    // read of a malformed header still counts.
    for (header, expected) in [
        ("es;q=2, pt;q=abc, xx-yy-zz, *;q=0", "it"),
        ("klingon, tlh;q=0.9, ;;;, nl;q=0.1", "nl"),
        ("pt-BR;q=0.5, pt-PT;q=0.8, es;q=0.6", "pt"),
    ] {
        let (_, page) = e.login_page(&browser(header)).await;
        assert!(
            page.contains(&format!("<html lang=\"{expected}\">")),
            "{header}: {page}"
        );
    }
    // Kept under server.max_header_bytes: the part past what is read never counts.
    let hostile = format!("{}es", "zz-zzzz;q=0.5,".repeat(500));
    let (_, page) = e.login_page(&browser(&hostile)).await;
    assert!(page.contains("<html lang=\"it\">"), "{page}");
}

#[tokio::test]
async fn the_portal_texts_a_new_phone_in_the_portal_pages_language() {
    let e = support::portal::env(|_| {}).await;
    let (u, _) = e.sign_in("alice").await;
    let new = "+15550100999";
    let res = u
        .browser
        .http
        .post(e.url("/portal/phone"))
        .header(ACCEPT_LANGUAGE, "pt-PT,pt;q=0.9")
        .form(&[
            ("csrf", u.csrf.as_str()),
            ("number", new),
            ("channel", "sms"),
        ])
        .send()
        .await
        .expect("POST");
    assert!(res.status().is_redirection(), "{}", res.status());
    let body = last_text_to(&e.idp, new).await;
    assert!(
        body.starts_with("O seu código de verificação ") && body.contains("Expira dentro de"),
        "{body}"
    );
}
