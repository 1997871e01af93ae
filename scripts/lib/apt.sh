# Sourced by the install scripts: `apt_install PKG...` installs the Debian packages that are
# missing (idempotent). Debian must not build its own slapd database (every caller writes
# its own config), and the system apache2 / slapd services a postinst may start are stopped
# right after installing: tests and benchmarks start their own instances on free ports.
apt_install() {
  local missing=() p SUDO=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $SUDO apachectl -k stop 2>/dev/null || true
  if [ -f /run/slapd/slapd.pid ]; then $SUDO kill "$(cat /run/slapd/slapd.pid)" 2>/dev/null || true; fi
}
