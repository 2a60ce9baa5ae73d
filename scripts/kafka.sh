#!/usr/bin/env bash
# Local Apache Kafka (one KRaft broker) for the demo and the tests.
#   scripts/kafka.sh install|start|status|stop|topics
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_DIR (var/kafka-$KAFKA_PORT).
# start formats the storage on first use, waits until the broker answers, and creates the
# contract's topics; start when running and stop when stopped are no-ops.
# A SASL_SSL listener besides the plaintext one (MIMAMORI_KAFKA_SECURITY=sasl_ssl; README "Security"):
#   KAFKA_SASL_SSL_PORT      its port on 127.0.0.1
#   KAFKA_SSL_KEYSTORE       PKCS#12 file with the broker's key and certificate (for 127.0.0.1)
#   KAFKA_SSL_KEYSTORE_PASSWORD
#   KAFKA_SASL_USERS         USER:PASSWORD[,USER:PASSWORD...]: SCRAM-SHA-512 and SCRAM-SHA-256
#                            credentials written when the storage is formatted (first start), and
#                            PLAIN logins of the listener
# The plaintext listener stays on KAFKA_PORT (loopback) for the broker's own use and the topics step.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
DIR="${KAFKA_DIR:-$ROOT/var/kafka-$PORT}"
LIBS="$ROOT/services/kafka/libs"
PIDFILE="$DIR/broker.pid"
PYTHON="${MIMAMORI_PYTHON:-$ROOT/.venv/bin/python}"

install() {
  local stamp="$LIBS/.pom.sha256" want
  want="$(sha256sum "$ROOT/services/kafka/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  rm -rf "$LIBS"
  mvn -q -B -f "$ROOT/services/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime
  echo "$want" > "$stamp"
}

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
  install
  if running; then echo "kafka: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; topics; return 0; fi
  mkdir -p "$DIR/data"
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DIR/data#g" \
    "$ROOT/services/kafka/server.properties.in" > "$DIR/server.properties"
  local scram=()
  if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then sasl_ssl_listener scram; fi
  if [[ ! -f "$DIR/data/meta.properties" ]]; then
    java -cp "$LIBS/*" kafka.tools.StorageTool format -t "$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)" \
      -c "$DIR/server.properties" "${scram[@]}" > "$DIR/format.log" 2>&1
  fi
  local started=$SECONDS
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/services/kafka/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" > "$DIR/broker.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 240); do
    if answers; then break; fi
    if ! running; then echo "kafka: broker exited; see $DIR/broker.log" >&2; tail -20 "$DIR/broker.log" >&2; exit 1; fi
    sleep 0.25
  done
  answers || { echo "kafka: broker did not answer on 127.0.0.1:$PORT within 60s" >&2; exit 1; }
  topics
  echo "kafka: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE")), ready in $((SECONDS - started))s"
}

# Adds the SASL_SSL listener to server.properties; fills the array named $1 with the --add-scram
# arguments of the storage format.
sasl_ssl_listener() {
  local -n args="$1"
  : "${KAFKA_SSL_KEYSTORE:?KAFKA_SSL_KEYSTORE is needed with KAFKA_SASL_SSL_PORT}"
  : "${KAFKA_SSL_KEYSTORE_PASSWORD:?KAFKA_SSL_KEYSTORE_PASSWORD is needed with KAFKA_SASL_SSL_PORT}"
  : "${KAFKA_SASL_USERS:?KAFKA_SASL_USERS (USER:PASSWORD,...) is needed with KAFKA_SASL_SSL_PORT}"
  local plain="org.apache.kafka.common.security.plain.PlainLoginModule required" entry user password
  IFS=',' read -ra entries <<< "$KAFKA_SASL_USERS"
  for entry in "${entries[@]}"; do
    user="${entry%%:*}"; password="${entry#*:}"
    args+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
           --add-scram "SCRAM-SHA-256=[name=$user,password=$password]")
    plain+=" user_$user=\"$password\""
  done
  sed -i -e "s#^listeners=PLAINTEXT://127.0.0.1:$PORT,#listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,#" \
    -e "s#^advertised.listeners=PLAINTEXT://127.0.0.1:$PORT\$#&,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT#" \
    -e "s#^listener.security.protocol.map=.*#&,SASL_SSL:SASL_SSL#" "$DIR/server.properties"
  cat >> "$DIR/server.properties" <<PROPERTIES
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain;
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_SSL_KEYSTORE
ssl.keystore.password=$KAFKA_SSL_KEYSTORE_PASSWORD
ssl.client.auth=none
PROPERTIES
  chmod 600 "$DIR/server.properties"
}

topics() {
  "$PYTHON" -m pipeline.io.kafka_admin --bootstrap "127.0.0.1:$PORT"
}

status() {
  if running && answers; then echo "kafka: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
  echo "kafka: stopped (127.0.0.1:$PORT)"; return 3
}

stop() {
  if ! running; then rm -f "$PIDFILE"; echo "kafka: stopped (127.0.0.1:$PORT)"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "kafka: stopped (127.0.0.1:$PORT)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  topics) topics ;;
  *) echo "usage: $0 install|start|status|stop|topics" >&2; exit 2 ;;
esac
