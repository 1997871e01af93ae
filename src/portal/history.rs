//! A user's own recent sign-ins (and portal actions) from the sign-in log, and "this wasn't me": reporting one blocks the account's second factor like a fraud report.

use crate::admin::signins::{self, Attempt, Filter, Query};
use crate::mfa::registration;
use crate::mfa::settings::MfaSettings;
use crate::store::{Store, StoreError};

use super::PortalError;

/// How far back the portal shows sign-ins.
pub const DAYS: i64 = 30;
/// The most attempts the page lists.
pub const MAX_SHOWN: usize = 25;

const UNKNOWN_ATTEMPT: &str = "That sign-in was not found in your recent history.";

/// `user`'s attempts of the last `DAYS` days, newest first, at most `MAX_SHOWN`.
pub async fn recent(store: &dyn Store, user: &str, now: i64) -> Result<Vec<Attempt>, StoreError> {
    let to_ms = now.saturating_mul(1000) + 999;
    let q = Query {
        from_ms: to_ms - DAYS * 86_400_000,
        to_ms,
        result: None,
        filter: Filter {
            user: user.to_owned(),
            ..Filter::default()
        },
    };
    let (attempts, _) = signins::search(store, &q).await?;
    // The log's user filter matches parts of names; the portal shows exactly this user's.
    Ok(attempts
        .into_iter()
        .filter(|a| {
            a.user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(user))
        })
        .take(MAX_SHOWN)
        .collect())
}

/// Whether `a` is a portal session's actions (not a sign-in): every event is a portal action,
/// or a note of a late answer to one of its push or phone enrollments (`audit::FROM_PHONE`).
/// A sign-in to the portal itself is a sign-in like any other, and can be reported.
pub fn is_portal_session(a: &Attempt) -> bool {
    a.events.iter().any(|e| e.from == super::RP)
        && a.events
            .iter()
            .all(|e| e.from == super::RP || e.from == crate::audit::FROM_PHONE)
}

/// What a report blocked: the attempt and until when.
#[derive(Debug, Clone)]
pub struct Reported {
    pub attempt: Attempt,
    pub blocked_until: i64,
}

/// "This wasn't me" for the attempt `flow` of `user`'s recent history: the second factor is
/// blocked for `fraud_block_days`, as after "Deny and report fraud" on a phone.
pub async fn report(
    store: &dyn Store,
    mfa: &MfaSettings,
    user: &str,
    flow: &str,
    now: i64,
) -> Result<Reported, PortalError> {
    let valid =
        !flow.is_empty() && flow.len() <= 64 && flow.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(PortalError::Refused(UNKNOWN_ATTEMPT));
    }
    let attempt = recent(store, user, now)
        .await?
        .into_iter()
        .find(|a| a.flow == flow && !is_portal_session(a))
        .ok_or(PortalError::Refused(UNKNOWN_ATTEMPT))?;
    let until = now + i64::from(mfa.fraud_block_days) * 86_400;
    let reason = format!(
        "reported by the user in the portal: sign-in {} from {} at {}",
        attempt.flow, attempt.client_ip, attempt.started
    );
    registration::update(store, user, |r| {
        r.blocked_until = Some(until);
        r.block_reason = Some(reason.clone());
    })
    .await?;
    tracing::warn!(target: "audit", user = %user, flow = %attempt.flow, "sign-in reported as not the user's: account blocked");
    Ok(Reported {
        attempt,
        blocked_until: until,
    })
}
