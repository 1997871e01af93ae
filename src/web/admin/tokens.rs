//! The console's hardware-token page: the inventory, import with its per-row report, and assign / activate / resync / unassign / remove.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{Admin, AdminForm, Done, csrf_check, form_value, outcome};
use crate::admin::AdminError;
use crate::admin::tokens::{self, Action};
use crate::mfa::tokens::inventory::{self, Deps, HwToken, TokenError};
use crate::mfa::tokens::{MAX_FILE_BYTES, RowProblem};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tokens", get(page).post(act))
        .route(
            "/admin/tokens/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_FORM)),
        )
}

/// One token file plus the form's own fields and multipart framing.
const MAX_IMPORT_FORM: usize = MAX_FILE_BYTES + 64 * 1024;

async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let notice = done.done.map(|d| format!("Done: {d}."));
    render(&ctx, &admin, (notice, None), &[], StatusCode::OK).await
}

pub(super) fn when(t: Option<i64>) -> Option<String> {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(crate::saml::saml_time)
}

fn row(t: &HwToken) -> minijinja::Value {
    minijinja::context! {
        serial => t.serial.clone(), kind => t.kind_name(), model => t.model.clone(),
        user => t.assigned.clone(), activated => when(t.activated), last_used => when(t.last_used),
    }
}

fn problem_rows(problems: &[RowProblem]) -> Vec<minijinja::Value> {
    problems
        .iter()
        .map(|p| minijinja::context! { row => p.row, serial => p.serial.clone(), reason => p.reason.clone() })
        .collect()
}

/// The page with `(notice, error)` and an import's problems, if any.
async fn render(
    ctx: &AppContext,
    admin: &Admin,
    (notice, error): (Option<String>, Option<String>),
    problems: &[RowProblem],
    status: StatusCode,
) -> Result<Response, WebError> {
    let tokens: Vec<_> = inventory::list(ctx.store.as_ref())
        .await?
        .iter()
        .map(row)
        .collect();
    let mut res = ctx.render(
        "admin_tokens.html",
        minijinja::context! {
            title => "Hardware tokens", page => "tokens", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), notice => notice, error => error,
            tokens => tokens, problems => problem_rows(problems),
        },
    );
    *res.status_mut() = status;
    Ok(res)
}

pub(super) fn deps(ctx: &AppContext) -> Deps<'_> {
    Deps {
        store: ctx.store.as_ref(),
        secrets: &ctx.secrets,
        now: ctx.clock.unix(),
    }
}

/// A token refusal is the admin's to read; a store failure is the error page's.
pub(super) fn admin_error(e: TokenError) -> AdminError {
    match e {
        TokenError::Store(s) => AdminError::Store(s),
        other => AdminError::Refused(other.to_string()),
    }
}

/// The action form's fields as one `Action`.
fn action_of(form: &[(String, String)]) -> Result<Action, AdminError> {
    let field = |n| form_value(form, n).unwrap_or("").trim().to_owned();
    let serial = field("serial");
    if serial.is_empty() {
        return Err(AdminError::Refused(
            "Give the token's serial number.".into(),
        ));
    }
    Ok(match form_value(form, "action") {
        Some("assign") => Action::Assign {
            serial,
            user: field("user"),
        },
        Some("unassign") => Action::Unassign { serial },
        Some("activate") => Action::Activate {
            serial,
            code: field("code"),
        },
        Some("resync") => Action::Resync {
            serial,
            first: field("code"),
            second: field("code2"),
        },
        Some("remove") => Action::Remove { serial },
        _ => return Err(AdminError::Refused("Unknown action.".into())),
    })
}

/// POST /admin/tokens: one change to one token, in the change log.
async fn act(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let actor = admin.actor(&ip);
    let windows = inventory::HotpWindows::of(&ctx.policy().await.mfa);
    let result = match action_of(&form) {
        Ok(action) => {
            tokens::apply_within(&deps(&ctx), windows, ctx.directory.as_ref(), &actor, action)
                .await
                .map_err(admin_error)
        }
        Err(e) => Err(e),
    };
    let done = |c: crate::admin::changes::Change| format!("/admin/tokens?done={}", c.action);
    let again = async |m| render(&ctx, &admin, (None, Some(m)), &[], StatusCode::BAD_REQUEST).await;
    outcome(&admin, "hardware token", result, done, again).await
}

/// The import form's fields: CSRF token, the file, the PSKC key.
#[derive(Default)]
struct ImportForm {
    csrf: String,
    file: Option<(String, Vec<u8>)>,
    pskc_key: String,
}

async fn read_import(mut multipart: Multipart) -> Result<ImportForm, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The file is larger than 1 MiB.".to_owned(),
        )
    };
    let unreadable = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        status => (status, format!("the form could not be read: {e}")),
    };
    let mut f = ImportForm::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().unwrap_or("upload").to_owned();
        let bytes = field.bytes().await.map_err(unreadable)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match name.as_str() {
            "csrf" => f.csrf = text(),
            "pskc_key" => f.pskc_key = text(),
            "file" if !bytes.is_empty() => f.file = Some((file_name, bytes.to_vec())),
            _ => {}
        }
    }
    Ok(f)
}

/// POST /admin/tokens/import: the whole file is checked; with any bad row nothing is stored
/// and the report is shown.
async fn import(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: Admin,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let again = async |m, problems: &[RowProblem], status| {
        render(&ctx, &admin, (None, m), problems, status).await
    };
    let form = match read_import(multipart).await {
        Ok(f) => f,
        Err((status, m)) => return again(Some(m), &[], status).await,
    };
    csrf_check(&admin, &[("csrf".to_owned(), form.csrf.clone())])?;
    let Some((name, bytes)) = form.file else {
        return again(Some("Choose a file.".into()), &[], StatusCode::BAD_REQUEST).await;
    };
    let Ok(psk) = hex::decode(&form.pskc_key) else {
        return again(
            Some("The PSKC key is not hex.".into()),
            &[],
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let psk = (!psk.is_empty()).then_some(psk);
    let actor = admin.actor(&ip);
    let dir = ctx.directory.as_ref();
    let result = tokens::import(&deps(&ctx), dir, &actor, &name, &bytes, psk.as_deref()).await;
    let report = match result {
        Ok(r) => r,
        Err(TokenError::Store(e)) => return Err(e.into()),
        Err(e) => return again(Some(e.to_string()), &[], StatusCode::BAD_REQUEST).await,
    };
    if report.problems.is_empty() {
        return Ok(Redirect::to("/admin/tokens?done=tokens.import").into_response());
    }
    super::log_refusal(
        &admin,
        "token import",
        &format!("{} bad rows", report.problems.len()),
    );
    again(None, &report.problems, StatusCode::BAD_REQUEST).await
}
