#!/usr/bin/env bash
# The benchmark, in one command: installs its peers, builds Tessera and the load generators
# (release), starts a seeded slapd, a private Redis (AOF, fsync always, like
# docker-compose.yml), SimpleSAMLphp 1.19 and Tessera, then runs in this one invocation:
#   1. full SAML logins against Tessera and against SimpleSAMLphp, interleaved, BENCH_RUNS
#      times each, every run on a freshly started server (peak RSS is a lifetime figure);
#   2. the signing micro-benchmark (Response + Assertion build-and-sign vs raw RSA-2048);
#   3. BENCH_PUSH_N sign-ins waiting on a push at once, each holding its page's live stream,
#      then all approved.
# and prints the side-by-side table of medians (see BENCHMARKS.md for how to read it).
#
#   scripts/bench.sh                                   # the published figures
#   BENCH_N=20 BENCH_RUNS=1 BENCH_USERS=200 BENCH_PUSH_N=50 BENCH_PROFILE=debug scripts/bench.sh
#                                                      # smoke check (scripts/test.sh runs this)
#
# Tunables: BENCH_N (measured logins per run, 2000), BENCH_C (concurrency, 16), BENCH_RUNS (3),
# BENCH_USERS (directory users, 10000), BENCH_PUSH_N (10000), BENCH_SIGN_ITERS (2000),
# BENCH_PROFILE (release|debug), BENCH_KEEP=1 keeps $BENCH_DIR (logs, raw RESULT lines),
# BENCH_PERF=1 records each Tessera login run with `perf record -g` into $BENCH_DIR/perf-*.data
# (implies BENCH_KEEP; inspect with `perf report -i FILE --no-children`).
# Exits non-zero when any login fails or a peer does not come up; the figures are printed
# either way, targets are reported, never enforced.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
N="${BENCH_N:-2000}"
C="${BENCH_C:-16}"
RUNS="${BENCH_RUNS:-3}"
PUSH_N="${BENCH_PUSH_N:-10000}"
SIGN_ITERS="${BENCH_SIGN_ITERS:-2000}"
PROFILE="${BENCH_PROFILE:-release}"
export BENCH_USERS="${BENCH_USERS:-10000}"

die() { echo "bench.sh: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { printf '\n== %s\n' "$*"; }

[ "$PUSH_N" -le "$BENCH_USERS" ] || die "BENCH_PUSH_N ($PUSH_N) must not exceed BENCH_USERS ($BENCH_USERS)"

step "dependencies"
bash scripts/bench/install.sh

step "build ($PROFILE)"
build=(cargo build --locked --bin tessera --example loadgen --example signbench --example pushwait)
[ "$PROFILE" = release ] && build+=(--release)
"${build[@]}"
BIN="$REPO/target/$PROFILE"
TESSERA="$BIN/tessera"
LOADGEN="$BIN/examples/loadgen"

BENCH_DIR="$(mktemp -d /tmp/tessera-bench.XXXXXX)"
export BENCH_DIR
chmod 755 "$BENCH_DIR"   # SimpleSAMLphp's Apache workers run as nobody
RESULTS="$BENCH_DIR/results.txt"
: > "$RESULTS"
TESSERA_PID=""
REDIS_PID=""

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$TESSERA_PID"
  stop_pid "$REDIS_PID"
  scripts/bench/ssp.sh stop >/dev/null 2>&1 || true
  scripts/bench/slapd.sh stop >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "${BENCH_PERF:-0}" = 1 ]; then
    echo "kept $BENCH_DIR (logs, results.txt)"
  else
    rm -rf "$BENCH_DIR"
  fi
}
trap cleanup EXIT

step "machine"
{
  echo "MACHINE cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\" cores=$(nproc) mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo) kernel=$(uname -r) openssl=\"$(openssl version | cut -d' ' -f2)\" rustc=\"$(rustc --version | cut -d' ' -f2)\" php=\"$(php -r 'echo PHP_VERSION;')\" ssp=\"$(dpkg-query -W -f='${Version}' simplesamlphp)\""
} | tee -a "$RESULTS"

step "directory: slapd with $BENCH_USERS users"
scripts/bench/slapd.sh start > "$BENCH_DIR/slapd.log"
set -a; . "$BENCH_DIR/slapd.env"; set +a
echo "slapd pid $SLAPD_PID at $LDAP_URL"

step "store: private Redis (appendonly, appendfsync always)"
REDIS_PORT="$(free_port)"
mkdir -p "$BENCH_DIR/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$BENCH_DIR/redis" --save "" \
  --appendonly yes --appendfsync always --logfile "$BENCH_DIR/redis/redis.log" &
REDIS_PID=$!
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis did not come up (see $BENCH_DIR/redis/redis.log)"
echo "redis pid $REDIS_PID at $REDIS_URL"

step "Tessera: LDAP directory, Redis store, SP registered with sign = both"
TDIR="$BENCH_DIR/tessera"
mkdir -p "$TDIR"
TESSERA_PORT="$(free_port)"
export TESSERA__SERVER__LISTEN="127.0.0.1:$TESSERA_PORT"
export TESSERA__SERVER__PUBLIC_URL="http://127.0.0.1:$TESSERA_PORT"
export TESSERA__SERVER__DATA_DIR="$TDIR/data"
export TESSERA__METADATA_DIR="$TDIR/metadata"
export TESSERA__DIRECTORY__KIND=ldap
export TESSERA__DIRECTORY__LDAP__SERVERS="$LDAP_URL"
export TESSERA__DIRECTORY__LDAP__BIND_DN="$LDAP_BIND_DN"
export TESSERA__DIRECTORY__LDAP__BIND_PASSWORD="$LDAP_BIND_PASSWORD"
export TESSERA__DIRECTORY__LDAP__BASE_DN="$LDAP_BASE_DN"
export TESSERA__STORE__BACKEND=redis
export TESSERA__STORE__REDIS_URL="$REDIS_URL"
export TESSERA__LOG__LEVEL=warn
# The push benchmark starts 10,000 sign-ins before approving any: they must still be waiting.
export TESSERA__MFA__GATEWAY__PUSH=simulator
export TESSERA__MFA__TIMEOUT_SECS=300
"$TESSERA" metadata --cert > "$TDIR/idp.crt"
"$LOADGEN" --print-sp-metadata > "$TDIR/sp.xml"
"$TESSERA" rp add --metadata "$TDIR/sp.xml" --name loadgen --sign both
"$LOADGEN" --seed-only --user-count "$BENCH_USERS" --seed-tessera "$TDIR/data" "$REDIS_URL"

# Commands the Redis store has executed so far (INFO itself counts as one).
redis_commands() {
  redis-cli -p "$REDIS_PORT" INFO stats | tr -d '\r' | sed -n 's/^total_commands_processed://p'
}

start_tessera() {
  "$TESSERA" serve > "$TDIR/serve-$1.log" 2>&1 &
  TESSERA_PID=$!
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$TESSERA_PORT/saml/metadata" 2>/dev/null && return 0
    [ -d "/proc/$TESSERA_PID" ] || break
    sleep 0.1
  done
  tail -20 "$TDIR/serve-$1.log" >&2
  die "Tessera did not come up"
}

step "SimpleSAMLphp 1.19: same slapd, signs Response and Assertion"
# A prefork worker per login in flight, all started before the run: spawning workers
# mid-run would charge process start-up to logins and queue connections behind keep-alive.
export SSP_WORKERS="${SSP_WORKERS:-$C}"
scripts/bench/ssp.sh start > "$BENCH_DIR/ssp-start.log" || { cat "$BENCH_DIR/ssp-start.log" >&2; die "SimpleSAMLphp did not come up"; }
scripts/bench/ssp.sh stop > /dev/null

failed=0
warmup=$(( N / 10 < 50 ? N / 10 : 50 ))
for r in $(seq 1 "$RUNS"); do
  step "run $r of $RUNS: Tessera, $N logins at concurrency $C"
  start_tessera "login-$r"
  # Fresh users per run: a TOTP step is accepted once per token.
  offset=$(( (r - 1) * (N + warmup) ))
  perf_pid=""
  if [ "${BENCH_PERF:-0}" = 1 ]; then
    perf record -F 999 -g -o "$BENCH_DIR/perf-tessera-$r.data" -p "$TESSERA_PID" 2>"$BENCH_DIR/perf-$r.log" &
    perf_pid=$!
  fi
  commands_before=$(redis_commands)
  "$LOADGEN" --target tessera --base "http://127.0.0.1:$TESSERA_PORT" --n "$N" --c "$C" \
    --user-count "$BENCH_USERS" --user-offset "$offset" \
    --idp-cert "$TDIR/idp.crt" --pid "$TESSERA_PID,$REDIS_PID" | tee "$BENCH_DIR/tessera-$r.txt" || failed=1
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  # Store commands per sign-in, warm-up included: everything Redis executed during the run
  # (the node's once-a-second settings refreshes too, a few dozen per run) over the logins.
  store_cmds=$(awk -v a="$(redis_commands)" -v b="$commands_before" -v n="$(( N + warmup ))" \
    'BEGIN { printf "%.1f", (a - b - 1) / n }')
  echo "store (Redis) commands per sign-in: $store_cmds"
  grep '^RESULT' "$BENCH_DIR/tessera-$r.txt" \
    | sed "s/^RESULT /RESULT run=$r store_cmds_per_login=$store_cmds /" >> "$RESULTS" || failed=1
  stop_pid "$TESSERA_PID"; TESSERA_PID=""

  step "run $r of $RUNS: SimpleSAMLphp, $N logins at concurrency $C"
  scripts/bench/ssp.sh start > "$BENCH_DIR/ssp-start.log" || { cat "$BENCH_DIR/ssp-start.log" >&2; die "SimpleSAMLphp did not come up"; }
  set -a; . "$BENCH_DIR/ssp.env"; set +a
  "$LOADGEN" --target ssp --base "$SSP_BASE" --n "$N" --c "$C" --user-count "$BENCH_USERS" \
    --idp-cert "$SSP_CERT" --pid "$(cat "$SSP_PIDFILE")" | tee "$BENCH_DIR/ssp-$r.txt" || failed=1
  grep '^RESULT' "$BENCH_DIR/ssp-$r.txt" | sed "s/^RESULT /RESULT run=$r /" >> "$RESULTS" || failed=1
  scripts/bench/ssp.sh stop > /dev/null
done

step "signing micro-benchmark"
"$BIN/examples/signbench" --runs 7 --iters "$SIGN_ITERS" | tee "$BENCH_DIR/sign.txt" || failed=1
grep '^RESULT' "$BENCH_DIR/sign.txt" >> "$RESULTS" || failed=1

step "$PUSH_N sign-ins waiting on a push at once, each holding its page's live stream"
# Every waiting browser holds an open event stream: one descriptor each on both sides.
# Tessera sizes its connection cap from this limit, keeping an eighth in reserve, and
# pushwait also holds its pool of page connections: so about (N + 500) * 8/7 at least.
need_fds=$(( (PUSH_N + 500) * 8 / 7 + 64 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  ulimit -n "$need_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need_fds" ] \
  || die "open-file limit $(ulimit -n) is below $need_fds, too low for $PUSH_N held streams (raise ulimit -Hn)"
start_tessera push
"$BIN/examples/pushwait" --base "http://127.0.0.1:$TESSERA_PORT" --pid "$TESSERA_PID" --store-pid "$REDIS_PID" \
  --n "$PUSH_N" --seed-push "$TDIR/data" "$REDIS_URL" \
  --idp-cert "$TDIR/idp.crt" | tee "$BENCH_DIR/push.txt" || failed=1
grep '^RESULT' "$BENCH_DIR/push.txt" >> "$RESULTS" || failed=1
stop_pid "$TESSERA_PID"; TESSERA_PID=""

step "results (medians of $RUNS runs; raw lines in results.txt)"
python3 scripts/bench/table.py "$RESULTS" || failed=1
[ "$failed" = 0 ] || die "some runs failed: see the errors above"
