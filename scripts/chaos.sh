#!/usr/bin/env bash
# The randomized fault schedule of tests/tests/broker_chaos.rs for longer than CI runs it:
# three brokers, replication factor 3, an idempotent acks=all producer, one fault at a time
# (kill, stop, pause, disk wiped), every acknowledged record checked at the end.
#
#   scripts/chaos.sh                 an hour
#   scripts/chaos.sh 600             ten minutes
#   SLUICE_CHAOS_SEED=123 scripts/chaos.sh 120   replay a schedule
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-3600}
cargo build --quiet --bins
# The whole output (the verdict's details, the brokers' log tails) is kept in CHAOS_LOG.
log=${CHAOS_LOG:-/tmp/sluice-chaos-$(date +%Y%m%d-%H%M%S).log}
echo "full output: $log"
SLUICE_CHAOS_SECONDS=$seconds cargo nextest run -p sluice-e2e --test broker_chaos \
    --profile chaos --no-capture 2>&1 | tee "$log" | grep -E '^(chaos|fault)|PASS|FAIL|panicked'
