//! Concurrency benchmark: N users (10,000) waiting on a push approval at once.
//!
//! ```sh
//! # Tessera with LDAP, Redis, TESSERA__MFA__GATEWAY__PUSH=simulator and
//! # TESSERA__MFA__TIMEOUT_SECS=300 (starting 10,000 sign-ins takes longer than 55 s)
//! cargo run --release --example pushwait -- --base http://127.0.0.1:8080 --pid $(pgrep -x tessera) \
//!     --n 10000 --seed-push tessera-data redis://127.0.0.1:6379 --idp-cert tessera-data/signing.crt
//! ```
//!
//! 1. Seeds every bench user with a push device (fresh ntfy topic) as default method.
//! 2. Starts N SP-initiated sign-ins (at most `--c` in flight) up to Tessera's waiting page,
//!    in batches of `--batch` ≤ 500: after each batch the simulator's inbox (which keeps only
//!    its newest 500 pushes) is read and each sign-in's Approve URL is noted by its topic.
//!    Nothing is approved yet.
//! 3. With all N waiting: Tessera's VmRSS. Then each waiting browser opens the page's live
//!    stream (`GET /adfs/ls/login/wait`, Server-Sent Events, as the page's script does) and
//!    holds it open: Tessera's VmRSS again, with N streams open (one connection each).
//! 4. Approves every push (POST to its Approve URL, as the phone does), reads the sign-in's
//!    stream until it says `state` (no polling), then submits the page's poll form as the
//!    script does and checks the Response.
//!
//! Reports RSS with all waiting (without and with their streams), peak RSS (VmHWM),
//! completions and wall times, and a `RESULT key=value …` line. Each held stream is a file
//! descriptor on both sides: raise `ulimit -n` above N (scripts/bench.sh does).

#[allow(dead_code)]
#[path = "loadgen/flow.rs"]
mod flow;
#[allow(dead_code)]
#[path = "loadgen/html.rs"]
mod html;
#[allow(dead_code)]
#[path = "loadgen/procstat.rs"]
mod procstat;
#[allow(dead_code)]
#[path = "loadgen/seed.rs"]
mod seed;
#[allow(dead_code)]
#[path = "loadgen/sp.rs"]
mod sp;
#[allow(dead_code)]
#[path = "loadgen/web.rs"]
mod web;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use openssl::x509::X509;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use flow::{Credentials, NoCode, Reached};

/// The simulator keeps this many pushes (src/sim/inbox.rs `CAP`).
const SIM_INBOX_CAP: usize = 500;
const SHOWN_ERRORS: usize = 5;

#[derive(Parser, Debug)]
#[command(about = "N sign-ins waiting on a push at once: RSS, then approve all")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Tessera's PID.
    #[arg(long)]
    pid: u32,
    /// Also report this process's RSS (e.g. redis-server).
    #[arg(long)]
    store_pid: Option<u32>,
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Sign-ins in flight while starting and while approving.
    #[arg(long, default_value_t = 200)]
    c: usize,
    /// Sign-ins started between two reads of the simulator inbox (≤ 500).
    #[arg(long, default_value_t = 400)]
    batch: usize,
    /// Enrol push devices first: DATA_DIR (holding mfa.key) and REDIS_URL.
    #[arg(long, num_args = 2, value_names = ["DATA_DIR", "REDIS_URL"], required = true)]
    seed_push: Vec<String>,
    #[arg(long, default_value = "bench")]
    users_prefix: String,
    #[arg(long, default_value = "bench-Pass-1")]
    password: String,
    /// Check each final Response against this certificate (else only that it appears).
    #[arg(long)]
    idp_cert: Option<PathBuf>,
}

/// A sign-in parked on the waiting page.
struct Waiter {
    /// The page's live stream, once opened.
    stream: Option<reqwest::Response>,
    flow_id: String,
    browser: web::Browser,
    user: String,
    poll: Url,
    request_id: String,
    relay_state: String,
    /// The number shown on the page (number matching), if any.
    number: Option<String>,
    approve: Option<String>,
}

struct Ctx {
    client: reqwest::Client,
    /// For the held streams: no overall timeout (the `client`'s 60 s would cut them).
    streams: reqwest::Client,
    base: Url,
    password: String,
    certs: Vec<X509>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("pushwait: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.batch > SIM_INBOX_CAP {
        return Err(format!(
            "--batch must be ≤ {SIM_INBOX_CAP} (the simulator's inbox)"
        ));
    }
    let users = seed::user_names(&args.users_prefix, args.n);
    let t = Instant::now();
    let data_dir = PathBuf::from(&args.seed_push[0]);
    let topics = seed::seed(&data_dir, &args.seed_push[1], &users, seed::Factor::Push).await?;
    let topics: HashMap<String, String> = topics.into_iter().map(|(u, t)| (t, u)).collect();
    println!(
        "seeded {} push devices in {:.1} s",
        topics.len(),
        t.elapsed().as_secs_f64()
    );

    let ctx = Arc::new(Ctx {
        client: web::client(args.c).map_err(|e| e.to_string())?,
        streams: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| e.to_string())?,
        base: Url::parse(&args.base).map_err(|e| format!("--base: {e}"))?,
        password: args.password.clone(),
        certs: match &args.idp_cert {
            Some(p) => sp::load_certs(p)?,
            None => Vec::new(),
        },
    });
    let rss_before = procstat::status_kb(args.pid, "VmRSS").unwrap_or(0);
    let mut errors = Vec::new();
    let started = Instant::now();
    let mut waiters = Vec::with_capacity(users.len());
    for batch in users.chunks(args.batch.max(1)) {
        let (mut parked, errs) = start_batch(&ctx, batch, args.c).await;
        errors.extend(errs);
        errors.extend(note_approve_urls(&ctx, &topics, &mut parked).await);
        waiters.extend(parked);
    }
    let start_wall = started.elapsed();
    let waiting = waiters.iter().filter(|w| w.approve.is_some()).count();
    let rss_waiting = procstat::status_kb(args.pid, "VmRSS").unwrap_or(0);
    let store_rss = args.store_pid.and_then(|p| procstat::status_kb(p, "VmRSS"));
    println!(
        "{waiting} of {} sign-ins waiting on a push after {:.1} s; Tessera VmRSS {:.1} MB (before {:.1} MB)",
        args.n,
        start_wall.as_secs_f64(),
        mb(rss_waiting),
        mb(rss_before)
    );

    let opening = Instant::now();
    let (mut waiters, errs) = open_streams(&ctx, waiters, args.c).await;
    errors.extend(errs);
    let streams = waiters.iter().filter(|w| w.stream.is_some()).count();
    // Let the server settle (buffers, tasks parked) before reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_streams = procstat::status_kb(args.pid, "VmRSS").unwrap_or(0);
    println!(
        "{streams} live streams open after {:.1} s; Tessera VmRSS {:.1} MB",
        opening.elapsed().as_secs_f64(),
        mb(rss_streams)
    );
    waiters.retain(|w| w.stream.is_some());

    let approving = Instant::now();
    let (completed, errs) = approve_all(&ctx, waiters, args.c).await;
    errors.extend(errs);
    let approve_wall = approving.elapsed();
    let peak = procstat::status_kb(args.pid, "VmHWM").unwrap_or(0);

    println!(
        "approved and completed {completed} of {} in {:.1} s",
        args.n,
        approve_wall.as_secs_f64()
    );
    println!("  Tessera VmRSS, all waiting   {:.1} MB", mb(rss_waiting));
    println!(
        "  ... with {streams} streams open {:.1} MB",
        mb(rss_streams)
    );
    println!("  Tessera peak RSS (VmHWM)     {:.1} MB", mb(peak));
    if let Some(s) = store_rss {
        println!("  store VmRSS, all waiting     {:.1} MB", mb(s));
    }
    println!("  errors                       {}", errors.len());
    for e in errors.iter().take(SHOWN_ERRORS) {
        println!("  error: {e}");
    }
    println!(
        "RESULT bench=pushwait n={} waiting={waiting} streams={streams} completed={completed} rss_waiting_mb={:.1} rss_streams_mb={:.1} peak_rss_mb={:.1} store_rss_mb={} start_s={:.1} approve_s={:.1} errors={}",
        args.n,
        mb(rss_waiting),
        mb(rss_streams),
        mb(peak),
        store_rss.map_or("na".to_owned(), |s| format!("{:.1}", mb(s))),
        start_wall.as_secs_f64(),
        approve_wall.as_secs_f64(),
        errors.len()
    );
    Ok(())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Runs one batch of sign-ins up to the waiting page, `c` at a time.
async fn start_batch(ctx: &Arc<Ctx>, users: &[String], c: usize) -> (Vec<Waiter>, Vec<String>) {
    let gate = Arc::new(Semaphore::new(c.max(1)));
    let mut tasks = JoinSet::new();
    for user in users {
        let (ctx, gate, user) = (ctx.clone(), gate.clone(), user.clone());
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            start_one(&ctx, user).await
        });
    }
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(w) => ok.push(w),
            Err(e) => errs.push(e),
        }
    }
    (ok, errs)
}

async fn start_one(ctx: &Ctx, user: String) -> Result<Waiter, String> {
    let relay_state = format!("pw-{user}");
    let mut start = ctx.base.join("/adfs/ls/").map_err(|e| e.to_string())?;
    let (request_id, query) = sp::redirect_request(&relay_state, Some(start.as_str()));
    start.set_query(Some(&query));
    let mut browser = web::Browser::new(ctx.client.clone());
    let who = Credentials {
        username: &user,
        password: &ctx.password,
    };
    let Reached::Waiting(page) = flow::drive(&mut browser, start, &who, &NoCode).await? else {
        return Err(format!("{user}: signed in without waiting for a push"));
    };
    let forms = html::forms(&page.body);
    let flow_id = forms
        .iter()
        .find_map(|f| f.value("flow"))
        .ok_or_else(|| format!("{user}: waiting page without a flow id"))?;
    let mut poll = ctx.base.join("/adfs/ls/login").map_err(|e| e.to_string())?;
    poll.query_pairs_mut().append_pair("flow", flow_id);
    Ok(Waiter {
        stream: None,
        flow_id: flow_id.to_owned(),
        browser,
        poll,
        request_id,
        relay_state,
        number: shown_number(&page.body),
        approve: None,
        user,
    })
}

/// The number-matching number on the waiting page (`<p class="number" id="number">42</p>`).
fn shown_number(page: &str) -> Option<String> {
    let at = page.find("id=\"number\">")? + "id=\"number\">".len();
    let end = page[at..].find('<')?;
    Some(page[at..at + end].trim().to_owned())
}

/// Reads the simulator inbox and gives each parked sign-in its Approve URL, matched by the
/// push topic of its user's device. A sign-in whose push is not found is an error.
async fn note_approve_urls(
    ctx: &Ctx,
    topics: &HashMap<String, String>,
    parked: &mut [Waiter],
) -> Vec<String> {
    let url = match ctx.base.join("/sim/api/inbox") {
        Ok(u) => u,
        Err(e) => return vec![e.to_string()],
    };
    let inbox: serde_json::Value = match fetch_json(&ctx.client, url).await {
        Ok(v) => v,
        Err(e) => return vec![format!("inbox: {e}")],
    };
    let mut by_user: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    for push in inbox["pushes"].as_array().into_iter().flatten() {
        let Some(user) = push["topic"].as_str().and_then(|t| topics.get(t)) else {
            continue;
        };
        let actions = push["actions"].as_array().into_iter().flatten();
        let buttons = actions.filter_map(|a| {
            Some((
                a["label"].as_str()?.to_owned(),
                a["url"].as_str()?.to_owned(),
            ))
        });
        by_user.insert(user.as_str(), buttons.collect());
    }
    let mut errors = Vec::new();
    for w in parked.iter_mut() {
        let want = w.number.as_deref().unwrap_or("Approve");
        w.approve = by_user
            .get(w.user.as_str())
            .and_then(|b| b.iter().find(|(label, _)| label == want))
            .map(|(_, url)| url.clone());
        if w.approve.is_none() {
            errors.push(format!(
                "{}: no push with an {want:?} button in the simulator inbox",
                w.user
            ));
        }
    }
    errors
}

async fn fetch_json(client: &reqwest::Client, url: Url) -> Result<serde_json::Value, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Opens every waiting page's live stream, `c` at a time, and keeps it: (waiters, errors).
async fn open_streams(
    ctx: &Arc<Ctx>,
    waiters: Vec<Waiter>,
    c: usize,
) -> (Vec<Waiter>, Vec<String>) {
    let gate = Arc::new(Semaphore::new(c.max(1)));
    let mut tasks = JoinSet::new();
    for mut w in waiters.into_iter().filter(|w| w.approve.is_some()) {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut url = ctx
                .base
                .join("/adfs/ls/login/wait")
                .map_err(|e| e.to_string())?;
            url.query_pairs_mut().append_pair("flow", &w.flow_id);
            let resp = ctx
                .streams
                .get(url)
                .header(reqwest::header::COOKIE, w.browser.cookie_header())
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .send()
                .await
                .map_err(|e| format!("{}: stream: {e}", w.user))?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(format!("{}: stream answered {}", w.user, resp.status()));
            }
            w.stream = Some(resp);
            Ok(w)
        });
    }
    let (mut ok, mut errs) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(w) => ok.push(w),
            Err(e) => errs.push(e),
        }
    }
    (ok, errs)
}

/// Reads a live stream until it says `state` (the challenge moved on).
async fn until_state(user: &str, stream: &mut reqwest::Response) -> Result<(), String> {
    let mut seen = String::new();
    while !seen.contains("event: state\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await;
        match chunk {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => return Err(format!("{user}: the stream ended without `state`")),
            Ok(Err(e)) => return Err(format!("{user}: stream: {e}")),
            Err(_) => return Err(format!("{user}: no `state` within 30 s of the approval")),
        }
        // Keep only the tail: an event name never spans more than this.
        if seen.len() > 256 {
            seen.drain(..seen.len() - 64);
        }
    }
    Ok(())
}

/// Approves every push and finishes every sign-in, `c` at a time: (completed, errors).
async fn approve_all(ctx: &Arc<Ctx>, waiters: Vec<Waiter>, c: usize) -> (usize, Vec<String>) {
    let gate = Arc::new(Semaphore::new(c.max(1)));
    let mut tasks = JoinSet::new();
    for w in waiters.into_iter().filter(|w| w.approve.is_some()) {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        tasks.spawn(async move {
            let _slot = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            finish_one(&ctx, w).await
        });
    }
    let (mut done, mut errors) = (0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => done += 1,
            Err(e) => errors.push(e),
        }
    }
    (done, errors)
}

/// Presses Approve (a plain POST, as the phone app sends it), waits for the stream's
/// `state`, then submits the poll form as the page's script does.
async fn finish_one(ctx: &Ctx, mut w: Waiter) -> Result<(), String> {
    let approve = w.approve.take().unwrap_or_default();
    let resp = ctx
        .client
        .post(&approve)
        .send()
        .await
        .map_err(|e| format!("{}: approve: {e}", w.user))?;
    if !resp.status().is_success() {
        return Err(format!("{}: approve answered {}", w.user, resp.status()));
    }
    if let Some(mut stream) = w.stream.take() {
        until_state(&w.user, &mut stream).await?;
    }
    let form = ctx.base.join("/adfs/ls/login").map_err(|e| e.to_string())?;
    let fields = [
        ("flow".to_owned(), w.flow_id.clone()),
        ("action".to_owned(), "poll".to_owned()),
    ];
    let first = w.browser.post(form, &fields).await?;
    let mut first = Some(w.browser.follow(first, 10).await?);
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let page = match first.take() {
            Some(p) => p,
            None => w.browser.get_following(w.poll.clone(), 10).await?,
        };
        let forms = html::forms(&page.body);
        let Some(f) = forms.iter().find(|f| f.has("SAMLResponse")) else {
            if page.body.contains("id=\"waiting\"") {
                continue;
            }
            return Err(format!(
                "{}: after approval: {}",
                w.user,
                html::summary(&page.body)
            ));
        };
        return check(ctx, &w, &page.url, f);
    }
    Err(format!("{}: still waiting 2 s after approval", w.user))
}

fn check(ctx: &Ctx, w: &Waiter, at: &Url, f: &html::Form) -> Result<(), String> {
    if ctx.certs.is_empty() {
        return Ok(());
    }
    let action = flow::resolve(at, &f.action)?;
    let expect = sp::Expect {
        certs: &ctx.certs,
        request_id: &w.request_id,
        relay_state: &w.relay_state,
        require_both: false,
    };
    let saml = f.value("SAMLResponse").unwrap_or_default();
    sp::check_response(action.as_str(), saml, f.value("RelayState"), &expect)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", w.user))
}
