#!/usr/bin/env bash
# The broker's data path on this machine: one coord node and one broker (release builds, fresh
# data in a temp directory, loopback ports), driven by kafka-load (librdkafka; with WIRE, also its
# wire-level mode) through the standard matrix; with PEERS="sluice kafka", the same matrix is
# then run against Apache Kafka (scripts/kafka-peer.sh: 4.x in KRaft mode, one process, jars
# from Maven Central) on the same disk with the same client and settings:
#
#   small    one partition, acks=1, 100-byte records: produce SMALL_RECORDS, then consume them
#   large    one partition, acks=1, 1 KiB records: produce LARGE_RECORDS, then consume them
#   latency  end-to-end latency (produce -> consume, same process) at each rate of LATENCY_RATES
#            for LATENCY_DURATION s each, one partition, acks=1, linger.ms=0
#   burst    a shipper fleet's burst (a launch, an attack): end-to-end latency at BURST_BASE
#            records/s, BURST_RATE records/s from BURST_AFTER s for BURST_FOR s, then BURST_BASE
#            again until BURST_DURATION s; acks=1, linger.ms=5, 100-byte records; the report
#            gives p99 per second, delivery errors, and the seconds latency took to recover
#            (not in the default PHASES)
#   idle     a fresh broker: VmRSS (/proc/PID/status) before and after creating IDLE_TOPICS
#            topics x IDLE_PARTITIONS partitions, read IDLE_WAIT s after the last one
#   metrics  the cost of the broker's Prometheus endpoint (metrics.prometheus.listener), on a
#            fresh broker holding METRICS_PARTITIONS partitions: `kafka-load scrape` times
#            METRICS_SCRAPES scrapes back to back (p50/p99/max, broker CPU per scrape); then
#            METRICS_ROUNDS rounds of produce for METRICS_DURATION s each (one partition,
#            acks=1, 100-byte records, PRODUCE_ARGS) without a scraper and with one scraping
#            once a second, alternating (ABBA) in the same run, on a topic with retention.bytes and
#            segment.bytes set (and retention checked every second) so the disk stays small;
#            sluice only (not in the default PHASES)
#
# Each cluster start also records the broker's start-up time (process start to its port
# accepting connections), and the end of the data phases its peak resident memory (VmHWM).
#
# Knobs (environment):
#   PEERS             "sluice" (default), or "sluice kafka" to run every phase on both in turn
#   PHASES            phases to run, in order (default "small large latency idle")
#   SMALL_RECORDS     100-byte records produced and consumed (default 1000000; the full run
#                     uses 5000000)
#   LARGE_RECORDS     1 KiB records produced and consumed (default 200000; the full run uses
#                     2000000, about 2 GB of log)
#   LATENCY_RATES     records/s of the latency runs (default "1000 10000")
#   LATENCY_DURATION  measured seconds per latency run (default 10; 1 s of warmup precedes it)
#   BURST_BASE, BURST_RATE, BURST_AFTER, BURST_FOR, BURST_DURATION   (default 1000, 100000,
#                     10, 60, 90)
#   IDLE_TOPICS, IDLE_PARTITIONS, IDLE_WAIT   (default 10, 100, 10)
#   METRICS_PARTITIONS, METRICS_SCRAPES, METRICS_ROUNDS, METRICS_DURATION   (default 1000, 300,
#                     4, 20; an even number of rounds keeps the ABBA order balanced)
#   METRICS_RETENTION_BYTES   retention.bytes of the metrics phase's produce topic (default
#                     67108864; segments of a quarter of it)
#   PRODUCE_ARGS      extra kafka-load produce options for the throughput phases (default
#                     "--linger-ms 5 --batch-size 1000000", librdkafka's own defaults, written out;
#                     "--producers 2" gave the best 100-byte figures on 2 cores, see
#                     docs/benchmarks.md)
#   CONSUME_ARGS      extra kafka-load consume options (default none)
#   WIRE=1            in the small and large phases, also produce and consume with
#                     `kafka-load --wire` (pre-encoded batches, records counted from batch headers:
#                     the client costs almost nothing per record, so the broker's capacity shows),
#                     on a topic of its own (bench-small-wire, bench-large-wire) after the
#                     librdkafka runs; WIRE=only runs the wire mode alone
#   WIRE_PRODUCE_ARGS extra options of the wire produce runs (default none: 1 producer, batches of
#                     up to 1000000 bytes, 5 requests in flight)
#   WIRE_CONSUME_ARGS extra options of the wire consume runs (default none: 4 MiB per partition)
#   PERF=1            also `perf record -g` the broker during the small produce and consume runs
#                     (needs perf); top symbols are printed and the data kept in BENCH_DIR
#   BENCH_DIR         work directory (default a new /tmp/sluice-bench-broker.XXXXXX, kept
#                     afterwards for the logs and results.jsonl)
#   SKIP_BUILD=1      use the release binaries already in target/release
#   KEEP_DATA=1       keep the partition logs and coord data at the end (deleted by default: a
#                     full run writes several GB)
#
# Every kafka-load JSON report is appended to $BENCH_DIR/results.jsonl; the summary at the end
# repeats the figures. Client and broker share the machine's cores. Every process this script
# starts is killed on exit, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
PHASES=${PHASES:-"small large latency idle"}
PEERS=${PEERS:-sluice}
PEER=sluice
SMALL_RECORDS=${SMALL_RECORDS:-1000000}
LARGE_RECORDS=${LARGE_RECORDS:-200000}
LATENCY_RATES=${LATENCY_RATES:-"1000 10000"}
LATENCY_DURATION=${LATENCY_DURATION:-10}
BURST_BASE=${BURST_BASE:-1000}
BURST_RATE=${BURST_RATE:-100000}
BURST_AFTER=${BURST_AFTER:-10}
BURST_FOR=${BURST_FOR:-60}
BURST_DURATION=${BURST_DURATION:-90}
IDLE_TOPICS=${IDLE_TOPICS:-10}
IDLE_PARTITIONS=${IDLE_PARTITIONS:-100}
IDLE_WAIT=${IDLE_WAIT:-10}
METRICS_PARTITIONS=${METRICS_PARTITIONS:-1000}
METRICS_SCRAPES=${METRICS_SCRAPES:-300}
METRICS_ROUNDS=${METRICS_ROUNDS:-4}
METRICS_DURATION=${METRICS_DURATION:-20}
METRICS_RETENTION_BYTES=${METRICS_RETENTION_BYTES:-67108864}
# log.retention.check.interval.ms of the next sluice broker started (the metrics phase lowers it).
RETENTION_CHECK_MS=300000
PRODUCE_ARGS=${PRODUCE_ARGS:-"--linger-ms 5 --batch-size 1000000"}
CONSUME_ARGS=${CONSUME_ARGS:-}
WIRE=${WIRE:-}
WIRE_PRODUCE_ARGS=${WIRE_PRODUCE_ARGS:-}
WIRE_CONSUME_ARGS=${WIRE_CONSUME_ARGS:-}
PERF=${PERF:-}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/sluice-bench-broker.XXXXXX)}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RESULTS="$BENCH_DIR/results.jsonl"
SUMMARY="$BENCH_DIR/summary.txt"
LOAD="$BIN/kafka-load"

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-broker: $*"; exit 1; }

# --- processes ------------------------------------------------------------------------------
# Every process started here is recorded with its start time (field 22 of /proc/PID/stat); the
# trap kills whichever of them is still alive, and the start time guards against killing an
# unrelated process that reused a PID.
STARTED="$BENCH_DIR/started.pids"
: >"$STARTED"
proc_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
remember() { echo "$1 $(proc_start "$1")" >>"$STARTED"; }
cleanup() {
    local pid start
    while read -r pid start; do
        [ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ] &&
            kill -KILL "$pid" 2>/dev/null || true
    done <"$STARTED"
    # The partition data (gigabytes per run) goes; logs and results stay. KEEP_DATA=1 keeps it.
    if [ -z "${KEEP_DATA:-}" ]; then
        rm -rf "$BENCH_DIR"/*/kafka-logs "$BENCH_DIR"/*/zk
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# First free port from $1 on (away from deploy/local's 2181.., 9092.. and the ephemeral range).
free_port_from() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

four_letter() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
        printf '%s' "$2" >&3
        timeout 2 cat <&3 || true
    ) 2>/dev/null | tr -d '\r'
}

wait_until() { # description seconds command...
    local what=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    log "timed out after ${secs}s waiting for $what"
    return 1
}

alive() { kill -0 "$1" 2>/dev/null; }
coord_ok() { alive "$COORD_PID" && four_letter "$COORD_PORT" srvr | grep -q '^Mode: standalone'; }
now_ms() { date +%s%3N; }
broker_ok() { alive "$BROKER_PID" && ! port_free "$BROKER_PORT"; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# Starts the peer under test with fresh data in $BENCH_DIR/<peer>-$1: a one-node coord and one
# broker, or Apache Kafka. Records the broker's start-up time.
start_cluster() {
    # Fresh data every time, also when PEERS names a peer twice (alternating rounds).
    rm -rf "${BENCH_DIR:?}/$PEER-$1"
    if [ "$PEER" = kafka ]; then start_kafka "$@"; else start_sluice "$@"; fi
    jq -cn --arg name "$PEER/startup-$1" --argjson ms "$STARTUP_MS" \
        '{name: $name, mode: "startup", startup_ms: $ms}' >>"$RESULTS"
    log "broker start-up: $STARTUP_MS ms"
}

start_kafka() {
    local dir="$BENCH_DIR/kafka-$1"
    COORD_PID=""
    BROKER_PORT=$(free_port_from 39092)
    "$ROOT/scripts/kafka-peer.sh" classpath >/dev/null
    local t0
    t0=$(now_ms)
    BROKER_PID=$("$ROOT/scripts/kafka-peer.sh" start "$dir" "$BROKER_PORT")
    remember "$BROKER_PID"
    wait_until "Kafka on port $BROKER_PORT" 120 broker_ok || { tail -n 20 "$dir/kafka.log" >&2; die "Kafka did not start"; }
    STARTUP_MS=$(($(now_ms) - t0))
    BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    log "cluster kafka-$1: Apache Kafka pid $BROKER_PID ($BOOTSTRAP), data in $dir"
}

start_sluice() {
    local dir="$BENCH_DIR/sluice-$1"
    mkdir -p "$dir/zk" "$dir/kafka-logs"
    echo 1 >"$dir/zk/myid"
    COORD_PORT=$(free_port_from 28181)
    BROKER_PORT=$(free_port_from 29092)
    METRICS_PORT=$(free_port_from 27071)
    cat >"$dir/zookeeper.properties" <<EOF
dataDir=$dir/zk
clientPort=$COORD_PORT
clientPortAddress=127.0.0.1
tickTime=2000
initLimit=5
syncLimit=2
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
EOF
    cat >"$dir/server.properties" <<EOF
broker.id=1
listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT
metrics.prometheus.listener=127.0.0.1:$METRICS_PORT
delete.topic.enable=true
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=$dir/kafka-logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=$RETENTION_CHECK_MS
zookeeper.connect=127.0.0.1:$COORD_PORT
zookeeper.connection.timeout.ms=6000
group.initial.rebalance.delay.ms=0
EOF
    "$BIN/coord" "$dir/zookeeper.properties" >"$dir/coord.log" 2>&1 &
    COORD_PID=$!
    remember "$COORD_PID"
    wait_until "coord on port $COORD_PORT" 30 coord_ok || { tail -n 20 "$dir/coord.log" >&2; die "coord did not start"; }
    local t0
    t0=$(now_ms)
    "$BIN/broker" "$dir/server.properties" >"$dir/broker.log" 2>&1 &
    BROKER_PID=$!
    remember "$BROKER_PID"
    wait_until "broker on port $BROKER_PORT" 60 broker_ok || { tail -n 20 "$dir/broker.log" >&2; die "broker did not start"; }
    STARTUP_MS=$(($(now_ms) - t0))
    BOOTSTRAP="127.0.0.1:$BROKER_PORT"
    log "cluster sluice-$1: coord pid $COORD_PID (port $COORD_PORT), broker pid $BROKER_PID ($BOOTSTRAP), data in $dir"
}

stop_cluster() {
    local pid
    for pid in $BROKER_PID $COORD_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

machine_state() {
    log "--- $(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg); busiest processes:"
    ps -eo pcpu,rss,comm --sort=-pcpu | head -n 5 >&2
}

# Runs kafka-load with the given arguments, prints the command and its summary, appends the JSON
# report to results.jsonl (tagged with the phase name) and echoes it.
run_load() { # name args...
    local name=$1
    shift
    machine_state
    log "+ kafka-load $*"
    local json rc=0
    json=$("$LOAD" "$@" --cpu-pids "$BROKER_PID") || rc=$?
    # Exit code 1: the run completed with errors (reported in the JSON); 2: it could not run.
    [ "$rc" -le 1 ] && [ -n "$json" ] || die "kafka-load $1 failed (exit code $rc)"
    [ "$rc" -eq 0 ] || log "bench-broker: WARNING: $name completed with errors"
    echo "$json" | jq -c --arg name "$PEER/$name" '{name: $name} + .' >>"$RESULTS"
    echo "$json"
}

perf_start() { # name
    PERF_PID=""
    [ -n "$PERF" ] || return 0
    perf record -F 499 -g -p "$BROKER_PID" -o "$BENCH_DIR/perf-$1.data" >/dev/null 2>"$BENCH_DIR/perf-$1.log" &
    PERF_PID=$!
    remember "$PERF_PID"
    sleep 0.5
}

perf_stop() { # name
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    log "--- perf, broker during $1: top symbols (self time)"
    perf report -i "$BENCH_DIR/perf-$1.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 25 | tee "$BENCH_DIR/perf-$1.top" >&2 || true
}

# --- phases ---------------------------------------------------------------------------------
throughput_phase() { # name record-size records
    local name=$1 size=$2 records=$3 topic="bench-$1"
    if [ "$WIRE" != only ]; then librdkafka_runs "$name" "$size" "$records" "$topic"; fi
    if [ -n "$WIRE" ]; then wire_runs "$name" "$size" "$records" "$topic-wire"; fi
}

librdkafka_runs() { # name record-size records topic
    local name=$1 size=$2 records=$3 topic=$4
    perf_start "$name-produce"
    # shellcheck disable=SC2086 # PRODUCE_ARGS holds several options
    run_load "$name-produce" produce --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        --partitions 1 --acks 1 --record-size "$size" --records "$records" $PRODUCE_ARGS >/dev/null
    perf_stop "$name-produce"
    perf_start "$name-consume"
    # shellcheck disable=SC2086 # CONSUME_ARGS holds several options
    run_load "$name-consume" consume --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        --records "$records" $CONSUME_ARGS >/dev/null
    perf_stop "$name-consume"
}

wire_runs() { # name record-size records topic
    local name=$1 size=$2 records=$3 topic=$4
    perf_start "$name-wire-produce"
    # shellcheck disable=SC2086 # WIRE_PRODUCE_ARGS holds several options
    run_load "$name-wire-produce" produce --wire --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        --partitions 1 --acks 1 --record-size "$size" --records "$records" $WIRE_PRODUCE_ARGS >/dev/null
    perf_stop "$name-wire-produce"
    perf_start "$name-wire-consume"
    # shellcheck disable=SC2086 # WIRE_CONSUME_ARGS holds several options
    run_load "$name-wire-consume" consume --wire --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        --records "$records" --record-size "$size" $WIRE_CONSUME_ARGS >/dev/null
    perf_stop "$name-wire-consume"
}

latency_phase() {
    local rate
    for rate in $LATENCY_RATES; do
        run_load "latency-$rate" latency --bootstrap-server "$BOOTSTRAP" --topic "bench-latency-$rate" \
            --partitions 1 --acks 1 --rate "$rate" --duration "$LATENCY_DURATION" >/dev/null
    done
}

burst_phase() {
    run_load burst latency --bootstrap-server "$BOOTSTRAP" --topic bench-burst \
        --partitions 1 --acks 1 --linger-ms 5 --record-size 100 --rate "$BURST_BASE" \
        --duration "$BURST_DURATION" --burst-rate "$BURST_RATE" --burst-after "$BURST_AFTER" \
        --burst-for "$BURST_FOR" >/dev/null
}

idle_phase() {
    stop_cluster
    start_cluster idle
    sleep 2
    local before t
    before=$(rss_kib "$BROKER_PID")
    log "+ creating $IDLE_TOPICS topics x $IDLE_PARTITIONS partitions"
    for t in $(seq 1 "$IDLE_TOPICS"); do
        "$LOAD" create-topic --bootstrap-server "$BOOTSTRAP" --topic "idle-$t" \
            --partitions "$IDLE_PARTITIONS" >/dev/null 2>>"$BENCH_DIR/idle-create.log" ||
            die "create-topic idle-$t failed (see $BENCH_DIR/idle-create.log)"
    done
    log "+ waiting ${IDLE_WAIT}s"
    sleep "$IDLE_WAIT"
    local after hwm
    after=$(rss_kib "$BROKER_PID")
    hwm=$(hwm_kib "$BROKER_PID")
    jq -cn --argjson before "$before" --argjson after "$after" --argjson hwm "$hwm" \
        --argjson topics "$IDLE_TOPICS" --argjson parts "$IDLE_PARTITIONS" --argjson wait "$IDLE_WAIT" \
        --arg name "$PEER/idle-rss" \
        '{name: $name, mode: "idle-rss", topics: $topics, partitions_per_topic: $parts,
          wait_s: $wait, rss_before_kib: $before, rss_kib: $after, hwm_kib: $hwm}' >>"$RESULTS"
    log "broker VmRSS: $(mib "$before") MiB before, $(mib "$after") MiB with $((IDLE_TOPICS * IDLE_PARTITIONS)) idle partitions (VmHWM $(mib "$hwm") MiB)"
}

# One produce run of the metrics phase, `with` or `without` a scraper once a second.
metrics_produce() { # with|without round
    local scraper=""
    if [ "$1" = with ]; then
        # No --cpu-pids: the broker's CPU in this window is the produce load's.
        "$LOAD" scrape --target "127.0.0.1:$METRICS_PORT" --interval-ms 1000 \
            --duration "$METRICS_DURATION" \
            >"$BENCH_DIR/metrics-scraper-$2.json" 2>>"$BENCH_DIR/metrics-scraper.log" &
        scraper=$!
        remember "$scraper"
    fi
    # shellcheck disable=SC2086 # PRODUCE_ARGS holds several options
    run_load "metrics-produce-$1-$2" produce --bootstrap-server "$BOOTSTRAP" \
        --topic bench-metrics --acks 1 --record-size 100 --duration "$METRICS_DURATION" \
        $PRODUCE_ARGS >/dev/null
    if [ -n "$scraper" ]; then
        wait "$scraper" || die "the once-a-second scraper failed (see $BENCH_DIR/metrics-scraper.log)"
        jq -c --arg name "$PEER/metrics-scraper-$2" '{name: $name} + .' \
            "$BENCH_DIR/metrics-scraper-$2.json" >>"$RESULTS"
    fi
}

metrics_phase() {
    if [ "$PEER" != sluice ]; then
        log "metrics: skipped for $PEER (Apache Kafka exports JMX, not /metrics)"
        return 0
    fi
    stop_cluster
    RETENTION_CHECK_MS=1000
    start_cluster metrics
    RETENTION_CHECK_MS=300000
    log "+ creating bench-metrics-idle with $METRICS_PARTITIONS partitions"
    "$LOAD" create-topic --bootstrap-server "$BOOTSTRAP" --topic bench-metrics-idle \
        --partitions "$METRICS_PARTITIONS" >/dev/null 2>>"$BENCH_DIR/metrics-create.log" ||
        die "create-topic bench-metrics-idle failed (see $BENCH_DIR/metrics-create.log)"
    "$LOAD" create-topic --bootstrap-server "$BOOTSTRAP" --topic bench-metrics --partitions 1 \
        --topic-config "retention.bytes=$METRICS_RETENTION_BYTES" \
        --topic-config "segment.bytes=$((METRICS_RETENTION_BYTES / 4))" \
        >/dev/null 2>>"$BENCH_DIR/metrics-create.log" ||
        die "create-topic bench-metrics failed (see $BENCH_DIR/metrics-create.log)"
    # Scrape latency with every partition held, back to back on one kept-alive connection.
    run_load metrics-scrape scrape --target "127.0.0.1:$METRICS_PORT" \
        --scrapes "$METRICS_SCRAPES" --interval-ms 0 >/dev/null
    local r order mode
    for r in $(seq 1 "$METRICS_ROUNDS"); do
        # ABBA: odd rounds measure without the scraper first, even rounds with it first, so
        # that what one run leaves behind (dirty pages being written back, segments being
        # deleted) weighs on both alike.
        order="without with"
        [ $((r % 2)) -eq 0 ] && order="with without"
        for mode in $order; do
            sleep 3
            metrics_produce "$mode" "$r"
        done
    done
    log "broker disk use after the metrics phase: $(du -sh "$BENCH_DIR/$PEER-metrics/kafka-logs" | cut -f1)"
}

# --- main -----------------------------------------------------------------------------------
command -v jq >/dev/null || die "jq is needed to collect the JSON reports"
if [ -n "$PERF" ]; then command -v perf >/dev/null || die "PERF=1 but perf is not installed"; fi
case $WIRE in "" | 1 | only) ;; *) die "WIRE must be 1 or only, not $WIRE" ;; esac
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building release binaries..."
    (cd "$ROOT" && cargo build --release -p sluice-coord -p sluice-broker -p sluice-bench)
fi
for b in coord broker kafka-load; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done
: >"$RESULTS"
log "bench-broker: results in $RESULTS; $(nproc) cores"

for PEER in $PEERS; do
    case $PEER in sluice | kafka) ;; *) die "unknown peer $PEER (sluice kafka)" ;; esac
    log "=== $PEER"
    start_cluster data
    for phase in $PHASES; do
        case $phase in
            small) throughput_phase small 100 "$SMALL_RECORDS" ;;
            large) throughput_phase large 1024 "$LARGE_RECORDS" ;;
            latency) latency_phase ;;
            burst) burst_phase ;;
            idle) idle_phase ;;
            metrics) metrics_phase ;;
            *) die "unknown phase $phase (small large latency burst idle metrics)" ;;
        esac
        if [ "$phase" != idle ] && [ "$phase" != metrics ]; then
            jq -cn --arg name "$PEER/peak-rss-after-$phase" --argjson hwm "$(hwm_kib "$BROKER_PID")" \
                '{name: $name, mode: "peak-rss", hwm_kib: $hwm}' >>"$RESULTS"
        fi
    done
    stop_cluster
done

# --- summary --------------------------------------------------------------------------------
{
    echo "=== bench-broker summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $RESULTS)"
    jq -r 'select(.mode == "produce" or .mode == "consume") |
        "\(.name) (\(.client // "librdkafka")): \(.records) records of \(.bytes / (if .records > 0 then .records else 1 end) | floor) B in \(.elapsed_s * 1000 | round / 1000) s: \(.records_per_s | round) records/s, \(.mb_per_s * 10 | round / 10) MB/s; errors \(.errors); kafka-load cpu \(.cpu.client_s) s, broker cpu \(.cpu.servers_s | to_entries | map(.value) | add) s (\((.cpu.servers_s | to_entries | map(.value) | add) / (if .records > 0 then .records else 1 end) * 1e6 * 100 | round / 100) s per million records)"' "$RESULTS"
    jq -r 'select(.mode == "latency") |
        "\(.name): \(.sent) records at \(.achieved_rate | round)/s, received \(.received), missing \(.missing): p50 \(.p50_ms) ms, p90 \(.p90_ms) ms, p99 \(.p99_ms) ms, p99.9 \(.p999_ms) ms, max \(.max_ms) ms"' "$RESULTS"
    jq -r 'select(.mode == "latency" and .burst != null) | .burst |
        "  burst \(.burst_rate)/s for \(.burst_for_s) s: p99 before \(.before_p99_ms) ms, during \(.during_p99_ms) ms, recovered \(.recovered_after_s // "never") s after; p99 per second: \([.timeline[] | "\(.second):\(.p99_ms)"] | join(" "))"' "$RESULTS"
    jq -r 'select(.mode == "scrape") |
        "\(.name): \(.scrapes) scrapes of \(.samples) samples (\(.body_bytes) bytes) every \(.interval_ms) ms, \(.errors) errors: p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms\(if .server_cpu_ms_per_scrape then "; broker CPU \(.server_cpu_ms_per_scrape * 1000 | round / 1000) ms per scrape" else "" end)"' "$RESULTS"
    # Per round, with / without (the two runs of a round are next to each other in time, so a
    # change of the machine's other load weighs on both); their median says more than the
    # means on a shared machine.
    jq -rs '[.[] | select(.name | test("/metrics-produce-(with|without)-"))] as $runs |
        if ($runs | length) == 0 then empty else
        ([$runs[] | .name | capture("-(?<r>[0-9]+)$").r] | unique) as $rounds |
        [$rounds[] as $r |
            ([$runs[] | select(.name | endswith("-without-" + $r))][0]) as $x |
            ([$runs[] | select(.name | endswith("-with-" + $r))][0]) as $y |
            {a: $x.records_per_s, b: $y.records_per_s, ratio: ($y.records_per_s / $x.records_per_s),
             ca: (($x.cpu.servers_s | to_entries | map(.value) | add) / $x.records * 1e6),
             cb: (($y.cpu.servers_s | to_entries | map(.value) | add) / $y.records * 1e6)}] as $pairs |
        ($pairs | map(.ratio) | sort) as $ratios |
        ($ratios | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end) as $median |
        "metrics: produce records/s without a scraper / with one scraping once a second, by round: \($pairs | map("\(.a | round) / \(.b | round) (\((.ratio - 1) * 1000 | round / 10)%)") | join(", ")); median \((($median - 1) * 1000 | round) / 10)%, mean without \($pairs | map(.a) | add / length | round), with \($pairs | map(.b) | add / length | round); broker CPU per million records without \($pairs | map(.ca) | add / length * 1000 | round / 1000) s, with \($pairs | map(.cb) | add / length * 1000 | round / 1000) s" end' "$RESULTS"
    jq -r 'select(.mode == "startup") | "\(.name): \(.startup_ms) ms"' "$RESULTS"
    jq -r 'select(.mode == "peak-rss") | "\(.name): broker VmHWM \(.hwm_kib / 1024 * 10 | round / 10) MiB"' "$RESULTS"
    jq -r 'select(.mode == "idle-rss") |
        "\(.name): broker VmRSS \(.rss_kib / 1024 * 10 | round / 10) MiB with \(.topics * .partitions_per_topic) partitions (\(.rss_before_kib / 1024 * 10 | round / 10) MiB before creating them; VmHWM \(.hwm_kib / 1024 * 10 | round / 10) MiB)"' "$RESULTS"
} | tee "$SUMMARY"
