//! AwaitPassword: the directory check, behind the soft lockout (`lockout`), with equal timing.

use std::time::Instant;

use super::lockout;
use super::{
    Deps, Flow, LoginState, MAX_FAILURES_PER_FLOW, MAX_LOGIN_LEN, MAX_PASSWORD_LEN, Note, StepError,
};
use crate::directory::AuthError;

/// What every refused password reads, whatever the reason the directory gave.
const GENERIC: &str = AuthError::GENERIC_MESSAGE;

const TOO_MANY: &str = "Too many failed sign-in attempts. Wait a few minutes, then try again.";

pub(super) async fn on_password(
    flow: &Flow,
    failures: u32,
    login: String,
    password: String,
    deps: &Deps<'_>,
) -> Result<(LoginState, Note), StepError> {
    let started = Instant::now();
    let login = login.trim().to_owned();
    // Nothing the directory could accept: refused before anything is counted or stored
    // (the web layer already refuses oversized fields with a page of its own).
    if login.is_empty() || login.len() > MAX_LOGIN_LEN || password.len() > MAX_PASSWORD_LEN {
        deps.timing.pad_failure(started).await;
        return Ok(refused(failures, String::new(), "malformed input", GENERIC));
    }
    let mut gate = match lockout::admit(deps, &login, &flow.client_ip).await? {
        Ok(gate) => gate,
        Err(refusal) => {
            deps.timing.pad_failure(started).await;
            return Ok(refused(failures, login, refusal.reason(), TOO_MANY));
        }
    };
    let result = deps
        .directory
        .authenticate_found(&login, &password, gate.take_found())
        .await;
    drop(password);
    match result {
        Ok(user) => {
            deps.timing.record_success(started.elapsed());
            gate.passed(&deps.later);
            Ok(super::second_factor::after_password(flow, user, deps).await?)
        }
        Err(AuthError::Unavailable(detail)) => {
            gate.not_counted(deps.store).await?;
            Err(StepError::DirectoryUnavailable(detail))
        }
        Err(err) => {
            gate.failed(deps.store, deps.mfa).await?;
            deps.timing.pad_failure(started).await;
            Ok(refused(
                failures,
                login,
                &format!("{err:?}"),
                err.user_message(),
            ))
        }
    }
}

/// One failed attempt: the form again with `message`, or the end of the flow after too many.
fn refused(failures: u32, login: String, reason: &str, message: &str) -> (LoginState, Note) {
    let failures = failures + 1;
    let next = if failures >= MAX_FAILURES_PER_FLOW {
        LoginState::Denied {
            message: "Too many failed attempts. Go back to the application and start again.".into(),
        }
    } else {
        LoginState::AwaitPassword {
            login: (!login.is_empty()).then_some(login),
            message: Some(message.to_owned()),
            failures,
        }
    };
    (next, Note::fail(Some("password"), reason))
}
