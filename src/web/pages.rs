//! Plain pages: home, admin docs, metadata, health, static assets.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AppState, PageLang};

/// Users may land here, so it follows their language like the sign-in pages.
pub async fn home(State(ctx): State<AppState>, lang: PageLang) -> Response {
    ctx.page(
        &lang,
        "home.html",
        minijinja::context! {
            title => ctx.config.idp.display_name.clone(),
            entity_id => ctx.config.entity_id(),
            sso_url => ctx.sso_url(),
            rps => ctx.registry().await.all().iter().map(|rp| minijinja::context!{ name => rp.name.clone(), entity_id => rp.entity_id.clone() }).collect::<Vec<_>>(),
        },
    )
}

/// GET /docs: the admin guide, with this server's own values and the NetScaler commands for
/// the example gateway from the generator the console uses (`admin::netscaler`).
pub async fn docs(State(ctx): State<AppState>) -> Response {
    let signing = ctx.signing().await;
    let endpoints = crate::startup::endpoints(&ctx.config);
    let example = crate::admin::netscaler::Gateway::example();
    let (commands, commands_error) =
        match crate::admin::netscaler::script(&example, &endpoints.sso, endpoints.slo.as_deref()) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
    ctx.render(
        "docs.html",
        minijinja::context! {
            title => "Administrator guide",
            base => ctx.config.public_base(),
            entity_id => endpoints.entity_id,
            sso_url => endpoints.sso,
            thumbprint => signing.current.thumbprint_sha1.clone(),
            not_after => signing.current.not_after.clone(),
            example_gateway => example.entity_id, commands => commands, commands_error => commands_error,
            cert_file => crate::admin::netscaler::CERT_FILE,
            dev_phone => ctx.simulator.is_some(),
        },
    )
}

pub async fn health() -> &'static str {
    "ok"
}

pub async fn metadata(State(ctx): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/samlmetadata+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ctx.signing().await.metadata_xml.clone(),
    )
        .into_response()
}

/// One of our static files, cached for a day (its URL stays the same when it changes).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

pub async fn css() -> Response {
    asset("text/css", include_str!("../../static/tessera.css"))
}

/// The auto-POST pages' submitter and the sign-out page's follower.
pub async fn autosubmit_js() -> Response {
    asset(
        "application/javascript",
        include_str!("../../static/autosubmit.js"),
    )
}

/// The waiting pages' listener (see `web::wait`).
pub async fn wait_js() -> Response {
    asset(
        "application/javascript",
        include_str!("../../static/wait.js"),
    )
}
