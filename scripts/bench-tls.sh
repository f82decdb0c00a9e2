#!/usr/bin/env bash
# TLS against plaintext on one broker in the same run: one coord node and one broker (release
# builds, fresh data in a temp directory) with a PLAINTEXT and an SSL listener, certificates
# made with `openssl` (RSA 2048, a test CA), driven by kafka-load (librdkafka; OpenSSL on the
# client side) through:
#
#   throughput  for 100-byte and 1 KiB records: produce RECORDS_<size> records with acks=1 over
#               each listener (alternating, ROUNDS times), then consume them, on a topic per run
#   storm       end-to-end latency of one established TLS client (producer + consumer in
#               kafka-load, STORM_RATE records/s, linger.ms=0) for STORM_DURATION s; from
#               STORM_AFTER s on, scripts/tls-storm.py opens STORM_CONNECTIONS TLS connections
#               (full handshake + ApiVersions each, at most STORM_CONCURRENCY at once); the
#               report gives p99 per second and p99 before vs during the storm
#
# Knobs (environment): RECORDS_100 (default 1000000), RECORDS_1024 (default 200000), ROUNDS
# (default 2), STORM_RATE (1000), STORM_DURATION (30), STORM_AFTER (10), STORM_FOR (10, the
# seconds counted as "during"), STORM_CONNECTIONS (1000), STORM_CONCURRENCY (100), BENCH_DIR
# (default a new /tmp/sluice-bench-tls.XXXXXX, kept for logs and results.jsonl; partition data
# is deleted at the end), SKIP_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
RECORDS_100=${RECORDS_100:-1000000}
RECORDS_1024=${RECORDS_1024:-200000}
ROUNDS=${ROUNDS:-2}
STORM_RATE=${STORM_RATE:-1000}
STORM_DURATION=${STORM_DURATION:-30}
STORM_AFTER=${STORM_AFTER:-10}
STORM_FOR=${STORM_FOR:-10}
STORM_CONNECTIONS=${STORM_CONNECTIONS:-1000}
STORM_CONCURRENCY=${STORM_CONCURRENCY:-100}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/sluice-bench-tls.XXXXXX)}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RESULTS="$BENCH_DIR/results.jsonl"
LOAD="$BIN/kafka-load"
log() { printf '%s\n' "$*" >&2; }
die() { log "bench-tls: $*"; exit 1; }

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$BENCH_DIR/kafka-logs" "$BENCH_DIR/zk"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release -j 2 -p sluice-coord -p sluice-broker -p sluice-bench --bins)
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port_from() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 300); do port_free "$1" || return 0; sleep 0.1; done; return 1; }

# Certificates: a CA and the broker's key + certificate (names localhost and 127.0.0.1).
cd "$BENCH_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=broker" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >broker.ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 30 -extfile broker.ext 2>/dev/null
cat broker.key broker.pem ca.pem >broker-bundle.pem

COORD_PORT=$(free_port_from 28181)
PLAIN_PORT=$(free_port_from 29092)
SSL_PORT=$(free_port_from $((PLAIN_PORT + 1)))
mkdir -p zk kafka-logs
echo 1 >zk/myid
cat >zookeeper.properties <<EOF
dataDir=$BENCH_DIR/zk
clientPort=$COORD_PORT
clientPortAddress=127.0.0.1
tickTime=2000
initLimit=5
syncLimit=2
maxClientCnxns=0
EOF
cat >server.properties <<EOF
broker.id=1
listeners=PLAINTEXT://127.0.0.1:$PLAIN_PORT,SSL://127.0.0.1:$SSL_PORT
log.dirs=$BENCH_DIR/kafka-logs
num.partitions=1
offsets.topic.replication.factor=1
zookeeper.connect=127.0.0.1:$COORD_PORT
group.initial.rebalance.delay.ms=0
ssl.keystore.type=PEM
ssl.keystore.location=$BENCH_DIR/broker-bundle.pem
ssl.truststore.type=PEM
ssl.truststore.location=$BENCH_DIR/ca.pem
EOF
"$BIN/coord" zookeeper.properties >coord.log 2>&1 &
PIDS+=($!)
wait_port "$COORD_PORT" || die "coord did not start"
"$BIN/broker" server.properties >broker.log 2>&1 &
BROKER_PID=$!
PIDS+=($BROKER_PID)
wait_port "$PLAIN_PORT" || die "broker did not start"
log "broker pid $BROKER_PID: PLAINTEXT 127.0.0.1:$PLAIN_PORT, SSL 127.0.0.1:$SSL_PORT, data in $BENCH_DIR"

TLS=(--client-property security.protocol=ssl --client-property "ssl.ca.location=$BENCH_DIR/ca.pem")

load() { # name args...
    local name=$1 json rc=0
    shift
    log "+ kafka-load $*"
    json=$("$LOAD" "$@" --cpu-pids "$BROKER_PID") || rc=$?
    [ "$rc" -le 1 ] && [ -n "$json" ] || die "kafka-load $name failed (exit code $rc)"
    echo "$json" | jq -c --arg name "$name" '{name: $name} + .' | tee -a "$RESULTS" >/dev/null
    echo "$json"
}

for size in 100 1024; do
    records_var="RECORDS_$size"
    records=${!records_var}
    for round in $(seq "$ROUNDS"); do
        for proto in plaintext ssl; do
            topic="bench-$proto-$size-$round"
            if [ "$proto" = ssl ]; then bootstrap="127.0.0.1:$SSL_PORT" extra=("${TLS[@]}"); else bootstrap="127.0.0.1:$PLAIN_PORT" extra=(); fi
            load "$proto-$size-produce" produce --bootstrap-server "$bootstrap" --topic "$topic" "${extra[@]}" \
                --partitions 1 --acks 1 --record-size "$size" --records "$records" --linger-ms 5 --batch-size 1000000 >/dev/null
            load "$proto-$size-consume" consume --bootstrap-server "$bootstrap" --topic "$topic" "${extra[@]}" \
                --records "$records" >/dev/null
        done
    done
done

# The storm: started STORM_AFTER s into the measured part of the latency run (kafka-load takes
# about 2 s to create the topic and warm up first).
(
    sleep $((STORM_AFTER + 2))
    /usr/bin/python3 "$ROOT/scripts/tls-storm.py" "127.0.0.1:$SSL_PORT" "$BENCH_DIR/ca.pem" \
        "$STORM_CONNECTIONS" "$STORM_CONCURRENCY" >"$BENCH_DIR/storm.json"
) &
STORM_PID=$!
PIDS+=($STORM_PID)
load storm-latency latency --bootstrap-server "127.0.0.1:$SSL_PORT" --topic bench-storm "${TLS[@]}" \
    --partitions 1 --acks 1 --rate "$STORM_RATE" --duration "$STORM_DURATION" \
    --burst-rate "$STORM_RATE" --burst-after "$STORM_AFTER" --burst-for "$STORM_FOR" >/dev/null
wait "$STORM_PID" || die "the storm failed"
jq -c '{name: "storm"} + .' "$BENCH_DIR/storm.json" | tee -a "$RESULTS" >/dev/null

log "--- summary ($RESULTS)"
jq -r 'select(.records_per_s != null) | "\(.name)\t\(.records_per_s | floor) records/s\t\(.mb_per_s * 10 | floor / 10) MB/s\tCPU s: broker \(.cpu.servers_s | to_entries[0].value * 100 | floor / 100), client \(.cpu.client_s)"' "$RESULTS" >&2
jq -r 'select(.name == "storm-latency") | "latency p99 before the storm \(.burst.before_p99_ms) ms, during \(.burst.during_p99_ms) ms; per second: \(.burst.timeline | map("\(.second):\(.p99_ms * 10 | floor / 10)") | join(" "))"' "$RESULTS" >&2
jq -c 'select(.name == "storm")' "$RESULTS" >&2
