//! The console's session: sign-in through the login flow (always with a second factor), the overview it opens on, sign-out.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::Value;

use super::{Admin, AdminForm, require};
use crate::admin::changes::{self, Change};
use crate::admin::session::{self, AdminSession, COOKIE};
use crate::admin::{Actor, is_admin};
use crate::directory::UserInfo;
use crate::login::{AuthMethod, Flow, Pending};
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

/// GET /admin: the overview, or — without a session — a sign-in that always asks for the
/// second factor.
pub(super) async fn home(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
) -> Result<Response, WebError> {
    // An expired or unknown session falls through to a new sign-in.
    if jar.get(COOKIE).is_some()
        && let Ok(admin) = require(&ctx, &jar).await
    {
        return overview(&ctx, &admin).await;
    }
    let flow = Flow::new(Pending::AdminConsole, &ip, ctx.clock.unix());
    // The console is English (its error pages too); its sign-in pages follow the browser
    // like any other.
    let jar = jar.remove(Cookie::build(COOKIE).path("/admin"));
    crate::web::login::begin(&ctx, flow, jar).await
}

async fn overview(ctx: &AppContext, admin: &Admin) -> Result<Response, WebError> {
    let recent = changes::recent(ctx.store.as_ref(), 20).await?;
    Ok(ctx.render(
        "admin_home.html",
        minijinja::context! {
            title => "Admin console", page => "home", admin => admin.session.display.clone(),
            csrf => admin.session.csrf.clone(), changes => change_rows(&recent),
        },
    ))
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
/// second factor get a session. Its pages are the console's, so English, though this runs
/// at a sign-in address.
pub async fn signed_in(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
    client_ip: &str,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let now = ctx.clock.unix();
    let actor = Actor {
        name: user.username.clone(),
        client_ip: client_ip.to_owned(),
    };
    if let Some((reason, message)) = refusal(ctx, user, methods) {
        tracing::warn!(user = %user.username, reason, "admin console refused");
        let change = Change::new(
            &actor,
            now,
            "console.refused",
            &user.username,
            None,
            Some(reason.to_owned()),
        );
        let recorded = changes::record(ctx.store.as_ref(), now, &[change]).await;
        recorded.map_err(|e| WebError::from(e).in_english())?;
        return Err(WebError::forbidden(message).in_english());
    }
    let token = start(ctx, user, methods, client_ip, &actor)
        .await
        .map_err(|e| WebError::from(e).in_english())?;
    let cookie = Cookie::build((COOKIE, token))
        .path("/admin")
        .http_only(true)
        .secure(ctx.config.is_https())
        .same_site(SameSite::Strict)
        .build();
    Ok((jar.add(cookie), Redirect::to("/admin")).into_response())
}

/// Why this sign-in gets no console session (for the log, for the user), if it does not.
fn refusal(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
) -> Option<(&'static str, &'static str)> {
    if !methods.iter().any(|m| m.is_second_factor()) {
        Some((
            "no second factor",
            "The admin console needs a second factor. Go back to /admin and sign in again.",
        ))
    } else if !is_admin(&ctx.config.admin, user) {
        Some((
            "not in the admin group",
            "Your account is not allowed to use the admin console.",
        ))
    } else {
        None
    }
}

/// Stores a new console session and records the sign-in; the session's token.
async fn start(
    ctx: &AppContext,
    user: &UserInfo,
    methods: &[AuthMethod],
    client_ip: &str,
    actor: &Actor,
) -> Result<String, crate::store::StoreError> {
    let now = ctx.clock.unix();
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
    let token = session::start(ctx.store.as_ref(), &ctx.config.admin, &s).await?;
    let change = Change::new(actor, now, "console.sign_in", &user.username, None, None);
    changes::record(ctx.store.as_ref(), now, &[change]).await?;
    Ok(token)
}

pub(super) async fn signout(
    State(ctx): State<AppState>,
    jar: CookieJar,
    AdminForm(admin, _): AdminForm,
) -> Result<Response, WebError> {
    session::end(ctx.store.as_ref(), &admin.token).await?;
    let jar = jar.remove(Cookie::build(COOKIE).path("/admin"));
    let page = ctx.render(
        "error.html",
        minijinja::context! { title => "Signed out", message => "You are signed out of the admin console." },
    );
    Ok((jar, page).into_response())
}
