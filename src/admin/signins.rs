//! The sign-in log for admins: audit events read from the store log, grouped into one attempt per flow, filtered, and exported as CSV.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::audit::SIGNIN_LOG;
use crate::store::{Store, StoreError};

/// Most events one query reads; the page says when a window holds more.
pub const MAX_EVENTS: usize = 10_000;

/// An audit event as stored (`audit::AuditEvent`, owned).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub at: String,
    pub flow: String,
    pub user: Option<String>,
    pub rp: String,
    pub client_ip: String,
    pub from: String,
    pub to: String,
    pub method: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
}

/// How an attempt ended, as far as the log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    SignedIn,
    Denied,
    /// Abandoned, expired or still going.
    Incomplete,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::SignedIn => "signed in",
            Ending::Denied => "denied",
            Ending::Incomplete => "incomplete",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Ending::SignedIn, Ending::Denied, Ending::Incomplete]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One sign-in attempt (one flow): its events oldest first, and what they add up to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub flow: String,
    pub started: String,
    pub user: Option<String>,
    pub rp: String,
    pub client_ip: String,
    pub result: Ending,
    /// Every method the attempt used or tried, in order (password first).
    pub methods: Vec<String>,
    pub failures: usize,
    /// What the row says after its result: for a sign-in that succeeded, the succeeding
    /// step's own note ("trusted network", "one-time bypass"), never a failure that came
    /// before it; otherwise why the last failed step failed.
    pub reason: Option<String>,
    pub events: Vec<Event>,
}

/// What an admin filters by; empty fields match everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub user: String,
    pub rp: String,
    pub outcome: String,
    pub method: String,
    pub ip: String,
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC); default: 24 hours before `to`.
    pub from: String,
    /// Same forms; a bare date means the end of that day; default: now.
    pub to: String,
}

/// A filter field that does not read; `field` names it for the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct BadFilter {
    pub field: &'static str,
    pub detail: String,
}

/// The window and the checked filter, ready to run.
#[derive(Debug, Clone)]
pub struct Query {
    pub from_ms: i64,
    pub to_ms: i64,
    pub result: Option<Ending>,
    pub filter: Filter,
}

const MAX_FIELD: usize = 256;

fn parse_time(field: &'static str, text: &str, end_of_day: bool) -> Result<Option<i64>, BadFilter> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || BadFilter {
        field,
        detail: format!(
            "`{}` is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)",
            t.chars().take(40).collect::<String>()
        ),
    };
    if let Ok(d) = Date::parse(t, format_description!("[year]-[month]-[day]")) {
        let dt = if end_of_day {
            d.with_hms(23, 59, 59).map_err(|_| bad())?
        } else {
            d.midnight()
        };
        let ms = dt.assume_utc().unix_timestamp() * 1000;
        return Ok(Some(if end_of_day { ms + 999 } else { ms }));
    }
    if let Ok(dt) = PrimitiveDateTime::parse(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ) {
        return Ok(Some(
            dt.assume_utc().unix_timestamp() * 1000 + if end_of_day { 59_999 } else { 0 },
        ));
    }
    if let Ok(dt) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(Some((dt.unix_timestamp_nanos() / 1_000_000) as i64));
    }
    Err(bad())
}

impl Filter {
    /// Checks every field; the window defaults to the last 24 hours before `now`.
    pub fn query(self, now: i64) -> Result<Query, BadFilter> {
        for (field, v) in [
            ("user", &self.user),
            ("rp", &self.rp),
            ("method", &self.method),
            ("ip", &self.ip),
        ] {
            if v.len() > MAX_FIELD {
                return Err(BadFilter {
                    field,
                    detail: format!("longer than {MAX_FIELD} characters"),
                });
            }
        }
        let result = match self.outcome.trim() {
            "" => None,
            o => Some(Ending::parse(o).ok_or(BadFilter {
                field: "outcome",
                detail: "choose signed in, denied or incomplete".into(),
            })?),
        };
        let to_ms = parse_time("to", &self.to, true)?.unwrap_or(now * 1000 + 999);
        let from_ms = parse_time("from", &self.from, false)?.unwrap_or(to_ms - 86_400_000);
        if from_ms > to_ms {
            return Err(BadFilter {
                field: "from",
                detail: "the window starts after it ends".into(),
            });
        }
        Ok(Query {
            from_ms,
            to_ms,
            result,
            filter: self,
        })
    }
}

fn contains(haystack: &str, needle: &str) -> bool {
    let needle = needle.trim();
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

impl Query {
    fn keeps(&self, a: &Attempt) -> bool {
        let f = &self.filter;
        contains(a.user.as_deref().unwrap_or(""), &f.user)
            && contains(&a.rp, &f.rp)
            && (f.ip.trim().is_empty() || a.client_ip.starts_with(f.ip.trim()))
            && (f.method.trim().is_empty()
                || a.methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(f.method.trim())))
            && self.result.is_none_or(|r| r == a.result)
    }
}

/// Reads the window and returns the matching attempts, newest first, and whether the window
/// held more events than one query reads.
pub async fn search(store: &dyn Store, q: &Query) -> Result<(Vec<Attempt>, bool), StoreError> {
    let entries = store
        .read_log(SIGNIN_LOG, q.from_ms, q.to_ms, MAX_EVENTS)
        .await?;
    let truncated = entries.len() >= MAX_EVENTS;
    // Oldest first within each flow; flows ordered by their newest event.
    let mut by_flow: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for e in entries.iter().rev() {
        let Ok(event) = serde_json::from_slice::<Event>(&e.value) else {
            tracing::error!(at_ms = e.at_ms, "sign-in log entry does not parse; skipped");
            continue;
        };
        if !by_flow.contains_key(&event.flow) {
            order.push(event.flow.clone());
        }
        by_flow.entry(event.flow.clone()).or_default().push(event);
    }
    let mut attempts: Vec<Attempt> = order
        .into_iter()
        .filter_map(|flow| by_flow.remove(&flow).map(|events| attempt(flow, events)))
        .filter(|a| q.keeps(a))
        .collect();
    attempts.sort_by(|a, b| {
        b.events
            .last()
            .map(|e| &e.at)
            .cmp(&a.events.last().map(|e| &e.at))
    });
    Ok((attempts, truncated))
}

fn attempt(flow: String, events: Vec<Event>) -> Attempt {
    let result = if events.iter().any(|e| e.to == "authenticated") {
        Ending::SignedIn
    } else if events.iter().any(|e| e.to == "denied") {
        Ending::Denied
    } else {
        Ending::Incomplete
    };
    // The password is the primary method of every attempt that got past the page; the
    // events name the second-factor methods.
    let mut methods: Vec<String> = Vec::new();
    if events.iter().any(|e| e.from == "await_password") {
        methods.push("password".into());
    }
    for m in events.iter().filter_map(|e| e.method.clone()) {
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    let failures: Vec<&Event> = events.iter().filter(|e| e.outcome == "failure").collect();
    let first = events.first();
    Attempt {
        started: first.map(|e| e.at.clone()).unwrap_or_default(),
        user: events.iter().rev().find_map(|e| e.user.clone()),
        rp: first.map(|e| e.rp.clone()).unwrap_or_default(),
        client_ip: first.map(|e| e.client_ip.clone()).unwrap_or_default(),
        result,
        methods,
        failures: failures.len(),
        reason: summary_reason(result, &events, &failures),
        flow,
        events,
    }
}

/// See `Attempt::reason`. A denied push followed by a right code is a success: the denial
/// stays in the steps and the failure count, not in the row's headline.
fn summary_reason(result: Ending, events: &[Event], failures: &[&Event]) -> Option<String> {
    match result {
        Ending::SignedIn => events
            .iter()
            .find(|e| e.to == "authenticated")
            .and_then(|e| e.reason.clone()),
        Ending::Denied | Ending::Incomplete => failures.last().and_then(|e| e.reason.clone()),
    }
}

/// One CSV cell (RFC 4180 quoting). A cell a spreadsheet would run as a formula — user names
/// are typed by anyone on the sign-in page — is prefixed with `'` (OWASP CSV injection).
fn cell(text: &str) -> String {
    let guarded = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// The attempts as CSV, one line per attempt.
pub fn csv(attempts: &[Attempt]) -> String {
    let mut out = String::from(
        "started,user,relying_party,client_ip,result,methods,failures,reason,flow\r\n",
    );
    for a in attempts {
        let row = [
            cell(&a.started),
            cell(a.user.as_deref().unwrap_or("")),
            cell(&a.rp),
            cell(&a.client_ip),
            cell(a.result.as_str()),
            cell(&a.methods.join(" ")),
            a.failures.to_string(),
            cell(a.reason.as_deref().unwrap_or("")),
            cell(&a.flow),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        from: &str,
        to: &str,
        method: Option<&str>,
        outcome: &str,
        reason: Option<&str>,
    ) -> Event {
        Event {
            at: "2026-12-05T20:00:00Z".into(),
            flow: "f1".into(),
            user: Some("alice".into()),
            rp: "https://sp.example".into(),
            client_ip: "192.0.2.1".into(),
            from: from.into(),
            to: to.into(),
            method: method.map(str::to_owned),
            outcome: outcome.into(),
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn a_success_after_failures_is_headed_by_the_success() {
        let steps = vec![
            ev("-", "await_password", None, "started", None),
            ev(
                "await_password",
                "await_second_factor",
                Some("push"),
                "started",
                None,
            ),
            ev(
                "await_second_factor",
                "choose_method",
                Some("push"),
                "failure",
                Some("denied by user"),
            ),
            ev(
                "choose_method",
                "await_second_factor",
                Some("oath"),
                "started",
                None,
            ),
            ev(
                "await_second_factor",
                "await_second_factor",
                Some("oath"),
                "failure",
                Some("code already used"),
            ),
            ev(
                "await_second_factor",
                "authenticated",
                Some("oath"),
                "success",
                None,
            ),
        ];
        let a = attempt("f1".into(), steps.clone());
        assert_eq!(a.result, Ending::SignedIn);
        assert_eq!(a.reason, None, "no failure heads a success");
        assert_eq!(a.failures, 2, "the failures still count");
        assert_eq!(a.methods, ["password", "push", "oath"]);
        assert!(csv(&[a]).contains(",signed in,password push oath,2,,f1"));

        let mut noted = steps[..2].to_vec();
        noted.push(ev(
            "await_password",
            "authenticated",
            Some("password"),
            "success",
            Some("trusted network"),
        ));
        assert_eq!(
            attempt("f1".into(), noted).reason.as_deref(),
            Some("trusted network")
        );

        let a = attempt("f1".into(), steps[..5].to_vec());
        assert_eq!(a.result, Ending::Incomplete);
        assert_eq!(a.reason.as_deref(), Some("code already used"));
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn filter_times_and_bad_input() {
        let now = 1_900_000_000;
        let q = Filter::default().query(now).unwrap();
        assert_eq!(q.to_ms - q.from_ms, 86_400_000);
        let q = Filter {
            from: "2026-11-01".into(),
            to: "2026-11-01".into(),
            ..Default::default()
        }
        .query(now)
        .unwrap();
        assert_eq!(q.to_ms - q.from_ms, 86_400_000 - 1);
        let q = Filter {
            from: "2026-11-01T10:00".into(),
            to: "2026-11-01T10:30".into(),
            ..Default::default()
        }
        .query(now)
        .unwrap();
        assert_eq!(q.to_ms - q.from_ms, 30 * 60_000 + 59_999);
        for (f, field) in [
            (
                Filter {
                    from: "yesterday".into(),
                    ..Default::default()
                },
                "from",
            ),
            (
                Filter {
                    to: "2026-13-45".into(),
                    ..Default::default()
                },
                "to",
            ),
            (
                Filter {
                    outcome: "maybe".into(),
                    ..Default::default()
                },
                "outcome",
            ),
            (
                Filter {
                    user: "x".repeat(300),
                    ..Default::default()
                },
                "user",
            ),
            (
                Filter {
                    from: "2026-11-02".into(),
                    to: "2026-11-01".into(),
                    ..Default::default()
                },
                "from",
            ),
        ] {
            assert_eq!(f.query(now).unwrap_err().field, field);
        }
    }
}
