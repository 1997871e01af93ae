//! axe-core (Deque's accessibility engine) run on the page a WebDriver session shows.
//!
//! `scripts/install-deps.sh` installs the exact version `tests/axe/package-lock.json` pins
//! from the npm registry into `tests/axe/node_modules` (ignored by git). When it is missing
//! the check fails with that advice: it never skips.
//!
//! The source goes in through WebDriver's Execute Script, not a `<script>` element: Tessera's
//! Content-Security-Policy (`script-src 'self'`) would refuse an injected element, while
//! chromedriver's DevTools evaluation is outside the page's policy. So the pages are checked
//! exactly as served, strict CSP and all.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

use super::webdriver::Session;

/// Where install-deps.sh puts axe-core.
pub fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js")
}

/// axe-core's minified source; panics with the install step when it is not there.
pub fn source() -> String {
    let path = script_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing ({}: {e}): run `bash scripts/install-deps.sh` (npm ci in \
             tests/axe); the accessibility check never skips",
            path.display()
        )
    })
}

/// Runs axe on the whole page; the results as JSON text. Only violations are collected
/// (passes and incomplete results are large and not asserted on).
const RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] })
  .then(r => done(JSON.stringify({
    version: axe.version,
    violations: r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => ({ target: n.target, summary: n.failureSummary })),
    })),
  })))
  .catch(e => done(JSON.stringify({ error: String(e) })));
"#;

/// One violation, for the failure message.
fn describe(v: &Value) -> String {
    let mut out = format!(
        "- {} ({}): {}",
        v["id"].as_str().unwrap_or("?"),
        v["impact"].as_str().unwrap_or("?"),
        v["help"].as_str().unwrap_or("")
    );
    for n in v["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n    at {}: {}",
            n["target"],
            n["summary"].as_str().unwrap_or("").replace('\n', " / ")
        ));
    }
    out
}

/// Checks the page `browser` shows now: `Err` lists every violation of impact `serious` or
/// `critical` (id, impact, the elements' selectors and why); minor and moderate ones are
/// returned in `Ok` for the log.
pub async fn check(browser: &Session, source: &str) -> Result<Vec<String>, String> {
    // A fresh page has no axe: load it on every call (navigations drop window.axe).
    browser
        .execute(source, Vec::new())
        .await
        .map_err(|e| format!("loading axe-core failed: {}: {}", e.error, e.message))?;
    let raw = browser
        .execute_async(RUN, Vec::new())
        .await
        .map_err(|e| format!("axe.run failed: {}: {}", e.error, e.message))?;
    let result: Value = serde_json::from_str(raw.as_str().unwrap_or_default())
        .map_err(|e| format!("axe.run's answer is not JSON ({e}): {raw}"))?;
    if let Some(e) = result["error"].as_str() {
        return Err(format!("axe.run rejected: {e}"));
    }
    let violations = result["violations"].as_array().cloned().unwrap_or_default();
    let (bad, minor): (Vec<_>, Vec<_>) = violations
        .iter()
        .partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
    if bad.is_empty() {
        Ok(minor.into_iter().map(describe).collect())
    } else {
        let list: Vec<String> = bad.into_iter().map(describe).collect();
        Err(format!(
            "axe-core {} found serious or critical violations at {}:\n{}",
            result["version"].as_str().unwrap_or("?"),
            browser.current_url().await,
            list.join("\n")
        ))
    }
}
