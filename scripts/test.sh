#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every test of the workspace
# (unit, property, end-to-end with real processes) with nextest, then the doc tests.
# Extra arguments go to nextest, e.g. scripts/test.sh -p sluice-config.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
# The flood tests hold 10,000 connections open (in the test and in the broker it starts).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo nextest run --workspace --no-fail-fast "$@"
if [ $# -eq 0 ]; then
    cargo test --workspace --doc --quiet
fi
