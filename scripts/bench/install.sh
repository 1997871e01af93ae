#!/usr/bin/env bash
# Installs the benchmark's own peers (Debian packages): SimpleSAMLphp 1.19 with Apache +
# mod_php + php-ldap/xml/mbstring, OpenLDAP slapd + client tools, Redis, xmlsec1, haproxy (the
# farm's load balancer) and perf (the profile of one sign-in).
# Idempotent: packages already present are left alone; when something is installed, the
# system apache2 / slapd services the postinst scripts may have started are stopped right
# away (the benchmark starts its own instances on free ports).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
# php-xml (DOM) and php-mbstring are required by SimpleSAMLphp but not pulled in by Debian's
# package; without php-xml every SAML page fails with 'Class "DOMDocument" not found'.
apt_install simplesamlphp apache2 libapache2-mod-php php-ldap php-xml php-mbstring \
  slapd ldap-utils redis-server xmlsec1 openssl curl python3 haproxy linux-perf
echo "bench dependencies ready"
