#!/usr/bin/env bash
# Starts (or stops) a real SimpleSAMLphp 1.19 IdP (Debian package) under its own Apache
# (prefork + mod_php) on a free 127.0.0.1 port, authenticating against the benchmark slapd
# (ldap:LDAP, search-then-bind with the service account) and signing Response AND
# Assertion (RSA-SHA256). Nothing under /etc is read for SimpleSAMLphp or written: its config,
# metadata, key, sessions, logs and Apache's config/pid live in $BENCH_DIR/ssp.
#
#   BENCH_DIR=DIR scripts/bench/ssp.sh start   # needs $BENCH_DIR/slapd.env (slapd.sh start) or LDAP_* in env
#   BENCH_DIR=DIR scripts/bench/ssp.sh stop    # stops only the Apache this script started
#   BENCH_DIR=DIR scripts/bench/ssp.sh cpu     # CPU ms used so far by this Apache (parent, live
#                                              # workers and reaped workers), from /proc
#
# Writes $BENCH_DIR/ssp.env: SSP_BASE SSP_SSO_URL SSP_METADATA_URL SSP_ENTITY_ID SSP_CERT
# SSP_PIDFILE SSP_SP_ENTITY_ID SSP_SP_ACS SSP_ADMIN_PASSWORD.
# Tunables: SSP_WORKERS (prefork processes kept running, default 8; max 4x that).
#
# How 1.19 finds its files: lib/SimpleSAML/Utils/Config.php::getConfigDir() takes the
# SIMPLESAMLPHP_CONFIG_DIR environment variable (or REDIRECT_SIMPLESAMLPHP_CONFIG_DIR), which
# under mod_php is Apache's SetEnv; otherwise <install>/config, a symlink to /etc/simplesamlphp
# in Debian. The metadata dir is config.php's 'metadatadir' (Debian's points into /etc), so
# our config.php sets it to $BENCH_DIR/ssp/metadata.
#
# Session store: 'phpsession' (PHP session files in $BENCH_DIR/ssp/sessions). It is
# SimpleSAMLphp's default and what a single-server install runs; the Debian package ships no
# Redis client (predis) and an SQL store would need php-sqlite3 and does more work per request,
# so phpsession is the cheapest store SimpleSAMLphp offers: the comparison is in its favour.
set -euo pipefail

SSP_ROOT=/usr/share/simplesamlphp
MODULE_DIR=/usr/lib/apache2/modules
SP_ENTITY_ID="https://loadgen.bench.test/sp"
SP_ACS="https://loadgen.bench.test/acs"
SSP_WORKERS="${SSP_WORKERS:-8}"

die() { echo "ssp.sh: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rand() { openssl rand -hex "$1"; }

cmd="${1:-}"
case "$cmd" in
  start) BENCH_DIR="${BENCH_DIR:-$(mktemp -d /tmp/tessera-bench.XXXXXX)}" ;;
  stop|cpu) [ -n "${BENCH_DIR:-}" ] || die "$cmd needs BENCH_DIR (the directory start printed)" ;;
  *) die "usage: BENCH_DIR=DIR $0 start|stop|cpu" ;;
esac
D="$BENCH_DIR/ssp"
PIDFILE="$D/run/httpd.pid"

# The Apache parent we started, if it still runs (checked by pid and by command name).
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = apache2 ] || return 1
  echo "$pid"
}

if [ "$cmd" = cpu ]; then
  pid="$(our_pid)" || die "no running Apache recorded in $PIDFILE"
  # Parent: utime+stime+cutime+cstime (reaped workers end up in cutime/cstime); live workers
  # (children of the parent): utime+stime. Fields 14-17 of /proc/PID/stat, in clock ticks.
  python3 - "$pid" <<'PY'
import os, sys
parent = int(sys.argv[1]); hz = os.sysconf("SC_CLK_TCK")
def stat(p):
    with open(f"/proc/{p}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()   # fields from 3 (state) on
total = sum(int(x) for x in stat(parent)[11:15])
for d in os.listdir("/proc"):
    if d.isdigit() and int(d) != parent:
        try:
            s = stat(d)
        except OSError:
            continue
        if int(s[1]) == parent:
            total += int(s[11]) + int(s[12])
print(round(total * 1000 / hz))
PY
  exit 0
fi

if [ "$cmd" = stop ]; then
  if pid="$(our_pid)"; then
    apache2 -f "$D/httpd.conf" -k stop 2>/dev/null || kill "$pid"
    for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && { echo "ssp.sh: apache $pid did not exit, sending KILL"; kill -9 "$pid"; }
    echo "SimpleSAMLphp stopped (apache pid $pid)"
  else
    echo "ssp.sh: no running Apache recorded in $PIDFILE"
  fi
  exit 0
fi

# ---- start ----
[ -d "$SSP_ROOT/www" ] || die "SimpleSAMLphp not installed: run scripts/bench/install.sh"
[ -f "$MODULE_DIR/libphp8.2.so" ] || die "mod_php missing: run scripts/bench/install.sh"
for ext in ldap dom mbstring; do
  php -m | grep -x "$ext" >/dev/null || die "PHP extension $ext missing: run scripts/bench/install.sh"
done
APACHE="$(command -v apache2 || echo /usr/sbin/apache2)"
[ -x "$APACHE" ] || die "apache2 missing: run scripts/bench/install.sh"
our_pid >/dev/null && die "already running (pid $(cat "$PIDFILE")); stop it first"

if [ -z "${LDAP_URL:-}" ]; then
  [ -f "$BENCH_DIR/slapd.env" ] || die "no LDAP_URL and no $BENCH_DIR/slapd.env: run scripts/bench/slapd.sh start"
  set -a; . "$BENCH_DIR/slapd.env"; set +a
fi
: "${LDAP_BASE_DN:?}" "${LDAP_BIND_DN:?}" "${LDAP_BIND_PASSWORD:?}"

rm -rf "$D"
mkdir -p "$D"/{config,metadata,cert,logs,run,sessions,tmp,data,htdocs}
as_root=""; [ "$(id -u)" -eq 0 ] && as_root=1
if [ -n "$as_root" ]; then
  # Apache's workers run as nobody (65534) and must reach the config and key; every
  # directory above $D must be traversable. The files are throwaway benchmark material.
  chmod 755 "$BENCH_DIR" "$D"
  p="$BENCH_DIR"; while [ "$p" != / ]; do
    [ "$(( 0$(stat -c %a "$p") & 1 ))" -eq 1 ] || die "$p is not traversable by nobody; choose another BENCH_DIR"
    p="$(dirname "$p")"
  done
  chown 65534:65534 "$D"/{logs,sessions,tmp,data}
fi

# Token-signing key and certificate (RSA-2048, like Tessera's).
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=SimpleSAMLphp bench IdP" \
  -keyout "$D/cert/idp.key" -out "$D/cert/idp.crt" 2>/dev/null
chmod 644 "$D/cert/idp.key"   # read by the nobody workers (throwaway key)

SALT="$(rand 32)"; ADMIN_PASSWORD="$(rand 12)"
# PHP single-quoted string literal.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")"; }

write_config() {  # $1 = port
  local base="http://127.0.0.1:$1"
  cat > "$D/config/config.php" <<PHP
<?php
// Generated by scripts/bench/ssp.sh for the Tessera benchmark. Options not set here take
// SimpleSAMLphp 1.19's defaults.
\$config = [
    'baseurlpath' => '$base/simplesaml/',
    'certdir' => '$D/cert/',
    'loggingdir' => '$D/logs/',
    'datadir' => '$D/data/',
    'tempdir' => '$D/tmp',
    'metadatadir' => '$D/metadata/',
    'attributenamemapdir' => '$SSP_ROOT/attributemap/',
    'technicalcontact_name' => 'Benchmark',
    'technicalcontact_email' => 'bench@example.invalid',
    'timezone' => 'UTC',

    'secretsalt' => '$SALT',
    'auth.adminpassword' => '$ADMIN_PASSWORD',
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => ['127.0.0.1:$1'],

    'showerrors' => true,
    'errorreporting' => false,
    'production' => true,
    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'logging.level' => SimpleSAML\Logger::WARNING,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'statistics.out' => [],

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['core' => true, 'saml' => true, 'ldap' => true, 'admin' => true, 'exampleauth' => false],

    'store.type' => 'phpsession',
    'session.phpsession.savepath' => '$D/sessions',
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.httponly' => true,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'session.duration' => 8 * 60 * 60,
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    // Plain http on loopback: no Secure flag (a client would drop Secure cookies on http),
    // and no SameSite=None (which browsers require to be Secure).
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,
];
PHP
}

cat > "$D/config/authsources.php" <<PHP
<?php
// Generated by scripts/bench/ssp.sh. 'ldap' does what Tessera's LDAP directory does per
// login: bind as the service account, search the user by sAMAccountName or
// userPrincipalName, bind as the user, read the user's attributes.
\$config = [
    'admin' => ['core:AdminPassword'],
    'ldap' => [
        'ldap:LDAP',
        'hostname' => $(q "$LDAP_URL"),
        'enable_tls' => false,
        'referrals' => false,
        'timeout' => 5,
        'attributes' => ['uid', 'sAMAccountName', 'userPrincipalName', 'mail', 'displayName', 'memberOf'],
        'search.enable' => true,
        'search.base' => $(q "$LDAP_BASE_DN"),
        'search.attributes' => ['sAMAccountName', 'userPrincipalName'],
        'search.username' => $(q "$LDAP_BIND_DN"),
        'search.password' => $(q "$LDAP_BIND_PASSWORD"),
        // The user reads its own entry (slapd ACL "by self read"), as Tessera's bind does.
        'priv.read' => false,
    ],
];
PHP

cat > "$D/metadata/saml20-idp-hosted.php" <<PHP
<?php
// Generated by scripts/bench/ssp.sh: the IdP signs the Response and the Assertion.
\$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => '$D/cert/idp.key',
    'certificate' => '$D/cert/idp.crt',
    'auth' => 'ldap',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
    'simplesaml.nameidattribute' => 'upn',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
    'authproc' => [
        10 => ['class' => 'core:AttributeMap', 'userPrincipalName' => 'upn', 'memberOf' => 'groups'],
        20 => ['class' => 'core:AttributeLimit', 'upn', 'mail', 'groups'],
    ],
];
PHP

cat > "$D/metadata/saml20-sp-remote.php" <<PHP
<?php
// Generated by scripts/bench/ssp.sh: the load generator's SP. It never serves the ACS; it
// reads the auto-POST form SimpleSAMLphp returns. Unsigned AuthnRequests are accepted.
\$metadata['$SP_ENTITY_ID'] = [
    'AssertionConsumerService' => [
        ['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', 'Location' => '$SP_ACS', 'index' => 0],
    ],
    'validate.authnrequest' => false,
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
];
PHP

httpd_conf() {  # $1 = port
  local user=""
  [ -n "$as_root" ] && user=$'User #65534\nGroup #65534'
  local max=$(( SSP_WORKERS * 4 ))
  cat > "$D/httpd.conf" <<CONF
# Generated by scripts/bench/ssp.sh: Apache (prefork: mod_php is not thread-safe) serving
# SimpleSAMLphp from the Debian package, with its config taken from $D/config.
ServerRoot "$D"
PidFile "$PIDFILE"
DefaultRuntimeDir "$D/run"
Mutex file:$D/run default
ErrorLog "$D/logs/error.log"
LogLevel warn
LogFormat "%h %t \"%r\" %>s %b %D" bench
CustomLog "$D/logs/access.log" bench
Listen 127.0.0.1:$1
ServerName 127.0.0.1:$1
UseCanonicalName Off
DocumentRoot "$D/htdocs"
Timeout 30
KeepAlive On
MaxKeepAliveRequests 1000
$user
LoadModule mpm_prefork_module $MODULE_DIR/mod_mpm_prefork.so
LoadModule authz_core_module $MODULE_DIR/mod_authz_core.so
LoadModule alias_module $MODULE_DIR/mod_alias.so
LoadModule env_module $MODULE_DIR/mod_env.so
LoadModule dir_module $MODULE_DIR/mod_dir.so
LoadModule mime_module $MODULE_DIR/mod_mime.so
LoadModule php_module $MODULE_DIR/libphp8.2.so

# A fixed pool: no process churn during a run (spawning a worker costs CPU that would be
# charged to logins). MaxConnectionsPerChild 0 = workers live for the whole run.
StartServers $SSP_WORKERS
MinSpareServers $SSP_WORKERS
MaxSpareServers $max
ServerLimit $max
MaxRequestWorkers $max
MaxConnectionsPerChild 0

TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
<FilesMatch ".+\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
php_admin_value error_log "$D/logs/php-error.log"
php_admin_value session.save_path "$D/sessions"

SetEnv SIMPLESAMLPHP_CONFIG_DIR "$D/config"
Alias /simplesaml $SSP_ROOT/www
<Directory "$SSP_ROOT/www">
    Require all granted
</Directory>
<Directory "$D/htdocs">
    Require all granted
</Directory>
CONF
}

started=""
for _ in 1 2 3 4 5; do
  port="$(free_port)"
  write_config "$port"
  httpd_conf "$port"
  "$APACHE" -f "$D/httpd.conf" -t >/dev/null 2>"$D/logs/configtest.log" || { cat "$D/logs/configtest.log" >&2; die "Apache config test failed"; }
  rm -f "$PIDFILE"
  # Apache daemonizes (the parent's pid lands in PidFile). An empty SSL_CERT_FILE keeps
  # OpenSSL from re-reading the CA bundle (see test-peers.md).
  env SSL_CERT_FILE= LANG=C "$APACHE" -f "$D/httpd.conf" -k start 2>"$D/logs/stderr.log" || true
  for _ in $(seq 100); do
    if [ -f "$PIDFILE" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/simplesaml/saml2/idp/metadata.php"; then
      started=1; break
    fi
    grep -q "Address already in use" "$D/logs/stderr.log" "$D/logs/error.log" 2>/dev/null && break
    sleep 0.1
  done
  [ -n "$started" ] && break
  if pid="$(our_pid)"; then "$APACHE" -f "$D/httpd.conf" -k stop 2>/dev/null || kill "$pid"; sleep 0.5; fi
  grep -q "Address already in use" "$D/logs/stderr.log" "$D/logs/error.log" 2>/dev/null || break
done
if [ -z "$started" ]; then
  cat "$D/logs/stderr.log" "$D/logs/error.log" "$D/logs/php-error.log" 2>/dev/null | tail -30 >&2
  die "SimpleSAMLphp did not come up"
fi

base="http://127.0.0.1:$port/simplesaml"
cat > "$BENCH_DIR/ssp.env" <<ENV
SSP_BASE=$base
SSP_SSO_URL=$base/saml2/idp/SSOService.php
SSP_METADATA_URL=$base/saml2/idp/metadata.php
SSP_ENTITY_ID=$base/saml2/idp/metadata.php
SSP_CERT=$D/cert/idp.crt
SSP_PIDFILE=$PIDFILE
SSP_SP_ENTITY_ID=$SP_ENTITY_ID
SSP_SP_ACS=$SP_ACS
SSP_ADMIN_PASSWORD=$ADMIN_PASSWORD
ENV
echo "SimpleSAMLphp IdP ready (apache pid $(cat "$PIDFILE"), $SSP_WORKERS prefork workers)"
echo "IdP metadata: $base/saml2/idp/metadata.php"
echo "export BENCH_DIR=$BENCH_DIR   # env: $BENCH_DIR/ssp.env"
cat "$BENCH_DIR/ssp.env"
