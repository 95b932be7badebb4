#!/usr/bin/env bash
# Runs the libFuzzer harnesses built in BUILD (see tests/fuzz/README.md).
#
#   run.sh [--replay] [--fresh] BUILD SECONDS HARNESS...
#
#   --replay  first run every file of tests/fuzz/regressions/HARNESS and
#             tests/fuzz/corpus/HARNESS once (libFuzzer runs files given as
#             arguments and stops at the first crash)
#   --fresh   fuzz from an empty working corpus (BUILD/short/HARNESS), so
#             the run is bounded and does not depend on earlier runs;
#             otherwise the corpus grows in BUILD/work/HARNESS
#   SECONDS   time to fuzz each harness (-max_total_time); 0: no fuzzing
#
# Exits non-zero on the first crash, leak, timeout or broken invariant; the
# input is saved as BUILD/artifacts/HARNESS-crash-* (add it to
# tests/fuzz/regressions/HARNESS once fixed). Prints executions per second
# and total executions of every fuzzing run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
replay=0 fresh=0
while [ $# -gt 0 ]; do
    case $1 in
    --replay) replay=1; shift ;;
    --fresh) fresh=1; shift ;;
    *) break ;;
    esac
done
[ $# -ge 3 ] || { echo "usage: $0 [--replay] [--fresh] BUILD SECONDS HARNESS..." >&2; exit 2; }
build=$1 seconds=$2
shift 2
mkdir -p "$build/artifacts" "$build/logs"
passed=0 failed=0

fail() { # harness log
    echo "fuzz_$1: FAILED; last lines of $2:" >&2
    grep -v -E '^(#[0-9]+|Running: |Executed )' "$2" | tail -n 40 >&2
    failed=$((failed + 1))
}

for h in "$@"; do
    bin=$build/fuzz_$h
    [ -x "$bin" ] || { echo "missing $bin: build it first (make fuzz-build)" >&2; exit 2; }
    flags=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/$h-"
           -dict="$here/$h.dict")
    ok=1
    if [ $replay = 1 ]; then
        log=$build/logs/$h-replay.log
        mapfile -d '' files < <(find "$here/regressions/$h" "$here/corpus/$h" -type f -print0 | sort -z)
        if "$bin" "${flags[@]}" "${files[@]}" >"$log" 2>&1; then
            echo "fuzz_$h: ${#files[@]} regression and seed inputs replayed, no failure"
        else
            fail "$h" "$log"
            ok=0
        fi
    fi
    if [ $ok = 1 ] && [ "$seconds" -gt 0 ]; then
        log=$build/logs/$h-fuzz.log
        if [ $fresh = 1 ]; then
            work=$build/short/$h
            rm -rf "$work"
        else
            work=$build/work/$h
        fi
        mkdir -p "$work"
        if "$bin" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 \
            "$work" "$here/corpus/$h" "$here/regressions/$h" >"$log" 2>&1; then
            execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
            rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
            cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
            echo "fuzz_$h: ${seconds}s, ${execs} executions, ${rate} exec/s, ${cov}, no failure"
        else
            fail "$h" "$log"
            ok=0
        fi
    fi
    if [ $ok = 1 ]; then passed=$((passed + 1)); fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed = 0 ]
