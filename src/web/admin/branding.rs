//! The console's branding page: organisation name, accent colour, help-desk line and notice, and the logo (upload, show, remove).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{Admin, AdminForm, Done, csrf_check, form_value, log_refusal};
use crate::admin::AdminError;
use crate::admin::branding::{self, Branding, EditError, MAX_LOGO, TextEdit};
use crate::admin::changes::Change;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/branding", get(page).post(save))
        .route(
            "/admin/branding/logo",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_FORM)),
        )
}

/// The upload form: one logo plus the CSRF field and the multipart framing. A larger body
/// is cut off while it is read, and the admin told why.
const MAX_UPLOAD_FORM: usize = MAX_LOGO + 16 * 1024;

/// What the page shows in its form: the branding in force, or what was just typed.
struct Shown<'a> {
    edit: TextEdit,
    current: &'a Branding,
    notice: Option<String>,
    /// (field, message): the field is `logo` for the upload form.
    error: Option<(&'static str, String)>,
}

/// GET /admin/branding.
async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let (current, _) = branding::load(ctx.store.as_ref()).await?;
    let shown = Shown {
        edit: typed_of(&current),
        current: &current,
        notice: done.done.map(|d| {
            format!("Saved: {d}. The sign-in pages of every node show it within a second.")
        }),
        error: None,
    };
    Ok(render(&ctx, &admin, &shown, StatusCode::OK))
}

fn typed_of(b: &Branding) -> TextEdit {
    TextEdit {
        org_name: b.org_name.clone(),
        accent: b.accent.clone().unwrap_or_default(),
        help_desk: b.help_desk.clone(),
        notice: b.notice.clone(),
    }
}

fn render(ctx: &AppContext, admin: &Admin, shown: &Shown<'_>, status: StatusCode) -> Response {
    let e = &shown.edit;
    let logo = shown.current.logo.as_ref().map(|l| {
        minijinja::context! {
            url => minijinja::Value::from_safe_string(crate::web::branding::logo_url(l)), content_type => l.kind.content_type(), len => l.len,
        }
    });
    let (error_field, error) = shown.error.clone().unzip();
    let mut res = ctx.render(
        "admin_branding.html",
        minijinja::context! {
            title => "Branding", page => "branding", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), notice => shown.notice.clone(), error => error, error_field => error_field,
            org_name => e.org_name.clone(), accent => e.accent.clone(), help_desk => e.help_desk.clone(), notice_text => e.notice.clone(),
            logo => logo, max_name => branding::MAX_NAME, max_help_desk => branding::MAX_HELP_DESK, max_notice => branding::MAX_NOTICE,
            max_changes => branding::MAX_CHANGES,
        },
    );
    *res.status_mut() = status;
    res
}

/// The page again with the admin's message; `typed` keeps what they entered.
async fn again(
    ctx: &AppContext,
    admin: &Admin,
    typed: Option<TextEdit>,
    error: (&'static str, String),
    status: StatusCode,
) -> Result<Response, WebError> {
    log_refusal(admin, "branding", &error.1);
    let (current, _) = branding::load(ctx.store.as_ref()).await?;
    let shown = Shown {
        edit: typed.unwrap_or_else(|| typed_of(&current)),
        current: &current,
        notice: None,
        error: Some(error),
    };
    Ok(render(ctx, admin, &shown, status))
}

/// Where a change leads: the page with what changed, this node showing it at once.
fn done(ctx: &AppContext, changed: &[Change]) -> Response {
    ctx.branding.invalidate();
    let what = if changed.is_empty() {
        "nothing changed".to_owned()
    } else {
        changed
            .iter()
            .map(|c| c.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("done", &what)
        .finish();
    Redirect::to(&format!("/admin/branding?{q}")).into_response()
}

/// The status of a refusal: the change limit is 429, anything else the admin's input.
fn refusal_status(limited: bool) -> StatusCode {
    if limited {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// POST /admin/branding: `action=text` (name, accent, help desk, notice) or
/// `action=remove_logo`.
async fn save(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let (store, actor, now) = (ctx.store.as_ref(), admin.actor(&ip), ctx.clock.unix());
    let action = form_value(&form, "action");
    let field = |k: &str| form_value(&form, k).unwrap_or_default().to_owned();
    // What the admin typed, shown again on a refusal (the logo form types nothing).
    let typed = (action == Some("text")).then(|| TextEdit {
        org_name: field("org_name"),
        accent: field("accent"),
        help_desk: field("help_desk"),
        notice: field("notice"),
    });
    if let Err(e) = branding::admit(store, &actor).await {
        return refused(&ctx, &admin, typed, "form", e, true).await;
    }
    let result = match (action, &typed) {
        (Some("remove_logo"), _) => branding::remove_logo(store, &actor, now)
            .await
            .map_err(EditError::Admin),
        (_, Some(edit)) => branding::set_text(store, &actor, now, edit).await,
        _ => Err(EditError::Admin(AdminError::Refused(
            "Unknown action.".into(),
        ))),
    };
    match result {
        Ok(changed) => Ok(done(&ctx, &changed)),
        Err(EditError::Field(f, m)) => {
            again(&ctx, &admin, typed, (f, m), StatusCode::BAD_REQUEST).await
        }
        Err(EditError::Admin(e)) => refused(&ctx, &admin, typed, "form", e, false).await,
    }
}

/// An `AdminError` answered: the page with the message, or the error page for the store.
async fn refused(
    ctx: &AppContext,
    admin: &Admin,
    typed: Option<TextEdit>,
    field: &'static str,
    e: AdminError,
    limited: bool,
) -> Result<Response, WebError> {
    match e {
        AdminError::Refused(m) => {
            again(ctx, admin, typed, (field, m), refusal_status(limited)).await
        }
        AdminError::Store(e) => Err(e.into()),
    }
}

/// The upload form's fields: the CSRF token and the logo's bytes.
async fn read_upload(mut multipart: Multipart) -> Result<(String, Vec<u8>), (StatusCode, String)> {
    // Past the route's body limit the reader fails with 413; the admin reads why.
    let unreadable = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, branding::too_large(None)),
        status => (status, format!("The form could not be read: {e}")),
    };
    let (mut csrf, mut logo) = (String::new(), Vec::new());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(unreadable)?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "logo" => logo = bytes.to_vec(),
            _ => {}
        }
    }
    Ok((csrf, logo))
}

/// POST /admin/branding/logo: a new logo, checked by its bytes; nothing is stored otherwise.
async fn upload(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: Admin,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let (csrf, bytes) = match read_upload(multipart).await {
        Ok(f) => f,
        Err((status, m)) => return again(&ctx, &admin, None, ("logo", m), status).await,
    };
    csrf_check(&admin, &[("csrf".to_owned(), csrf)])?;
    let (store, actor, now) = (ctx.store.as_ref(), admin.actor(&ip), ctx.clock.unix());
    if let Err(e) = branding::admit(store, &actor).await {
        return refused(&ctx, &admin, None, "logo", e, true).await;
    }
    if bytes.len() > MAX_LOGO {
        let m = branding::too_large(Some(bytes.len()));
        return again(
            &ctx,
            &admin,
            None,
            ("logo", m),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
    match branding::set_logo(store, &actor, now, &bytes).await {
        Ok(changed) => Ok(done(&ctx, &changed)),
        Err(e) => refused(&ctx, &admin, None, "logo", e, false).await,
    }
}
