#!/usr/bin/env bash
# Apache Kafka (4.x, KRaft: one process as broker and controller) from Maven Central's jars, to
# measure and compare side by side with this project. Nothing is built: Maven resolves the
# published jars (scripts/kafka-peer/pom.xml) once into KAFKA_PEER_HOME.
#
#   scripts/kafka-peer.sh classpath          resolve the jars if needed, print the classpath
#   scripts/kafka-peer.sh start DIR PORT     format DIR and start Kafka on 127.0.0.1:PORT (the
#                                            controller on PORT+1); prints its PID
#   scripts/kafka-peer.sh start3 DIR PORT    three nodes, each broker and controller (a
#                                            three-voter KRaft quorum), brokers on PORT..PORT+2,
#                                            controllers on PORT+10..PORT+12, Kafka's
#                                            replication defaults for three brokers
#                                            (min.insync.replicas=2, internal topics on 3);
#                                            prints their PIDs
#
# Kafka runs with the settings of its own kafka-server-start.sh (1 GiB heap, G1) and the
# server.properties of its quickstart, single-node (replication factors 1), plus what the
# measurement needs: group.initial.rebalance.delay.ms=0, as this project's bench configs.
# KAFKA_PEER_HOME (default /var/tmp/sluice-kafka-peer) keeps the jars.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_PEER_HOME=${KAFKA_PEER_HOME:-/var/tmp/sluice-kafka-peer}
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka-peer/pom.xml")
LIBS="$KAFKA_PEER_HOME/$VERSION/libs"

classpath() {
    if [ ! -f "$LIBS/.complete" ]; then
        command -v mvn >/dev/null || { echo "kafka-peer: mvn (Maven) is needed" >&2; exit 1; }
        echo "kafka-peer: resolving Apache Kafka $VERSION jars into $LIBS" >&2
        mkdir -p "$LIBS"
        mvn -q -f "$HERE/kafka-peer/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$LIBS" >&2
        touch "$LIBS/.complete"
    fi
    echo "$LIBS/*"
}

start() { # dir port
    local dir=$1 port=$2 cp
    cp=$(classpath)
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((port + 1))
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=$dir/kafka-logs
num.partitions=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
group.initial.rebalance.delay.ms=0
PROPS
    cat >"$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" -Dlog4j.configuration="file:$dir/log4j.properties" kafka.tools.StorageTool \
        format -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
    java -Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dlog4j.configuration="file:$dir/log4j.properties" \
        -cp "$cp" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    echo $!
}

# node_props DIR ID PORT CONTROLLER_PORT VOTERS EXTRA: one node's server.properties.
node_props() {
    local dir=$1 id=$2 port=$3 cport=$4 voters=$5 extra=$6
    cat <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=$dir/kafka-logs
num.partitions=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
group.initial.rebalance.delay.ms=0
$extra
PROPS
}

# The three nodes share one JVM setting each (Kafka's start script's) and one cluster id.
start3() { # dir port
    local dir=$1 port=$2 cp id voters="" i
    cp=$(classpath)
    for i in 1 2 3; do voters+="${voters:+,}$i@127.0.0.1:$((port + 9 + i))"; done
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    for i in 1 2 3; do
        local d="$dir/node-$i"
        mkdir -p "$d"
        node_props "$d" "$i" $((port + i - 1)) $((port + 9 + i)) "$voters" \
            "offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
default.replication.factor=3
min.insync.replicas=2" >"$d/server.properties"
        log4j "$d"
        java -cp "$cp" -Dlog4j.configuration="file:$d/log4j.properties" kafka.tools.StorageTool \
            format -t "$id" -c "$d/server.properties" >"$d/format.log" 2>&1
    done
    for i in 1 2 3; do
        run_node "$cp" "$dir/node-$i"
    done
}

log4j() {
    cat >"$1/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
}

run_node() { # classpath dir; prints the PID
    local cp=$1 d=$2
    java -Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dlog4j.configuration="file:$d/log4j.properties" \
        -cp "$cp" kafka.Kafka "$d/server.properties" >"$d/kafka.log" 2>&1 &
    echo $!
}

case ${1:-} in
    classpath) classpath ;;
    start3) [ $# -eq 3 ] || { echo "usage: $0 start3 DIR PORT" >&2; exit 2; }; start3 "$2" "$3" ;;
    start) [ $# -eq 3 ] || { echo "usage: $0 start DIR PORT" >&2; exit 2; }; start "$2" "$3" ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
esac
