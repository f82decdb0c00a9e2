#!/usr/bin/env bash
# Installs what building and testing need, on a fresh Debian machine or this one. Idempotent:
# it only installs what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

# Debian packages:
#   protobuf-compiler  protoc, for the peer RPC definitions in proto/
#   zookeeper          a real ZooKeeper 3.8 and zkCli.sh, to test and compare against
#   python3-kazoo      the kazoo ZooKeeper client (for Debian's /usr/bin/python3)
#   netcat-openbsd     nc, for four-letter words in scripts
#   kcat               the librdkafka command-line client, to test the broker with
#   python3-kafka      kafka-python (for Debian's /usr/bin/python3), to test consumer groups
#   rsyslog, rsyslog-kafka  the log shipper and its omkafka output, to test log shipping
APT_PACKAGES=(protobuf-compiler zookeeper python3-kazoo netcat-openbsd kcat python3-kafka
    rsyslog rsyslog-kafka)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi
