//! The console's token-signing certificate page: current and next certificate, downloads, generate / roll over / discard, and what NetScalers that pin the certificate must do.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Admin, AdminForm, Done, form_value, outcome};
use crate::admin::AdminError;
use crate::admin::certs;
use crate::admin::netscaler;
use crate::keys::KeyMaterial;
use crate::rp::Preset;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/certs", get(page).post(act))
        .route("/admin/certs/signing.cer", get(current_cert))
        .route("/admin/certs/next.cer", get(next_cert))
}

/// The certKey and file names a NetScaler uses for the next certificate.
const NEXT_CERT_KEY: &str = "tessera-token-signing-next";
const NEXT_CERT_FILE: &str = "tessera-token-signing-next.cer";

fn cert_view(k: &KeyMaterial) -> minijinja::Value {
    minijinja::context! {
        sha1 => k.thumbprint_sha1.clone(), sha256 => k.thumbprint_sha256.clone(), not_after => k.not_after.clone(),
        subject => k.cert.subject_name().entries().filter_map(|e| e.data().to_string().ok()).collect::<Vec<_>>().join(", "),
    }
}

async fn page(State(ctx): State<AppState>, admin: Admin, Query(done): Query<Done>) -> Response {
    render(
        &ctx,
        &admin,
        done.done.map(|d| format!("Done: {d}.")),
        None,
        StatusCode::OK,
    )
    .await
}

async fn render(
    ctx: &AppContext,
    admin: &Admin,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let signing = ctx.signing().await;
    // NetScalers pin one certificate (samlIdPCertName): each needs the next one imported and
    // its samlAction switched at the rollover.
    let pinning: Vec<minijinja::Value> = ctx
        .registry()
        .await
        .all()
        .iter()
        .filter(|rp| rp.preset == Some(Preset::Netscaler) || rp.acs.iter().any(|a| a.url.ends_with("/cgi/samlauth")))
        .map(|rp| minijinja::context! { name => rp.name.clone(), action => netscaler::action_name(rp) })
        .collect();
    let mut res = ctx.render(
        "admin_certs.html",
        minijinja::context! {
            title => "Token-signing certificates", page => "certs", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), notice => notice, error => error,
            current => cert_view(&signing.current), from_file => signing.current_from_file,
            next => signing.next.as_ref().map(cert_view), pinning => pinning,
            cert_key => netscaler::CERT_KEY_NAME, next_cert_key => NEXT_CERT_KEY, next_cert_file => NEXT_CERT_FILE,
        },
    );
    *res.status_mut() = status;
    res
}

/// The common name of a new certificate: our host and when it was made.
fn next_name(ctx: &AppContext) -> String {
    let host = url::Url::parse(ctx.config.public_base())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "localhost".into());
    format!(
        "Tessera Token Signing - {host} - {}",
        crate::saml::saml_time(ctx.clock.now())
    )
}

/// POST /admin/certs: `action` = generate_next, rollover or discard_next.
async fn act(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let actor = admin.actor(&ip);
    let now = ctx.clock.unix();
    let store = ctx.store.as_ref();
    let action = form_value(&form, "action");
    let result = match action {
        Some("generate_next") => {
            certs::generate_next(store, &ctx.secrets, &actor, now, &next_name(&ctx)).await
        }
        Some("rollover") => {
            let current = ctx.signing().await;
            certs::rollover(store, &ctx.secrets, &current.current, &actor, now).await
        }
        Some("discard_next") => certs::discard_next(store, &ctx.secrets, &actor, now).await,
        _ => Err(AdminError::Refused("Unknown action.".into())),
    };
    let done = |c: crate::admin::changes::Change| {
        ctx.keys.invalidate();
        format!("/admin/certs?done={}", c.action)
    };
    let again = async |m| Ok(render(&ctx, &admin, None, Some(m), StatusCode::BAD_REQUEST).await);
    outcome(&admin, "certificates", result, done, again).await
}

fn pem_download(file: &str, pem: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        pem,
    )
        .into_response()
}

/// GET /admin/certs/signing.cer: the current certificate (PEM), for an SP's trust store.
async fn current_cert(State(ctx): State<AppState>, _: Admin) -> Response {
    pem_download(netscaler::CERT_FILE, ctx.signing().await.current.cert_pem())
}

/// GET /admin/certs/next.cer: the next certificate, to import before the rollover.
async fn next_cert(State(ctx): State<AppState>, _: Admin) -> Result<Response, WebError> {
    match &ctx.signing().await.next {
        Some(k) => Ok(pem_download(NEXT_CERT_FILE, k.cert_pem())),
        None => Err(WebError::not_found("There is no next certificate.")),
    }
}
