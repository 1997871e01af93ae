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

/// Sends one test through the gateway in force; `Ok` / `Err` is what the admin reads.
async fn send_test(
    ctx: &AppContext,
    admin: &str,
    channel: &str,
    to: &str,
) -> Result<String, String> {
    let policy = ctx.policy().await;
    let name = &ctx.config.idp.display_name;
    if channel == "push" {
        let topic_ok = (1..=64).contains(&to.len())
            && to
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !topic_ok {
            return Err("A push test needs an ntfy topic: 1 to 64 letters, digits, - or _.".into());
        }
        let m = crate::mfa::gateway::PushMessage {
            topic: to.to_owned(),
            title: format!("{name} test"),
            body: format!("A test notification sent by {admin}."),
            actions: Vec::new(),
        };
        return match policy.gateway.push(&m).await {
            Ok(()) => Ok(format!("Test push sent to topic {to}.")),
            Err(e) => Err(format!("The push gateway failed: {e}")),
        };
    }
    if channel != "sms" && channel != "call" {
        return Err("Choose push, text or call.".into());
    }
    let Some(number) =
        crate::mfa::registration::normalize_phone(to, &policy.mfa.default_country_code)
    else {
        let shown: String = to.chars().take(40).collect();
        return Err(format!("`{shown}` is not a phone number."));
    };
    if channel == "sms" {
        let m = crate::mfa::gateway::SmsMessage {
            to: number.clone(),
            body: format!("{name}: a test message sent by {admin}."),
        };
        return match policy.gateway.sms(&m).await {
            Ok(()) => Ok(format!("Test text sent to {number}.")),
            Err(e) => Err(format!("The text gateway failed: {e}")),
        };
    }
    // The call fetches its script from us, like a sign-in call, under a token of its own.
    let base = ctx.config.public_base();
    let token = ctx.tokens.token(
        &crate::saml::random_hex(8),
        crate::mfa::challenge::Action::TestCall,
    );
    let c = crate::mfa::gateway::CallRequest {
        to: number.clone(),
        voice_url: format!("{base}/mfa/voice/test/{token}"),
        status_url: format!("{base}/mfa/voice/test-status/{token}"),
    };
    match policy.gateway.call(&c).await {
        Ok(()) => Ok(format!("Test call placed to {number}.")),
        Err(e) => Err(format!("The call gateway failed: {e}")),
    }
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
