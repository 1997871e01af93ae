#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the real peers the tests start
# (slapd, Apache + mod_auth_mellon, xmlsec1, redis-server, Chromium, axe-core), then checks
# formatting and lints and runs every test, then a tiny smoke run of the benchmark. Tests
# start their own peers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
for tool in slapd ldapadd apache2 xmlsec1 redis-server redis-sentinel chromium chromedriver; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "missing $tool after install" >&2; exit 1; }
done
[ -f tests/axe/node_modules/axe-core/axe.min.js ] || { echo "missing axe-core after install" >&2; exit 1; }
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
# Smoke check of the benchmark (BENCHMARKS.md): the whole pipeline at a tiny size with the
# debug binaries cargo test just built — every peer starts, every login is checked, the
# table prints. It measures nothing worth reading and asserts no timing.
BENCH_N=20 BENCH_RUNS=1 BENCH_USERS=200 BENCH_PUSH_N=50 BENCH_SIGN_ITERS=20 BENCH_PROFILE=debug \
  bash scripts/bench.sh
