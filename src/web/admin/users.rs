//! The help desk's user pages: search the directory, one user's methods, devices, locks and recent sign-ins, and the actions on them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;
use serde::Deserialize;

use super::signins::attempt_row;
use super::{Admin, AdminForm, Done, form_value, outcome};
use crate::admin::users::{self, Action};
use crate::directory::UserInfo;
use crate::mfa::live::Policy;
use crate::mfa::registration::{PhoneKind, PhoneSource, Registration, TokenKind};
use crate::mfa::settings::MfaSettings;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

#[derive(Deserialize)]
pub(super) struct UserSearch {
    #[serde(default)]
    q: String,
}

const SEARCH_LIMIT: usize = 25;

/// GET /admin/users: search the directory.
pub(super) async fn search(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(search): Query<UserSearch>,
) -> Response {
    let q = search.q.trim();
    let (found, error, status) = match find(&ctx, q).await {
        Ok(found) => (found, None, StatusCode::OK),
        Err((status, message)) => (Vec::new(), Some(message), status),
    };
    let rows: Vec<Value> = found
        .iter()
        .map(|u| {
            minijinja::context! {
                username => u.username.clone(), upn => u.upn.clone(), display => u.display_name.clone(),
                mail => u.mail.clone(),
            }
        })
        .collect();
    let mut res = ctx.render(
        "admin_users.html",
        minijinja::context! {
            title => "Users", page => "users", admin => admin.session.display.clone(), csrf => admin.session.csrf.clone(),
            q => q, users => rows, searched => !q.is_empty(), error => error, limit => SEARCH_LIMIT,
        },
    );
    *res.status_mut() = status;
    res
}

/// The directory's users matching `q` (none for an empty search); `Err` is the status and
/// the message the search page shows instead.
async fn find(ctx: &AppContext, q: &str) -> Result<Vec<UserInfo>, (StatusCode, String)> {
    if q.is_empty() {
        return Ok(Vec::new());
    }
    if q.len() > 256 || q.chars().any(char::is_control) {
        return Err((
            StatusCode::BAD_REQUEST,
            "Search for at most 256 characters on one line.".to_owned(),
        ));
    }
    ctx.directory.search(q, SEARCH_LIMIT).await.map_err(|e| {
        tracing::warn!(error = ?e, "admin user search failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The directory could not be searched: {e}"),
        )
    })
}

/// The directory entry behind a user page's name, or the error page to show instead.
async fn directory_user(ctx: &AppContext, name: &str) -> Result<UserInfo, WebError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(WebError::bad_request("That is not a user name."));
    }
    match ctx.directory.lookup(name).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(WebError::not_found(
            "There is no such user in the directory.",
        )),
        Err(e) => {
            tracing::warn!(error = ?e, "admin user lookup failed");
            Err(WebError::Unavailable(
                format!("The directory could not be read: {e}").into(),
            ))
        }
    }
}

/// GET /admin/users/{name}: the user's page.
pub(super) async fn page(
    State(ctx): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let user = directory_user(&ctx, &name).await?;
    let notice = done
        .done
        .map(|d| format!("Done: {}.", d.replace(['_', '.'], " ")));
    render_user(&ctx, &admin, &user, notice, None, StatusCode::OK).await
}

async fn render_user(
    ctx: &AppContext,
    admin: &Admin,
    user: &UserInfo,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let now = ctx.clock.unix();
    let view = users::view(ctx.store.as_ref(), &user.username, now, 10).await?;
    let hardware = crate::admin::tokens::of_user(ctx.store.as_ref(), &user.username).await?;
    let policy = ctx.policy().await;
    let reg = &view.registration;
    let mfa = &policy.mfa;
    let mut res = ctx.render(
        "admin_user.html",
        minijinja::context! {
            title => format!("User {}", user.username), page => "users", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), notice => notice, error => error,
            user => minijinja::context! {
                username => user.username.clone(), upn => user.upn.clone(), display => user.display_name.clone(),
                mail => user.mail.clone(), groups => user.groups.join(", "),
            },
            default_method => reg.default_method.map(|m| m.as_str()), company_default => mfa.company_default.as_str(),
            methods => method_rows(reg, &policy), tokens => token_rows(reg), devices => device_rows(reg),
            hardware => hardware.iter().map(hardware_row).collect::<Vec<_>>(),
            phones => phone_rows(reg, user, &policy),
            blocked => reg.is_blocked(now), block_reason => reg.block_reason.clone(), denials => reg.mfa_denials,
            denial_limit => mfa.denial_lockout_threshold,
            password_failures => view.password_failures.0, password_failures_familiar => view.password_failures.1,
            code_failures => view.code_failures, code_limit => mfa.code_failures_per_user,
            codes_locked_until => codes_locked_until(reg, now),
            bypass_pending => view.bypass_pending, allow_bypass => mfa.allow_bypass,
            bypass_default => mfa.bypass_default_secs,
            pin => pin_status(reg, mfa, now), questions_answered => reg.security_answers.len(),
            recent => view.recent.iter().map(attempt_row).collect::<Vec<_>>(),
        },
    );
    *res.status_mut() = status;
    Ok(res)
}

/// Until when the user's codes are locked, if they are now.
fn codes_locked_until(reg: &Registration, now: i64) -> Option<String> {
    let until = reg.codes_locked_until.filter(|&u| u > now)?;
    let at = time::OffsetDateTime::from_unix_timestamp(until)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Some(crate::saml::saml_time(at))
}

fn token_rows(reg: &Registration) -> Vec<Value> {
    reg.tokens
        .iter()
        .map(|t| {
            let kind = match &t.kind {
                TokenKind::App => "authenticator app".to_owned(),
                TokenKind::Hardware { serial } => format!("hardware token {serial}"),
            };
            minijinja::context! { id => t.id.clone(), label => t.label.clone(), kind => kind }
        })
        .collect()
}

/// A hardware token from the inventory assigned to the user: activated, or waiting for the
/// user (portal) or the help desk to activate it with a code.
fn hardware_row(t: &crate::mfa::tokens::inventory::HwToken) -> Value {
    minijinja::context! {
        serial => t.serial.clone(), model => t.model.clone(), kind => t.kind_name(),
        activated => super::tokens::when(t.activated),
    }
}

fn device_rows(reg: &Registration) -> Vec<Value> {
    reg.push_devices
        .iter()
        .map(|d| minijinja::context! { id => d.id.clone(), label => d.label.clone() })
        .collect()
}

/// The user's phones: registered ones and those the directory holds.
fn phone_rows(reg: &Registration, user: &UserInfo, policy: &Policy) -> Vec<Value> {
    let dir_phones = crate::mfa::registration::directory_phones(
        user,
        &policy.mfa.phone_attributes,
        &policy.mfa.default_country_code,
    );
    reg.all_phones(&dir_phones)
        .iter()
        .map(|p| {
            minijinja::context! {
                number => p.number.clone(), masked => crate::mfa::mask_phone(&p.number),
                from_directory => p.source == PhoneSource::Directory,
            }
        })
        .collect()
}

/// The methods in force, to pick the user's default from.
fn method_rows(reg: &Registration, policy: &Policy) -> Vec<Value> {
    policy
        .mfa
        .methods
        .iter()
        .map(|m| minijinja::context! { value => m.as_str(), selected => reg.default_method == Some(*m) })
        .collect()
}

/// The user page's PIN line: none, when it was chosen, expired.
fn pin_status(reg: &Registration, mfa: &MfaSettings, now: i64) -> Option<String> {
    reg.pin_hash.as_ref()?;
    let when = reg
        .pin_set_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(
            || "at an unknown time".to_owned(),
            |t| format!("on {}", t.date()),
        );
    let expired = crate::mfa::pin::expired(reg.pin_set_at, mfa, now);
    Some(format!(
        "set {when}{}",
        if expired {
            " — expired, a new one is asked for at the next call"
        } else {
            ""
        }
    ))
}

/// Reads the posted action; `Err` is the message for the admin.
fn user_action_of(form: &[(String, String)], mfa: &MfaSettings) -> Result<Action, String> {
    let field = |k: &str| form_value(form, k).unwrap_or("").trim();
    Ok(match field("action") {
        "set_default" => match field("method") {
            "" => Action::SetDefault(None),
            m => Action::SetDefault(Some(
                m.parse().map_err(|_| format!("`{m}` is not a method"))?,
            )),
        },
        "remove_token" => Action::RemoveToken {
            id: field("id").to_owned(),
        },
        "remove_push" => Action::RemovePushDevice {
            id: field("id").to_owned(),
        },
        "remove_phone" => Action::RemovePhone {
            number: field("number").to_owned(),
        },
        "add_phone" => Action::AddPhone {
            number: field("number").to_owned(),
            kind: match field("kind") {
                "office" => PhoneKind::Office,
                _ => PhoneKind::Mobile,
            },
        },
        "reset_pin" => Action::ResetPin,
        "clear_questions" => Action::ClearQuestions,
        "unblock" => Action::Unblock,
        "bypass" => Action::Bypass {
            secs: match field("secs") {
                "" => mfa.bypass_default_secs,
                s => s
                    .parse()
                    .map_err(|_| format!("`{s}` is not a number of seconds"))?,
            },
            reason: field("reason").to_owned(),
        },
        other => return Err(format!("unknown action `{other}`")),
    })
}

/// POST /admin/users/{name}: one help-desk action.
pub(super) async fn act(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
    let user = directory_user(&ctx, &name).await?;
    match form_value(&form, "action") {
        Some("enroll_link") => return enrollment_link(&ctx, &admin, &ip, &user).await,
        Some("assign_token") => return assign_token(&ctx, &admin, &ip, &user, &form).await,
        _ => {}
    }
    let again = async |m: String| {
        render_user(&ctx, &admin, &user, None, Some(m), StatusCode::BAD_REQUEST).await
    };
    let policy = ctx.policy().await;
    let action = match user_action_of(&form, &policy.mfa) {
        Ok(a) => a,
        Err(m) => return again(m).await,
    };
    let (store, actor, now) = (ctx.store.as_ref(), admin.actor(&ip), ctx.clock.unix());
    let result = users::apply(store, &policy.mfa, &actor, now, &user.username, action).await;
    let done = |change: crate::admin::changes::Change| {
        let name = percent_encoding::utf8_percent_encode(
            &user.username,
            percent_encoding::NON_ALPHANUMERIC,
        );
        format!("/admin/users/{name}?done={}", change.action)
    };
    outcome(&admin, "user action", result, done, again).await
}

/// "Send an enrollment link": the user page again, with the new link shown once.
async fn enrollment_link(
    ctx: &AppContext,
    admin: &Admin,
    ip: &str,
    user: &UserInfo,
) -> Result<Response, WebError> {
    let policy = ctx.policy().await;
    let result = users::enrollment_link(
        ctx.store.as_ref(),
        &ctx.secrets,
        &policy.mfa,
        &admin.actor(ip),
        ctx.clock.unix(),
        &user.username,
        ctx.config.public_base(),
    )
    .await;
    let (notice, error, status) = match result {
        Ok((change, url)) => {
            let until = change.after.unwrap_or_default();
            let notice = format!(
                "Enrollment link ({until}); give it to the user, it is shown only this once: {url}"
            );
            (Some(notice), None, StatusCode::OK)
        }
        Err(crate::admin::AdminError::Refused(m)) => (None, Some(m), StatusCode::BAD_REQUEST),
        Err(crate::admin::AdminError::Store(e)) => return Err(e.into()),
    };
    render_user(ctx, admin, user, notice, error, status).await
}

/// "Assign a hardware token": the inventory's assign (and, with a code read off the token,
/// its activation) through `admin::tokens`, so the change log shows it as the token page's.
async fn assign_token(
    ctx: &AppContext,
    admin: &Admin,
    ip: &str,
    user: &UserInfo,
    form: &[(String, String)],
) -> Result<Response, WebError> {
    let serial = form_value(form, "serial").unwrap_or("").trim();
    let code = form_value(form, "code");
    let result = if serial.is_empty() {
        Err(crate::admin::AdminError::Refused(
            "Give the token's serial number.".into(),
        ))
    } else {
        let (deps, dir) = (super::tokens::deps(ctx), ctx.directory.as_ref());
        let actor = admin.actor(ip);
        let windows = crate::mfa::tokens::inventory::HotpWindows::of(&ctx.policy().await.mfa);
        crate::admin::tokens::assign_to_user(
            &deps,
            windows,
            dir,
            &actor,
            &user.username,
            serial,
            code,
        )
        .await
        .map_err(super::tokens::admin_error)
    };
    let done = |changes: Vec<crate::admin::changes::Change>| {
        let name = percent_encoding::utf8_percent_encode(
            &user.username,
            percent_encoding::NON_ALPHANUMERIC,
        );
        let last = changes
            .last()
            .map_or("tokens.assign", |c| c.action.as_str());
        format!("/admin/users/{name}?done={last}")
    };
    let again =
        async |m| render_user(ctx, admin, user, None, Some(m), StatusCode::BAD_REQUEST).await;
    outcome(admin, "assign token", result, done, again).await
}
