#!/usr/bin/env bash
# Local three-node cluster in the classic order: build, start coord 1..3 (ZooKeeper's role),
# wait until they answer, then start brokers 1..3, wait, and print the bootstrap address.
#
#   deploy/local/cluster.sh up        build and start everything
#   deploy/local/cluster.sh status    what runs, and whether it answers (brokers: their
#                                     Prometheus endpoint too, 127.0.0.1:7071..7073/metrics)
#   deploy/local/cluster.sh down      stop brokers, then coord nodes (SIGTERM, then SIGKILL)
#
# STATE_DIR (default deploy/local/state) holds every dataDir, log.dirs, pid file and log file; the
# properties files use paths relative to it. BROKERS=N starts only the first N brokers.
# PROFILE=dev|release (default release); BIN_DIR with SKIP_BUILD=1 runs already-built binaries.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE_DIR=${STATE_DIR:-$HERE/state}
BROKERS=${BROKERS:-3}
PROFILE=${PROFILE:-release}
PROFILE_DIR=$PROFILE
[ "$PROFILE" = dev ] && PROFILE_DIR=debug
BIN=${BIN_DIR:-"${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE_DIR"}

log() { printf '%s\n' "$*" >&2; }

# Reads one line of answer to a ZooKeeper four-letter word on 127.0.0.1:$1.
four_letter() {
    local port=$1 word=$2 reply=""
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    printf '%s' "$word" >&3
    IFS= read -r -t 2 reply <&3 || true
    exec 3<&- 3>&- || true
    printf '%s' "$reply"
}

# The `Mode:` of `srvr` (leader, follower, standalone; "not serving" without a quorum, when
# srvr answers as ZooKeeper does: "This ZooKeeper instance is not currently serving requests").
coord_mode() {
    local line mode=""
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
    printf 'srvr' >&3
    while IFS= read -r -t 2 line <&3; do
        case "$line" in
            Mode:*) mode=${line#Mode: } ;;
            *"not currently serving"*) mode="not serving" ;;
        esac
    done
    exec 3<&- 3>&- || true
    printf '%s' "$mode"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether 127.0.0.1:$1 answers GET /metrics with 200.
metrics_ok() {
    local status=""
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
    IFS= read -r -t 2 status <&3 || true
    exec 3<&- 3>&- || true
    case "$status" in "HTTP/1.1 200"*) return 0 ;; *) return 1 ;; esac
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_one() { # name binary config
    local name=$1 bin=$2 config=$3 pidfile="$STATE_DIR/$1.pid"
    if running "$pidfile"; then
        log "$name already running (pid $(cat "$pidfile"))"
        return
    fi
    # exec: the recorded pid is the daemon's own, so `down` signals the daemon itself.
    (cd "$STATE_DIR" && exec nohup "$BIN/$bin" "$config" >"logs/$name.log" 2>&1) &
    echo $! >"$pidfile"
    log "started $name (pid $(cat "$pidfile")), log: $STATE_DIR/logs/$name.log"
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

# Healthy: our process is alive (not some other program on the port), answers, and knows the
# ensemble's leader.
coord_ok() {
    running "$STATE_DIR/coord-$2.pid" && [ "$(four_letter "$1" ruok)" = "imok" ] &&
        case "$(coord_mode "$1")" in leader | follower | standalone) true ;; *) false ;; esac
}
# A broker listens before it has joined the cluster: healthy once it is registered in
# /brokers/ids too.
broker_ok() {
    running "$STATE_DIR/broker-$2.pid" && port_open "$1" &&
        "$BIN/zookeeper-shell" 127.0.0.1:2181 ls /brokers/ids 2>/dev/null |
        grep -Eq "^\[(.*, )?$2(, .*)?\]$"
}

up() {
    if [ -z "${SKIP_BUILD:-}" ]; then
        log "building ($PROFILE)..."
        (cd "$ROOT" && cargo build --quiet --profile "$PROFILE" --bin coord --bin broker \
            --bin zookeeper-shell --bin kafka-topics --bin kafka-console-producer \
            --bin kafka-console-consumer --bin kafka-consumer-groups \
            --bin kafka-leader-election --bin kafka-reassign-partitions)
    fi
    mkdir -p "$STATE_DIR/logs"
    for i in 1 2 3; do
        mkdir -p "$STATE_DIR/zk-$i"
        [ -f "$STATE_DIR/zk-$i/myid" ] || echo "$i" >"$STATE_DIR/zk-$i/myid"
        start_one "coord-$i" coord "$HERE/zookeeper-$i.properties"
    done
    for i in 1 2 3; do
        local port=$((2180 + i))
        if ! wait_until "coord-$i on port $port" 30 coord_ok "$port" "$i"; then
            log "coord-$i is not healthy; last lines of its log:"
            tail -n 20 "$STATE_DIR/logs/coord-$i.log" >&2 || true
            exit 1
        fi
    done
    log "coord ensemble is up: localhost:2181,localhost:2182,localhost:2183"
    local bootstrap=()
    for i in $(seq 1 "$BROKERS"); do
        start_one "broker-$i" broker "$HERE/server-$i.properties"
        bootstrap+=("127.0.0.1:$((9091 + i))")
    done
    for i in $(seq 1 "$BROKERS"); do
        local port=$((9091 + i))
        if ! wait_until "broker-$i on port $port" 60 broker_ok "$port" "$i"; then
            log "broker-$i is not healthy; last lines of its log:"
            tail -n 20 "$STATE_DIR/logs/broker-$i.log" >&2 || true
            exit 1
        fi
    done
    local joined
    joined=$(IFS=,; echo "${bootstrap[*]}")
    log "brokers are up; their Prometheus metrics: http://127.0.0.1:7071/metrics (broker 1) to port $((7070 + BROKERS))"
    echo "bootstrap.servers=$joined"
    log ""
    log "admin tools (Kafka's and ZooKeeper's command-line style) are in $BIN:"
    log "  $BIN/kafka-topics --bootstrap-server $joined --create --topic logs --partitions 3"
    log "  $BIN/kafka-console-producer --bootstrap-server $joined --topic logs"
    log "  $BIN/kafka-console-consumer --bootstrap-server $joined --topic logs --from-beginning"
    log "  $BIN/kafka-consumer-groups --bootstrap-server $joined --list"
    log "  $BIN/zookeeper-shell 127.0.0.1:2181 ls /brokers/ids"
    log "(add them to PATH: export PATH=\"$BIN:\$PATH\")"
}

stop_group() { # prefix
    local pids=() pidfile
    for pidfile in "$STATE_DIR"/"$1"-*.pid; do
        [ -e "$pidfile" ] || continue
        if running "$pidfile"; then
            pids+=("$(cat "$pidfile")")
            kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

down() {
    stop_group broker
    stop_group coord
    log "stopped"
}

status() {
    local i
    for i in 1 2 3; do
        local port=$((2180 + i)) state=down mode=""
        if running "$STATE_DIR/coord-$i.pid"; then
            state=up
            mode=$(coord_mode "$port")
        fi
        echo "coord-$i   port $port  $state  ${mode:-not answering}"
    done
    for i in 1 2 3; do
        local port=$((9091 + i)) mport=$((7070 + i)) state=down metrics=""
        if running "$STATE_DIR/broker-$i.pid"; then
            state=up
            metrics="metrics $mport $(metrics_ok "$mport" && echo answering || echo not answering)"
        fi
        echo "broker-$i  port $port  $state  $metrics"
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) log "usage: $0 up|down|status"; exit 2 ;;
esac
