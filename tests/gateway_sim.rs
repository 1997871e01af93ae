//! The delivery gateways against the simulator, over real HTTP: the production ntfy / Twilio / webhook clients deliver, the simulated phone acts, and a fake Tessera records the callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use tessera::i18n::Lang;
use tessera::mfa::gateway::{
    CallRequest, Gateway, GatewayError, GatewaySettings, PushAction, PushMessage, SmsMessage,
    Speech, build, twiml_gather, twiml_gather_one_key, twiml_say, verify_twilio_signature,
    verify_webhook_signature,
};
use tessera::sim::{SimConfig, SimState};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token-0123";
const FROM: &str = "+15005550006";
const PHONE: &str = "+15550100230";
const HOOK_SECRET: &str = "webhook-secret-0123456789";

/// One request the fake Tessera received.
#[derive(Debug, Clone)]
struct Seen {
    /// Path and query, as requested.
    target: String,
    params: Vec<(String, String)>,
    body: Bytes,
    twilio_signature: Option<String>,
    tessera_signature: Option<String>,
    /// Whether X-Twilio-Signature verified against the full URL and the params.
    signed_ok: bool,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Every fake Tessera endpoint: record the request, answer as Tessera would.
async fn record(
    State(fake): State<Fake>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> String {
    let target = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let twilio_signature = header("x-twilio-signature");
    let signed_ok = twilio_signature.as_deref().is_some_and(|s| {
        verify_twilio_signature(TOKEN, &format!("{}{target}", fake.base), &params, s)
    });
    let reply = if uri.path() == "/t/voice" && uri.query() == Some("one=1") {
        let action = format!("{}/t/gather?one=1", fake.base);
        twiml_gather_one_key(&speech("Press pound to approve."), &action, 10)
    } else if uri.path() == "/t/voice" {
        let action = format!("{}/t/gather?c=abc&x=1", fake.base);
        twiml_gather(
            &speech("Enter your PIN, then press pound."),
            &action,
            '#',
            10,
        )
    } else if uri.path() == "/t/gather" {
        twiml_say("en-US", "Thank you. Goodbye.")
    } else {
        String::new()
    };
    fake.seen.lock().unwrap().push(Seen {
        target,
        params,
        body,
        twilio_signature,
        tessera_signature: header("x-tessera-signature"),
        signed_ok,
    });
    reply
}

struct Harness {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
    gateway: Arc<dyn Gateway>,
}

fn speech(prompt: &str) -> Speech<'_> {
    Speech {
        language: "en-US",
        prompt,
        no_input: "No input received. Goodbye.",
    }
}

fn settings(extra: &str) -> GatewaySettings {
    let text = format!(
        "push = \"simulator\"\nvoice_sms = \"simulator\"\ntwilio_account_sid = \"{SID}\"\n\
         twilio_from = \"{FROM}\"\ntimeout_secs = 5\n{extra}"
    );
    toml::from_str(&text).unwrap()
}

async fn start() -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sim = SimState::new(SimConfig {
        twilio_auth_token: TOKEN.into(),
        inbound_sms_url: format!("{base}/t/sms"),
    })
    .unwrap();
    let fake = Fake {
        base: base.clone(),
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/t/{*rest}", post(record))
        .with_state(fake)
        .merge(tessera::sim::router(sim));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gateway = build(
        &settings(&format!("twilio_auth_token = \"{TOKEN}\"")),
        &base,
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        base,
        seen,
        http,
        gateway,
    }
}

impl Harness {
    async fn inbox(&self) -> Value {
        let url = format!("{}/sim/api/inbox", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the inbox until `pick` finds something (the simulator works asynchronously,
    /// like a carrier).
    async fn until(&self, pick: impl Fn(&Value) -> Option<Value>) -> Value {
        for _ in 0..250 {
            if let Some(v) = pick(&self.inbox().await) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out; inbox: {}", self.inbox().await);
    }

    /// Waits for the fake Tessera to have received a request whose target starts with `prefix`.
    async fn seen(&self, prefix: &str) -> Seen {
        for _ in 0..250 {
            let hit = self
                .seen
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.target.starts_with(prefix))
                .cloned();
            if let Some(s) = hit {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no request to {prefix}; seen: {:?}",
            self.seen.lock().unwrap()
        );
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.post(url).form(form).send().await.unwrap()
    }

    async fn call(&self) -> Value {
        self.call_to("/t/voice?c=abc").await
    }

    /// Places a call whose TwiML comes from `voice` and waits until it rings.
    async fn call_to(&self, voice: &str) -> Value {
        let c = CallRequest {
            to: PHONE.into(),
            voice_url: format!("{}{voice}", self.base),
            status_url: format!("{}/t/status?c=abc", self.base),
            lang: Lang::En,
        };
        self.gateway.call(&c).await.unwrap();
        self.until(|v| {
            v["calls"]
                .as_array()?
                .iter()
                .find(|c| c["state"] == "ringing")
                .cloned()
        })
        .await
    }
}

fn push_message(base: &str, title: &str, n: usize) -> PushMessage {
    PushMessage {
        topic: "alice-7f3k2".into(),
        title: title.into(),
        body: "Sign-in to NetScaler from 203.0.113.9".into(),
        lang: Lang::En,
        actions: (0..n)
            .map(|i| PushAction {
                label: format!("Choice {i}"),
                url: format!("{base}/t/push/{i}?tok=a.b.c"),
            })
            .collect(),
    }
}

#[tokio::test]
async fn push_arrives_and_pressing_an_action_posts_to_its_url() {
    let h = start().await;
    h.gateway
        .push(&push_message(&h.base, "Approve sign-in?", 3))
        .await
        .unwrap();
    let push = h.inbox().await["pushes"][0].clone();
    assert_eq!(push["topic"], "alice-7f3k2");
    assert_eq!(push["title"], "Approve sign-in?");
    assert_eq!(push["message"], "Sign-in to NetScaler from 203.0.113.9");
    assert_eq!(push["actions"].as_array().unwrap().len(), 3);
    assert_eq!(push["actions"][1]["label"], "Choice 1");

    let id = push["id"].as_str().unwrap();
    let res = h.post(&format!("/sim/api/push/{id}/action/1"), &[]).await;
    assert_eq!(res.status(), 200);
    let seen = h.seen("/t/push/1").await;
    assert_eq!(seen.target, "/t/push/1?tok=a.b.c");
    assert!(seen.body.is_empty(), "ntfy http actions send no body");

    // `clear: true` dismisses the notification once the request succeeded.
    let again = h.post(&format!("/sim/api/push/{id}/action/0"), &[]).await;
    assert_eq!(again.status(), 409);
    let missing = h.post("/sim/api/push/nope/action/0", &[]).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn more_choices_than_ntfy_allows_are_listed_in_the_text() {
    let h = start().await;
    h.gateway
        .push(&push_message(&h.base, "Pick the number", 5))
        .await
        .unwrap();
    let push = h.inbox().await["pushes"][0].clone();
    assert_eq!(push["actions"].as_array().unwrap().len(), 3);
    assert!(
        push["message"]
            .as_str()
            .unwrap()
            .ends_with("Choices: Choice 0 · Choice 1 · Choice 2 · Choice 3 · Choice 4")
    );

    // The simulated server refuses what real ntfy refuses.
    let body = serde_json::json!({"topic": "t", "message": "m", "actions": [
        {"action":"http","label":"1","url":"http://x"},{"action":"http","label":"2","url":"http://x"},
        {"action":"http","label":"3","url":"http://x"},{"action":"http","label":"4","url":"http://x"}]});
    let url = format!("{}/sim/ntfy/", h.base);
    let res = h.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let bad_topic = serde_json::json!({"topic": "no spaces", "message": "m"});
    let res = h.http.post(&url).json(&bad_topic).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn call_fetches_twiml_and_keypresses_reach_the_gather_action_signed() {
    let h = start().await;
    let call = h.call().await;
    assert_eq!(call["to"], PHONE);
    assert_eq!(call["from"], FROM);
    assert_eq!(call["prompt"][0], "Enter your PIN, then press pound.");
    assert_eq!(call["fallback"][0], "No input received. Goodbye.");
    let action = format!("{}/t/gather?c=abc&x=1", h.base);
    assert_eq!(call["gather"]["action"], action.as_str());

    let voice = h.seen("/t/voice").await;
    assert!(
        voice.signed_ok,
        "voice webhook must carry a valid signature"
    );
    assert_eq!(voice.param("CallStatus"), Some("in-progress"));
    assert_eq!(voice.param("Direction"), Some("outbound-api"));
    assert_eq!(voice.param("AccountSid"), Some(SID));

    let id = call["id"].as_str().unwrap();
    let res = h
        .post(
            &format!("/sim/api/call/{id}/digits"),
            &[("digits", "1234#")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let gather = h.seen("/t/gather").await;
    assert_eq!(gather.target, "/t/gather?c=abc&x=1");
    assert_eq!(gather.param("Digits"), Some("1234"));
    assert_eq!(gather.param("CallSid"), Some(id));
    assert_eq!(gather.param("From"), Some(FROM));
    assert_eq!(gather.param("To"), Some(PHONE));
    assert!(gather.signed_ok);

    // The signature covers the digits and the URL: change either and it no longer verifies.
    let sig = gather.twilio_signature.clone().unwrap();
    assert!(verify_twilio_signature(
        TOKEN,
        &action,
        &gather.params,
        &sig
    ));
    let mut tampered = gather.params.clone();
    for (k, v) in &mut tampered {
        if k == "Digits" {
            *v = "0".into();
        }
    }
    assert!(!verify_twilio_signature(TOKEN, &action, &tampered, &sig));
    assert!(!verify_twilio_signature(
        TOKEN,
        &format!("{action}&y=2"),
        &gather.params,
        &sig
    ));
    assert!(!verify_twilio_signature(
        "other-token",
        &action,
        &gather.params,
        &sig
    ));

    // The gather's answer said goodbye, so the call ends and the status callback reports it.
    let status = h.seen("/t/status").await;
    assert_eq!(status.param("CallStatus"), Some("completed"));
    assert!(status.signed_ok);
    let done = h
        .until(|v| {
            v["calls"][0]
                .get("state")
                .filter(|s| *s == "completed")
                .cloned()
        })
        .await;
    assert_eq!(done, "completed");
    assert_eq!(
        h.inbox().await["calls"][0]["prompt"][0],
        "Thank you. Goodbye."
    );
    let late = h
        .post(&format!("/sim/api/call/{id}/digits"), &[("digits", "1#")])
        .await;
    assert_eq!(late.status(), 409);
}

#[tokio::test]
async fn a_bare_finish_key_is_no_input_as_on_twilio() {
    let h = start().await;
    let call = h.call().await;
    let id = call["id"].as_str().unwrap();
    let res = h
        .post(&format!("/sim/api/call/{id}/digits"), &[("digits", "#")])
        .await;
    assert_eq!(res.status(), 200);
    // No request to the gather action: the call says goodbye and hangs up.
    let status = h.seen("/t/status").await;
    assert_eq!(status.param("CallStatus"), Some("completed"));
    assert!(
        !h.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.target.starts_with("/t/gather"))
    );
    let call = h.inbox().await["calls"][0].clone();
    assert_eq!(call["state"], "completed");
    assert_eq!(call["prompt"][0], "No input received. Goodbye.");
}

#[tokio::test]
async fn a_one_key_gather_sends_the_pound_key_itself() {
    let h = start().await;
    let call = h.call_to("/t/voice?one=1").await;
    assert_eq!(call["gather"]["num_digits"], 1);
    let id = call["id"].as_str().unwrap();
    let res = h
        .post(&format!("/sim/api/call/{id}/digits"), &[("digits", "#")])
        .await;
    assert_eq!(res.status(), 200);
    let gather = h.seen("/t/gather?one=1").await;
    assert_eq!(gather.param("Digits"), Some("#"));
    assert!(gather.signed_ok);
}

#[tokio::test]
async fn a_call_nobody_answers_reports_no_answer() {
    let h = start().await;
    let call = h.call().await;
    let id = call["id"].as_str().unwrap();
    let res = h.post(&format!("/sim/api/call/{id}/no-answer"), &[]).await;
    assert_eq!(res.status(), 200);
    let status = h.seen("/t/status").await;
    assert_eq!(status.target, "/t/status?c=abc");
    assert_eq!(status.param("CallStatus"), Some("no-answer"));
    assert_eq!(status.param("CallSid"), Some(id));
    assert!(status.signed_ok);
    let again = h.post(&format!("/sim/api/call/{id}/no-answer"), &[]).await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn texts_arrive_and_replies_reach_the_inbound_webhook_signed() {
    let h = start().await;
    let sms = SmsMessage {
        to: PHONE.into(),
        body: "Your Tessera code is 482913".into(),
        lang: Lang::En,
    };
    h.gateway.sms(&sms).await.unwrap();
    let text = h.inbox().await["texts"][0].clone();
    assert_eq!(text["to"], PHONE);
    assert_eq!(text["from"], FROM);
    assert_eq!(text["body"], "Your Tessera code is 482913");
    assert!(text["id"].as_str().unwrap().starts_with("SM"));

    let res = h
        .post("/sim/api/sms/reply", &[("from", PHONE), ("body", "482913")])
        .await;
    assert_eq!(res.status(), 200);
    let inbound = h.seen("/t/sms").await;
    assert_eq!(inbound.param("Body"), Some("482913"));
    assert_eq!(inbound.param("From"), Some(PHONE));
    assert_eq!(inbound.param("To"), Some(FROM));
    assert_eq!(inbound.param("AccountSid"), Some(SID));
    assert!(inbound.signed_ok);

    let stranger = h
        .post(
            "/sim/api/sms/reply",
            &[("from", "+15550109999"), ("body", "hi")],
        )
        .await;
    assert_eq!(stranger.status(), 409);
}

#[tokio::test]
async fn twilio_refusals_surface_as_rejected() {
    let h = start().await;
    let wrong = build(&settings("twilio_auth_token = \"not-the-token\""), &h.base).unwrap();
    let sms = SmsMessage {
        to: PHONE.into(),
        body: "x".into(),
        lang: Lang::En,
    };
    match wrong.sms(&sms).await {
        Err(GatewayError::Rejected {
            status: 401,
            detail,
        }) => {
            assert!(detail.contains("20003"), "{detail}");
            assert!(!detail.contains("not-the-token"));
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let c = CallRequest {
        to: PHONE.into(),
        voice_url: format!("{}/t/voice", h.base),
        status_url: format!("{}/t/status", h.base),
        lang: Lang::En,
    };
    assert!(matches!(
        wrong.call(&c).await,
        Err(GatewayError::Rejected { status: 401, .. })
    ));
    let bad_number = SmsMessage {
        to: "5550100".into(),
        body: "x".into(),
        lang: Lang::En,
    };
    assert!(matches!(
        h.gateway.sms(&bad_number).await,
        Err(GatewayError::Rejected { status: 400, .. })
    ));
    assert!(h.inbox().await["calls"].as_array().unwrap().is_empty());

    let nowhere = build(&settings(""), "http://127.0.0.1:9").unwrap();
    assert!(matches!(
        nowhere.sms(&sms).await,
        Err(GatewayError::Transport(_))
    ));
}

#[tokio::test]
async fn dev_phone_page_shows_items_escaped_and_its_forms_work() {
    let h = start().await;
    let mut m = push_message(&h.base, "<script>alert(1)</script>", 2);
    m.body = "Sign-in from <b>evil</b> & co".into();
    h.gateway.push(&m).await.unwrap();
    let call = h.call().await;
    let sms = SmsMessage {
        to: PHONE.into(),
        body: "Code <i>1</i>".into(),
        lang: Lang::En,
    };
    h.gateway.sms(&sms).await.unwrap();

    let page = h
        .http
        .get(format!("{}/dev/phone", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>evil</b>") && !html.contains("<i>1</i>"));
    assert!(html.contains("Choice 1"));
    assert!(html.contains("Enter your PIN, then press pound."));
    assert!(html.contains(PHONE));
    // No self-refresh unless asked for: it would throw keyboard focus back to the top.
    assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
    let asked = h
        .http
        .get(format!("{}/dev/phone?refresh=1", h.base))
        .send()
        .await
        .unwrap();
    assert!(
        asked
            .text()
            .await
            .unwrap()
            .contains("http-equiv=\"refresh\"")
    );

    // The keypad buffers keys until the finish key, then sends them.
    let id = call["id"].as_str().unwrap();
    for key in ["4", "2", "#"] {
        let res = h
            .post(&format!("/dev/phone/call/{id}/key"), &[("key", key)])
            .await;
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/dev/phone");
    }
    assert_eq!(h.seen("/t/gather").await.param("Digits"), Some("42"));

    let push_id = h.inbox().await["pushes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = h
        .post(&format!("/dev/phone/push/{push_id}/action/0"), &[])
        .await;
    assert_eq!(res.status(), 303);
    h.seen("/t/push/0").await;
    let res = h
        .post("/dev/phone/sms/reply", &[("from", PHONE), ("body", "1")])
        .await;
    assert_eq!(res.status(), 303);
    h.seen("/t/sms").await;
    let css = h
        .http
        .get(format!("{}/dev/phone.css", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
}

#[tokio::test]
async fn webhook_gateway_signs_its_json_body() {
    let h = start().await;
    let hook = build(
        &toml::from_str::<GatewaySettings>(&format!(
            "push = \"webhook\"\nvoice_sms = \"webhook\"\nwebhook_url = \"{}/t/hook\"\n\
             webhook_secret = \"{HOOK_SECRET}\"",
            h.base
        ))
        .unwrap(),
        &h.base,
    )
    .unwrap();
    let sms = SmsMessage {
        to: PHONE.into(),
        body: "Codice 1".into(),
        lang: Lang::It,
    };
    hook.sms(&sms).await.unwrap();
    let seen = h.seen("/t/hook").await;
    let sig = seen.tessera_signature.clone().unwrap();
    assert!(sig.starts_with("sha256="));
    assert!(verify_webhook_signature(
        HOOK_SECRET.as_bytes(),
        &seen.body,
        &sig
    ));
    assert!(!verify_webhook_signature(
        b"another-secret-xxxxxx",
        &seen.body,
        &sig
    ));
    let json: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(json["kind"], "sms");
    assert_eq!(json["to"], PHONE);
    assert_eq!(json["body"], "Codice 1");
    assert_eq!(json["lang"], "it", "the relay learns the text's language");
    assert!(json["sent_at"].as_u64().unwrap() > 1_700_000_000);
}
