//! Branding from the admin console, over HTTP against a real Tessera: logo uploads refused
//! unless they are small PNG, JPEG, GIF or WebP images (nothing stored otherwise), the logo
//! served by us and shown with the organisation's name and help-desk line on every sign-in
//! page, the Content-Security-Policy unchanged, the accent refused when it is not a dark
//! enough #rrggbb, per-RP display names, two nodes on one Redis, and the per-admin limit.
//! In headless Chromium, the branded sign-in page loads the logo and the accent under the
//! unchanged policy (saved as a screenshot: docs/screenshots/ with
//! TESSERA_UPDATE_SCREENSHOTS=1, else target/screenshots).

mod support {
    pub mod axe;
    pub mod browser;
    pub mod mfa;
    pub mod redis;
    pub mod sp;
    pub mod tessera;
    pub mod webdriver;
}

use reqwest::StatusCode;
use support::browser::{Browser, form_fields, input_value, set_field, unescape};
use support::mfa::{code, enrol_all};
use support::redis::RedisServer;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use tessera::admin::branding::{KEY, MAX_CHANGES};
use tessera::clock::{Clock, SystemClock};
use tessera::config::{Config, StoreKind};
use tessera::mfa::Method;

const PW: &str = "Corr3ct horse!";
const PHONE: &str = "+15550100230";
/// A 1×1 PNG: signature, IHDR, IDAT, IEND.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

struct Env {
    idp: Tessera,
    sp: TestSp,
}

/// A PNG of `len` bytes: the image above with a private ancillary chunk of padding.
fn png_of(len: usize) -> Vec<u8> {
    let pad = len - PNG.len() - 12;
    let mut out = PNG[..33].to_vec();
    out.extend_from_slice(&u32::try_from(pad).expect("small").to_be_bytes());
    out.extend_from_slice(b"prVt");
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(b"\0\0\0\0");
    out.extend_from_slice(&PNG[33..]);
    assert_eq!(out.len(), len);
    out
}

fn admin_user(name: &str) -> tessera::directory::file::FileUser {
    let mut u = file_user(name, PW);
    u.groups.push("Tessera Admins".into());
    u
}

fn builder(tweak: impl FnOnce(&mut Config)) -> (TesseraBuilder, TestSp) {
    let mut b = TesseraBuilder::new();
    b.config.mfa.pin_mode = true;
    tweak(&mut b.config);
    b.add_user(&[
        admin_user("dave"),
        admin_user("erin"),
        file_user("alice", PW),
        file_user("bob", PW),
        file_user("carol", PW),
    ]);
    let sp = TestSp::new("brand");
    b.add_rp("brand", &sp.metadata(false), "name = \"Payroll\"\n");
    (b, sp)
}

async fn env() -> Env {
    let (b, sp) = builder(|_| {});
    let idp = b.start().await;
    enrol_all(&idp, "dave", Method::Oath, PHONE).await;
    enrol_all(&idp, "erin", Method::Oath, PHONE).await;
    enrol_all(&idp, "alice", Method::Call, PHONE).await;
    enrol_all(&idp, "bob", Method::Oath, PHONE).await;
    Env { idp, sp }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    /// The console, signed in as `user` with password and app code: (browser, CSRF token).
    async fn admin(&self, user: &str) -> (Browser, String) {
        let browser = Browser::new();
        let (url, _, page) = browser.get(&self.url("/admin")).await;
        let flow = input_value(&page, "flow").expect("a sign-in flow");
        let (_, status, page) = browser.sign_in(&url, &page, user, PW).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let now = SystemClock.unix();
        let (_, status, page) = browser
            .post(
                &self.url("/adfs/ls/login"),
                &[
                    ("flow", flow.as_str()),
                    ("action", "code"),
                    ("code", &code(now)),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (_, status, page) = browser.get(&self.url("/admin/branding")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        (browser, input_value(&page, "csrf").expect("csrf"))
    }

    /// Saves the text fields of the branding page as typed: (status, page).
    /// The page's CSRF token travels in the form, as a browser sends it.
    async fn save(&self, admin: &Browser, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let (_, _, page) = admin.get(&self.url("/admin/branding")).await;
        let mut form = form_fields(&page, "/admin/branding");
        for (k, v) in fields {
            set_field(&mut form, k, &[v]);
        }
        let f: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (_, status, page) = admin.post(&self.url("/admin/branding"), &f).await;
        (status, unescape(&page))
    }

    /// Uploads `bytes` as the logo file `name`: (status, page after any redirect).
    async fn upload(
        &self,
        admin: &Browser,
        csrf: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, String) {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.to_owned())
            .part(
                "logo",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        let res = admin
            .http
            .post(self.url("/admin/branding/logo"))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        if res.status().is_redirection() {
            let (_, status, page) = admin.get(&self.url("/admin/branding")).await;
            return (status, unescape(&page));
        }
        (res.status(), unescape(&res.text().await.expect("body")))
    }

    async fn stored(&self) -> (Option<Vec<u8>>, Vec<String>) {
        let store = self.idp.state.store.as_ref();
        (
            store.get(KEY).await.expect("store"),
            store.keys("branding:logo:").await.expect("store"),
        )
    }

    /// Every kind of sign-in page, each reached as a user would: (which, its CSP, page).
    async fn tour(&self) -> Vec<(&'static str, String, String)> {
        let mut pages = Vec::new();
        let get = async |b: &Browser, url: &str| {
            let res = b.http.get(url).send().await.expect("GET");
            let csp = res.headers()["content-security-policy"]
                .to_str()
                .expect("csp")
                .to_owned();
            (csp, res.text().await.expect("body"))
        };
        let sso = self.url(&format!(
            "/adfs/ls/idpinitiatedsignon?loginToRp={}",
            self.sp.entity_id
        ));
        let login = async |user: &str| {
            let b = Browser::new();
            let (url, _, page) = b.get(&sso).await;
            let flow = input_value(&page, "flow").expect("flow");
            b.sign_in(&url, &page, user, PW).await;
            (b, flow)
        };
        let b = Browser::new();
        let (url, _, _) = b.get(&sso).await;
        let (csp, page) = get(&b, &url).await;
        pages.push(("password", csp, page));
        let flow_url = |flow: &str| self.url(&format!("/adfs/ls/login?flow={flow}"));
        let (b, flow) = login("bob").await;
        let (csp, page) = get(&b, &flow_url(&flow)).await;
        pages.push(("code", csp, page));
        let act = |action: &'static str, method: &'static str| {
            vec![
                ("flow", flow.clone()),
                ("action", action.to_owned()),
                ("method", method.to_owned()),
            ]
        };
        for (which, fields) in [
            ("chooser", act("different", "")),
            ("wait", act("choose", "push")),
        ] {
            b.http
                .post(self.url("/adfs/ls/login"))
                .form(&fields)
                .send()
                .await
                .expect("POST");
            let (csp, page) = get(&b, &flow_url(&flow)).await;
            pages.push((which, csp, page));
        }
        for (which, user) in [("pin", "alice"), ("enrollment", "carol")] {
            let (b, flow) = login(user).await;
            let (csp, page) = get(&b, &flow_url(&flow)).await;
            pages.push((which, csp, page));
        }
        let (csp, page) = get(&Browser::new(), &flow_url("no-such-flow")).await;
        pages.push(("error", csp, page));
        let (csp, page) = get(&Browser::new(), &self.url("/adfs/ls/logout")).await;
        pages.push(("sign-out", csp, page));
        pages
    }
}

#[tokio::test]
async fn logo_uploads_that_are_not_small_images_are_refused_and_nothing_is_stored() {
    let e = env().await;
    let (admin, csrf) = e.admin("dave").await;
    let mut truncated = PNG.to_vec();
    truncated.truncate(PNG.len() - 5);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
            StatusCode::BAD_REQUEST,
            "SVG is not accepted",
        ),
        (
            "logo.png",
            b"<!doctype html><html><script>alert(document.cookie)</script></html>".to_vec(),
            StatusCode::BAD_REQUEST,
            "must be a PNG, JPEG, GIF or WebP image",
        ),
        (
            "logo.png",
            b"\x89PN".to_vec(),
            StatusCode::BAD_REQUEST,
            "PNG, JPEG, GIF or WebP",
        ),
        ("logo.png", truncated, StatusCode::BAD_REQUEST, "cut short"),
        (
            "big.png",
            png_of(100 * 1024 + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 100 KiB (101 KiB)",
        ),
        (
            "huge.png",
            png_of(400 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 100 KiB",
        ),
        (
            "empty.png",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "Choose an image file",
        ),
    ];
    for (name, bytes, status, message) in cases {
        let (got, page) = e.upload(&admin, &csrf, name, bytes).await;
        assert_eq!(got, status, "{name}: {page}");
        assert!(
            page.contains(message),
            "{name}: expected {message:?} in {page}"
        );
        assert!(page.contains("id=\"no-logo\""), "{name}: no logo shown");
        assert_eq!(
            e.stored().await,
            (None, Vec::new()),
            "{name}: nothing stored"
        );
    }
    let (_, status, _) = Browser::new().get(&e.url("/branding/logo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without the form's CSRF token nothing is read, let alone stored.
    let (status, _) = e.upload(&admin, "forged", "logo.png", PNG.to_vec()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(e.stored().await, (None, Vec::new()));
    // Exactly 100 KiB is accepted.
    let (status, page) = e.upload(&admin, &csrf, "ok.png", png_of(100 * 1024)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"current-logo\""), "{page}");
}

#[tokio::test]
async fn the_branding_is_on_every_sign_in_page_and_the_csp_stays_the_same() {
    let e = env().await;
    let before = e.tour().await;
    for (which, _, page) in &before {
        assert!(
            !page.contains("class=\"brand\""),
            "{which}: neutral by default: {page}"
        );
        assert!(
            !page.contains("brand.css") && !page.contains("Help desk"),
            "{which}"
        );
    }

    let (admin, csrf) = e.admin("dave").await;
    let (status, page) = e
        .save(
            &admin,
            &[
                ("org_name", "Contoso R&D"),
                ("accent", "#0B5394"),
                ("help_desk", "+1 555 0100 or help@contoso.example"),
                ("notice", "Authorised use only."),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Saved: org_name, accent, help_desk, notice."),
        "{page}"
    );
    let (status, page) = e.upload(&admin, &csrf, "contoso.png", PNG.to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let at = page
        .find("src=\"/branding/logo?v=")
        .expect("the console shows the logo")
        + 5;
    let logo_url = page[at..at + page[at..].find('"').expect("quote")].to_owned();

    // The logo as we serve it: its checked type, never sniffed, cacheable by version.
    let http = reqwest::Client::new();
    let res = http.get(e.url(&logo_url)).send().await.expect("logo");
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );
    assert_eq!(res.bytes().await.expect("body").as_ref(), PNG);
    let etag = h["etag"].clone();
    let res = http
        .get(e.url("/branding/logo"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("logo");
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let css = http
        .get(e.url("/static/brand.css?v=0b5394"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css");
    assert!(
        css.text()
            .await
            .expect("css")
            .contains("--accent: #0b5394;")
    );

    let after = e.tour().await;
    // What makes each page the one it is (so the tour cannot silently visit another).
    let marks = [
        ("password", "id=\"password\""),
        ("code", "name=\"code\""),
        ("chooser", "id=\"choose-push\""),
        ("wait", "mobile app"),
        ("pin", "id=\"set-pin\""),
        ("enrollment", "id=\"enroll-app\""),
        ("error", "role=\"alert\""),
        ("sign-out", "Sign"),
    ];
    assert_eq!(after.len(), marks.len());
    for ((which, _, page), (kind, mark)) in after.iter().zip(marks) {
        assert_eq!(*which, kind);
        assert!(page.contains(mark), "{which}: expected {mark:?} in {page}");
    }
    for ((which, csp_before, _), (_, csp_after, page)) in before.iter().zip(&after) {
        assert_eq!(
            csp_before, csp_after,
            "{which}: the CSP is byte for byte the same"
        );
        assert!(
            page.contains(&format!(
                "<img src=\"{logo_url}\" alt=\"Contoso R&amp;D\" id=\"brand-logo\">"
            )),
            "{which}: the logo, named by the organisation: {page}"
        );
        assert!(page.contains("Contoso R&amp;D</span>"), "{which}");
        assert!(
            page.contains("Help desk: +1 555 0100 or help@contoso.example"),
            "{which}: {page}"
        );
        assert!(
            page.contains("<link rel=\"stylesheet\" href=\"/static/brand.css?v=0b5394\">"),
            "{which}"
        );
        assert!(!page.contains("style="), "{which}: no inline style");
        assert_eq!(
            page.contains("Authorised use only."),
            *which == "password",
            "{which}: the notice is on the password page only"
        );
    }

    // Removed: gone from the pages and the store.
    let (status, page) = e.save(&admin, &[("action", "remove_logo")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("id=\"no-logo\""), "{page}");
    let (_, status, _) = Browser::new().get(&e.url("/branding/logo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        e.stored().await.1.is_empty(),
        "the logo's bytes are deleted"
    );
    let (_, _, page) = Browser::new().get(&e.url("/adfs/ls/logout")).await;
    assert!(
        !page.contains("brand-logo") && page.contains("Contoso R&amp;D"),
        "{page}"
    );

    // Every change is in the console's change log.
    let log = tessera::admin::changes::recent(e.idp.state.store.as_ref(), 50)
        .await
        .expect("log");
    let mut fields: Vec<&str> = log
        .iter()
        .filter(|c| c.action == "branding.update")
        .map(|c| c.target.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["accent", "help_desk", "logo", "logo", "notice", "org_name"]
    );
    assert!(log.iter().all(|c| c.admin == "dave"));
}

#[tokio::test]
async fn a_bad_accent_or_markup_is_refused_with_the_reason_and_nothing_is_stored() {
    let e = env().await;
    let (admin, _) = e.admin("dave").await;
    for (field, value, why) in [
        (
            "accent",
            "#ffcc00",
            "gives only 1.5:1 contrast with the white text of buttons; at least 4.5:1",
        ),
        ("accent", "#777777", "4.5:1"),
        ("accent", "blue", "# and six hex digits"),
        ("accent", "#12345g", "# and six hex digits"),
        (
            "org_name",
            "<img src=x onerror=alert(1)>",
            "< and > are not allowed",
        ),
        ("notice", &"n".repeat(501), "longer than 500 characters"),
    ] {
        let (status, page) = e
            .save(&admin, &[(field, value), ("help_desk", "kept as typed")])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value}: {page}");
        assert!(page.contains(why), "{value}: expected {why:?} in {page}");
        assert!(
            page.contains("value=\"kept as typed\""),
            "the form keeps what was typed"
        );
        assert_eq!(
            e.stored().await,
            (None, Vec::new()),
            "{value}: nothing stored"
        );
    }
    let (status, page) = e.save(&admin, &[("accent", "#767676")]).await;
    assert_eq!(status, StatusCode::OK, "4.54:1 is enough: {page}");
}

/// The slug of the first console trust the relying-party page offers options for.
fn console_slug(page: &str) -> String {
    page.match_indices("action=\"/admin/rps/")
        .map(|(at, m)| &page[at + m.len()..])
        .map(|rest| &rest[..rest.find('"').expect("quote")])
        .find(|slug| !slug.starts_with("import"))
        .expect("a console trust")
        .to_owned()
}

#[tokio::test]
async fn sign_in_pages_name_the_application_by_its_display_name() {
    let e = env().await;
    let sso = |entity: &str| e.url(&format!("/adfs/ls/idpinitiatedsignon?loginToRp={entity}"));
    // No display name: the trust's name.
    let (_, _, page) = Browser::new().get(&sso(&e.sp.entity_id)).await;
    assert!(page.contains("<strong>Payroll</strong>"), "{page}");

    // A trust imported in the console, then given a display name there.
    let (admin, csrf) = e.admin("dave").await;
    let gw = TestSp::new("gw");
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("metadata", gw.metadata(false));
    let res = admin
        .http
        .post(e.url("/admin/rps/import"))
        .multipart(form)
        .send()
        .await
        .expect("import");
    let preview = e.url(res.headers()["location"].to_str().expect("location"));
    let approve = [
        ("csrf", csrf.as_str()),
        ("name", "gw-ns1"),
        ("mfa_required", "on"),
        ("enabled", "on"),
    ];
    let (_, status, page) = admin.post(&preview, &approve).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, _, page) = Browser::new().get(&sso(&gw.entity_id)).await;
    assert!(page.contains("<strong>gw-ns1</strong>"), "{page}");

    let (_, _, rps) = admin.get(&e.url("/admin/rps")).await;
    let action = format!("/admin/rps/{}", console_slug(&rps));
    let mut fields = form_fields(&rps, &action);
    set_field(&mut fields, "display_name", &["Citrix Gateway"]);
    let f: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (url, status, page) = admin.post(&e.url(&action), &f).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(url.contains("done=rp.options"), "{url}");
    assert!(
        page.contains("value=\"Citrix Gateway\""),
        "the console shows it"
    );
    let (_, _, page) = Browser::new().get(&sso(&gw.entity_id)).await;
    assert!(page.contains("<strong>Citrix Gateway</strong>"), "{page}");

    set_field(&mut fields, "display_name", &["<b>x</b>"]);
    let f: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_, status, page) = admin.post(&e.url(&action), &f).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(unescape(&page).contains("without < or >"), "{page}");
}

#[tokio::test]
async fn two_nodes_on_one_redis_show_the_same_branding() {
    let redis = RedisServer::start();
    let shared = |c: &mut Config| {
        c.store.backend = StoreKind::Redis;
        c.store.redis_url = Some(redis.url());
    };
    let (ba, sp) = builder(shared);
    let a = Env {
        idp: ba.start().await,
        sp,
    };
    let (bb, sp) = builder(shared);
    let b = Env {
        idp: bb.start().await,
        sp,
    };
    enrol_all(&a.idp, "dave", Method::Oath, PHONE).await;
    // Node B has served its neutral page (and read the store) before the change.
    let (_, _, page) = Browser::new().get(&b.url("/adfs/ls/logout")).await;
    assert!(!page.contains("Fabrikam"), "{page}");

    let (admin, csrf) = a.admin("dave").await;
    let (status, page) = a
        .save(
            &admin,
            &[("org_name", "Fabrikam"), ("help_desk", "ext. 4357")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, _) = a.upload(&admin, &csrf, "f.png", PNG.to_vec()).await;
    assert_eq!(status, StatusCode::OK);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, page) = Browser::new().get(&b.url("/adfs/ls/logout")).await;
        if page.contains("alt=\"Fabrikam\"") && page.contains("Help desk: ext. 4357") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node B never showed the branding: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let logo = reqwest::get(b.url("/branding/logo")).await.expect("logo");
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(
        logo.bytes().await.expect("body").as_ref(),
        PNG,
        "node B serves the logo from the store"
    );
}

#[tokio::test]
async fn an_admin_who_exhausts_the_change_limit_is_refused_and_nothing_changes() {
    let e = env().await;
    let (dave, csrf) = e.admin("dave").await;
    for n in 1..=MAX_CHANGES {
        let (status, page) = e.save(&dave, &[("org_name", &format!("Org {n}"))]).await;
        assert_eq!(status, StatusCode::OK, "change {n}: {page}");
    }
    let (status, page) = e.save(&dave, &[("org_name", "One too many")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(
        page.contains(&format!(
            "You have made {MAX_CHANGES} branding changes within an hour"
        )),
        "{page}"
    );
    let (status, _) = e.upload(&dave, &csrf, "l.png", PNG.to_vec()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "uploads count too");
    let (_, _, page) = Browser::new().get(&e.url("/adfs/ls/logout")).await;
    assert!(
        page.contains(&format!("Org {MAX_CHANGES}<")) && !page.contains("One too many"),
        "{page}"
    );
    assert!(e.stored().await.1.is_empty(), "no logo stored");

    // The limit is dave's, counted in the store: another admin is not held back.
    let (erin, _) = e.admin("erin").await;
    let (status, page) = e.save(&erin, &[("org_name", "Erin's org")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

#[tokio::test]
async fn in_a_real_browser_the_logo_and_accent_load_under_the_strict_policy() {
    let e = env().await;
    let (store, now) = (e.idp.state.store.as_ref(), SystemClock.unix());
    let actor = tessera::admin::Actor {
        name: "dave".into(),
        client_ip: "127.0.0.1".into(),
    };
    let edit = tessera::admin::branding::TextEdit {
        org_name: "Contoso".into(),
        accent: "#0b5394".into(),
        help_desk: "+1 555 0100 · help@contoso.example".into(),
        notice: "Use of this system is monitored. Authorised users only.".into(),
    };
    tessera::admin::branding::set_text(store, &actor, now, &edit)
        .await
        .expect("text");
    let logo = include_bytes!("fixtures/brand-logo.png");
    tessera::admin::branding::set_logo(store, &actor, now, logo)
        .await
        .expect("logo");
    e.idp.state.branding.invalidate();

    let driver = support::webdriver::ChromeDriver::start();
    let browser = driver.session().await;
    browser
        .goto(&e.url(&format!(
            "/adfs/ls/idpinitiatedsignon?loginToRp={}",
            e.sp.entity_id
        )))
        .await;
    browser.wait_for("#brand-logo").await.expect("the logo");
    let seen = browser
        .execute(
            "const img = document.getElementById('brand-logo'); \
             return [img.complete && img.naturalWidth, img.alt, \
             getComputedStyle(document.getElementById('submit')).backgroundColor];",
            Vec::new(),
        )
        .await
        .expect("script");
    assert_eq!(
        seen,
        serde_json::json!([144, "Contoso", "rgb(11, 83, 148)"]),
        "the logo loaded and the accent applies, both from our own URLs under the CSP"
    );
    // The header and footer the branding adds keep the page accessible (the page's own
    // checks are the accessibility tests'; serious or critical findings here are ours).
    if let Err(found) = support::axe::check(&browser, &support::axe::source()).await {
        panic!("{found}");
    }
    browser
        .screenshot(&support::webdriver::screenshot_path("08-login-branded.png"))
        .await;
    browser.quit().await;
}
