//! Native load generator: N full SP-initiated SAML logins at concurrency C against Tessera or
//! SimpleSAMLphp, each checked like an SP would, with the server's CPU per login from /proc.
//!
//! ```sh
//! cargo run --release --example loadgen -- --print-sp-metadata > sp.xml
//! cargo run --release --example loadgen -- --target tessera --base http://127.0.0.1:8080 \
//!     --n 2000 --c 16 --idp-cert tessera-data/signing.crt --pid $(pgrep -x tessera) \
//!     --seed-tessera tessera-data redis://127.0.0.1:6379
//! cargo run --release --example loadgen -- --target ssp --base http://127.0.0.1:8081/simplesaml \
//!     --n 2000 --c 16 --idp-cert ssp/cert/server.crt --pid $(cat /run/apache2/apache2.pid)
//! ```
//!
//! Each login: a fresh AuthnRequest (Redirect binding, new ID, RelayState `lg<i>`), the
//! login form, user `benchNNNNN` round-robin with the shared password, for Tessera the TOTP
//! code of the token `--seed-tessera` enrolled, then the auto-POST page. The SAMLResponse must
//! post to our ACS with our RelayState, carry Destination = ACS, InResponseTo = our ID, Status
//! Success, Audience = our entity ID, and verify against `--idp-cert` (see `loadgen/sp.rs` for
//! which signature is verified how). Anything else is an error. A warm-up of min(50, N/10)
//! logins runs first and is not measured.
//!
//! Output ends with one `RESULT key=value …` line for scripts.

// flow, seed and sp are shared with pushwait, which uses parts this binary does not.
#[allow(dead_code)]
#[path = "loadgen/flow.rs"]
mod flow;
#[path = "loadgen/html.rs"]
mod html;
#[path = "loadgen/procstat.rs"]
mod procstat;
#[allow(dead_code)]
#[path = "loadgen/seed.rs"]
mod seed;
#[allow(dead_code)]
#[path = "loadgen/sp.rs"]
mod sp;
#[path = "loadgen/web.rs"]
mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use openssl::x509::X509;
use url::Url;

use flow::{CodeSource, Credentials, Reached};
use seed::Totp;

/// Default shared TOTP secret of the bench users (20 bytes, base32).
const DEFAULT_TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// Reasons printed for failed logins.
const SHOWN_ERRORS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    Tessera,
    Ssp,
}

#[derive(Parser, Debug)]
#[command(about = "Full SAML logins under load, checked, with server CPU per login")]
struct Args {
    /// Print the load generator's SP metadata and exit.
    #[arg(long)]
    print_sp_metadata: bool,
    #[arg(long, value_enum, default_value = "tessera")]
    target: Target,
    /// Tessera: http://127.0.0.1:8080 ; SimpleSAMLphp: its base, e.g. http://127.0.0.1:8081/simplesaml
    #[arg(long)]
    base: Option<String>,
    /// SSO endpoint under --base (default /adfs/ls/ for Tessera,
    /// /saml2/idp/SSOService.php for SimpleSAMLphp).
    #[arg(long)]
    sso_path: Option<String>,
    /// Measured logins.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 8)]
    c: usize,
    /// Unmeasured warm-up logins (default min(50, N/10)).
    #[arg(long)]
    warmup: Option<usize>,
    /// PEM with the IdP's token-signing certificate(s).
    #[arg(long)]
    idp_cert: Option<PathBuf>,
    /// Server PIDs whose process trees are measured, comma-separated (first = the IdP).
    #[arg(long, default_value = "")]
    pid: String,
    #[arg(long, default_value = "bench")]
    users_prefix: String,
    #[arg(long, default_value_t = 10_000)]
    user_count: usize,
    /// Start at this user index: repeated runs against one Tessera use fresh users, since
    /// each TOTP time step is accepted once per token.
    #[arg(long, default_value_t = 0)]
    user_offset: usize,
    #[arg(long, default_value = "bench-Pass-1")]
    password: String,
    /// The TOTP secret every bench user's token has (Tessera).
    #[arg(long, default_value = DEFAULT_TOTP_SECRET)]
    totp_secret_base32: String,
    /// Before the run, enrol every bench user's TOTP token in Tessera's Redis store:
    /// DATA_DIR (holding mfa.key) and REDIS_URL.
    #[arg(long, num_args = 2, value_names = ["DATA_DIR", "REDIS_URL"])]
    seed_tessera: Option<Vec<String>>,
    /// Seed, then exit without logging in.
    #[arg(long)]
    seed_only: bool,
    /// Accept a Response with only one of Response / Assertion signed.
    #[arg(long)]
    allow_single_signature: bool,
    /// After the run, re-verify the Response signature of this many measured Responses with
    /// xmlsec1, an independent implementation. 0 = off.
    #[arg(long, default_value_t = 20)]
    xmlsec1_sample: usize,
    /// Leave Destination out of the AuthnRequests (by default it is the SSO URL, which must
    /// then be the IdP's public one).
    #[arg(long)]
    no_destination: bool,
}

/// Everything a login needs, shared by all tasks.
struct Ctx {
    client: reqwest::Client,
    sso: Url,
    users: Vec<String>,
    password: String,
    totp: Option<Totp>,
    certs: Vec<X509>,
    require_both: bool,
    destination: bool,
    user_offset: usize,
}

/// One finished login.
struct Outcome {
    latency: Duration,
    /// Ok holds the Response XML when it is kept for xmlsec1.
    result: Result<Option<String>, String>,
}

struct UserCodes<'a> {
    totp: Option<&'a Totp>,
    index: usize,
}

impl CodeSource for UserCodes<'_> {
    async fn code(&self) -> Option<String> {
        match self.totp {
            Some(t) => Some(t.code(self.index).await),
            None => None,
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.print_sp_metadata {
        print!("{}", sp::metadata());
        return;
    }
    if let Err(e) = run(args).await {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let users = seed::user_names(&args.users_prefix, args.user_count);
    let secret = tessera::mfa::oath::from_base32(&args.totp_secret_base32)
        .map_err(|e| format!("--totp-secret-base32: {e}"))?;
    if let Some(s) = &args.seed_tessera {
        let started = Instant::now();
        let f = seed::Factor::Totp(secret.clone());
        seed::seed(PathBuf::from(&s[0]).as_path(), &s[1], &users, f).await?;
        println!(
            "seeded {} users with a TOTP token in {:.1} s",
            users.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if args.seed_only {
        return Ok(());
    }
    let pids = procstat::parse_pids(&args.pid)?;
    let ctx = Arc::new(context(&args, users, secret)?);
    let warmup = args.warmup.unwrap_or((args.n / 10).min(50));
    if args.n + warmup > args.user_count {
        println!(
            "note: {} logins for {} users: users repeat",
            args.n + warmup,
            args.user_count
        );
    }

    let w = run_phase(ctx.clone(), 0..warmup, args.c, 0).await;
    let warm_errors = w.iter().filter(|o| o.result.is_err()).count();
    println!("warm-up: {warmup} logins, {warm_errors} errors");
    print_errors(&w);

    let ticks = procstat::clock_ticks();
    let before = procstat::cpu_ticks(&pids);
    let self_before = procstat::cpu_ticks(&[std::process::id()]);
    let started = Instant::now();
    let outcomes = run_phase(
        ctx.clone(),
        warmup..warmup + args.n,
        args.c,
        args.xmlsec1_sample,
    )
    .await;
    let wall = started.elapsed();
    let after = procstat::cpu_ticks(&pids);
    let self_after = procstat::cpu_ticks(&[std::process::id()]);

    let xmlsec = xmlsec1_checks(&outcomes, args.idp_cert.as_deref());
    let report = Report {
        target: args.target,
        n: args.n,
        c: args.c,
        wall,
        outcomes: &outcomes,
        xmlsec,
        cpu_ms: delta_ms(&before, &after, ticks),
        client_cpu_ms: delta_ms(&self_before, &self_after, ticks)[0],
        pids: &pids,
    };
    report.print();
    Ok(())
}

fn context(args: &Args, users: Vec<String>, secret: Vec<u8>) -> Result<Ctx, String> {
    let base = args.base.as_deref().ok_or("--base is required")?;
    let sso_path = args.sso_path.clone().unwrap_or_else(|| {
        match args.target {
            Target::Tessera => "/adfs/ls/",
            Target::Ssp => "/saml2/idp/SSOService.php",
        }
        .to_owned()
    });
    let sso = Url::parse(&format!("{}{}", base.trim_end_matches('/'), sso_path))
        .map_err(|e| format!("--base / --sso-path: {e}"))?;
    let cert = args.idp_cert.as_deref().ok_or("--idp-cert is required")?;
    let totp = (args.target == Target::Tessera).then(|| Totp::new(secret, users.len()));
    Ok(Ctx {
        client: web::client(args.c).map_err(|e| e.to_string())?,
        sso,
        users,
        password: args.password.clone(),
        totp,
        certs: sp::load_certs(cert)?,
        require_both: !args.allow_single_signature,
        destination: !args.no_destination,
        user_offset: args.user_offset,
    })
}

/// Runs logins `range` with `c` in flight; keeps the XML of the first `keep_xml` for xmlsec1.
async fn run_phase(
    ctx: Arc<Ctx>,
    range: std::ops::Range<usize>,
    c: usize,
    keep_xml: usize,
) -> Vec<Outcome> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c.max(1).min(range.len().max(1)) {
        let (ctx, next, end, first) = (ctx.clone(), next.clone(), range.end, range.start);
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return out;
                }
                out.push(timed_login(&ctx, i, i - first < keep_xml).await);
            }
        });
    }
    let mut all = Vec::with_capacity(range.len());
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    all
}

async fn timed_login(ctx: &Ctx, i: usize, keep_xml: bool) -> Outcome {
    let started = Instant::now();
    let result = login(ctx, i).await;
    let latency = started.elapsed();
    Outcome {
        latency,
        result: result.map(|c| (keep_xml && c.response_signed).then_some(c.xml)),
    }
}

async fn login(ctx: &Ctx, i: usize) -> Result<sp::Checked, String> {
    let index = (i + ctx.user_offset) % ctx.users.len();
    let relay_state = format!("lg{i}");
    let destination = ctx.destination.then(|| ctx.sso.as_str());
    let (request_id, query) = sp::redirect_request(&relay_state, destination);
    let mut start = ctx.sso.clone();
    start.set_query(Some(&query));
    let mut browser = web::Browser::new(ctx.client.clone());
    let who = Credentials {
        username: &ctx.users[index],
        password: &ctx.password,
    };
    let codes = UserCodes {
        totp: ctx.totp.as_ref(),
        index,
    };
    let reached = flow::drive(&mut browser, start, &who, &codes).await;
    let (action, saml_response, relay) = match reached? {
        Reached::Post {
            action,
            saml_response,
            relay_state,
        } => (action, saml_response, relay_state),
        Reached::Waiting(_) => return Err("MFA is waiting for a push/call/text".into()),
    };
    let expect = sp::Expect {
        certs: &ctx.certs,
        request_id: &request_id,
        relay_state: &relay_state,
        require_both: ctx.require_both,
    };
    sp::check_response(&action, &saml_response, relay.as_deref(), &expect)
        .map_err(|e| format!("{}: {e}", who.username))
}

/// Response signatures re-checked with xmlsec1 after the run: (checked, failures).
fn xmlsec1_checks(outcomes: &[Outcome], cert: Option<&std::path::Path>) -> (usize, Vec<String>) {
    let Some(cert) = cert else {
        return (0, Vec::new());
    };
    let scratch = std::env::temp_dir().join(format!("loadgen-{}.xml", std::process::id()));
    let mut failures = Vec::new();
    let mut checked = 0;
    for xml in outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok()?.as_ref())
    {
        checked += 1;
        if let Err(e) = sp::xmlsec1_check(xml, cert, &scratch) {
            failures.push(e);
        }
    }
    let _ = std::fs::remove_file(&scratch);
    (checked, failures)
}

fn delta_ms(before: &[u64], after: &[u64], ticks: u64) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64 * 1000.0 / ticks as f64)
        .collect()
}

fn print_errors(outcomes: &[Outcome]) {
    for e in outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .take(SHOWN_ERRORS)
    {
        println!("  error: {e}");
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Report<'a> {
    target: Target,
    n: usize,
    c: usize,
    wall: Duration,
    outcomes: &'a [Outcome],
    xmlsec: (usize, Vec<String>),
    /// Server CPU ms per PID tree, in --pid order.
    cpu_ms: Vec<f64>,
    client_cpu_ms: f64,
    pids: &'a [u32],
}

impl Report<'_> {
    fn print(&self) {
        let mut ms: Vec<f64> = self
            .outcomes
            .iter()
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let errors =
            self.outcomes.iter().filter(|o| o.result.is_err()).count() + self.xmlsec.1.len();
        let n = self.n.max(1) as f64;
        let rate = self.n as f64 / self.wall.as_secs_f64();
        let cpu_total: f64 = self.cpu_ms.iter().sum();
        let (p50, p95, p99) = (
            percentile(&ms, 50.0),
            percentile(&ms, 95.0),
            percentile(&ms, 99.0),
        );
        let rss_kb = procstat::tree_status_kb(self.pids, "VmHWM");
        let idp_rss_kb = procstat::tree_status_kb(&self.pids[..self.pids.len().min(1)], "VmHWM");
        let pss = procstat::pss_kb(self.pids);
        let idp_pss = procstat::pss_kb(&self.pids[..self.pids.len().min(1)]);

        println!(
            "target {:?}: {} logins at concurrency {} in {:.2} s",
            self.target,
            self.n,
            self.c,
            self.wall.as_secs_f64()
        );
        println!("  logins/s            {rate:.1}");
        println!(
            "  latency ms          p50 {p50:.1}  p95 {p95:.1}  p99 {p99:.1}  max {:.1}",
            ms.last().copied().unwrap_or(0.0)
        );
        for (pid, cpu) in self.pids.iter().zip(&self.cpu_ms) {
            let procs = procstat::tree(*pid).len();
            println!(
                "  server CPU pid {pid:<7} {:.3} ms/login ({cpu:.0} ms, {procs} processes)",
                cpu / n
            );
        }
        println!(
            "  load generator CPU  {:.3} ms/login",
            self.client_cpu_ms / n
        );
        println!(
            "  peak RSS (VmHWM)    {:.1} MB (sum over the process trees)",
            rss_kb as f64 / 1024.0
        );
        if let Some(p) = pss {
            println!("  Pss now             {:.1} MB", p as f64 / 1024.0);
        }
        println!(
            "  signatures          verified on every login (Assertion and Response); {} Responses re-verified by xmlsec1 ({} failed)",
            self.xmlsec.0,
            self.xmlsec.1.len()
        );
        println!("  errors              {errors}");
        print_errors(self.outcomes);
        for e in self.xmlsec.1.iter().take(SHOWN_ERRORS) {
            println!("  error: {e}");
        }
        println!(
            "RESULT target={} n={} c={} logins_per_s={rate:.1} p50_ms={p50:.1} p95_ms={p95:.1} p99_ms={p99:.1} \
             cpu_ms_per_login={:.3} idp_cpu_ms_per_login={:.3} cpu_ms_per_pid={} client_cpu_ms_per_login={:.3} peak_rss_mb={:.1} idp_peak_rss_mb={:.1} pss_mb={} idp_pss_mb={} errors={errors}",
            match self.target {
                Target::Tessera => "tessera",
                Target::Ssp => "ssp",
            },
            self.n,
            self.c,
            cpu_total / n,
            self.cpu_ms.first().copied().unwrap_or(0.0) / n,
            // Each --pid tree's CPU per login, in --pid order (a farm sums its nodes').
            self.cpu_ms
                .iter()
                .map(|c| format!("{:.3}", c / n))
                .collect::<Vec<_>>()
                .join("/"),
            self.client_cpu_ms / n,
            rss_kb as f64 / 1024.0,
            idp_rss_kb as f64 / 1024.0,
            pss.map_or("na".to_owned(), |p| format!("{:.1}", p as f64 / 1024.0)),
            idp_pss.map_or("na".to_owned(), |p| format!("{:.1}", p as f64 / 1024.0)),
        );
    }
}
