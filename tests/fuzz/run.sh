#!/usr/bin/env bash
# Bounded fuzzing of the libFuzzer targets (docs/fuzzing.md).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# Runs each target (default: scenario check results) for SECONDS with its
# seed corpus and dictionary, one after another, keeping what it learns in
# BUILD_DIR/fuzz/corpus/TARGET and any crashing input in
# BUILD_DIR/fuzz/artifacts/. Exits 1 when a target finds a crash, a leak, a
# timeout or a sanitizer report, printing the input to reproduce it with.
set -uo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(scenario check results)
src=$(cd "$(dirname "$0")/../.." && pwd)

seeds() {
    case $1 in
    scenario) echo "$src/scenarios $src/tests/data/scenarios/good $src/tests/data/scenarios/bad $src/tests/fuzz/corpus/scenario" ;;
    check) echo "$src/tests/fuzz/corpus/check" ;;
    results) echo "$src/tests/fuzz/corpus/results" ;;
    esac
}
max_len() {
    case $1 in
    check) echo 2048 ;;
    *) echo 16384 ;;
    esac
}

failed=0
for t in "${targets[@]}"; do
    bin=$build/fuzz/fuzz_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing; build it with: cmake --preset fuzz && cmake --build --preset fuzz"
        exit 2
    fi
    corpus=$build/fuzz/corpus/$t
    artifacts=$build/fuzz/artifacts
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [ -f "$src/tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
    log=$build/fuzz/fuzz_$t.log
    # shellcheck disable=SC2046
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "${dict[@]}" \
        "$corpus" $(seeds "$t") >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        failed=1
        echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} runs; log: $log"
        grep -E 'ERROR|SUMMARY|Test unit written|unexpected' "$log" | head -20
    else
        echo "fuzz $t: ok, ${runs:-?} runs in ${secs}s (${speed:-?}/s), ${cov:-cov: ?}"
    fi
done
exit $failed
