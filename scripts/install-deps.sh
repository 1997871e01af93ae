#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian packages): OpenLDAP slapd,
# Apache with mod_auth_mellon (a strict SAML SP), xmlsec1 (independent signature checks),
# Redis, and Debian's Chromium + ChromeDriver (tests/browser_story.rs drives a real headless
# browser; fonts-dejavu-core gives its screenshots legible text). Idempotent: packages
# already present are left alone.
set -euo pipefail
pkgs=(slapd ldap-utils apache2 libapache2-mod-auth-mellon xmlsec1 redis-server openssl curl pkg-config libssl-dev ca-certificates
      chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  # Debian must not build its own slapd database: our tests generate their own config.
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's postinst may have started the system apache2 / slapd services; the tests start
  # their own instances on free ports. Stop only the system services, right after install.
  $SUDO apachectl -k stop 2>/dev/null || true
  [ -f /run/slapd/slapd.pid ] && $SUDO kill "$(cat /run/slapd/slapd.pid)" 2>/dev/null || true
fi
echo "dependencies ready"
