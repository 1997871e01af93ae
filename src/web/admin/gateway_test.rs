//! The settings page's gateway test: one push, text or call through the delivery gateway in force, so an admin sees at once whether the gateway settings work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::settings::{Submitted, render_settings};
use super::{AdminForm, form_value};
use crate::admin::changes::{self, Change};
use crate::admin::settings as admin_settings;
use crate::web::error::WebError;
use crate::web::{AppContext, AppState, ClientIp};

/// Sends one test through the gateway in force (`mfa::delivery::test`); `Ok` / `Err` is what
/// the admin reads.
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
        // The console is English, and so is its test message.
        lang: crate::i18n::Lang::En,
        catalogue: &ctx.catalogue,
    };
    crate::mfa::delivery::test(&sender, admin, channel, to).await
}

/// POST /admin/settings/test: one test push, text or call through the delivery gateway in
/// force, so an admin sees at once whether the gateway settings work. Logged.
pub(super) async fn gateway_test(
    State(ctx): State<AppState>,
    ClientIp(ip): ClientIp,
    AdminForm(admin, form): AdminForm,
) -> Result<Response, WebError> {
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
    changes::record(ctx.store.as_ref(), now, &[change]).await?;
    let (current, overrides) =
        admin_settings::current(ctx.store.as_ref(), ctx.settings.base()).await?;
    let form = Submitted::Current(&current, &overrides);
    Ok(match sent {
        Ok(m) => render_settings(&ctx, &admin, &form, Some(m), None, StatusCode::OK),
        Err(m) => {
            let errors = [("gateway.test".to_owned(), m)];
            let status = StatusCode::BAD_REQUEST;
            render_settings(&ctx, &admin, &form, None, Some(&errors), status)
        }
    })
}
