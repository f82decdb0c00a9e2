#!/usr/bin/env bash
# Replication on this machine, with deploy/local's cluster and defaults (three coord nodes, three
# brokers, min.insync.replicas=2; release builds; fixed local ports, so nothing else may run a
# cluster meanwhile), driven by kafka-load (librdkafka):
#
#   throughput  100-byte and 1 KiB records, 3 partitions: acks=1 on replication factor 1 against
#               acks=all on replication factor 3, alternating ROUNDS times (the machine is noisy)
#   latency     end-to-end latency at each rate of LATENCY_RATES, acks=all, replication factor 3
#   failover    KILLS times: an acks=all producer at 2000 records/s on a one-partition,
#               replication-factor-3 topic; its leader gets SIGKILL; the longest stretch without an
#               acknowledgement is the write outage; the broker is started again before the next.
#               Then STOPS times the same with SIGTERM (controlled shutdown).
#
# Every throughput run also reports the servers' CPU time (coord nodes and brokers, or the Kafka
# nodes) per million records, and the end of each peer's phases their peak resident memory
# (VmHWM, summed over the processes).
#
# With PEERS="sluice kafka" the throughput and latency phases then run the same way against
# three Apache Kafka 4.x nodes (scripts/kafka-peer.sh start3: KRaft, each node broker and
# controller, min.insync.replicas=2) on the same machine and disk, after this cluster is stopped.
#
# Knobs: PEERS (default "sluice"), PHASES (default "throughput latency failover"), RECORDS_SMALL (default 1000000),
# RECORDS_LARGE (default 200000), ROUNDS (default 2), LATENCY_RATES (default "1000 10000"),
# LATENCY_DURATION (default 10), KILLS (default 10), STOPS (default 5), SKIP_BUILD=1,
# BENCH_DIR (default a new /tmp/sluice-bench-replication.XXXXXX, kept for the logs and
# results.jsonl). Everything started is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
PHASES=${PHASES:-"throughput latency failover"}
PEERS=${PEERS:-sluice}
KAFKA_PIDS=()
RECORDS_SMALL=${RECORDS_SMALL:-1000000}
RECORDS_LARGE=${RECORDS_LARGE:-200000}
ROUNDS=${ROUNDS:-2}
LATENCY_RATES=${LATENCY_RATES:-"1000 10000"}
LATENCY_DURATION=${LATENCY_DURATION:-10}
KILLS=${KILLS:-10}
STOPS=${STOPS:-5}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/sluice-bench-replication.XXXXXX)}
export STATE_DIR=$BENCH_DIR/state
BOOT=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
RESULTS=$BENCH_DIR/results.jsonl
CLUSTER="$ROOT/deploy/local/cluster.sh"

log() { printf '%s\n' "$*" >&2; }
cleanup() {
    SKIP_BUILD=1 BIN_DIR=$BIN "$CLUSTER" down >/dev/null 2>&1 || true
    stop_kafka
    rm -rf "$STATE_DIR" "$BENCH_DIR/kafka"
}
stop_kafka() {
    [ ${#KAFKA_PIDS[@]} -gt 0 ] || return 0
    kill "${KAFKA_PIDS[@]}" 2>/dev/null || true
    for p in "${KAFKA_PIDS[@]}"; do
        for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    KAFKA_PIDS=()
}
trap cleanup EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
    log "building (release)..."
    (cd "$ROOT" && cargo build --quiet --release --bins)
fi
load() { "$BIN/kafka-load" "$@" 2>>"$BENCH_DIR/kafka-load.log" | tee -a "$RESULTS"; }
SERVER_PIDS=""
server_pids() { # peer -> comma-separated pids of the servers
    if [ "$1" = sluice ]; then
        cat "$STATE_DIR"/coord-*.pid "$STATE_DIR"/broker-*.pid | paste -sd, -
    else
        printf '%s\n' "${KAFKA_PIDS[@]}" | paste -sd, -
    fi
}
cpu_per_million() { # JSON of a produce run on stdin -> servers' CPU seconds per million records
    python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print(round(sum(r['cpu']['servers_s'].values())/max(r['records'],1)*1e6, 2))"
}
hwm_mib() { # comma-separated pids -> summed VmHWM in MiB
    local total=0 p
    for p in ${1//,/ }; do
        total=$((total + $(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    python3 -c "print(round($total/1024, 1))"
}
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())$1)"; }

leader_of() { # topic -> broker id leading partition 0
    "$BIN/kafka-topics" --bootstrap-server "$BOOT" --describe --topic "$1" 2>/dev/null |
        grep -o 'Leader: [0-9-]*' | head -1 | cut -d' ' -f2
}
isr_full() {
    "$BIN/kafka-topics" --bootstrap-server "$BOOT" --describe --topic "$1" 2>/dev/null |
        grep -q 'Isr: [0-9],[0-9],[0-9]'
}
wait_isr_full() {
    for _ in $(seq 600); do isr_full "$1" && return 0; sleep 0.1; done
    log "ISR of $1 never full again"; return 1
}

SUMMARY=()
phases() { # peer
SERVER_PIDS=$(server_pids "$1")
for phase in $PHASES; do
    case $phase in
    throughput)
        load create-topic --bootstrap-server "$BOOT" --topic rf1 --partitions 3 --replication-factor 1 >/dev/null
        load create-topic --bootstrap-server "$BOOT" --topic rf3 --partitions 3 --replication-factor 3 >/dev/null
        for size in 100 1024; do
            n=$RECORDS_SMALL; [ "$size" = 1024 ] && n=$RECORDS_LARGE
            for r in $(seq "$ROUNDS"); do
                j1=$(load produce --bootstrap-server "$BOOT" --topic rf1 --records "$n" --record-size "$size" --acks 1 --cpu-pids "$SERVER_PIDS")
                j3=$(load produce --bootstrap-server "$BOOT" --topic rf3 --records "$n" --record-size "$size" --acks all --cpu-pids "$SERVER_PIDS")
                one=$(echo "$j1" | field "['records_per_s']")
                all=$(echo "$j3" | field "['records_per_s']")
                pct=$(python3 -c "print(round(100*$all/$one))")
                SUMMARY+=("[$1] throughput ${size} B round $r: acks=1 rf=1 ${one%.*} rec/s ($(echo "$j1" | cpu_per_million) server CPU-s per million), acks=all rf=3 ${all%.*} rec/s ($(echo "$j3" | cpu_per_million) CPU-s per million) (${pct}%)")
                log "${SUMMARY[-1]}"
            done
        done
        ;;
    latency)
        load create-topic --bootstrap-server "$BOOT" --topic lat3 --partitions 1 --replication-factor 3 >/dev/null
        for rate in $LATENCY_RATES; do
            line=$(load latency --bootstrap-server "$BOOT" --topic lat3 --acks all --rate "$rate" --duration "$LATENCY_DURATION")
            p50=$(echo "$line" | field "['p50_ms']")
            p99=$(echo "$line" | field "['p99_ms']")
            SUMMARY+=("[$1] latency acks=all rf=3 at $rate rec/s: p50 $p50 ms, p99 $p99 ms")
            log "${SUMMARY[-1]}"
        done
        ;;
    failover)
        if [ "$1" != sluice ]; then log "failover: measured on this project's cluster only"; continue; fi
        load create-topic --bootstrap-server "$BOOT" --topic fo --partitions 1 --replication-factor 3 >/dev/null
        wait_isr_full fo
        for kind in KILL TERM; do
            count=$KILLS; [ $kind = TERM ] && count=$STOPS
            gaps=()
            for i in $(seq "$count"); do
                wait_isr_full fo
                leader=$(leader_of fo)
                load produce --bootstrap-server "$BOOT" --topic fo --acks all --rate 2000 --duration 10 >"$BENCH_DIR/fo-$kind-$i.json" &
                producer=$!
                sleep 4
                kill -$kind "$(cat "$STATE_DIR/broker-$leader.pid")"
                wait $producer || true
                gap=$(field "['longest_ack_gap_ms']" <"$BENCH_DIR/fo-$kind-$i.json")
                errs=$(field "['delivery_errors']" <"$BENCH_DIR/fo-$kind-$i.json")
                gaps+=("$gap")
                log "SIG$kind of leader $leader: longest acks=all outage ${gap} ms, delivery errors $errs"
                for _ in $(seq 100); do kill -0 "$(cat "$STATE_DIR/broker-$leader.pid")" 2>/dev/null || break; sleep 0.1; done
                SKIP_BUILD=1 BIN_DIR=$BIN "$CLUSTER" up >/dev/null
            done
            stats=$(printf '%s\n' "${gaps[@]}" | python3 -c "import sys,statistics as s; v=[float(x) for x in sys.stdin]; print(f'median {s.median(v):.0f} ms, max {max(v):.0f} ms over {len(v)}')")
            SUMMARY+=("[$1] failover SIG$kind of the leader: acks=all write outage $stats")
            log "${SUMMARY[-1]}"
        done
        ;;
    esac
done
case " $PHASES " in *" failover "*) ;; *)
    SUMMARY+=("[$1] servers' peak resident memory (VmHWM, summed over $(echo "$SERVER_PIDS" | tr ',' '\n' | wc -l) processes): $(hwm_mib "$SERVER_PIDS") MiB")
    log "${SUMMARY[-1]}" ;;
esac
}

for peer in $PEERS; do
    case $peer in
    sluice)
        BOOT=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
        SKIP_BUILD=1 BIN_DIR=$BIN "$CLUSTER" up >/dev/null
        phases sluice
        SKIP_BUILD=1 BIN_DIR=$BIN "$CLUSTER" down >/dev/null
        ;;
    kafka)
        BOOT=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094
        mapfile -t KAFKA_PIDS < <("$ROOT/scripts/kafka-peer.sh" start3 "$BENCH_DIR/kafka" 19092)
        ready=""
        for _ in $(seq 120); do
            if "$BIN/kafka-load" create-topic --bootstrap-server "$BOOT" --topic ready --partitions 1 \
                --replication-factor 3 >/dev/null 2>&1; then ready=1; break; fi
            sleep 1
        done
        [ -n "$ready" ] || { log "Apache Kafka did not come up (logs in $BENCH_DIR/kafka)"; exit 1; }
        phases kafka
        stop_kafka
        ;;
    *) log "unknown peer $peer"; exit 2 ;;
    esac
done
echo "== summary ($BENCH_DIR)"
printf '%s\n' "${SUMMARY[@]}"
