#!/usr/bin/env python3
"""Prints the benchmark's side-by-side table from the RESULT lines scripts/bench.sh collected.

Every login figure is the median over the runs; the targets of BENCHMARKS.md are evaluated
and reported (met / not met), never enforced. Exits 1 when a RESULT line reports errors or
an expected line is missing.
"""

import shlex
import statistics
import sys


def parse(path):
    machine, logins, sign, push = {}, {"tessera": [], "ssp": []}, None, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line)
            if not words:
                continue
            fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            if words[0] == "MACHINE":
                machine = fields
            elif words[0] != "RESULT":
                continue
            elif fields.get("bench") == "sign":
                sign = fields
            elif fields.get("bench") == "pushwait":
                push = fields
            elif fields.get("target") in logins:
                logins[fields["target"]].append(fields)
    return machine, logins, sign, push


def median(runs, key):
    values = [float(r[key]) for r in runs if r.get(key) not in (None, "na")]
    return statistics.median(values) if values else float("nan")


def main():
    machine, logins, sign, push = parse(sys.argv[1])
    ok = True
    t, s = logins["tessera"], logins["ssp"]
    if not t or not s or sign is None or push is None:
        print("missing results: need Tessera and SimpleSAMLphp runs, signbench and pushwait")
        return 1

    print(f"machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
          f"{machine.get('mem_gib', '?')} GiB; kernel {machine.get('kernel', '?')}; "
          f"openssl {machine.get('openssl', '?')}; rustc {machine.get('rustc', '?')}; "
          f"PHP {machine.get('php', '?')}; simplesamlphp {machine.get('ssp', '?')}")
    print(f"logins: {t[0]['n']} measured per run at concurrency {t[0]['c']}, "
          f"{len(t)} runs each (Tessera), {len(s)} (SimpleSAMLphp); medians")
    print()

    rows = [
        ("logins/s", "logins_per_s", "{:.1f}", "higher"),
        ("latency p50 ms", "p50_ms", "{:.1f}", "lower"),
        ("latency p95 ms", "p95_ms", "{:.1f}", "lower"),
        ("latency p99 ms", "p99_ms", "{:.1f}", "lower"),
        ("IdP CPU ms / login", "idp_cpu_ms_per_login", "{:.3f}", "lower"),
        ("IdP + store CPU ms / login", "cpu_ms_per_login", "{:.3f}", "lower"),
        ("IdP memory, Pss MB", "idp_pss_mb", "{:.1f}", "lower"),
        ("IdP peak RSS MB, summed", "idp_peak_rss_mb", "{:.1f}", "lower"),
        ("errors (sum of runs)", "errors", "{:.0f}", None),
    ]
    print(f"{'':28} {'Tessera':>12} {'SimpleSAMLphp':>14} {'Tessera advantage':>18}")
    for label, key, fmt, better in rows:
        if key == "errors":
            tv = sum(float(r[key]) for r in t)
            sv = sum(float(r[key]) for r in s)
        else:
            tv, sv = median(t, key), median(s, key)
        if better == "higher":
            adv = f"{tv / sv:.1f}x" if sv else "-"
        elif better == "lower":
            adv = f"{sv / tv:.1f}x" if tv else "-"
        else:
            adv = ""
        print(f"{label:28} {fmt.format(tv):>12} {fmt.format(sv):>14} {adv:>18}")
        if key == "errors" and (tv or sv):
            ok = False
    # Only Tessera has a store to count: SimpleSAMLphp keeps its sessions in PHP files.
    print(f"{'store commands / sign-in':28} {median(t, 'store_cmds_per_login'):>12.1f} {'-':>14}")
    print("  Tessera: password + TOTP code, both signatures, Redis store (the 'IdP + store' row")
    print("  adds redis-server). SimpleSAMLphp: password only, both signatures, PHP sessions.")
    print("  Pss (end of run) shares pages fairly between processes; the summed peak RSS counts")
    print("  pages shared by SimpleSAMLphp's Apache workers once per worker.")
    print()

    both_us, raw2_us = float(sign["both_us"]), float(sign["raw2_us"])
    print("signing (single thread, median of 7 runs)")
    print(f"  Response + Assertion build and sign   {both_us:9.1f} us")
    print(f"  two raw RSA-2048 signatures (openssl) {raw2_us:9.1f} us")
    print(f"  ratio                                 {float(sign['ratio']):9.3f}")
    print(f"  everything but the RSA operations     {float(sign['non_rsa_us']):9.1f} us")
    print()

    n_push = int(push["n"])
    print(f"{n_push} sign-ins waiting on a push at once")
    print(f"  waiting at once                       {push['waiting']:>9}")
    print(f"  Tessera RSS while all wait            {float(push['rss_waiting_mb']):9.1f} MB")
    if "rss_streams_mb" in push:
        print(f"  ... each holding its live stream      {float(push['rss_streams_mb']):9.1f} MB ({push['streams']} open)")
    print(f"  Tessera peak RSS (VmHWM)              {float(push['peak_rss_mb']):9.1f} MB")
    print(f"  Redis RSS                             {push['store_rss_mb']:>9} MB")
    print(f"  completed after approval              {push['completed']:>9}")
    print(f"  errors                                {push['errors']:>9}")
    if int(push["errors"]) or int(push["completed"]) != n_push:
        ok = False
    print()

    idp_cpu = median(t, "idp_cpu_ms_per_login")
    ssp_cpu = median(s, "idp_cpu_ms_per_login")
    limit = 2 * raw2_us / 1000.0
    targets = [
        (f"Tessera CPU per login <= 2x its two raw signatures ({limit:.3f} ms)",
         f"{idp_cpu:.3f} ms = {idp_cpu / (raw2_us / 1000.0):.2f}x", idp_cpu <= limit),
        ("Tessera CPU per login >= 20x less than SimpleSAMLphp's",
         f"{ssp_cpu / idp_cpu:.1f}x less", ssp_cpu / idp_cpu >= 20),
        (f"{n_push} pending pushes under 150 MB RSS",
         f"{float(push['peak_rss_mb']):.1f} MB peak", float(push["peak_rss_mb"]) < 150),
    ]
    print("targets (BENCHMARKS.md)")
    for what, figure, met in targets:
        print(f"  {'met    ' if met else 'NOT met'}  {what}: {figure}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
