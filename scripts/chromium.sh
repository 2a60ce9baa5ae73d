#!/usr/bin/env bash
# Debian's headless browser for the portal's browser tests: chromium and its chromedriver, from
# the distribution's packages (never a downloaded browser). Needs root or passwordless sudo, like
# scripts/clickhouse-server.sh. Cheap when they are there.
#   scripts/chromium.sh install|status
set -euo pipefail
PACKAGES=(chromium chromium-driver)
BROWSER=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

install() {
  [[ -x "$BROWSER" && -x "$DRIVER" ]] && return 0
  local sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "${PACKAGES[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q "${PACKAGES[@]}" >/dev/null
  }
  [[ -x "$BROWSER" && -x "$DRIVER" ]] || { echo "chromium.sh: ${PACKAGES[*]} installed but $BROWSER or $DRIVER is missing" >&2; exit 1; }
}

status() {
  if [[ -x "$BROWSER" && -x "$DRIVER" ]]; then echo "chromium: $BROWSER, $DRIVER"; return 0; fi
  echo "chromium: ${PACKAGES[*]} not installed"; return 3
}

case "${1:-}" in
  install) install ;;
  status) status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
