//! The HTTP surface: `app(state)` builds the axum router every binary and test uses.

mod admin;
pub(crate) mod branding;
pub mod client;
mod enroll_link;
mod error;
mod errors;
pub mod lang;
mod layers;
mod login;
mod logout;
mod mfa;
mod pages;
mod portal;
mod ready;
mod saml;
mod views;
mod wait;
mod wsfed;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::directory::Directory;
use crate::i18n::{Catalogue, msgid};
use crate::keys::live::{LiveKeys, Signing};
use crate::login::timing::Timing;
use crate::login::{Deps, SecondFactorRule};
use crate::mfa::challenge::TokenSigner;
use crate::mfa::live::{LiveSettings, Policy};
use crate::mfa::secrets::SecretBox;
use crate::rp::Registry;
use crate::rp::live::LiveRegistry;
use crate::store::Store;
pub use lang::PageLang;

/// Everything a request handler may use; built once in `startup`, shared by `Arc`.
pub struct AppContext {
    pub config: Config,
    /// Token-signing keys in force (file or console rollover) and our metadata.
    pub keys: LiveKeys,
    /// Relying-party trusts: files at start + console-managed ones from the store.
    pub rps: LiveRegistry,
    pub store: Arc<dyn Store>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
    /// Translations of the sign-in pages; the templates' `t` filter holds the same one.
    pub catalogue: Arc<Catalogue>,
    pub templates: Environment<'static>,
    /// The MFA settings in force (config file + the admin's overrides in the store), with the
    /// delivery gateway and trusted networks derived from them.
    pub settings: LiveSettings,
    /// Seals MFA secrets at rest; sub-keys for callback tokens and SMS code MACs.
    pub secrets: SecretBox,
    pub tokens: TokenSigner,
    pub timing: Timing,
    /// The phone simulator's state, when a gateway is set to "simulator".
    pub simulator: Option<crate::sim::SimState>,
    /// `server.trusted_proxies`: whose forwarded headers name the client (`client`).
    pub proxies: Arc<client::Proxies>,
    /// This process's metrics (`/metrics`); the store and directory above already report
    /// into it.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The sign-in pages' branding in force (the admin's, from the store).
    pub branding: crate::admin::branding::LiveBranding,
}

pub type AppState = Arc<AppContext>;

/// The SSO endpoint paths we answer on (AD FS's and a neutral one).
pub const SSO_PATHS: [&str; 2] = ["/adfs/ls/", "/saml/sso"];
pub const METADATA_PATHS: [&str; 2] = [
    "/FederationMetadata/2007-06/FederationMetadata.xml",
    "/saml/metadata",
];

pub fn app(state: AppState) -> Router {
    let r = with_page_layers(routes(&state), &state);
    with_request_layers(r, &state).with_state(state)
}

/// Every route, people's and machines'; unknown paths get `errors::no_route`.
fn routes(state: &AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/", get(pages::home))
        .route("/docs", get(pages::docs))
        .route("/static/tessera.css", get(pages::css))
        .route("/static/autosubmit.js", get(pages::autosubmit_js))
        .route("/static/wait.js", get(pages::wait_js))
        .route("/adfs/ls/login", get(login::show).post(login::submit))
        .route("/adfs/ls/idpinitiatedsignon", get(saml::idp_initiated))
        .route(
            "/adfs/ls/logout",
            get(logout::confirm_page).post(logout::confirm_submit),
        )
        .route("/adfs/ls/logout/continue", get(logout::resume))
        .route(
            "/enroll/link/{token}",
            get(enroll_link::show).post(enroll_link::confirm),
        )
        .route("/saml/idp-init", get(saml::idp_initiated));
    for p in SSO_PATHS {
        // A POST is WS-Federation when it carries `wa`, else SAML (wsfed::sso_post).
        r = r.route(p, get(saml::sso_redirect).post(wsfed::sso_post));
    }
    // The people's pages (sign-in and portal) read the branding fresh; machine routes
    // (health, metrics, callbacks) never wait on the store for it.
    r = r.merge(portal::routes());
    r = r.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        branding::refresh,
    ));
    // Only unit tests have a handler that panics on purpose (see `layers::tests`).
    #[cfg(test)]
    {
        r = r.route("/test/panic", get(layers::tests::panics));
    }
    r.merge(admin::routes())
        .merge(branding::routes())
        .merge(machine_routes(state))
        .fallback(errors::no_route)
}

/// The layers that shape answers: limits and deadlines, error pages, panics, counts and the
/// security headers.
///
/// Each function gives the router one composed stack (`ServiceBuilder`, listed outermost
/// first): `Router::layer` boxes every route once per call, and a request then pays a box,
/// a clone and a boxed future at every level; one call per stack pays that once
/// (BENCHMARKS.md). The order is the one the layers need, as commented.
fn with_page_layers(r: Router<AppState>, state: &AppState) -> Router<AppState> {
    let limits = crate::server::ServerLimits::from_config(&state.config.server);
    let max_body = limits.max_body_bytes;
    let stack = ServiceBuilder::new()
        // The static security headers and those that depend on the answer, on every answer,
        // error pages included.
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            layers::count,
        ))
        // Outside `pages`, so a panic anywhere inside becomes our page, counted and logged
        // like any answer.
        .layer(CatchPanicLayer::custom(layers::panic_page(state.clone())))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            errors::pages,
        ))
        // Layers that refuse requests on their own (the body limit, the body and request
        // deadlines) sit inside `errors::pages`, so their 413 / 408 reach people as the
        // error page too.
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::server::deadlines,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body));
    r.layer(stack)
}

/// The layers around the whole request: access log, request id, redacted headers, and the
/// client's address.
fn with_request_layers(r: Router<AppState>, state: &AppState) -> Router<AppState> {
    let stack = ServiceBuilder::new()
        // Outermost, so every layer and handler inside sees the real client.
        .layer(axum::middleware::from_fn_with_state(
            state.proxies.clone(),
            client::middleware,
        ))
        // Outside the access log, so its span has the id; a balancer's own id is kept.
        .layer(SetRequestIdLayer::new(layers::REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::COOKIE,
            header::AUTHORIZATION,
        ]))
        .layer(PropagateRequestIdLayer::new(layers::REQUEST_ID))
        // Cookies carry sessions and flow secrets: whatever logs headers shows them redacted.
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(layers::access_span)
                .on_request(())
                .on_response(layers::access_logged),
        );
    r.layer(stack)
}

/// The router of `server.metrics_listen`: `/metrics` alone.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(layers::metrics))
        .with_state(state)
}

/// The routes whose clients are programs (carriers, SPs fetching metadata, monitors, the
/// simulator's API): their answers, refusals included, are never turned into pages.
fn machine_routes(state: &AppState) -> Router<AppState> {
    // Readiness keeps what it last saw in this router, for logging changes only.
    let seen = Arc::new(ready::Seen::default());
    let mut r = Router::new()
        .route("/healthz", get(pages::health))
        .route(
            "/readyz",
            get(move |State(ctx): State<AppState>| ready::readyz(ctx, seen.clone())),
        )
        .route("/mfa/callback/{token}", post(mfa::push_action))
        .route("/mfa/voice/{token}", post(mfa::voice))
        .route("/mfa/voice/status/{token}", post(mfa::voice_status))
        .route("/mfa/voice/test/{token}", post(mfa::test_call_voice))
        .route(
            "/mfa/voice/test-status/{token}",
            post(mfa::test_call_status),
        )
        .route("/mfa/sms/inbound", post(mfa::sms_inbound))
        // The waiting page's EventSource: a program reads the answers, refusals included.
        .route("/adfs/ls/login/wait", get(wait::events));
    // With a listener of its own, `/metrics` is not answered here at all.
    if state.config.server.metrics_listen.is_none() {
        r = r.route("/metrics", get(layers::metrics));
    }
    for p in METADATA_PATHS {
        r = r.route(p, get(pages::metadata));
    }
    if let Some(sim) = &state.simulator {
        r = r.merge(crate::sim::router(sim.clone()));
    }
    r.layer(axum::middleware::map_response(errors::machine_answers))
}

/// The Content-Security-Policy of every page, with `form-action` (where its forms may post,
/// and where a POST may be redirected: Chromium checks redirects too) given by the caller.
pub fn csp(form_action: &str) -> String {
    csp_with_images(form_action, &[])
}

/// `csp`, with images also allowed from `img_origins` (a sign-out page's WS-Fed cleanup
/// images, each from its relying party's origin).
pub fn csp_with_images(form_action: &str, img_origins: &[String]) -> String {
    let mut img = String::from("'self' data:");
    for origin in img_origins {
        img.push(' ');
        img.push_str(origin);
    }
    format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src {img}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// HSTS for a year, only when we are reached over https (over http a browser ignores it,
/// and it would be a lie). Not `includeSubDomains`: other hosts of the domain are not ours.
const HSTS: &str = "max-age=31536000";

/// The headers that depend on the answer or the configuration; the static ones
/// (`layers::STATIC_HEADERS`) are set by `SetResponseHeaderLayer`. Pages must not be framed
/// (clickjacking of the login form), scripts come only from us,
/// forms post only to us unless a handler allows one destination (the auto-POST to an SP),
/// and nothing sign-in related is cached.
async fn security_headers(State(ctx): State<AppState>, mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in layers::STATIC_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&csp("'self'"))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if ctx.config.is_https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The client's address: behind a trusted proxy the one its header names, else the socket
/// peer (see `client`); "unknown" in in-process tests, which have no socket.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = match parts.extensions.get::<client::ClientAddr>() {
            Some(c) => Some(c.ip),
            // A router built without `app`'s layers (none today): the socket still counts.
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        };
        Ok(ClientIp(
            ip.map(|ip| ip.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

impl AppContext {
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(body) => Html(body).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }

    /// A sign-in page in the request's language (`lang` also brings the language links),
    /// with the branding in force.
    pub fn page(&self, lang: &PageLang, name: &str, ctx: minijinja::Value) -> Response {
        let brand = branding::context(&self.branding.last());
        self.render(
            name,
            minijinja::context! { ..lang.context(), ..brand, ..ctx },
        )
    }

    /// The error page in English, rendered at once: for what happens outside the handlers
    /// (a panic). Handlers return a `WebError` instead; `errors::pages` renders it.
    pub fn error_page(&self, status: StatusCode, message: &str) -> Response {
        let lang = PageLang::default();
        self.error_titled(&lang, status, msgid("Sign-in problem"), message)
    }

    /// The page that tells the user what went wrong in plain words, in `lang` (`title` and
    /// `message` are English texts, the catalogue's ids); the detail goes to the log.
    pub fn error_titled(
        &self,
        lang: &PageLang,
        status: StatusCode,
        title: &str,
        message: &str,
    ) -> Response {
        let mut res = self.page(
            lang,
            "error.html",
            minijinja::context! { title => title, message => message },
        );
        *res.status_mut() = status;
        res
    }

    /// The login state machine's view of this context under `policy`, for a sign-in under `rule`.
    /// The token-signing keys and metadata in force on this node now (see `keys::live`).
    pub async fn signing(&self) -> Arc<Signing> {
        self.keys.current(self.store.as_ref(), &self.secrets).await
    }

    /// The relying-party trusts in force on this node now (see `rp::live`).
    pub async fn registry(&self) -> Arc<Registry> {
        self.rps.current(self.store.as_ref()).await
    }

    /// The MFA policy in force on this node now (see `mfa::live`).
    pub async fn policy(&self) -> Arc<Policy> {
        self.settings.policy(self.store.as_ref()).await
    }

    pub fn deps<'a>(&'a self, policy: &'a Policy, rule: SecondFactorRule) -> Deps<'a> {
        Deps {
            directory: self.directory.as_ref(),
            clock: self.clock.as_ref(),
            store: self.store.as_ref(),
            gateway: policy.gateway.as_ref(),
            secrets: &self.secrets,
            tokens: &self.tokens,
            mfa: &policy.mfa,
            trusted: &policy.trusted,
            proxies: self.proxies.nets(),
            timing: &self.timing,
            public_base: self.config.public_base(),
            issuer_name: &self.config.idp.display_name,
            rule,
            // Pages in another language say so with `Deps::in_lang`.
            lang: crate::i18n::Lang::default(),
            catalogue: &self.catalogue,
            later: crate::store::Later::default(),
        }
    }

    pub fn sso_url(&self) -> String {
        format!("{}/adfs/ls/", self.config.public_base())
    }
}

/// Every template by name, embedded in the binary so a release build needs no files beside it.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("post.html", include_str!("../../templates/post.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("home.html", include_str!("../../templates/home.html")),
    ("docs.html", include_str!("../../templates/docs.html")),
    (
        "mfa_wait.html",
        include_str!("../../templates/mfa_wait.html"),
    ),
    (
        "mfa_code.html",
        include_str!("../../templates/mfa_code.html"),
    ),
    (
        "mfa_choose.html",
        include_str!("../../templates/mfa_choose.html"),
    ),
    ("enroll.html", include_str!("../../templates/enroll.html")),
    ("mfa_pin.html", include_str!("../../templates/mfa_pin.html")),
    (
        "enroll_link.html",
        include_str!("../../templates/enroll_link.html"),
    ),
    (
        "mfa_questions.html",
        include_str!("../../templates/mfa_questions.html"),
    ),
    (
        "_subtitle.html",
        include_str!("../../templates/_subtitle.html"),
    ),
    (
        "_different.html",
        include_str!("../../templates/_different.html"),
    ),
    (
        "admin_base.html",
        include_str!("../../templates/admin_base.html"),
    ),
    (
        "admin_home.html",
        include_str!("../../templates/admin_home.html"),
    ),
    (
        "admin_settings.html",
        include_str!("../../templates/admin_settings.html"),
    ),
    (
        "admin_signins.html",
        include_str!("../../templates/admin_signins.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../templates/admin_users.html"),
    ),
    (
        "admin_user.html",
        include_str!("../../templates/admin_user.html"),
    ),
    (
        "admin_rps.html",
        include_str!("../../templates/admin_rps.html"),
    ),
    (
        "admin_tokens.html",
        include_str!("../../templates/admin_tokens.html"),
    ),
    (
        "admin_rp_import.html",
        include_str!("../../templates/admin_rp_import.html"),
    ),
    (
        "admin_certs.html",
        include_str!("../../templates/admin_certs.html"),
    ),
    (
        "portal_base.html",
        include_str!("../../templates/portal_base.html"),
    ),
    (
        "portal_home.html",
        include_str!("../../templates/portal_home.html"),
    ),
    (
        "portal_app.html",
        include_str!("../../templates/portal_app.html"),
    ),
    (
        "portal_phone.html",
        include_str!("../../templates/portal_phone.html"),
    ),
    (
        "portal_questions.html",
        include_str!("../../templates/portal_questions.html"),
    ),
    (
        "portal_push.html",
        include_str!("../../templates/portal_push.html"),
    ),
    (
        "portal_signed_out.html",
        include_str!("../../templates/portal_signed_out.html"),
    ),
    (
        "logout_confirm.html",
        include_str!("../../templates/logout_confirm.html"),
    ),
    (
        "logout_done.html",
        include_str!("../../templates/logout_done.html"),
    ),
    (
        "admin_branding.html",
        include_str!("../../templates/admin_branding.html"),
    ),
];

/// All templates (`TEMPLATES`); the `t` filter translates with `catalogue`.
pub fn templates(catalogue: Arc<Catalogue>) -> Environment<'static> {
    let mut env = Environment::new();
    lang::add_filter(&mut env, catalogue);
    for &(name, src) in TEMPLATES {
        // The templates are part of the source tree; a syntax error is a build defect
        // caught by every test, not a runtime condition.
        env.add_template(name, src)
            .expect("embedded template parses");
    }
    env
}

/// An app state on embedded defaults in `dir`, for the unit tests of the web layers.
#[cfg(test)]
pub(crate) async fn test_state(dir: &std::path::Path) -> AppState {
    let mut config = Config::default();
    config.server.data_dir = dir.join("data");
    config.metadata_dir = dir.join("metadata");
    std::fs::create_dir_all(&config.metadata_dir).expect("metadata dir");
    crate::startup::build(config, Arc::new(crate::clock::SystemClock))
        .await
        .expect("state")
        .0
}
