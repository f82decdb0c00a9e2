#!/usr/bin/env bash
# Records real client traffic against the project's own daemons and turns it, and the data the
# daemons stored, into the seed corpora of the fuzz targets: fuzz/corpus/<target>/, one file per
# seed named by the SHA-1 of its contents (reruns merge and deduplicate). See fuzz/seeds/README.md.
#
#   fuzz/seeds/record.sh            record, then merge into the corpora (kept seeds stay first)
#   fuzz/seeds/record.sh --fresh    replace the corpora with this run's seeds
#
# BIN_DIR (default target/debug) holds coord, broker and the CLI tools (built when missing);
# SLUICE_PY_VENV (default /var/tmp/sluice-py) the confluent-kafka venv of scripts/setup.sh.
# KEEP_WORK=1 keeps the scratch directory (daemon logs, client output, staged seeds);
# CORPUS_DIR (default fuzz/corpus) is where the corpora go.
# Limits: 64 KiB per seed; per target at most MAX_FILES (400) files and MAX_BYTES (2000000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SEEDS=$ROOT/fuzz/seeds
CORPUS=${CORPUS_DIR:-$ROOT/fuzz/corpus}
BIN_DIR=${BIN_DIR:-target/debug}
case "$BIN_DIR" in /*) ;; *) BIN_DIR=$ROOT/$BIN_DIR ;; esac
VENV_PY=${SLUICE_PY_VENV:-/var/tmp/sluice-py}/bin/python3
SYS_PY=/usr/bin/python3
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh
MAX_FILES=${MAX_FILES:-400}
MAX_BYTES=${MAX_BYTES:-2000000}
FRESH=
for a in "$@"; do
    case "$a" in
        --fresh) FRESH=--fresh ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "record: unknown argument $a" >&2; exit 2 ;;
    esac
done
PY=$(command -v python3)
REC=("$PY" "$SEEDS/recorder.py")
say() { echo "record: $*" >&2; }

# ---- prerequisites ----------------------------------------------------------------------
TOOLS=(coord broker kafka-topics kafka-console-producer kafka-console-consumer
    kafka-consumer-groups zookeeper-shell)
for t in "${TOOLS[@]}"; do
    if [ ! -x "$BIN_DIR/$t" ]; then
        say "building the binaries ($BIN_DIR/$t is missing)"
        cargo build --bins >&2
        break
    fi
done
for t in "${TOOLS[@]}"; do
    [ -x "$BIN_DIR/$t" ] || { say "$BIN_DIR/$t is missing (set BIN_DIR)"; exit 1; }
done
clients_ok() {
    command -v kcat >/dev/null && command -v nc >/dev/null && [ -x "$ZKCLI" ] &&
        "$SYS_PY" -c 'import kafka, kazoo' 2>/dev/null &&
        "$VENV_PY" -c 'import confluent_kafka' 2>/dev/null
}
if ! clients_ok; then
    say "a client is missing; running scripts/setup.sh"
    scripts/setup.sh
    clients_ok || { say "clients still missing after scripts/setup.sh"; exit 1; }
fi

# ---- scratch directory and process bookkeeping -----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-record.XXXXXX")
STAGE=$WORK/stage
mkdir -p "$STAGE"/{kafka_request,zk_client,raft_peer,record_batches,log_recovery,properties}
PIDS=()

stop_pid() { # SIGTERM, wait up to $2 s (default 15), then SIGKILL
    local pid=$1 wait=${2:-15} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    say "pid $pid ignored SIGTERM for ${wait}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}" 10
    done
    if [ -n "${KEEP_WORK:-}" ] || [ $rc -ne 0 ]; then
        say "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started() { PIDS+=("$1"); }

relay() { # relay MODE LISTEN TARGET OUT [SERVICE]
    local ready=$WORK/relay-$2.ready
    "${REC[@]}" relay --mode "$1" --listen "$2" --target "$3" --out "$4" \
        --service "${5:-peer}" --ready-file "$ready" >>"$WORK/relays.log" 2>&1 &
    started $!
    for _ in $(seq 100); do [ -s "$ready" ] && return 0; sleep 0.05; done
    say "relay on $2 did not start"; return 1
}

fourlw() { # fourlw PORT WORD: the answer (empty when nothing answers)
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf %s "$1" >&3 && cat <&3' \
        "$1" "$2" 2>/dev/null || true
}

wait_mode() { # wait_mode PORT...: until each reports leader, follower or standalone
    local p deadline=$((SECONDS + 60))
    for p in "$@"; do
        until fourlw "$p" srvr | grep -qE '^Mode: (leader|follower|standalone)'; do
            [ $SECONDS -lt $deadline ] || { say "coord on $p does not serve"; return 1; }
            sleep 0.2
        done
    done
}

# Runs a client step; a failing step is reported but does not end the recording.
FAILED=()
step() {
    local name=$1
    shift
    echo "=== $name: $*" >>"$WORK/clients.log"
    if ! timeout 120 "$@" >>"$WORK/clients.log" 2>&1 </dev/null; then
        FAILED+=("$name")
        say "step failed: $name (see clients.log)"
    fi
}
step_in() { # step_in NAME INPUT CMD...: like step with INPUT on stdin
    local name=$1 input=$2
    shift 2
    echo "=== $name: $*" >>"$WORK/clients.log"
    if ! printf '%b' "$input" | timeout 120 "$@" >>"$WORK/clients.log" 2>&1; then
        FAILED+=("$name")
        say "step failed: $name (see clients.log)"
    fi
}

read -r ZK_PORT ZK_PROXY BROKER_PORT KAFKA_PROXY <<<"$("${REC[@]}" ports 4)"

# ---- 1. coord standalone + broker, behind recording relays --------------------------------
say "scratch directory $WORK"
mkdir -p "$WORK/zk" "$WORK/kafka-logs"
echo 1 >"$WORK/zk/myid"
cat >"$WORK/zookeeper.properties" <<EOF
dataDir=$WORK/zk
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
tickTime=500
4lw.commands.whitelist=*
maxClientCnxns=0
extendedTypesEnabled=true
EOF
cat >"$WORK/server.properties" <<EOF
broker.id=1
listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PROXY
log.dirs=$WORK/kafka-logs
zookeeper.connect=127.0.0.1:$ZK_PROXY
zookeeper.session.timeout.ms=6000
offsets.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
EOF
RUST_LOG=info "$BIN_DIR/coord" "$WORK/zookeeper.properties" >"$WORK/coord.log" 2>&1 &
started $!
wait_mode "$ZK_PORT"
relay zk "$ZK_PROXY" "127.0.0.1:$ZK_PORT" "$STAGE/zk_client"
ZK_RELAY_PID=${PIDS[-1]}
relay kafka "$KAFKA_PROXY" "127.0.0.1:$BROKER_PORT" "$STAGE/kafka_request"
RUST_LOG=info "$BIN_DIR/broker" "$WORK/server.properties" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
started $BROKER_PID
"${REC[@]}" wait-kafka "127.0.0.1:$BROKER_PORT" --timeout 60 ||
    { say "broker not listening"; tail -20 "$WORK/broker.log" >&2; exit 1; }
for _ in $(seq 100); do
    "$BIN_DIR/zookeeper-shell" "127.0.0.1:$ZK_PORT" ls /brokers/ids 2>/dev/null | grep -q '^\[1\]' && break
    sleep 0.2
done
say "coord on $ZK_PORT (relay $ZK_PROXY), broker on $BROKER_PORT (relay $KAFKA_PROXY)"

# ---- 2. ZooKeeper clients through the relay ----------------------------------------------
say "ZooKeeper clients"
ZKS=127.0.0.1:$ZK_PROXY
for w in ruok srvr mntr stat conf cons wchs envi dirs isro wchc wchp; do
    echo "=== 4lw $w" >>"$WORK/clients.log"
    printf %s "$w" | timeout 5 nc 127.0.0.1 "$ZK_PROXY" >>"$WORK/clients.log" 2>&1 || true
done

zkcli() { step "zkCli $*" "$ZKCLI" -server "$ZKS" "$@"; }
zkcli create /zkcli "hello"
zkcli create -e /zkcli/eph "ephemeral"
zkcli create -s /zkcli/seq- "sequential"
zkcli get -s /zkcli
zkcli ls -R /
zkcli setAcl /zkcli world:anyone:cdrwa
zkcli addWatch -m PERSISTENT_RECURSIVE /zkcli
# One session with many commands (zkCli reads them from stdin).
step_in "zkCli session" "$(cat <<'EOF'
create /zks "one"
create -c /zks-container
create -c /zks-container/child "c"
create -t 60000 /zks-ttl "ttl"
create /zks/child "x" digest:user:2Om+GBbT2q/tS6pdvACZbbm7/1A=:cdrwa
addauth digest user:pw
get -s /zks/child
get -w /zks
ls -w /zks
ls -s /
stat -w /zks
set /zks "two"
set -s -v 1 /zks "three"
getAcl /zks/child
setAcl /zks world:anyone:cdrwa
addWatch /zks
addWatch -m PERSISTENT /zks
removewatches /zks
getEphemerals /
getAllChildrenNumber /
whoami
sync /zks
config
reconfig -remove 5
delete -v 0 /zks/child
deleteall /zks
deleteall /zks-container
quit
EOF
)\n" "$ZKCLI" -server "$ZKS"
zkcli set /zkcli "changed"
zkcli stat /zkcli
zkcli getAcl /zkcli
zkcli sync /zkcli
zkcli deleteall /zkcli

cat >"$WORK/kazoo_client.py" <<'EOF'
import sys, threading
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, make_acl
zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start(timeout=20)
print("server_version", zk.server_version())
print("ruok", zk.command(b"ruok"))
zk.add_auth("digest", "user:pw")
zk.ensure_path("/kazoo/nodes")
print(zk.create("/kazoo/nodes/n-", b"x", ephemeral=True, sequence=True))
print(zk.create("/kazoo/deep/a/b", b"made", makepath=True))
print(zk.create("/kazoo/stat", b"with stat", include_data=True))
acl = [make_digest_acl("user", "pw", all=True), make_acl("world", "anyone", read=True)]
zk.create("/kazoo/secret", b"s", acl=acl)
print(zk.get_acls("/kazoo/secret"))
zk.set_acls("/kazoo/secret", acl)
fired = threading.Event()
zk.exists("/kazoo/data", watch=lambda e: fired.set())
zk.create("/kazoo/data", b"one")
fired.wait(5)
seen = []
@zk.DataWatch("/kazoo/data")
def watch(data, stat):
    seen.append(data)
zk.set("/kazoo/data", b"two")
zk.set("/kazoo/data", b"three", version=1)
data, stat = zk.get("/kazoo/data", watch=lambda e: None)
print(data, stat.version)
print(sorted(zk.get_children("/kazoo", watch=lambda e: None)))
print(zk.get_children("/kazoo", include_data=True)[1].numChildren)
t = zk.transaction()
t.check("/kazoo/data", 2)
t.create("/kazoo/a", b"1")
t.create("/kazoo/b", b"2", ephemeral=True)
t.set_data("/kazoo/a", b"11")
t.delete("/kazoo/stat")
print("txn", t.commit())
t = zk.transaction()
t.create("/kazoo/a", b"exists already")
print("failed txn", t.commit())
print("sync", zk.sync("/kazoo"))
zk.delete("/kazoo/deep", recursive=True)
zk.delete("/kazoo", recursive=True)
print("seen", seen)
zk.stop()
zk.close()
EOF
step "kazoo" "$SYS_PY" "$WORK/kazoo_client.py" "$ZKS"

zksh() { step "zookeeper-shell $*" "$BIN_DIR/zookeeper-shell" "$ZKS" "$@"; }
zksh ls /brokers/ids
step "zookeeper-shell -server" "$BIN_DIR/zookeeper-shell" -server "$ZKS" get -s /brokers/ids/1
zksh create -s -e /shell-job- "job"
step_in "zookeeper-shell session" 'create /shell "s"\ncreate /shell/a "a"\nset -v 0 /shell/a "b"\nget -s /shell/a\nls -s /shell\nstat /shell\ngetAcl /shell\nsetAcl -R /shell world:anyone:cdrwa\naddauth digest u:p\nwhoami\nsync /shell\ngetEphemerals /\ngetAllChildrenNumber /\ndelete /shell/a\ndeleteall /shell\nquit\n' \
    "$BIN_DIR/zookeeper-shell" "$ZKS"

# ---- 3. Kafka clients through the relay --------------------------------------------------
say "Kafka clients"
B=127.0.0.1:$KAFKA_PROXY
CODECS=(none gzip snappy lz4 zstd)
kt() { step "kafka-topics $*" "$BIN_DIR/kafka-topics" --bootstrap-server "$B" "$@"; }
kt --create --topic cli-orders --partitions 2 --replication-factor 1 --config retention.ms=86400000
kt --create --topic rolled --partitions 1 --replication-factor 1 --config segment.ms=1000
for z in "${CODECS[@]}"; do kt --create --topic "kc-$z" --partitions 1 --replication-factor 1; done
kt --create --topic kc-keys --partitions 2 --replication-factor 1
kt --create --topic cli-doomed --partitions 1 --replication-factor 1
kt --list
kt --describe --topic cli-orders
kt --alter --topic cli-orders --partitions 3

# kcat (Debian's librdkafka 2.0.2). That librdkafka sends gzip, snappy and lz4 batches
# uncompressed ("Broker does not support compression type"): it wants Produce v0 among the
# broker's versions for them, and the broker serves v3 and up. zstd is compressed.
step "kcat -L" kcat -b "$B" -L
step "kcat -L -t" kcat -b "$B" -L -t cli-orders
# Values that compress (librdkafka and kafka-python send a batch uncompressed when compressing
# would not make it smaller).
lines() { for i in $(seq "$1"); do echo "$2-$i $(date +%s%N) order placed, order shipped, order placed, order shipped"; done; }
for z in "${CODECS[@]}"; do
    step_in "kcat -P -z $z" "$(lines 20 "$z")\n" kcat -b "$B" -P -t "kc-$z" -z "$z"
done
step_in "kcat -P keys+headers" "$(for i in $(seq 10); do echo "key-$i:value-$i"; done)\n" \
    kcat -b "$B" -P -t kc-keys -K: -H h1=v1 -H trace=abc -z lz4
step_in "kcat -P partition" "p0-a\np0-b\n" kcat -b "$B" -P -t kc-keys -p 0
for z in gzip zstd; do step "kcat -C $z" kcat -b "$B" -C -t "kc-$z" -o beginning -e; done
step "kcat -C keys" kcat -b "$B" -C -t kc-keys -o beginning -e -f '%k %s %h %o\n'
step "kcat -G" kcat -b "$B" -G kcat-group -o beginning -e -X auto.offset.reset=earliest kc-keys
step "kcat -Q" kcat -b "$B" -Q -t kc-none:0:-1 -t kc-none:0:-2
# A segment rolled at offset 50 (log_recovery's second segment).
step_in "kcat -P rolled 1" "$(lines 50 r1)\n" kcat -b "$B" -P -t rolled -X linger.ms=200
sleep 2
step_in "kcat -P rolled 2" "$(lines 30 r2)\n" kcat -b "$B" -P -t rolled -X linger.ms=200

# The project's CLI tools (librdkafka through the rdkafka crate)
step_in "console-producer" "$(lines 15 cli)\n" "$BIN_DIR/kafka-console-producer" \
    --bootstrap-server "$B" --topic cli-orders
step_in "console-producer keys+headers" 'h1:v1,h2:v2\tk1\tvalue-1\nh3:v3\tk2\tvalue-2\n' \
    "$BIN_DIR/kafka-console-producer" --bootstrap-server "$B" --topic cli-orders \
    --property parse.key=true --property parse.headers=true --compression-codec zstd --sync
for z in gzip snappy lz4; do
    step_in "console-producer $z" "$(lines 5 "$z")\n" "$BIN_DIR/kafka-console-producer" \
        --bootstrap-server "$B" --topic cli-orders --compression-codec "$z" --request-required-acks 1
done
step "console-consumer group" "$BIN_DIR/kafka-console-consumer" --bootstrap-server "$B" \
    --topic cli-orders --group cli-group --from-beginning --max-messages 22 --timeout-ms 15000 \
    --property print.key=true --property print.headers=true
step "console-consumer partition" "$BIN_DIR/kafka-console-consumer" --bootstrap-server "$B" \
    --topic cli-orders --partition 0 --offset earliest --max-messages 3 --timeout-ms 10000
cg() { step "consumer-groups $*" "$BIN_DIR/kafka-consumer-groups" --bootstrap-server "$B" "$@"; }
cg --list
cg --describe --group cli-group
cg --describe --all-groups
cg --reset-offsets --group cli-group --topic cli-orders --to-earliest --execute
cg --reset-offsets --group cli-group --topic cli-orders:0 --shift-by 2 --dry-run

# kafka-python (Debian's python3-kafka)
cat >"$WORK/kafka_python.py" <<'EOF'
import sys
from kafka import KafkaProducer, KafkaConsumer
from kafka.admin import (KafkaAdminClient, NewTopic, NewPartitions, ConfigResource,
                         ConfigResourceType)
b = sys.argv[1]
a = KafkaAdminClient(bootstrap_servers=b, client_id="kp-admin")
print(a.create_topics([NewTopic("kp", 2, 1, topic_configs={"retention.ms": "3600000"}),
                       NewTopic("kp-gone", 1, 1)]))
print(a.create_partitions({"kp": NewPartitions(3)}))
print(a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp"),
                          ConfigResource(ConfigResourceType.BROKER, "1")]))
print(a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp",
                                      configs={"segment.ms": "600000"})]))
print(a.list_topics())
print(a.describe_topics(["kp"]))
for codec in (None, "gzip", "snappy", "lz4", "zstd"):
    try:
        p = KafkaProducer(bootstrap_servers=b, acks="all", compression_type=codec,
                          linger_ms=20, client_id="kp-%s" % codec)
    except Exception as e:
        print("no codec", codec, e)
        continue
    for i in range(8):
        p.send("kp", key=b"k%d" % i, value=b"v-%s-%d " % (str(codec).encode(), i) * 8,
               headers=[("h", b"x")])
    p.flush(10)
    p.close()
c = KafkaConsumer("kp", bootstrap_servers=b, group_id="kp-group", client_id="kp-consumer",
                  auto_offset_reset="earliest", enable_auto_commit=False,
                  consumer_timeout_ms=8000)
n = 0
for m in c:
    n += 1
    if n >= 16:
        break
c.commit()
print("consumed", n)
print(a.list_consumer_groups())
print(a.describe_consumer_groups(["kp-group"]))
print(a.list_consumer_group_offsets("kp-group"))
c.close()
# Older protocol versions: kafka-python pinned to earlier brokers' API sets.
for v in ((0, 11, 0), (1, 1, 0), (2, 1, 0)):
    tag = "%d.%d" % v[:2]
    p = KafkaProducer(bootstrap_servers=b, api_version=v, acks=1, client_id="kp-" + tag)
    for i in range(3):
        p.send("kp", key=b"old", value=b"api %s #%d" % (tag.encode(), i), partition=i % 3)
    p.flush(10)
    p.close()
    c = KafkaConsumer("kp", bootstrap_servers=b, api_version=v, group_id="kp-old-" + tag,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    print(tag, "consumed", sum(1 for _ in c))
    c.commit()
    c.close()
print(a.delete_topics(["kp-gone"]))
a.close()
EOF
step "kafka-python" "$SYS_PY" "$WORK/kafka_python.py" "$B"

# confluent-kafka (PyPI wheel with its own librdkafka)
cat >"$WORK/confluent.py" <<'EOF'
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition, ConsumerGroupState
from confluent_kafka.admin import (AdminClient, NewTopic, NewPartitions, ConfigResource,
                                   ConfigEntry, AlterConfigOpType, OffsetSpec)
b = sys.argv[1]
a = AdminClient({"bootstrap.servers": b})
def wait(fs):
    for k, f in fs.items():
        try:
            print(k, f.result(15))
        except Exception as e:
            print(k, "error", e)
wait(a.create_topics([NewTopic("ck", 2, 1, config={"retention.ms": "7200000",
                                                   "cleanup.policy": "delete"}),
                      NewTopic("ck-idem", 1, 1)]))
wait(a.create_partitions([NewPartitions("ck", 3)]))
wait(a.describe_configs([ConfigResource("topic", "ck"), ConfigResource("broker", "1")]))
wait(a.incremental_alter_configs([ConfigResource("topic", "ck", incremental_configs=[
    ConfigEntry("retention.ms", "9000000", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE)])]))
for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
    p = Producer({"bootstrap.servers": b, "enable.idempotence": True,
                  "compression.type": codec, "linger.ms": 20,
                  "client.id": "ck-" + codec})
    for i in range(10):
        p.produce("ck-idem", key=b"k%d" % i, value=(b"%s-%d " % (codec.encode(), i)) * 5,
                  headers={"h": b"v"})
        p.produce("ck", value=b"plain-%d" % i, partition=i % 3)
    print(codec, "unflushed", p.flush(15))
c = Consumer({"bootstrap.servers": b, "group.id": "ck-group", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe(["ck-idem", "ck"])
n, deadline = 0, time.time() + 20
while n < 80 and time.time() < deadline:
    m = c.poll(1)
    if m is not None and not m.error():
        n += 1
print("consumed", n)
c.commit(asynchronous=False)
print(c.committed([TopicPartition("ck-idem", 0)], timeout=10))
print(c.get_watermark_offsets(TopicPartition("ck-idem", 0), timeout=10))
print(c.offsets_for_times([TopicPartition("ck-idem", 0, 0)], timeout=10))
# A consumer resuming at an offset with its leader epoch validates it (OffsetForLeaderEpoch).
c2 = Consumer({"bootstrap.servers": b, "group.id": "ck-group-2", "auto.offset.reset": "earliest",
               "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
c2.assign([TopicPartition("ck-idem", 0, 5, leader_epoch=0), TopicPartition("ck", 1, 1)])
deadline = time.time() + 8
while time.time() < deadline:
    m = c2.poll(0.5)
    if m is not None and not m.error() and m.topic() == "ck-idem":
        break
print("resumed at", c2.position([TopicPartition("ck-idem", 0)]))
c2.close()
print(a.list_consumer_groups().result(15).valid)
wait(a.describe_consumer_groups(["ck-group"]))
c.close()
wait(a.list_offsets({TopicPartition("ck", 0): OffsetSpec.latest(),
                     TopicPartition("ck", 1): OffsetSpec.earliest(),
                     TopicPartition("ck", 2): OffsetSpec.max_timestamp()}))
wait(a.delete_records([TopicPartition("ck", 0, 2)]))
print(a.describe_cluster().result(15))
print(a.list_topics(timeout=10).topics.keys())
wait(a.delete_consumer_groups(["ck-group"]))
EOF
step "confluent-kafka" "$VENV_PY" "$WORK/confluent.py" "$B"

kt --delete --topic cli-doomed
cg --list

# Stop the broker first (its coordinator session ends through the relay), then the rest.
say "stopping the broker"
stop_pid "$BROKER_PID" 30
fourlw "$ZK_PROXY" ruok >/dev/null
sleep 1

# Watches that outlive a connection: zkCli sets some, the relay drops every connection, and
# zkCli reconnects with its session and re-registers them (SetWatches, SetWatches2).
zkcli_reconnect() { # zkcli_reconnect NAME WATCH-COMMANDS...
    local name=$1 out=$WORK/zkcli-$1.out
    shift
    echo "=== zkCli reconnect ($name)" >>"$WORK/clients.log"
    {
        printf 'create /zkw-%s "w"\ncreate /zkw-%s/c "c"\n' "$name" "$name"
        printf '%s\n' "$@"
        printf 'get /zkw-%s/c\n' "$name"
        for _ in $(seq 100); do grep -q "^c$" "$out" 2>/dev/null && break; sleep 0.2; done
        kill -USR1 "$ZK_RELAY_PID"
        sleep 3
        printf 'set /zkw-%s/c "changed"\ndeleteall /zkw-%s\nquit\n' "$name" "$name"
    } | timeout 60 "$ZKCLI" -server "$ZKS" >"$out" 2>&1 || FAILED+=("zkCli reconnect $name")
    cat "$out" >>"$WORK/clients.log"
}
zkcli_reconnect plain "get -w /zkw-plain" "ls -w /zkw-plain" "stat -w /zkw-plain/c"
zkcli_reconnect persistent "addWatch /zkw-persistent" "addWatch -m PERSISTENT /zkw-persistent/c" \
    "get -w /zkw-persistent"

# ---- 4. A three-node coord ensemble, peer and election ports behind relays ----------------
# Each node binds the real ports of its own server.N line; its other server.M lines name the
# relays of M, so every peer RPC passes a relay. snapCount is low so that snapshots exist and a
# node that was away catches up by InstallSnapshot.
say "coord ensemble"
read -r -a EP <<<"$("${REC[@]}" ports 15)"
for n in 1 2 3; do
    i=$(((n - 1) * 5))
    eval "CP$n=${EP[$i]} PP$n=${EP[$((i + 1))]} EL$n=${EP[$((i + 2))]}"
    eval "RP$n=${EP[$((i + 3))]} RE$n=${EP[$((i + 4))]}"
done
read -r ZR1 ZR2 ZR3 <<<"$("${REC[@]}" ports 3)"
ens_start() {
    local n=$1
    RUST_LOG=info "$BIN_DIR/coord" "$WORK/ens/zookeeper-$n.properties" \
        >>"$WORK/ens/coord-$n.log" 2>&1 &
    started $!
    eval "ENS_PID$n=$!"
}
mkdir -p "$WORK/ens"
for n in 1 2 3; do
    mkdir -p "$WORK/ens/zk-$n"
    echo "$n" >"$WORK/ens/zk-$n/myid"
    {
        echo "dataDir=$WORK/ens/zk-$n"
        echo "clientPort=$(eval echo "\$CP$n")"
        echo "clientPortAddress=127.0.0.1"
        echo "tickTime=500"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "maxClientCnxns=0"
        echo "4lw.commands.whitelist=*"
        echo "snapCount=100"
        for m in 1 2 3; do
            if [ "$m" = "$n" ]; then
                echo "server.$m=127.0.0.1:$(eval echo "\$PP$m"):$(eval echo "\$EL$m")"
            else
                echo "server.$m=127.0.0.1:$(eval echo "\$RP$m"):$(eval echo "\$RE$m")"
            fi
        done
    } >"$WORK/ens/zookeeper-$n.properties"
done
for n in 1 2 3; do
    relay grpc "$(eval echo "\$RP$n")" "127.0.0.1:$(eval echo "\$PP$n")" "$STAGE/raft_peer" peer
    relay grpc "$(eval echo "\$RE$n")" "127.0.0.1:$(eval echo "\$EL$n")" "$STAGE/raft_peer" election
    relay zk "$(eval echo "\$ZR$n")" "127.0.0.1:$(eval echo "\$CP$n")" "$STAGE/zk_client"
done
for n in 1 2 3; do ens_start $n; done
wait_mode "$CP1" "$CP2" "$CP3"
LEADER=
for n in 1 2 3; do
    fourlw "$(eval echo "\$CP$n")" srvr | grep -q '^Mode: leader' && LEADER=$n
done
[ -n "$LEADER" ] || { say "the ensemble has no leader"; exit 1; }
FOLLOWERS=()
for n in 1 2 3; do [ "$n" = "$LEADER" ] || FOLLOWERS+=("$n"); done
F1=${FOLLOWERS[0]} F2=${FOLLOWERS[1]}
say "ensemble leader is node $LEADER"

cat >"$WORK/ens_load.py" <<'EOF'
import sys
from kazoo.client import KazooClient
hosts, what = sys.argv[1], sys.argv[2]
zk = KazooClient(hosts=hosts, timeout=10)
zk.start(timeout=20)
if what == "mixed":
    # Writes sent to a follower are forwarded to the leader (Propose); sync is a read barrier.
    zk.ensure_path("/ens/a")
    zk.create("/ens/e-", b"eph", ephemeral=True, sequence=True)
    zk.set("/ens/a", b"x" * 300)
    t = zk.transaction()
    t.create("/ens/t1", b"1")
    t.create("/ens/t2", b"2")
    t.commit()
    zk.add_auth("digest", "user:pw")
    zk.sync("/ens")
    print(zk.get("/ens/a")[1].version, zk.get_children("/ens"))
    if zk.exists("/ens/t2"):
        zk.delete("/ens/t2")
else:
    # Enough entries that the log is compacted past what an absent node has; created and
    # deleted again so that the snapshots stay small.
    zk.ensure_path("/bulk")
    for i in range(int(what) // 2):
        zk.create("/bulk/n-%05d" % i, b"%d" % i)
        zk.delete("/bulk/n-%05d" % i)
    zk.sync("/bulk")
    print("bulk", len(zk.get_children("/bulk")))
zk.stop()
zk.close()
EOF
step "ensemble mixed (follower)" "$SYS_PY" "$WORK/ens_load.py" "127.0.0.1:$(eval echo "\$ZR$F1")" mixed
step "ensemble mixed (leader)" "$SYS_PY" "$WORK/ens_load.py" "127.0.0.1:$(eval echo "\$ZR$LEADER")" mixed
# Node F2 goes away while the others write and compact, then comes back.
stop_pid "$(eval echo "\$ENS_PID$F2")" 15
step "ensemble bulk" "$SYS_PY" "$WORK/ens_load.py" "127.0.0.1:$(eval echo "\$CP$LEADER")" 1300
ens_start "$F2"
wait_mode "$(eval echo "\$CP$F2")" || true
step "ensemble after return" "$SYS_PY" "$WORK/ens_load.py" "127.0.0.1:$(eval echo "\$ZR$F2")" mixed
sleep 2
# A leader change: elections through the relays. A client with watches, connected to the
# leader, moves its session to another node (a ConnectRequest with its session, SetWatches).
cat >"$WORK/ens_watcher.py" <<'EOF'
import os, sys, time
from kazoo.client import KazooClient
hosts, flag = sys.argv[1], sys.argv[2]
zk = KazooClient(hosts=hosts, timeout=10, randomize_hosts=False)
zk.start(timeout=20)
zk.ensure_path("/w/c")
zk.get("/w", watch=lambda e: print("data event", e))
zk.get_children("/w", watch=lambda e: print("child event", e))
zk.exists("/w/none", watch=lambda e: print("exists event", e))
print("watching", flush=True)
deadline = time.time() + 60
while not os.path.exists(flag) and time.time() < deadline:
    time.sleep(0.2)
zk.set("/w", b"after the leader change")
zk.create("/w/none", b"now")
print("children", zk.get_children("/w"))
zk.stop()
zk.close()
EOF
WATCH_FLAG=$WORK/ens/watcher-go
timeout 90 "$SYS_PY" "$WORK/ens_watcher.py" \
    "127.0.0.1:$(eval echo "\$ZR$LEADER"),127.0.0.1:$ZR1,127.0.0.1:$ZR2,127.0.0.1:$ZR3" \
    "$WATCH_FLAG" >>"$WORK/ens/watcher.log" 2>&1 &
WATCHER=$!
started $WATCHER
for _ in $(seq 100); do grep -q watching "$WORK/ens/watcher.log" 2>/dev/null && break; sleep 0.2; done
stop_pid "$(eval echo "\$ENS_PID$LEADER")" 15
sleep 3
ens_start "$LEADER"
wait_mode "$CP1" "$CP2" "$CP3" || true
touch "$WATCH_FLAG"
wait "$WATCHER" || { FAILED+=("ensemble watcher"); say "step failed: ensemble watcher"; }
sleep 1
for n in 1 2 3; do stop_pid "$(eval echo "\$ENS_PID$n")" 15; done
say "ensemble stopped; $(ls "$STAGE/raft_peer" | wc -l) peer seeds recorded"

# ---- 5. Corpora from stored data -----------------------------------------------------------
"${REC[@]}" snapshots --out "$STAGE/raft_peer" \
    $(find "$WORK/ens" "$WORK/zk" -name snapshot.bin 2>/dev/null) >&2
"${REC[@]}" segments --batches "$STAGE/record_batches" --recovery "$STAGE/log_recovery" \
    "$WORK/kafka-logs" >&2
for f in deploy/local/*.properties tests/fixtures/seed/*.properties; do
    [ -f "$f" ] && cp "$f" "$STAGE/properties/$(echo "$f" | tr / _)"
done
# The files written here, with fixed paths and ports so that reruns give the same seeds.
NORM=(-e "s|$WORK|/var/tmp/sluice|g")
for pair in "$ZK_PORT:2181" "$ZK_PROXY:2182" "$BROKER_PORT:9092" "$KAFKA_PROXY:9093"; do
    NORM+=(-e "s/\b${pair%%:*}\b/${pair##*:}/g")
done
for n in 1 2 3; do
    for pair in "CP:219" "PP:288" "EL:388" "RP:289" "RE:389"; do
        NORM+=(-e "s/\b$(eval echo "\$${pair%%:*}$n")\b/${pair##*:}$n/g")
    done
done
for f in "$WORK"/zookeeper.properties "$WORK"/server.properties "$WORK"/ens/zookeeper-*.properties; do
    sed "${NORM[@]}" "$f" >"$STAGE/properties/$(basename "$f")"
done

# Stop the relays so that every ZooKeeper connection's stream is written.
for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" 10; done
PIDS=()

# ---- 6. Into fuzz/corpus/<target> ----------------------------------------------------------
say "writing the corpora"
for t in kafka_request zk_client raft_peer record_batches log_recovery properties; do
    "${REC[@]}" finalize --target "$t" --corpus "$CORPUS/$t" --max-files "$MAX_FILES" \
        --max-bytes "$MAX_BYTES" $FRESH "$STAGE/$t"
done
"${REC[@]}" summary "$CORPUS"
if [ ${#FAILED[@]} -gt 0 ]; then
    say "client steps that failed (their traffic up to the failure is recorded):"
    printf '  %s\n' "${FAILED[@]}" >&2
fi
