//! The adapter settings page: every setting of the MFA adapter in one form, saved all at once or not at all.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;
use serde::Deserialize;

use super::{Admin, AdminForm};
use crate::admin::settings::{self as admin_settings, ApplyError};
use crate::mfa::settings::MfaSettings;
use crate::mfa::table::{self, Group, Kind, SETTINGS, Setting};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

#[derive(Deserialize)]
pub(super) struct SavedQuery {
    saved: Option<usize>,
}

/// GET /admin/settings: the settings in force, and what the last save did.
pub(super) async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(q): Query<SavedQuery>,
) -> Result<Response, WebError> {
    let (current, overrides) =
        admin_settings::current(ctx.store.as_ref(), ctx.settings.base()).await?;
    let notice = q.saved.map(|n| match n {
        0 => "Nothing changed.".to_owned(),
        1 => "Saved 1 change. It is in force on every node within a second.".to_owned(),
        n => format!("Saved {n} changes. They are in force on every node within a second."),
    });
    let form = Submitted::Current(&current, &overrides);
    Ok(render_settings(
        &ctx,
        &admin,
        &form,
        notice,
        None,
        StatusCode::OK,
    ))
}

/// What the settings form shows: the settings in force, or what was just typed (with errors).
pub(super) enum Submitted<'a> {
    Current(&'a MfaSettings, &'a crate::mfa::live::Overrides),
    Typed(&'a [(String, String)]),
}

impl Submitted<'_> {
    /// The field's values as text (several for a multi-choice or lines).
    fn values(&self, s: &Setting) -> Vec<String> {
        match self {
            Submitted::Current(current, _) => {
                let v = table::get(current, s.key);
                match (&s.kind, v) {
                    (Kind::Secret, _) => Vec::new(),
                    (_, serde_json::Value::Array(items)) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect(),
                    (_, serde_json::Value::Bool(b)) => {
                        vec![if b { "on" } else { "" }.to_owned()]
                    }
                    (_, serde_json::Value::Null) => Vec::new(),
                    (_, serde_json::Value::String(t)) => vec![t],
                    (_, other) => vec![other.to_string()],
                }
            }
            Submitted::Typed(form) => form
                .iter()
                .filter(|(k, _)| k == s.key)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }
}

pub(super) fn render_settings(
    ctx: &AppContext,
    admin: &Admin,
    form: &Submitted<'_>,
    notice: Option<String>,
    errors: Option<&[(String, String)]>,
    status: StatusCode,
) -> Response {
    let base = ctx.settings.base();
    let groups: Vec<Value> = Group::ALL
        .iter()
        .map(|g| {
            let rows: Vec<Value> = SETTINGS
                .iter()
                .filter(|s| s.group == *g)
                .map(|s| setting_row(s, form, base, errors))
                .collect();
            minijinja::context! { title => g.title(), settings => rows }
        })
        .collect();
    let error_list: Vec<Value> = errors
        .unwrap_or_default()
        .iter()
        .map(|(key, msg)| {
            let label = table::find(key).map_or(key.as_str(), |s| s.label);
            minijinja::context! { key => key.clone(), label => label, message => msg.clone() }
        })
        .collect();
    let mut res = ctx.render(
        "admin_settings.html",
        minijinja::context! {
            title => "Adapter settings", page => "settings", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), groups => groups, notice => notice, errors => error_list,
        },
    );
    *res.status_mut() = status;
    res
}

fn setting_row(
    s: &Setting,
    form: &Submitted<'_>,
    base: &MfaSettings,
    errors: Option<&[(String, String)]>,
) -> Value {
    let values = form.values(s);
    let (control, min, max, options) = match s.kind {
        Kind::Bool => ("bool", None, None, Vec::new()),
        Kind::Number { min, max } => ("number", Some(min), Some(max), Vec::new()),
        Kind::Choice(o) => ("choice", None, None, o.to_vec()),
        Kind::Choices(o) => ("choices", None, None, o.to_vec()),
        Kind::Text { .. } => ("text", None, None, Vec::new()),
        Kind::Lines => ("lines", None, None, Vec::new()),
        Kind::Secret => ("secret", None, None, Vec::new()),
    };
    let options: Vec<Value> = options
        .iter()
        .map(|(v, label)| {
            minijinja::context! { value => *v, label => *label, selected => values.iter().any(|x| x == v) }
        })
        .collect();
    let (overridden, secret_set) = match form {
        Submitted::Current(current, overrides) => (
            overrides.contains_key(s.key),
            !table::get(current, s.key).is_null(),
        ),
        Submitted::Typed(_) => (false, false),
    };
    let error = errors
        .unwrap_or_default()
        .iter()
        .find(|(k, _)| k == s.key)
        .map(|(_, m)| m.clone());
    minijinja::context! {
        key => s.key, label => s.label, help => s.help, control => control, min => min, max => max,
        options => options, value => values.first().cloned().unwrap_or_default(), lines => values.join("\n"),
        checked => values.first().is_some_and(|v| !v.is_empty()), overridden => overridden,
        default => table::display(s, &table::get(base, s.key)), secret_set => secret_set, error => error,
    }
}

/// A setting read from the form, ready to apply.
type Edit = (&'static Setting, serde_json::Value);

/// Reads every setting of the form; `Err` holds each field that does not read, with why.
fn read_form(form: &[(String, String)]) -> Result<Vec<Edit>, Vec<(String, String)>> {
    let mut edits = Vec::new();
    let mut errors = Vec::new();
    for s in SETTINGS {
        let typed: Vec<String> = form
            .iter()
            .filter(|(k, _)| k == s.key)
            .map(|(_, v)| v.clone())
            .collect();
        match table::parse(s, &typed) {
            Ok(Some(v)) => edits.push((s, v)),
            Ok(None) => {}
            Err(e) => errors.push((s.key.to_owned(), e)),
        }
    }
    if errors.is_empty() {
        Ok(edits)
    } else {
        Err(errors)
    }
}

/// POST /admin/settings: every setting of the page at once. Nothing is stored unless all
/// of them read and the result validates as a whole.
pub(super) async fn save(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let typed = Submitted::Typed(&form);
    let again = |notice: Option<String>, errors: Option<&[(String, String)]>, status| {
        render_settings(&ctx, &admin, &typed, notice, errors, status)
    };
    let edits = match read_form(&form) {
        Ok(edits) => edits,
        Err(errors) => {
            tracing::info!(admin = %admin.session.user, errors = ?errors, "settings form refused");
            return Ok(again(None, Some(&errors), StatusCode::BAD_REQUEST));
        }
    };
    let now = ctx.clock.unix();
    let (store, base) = (ctx.store.as_ref(), ctx.settings.base());
    Ok(match admin_settings::apply(store, base, &admin.actor(&ip), now, &edits).await {
        Ok(changed) => {
            ctx.settings.invalidate();
            Redirect::to(&format!("/admin/settings?saved={}", changed.len())).into_response()
        }
        Err(ApplyError::Invalid(invalid)) => {
            tracing::info!(admin = %admin.session.user, error = %invalid, "settings refused by validation");
            let errors = [(invalid.key.clone(), invalid.detail.clone())];
            again(None, Some(&errors), StatusCode::BAD_REQUEST)
        }
        Err(ApplyError::Busy) => again(
            Some("Someone else saved the settings at the same moment. Check the values and save again.".into()),
            None,
            StatusCode::CONFLICT,
        ),
        Err(ApplyError::Store(e)) => return Err(e.into()),
    })
}
