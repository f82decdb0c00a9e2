#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ with libFuzzer (cargo fuzz), each for a bounded time, starting
# from the committed seed corpora (fuzz/corpus/<target>, recorded from real clients) plus what
# earlier runs on this machine found (FUZZ_WORK/<target>). A crash, a hang or an oversized
# allocation fails the run; its input is kept in FUZZ_WORK/artifacts/<target>/ and the last
# lines of the report are printed. See fuzz/README.md.
#
#   scripts/fuzz.sh                       every target, 60 s each (CI runs a shorter budget)
#   scripts/fuzz.sh --seconds 3600        an hour each (the long runs)
#   scripts/fuzz.sh --jobs 2 kafka_request zk_client
#
# FUZZ_WORK (default /var/tmp/sluice-fuzz) keeps the growing corpora, artifacts and logs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_TARGET=60
JOBS=1
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_TARGET=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
ALL=(kafka_request record_batches zk_client raft_peer properties log_recovery)
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
WORK=${FUZZ_WORK:-/var/tmp/sluice-fuzz}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}

# libFuzzer needs coverage instrumentation flags that only the nightly compiler takes.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain (minimal profile)" >&2
    rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
# No sanitizer: the code under test is safe Rust, and the targets' counting allocator
# (fuzz/src/lib.rs) is what turns an oversized allocation into a crash.
(cd fuzz && cargo +nightly fuzz build -s none 2>&1 | grep -vE '^\s+(Compiling|Fresh)' >&2)
BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

# Largest input per target (libFuzzer's -max_len).
max_len() {
    case "$1" in
        kafka_request | record_batches | log_recovery) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

run_one() {
    local t=$1
    local corpus="$WORK/$t" art="$WORK/artifacts/$t/" log="$WORK/logs/$t.log"
    mkdir -p "$corpus" "$art" "$WORK/logs"
    local seeds=()
    [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
    local rc=0
    nice -n 10 "$BIN/$t" "$corpus" "${seeds[@]}" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art" -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    local stats
    stats=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/ +/ /g')
    if [ $rc -ne 0 ]; then
        echo "FAIL $t (exit $rc): $stats"
        grep -vE '^(#[0-9]+|INFO:|\s+NEW_FUNC)' "$log" | tail -25 | sed 's/^/    /'
        ls -1t "$art" | head -3 | sed "s|^|    input kept: $art|"
        return 1
    fi
    echo "ok   $t ${SECONDS_PER_TARGET}s: $stats"
}

export -f run_one max_len
export WORK BIN SECONDS_PER_TARGET
failed=0
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}' || failed=1
exit $failed
