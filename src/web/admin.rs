//! The admin console's pages: sign-in through the login flow (always with a second factor), the overview, the adapter settings page, sign-out.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::Value;
use serde::Deserialize;

use super::{AppContext, AppState, ClientIp};
use crate::admin::AdminError;
use crate::admin::changes::{self, Change};
use crate::admin::session::{self, AdminSession, COOKIE};
use crate::admin::settings::{self as admin_settings, ApplyError};
use crate::admin::signins::{self, Attempt, Filter};
use crate::admin::users::{self, Action};
use crate::admin::{Actor, is_admin};
use crate::directory::UserInfo;
use crate::login::{AuthMethod, Flow, Pending};
use crate::mfa::settings::MfaSettings;
use crate::mfa::table::{self, Group, Kind, SETTINGS, Setting};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/settings", get(settings_page).post(settings_save))
        .route("/admin/settings/test", post(gateway_test))
        .route("/admin/signout", post(signout))
        .route("/admin/signins", get(signins_page))
        .route("/admin/signins.csv", get(signins_csv))
        .route("/admin/users", get(users_page))
        .route("/admin/users/{name}", get(user_page).post(user_action))
}

/// A signed-in admin, for one request.
pub(super) struct Admin {
    pub(super) session: AdminSession,
    token: String,
}

impl Admin {
    pub(super) fn actor(&self, ip: &str) -> Actor {
        Actor {
            name: self.session.user.clone(),
            client_ip: ip.to_owned(),
        }
    }
}

/// The admin behind the cookie, or the response to send instead: a new sign-in (GET) or a
/// refusal (a form posted without a live session).
pub(super) async fn require(ctx: &AppContext, jar: &CookieJar) -> Result<Admin, Response> {
    let Some(token) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return Err(Redirect::to("/admin").into_response());
    };
    match session::load(
        ctx.store.as_ref(),
        &ctx.config.admin,
        &token,
        ctx.clock.unix(),
    )
    .await
    {
        Ok(Some(session)) => Ok(Admin { session, token }),
        Ok(None) => Err(Redirect::to("/admin").into_response()),
        Err(e) => Err(super::saml::store_failure(ctx, &e)),
    }
}

/// Every form carries the session's CSRF token; a form without it is refused before it is
/// read. `Some` is the refusal page.
pub(super) fn csrf_refusal(
    ctx: &AppContext,
    admin: &Admin,
    form: &[(String, String)],
) -> Option<Response> {
    let presented = form_value(form, "csrf").unwrap_or("");
    if admin.session.csrf_ok(presented) {
        return None;
    }
    tracing::warn!(admin = %admin.session.user, "admin form without a valid CSRF token refused");
    Some(ctx.error_page(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from the admin console. Reload the page and try again.",
    ))
}

/// The first value of `name` in a posted form, as sent.
pub(super) fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `?done=…` on the page a successful change redirects to.
#[derive(Deserialize)]
pub(super) struct Done {
    pub(super) done: Option<String>,
}

/// Logs an admin operation that was refused; the admin reads `message` on the page.
pub(super) fn log_refusal(admin: &Admin, what: &str, message: &str) {
    tracing::info!(admin = %admin.session.user, operation = what, reason = message, "admin operation refused");
}

fn parse_form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A console handler's signed-in admin; without a session (or with an expired one) the
/// request is answered with a new sign-in instead.
impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, Response> {
        require(ctx, &CookieJar::from_headers(&parts.headers)).await
    }
}

/// A form posted by a signed-in admin with the session's CSRF token; otherwise the request is
/// answered with a new sign-in or the refusal, and the form is never read.
pub(super) struct AdminForm(pub(super) Admin, pub(super) Vec<(String, String)>);

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, ctx).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = parse_form(&body);
        match csrf_refusal(ctx, &admin, &form) {
            Some(refusal) => Err(refusal),
            None => Ok(AdminForm(admin, form)),
        }
    }
}

/// GET /admin: the overview, or — without a session — a sign-in that always asks for the
/// second factor.
async fn home(State(ctx): State<AppState>, ClientIp(ip): ClientIp, jar: CookieJar) -> Response {
    // An expired or unknown session falls through to a new sign-in.
    if jar.get(COOKIE).is_some()
        && let Ok(admin) = require(&ctx, &jar).await
    {
        return overview(&ctx, &admin).await;
    }
    let flow = Flow::new(Pending::AdminConsole, &ip, ctx.clock.unix());
    // The console is English; its sign-in pages follow the browser like any other.
    let english = super::PageLang::default();
    let jar = jar.remove(Cookie::build(COOKIE).path("/admin"));
    super::login::begin(&ctx, &english, flow, jar).await
}

async fn overview(ctx: &AppContext, admin: &Admin) -> Response {
    let recent = match changes::recent(ctx.store.as_ref(), 20).await {
        Ok(r) => r,
        Err(e) => return super::saml::store_failure(ctx, &e),
    };
    ctx.render(
        "admin_home.html",
        minijinja::context! {
            title => "Admin console", page => "home", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), changes => change_rows(&recent),
        },
    )
}

fn change_rows(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| {
            minijinja::context! {
                at => c.at.clone(), admin => c.admin.clone(), action => c.action.clone(),
                target => c.target.clone(), before => c.before.clone(), after => c.after.clone(),
            }
        })
        .collect()
}

/// Ends a sign-in flow made for the console: only members of the admin group who used a
/// second factor get a session.
pub async fn signed_in(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
    client_ip: &str,
    jar: CookieJar,
) -> Response {
    let now = ctx.clock.unix();
    let actor = Actor {
        name: user.username.clone(),
        client_ip: client_ip.to_owned(),
    };
    let refuse = |reason: &str, message: &str| {
        let change = Change::new(
            &actor,
            now,
            "console.refused",
            &user.username,
            None,
            Some(reason.to_owned()),
        );
        (change, ctx.error_page(StatusCode::FORBIDDEN, message))
    };
    let refused = if !methods.iter().any(|m| m.is_second_factor()) {
        Some(refuse(
            "no second factor",
            "The admin console needs a second factor. Go back to /admin and sign in again.",
        ))
    } else if !is_admin(&ctx.config.admin, user) {
        Some(refuse(
            "not in the admin group",
            "Your account is not allowed to use the admin console.",
        ))
    } else {
        None
    };
    if let Some((change, page)) = refused {
        tracing::warn!(user = %user.username, reason = change.after.as_deref().unwrap_or(""), "admin console refused");
        if let Err(e) = changes::record(ctx.store.as_ref(), now, &[change]).await {
            return super::saml::store_failure(ctx, &e);
        }
        return page;
    }
    let s = AdminSession {
        user: user.username.clone(),
        display: user
            .display_name
            .clone()
            .or_else(|| user.upn.clone())
            .unwrap_or_else(|| user.username.clone()),
        csrf: crate::saml::random_hex(32),
        started: now,
        methods: methods.to_vec(),
        client_ip: client_ip.to_owned(),
    };
    let token = match session::start(ctx.store.as_ref(), &ctx.config.admin, &s).await {
        Ok(t) => t,
        Err(e) => return super::saml::store_failure(ctx, &e),
    };
    let change = Change::new(&actor, now, "console.sign_in", &user.username, None, None);
    if let Err(e) = changes::record(ctx.store.as_ref(), now, &[change]).await {
        return super::saml::store_failure(ctx, &e);
    }
    let cookie = Cookie::build((COOKIE, token))
        .path("/admin")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(SameSite::Strict)
        .build();
    (jar.add(cookie), Redirect::to("/admin")).into_response()
}

async fn signout(
    State(ctx): State<AppState>,
    jar: CookieJar,
    AdminForm(admin, _): AdminForm,
) -> Response {
    if let Err(e) = session::end(ctx.store.as_ref(), &admin.token).await {
        return super::saml::store_failure(&ctx, &e);
    }
    let jar = jar.remove(Cookie::build(COOKIE).path("/admin"));
    (
        jar,
        ctx.render(
            "error.html",
            minijinja::context! { title => "Signed out", message => "You are signed out of the admin console." },
        ),
    )
        .into_response()
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<usize>,
}

async fn settings_page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(q): Query<SavedQuery>,
) -> Response {
    let (current, overrides) =
        match admin_settings::current(ctx.store.as_ref(), ctx.settings.base()).await {
            Ok(x) => x,
            Err(e) => return super::saml::store_failure(&ctx, &e),
        };
    let notice = q.saved.map(|n| match n {
        0 => "Nothing changed.".to_owned(),
        1 => "Saved 1 change. It is in force on every node within a second.".to_owned(),
        n => format!("Saved {n} changes. They are in force on every node within a second."),
    });
    let form = Submitted::Current(&current, &overrides);
    render_settings(&ctx, &admin, &form, notice, None, StatusCode::OK)
}

/// What the settings form shows: the settings in force, or what was just typed (with errors).
enum Submitted<'a> {
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

fn render_settings(
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

/// POST /admin/settings: every setting of the page at once. Nothing is stored unless all
/// of them read and the result validates as a whole.
async fn settings_save(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Response {
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
    let typed = Submitted::Typed(&form);
    if !errors.is_empty() {
        tracing::info!(admin = %admin.session.user, errors = ?errors, "settings form refused");
        return render_settings(
            &ctx,
            &admin,
            &typed,
            None,
            Some(&errors),
            StatusCode::BAD_REQUEST,
        );
    }
    let now = ctx.clock.unix();
    match admin_settings::apply(ctx.store.as_ref(), ctx.settings.base(), &admin.actor(&ip), now, &edits)
        .await
    {
        Ok(changed) => {
            ctx.settings.invalidate();
            Redirect::to(&format!("/admin/settings?saved={}", changed.len())).into_response()
        }
        Err(ApplyError::Invalid(invalid)) => {
            tracing::info!(admin = %admin.session.user, error = %invalid, "settings refused by validation");
            let errors = [(invalid.key.clone(), invalid.detail.clone())];
            render_settings(&ctx, &admin, &typed, None, Some(&errors), StatusCode::BAD_REQUEST)
        }
        Err(ApplyError::Busy) => render_settings(
            &ctx,
            &admin,
            &typed,
            Some("Someone else saved the settings at the same moment. Check the values and save again.".into()),
            None,
            StatusCode::CONFLICT,
        ),
        Err(ApplyError::Store(e)) => super::saml::store_failure(&ctx, &e),
    }
}

/// GET /admin/signins: the sign-in log, one row per attempt, filtered; each row opens into
/// its steps (a `<details>` element: no script needed).
async fn signins_page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(filter): Query<Filter>,
) -> Response {
    let shown = filter.clone();
    let (attempts, truncated, error, status) = match filter.query(ctx.clock.unix()) {
        Err(bad) => (
            Vec::new(),
            false,
            Some(bad.to_string()),
            StatusCode::BAD_REQUEST,
        ),
        Ok(q) => match signins::search(ctx.store.as_ref(), &q).await {
            Ok((a, t)) => (a, t, None, StatusCode::OK),
            Err(e) => return super::saml::store_failure(&ctx, &e),
        },
    };
    let csv_query = serde_urlencoded_filter(&shown);
    let mut res = ctx.render(
        "admin_signins.html",
        minijinja::context! {
            title => "Sign-in log", page => "signins", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), f => minijinja::context! {
                user => shown.user, rp => shown.rp, outcome => shown.outcome, method => shown.method,
                ip => shown.ip, from => shown.from, to => shown.to,
            },
            attempts => attempts.iter().map(attempt_row).collect::<Vec<_>>(), truncated => truncated,
            max_events => signins::MAX_EVENTS, error => error, csv_query => csv_query,
        },
    );
    *res.status_mut() = status;
    res
}

fn attempt_row(a: &Attempt) -> Value {
    let steps: Vec<Value> = a
        .events
        .iter()
        .map(|e| {
            minijinja::context! {
                at => e.at.clone(), from => e.from.clone(), to => e.to.clone(), method => e.method.clone(),
                outcome => e.outcome.clone(), reason => e.reason.clone(),
            }
        })
        .collect();
    minijinja::context! {
        flow => a.flow.clone(), started => a.started.clone(), user => a.user.clone(), rp => a.rp.clone(),
        client_ip => a.client_ip.clone(), result => a.result.as_str(), methods => a.methods.join(", "),
        failures => a.failures, reason => a.reason.clone(), steps => steps,
    }
}

/// The filter as a query string, for the CSV link of the same search.
fn serde_urlencoded_filter(f: &Filter) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("user", &f.user),
        ("rp", &f.rp),
        ("outcome", &f.outcome),
        ("method", &f.method),
        ("ip", &f.ip),
        ("from", &f.from),
        ("to", &f.to),
    ] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

/// GET /admin/signins.csv: the same search as a CSV download.
async fn signins_csv(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(filter): Query<Filter>,
) -> Response {
    let q = match filter.query(ctx.clock.unix()) {
        Ok(q) => q,
        Err(bad) => return ctx.error_page(StatusCode::BAD_REQUEST, &bad.to_string()),
    };
    let (attempts, _) = match signins::search(ctx.store.as_ref(), &q).await {
        Ok(x) => x,
        Err(e) => return super::saml::store_failure(&ctx, &e),
    };
    tracing::info!(admin = %admin.session.user, rows = attempts.len(), "sign-in log exported");
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"tessera-signins.csv\"",
            ),
        ],
        signins::csv(&attempts),
    )
        .into_response()
}

#[derive(Deserialize)]
struct UserSearch {
    #[serde(default)]
    q: String,
}

const SEARCH_LIMIT: usize = 25;

/// GET /admin/users: search the directory.
async fn users_page(
    State(ctx): State<AppState>,
    admin: Admin,
    Query(search): Query<UserSearch>,
) -> Response {
    let q = search.q.trim();
    let (found, error, status) = if q.is_empty() {
        (Vec::new(), None, StatusCode::OK)
    } else if q.len() > 256 || q.chars().any(char::is_control) {
        (
            Vec::new(),
            Some("Search for at most 256 characters on one line.".to_owned()),
            StatusCode::BAD_REQUEST,
        )
    } else {
        match ctx.directory.search(q, SEARCH_LIMIT).await {
            Ok(users) => (users, None, StatusCode::OK),
            Err(e) => {
                tracing::warn!(error = ?e, "admin user search failed");
                (
                    Vec::new(),
                    Some(format!("The directory could not be searched: {e}")),
                    StatusCode::SERVICE_UNAVAILABLE,
                )
            }
        }
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

/// The directory entry behind a user page's name, or the page to show instead.
async fn directory_user(ctx: &AppContext, name: &str) -> Result<UserInfo, Box<Response>> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Box::new(
            ctx.error_page(StatusCode::BAD_REQUEST, "That is not a user name."),
        ));
    }
    match ctx.directory.lookup(name).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(Box::new(ctx.error_page(
            StatusCode::NOT_FOUND,
            "There is no such user in the directory.",
        ))),
        Err(e) => {
            tracing::warn!(error = ?e, "admin user lookup failed");
            Err(Box::new(ctx.error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The directory could not be read: {e}"),
            )))
        }
    }
}

async fn user_page(
    State(ctx): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let user = match directory_user(&ctx, &name).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
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
) -> Response {
    let now = ctx.clock.unix();
    let view = match users::view(ctx.store.as_ref(), &user.username, now, 10).await {
        Ok(v) => v,
        Err(e) => return super::saml::store_failure(ctx, &e),
    };
    let policy = ctx.policy().await;
    let reg = &view.registration;
    let blocked = reg.is_blocked(now);
    let tokens: Vec<Value> = reg
        .tokens
        .iter()
        .map(|t| {
            let kind = match &t.kind {
                crate::mfa::registration::TokenKind::App => "authenticator app".to_owned(),
                crate::mfa::registration::TokenKind::Hardware { serial } => {
                    format!("hardware token {serial}")
                }
            };
            minijinja::context! { id => t.id.clone(), label => t.label.clone(), kind => kind }
        })
        .collect();
    let devices: Vec<Value> = reg
        .push_devices
        .iter()
        .map(|d| minijinja::context! { id => d.id.clone(), label => d.label.clone() })
        .collect();
    let dir_phones = crate::mfa::registration::directory_phones(
        user,
        &policy.mfa.phone_attributes,
        &policy.mfa.default_country_code,
    );
    let phones: Vec<Value> = reg
        .all_phones(&dir_phones)
        .iter()
        .map(|p| {
            minijinja::context! {
                number => p.number.clone(), masked => crate::mfa::mask_phone(&p.number),
                from_directory => p.source == crate::mfa::registration::PhoneSource::Directory,
            }
        })
        .collect();
    let methods: Vec<Value> = policy
        .mfa
        .methods
        .iter()
        .map(|m| minijinja::context! { value => m.as_str(), selected => reg.default_method == Some(*m) })
        .collect();
    let mut res = ctx.render(
        "admin_user.html",
        minijinja::context! {
            title => format!("User {}", user.username), page => "users", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), notice => notice, error => error,
            user => minijinja::context! {
                username => user.username.clone(), upn => user.upn.clone(), display => user.display_name.clone(),
                mail => user.mail.clone(), groups => user.groups.join(", "),
            },
            default_method => reg.default_method.map(|m| m.as_str()), company_default => policy.mfa.company_default.as_str(),
            methods => methods, tokens => tokens, devices => devices, phones => phones,
            blocked => blocked, block_reason => reg.block_reason.clone(), denials => reg.mfa_denials,
            denial_limit => policy.mfa.denial_lockout_threshold,
            password_failures => view.password_failures.0, password_failures_familiar => view.password_failures.1,
            code_failures => view.code_failures, code_limit => policy.mfa.code_failures_per_user,
            codes_locked_until => reg.codes_locked_until.filter(|&u| u > now).map(|u| crate::saml::saml_time(time::OffsetDateTime::from_unix_timestamp(u).unwrap_or(time::OffsetDateTime::UNIX_EPOCH))),
            bypass_pending => view.bypass_pending, allow_bypass => policy.mfa.allow_bypass,
            bypass_default => policy.mfa.bypass_default_secs,
            pin => pin_status(reg, &policy.mfa, now),
            recent => view.recent.iter().map(attempt_row).collect::<Vec<_>>(),
        },
    );
    *res.status_mut() = status;
    res
}

/// The user page's PIN line: none, when it was chosen, expired.
fn pin_status(
    reg: &crate::mfa::registration::Registration,
    mfa: &MfaSettings,
    now: i64,
) -> Option<String> {
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
        "reset_pin" => Action::ResetPin,
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
async fn user_action(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    AdminForm(admin, form): AdminForm,
) -> Response {
    let user = match directory_user(&ctx, &name).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let policy = ctx.policy().await;
    let action = match user_action_of(&form, &policy.mfa) {
        Ok(a) => a,
        Err(m) => {
            return render_user(&ctx, &admin, &user, None, Some(m), StatusCode::BAD_REQUEST).await;
        }
    };
    let now = ctx.clock.unix();
    match users::apply(
        ctx.store.as_ref(),
        &policy.mfa,
        &admin.actor(&ip),
        now,
        &user.username,
        action,
    )
    .await
    {
        Ok(change) => {
            let to = format!(
                "/admin/users/{}?done={}",
                percent_encoding::utf8_percent_encode(
                    &user.username,
                    percent_encoding::NON_ALPHANUMERIC
                ),
                change.action
            );
            Redirect::to(&to).into_response()
        }
        Err(AdminError::Refused(m)) => {
            log_refusal(&admin, "user action", &m);
            render_user(&ctx, &admin, &user, None, Some(m), StatusCode::BAD_REQUEST).await
        }
        Err(AdminError::Store(e)) => super::saml::store_failure(&ctx, &e),
    }
}

/// Sends one test through the gateway in force; `Ok` / `Err` is what the admin reads.
async fn send_test(
    ctx: &AppContext,
    admin: &str,
    channel: &str,
    to: &str,
) -> Result<String, String> {
    let policy = ctx.policy().await;
    let sender = crate::mfa::delivery::Sender {
        gateway: policy.gateway.as_ref(),
        store: ctx.store.as_ref(),
        tokens: &ctx.tokens,
        secrets: &ctx.secrets,
        mfa: &policy.mfa,
        now: ctx.clock.unix(),
        public_base: ctx.config.public_base(),
        display_name: &ctx.config.idp.display_name,
    };
    crate::mfa::delivery::test(&sender, admin, channel, to).await
}

/// POST /admin/settings/test: one test push, text or call through the delivery gateway in
/// force, so an admin sees at once whether the gateway settings work. Logged.
async fn gateway_test(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Response {
    let field = |k: &str| form_value(&form, k).unwrap_or("").trim();
    let sent = send_test(&ctx, &admin.session.user, field("channel"), field("to")).await;
    let now = ctx.clock.unix();
    let outcome = match &sent {
        Ok(m) | Err(m) => m.clone(),
    };
    let change = Change::new(
        &admin.actor(&ip),
        now,
        "gateway.test",
        field("channel"),
        None,
        Some(outcome),
    );
    if let Err(e) = changes::record(ctx.store.as_ref(), now, &[change]).await {
        return super::saml::store_failure(&ctx, &e);
    }
    let (current, overrides) =
        match admin_settings::current(ctx.store.as_ref(), ctx.settings.base()).await {
            Ok(x) => x,
            Err(e) => return super::saml::store_failure(&ctx, &e),
        };
    let form = Submitted::Current(&current, &overrides);
    match sent {
        Ok(m) => render_settings(&ctx, &admin, &form, Some(m), None, StatusCode::OK),
        Err(m) => {
            let errors = [("gateway.test".to_owned(), m)];
            render_settings(
                &ctx,
                &admin,
                &form,
                None,
                Some(&errors),
                StatusCode::BAD_REQUEST,
            )
        }
    }
}
