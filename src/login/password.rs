//! AwaitPassword: the directory check, with soft lockout and equal timing.

use std::time::{Duration, Instant};

use super::{Deps, Flow, LoginState, MAX_FAILURES_PER_FLOW, MAX_LOGIN_LEN, MAX_PASSWORD_LEN, Note};
use crate::directory::AuthError;
use crate::store::StoreError;

const TOO_MANY: &str = "Too many failed sign-in attempts. Wait a few minutes, then try again.";

/// The soft-lockout counter of a login (any of its spellings counts as one person).
pub fn failure_key(login: &str) -> String {
    // Count `DOMAIN\\alice`, `alice@corp` and `ALICE` as the same person.
    let (short, _) = crate::directory::split_login(login);
    format!("pwfail:u:{}", short.to_lowercase())
}

fn ip_key(ip: &str) -> String {
    format!("pwfail:ip:{ip}")
}

pub(super) async fn on_password(
    flow: &Flow,
    failures: u32,
    login: String,
    password: String,
    deps: &Deps<'_>,
) -> Result<(LoginState, Note), StoreError> {
    let started = Instant::now();
    let login = login.trim().to_owned();
    let mfa = deps.mfa;
    let window = Some(Duration::from_secs(mfa.password_failure_window_secs.into()));
    let (ukey, ikey) = (failure_key(&login), ip_key(&flow.client_ip));

    // Soft lockout before the directory is asked: a spraying attacker must not be able to
    // trip the directory's own lockout (AD, ppolicy) for real users.
    let (user_fails, ip_fails) = tokio::try_join!(current(deps, &ukey), current(deps, &ikey))?;
    let result = if user_fails >= i64::from(mfa.password_failures_per_user)
        || ip_fails >= i64::from(mfa.password_failures_per_ip)
    {
        Err((
            AuthError::AccountLocked,
            "soft lockout".to_owned(),
            TOO_MANY,
        ))
    } else if login.is_empty() || login.len() > MAX_LOGIN_LEN || password.len() > MAX_PASSWORD_LEN {
        Err((
            AuthError::InvalidCredentials,
            "malformed input".to_owned(),
            AuthError::InvalidCredentials.user_message(),
        ))
    } else {
        deps.directory
            .authenticate(&login, &password)
            .await
            .map_err(|e| (e.clone(), format!("{e:?}"), e.user_message()))
    };
    drop(password);

    match result {
        Ok(user) => {
            deps.timing.record_success(started.elapsed());
            // A success clears the user's failure count; with none recorded (the common
            // case) there is nothing to clear and no store round trip to pay.
            if user_fails > 0 {
                deps.store.delete(&ukey).await?;
            }
            super::second_factor::after_password(flow, user, deps).await
        }
        Err((err, reason, message)) => {
            if !matches!(err, AuthError::Unavailable(_)) && reason != "soft lockout" {
                deps.store.incr(&ukey, 1, window).await?;
                deps.store.incr(&ikey, 1, window).await?;
            }
            deps.timing.pad_failure(started).await;
            let failures = failures + 1;
            let next = if failures >= MAX_FAILURES_PER_FLOW {
                LoginState::Denied {
                    message:
                        "Too many failed attempts. Go back to the application and start again."
                            .into(),
                }
            } else {
                LoginState::AwaitPassword {
                    login: Some(login),
                    message: Some(message.to_owned()),
                    failures,
                }
            };
            Ok((next, Note::fail(Some("password"), reason)))
        }
    }
}

async fn current(deps: &Deps<'_>, key: &str) -> Result<i64, StoreError> {
    Ok(match deps.store.get(key).await? {
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        None => 0,
    })
}
