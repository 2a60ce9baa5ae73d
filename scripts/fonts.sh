#!/usr/bin/env bash
# The Japanese font of the monthly report's charts (Debian's fonts-ipaexfont-gothic); without it
# Japanese labels would be drawn as empty boxes. Needs root or passwordless sudo, like
# scripts/clickhouse-server.sh. Cheap when the font is there.
#   scripts/fonts.sh install|status
set -euo pipefail
PACKAGE=fonts-ipaexfont-gothic
FONT=/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf

install() {
  [[ -f "$FONT" ]] && return 0
  local sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends "$PACKAGE" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends "$PACKAGE" >/dev/null
  }
  [[ -f "$FONT" ]] || { echo "fonts.sh: $PACKAGE installed but $FONT is missing" >&2; exit 1; }
}

status() {
  if [[ -f "$FONT" ]]; then echo "fonts: $FONT"; return 0; fi
  echo "fonts: $PACKAGE not installed"; return 3
}

case "${1:-}" in
  install) install ;;
  status) status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
