#!/usr/bin/env bash
# Debian's clickhouse-server on loopback for the native-protocol tests.
#   scripts/clickhouse-server.sh install|start|status|stop
# Environment: CLICKHOUSE_PORT (native, 9000), CLICKHOUSE_HTTP_PORT (CLICKHOUSE_PORT+123),
# CLICKHOUSE_DIR (var/clickhouse-server-$CLICKHOUSE_PORT). Idempotent like scripts/kafka.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${CLICKHOUSE_PORT:-9000}"
HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-$((PORT + 123))}"
DIR="${CLICKHOUSE_DIR:-$ROOT/var/clickhouse-server-$PORT}"
PIDFILE="$DIR/server.pid"
BIN=/usr/sbin/clickhouse-server

install() {
  [[ -x "$BIN" ]] && return 0
  local sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q clickhouse-server >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q clickhouse-server >/dev/null
  }
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
answers() { curl -sf "http://127.0.0.1:$HTTP_PORT/ping" >/dev/null 2>&1; }

start() {
  install
  if running; then echo "clickhouse-server: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
  mkdir -p "$DIR"/{data,tmp,log,user_files,format_schemas}
  sed -e "s#@PORT@#$PORT#g" -e "s#@HTTP_PORT@#$HTTP_PORT#g" -e "s#@DIR@#$DIR#g" \
    "$ROOT/services/clickhouse-server/config.xml.in" > "$DIR/config.xml"
  cp "$ROOT/services/clickhouse-server/users.xml" "$DIR/users.xml"
  local started=$SECONDS
  nohup "$BIN" --config-file="$DIR/config.xml" > "$DIR/log/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 240); do
    answers && break
    if ! running; then echo "clickhouse-server: exited; see $DIR/log" >&2; tail -20 "$DIR/log/error.log" "$DIR/log/stdout.log" >&2 || true; exit 1; fi
    sleep 0.25
  done
  answers || { echo "clickhouse-server: no answer on 127.0.0.1:$HTTP_PORT within 60s" >&2; exit 1; }
  echo "clickhouse-server: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE")), ready in $((SECONDS - started))s"
}

status() {
  if running && answers; then echo "clickhouse-server: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
  echo "clickhouse-server: stopped (127.0.0.1:$PORT)"; return 3
}

stop() {
  if ! running; then rm -f "$PIDFILE"; echo "clickhouse-server: stopped (127.0.0.1:$PORT)"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "clickhouse-server: stopped (127.0.0.1:$PORT)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|status|stop" >&2; exit 2 ;;
esac
