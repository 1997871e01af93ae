//! Signing micro-benchmark: Tessera's build-and-sign of a Response with a signed Assertion and
//! a signed Response (the NetScaler "both" case) against two raw RSA-2048 PKCS#1 v1.5
//! SHA-256 signatures with openssl on the same key over data of the same sizes.
//!
//! ```sh
//! cargo run --release --example signbench -- --runs 7 --iters 2000
//! ```
//!
//! Every figure is the median over `--runs` of the mean µs per operation of one run of
//! `--iters` operations, single-threaded. `sign=assertion` (one signature) is measured too;
//! both − 2 × raw is what Tessera spends besides the RSA operations (building, canonical
//! serialisation, digests, base64). Ends with a `RESULT key=value …` line.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use clap::Parser;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use tessera::directory::UserInfo;
use tessera::rp::{RelyingParty, RpConfig, SignChoice};
use tessera::saml::response::{Issue, build_success};
use tessera::xmldsig::sign::SigningKey;
use time::{Duration, OffsetDateTime};

#[derive(Parser, Debug)]
#[command(about = "Response build+sign vs raw RSA-2048 signatures")]
struct Args {
    /// Measured runs; the median is reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Operations per run.
    #[arg(long, default_value_t = 1000)]
    iters: usize,
}

const ACS: &str = "https://gw.corp.example/cgi/samlauth";
const AUTHN_CLASS: &str = "http://schemas.microsoft.com/claims/multipleauthn";

fn main() -> Result<(), String> {
    let args = Args::parse();
    let (key, cert) =
        tessera::keys::generate("Tessera Bench Signing", 30).map_err(|e| e.to_string())?;
    let signer = SigningKey::new(key.clone(), &cert).map_err(|e| e.to_string())?;
    let both = relying_party(SignChoice::Both)?;
    let one = relying_party(SignChoice::Assertion)?;
    let user = user();
    let amr = ["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];

    let sample = build(&both, &user, &amr, &signer)?;
    let assertion_len = sample
        .find("<saml:Assertion")
        .zip(sample.find("</saml:Assertion>"))
        .map_or(sample.len() / 2, |(a, b)| b - a);
    let response_data = vec![b'r'; sample.len()];
    let assertion_data = vec![b'a'; assertion_len];
    println!(
        "Response with both signatures: {} bytes (assertion {assertion_len}); {} runs × {} ops",
        sample.len(),
        args.runs,
        args.iters
    );
    warn_if_busy();

    let both_us = median_us(&args, || {
        black_box(build(&both, &user, &amr, &signer).expect("build"));
    });
    let one_us = median_us(&args, || {
        black_box(build(&one, &user, &amr, &signer).expect("build"));
    });
    let raw_us = median_us(&args, || {
        black_box(raw_sign(&key, &assertion_data));
        black_box(raw_sign(&key, &response_data));
    });

    let ratio = both_us / raw_us;
    let overhead = both_us - raw_us;
    println!("  build+sign, both signatures      {both_us:9.1} µs/op");
    println!("  build+sign, assertion signature  {one_us:9.1} µs/op");
    println!("  two raw RSA-2048 SHA-256 signs   {raw_us:9.1} µs/op");
    println!("  ratio both / two raw             {ratio:9.2}");
    println!(
        "  besides RSA (both − 2 raw)       {overhead:9.1} µs/op ({:.0} % of build+sign)",
        100.0 * overhead / both_us
    );
    println!(
        "RESULT bench=sign both_us={both_us:.1} assertion_only_us={one_us:.1} raw2_us={raw_us:.1} ratio={ratio:.3} non_rsa_us={overhead:.1} bytes={}",
        sample.len()
    );
    Ok(())
}

fn relying_party(sign: SignChoice) -> Result<RelyingParty, String> {
    let cfg = RpConfig {
        entity_id: Some("https://gw.corp.example".into()),
        acs: vec![ACS.into()],
        sign: Some(sign),
        ..RpConfig::default()
    };
    RelyingParty::from_config(&cfg, None, "bench", Path::new("."))
}

/// A user like the bench directory's, with a few groups and attributes.
fn user() -> UserInfo {
    UserInfo {
        username: "bench00001".into(),
        dn: "uid=bench00001,ou=people,dc=corp,dc=example".into(),
        upn: Some("bench00001@corp.example".into()),
        mail: Some("bench00001@corp.example".into()),
        display_name: Some("Bench User 00001".into()),
        groups: vec!["Gateway Users".into(), "Staff".into()],
        ..UserInfo::default()
    }
}

fn build(
    rp: &RelyingParty,
    user: &UserInfo,
    amr: &[String],
    key: &SigningKey,
) -> Result<String, String> {
    let now = OffsetDateTime::now_utc();
    let request_id = tessera::saml::new_id();
    let session_index = tessera::saml::new_id();
    let issue = Issue {
        idp_entity_id: "http://127.0.0.1:8080/adfs/services/trust",
        sp: &rp.recipient(user),
        acs_url: ACS,
        in_response_to: Some(&request_id),
        session_index: &session_index,
        authn_instant: now,
        authn_class: AUTHN_CLASS,
        now,
        skew: Duration::seconds(60),
        lifetime: Duration::seconds(300),
        session_not_on_or_after: Some(now + Duration::hours(8)),
        amr,
    };
    build_success(&issue, key).map_err(|e| e.to_string())
}

fn raw_sign(key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let mut s = Signer::new(MessageDigest::sha256(), key).expect("signer");
    s.sign_oneshot_to_vec(data).expect("sign")
}

/// Median over runs of the mean µs per call of `op`, after one unmeasured run.
fn median_us(args: &Args, mut op: impl FnMut()) -> f64 {
    for _ in 0..args.iters.min(200) {
        op();
    }
    let mut runs: Vec<f64> = (0..args.runs.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..args.iters.max(1) {
                op();
            }
            t.elapsed().as_secs_f64() * 1e6 / args.iters.max(1) as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn warn_if_busy() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one: f64 = load
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    if one > 0.5 {
        println!(
            "  note: load average {one:.2}; other work shares the CPU (figures are wall time)"
        );
    }
}
