#!/usr/bin/env bash
# The benchmark, in one command: installs its peers, builds Tessera and the load generators
# (release), starts a seeded slapd, a private Redis (AOF, fsync always, like
# docker-compose.yml), SimpleSAMLphp 1.19 and Tessera, then runs in this one invocation:
#   1. full SAML logins against Tessera and against SimpleSAMLphp, interleaved, BENCH_RUNS
#      times each, every run on a freshly started server (peak RSS is a lifetime figure);
#   2. the signing micro-benchmark (Response + Assertion build-and-sign vs raw RSA-2048);
#   3. a profile of one sign-in: a Tessera run under `perf record` (CPU by step) and under
#      Redis MONITOR (store commands by kind);
#   4. a farm: one, then two Tessera nodes on one Redis behind haproxy (throughput, CPU and
#      store commands per sign-in);
#   5. BENCH_PUSH_N sign-ins waiting on a push at once, each holding its page's live stream,
#      then all approved (last: it makes those users' default method a push).
# and prints the side-by-side table of medians (see BENCHMARKS.md for how to read it).
#
#   scripts/bench.sh                                   # the published figures
#   BENCH_N=20 BENCH_RUNS=1 BENCH_USERS=200 BENCH_PUSH_N=50 BENCH_PROFILE=debug scripts/bench.sh
#                                                      # smoke check (scripts/test.sh runs this)
#
# Tunables: BENCH_N (measured logins per run, 2000), BENCH_C (concurrency, 16), BENCH_RUNS (3),
# BENCH_USERS (directory users, 10000), BENCH_PUSH_N (10000), BENCH_SIGN_ITERS (2000),
# BENCH_PROFILE (release|debug), BENCH_PROFILE_N (logins of the profiled run, min(N, 1000)),
# BENCH_FARM_N (logins per farm run, N), BENCH_KEEP=1 keeps $BENCH_DIR (logs, raw RESULT lines,
# the profile's perf.data: `perf report -i FILE --no-children`), BENCH_PARTS (which parts run,
# default "logins profile sign farm push"; the table needs them all).
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
PROFILE_N="${BENCH_PROFILE_N:-$(( N < 1000 ? N : 1000 ))}"
FARM_N="${BENCH_FARM_N:-$N}"
PARTS=" ${BENCH_PARTS:-logins profile sign farm push} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
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
BIN="${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE"
TESSERA="$BIN/tessera"
LOADGEN="$BIN/examples/loadgen"

BENCH_DIR="$(mktemp -d /tmp/tessera-bench.XXXXXX)"
export BENCH_DIR
chmod 755 "$BENCH_DIR"   # SimpleSAMLphp's Apache workers run as nobody
RESULTS="$BENCH_DIR/results.txt"
: > "$RESULTS"
TESSERA_PID=""
REDIS_PID=""
EXTRA_PIDS=()   # farm nodes, haproxy, MONITOR, perf

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  for pid in "${EXTRA_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$TESSERA_PID"
  stop_pid "$REDIS_PID"
  scripts/bench/ssp.sh stop >/dev/null 2>&1 || true
  scripts/bench/slapd.sh stop >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
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

# Starts `tessera serve` listening on $2 (default: $TESSERA_PORT), logging to serve-$1.log;
# sets STARTED_PID. The environment above says everything else, so farm nodes are the same
# IdP: same key files, same store, same public URL.
start_node() {
  local port="${2:-$TESSERA_PORT}"
  TESSERA__SERVER__LISTEN="127.0.0.1:$port" "$TESSERA" serve > "$TDIR/serve-$1.log" 2>&1 &
  STARTED_PID=$!
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/saml/metadata" 2>/dev/null && return 0
    [ -d "/proc/$STARTED_PID" ] || break
    sleep 0.1
  done
  tail -20 "$TDIR/serve-$1.log" >&2
  die "Tessera did not come up"
}
start_tessera() { start_node "$1"; TESSERA_PID=$STARTED_PID; }

# Redis commands per login since `redis_commands` answered $1, over $2 logins (the INFO
# call that reads the count is itself one).
redis_commands_per_login() {
  awk -v a="$(redis_commands)" -v b="$1" -v n="$2" 'BEGIN { printf "%.1f", (a - b - 1) / n }'
}

# Store calls Tessera made (client side, one round trip each), from its /metrics.
store_calls() {
  curl -fsS "http://127.0.0.1:${1:-$TESSERA_PORT}/metrics" \
    | awk '/^tessera_store_seconds_count/ { n += $2 } END { printf "%d", n }'
}

# Users are consumed in order, each part on fresh ones: a TOTP step is accepted once per token.
next_user=0
take_users() { USER_OFFSET=$next_user; next_user=$(( next_user + $1 )); }

failed=0
warmup=$(( N / 10 < 50 ? N / 10 : 50 ))
tessera_login_run() {  # $1 = label; measured run against $TESSERA_PID
  take_users $(( N + warmup ))
  local before calls_before
  before=$(redis_commands)
  calls_before=$(store_calls)
  "$LOADGEN" --target tessera --base "http://127.0.0.1:$TESSERA_PORT" --n "$N" --c "$C" \
    --user-count "$BENCH_USERS" --user-offset "$USER_OFFSET" \
    --idp-cert "$TDIR/idp.crt" --pid "$TESSERA_PID,$REDIS_PID" | tee "$BENCH_DIR/tessera-$1.txt" || failed=1
  # Per sign-in, warm-up included: Redis's own count of commands (the node's once-a-second
  # settings refreshes too, a few per run) and Tessera's count of store calls (round trips).
  local cmds calls
  cmds=$(redis_commands_per_login "$before" $(( N + warmup )))
  calls=$(awk -v a="$(store_calls)" -v b="$calls_before" -v n="$(( N + warmup ))" 'BEGIN { printf "%.1f", (a - b) / n }')
  echo "store per sign-in: $cmds Redis commands in $calls round trips"
  grep '^RESULT' "$BENCH_DIR/tessera-$1.txt" \
    | sed "s/^RESULT /RESULT run=$1 store_cmds_per_login=$cmds store_calls_per_login=$calls /" >> "$RESULTS" || failed=1
}

if part logins; then
  step "SimpleSAMLphp 1.19: same slapd, signs Response and Assertion"
  # A prefork worker per login in flight, all started before the run: spawning workers
  # mid-run would charge process start-up to logins and queue connections behind keep-alive.
  export SSP_WORKERS="${SSP_WORKERS:-$C}"
  scripts/bench/ssp.sh start > "$BENCH_DIR/ssp-start.log" || { cat "$BENCH_DIR/ssp-start.log" >&2; die "SimpleSAMLphp did not come up"; }
  scripts/bench/ssp.sh stop > /dev/null

  for r in $(seq 1 "$RUNS"); do
    step "run $r of $RUNS: Tessera, $N logins at concurrency $C"
    start_tessera "login-$r"
    tessera_login_run "$r"
    stop_pid "$TESSERA_PID"; TESSERA_PID=""

    step "run $r of $RUNS: SimpleSAMLphp, $N logins at concurrency $C"
    scripts/bench/ssp.sh start > "$BENCH_DIR/ssp-start.log" || { cat "$BENCH_DIR/ssp-start.log" >&2; die "SimpleSAMLphp did not come up"; }
    set -a; . "$BENCH_DIR/ssp.env"; set +a
    "$LOADGEN" --target ssp --base "$SSP_BASE" --n "$N" --c "$C" --user-count "$BENCH_USERS" \
      --idp-cert "$SSP_CERT" --pid "$(cat "$SSP_PIDFILE")" | tee "$BENCH_DIR/ssp-$r.txt" || failed=1
    grep '^RESULT' "$BENCH_DIR/ssp-$r.txt" | sed "s/^RESULT /RESULT run=$r /" >> "$RESULTS" || failed=1
    scripts/bench/ssp.sh stop > /dev/null
  done
fi

if part profile; then
  step "profile of one sign-in: $PROFILE_N logins under perf record and Redis MONITOR"
  start_tessera profile
  take_users "$PROFILE_N"
  redis-cli -p "$REDIS_PORT" MONITOR > "$BENCH_DIR/monitor.txt" &
  monitor_pid=$!; EXTRA_PIDS+=("$monitor_pid")
  # DWARF call graphs: Rust and C code alike unwind through .eh_frame, no rebuild needed.
  perf record -F 1999 --call-graph dwarf,32768 -o "$BENCH_DIR/perf.data" -p "$TESSERA_PID" \
    > "$BENCH_DIR/perf-record.log" 2>&1 &
  perf_pid=$!; EXTRA_PIDS+=("$perf_pid")
  sleep 0.5  # perf attaches to the threads
  "$LOADGEN" --target tessera --base "http://127.0.0.1:$TESSERA_PORT" --n "$PROFILE_N" --c "$C" \
    --warmup 0 --xmlsec1-sample 0 --user-count "$BENCH_USERS" --user-offset "$USER_OFFSET" \
    --idp-cert "$TDIR/idp.crt" --pid "$TESSERA_PID" > "$BENCH_DIR/profile-run.txt" || { cat "$BENCH_DIR/profile-run.txt"; failed=1; }
  kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" || true
  stop_pid "$monitor_pid"
  stop_pid "$TESSERA_PID"; TESSERA_PID=""
  python3 scripts/bench/storecmds.py "$BENCH_DIR/monitor.txt" "$PROFILE_N" "tessera:" \
    | tee "$BENCH_DIR/storecmds.txt" || failed=1
  grep '^RESULT' "$BENCH_DIR/storecmds.txt" >> "$RESULTS" || failed=1
  # Shares of the profiled run, scaled by the CPU per sign-in of the clean runs (perf and
  # MONITOR slow the profiled run down); without them, by the profiled run's own.
  cpu=$(python3 scripts/bench/table.py --tessera-cpu "$RESULTS" 2>/dev/null \
    || sed -n 's/^RESULT .* idp_cpu_ms_per_login=\([0-9.]*\) .*/\1/p' "$BENCH_DIR/profile-run.txt")
  # --no-inline: resolving inlined frames runs addr2line over the debug info, minutes for a
  # debug build; the steps are decided by the functions perf sees anyway.
  perf script --no-inline -i "$BENCH_DIR/perf.data" 2> "$BENCH_DIR/perf-script.log" \
    | python3 scripts/bench/cpuprofile.py --cpu-ms-per-login "$cpu" | tee "$BENCH_DIR/profile.txt" || failed=1
  grep '^RESULT' "$BENCH_DIR/profile.txt" >> "$RESULTS" || failed=1
fi

if part sign; then
  step "signing micro-benchmark"
  "$BIN/examples/signbench" --runs 7 --iters "$SIGN_ITERS" | tee "$BENCH_DIR/sign.txt" || failed=1
  grep '^RESULT' "$BENCH_DIR/sign.txt" >> "$RESULTS" || failed=1
fi

if part farm; then
  # The farm's public URL is haproxy's: the AuthnRequest's Destination and the pages' links
  # name it, and every request of a sign-in may land on either node (round robin per
  # request, no affinity), so the flow, the replay guards and the session travel by Redis.
  LB_PORT="$(free_port)"
  for nodes in 1 2; do
    step "farm: $nodes Tessera node(s) on one Redis behind haproxy, $FARM_N logins at concurrency $C"
    node_pids=()
    servers=""
    for i in $(seq 1 "$nodes"); do
      port="$(free_port)"
      TESSERA__SERVER__PUBLIC_URL="http://127.0.0.1:$LB_PORT" start_node "farm$nodes-node$i" "$port"
      node_pids+=("$STARTED_PID"); EXTRA_PIDS+=("$STARTED_PID")
      servers+="    server node$i 127.0.0.1:$port"$'\n'
    done
    cat > "$BENCH_DIR/haproxy-$nodes.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend tessera
    bind 127.0.0.1:$LB_PORT
    default_backend nodes
backend nodes
    balance roundrobin
$servers
CFG
    haproxy -f "$BENCH_DIR/haproxy-$nodes.cfg" -db > "$BENCH_DIR/haproxy-$nodes.log" 2>&1 &
    lb_pid=$!; EXTRA_PIDS+=("$lb_pid")
    for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$LB_PORT/saml/metadata" 2>/dev/null && break; sleep 0.1; done
    take_users $(( FARM_N + warmup ))
    before=$(redis_commands)
    pids=$(IFS=,; echo "${node_pids[*]}")
    "$LOADGEN" --target tessera --base "http://127.0.0.1:$LB_PORT" --n "$FARM_N" --c "$C" \
      --user-count "$BENCH_USERS" --user-offset "$USER_OFFSET" \
      --idp-cert "$TDIR/idp.crt" --pid "$pids,$REDIS_PID,$lb_pid" | tee "$BENCH_DIR/farm-$nodes.txt" || failed=1
    cmds=$(redis_commands_per_login "$before" $(( FARM_N + warmup )))
    grep '^RESULT' "$BENCH_DIR/farm-$nodes.txt" \
      | sed "s/^RESULT /RESULT bench=farm nodes=$nodes store_cmds_per_login=$cmds /" >> "$RESULTS" || failed=1
    stop_pid "$lb_pid"
    for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
  done
fi

if part push; then
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
fi

step "results (medians of $RUNS runs; raw lines in results.txt)"
if [ "$PARTS" = " logins profile sign farm push " ]; then
  python3 scripts/bench/table.py "$RESULTS" || failed=1
else
  echo "only these parts ran:$PARTS— the table needs them all; RESULT lines:"
  cat "$RESULTS"
fi
[ "$failed" = 0 ] || die "some runs failed: see the errors above"
