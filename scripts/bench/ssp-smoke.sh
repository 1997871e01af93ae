#!/usr/bin/env bash
# Proves the benchmark's SimpleSAMLphp IdP works end to end with curl and xmlsec1 only: an
# SP-initiated login as a bench user, whose signed Response and Assertion are verified
# against the IdP certificate and whose InResponseTo must match the request ID.
#
#   BENCH_DIR=DIR scripts/bench/ssp-smoke.sh            # one login; prints OK or the failure
#   SMOKE_LOGINS=50 BENCH_DIR=DIR scripts/bench/ssp-smoke.sh
#       # 50 sequential logins (fresh cookie jar each, users bench00001..), then wall time and
#       # Apache CPU per login (scripts/bench/ssp.sh cpu before/after) and slapd's
#
# Needs $BENCH_DIR/ssp.env (scripts/bench/ssp.sh start). SMOKE_USER overrides the user of a
# single login; SMOKE_PASSWORD the password (default bench-Pass-1).
#
# ---- The HTTP steps of a SimpleSAMLphp 1.19 SP-initiated login (what a load generator does) ----
# A fresh cookie jar per login; every request goes to 127.0.0.1:PORT over plain http.
#
# 1. GET  $SSP_SSO_URL?SAMLRequest=<req>&RelayState=<rs>      (…/simplesaml/saml2/idp/SSOService.php)
#      <req> = urlencode(base64(raw DEFLATE (RFC 1951, no zlib header) of the AuthnRequest XML)).
#      AuthnRequest: ID="_<hex>", Version="2.0", IssueInstant (UTC, …Z), Destination=$SSP_SSO_URL,
#      AssertionConsumerServiceURL=$SSP_SP_ACS, ProtocolBinding=HTTP-POST,
#      <saml:Issuer>$SSP_SP_ENTITY_ID</saml:Issuer>. Unsigned (the SP metadata does not require
#      signed requests). RelayState optional (≤ 80 bytes).
#    → 302 Found, Location: $SSP_BASE/module.php/core/loginuserpass.php?AuthState=<state>
#      Set-Cookie: SimpleSAML=<php session id>; path=/; HttpOnly
#      <state> (URL-encoded in Location) looks like
#      "_<hex>:http://127.0.0.1:PORT/simplesaml/saml2/idp/SSOService.php?spentityid=…&RelayState=…&cookieTime=…".
#      The state itself is stored in the PHP session: steps 2 and 3 MUST send the SimpleSAML cookie.
# 2. GET  the Location (Cookie: SimpleSAML=…)
#    → 200 text/html, the login form: <form action="?" method="post" name="f"> with inputs
#      name="username", name="password" and a hidden name="AuthState" value="<state>"
#      (HTML-escaped: &amp; must be unescaped). Set-Cookie: SimpleSAML again (same value).
# 3. POST $SSP_BASE/module.php/core/loginuserpass.php              (form action "?" = same path, no query)
#      Content-Type: application/x-www-form-urlencoded
#      body: AuthState=<state>&username=bench00001&password=bench-Pass-1   (Cookie: SimpleSAML=…)
#      Server side: ldap connect, bind as svc-tessera, search (|(sAMAccountName=u)(userPrincipalName=u))
#      under dc=corp,dc=example, bind as the user, read uid/sAMAccountName/userPrincipalName/mail/
#      displayName/memberOf, map to upn/mail/groups, build and sign Assertion then Response.
#    → 200 text/html directly (no redirect): the auto-POST page,
#      <form method="post" action="$SSP_SP_ACS"> with hidden inputs name="SAMLResponse"
#      (base64 of the Response XML, one line) and name="RelayState" (if one was sent).
#      Set-Cookie: SimpleSAMLAuthToken=_<hex>; path=/; HttpOnly  (the SSO session).
#      A wrong password instead returns 200 with the login form again (no SAMLResponse).
# 4. (SP side, not served by anyone here) base64-decode SAMLResponse: samlp:Response with
#      InResponseTo=<request ID>, Destination=$SSP_SP_ACS, an enveloped ds:Signature
#      (exc-c14n, RSA-SHA256, SHA-256 digest, Reference URI="#<Response ID>") as the 2nd child,
#      and a saml:Assertion signed the same way (Reference to the Assertion ID); NameID
#      (unspecified format) = userPrincipalName; attributes upn, mail, groups (memberOf DNs).
# Static assets (post.js, css) linked from the pages are not needed and not fetched.
set -euo pipefail

die() { echo "ssp-smoke: FAIL: $*" >&2; exit 1; }
[ -n "${BENCH_DIR:-}" ] || die "set BENCH_DIR (the directory scripts/bench/ssp.sh start used)"
[ -f "$BENCH_DIR/ssp.env" ] || die "$BENCH_DIR/ssp.env missing: run scripts/bench/ssp.sh start"
set -a; . "$BENCH_DIR/ssp.env"; [ -f "$BENCH_DIR/slapd.env" ] && . "$BENCH_DIR/slapd.env"; set +a
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
N="${SMOKE_LOGINS:-1}"
PASSWORD="${SMOKE_PASSWORD:-bench-Pass-1}"
for t in curl xmlsec1 python3; do command -v "$t" >/dev/null || die "$t missing: run scripts/bench/install.sh"; done

W="$(mktemp -d /tmp/ssp-smoke.XXXXXX)"
trap 'rm -rf "$W"' EXIT

# One full login as $1; leaves the decoded Response in $W/response.xml.
login() {
  local user="$1" rid query loc code
  rm -f "$W"/*
  # The AuthnRequest, Redirect-binding encoded.
  python3 - "$SSP_SSO_URL" "$SSP_SP_ACS" "$SSP_SP_ENTITY_ID" > "$W/req" <<'PY'
import base64, datetime, secrets, sys, urllib.parse, zlib
sso, acs, sp = sys.argv[1:4]
rid = "_" + secrets.token_hex(16)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
xml = ('<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
       'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
       f'ID="{rid}" Version="2.0" IssueInstant="{now}" Destination="{sso}" '
       f'AssertionConsumerServiceURL="{acs}" '
       'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
       f'<saml:Issuer>{sp}</saml:Issuer></samlp:AuthnRequest>')
c = zlib.compressobj(9, zlib.DEFLATED, -15)   # raw DEFLATE
print(rid)
print(urllib.parse.quote(base64.b64encode(c.compress(xml.encode()) + c.flush()).decode(), safe=""))
PY
  rid="$(sed -n 1p "$W/req")"; query="$(sed -n 2p "$W/req")"

  # 1. SSOService → 302 to the login page, session cookie set.
  code="$(curl -sS -c "$W/jar" -b "$W/jar" -D "$W/h1" -o "$W/b1" -w '%{http_code}' \
          "$SSP_SSO_URL?SAMLRequest=$query&RelayState=smoke-rs")" || die "step 1: curl failed"
  [ "$code" = 302 ] || die "step 1: SSOService answered $code, not 302 (see $(head -c 300 "$W/b1"))"
  loc="$(sed -n 's/^[Ll]ocation: *//p' "$W/h1" | tr -d '\r')"
  case "$loc" in *"/module.php/core/loginuserpass.php?AuthState="*) ;; *) die "step 1: unexpected Location: $loc";; esac
  grep -qi '^set-cookie: SimpleSAML=' "$W/h1" || die "step 1: no SimpleSAML session cookie"

  # 2. The login form; its hidden AuthState.
  code="$(curl -sS -c "$W/jar" -b "$W/jar" -o "$W/b2" -w '%{http_code}' "$loc")" || die "step 2: curl failed"
  [ "$code" = 200 ] || die "step 2: login page answered $code"
  python3 - "$W/b2" > "$W/authstate" <<'PY' || die "step 2: no AuthState in the login form"
import html, re, sys
m = re.search(r'name="AuthState" value="([^"]*)"', open(sys.argv[1], encoding="utf-8").read())
if not m: sys.exit(1)
print(html.unescape(m.group(1)), end="")
PY
  grep -q 'name="password"' "$W/b2" || die "step 2: no password field in the login form"

  # 3. POST the credentials → the auto-POST page with SAMLResponse.
  code="$(curl -sS -c "$W/jar" -b "$W/jar" -D "$W/h3" -o "$W/b3" -w '%{http_code}' \
          --data-urlencode "AuthState@$W/authstate" --data-urlencode "username=$user" \
          --data-urlencode "password=$PASSWORD" "$SSP_BASE/module.php/core/loginuserpass.php")" \
    || die "step 3: curl failed"
  [ "$code" = 200 ] || die "step 3: login POST answered $code"
  python3 - "$W/b3" "$SSP_SP_ACS" "$W/response.xml" <<'PY' || die "step 3: no auto-POST form with a SAMLResponse (wrong password? see $BENCH_DIR/ssp/logs/simplesamlphp.log)"
import base64, html, re, sys
page, acs, out = sys.argv[1:4]
s = open(page, encoding="utf-8").read()
m = re.search(r'name="SAMLResponse" value="([^"]*)"', s)
if not m or f'action="{acs}"' not in s:
    sys.exit(1)
open(out, "wb").write(base64.b64decode(html.unescape(m.group(1))))
PY
  grep -qi '^set-cookie: SimpleSAMLAuthToken=' "$W/h3" || die "step 3: no SimpleSAMLAuthToken cookie"

  # 4. Check the Response like an SP would: both signatures and InResponseTo.
  xmlsec1 --verify --trusted-pem "$SSP_CERT" --id-attr:ID urn:oasis:names:tc:SAML:2.0:protocol:Response \
    "$W/response.xml" >"$W/v1" 2>&1 || die "Response signature does not verify: $(cat "$W/v1")"
  xmlsec1 --verify --trusted-pem "$SSP_CERT" --id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion \
    --node-xpath "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']" \
    "$W/response.xml" >"$W/v2" 2>&1 || die "Assertion signature does not verify: $(cat "$W/v2")"
  python3 - "$W/response.xml" "$rid" "$user" <<'PY' || die "Response content check failed"
import sys, xml.etree.ElementTree as ET
path, rid, user = sys.argv[1:4]
P = "{urn:oasis:names:tc:SAML:2.0:protocol}"; A = "{urn:oasis:names:tc:SAML:2.0:assertion}"
D = "{http://www.w3.org/2000/09/xmldsig#}"
r = ET.parse(path).getroot()
def fail(msg): print("ssp-smoke: " + msg, file=sys.stderr); sys.exit(1)
if r.tag != P + "Response": fail(f"root is {r.tag}")
if r.get("InResponseTo") != rid: fail(f"InResponseTo {r.get('InResponseTo')!r} != request ID {rid!r}")
st = r.find(f"{P}Status/{P}StatusCode").get("Value")
if not st.endswith(":Success"): fail(f"status {st}")
if r.find(D + "Signature") is None: fail("Response is not signed")
a = r.find(A + "Assertion")
if a is None or a.find(D + "Signature") is None: fail("Assertion missing or not signed")
scd = a.find(f"{A}Subject/{A}SubjectConfirmation/{A}SubjectConfirmationData")
if scd.get("InResponseTo") != rid: fail("SubjectConfirmationData InResponseTo mismatch")
nameid = a.find(f"{A}Subject/{A}NameID").text
want = user if "@" in user else user + "@corp.example"
if nameid.lower() != want.lower(): fail(f"NameID {nameid!r}, expected {want!r}")
attrs = {x.get("Name"): [v.text for v in x.findall(A + "AttributeValue")] for x in a.iter(A + "Attribute")}
if not any(g.startswith("cn=Gateway Users,") for g in attrs.get("groups", [])): fail(f"groups attribute: {attrs.get('groups')}")
PY
}

if [ "$N" -le 1 ]; then
  user="${SMOKE_USER:-bench00001}"
  login "$user"
  echo "OK: $user logged in at $SSP_SSO_URL; Response and Assertion signatures verify against $SSP_CERT; InResponseTo matches"
  exit 0
fi

cpu_slapd() {  # utime+stime of our slapd, ms
  [ -n "${SLAPD_PID:-}" ] && [ -r "/proc/$SLAPD_PID/stat" ] || { echo 0; return; }
  python3 -c "import os,sys; s=open('/proc/$SLAPD_PID/stat').read().rsplit(')',1)[1].split(); print(round((int(s[11])+int(s[12]))*1000/os.sysconf('SC_CLK_TCK')))"
}
a0="$(BENCH_DIR="$BENCH_DIR" "$HERE/ssp.sh" cpu)"; l0="$(cpu_slapd)"; t0="$(date +%s%N)"
for i in $(seq 1 "$N"); do
  login "$(printf 'bench%05d' $(( (i - 1) % ${BENCH_USERS:-10000} + 1 )))"
done
t1="$(date +%s%N)"; a1="$(BENCH_DIR="$BENCH_DIR" "$HERE/ssp.sh" cpu)"; l1="$(cpu_slapd)"
python3 - "$N" "$t0" "$t1" "$a0" "$a1" "$l0" "$l1" <<'PY'
import sys
n, t0, t1, a0, a1, l0, l1 = map(int, sys.argv[1:])
wall = (t1 - t0) / 1e6
print(f"OK: {n} sequential logins verified in {wall/1000:.2f} s ({wall/n:.1f} ms/login wall, curl+python client included)")
print(f"server CPU per login: apache+php {(a1-a0)/n:.1f} ms, slapd {(l1-l0)/n:.1f} ms (10 ms tick resolution, summed over {n})")
PY
