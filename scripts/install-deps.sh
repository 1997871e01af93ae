#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian packages): OpenLDAP slapd,
# Apache with mod_auth_mellon (a strict SAML SP), xmlsec1 (independent signature checks),
# Redis and redis-sentinel (a package of its own in Debian; tests/mfa_farm.rs runs a
# failover), and Debian's Chromium + ChromeDriver (tests/browser_story.rs drives a real
# headless browser; fonts-dejavu-core gives its screenshots legible text). Idempotent: packages
# already present are left alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install slapd ldap-utils apache2 libapache2-mod-auth-mellon xmlsec1 redis-server redis-sentinel openssl curl \
  pkg-config libssl-dev ca-certificates chromium chromium-driver fonts-dejavu-core
echo "dependencies ready"
