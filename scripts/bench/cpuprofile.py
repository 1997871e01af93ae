#!/usr/bin/env python3
"""Where a sign-in's CPU goes, by step, from `perf script` output of a profiled Tessera run.

    perf script -i perf.data | cpuprofile.py --cpu-ms-per-login 1.23 [--top 12]

Every sample is one slice of Tessera's CPU time (user or kernel) with its call chain. The
chain is walked from the leaf towards the thread's root, and the first frame that belongs to
a step decides the sample's step. Frames of general-purpose code (allocator, libc, core and
std, collections, XML and JSON parsers, tokio's socket wrappers) are passed over, so a
`write()` in the kernel counts for the HTTP server, the Redis client or the LDAP client that
asked for it, and an allocation counts for whoever allocated. The shares are then turned into
microseconds with the CPU per sign-in measured in the clean runs (perf adds its own cost).
Prints a table and one `RESULT bench=profile …` line with each step's share of the samples.
"""

import argparse
import re
import sys
from collections import Counter

# (step, label, symbol prefixes). The order only matters for overlapping prefixes: the first
# step listing a prefix of a frame wins.
STEPS = [
    ("rsa", "RSA-2048 signatures (openssl)", []),  # decided by RSA_MARKERS below
    ("sign", "Response build, c14n, digests", [
        "tessera::xmldsig", "tessera::saml::response", "tessera::xml::"]),
    ("store", "store: Redis client, records", [
        "redis::", "combine::", "tessera::store", "tessera::metrics::MeasuredStore"]),
    ("ldap", "LDAP client (search, bind)", [
        "ldap3::", "lber::", "tessera::directory"]),
    ("templates", "templates, page text", [
        "minijinja::", "tessera::web::views", "tessera::i18n", "tessera::web::pages",
        "tessera::web::branding"]),
    ("totp", "TOTP check, MFA secrets", [
        "totp_rs::", "tessera::mfa::oath", "tessera::mfa::secrets",
        "tessera::mfa::registration"]),
    ("saml_in", "AuthnRequest: inflate, parse, checks", [
        "tessera::saml::request", "tessera::saml::", "miniz_oxide::", "flate2::"]),
    ("logging", "logging, audit, metrics", [
        "tracing", "tessera::audit", "tessera::metrics", "prometheus_client::"]),
    ("http", "HTTP: parse, route, layers, cookies", [
        "hyper::", "hyper_util::", "httparse::", "http::", "axum::", "axum_core::",
        "axum_extra::", "tower::", "tower_http::", "tower_layer::", "matchit::",
        "serde_urlencoded::", "form_urlencoded::", "cookie::", "tessera::server",
        "tessera::web::layers", "tessera::web::client", "tessera::web::lang",
        "tessera::web::errors"]),
    ("login", "sign-in logic: flow, policy, MFA", [
        "tessera::login", "tessera::web::login", "tessera::web::saml", "tessera::web::mfa",
        "tessera::mfa::", "tessera::rp", "tessera::sessions", "tessera::web::"]),
    ("runtime", "tokio: scheduling, epoll, wake-ups", [
        "tokio::runtime", "tokio::task", "tokio::sync", "tokio::time", "tokio::",
        "std::thread", "std::sys::pal::unix::thread", "start_thread", "clone3"]),
    ("tessera", "other Tessera code", ["tessera::"]),
]
RSA_MARKERS = ("RSA_", "rsa_", "ossl_rsa", "EVP_PKEY_sign", "EVP_DigestSignFinal",
               "EVP_DigestSign", "openssl::sign::Signer")
# Frames that never decide a step: general-purpose code that works for whoever called it.
PASS_OVER = ("core::", "alloc::", "std::", "<core::", "<alloc::", "<std::", "hashbrown::",
             "smallvec::", "bytes::", "memchr::", "serde::", "serde_json::", "quick_xml::",
             "roxmltree::", "base64::", "futures", "pin_project", "mio::", "tokio::net",
             "tokio::io", "tokio::runtime::io::registration", "tokio::runtime::io::scheduled_io",
             "tokio_util::", "hyper_util::rt::tokio::TokioIo", "openssl::", "indexmap::", "uuid::",
             "rand", "getrandom", "hex::", "url::", "idna::", "percent_encoding::", "time::",
             "chrono::", "mi_", "_mi_", "mimalloc", "__rust", "rust_", "itoa::", "ryu::")
CRATE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*::[A-Za-z_]")


def parse_samples(lines):
    """Yields each sample's frames, leaf first, as (symbol, dso)."""
    frames, in_sample = [], False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        if not line[0].isspace():
            if in_sample:
                yield frames
            frames, in_sample = [], True
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        dso = ""
        if rest.endswith(")") and " (" in rest:
            rest, dso = rest.rsplit(" (", 1)
            dso = dso[:-1]
        sym = re.sub(r"\+0x[0-9a-f]+$", "", rest)
        frames.append((sym, dso))
    if in_sample:
        yield frames


def subject(sym):
    """The path a frame's symbol is about: for `<T as Trait>::f`, T's path."""
    s = sym.lstrip("<&* ")
    if s.startswith("mut "):
        s = s[4:]
    if s.startswith("dyn "):
        s = s[4:]
    return s


def is_kernel(dso):
    return dso.startswith("[kernel")


def classify(frames):
    """The step of one sample, whether its leaf runs in the kernel, and the deciding frame."""
    kernel_leaf = bool(frames) and is_kernel(frames[0][1])
    user_seen = False
    for i, (sym, dso) in enumerate(frames):
        if is_kernel(dso):
            continue
        user_seen = True
        if "libcrypto" in dso:
            if any(f[0].startswith(RSA_MARKERS) for f in frames[i:]):
                return "rsa", kernel_leaf, sym
            continue
        subj = subject(sym)
        if subj.startswith(PASS_OVER):
            continue
        for step, _label, prefixes in STEPS:
            if subj.startswith(tuple(prefixes)):
                return step, kernel_leaf, subj
    if not user_seen:
        return "kernel", kernel_leaf, frames[0][0] if frames else ""
    leaf = next((f[0] for f in frames if not is_kernel(f[1])), "")
    return "other", kernel_leaf, leaf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-ms-per-login", type=float, required=True)
    ap.add_argument("--top", type=int, default=0,
                    help="also print the N most frequent deciding frames of each step")
    args = ap.parse_args()

    counts, kernel, others = Counter(), Counter(), Counter()
    total = 0
    for frames in parse_samples(sys.stdin):
        if not frames:
            continue
        step, kernel_leaf, decider = classify(frames)
        counts[step] += 1
        kernel[step] += kernel_leaf
        total += 1
        others[(step, decider[:100])] += 1
    if total == 0:
        print("cpuprofile.py: no samples (is perf allowed to record this process?)")
        return 1

    labels = {s: label for s, label, _ in STEPS}
    labels["kernel"] = "kernel only (no user frame)"
    labels["other"] = "unattributed user code"
    per_login_us = args.cpu_ms_per_login * 1000.0
    print(f"profile of one sign-in: {total} samples, {args.cpu_ms_per_login:.3f} ms CPU per sign-in")
    print(f"  {'step':38} {'us/sign-in':>10} {'share':>7} {'in kernel':>10}")
    fields = []
    for step, n in counts.most_common():
        share = n / total
        us = share * per_login_us
        print(f"  {labels[step]:38} {us:10.0f} {share:7.1%} {kernel[step] / n:10.0%}")
        fields.append(f"{step}_share={share:.4f}")
        top = [(k[1], m) for k, m in others.most_common() if k[0] == step][:args.top]
        for sym, m in top:
            print(f"      {m / total * per_login_us:6.0f} us  {sym}")
    all_kernel = sum(kernel.values()) / total
    print(f"  {'in all':38} {per_login_us:10.0f} {1:7.0%} {all_kernel:10.0%}")
    print(f"RESULT bench=profile samples={total} in_kernel={all_kernel:.3f} " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
