//! The sign-in pages: show the flow's current state, feed form posts to `Flow::step`.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{AppContext, AppState};
use crate::login::session;
use crate::login::{Deps, Event, Flow, LoginState};
use crate::store;

pub fn flow_key(id: &str) -> String {
    format!("flow:{id}")
}

/// One cookie per flow, so sign-ins in two tabs do not disturb each other.
pub fn flow_cookie_name(id: &str) -> String {
    format!("tf_{}", &id[..id.len().min(12)])
}

#[derive(Deserialize)]
pub struct FlowQuery {
    flow: String,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    flow: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

const EXPIRED: &str = "This sign-in page has expired. Go back to the application and start again.";

/// Loads the flow and checks it belongs to this browser. Returns the stored bytes too, for
/// the compare-and-set that saves the next state.
async fn load(ctx: &AppContext, id: &str, jar: &CookieJar) -> Result<(Flow, Vec<u8>), Response> {
    let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if valid_id {
        ctx.store
            .get(&flow_key(id))
            .await
            .map_err(|e| super::saml::store_failure(ctx, &e))?
    } else {
        None
    };
    let flow = bytes
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Flow>(b).ok());
    let Some((flow, bytes)) = flow.zip(bytes) else {
        return Err(ctx.error_page(StatusCode::NOT_FOUND, EXPIRED));
    };
    let presented = jar
        .get(&flow_cookie_name(id))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(flow.browser_secret.as_bytes())) {
        tracing::warn!(flow = id, "flow used from a browser that did not start it");
        return Err(ctx.error_page(StatusCode::FORBIDDEN, EXPIRED));
    }
    Ok((flow, bytes))
}

pub async fn show(
    State(ctx): State<AppState>,
    jar: CookieJar,
    Query(q): Query<FlowQuery>,
) -> Response {
    match load(&ctx, &q.flow, &jar).await {
        Ok((flow, _)) => render_state(&ctx, &flow),
        Err(r) => r,
    }
}

pub async fn submit(
    State(ctx): State<AppState>,
    jar: CookieJar,
    Form(form): Form<PasswordForm>,
) -> Response {
    let (flow, old) = match load(&ctx, &form.flow, &jar).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let deps = Deps {
        directory: ctx.directory.as_ref(),
        clock: ctx.clock.as_ref(),
    };
    let event = Event::Password {
        login: form.username,
        password: form.password,
    };
    let flow = flow.step(event, &deps).await;
    if let LoginState::Authenticated {
        user,
        methods,
        authn_instant,
    } = &flow.state
    {
        // The flow is consumed: delete it only if nobody else advanced it meanwhile.
        match ctx
            .store
            .compare_and_set(
                &flow_key(&flow.id),
                Some(&old),
                b"{}",
                Some(std::time::Duration::from_secs(1)),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Redirect::to(&format!("/adfs/ls/login?flow={}", flow.id)).into_response();
            }
            Err(e) => return super::saml::store_failure(&ctx, &e),
        }
        let now = ctx.clock.unix();
        let s = session::start(
            user.clone(),
            methods.clone(),
            *authn_instant,
            now,
            ctx.config.idp.session_lifetime_secs.into(),
        );
        return super::saml::issue(&ctx, &flow.request, s, jar).await;
    }
    let new = match serde_json::to_vec(&flow) {
        Ok(b) => b,
        Err(e) => {
            return super::saml::store_failure(
                &ctx,
                &store::StoreError::Corrupt {
                    key: flow.id.clone(),
                    detail: e.to_string(),
                },
            );
        }
    };
    let ttl = std::time::Duration::from_secs(ctx.config.idp.flow_lifetime_secs.into());
    match ctx
        .store
        .compare_and_set(&flow_key(&flow.id), Some(&old), &new, Some(ttl))
        .await
    {
        Ok(_) => render_state(&ctx, &flow),
        Err(e) => super::saml::store_failure(&ctx, &e),
    }
}

/// Each state renders exactly one template.
fn render_state(ctx: &AppContext, flow: &Flow) -> Response {
    let rp_name = ctx
        .rps
        .get(&flow.request.rp_entity_id)
        .map(|rp| rp.name.clone())
        .unwrap_or_default();
    match &flow.state {
        LoginState::AwaitPassword { login, message, .. } => {
            let mut res = ctx.render(
                "login.html",
                minijinja::context! {
                    title => "Sign in",
                    flow => flow.id.clone(),
                    login => login,
                    message => message,
                    rp_name => rp_name,
                    idp_name => ctx.config.idp.display_name.clone(),
                },
            );
            if message.is_some() {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            res
        }
        LoginState::Denied { message } => ctx.error_page(StatusCode::FORBIDDEN, message),
        LoginState::Authenticated { .. } => ctx.error_page(StatusCode::CONFLICT, EXPIRED),
    }
}
