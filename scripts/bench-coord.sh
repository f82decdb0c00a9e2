#!/usr/bin/env bash
# coord vs ZooKeeper 3.8, side by side on this machine: the same coord-load workloads against a
# three-node coord ensemble and a three-node ZooKeeper ensemble (Debian's `zookeeper` package,
# installed by scripts/setup.sh), all on loopback.
#
#   scripts/bench-coord.sh                 everything, both systems (about 10 minutes)
#   SYSTEMS=coord scripts/bench-coord.sh   only one system (coord or zk)
#   PHASES=failover scripts/bench-coord.sh only some phases (throughput failover memory_restart)
#
# Measured for each system:
#   throughput and latency  create, set, get: 4 sessions x 64 in flight, 100-byte znodes
#   failover                kill -9 the node whose `srvr` says "Mode: leader" while coord-load
#                           keeps writing; longest gap between acknowledged writes, lost writes
#   memory                  VmRSS (/proc/PID/status) of each node after 100,000 znodes of 100 B
#   restart                 a follower holding those znodes: from its start until it answers a
#                           read (coord-load --probe: connect + getData)
#
# Warm-up: before each measured throughput run the same load runs in rounds of WARMUP s until a
# round is no more than WARMUP_RISE % faster than the one before (at least 2, at most
# WARMUP_ROUNDS rounds), so that each system is measured at its best: ZooKeeper's JVMs need a
# minute or more of load before the JIT has compiled their hot paths (with a fixed 5 s warm-up
# ZooKeeper measured a quarter of its warm rate). Every round's rate is in the summary.
#
# Knobs (environment): DURATION (s per throughput run, 15), WARMUP (s per warm-up round, 10),
# WARMUP_ROUNDS (most warm-up rounds per operation, 12), WARMUP_RISE (%, 3),
# REPS (failover repetitions, 5), FO_DURATION (s per failover run, 8), FO_KILL_AT (s after
# coord-load starts writing, 3), FO_SESSIONS (4), FO_IN_FLIGHT (16), ZNODES (100000), RESTARTS (3),
# ZK_JVMFLAGS (extra JVM flags, default none: Debian's zkServer.sh passes no heap size either),
# BENCH_DIR (work directory; default a new /tmp/sluice-bench.XXXXXX, kept afterwards for the
# logs), SKIP_BUILD=1.
#
# Every figure is printed next to the command that produced it; the summary at the end repeats
# them (also in $BENCH_DIR/summary.tsv). Client and servers share the machine's cores: that is the
# same for both systems. Every process this script starts is killed on exit, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
SYSTEMS=${SYSTEMS:-"coord zk"}
PHASES=${PHASES:-"throughput failover memory_restart"}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-10}
WARMUP_ROUNDS=${WARMUP_ROUNDS:-12}
WARMUP_RISE=${WARMUP_RISE:-3}
REPS=${REPS:-5}
FO_DURATION=${FO_DURATION:-8}
FO_KILL_AT=${FO_KILL_AT:-3}
FO_SESSIONS=${FO_SESSIONS:-4}
FO_IN_FLIGHT=${FO_IN_FLIGHT:-16}
ZNODES=${ZNODES:-100000}
RESTARTS=${RESTARTS:-3}
ZK_JVMFLAGS=${ZK_JVMFLAGS:-}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/sluice-bench.XXXXXX)}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
SUMMARY="$BENCH_DIR/summary.tsv"
LOAD="$BIN/coord-load"

# Loopback ports, away from deploy/local (2181..), ZooKeeper's defaults and the kernel's
# ephemeral range; checked to be free before anything starts.
#   coord: client 26181-26183, peer 26281-26283, election 26381-26383
#   zk:    client 27181-27183, quorum 27281-27283, election 27381-27383
base_port() { case $1 in coord) echo 26000 ;; zk) echo 27000 ;; esac; }
client_port() { echo $(($(base_port "$1") + 180 + $2)); }
peer_port() { echo $(($(base_port "$1") + 280 + $2)); }
election_port() { echo $(($(base_port "$1") + 380 + $2)); }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-coord: $*"; exit 1; }

# --- processes ------------------------------------------------------------------------------
# Every process this script starts is appended to started.pids with its start time (field 22 of
# /proc/PID/stat); the trap kills whatever of them is still alive, whichever way the script ends.
# The start time guards against killing an unrelated process that reused a PID.
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
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each phase gets fresh ensembles in a directory of its own (kept afterwards, logs included).
PHASE=setup
node_dir() { echo "$BENCH_DIR/$1-$PHASE/node-$2"; }
pid_of() { cat "$(node_dir "$1" "$2")/pid"; }
alive() { kill -0 "$1" 2>/dev/null; }

# Reads the answer to a four-letter word from 127.0.0.1:$1 (empty if nothing answers).
four_letter() {
    local port=$1 word=$2
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
        printf '%s' "$word" >&3
        timeout 2 cat <&3 || true
    ) 2>/dev/null | tr -d '\r'
}

mode_of() { four_letter "$(client_port "$1" "$2")" srvr | sed -n 's/^Mode: //p'; }

write_configs() { # system
    local sys=$1 i dir
    for i in 1 2 3; do
        dir=$(node_dir "$sys" "$i")
        mkdir -p "$dir/data"
        echo "$i" >"$dir/data/myid"
        local servers="" j
        for j in 1 2 3; do
            servers+="server.$j=127.0.0.1:$(peer_port "$sys" "$j"):$(election_port "$sys" "$j")"$'\n'
        done
        local common
        common="dataDir=$dir/data
clientPort=$(client_port "$sys" "$i")
clientPortAddress=127.0.0.1
tickTime=2000
initLimit=5
syncLimit=2
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
$servers"
        if [ "$sys" = coord ]; then
            printf '%s' "$common" >"$dir/zookeeper.properties"
        else
            mkdir -p "$dir/conf" "$dir/logs"
            printf '%s' "$common" >"$dir/conf/zoo.cfg"
            cp /etc/zookeeper/conf_example/log4j.properties "$dir/conf/log4j.properties"
        fi
    done
}

# ZooKeeper's classpath. zkEnv.sh gives "<conf dir>:/usr/share/java/zookeeper.jar"; the jar's
# manifest Class-Path names its runtime dependencies in /usr/share/java (zookeeper-jute, netty,
# slf4j-api, metrics-core, snappy-java, jetty, jackson, commons-*), so the JVM finds them
# through it. Debian's scripts add no SLF4J binding (ZooKeeper then logs nothing); the log4j 1.2
# binding below sends its log to the node's logs/ directory like zkServer.sh's ROLLINGFILE would.
ZK_JARS=(/usr/share/java/zookeeper.jar /usr/share/java/zookeeper-jute.jar
    /usr/share/java/slf4j-api.jar /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar)

start_node() { # system id
    local sys=$1 i=$2 dir pid
    dir=$(node_dir "$sys" "$i")
    if [ "$sys" = coord ]; then
        RUST_LOG=${RUST_LOG:-info,openraft=warn,sled=warn} \
            "$BIN/coord" "$dir/zookeeper.properties" >>"$dir/coord.log" 2>&1 &
        pid=$!
    else
        local cp="$dir/conf" jar
        for jar in "${ZK_JARS[@]}"; do cp+=":$jar"; done
        # shellcheck disable=SC2086 # ZK_JVMFLAGS is a list of flags
        java -Dzookeeper.log.dir="$dir/logs" -Dzookeeper.root.logger=INFO,ROLLINGFILE \
            -Dlog4j.configuration="file:$dir/conf/log4j.properties" \
            -XX:+HeapDumpOnOutOfMemoryError -XX:OnOutOfMemoryError='kill -9 %p' $ZK_JVMFLAGS \
            -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg" \
            >>"$dir/stdout.log" 2>&1 &
        pid=$!
    fi
    # Not a job of this shell any more: bash would otherwise print a "Killed" line for every
    # node the failover runs kill (it still reaps the process).
    disown "$pid"
    remember "$pid"
    echo "$pid" >"$dir/pid"
}

stop_node() { # system id signal
    local pid
    pid=$(pid_of "$1" "$2")
    kill "-$3" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.05; done
}

# Waits until all three nodes report leader or follower and exactly one is the leader.
wait_ensemble() { # system
    local sys=$1 deadline=$((SECONDS + 60)) modes
    while [ $SECONDS -lt $deadline ]; do
        modes="$(mode_of "$sys" 1) $(mode_of "$sys" 2) $(mode_of "$sys" 3)"
        if [ "$(grep -o leader <<<"$modes" | wc -l)" -eq 1 ] &&
            [ "$(grep -o follower <<<"$modes" | wc -l)" -eq 2 ]; then
            return 0
        fi
        sleep 0.2
    done
    log "ensemble $sys not ready after 60 s (modes: $modes); last log lines:"
    tail -n 5 "$BENCH_DIR/$sys-$PHASE"/node-*/*.log "$BENCH_DIR/$sys-$PHASE"/node-*/logs/*.log 2>/dev/null >&2 || true
    return 1
}

leader_of() { # system -> node id
    local i
    for i in 1 2 3; do
        [ "$(mode_of "$1" "$i")" = leader ] && { echo "$i"; return 0; }
    done
    return 1
}

# Connect string with the leader first: coord-load puts sessions 0 and 3 on the first host, so
# both systems get two sessions on the leader and one on each follower.
hosts_leader_first() { # system
    local sys=$1 l i hosts
    l=$(leader_of "$sys")
    hosts="127.0.0.1:$(client_port "$sys" "$l")"
    for i in 1 2 3; do
        [ "$i" = "$l" ] || hosts+=",127.0.0.1:$(client_port "$sys" "$i")"
    done
    echo "$hosts"
}

fresh_ensemble() { # system
    rm -rf "${BENCH_DIR:?}/$1-$PHASE"
    write_configs "$1"
    local i
    for i in 1 2 3; do start_node "$1" "$i"; done
    wait_ensemble "$1"
}

stop_ensemble() { # system
    local i
    for i in 1 2 3; do stop_node "$1" "$i" TERM; done
}

# --- recording ------------------------------------------------------------------------------
record() { # system metric value command...
    local sys=$1 metric=$2 value=$3
    shift 3
    printf '%s\t%s\t%s\t%s\n' "$sys" "$metric" "$value" "$*" >>"$SUMMARY"
    printf '  => %s %s = %s\n' "$sys" "$metric" "$value"
}

# Runs a command, echoing it first, and keeps the last JSON line of its output in $LAST_JSON.
LAST_JSON=""
run_json() {
    printf '$ %s\n' "$*"
    local out="$BENCH_DIR/last-run.out" pid rc=0
    # In the background and awaited with `wait`, which (unlike a foreground command) a signal
    # interrupts, so that the trap can stop this run and the servers at once.
    "$@" >"$out" 2>&1 &
    pid=$!
    remember "$pid"
    wait "$pid" || rc=$?
    cat "$out"
    LAST_JSON=$(grep '^{' "$out" | tail -n 1 || true)
    return $rc
}

# Reads a field of $LAST_JSON (or of $2).
jfield() {
    python3 -c 'import json,sys; v=json.loads(sys.argv[2])[sys.argv[1]]; print(v if not isinstance(v,float) else round(v,3))' \
        "$1" "${2:-$LAST_JSON}"
}

# The machine's load and its busiest processes, so that each phase's conditions are on record.
conditions() {
    # top's second sample covers the last half second (its first one averages since start).
    printf '%s | busiest now: %s' "$(uptime | sed 's/.*load/load/')" \
        "$(top -b -n 2 -d 0.5 -w 200 | awk '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && c < 4 {printf "%s %s%%, ", $12, $9; c++}' | sed 's/, $//')"
}

# CPU milliseconds per 1000 requests from $LAST_JSON: "servers" (all --cpu-pids) or "client".
jcpu() {
    python3 -c '
import json, sys
r = json.loads(sys.argv[2])
c = r["cpu"]
s = sum(c["servers_s"].values()) if sys.argv[1] == "servers" else c["client_s"]
print(round(s * 1000 / (r["ops"] / 1000), 3))' "$1" "$LAST_JSON"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
maximum() { sort -g | tail -n 1; }

# --- phases ---------------------------------------------------------------------------------
throughput_phase() { # system
    PHASE=throughput
    local sys=$1 hosts op cmd pids
    echo "== $sys: throughput ($(conditions))"
    fresh_ensemble "$sys"
    hosts=$(hosts_leader_first "$sys")
    pids="$(pid_of "$sys" 1),$(pid_of "$sys" 2),$(pid_of "$sys" 3)"
    for op in create set get; do
        warm_up "$sys" "$op" "$hosts"
        cmd=("$LOAD" --hosts "$hosts" --op "$op" --sessions 4 --in-flight 64 --size 100
            --duration "$DURATION" --warmup 0 --path /bench --cpu-pids "$pids")
        echo "-- $(conditions)"
        run_json "${cmd[@]}" || die "$sys $op run failed"
        record "$sys" "${op}_ops_per_s" "$(jfield ops_per_s)" "${cmd[*]}"
        record "$sys" "${op}_p50_ms" "$(jfield p50_ms)" "${cmd[*]}"
        record "$sys" "${op}_p99_ms" "$(jfield p99_ms)" "${cmd[*]}"
        record "$sys" "${op}_p999_ms" "$(jfield p999_ms)" "${cmd[*]}"
        record "$sys" "${op}_max_ms" "$(jfield max_ms)" "${cmd[*]}"
        # CPU the three servers (and the client) used per 1000 requests in the measured window.
        record "$sys" "${op}_server_cpu_ms_per_1k_ops" "$(jcpu servers)" "${cmd[*]}"
        record "$sys" "${op}_client_cpu_ms_per_1k_ops" "$(jcpu client)" "${cmd[*]}"
    done
    stop_ensemble "$sys"
}

# Runs the load of a throughput measurement in rounds of WARMUP s until the rate stops rising.
warm_up() { # system op hosts
    local sys=$1 op=$2 hosts=$3 round rate prev="" rates=""
    for round in $(seq "$WARMUP_ROUNDS"); do
        run_json "$LOAD" --hosts "$hosts" --op "$op" --sessions 4 --in-flight 64 --size 100 \
            --duration "$WARMUP" --warmup 0 --path /bench >/dev/null || die "$sys $op warm-up failed"
        rate=$(jfield ops_per_s)
        rates+="${rates:+ }$rate"
        printf '  warm-up %s %s round %s: %s ops/s\n' "$sys" "$op" "$round" "$rate"
        if [ -n "$prev" ] && [ "$round" -ge 2 ] &&
            python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) * (1 + float(sys.argv[3]) / 100) else 1)' \
                "$rate" "$prev" "$WARMUP_RISE"; then
            break
        fi
        prev=$rate
    done
    record "$sys" "${op}_warmup_rounds_ops_per_s" "$rates" "$WARMUP s rounds until one rose less than $WARMUP_RISE %"
}

failover_phase() { # system
    PHASE=failover
    local sys=$1 r leader pid hosts out json gaps="" lost=0 acked
    echo "== $sys: failover x $REPS ($(conditions))"
    fresh_ensemble "$sys"
    hosts="127.0.0.1:$(client_port "$sys" 1),127.0.0.1:$(client_port "$sys" 2),127.0.0.1:$(client_port "$sys" 3)"
    for r in $(seq "$REPS"); do
        wait_ensemble "$sys"
        local cmd=("$LOAD" --hosts "$hosts" --failover --sessions "$FO_SESSIONS"
            --in-flight "$FO_IN_FLIGHT" --size 100 --duration "$FO_DURATION" --path /failover)
        printf '$ %s &   # run %s\n' "${cmd[*]}" "$r"
        out="$BENCH_DIR/failover-$sys-$r.out"
        "${cmd[@]}" >"$out" 2>&1 &
        pid=$!
        remember "$pid"
        # Count FO_KILL_AT from the moment coord-load starts writing (after its sessions and
        # directories are set up), not from its launch.
        for _ in $(seq 300); do
            grep -q '^coord-load failover: writing' "$out" 2>/dev/null && break
            alive "$pid" || break
            sleep 0.1
        done
        sleep "$FO_KILL_AT"
        leader=$(leader_of "$sys") || die "$sys: no leader before the kill"
        printf '$ kill -9 %s   # %s node %s, srvr says Mode: leader, %ss into the run\n' \
            "$(pid_of "$sys" "$leader")" "$sys" "$leader" "$FO_KILL_AT"
        kill -KILL "$(pid_of "$sys" "$leader")"
        local rc=0
        wait "$pid" || rc=$?
        cat "$out"
        json=$(grep '^{' "$out" | tail -n 1 || true)
        [ -n "$json" ] || die "$sys failover run $r printed no result (exit $rc)"
        acked=$(jfield acked "$json")
        gaps+="$(jfield max_gap_ms "$json")"$'\n'
        lost=$((lost + $(jfield lost "$json")))
        record "$sys" "failover_run${r}_gap_ms" "$(jfield max_gap_ms "$json")" "${cmd[*]} (kill -9 leader at ${FO_KILL_AT}s)"
        record "$sys" "failover_run${r}_acked" "$acked" "${cmd[*]}"
        record "$sys" "failover_run${r}_lost" "$(jfield lost "$json")" "${cmd[*]}"
        # Bring the killed node back so the next repetition starts from three nodes again.
        start_node "$sys" "$leader"
    done
    record "$sys" failover_gap_median_ms "$(printf '%s' "$gaps" | median)" "median of the $REPS runs above"
    record "$sys" failover_gap_max_ms "$(printf '%s' "$gaps" | maximum)" "max of the $REPS runs above"
    record "$sys" failover_lost_total "$lost" "sum of the $REPS runs above"
    stop_ensemble "$sys"
}

memory_restart_phase() { # system
    PHASE=memory_restart
    local sys=$1 hosts l i f rss cmd t0 t1 times=""
    echo "== $sys: memory and restart with $ZNODES znodes ($(conditions))"
    fresh_ensemble "$sys"
    hosts=$(hosts_leader_first "$sys")
    cmd=("$LOAD" --hosts "$hosts" --op create --sessions 4 --in-flight 64 --size 100
        --count "$ZNODES" --path /mem)
    run_json "${cmd[@]}" || die "$sys load failed"
    record "$sys" load_ops_per_s "$(jfield ops_per_s)" "${cmd[*]}"
    sleep 5 # let background work (snapshots, log compaction) finish before reading RSS
    l=$(leader_of "$sys")
    for i in 1 2 3; do
        local role=follower
        [ "$i" = "$l" ] && role=leader
        printf '$ grep VmRSS /proc/%s/status   # %s node %s (%s)\n' "$(pid_of "$sys" "$i")" "$sys" "$i" "$role"
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$(pid_of "$sys" "$i")/status")
        printf 'VmRSS:\t%s kB\n' "$rss"
        record "$sys" "rss_${role}_node${i}_mib" "$(awk -v k="$rss" 'BEGIN {printf "%.1f", k/1024}')" \
            "grep VmRSS /proc/PID/status (node $i, $role) after: ${cmd[*]}"
    done
    # Restart a follower: stop it cleanly, start it, time until it answers a read itself.
    f=1
    [ "$l" = 1 ] && f=2
    for r in $(seq "$RESTARTS"); do
        stop_node "$sys" "$f" TERM
        local probe=("$LOAD" --probe --hosts "127.0.0.1:$(client_port "$sys" "$f")" --path /mem --duration 60)
        printf '$ t0=$(date +%%s%%N); <start %s node %s>; %s; t1=$(date +%%s%%N)   # restart %s\n' \
            "$sys" "$f" "${probe[*]}" "$r"
        t0=$(date +%s%N)
        start_node "$sys" "$f"
        run_json "${probe[@]}" || die "$sys node $f did not answer a read after restart"
        t1=$(date +%s%N)
        local ms=$(((t1 - t0) / 1000000))
        times+="$ms"$'\n'
        record "$sys" "restart_run${r}_ms" "$ms" "t0..t1 around: start node; ${probe[*]}"
        wait_ensemble "$sys"
    done
    record "$sys" restart_median_ms "$(printf '%s' "$times" | median)" "median of the $RESTARTS restarts above"
    stop_ensemble "$sys"
}

# --- main -----------------------------------------------------------------------------------
for sys in $SYSTEMS; do
    case $sys in coord | zk) ;; *) die "unknown system $sys (coord or zk)" ;; esac
done
for phase in $PHASES; do
    case $phase in throughput | failover | memory_restart) ;; *) die "unknown phase $phase" ;; esac
done
if [[ " $SYSTEMS " == *" zk "* ]]; then
    command -v java >/dev/null || die "java not found: run scripts/setup.sh (Debian package zookeeper)"
    for jar in "${ZK_JARS[@]}"; do [ -e "$jar" ] || die "$jar missing: run scripts/setup.sh"; done
fi
command -v python3 >/dev/null || die "python3 is needed to read coord-load's JSON lines"
for sys in $SYSTEMS; do
    for i in 1 2 3; do
        for port in "$(client_port "$sys" "$i")" "$(peer_port "$sys" "$i")" "$(election_port "$sys" "$i")"; do
            port_free "$port" || die "port $port (for $sys) is in use; stop what listens there first"
        done
    done
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo '$ cargo build --release --bin coord --bin coord-load'
    (cd "$ROOT" && cargo build --release --bin coord --bin coord-load)
fi
[ -x "$BIN/coord" ] && [ -x "$LOAD" ] || die "release binaries missing in $BIN"

: >"$SUMMARY"
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
echo "== $(uptime)"
echo "== work directory (configs, logs, data): $BENCH_DIR"
for sys in $SYSTEMS; do
    for phase in $PHASES; do
        "${phase}_phase" "$sys"
    done
done
echo "== $(uptime)"

echo
echo "== summary (system, metric, value, command) — also in $SUMMARY"
column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
