#!/usr/bin/env bash
# Starts (or stops) the benchmark's own OpenLDAP slapd: the project's AD-like schema, the
# same overlays and ACLs as deploy/ldap/start.sh and tests/support/slapd.rs, seeded with
# deploy/ldap/seed.ldif plus BENCH_USERS generated users (bench00001 .. benchNNNNN, password
# bench-Pass-1, members of "Gateway Users"). State lives in $BENCH_DIR/slapd.
#
#   BENCH_DIR=/tmp/bench BENCH_USERS=10000 scripts/bench/slapd.sh start   # writes $BENCH_DIR/slapd.env
#   BENCH_DIR=/tmp/bench scripts/bench/slapd.sh stop                      # stops only that slapd
#
# slapd.env: LDAP_URL LDAP_BASE_DN LDAP_BIND_DN LDAP_BIND_PASSWORD LDAP_ADMIN_DN
#            LDAP_ADMIN_PASSWORD SLAPD_PID BENCH_USERS BENCH_USER_PASSWORD
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPLOY="$REPO/deploy/ldap"
SLAPD=/usr/sbin/slapd
BASE_DN="dc=corp,dc=example"
ADMIN_DN="cn=admin,$BASE_DN"
ADMIN_PASSWORD="admin-Pass-1"
SVC_DN="cn=svc-tessera,ou=services,$BASE_DN"
SVC_PASSWORD="svc-tessera-Pass-1"
USER_PASSWORD="bench-Pass-1"
BENCH_USERS="${BENCH_USERS:-10000}"

die() { echo "slapd.sh: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cmd="${1:-}"
case "$cmd" in
  start) BENCH_DIR="${BENCH_DIR:-$(mktemp -d /tmp/tessera-bench.XXXXXX)}" ;;
  stop)  [ -n "${BENCH_DIR:-}" ] || die "stop needs BENCH_DIR (the directory start printed)" ;;
  *) die "usage: BENCH_DIR=DIR $0 start|stop" ;;
esac
D="$BENCH_DIR/slapd"

stop() {
  [ -f "$D/pid" ] || { echo "slapd.sh: no slapd recorded in $D"; return 0; }
  local pid; pid="$(cat "$D/pid")"
  # Only the process we started, and only while it still is a slapd.
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = slapd ]; then
    kill "$pid"
    for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && { echo "slapd.sh: slapd $pid did not exit, sending KILL"; kill -9 "$pid"; }
  fi
  rm -f "$D/pid"
  echo "slapd stopped (pid $pid)"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi

for tool in "$SLAPD" /usr/bin/ldapadd /usr/bin/ldapmodify /usr/bin/ldapsearch; do
  [ -x "$tool" ] || die "$tool missing: run scripts/bench/install.sh"
done
[[ "$BENCH_USERS" =~ ^[0-9]+$ ]] && [ "$BENCH_USERS" -le 99999 ] || die "BENCH_USERS must be 0..99999"
if [ -f "$D/pid" ] && [ -d "/proc/$(cat "$D/pid")" ]; then die "already running (pid $(cat "$D/pid")); stop it first"; fi
rm -rf "$D"; mkdir -p "$D/db"

# Same shape as tests/support/slapd.rs (minus TLS), plus dbnosync: a throwaway benchmark
# database does not need an fsync per add, and that makes loading 10,000 users fast.
cat > "$D/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $DEPLOY/ad-lite.schema

pidfile $D/slapd.pid
argsfile $D/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy

database mdb
maxsize 1073741824
dbnosync
suffix "$BASE_DN"
rootdn "$ADMIN_DN"
rootpw $ADMIN_PASSWORD
directory $D/db
index objectClass eq
index uid,sAMAccountName,userPrincipalName eq

access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="$SVC_DN" read
  by self read
  by anonymous auth
  by * none

overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,$BASE_DN"
ppolicy_hash_cleartext
CONF

started=""
for _ in 1 2 3; do
  port="$(free_port)"
  url="ldap://127.0.0.1:$port"
  # -d 0 keeps slapd in the foreground, so $! is slapd itself; setsid detaches it from
  # this shell's session so it outlives the script.
  setsid "$SLAPD" -f "$D/slapd.conf" -h "$url/" -d 0 </dev/null >"$D/slapd.log" 2>&1 &
  pid=$!
  echo "$pid" > "$D/pid"
  for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || break
    if ldapsearch -x -H "$url" -b "" -s base >/dev/null 2>&1; then started=1; break; fi
    sleep 0.1
  done
  [ -n "$started" ] && break
  kill "$pid" 2>/dev/null || true; rm -f "$D/pid"
done
[ -n "$started" ] || { cat "$D/slapd.log" >&2; die "slapd did not start"; }

t0=$(date +%s.%N)
# Seed through the running server (not slapadd): memberof must see the adds.
ldapadd -x -H "$url" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -f "$DEPLOY/seed.ldif" >/dev/null

# The generated users: one ldapadd of one LDIF. Cleartext passwords are hashed ({SSHA}) by
# ppolicy_hash_cleartext. Group membership comes last, as one modify of "Gateway Users"
# per 1,000 members, so memberof writes memberOf into entries that already exist.
if [ "$BENCH_USERS" -gt 0 ]; then
  python3 - "$BENCH_USERS" "$BASE_DN" "$USER_PASSWORD" > "$D/bench-users.ldif" <<'PY'
import sys
n, base, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout
for i in range(1, n + 1):
    u = f"bench{i:05d}"
    out.write(f"dn: uid={u},ou=people,{base}\nobjectClass: inetOrgPerson\nobjectClass: user\n"
              f"uid: {u}\ncn: Bench {i:05d}\nsn: {i:05d}\ngivenName: Bench\n"
              f"displayName: Bench User {i:05d}\nsAMAccountName: {u}\n"
              f"userPrincipalName: {u}@corp.example\nmail: {u}@corp.example\n"
              f"userAccountControl: 512\nuserPassword: {pw}\n\n")
PY
  python3 - "$BENCH_USERS" "$BASE_DN" > "$D/bench-groups.ldif" <<'PY'
import sys
n, base = int(sys.argv[1]), sys.argv[2]
for start in range(1, n + 1, 1000):
    print(f"dn: cn=Gateway Users,ou=groups,{base}\nchangetype: modify\nadd: member")
    for i in range(start, min(start + 1000, n + 1)):
        print(f"member: uid=bench{i:05d},ou=people,{base}")
    print()
PY
  ldapadd -x -H "$url" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -f "$D/bench-users.ldif" >/dev/null
  ldapmodify -x -H "$url" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" -f "$D/bench-groups.ldif" >/dev/null
fi
t1=$(date +%s.%N)

# Sanity: the service account finds a bench user with memberOf, and the user can bind.
if [ "$BENCH_USERS" -gt 0 ]; then
  last="$(printf 'bench%05d' "$BENCH_USERS")"
  ldapsearch -x -LLL -H "$url" -D "$SVC_DN" -w "$SVC_PASSWORD" -b "$BASE_DN" \
    "(sAMAccountName=$last)" memberOf | grep -q "memberOf: cn=Gateway Users" \
    || die "$last has no memberOf Gateway Users"
  ldapwhoami -x -H "$url" -D "uid=bench00001,ou=people,$BASE_DN" -w "$USER_PASSWORD" >/dev/null \
    || die "bench00001 cannot bind"
fi

cat > "$BENCH_DIR/slapd.env" <<ENV
LDAP_URL=$url
LDAP_BASE_DN=$BASE_DN
LDAP_BIND_DN=$SVC_DN
LDAP_BIND_PASSWORD=$SVC_PASSWORD
LDAP_ADMIN_DN=$ADMIN_DN
LDAP_ADMIN_PASSWORD=$ADMIN_PASSWORD
SLAPD_PID=$pid
BENCH_USERS=$BENCH_USERS
BENCH_USER_PASSWORD=$USER_PASSWORD
ENV
printf 'slapd ready at %s (pid %s); %s bench users loaded in %.1f s\n' "$url" "$pid" "$BENCH_USERS" "$(python3 -c "print($t1-$t0)")"
echo "export BENCH_DIR=$BENCH_DIR   # env: $BENCH_DIR/slapd.env"
cat "$BENCH_DIR/slapd.env"
