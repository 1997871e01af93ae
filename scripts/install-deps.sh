#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian packages): OpenLDAP slapd,
# Apache with mod_auth_mellon (a strict SAML SP), xmlsec1 (independent signature checks),
# Redis and redis-sentinel (a package of its own in Debian; tests/mfa_farm.rs runs a
# failover), and Debian's Chromium + ChromeDriver (tests/browser_story.rs drives a real
# headless browser; fonts-dejavu-core gives its screenshots legible text), and axe-core from
# the npm registry at the exact version tests/axe/package-lock.json pins (tests/portal_browser.rs
# runs it on the portal pages; tests/axe/node_modules is ignored by git). Idempotent: packages
# already present are left alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install slapd ldap-utils apache2 libapache2-mod-auth-mellon xmlsec1 redis-server redis-sentinel openssl curl \
  pkg-config libssl-dev ca-certificates chromium chromium-driver fonts-dejavu-core
# Node's own npm when Node is already there (a NodeSource build bundles it); Debian's otherwise.
command -v npm >/dev/null || apt_install nodejs npm
AXE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/axe" && pwd)"
want="$(sed -n 's/.*"axe-core": "\(.*\)".*/\1/p' "$AXE_DIR/package.json")"
have="$(sed -n 's/^  "version": "\(.*\)".*/\1/p' "$AXE_DIR/node_modules/axe-core/package.json" 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  echo "installing axe-core $want"
  npm ci --prefix "$AXE_DIR" --no-audit --no-fund --ignore-scripts
fi
echo "dependencies ready"
