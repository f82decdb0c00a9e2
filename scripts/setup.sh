#!/usr/bin/env bash
# Installs what building and testing need, on a fresh Debian machine or this one. Idempotent:
# it only installs what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

# Debian packages:
#   zookeeper          a real ZooKeeper 3.8 and zkCli.sh, to test and compare against
#   python3-kazoo      the kazoo ZooKeeper client (for Debian's /usr/bin/python3)
#   netcat-openbsd     nc, for four-letter words in scripts
#   kcat               the librdkafka command-line client, to test the broker with
#   python3-kafka      kafka-python (for Debian's /usr/bin/python3), to test consumer groups
#   rsyslog, rsyslog-kafka  the log shipper and its omkafka output, to test log shipping
#   burrow             the consumer-lag monitor (sarama inside), which reads __consumer_offsets
#   bsdutils           `script`, which gives zookeeper-shell a terminal in its prompt test
#   iproute2           `ip netns`: one network namespace per host in the three-host test
#   systemd            `systemd-analyze verify` for the units of deploy/systemd
#   prometheus         a real Prometheus scraping the daemons' /metrics; promtool checks rules
#   libivykis0 ... librdkafka1  what syslog-ng and its kafka-c module load (see below)
#   libssl-dev, pkg-config  OpenSSL for librdkafka's TLS in the tests and kafka-load (rdkafka's
#                      `ssl` feature; the broker itself uses rustls)
#   openssl            the command-line tool the TLS tests make their certificates with
APT_PACKAGES=(zookeeper python3-kazoo netcat-openbsd kcat python3-kafka bsdutils iproute2 systemd
    prometheus libssl-dev pkg-config openssl
    rsyslog rsyslog-kafka burrow
    libivykis0 libnet1 libwrap0 libjson-c5 libglib2.0-0 libpcre3 libcap2 libssl3 libsystemd0
    librdkafka1)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# syslog-ng (the other Debian log shipper with a Kafka output) cannot be installed next to
# rsyslog: both packages claim the system log daemon. Its packages are unpacked instead, into
# SYSLOG_NG_ROOT, and the tests run it from there (with its shared library beside it).
SYSLOG_NG_ROOT=${SYSLOG_NG_ROOT:-/var/tmp/sluice-syslog-ng}
if [ ! -x "$SYSLOG_NG_ROOT/root/usr/sbin/syslog-ng" ]; then
    echo "setup: unpacking syslog-ng-core and syslog-ng-mod-rdkafka into $SYSLOG_NG_ROOT" >&2
    mkdir -p "$SYSLOG_NG_ROOT"
    (
        cd "$SYSLOG_NG_ROOT"
        apt-get download syslog-ng-core syslog-ng-mod-rdkafka >/dev/null 2>&1 || {
            $SUDO apt-get update -qq && apt-get download syslog-ng-core syslog-ng-mod-rdkafka >/dev/null
        }
        for deb in syslog-ng-core_*.deb syslog-ng-mod-rdkafka_*.deb; do
            dpkg -x "$deb" root
        done
        rm -f ./*.deb
    )
fi

# Python clients from PyPI that Debian does not package, in a virtual environment of their own
# (the tests find it at SLUICE_PY_VENV): confluent-kafka, whose wheel carries its own librdkafka
# (2.16), newer than the one the Rust tests build.
SLUICE_PY_VENV=${SLUICE_PY_VENV:-/var/tmp/sluice-py}
PY_PACKAGES=(confluent-kafka==2.16.1)
if ! "$SLUICE_PY_VENV/bin/python3" -c 'import confluent_kafka' >/dev/null 2>&1; then
    echo "setup: creating $SLUICE_PY_VENV with ${PY_PACKAGES[*]}" >&2
    python3 -m venv "$SLUICE_PY_VENV"
    "$SLUICE_PY_VENV/bin/pip" install -q "${PY_PACKAGES[@]}"
fi

# ZooKeeper's Prometheus metrics provider from Maven Central, of the version of Debian's zookeeper
# package, and the simpleclient jars it uses, into SLUICE_ZK_PROM (tests/tests/coord_metrics.rs
# runs real ZooKeeper with metricsProvider.className beside coord). ZooKeeper itself and the
# Jetty the provider serves /metrics with (libjetty9-java, a dependency of Debian's zookeeper)
# are Debian's.
SLUICE_ZK_PROM=${SLUICE_ZK_PROM:-/var/tmp/sluice-zk-prom}
ZK_VERSION=$(dpkg-query -W -f='${Version}' libzookeeper-java | sed 's/-.*//')
if [ ! -f "$SLUICE_ZK_PROM/$ZK_VERSION/.complete" ]; then
    echo "setup: resolving zookeeper-prometheus-metrics $ZK_VERSION into $SLUICE_ZK_PROM/$ZK_VERSION" >&2
    mvn -q -B -f "$(dirname "${BASH_SOURCE[0]}")/zk-prometheus/pom.xml" \
        -Dzookeeper.version="$ZK_VERSION" dependency:copy-dependencies \
        -DoutputDirectory="$SLUICE_ZK_PROM/$ZK_VERSION" >&2
    touch "$SLUICE_ZK_PROM/$ZK_VERSION/.complete"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi

# The client families of tests/clients (tests/tests/client_families.rs, kafka_on_coord.rs), each
# from its own registry, into SLUICE_CLIENTS: from Maven Central the Java client jars of the 3.9
# line and the newest 4.x, Apache Kafka's command-line tools, and Apache Kafka 3.9's broker (the
# last line with ZooKeeper mode); franz-go and sarama built from tests/clients/go (the Go module
# proxy); kafkajs into tests/clients/node/node_modules (npm).
SLUICE_CLIENTS=${SLUICE_CLIENTS:-/var/tmp/sluice-clients}
CLIENTS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/clients" && pwd)
for line in client-3.9.1 client-4.4.0 tools-4.4.0 broker-3.9.1; do
    dir="$SLUICE_CLIENTS/java/$line"
    [ -f "$dir/.complete" ] && continue
    echo "setup: resolving the Java $line jars into $dir" >&2
    mvn -q -B -f "$CLIENTS_SRC/java/pom.xml" -P"${line%-*}" -Dkafka.version="${line#*-}" \
        dependency:copy-dependencies -DoutputDirectory="$dir" >&2
    touch "$dir/.complete"
done
(cd "$CLIENTS_SRC/go" && go build -o "$SLUICE_CLIENTS/go/bin/" ./franz ./sarama)
if [ ! -d "$CLIENTS_SRC/node/node_modules/kafkajs" ]; then
    echo "setup: installing kafkajs into $CLIENTS_SRC/node" >&2
    (cd "$CLIENTS_SRC/node" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
