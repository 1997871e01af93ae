#!/usr/bin/env bash
# Installs the benchmark's own peers (Debian packages): SimpleSAMLphp 1.19 with Apache +
# mod_php + php-ldap/xml/mbstring, OpenLDAP slapd + client tools, Redis, xmlsec1.
# Idempotent: packages already present are left alone; when something is installed, the
# system apache2 / slapd services the postinst scripts may have started are stopped right
# away (the benchmark starts its own instances on free ports).
set -euo pipefail
# php-xml (DOM) and php-mbstring are required by SimpleSAMLphp but not pulled in by Debian's
# package; without php-xml every SAML page fails with 'Class "DOMDocument" not found'.
pkgs=(simplesamlphp apache2 libapache2-mod-php php-ldap php-xml php-mbstring
      slapd ldap-utils redis-server xmlsec1 openssl curl python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  # Debian must not build its own slapd database: scripts/bench/slapd.sh generates its own.
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Stop only the system services the postinst may have started, right after installing.
  $SUDO apachectl -k stop 2>/dev/null || true
  [ -f /run/slapd/slapd.pid ] && $SUDO kill "$(cat /run/slapd/slapd.pid)" 2>/dev/null || true
fi
echo "bench dependencies ready"
