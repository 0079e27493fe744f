#!/usr/bin/env bash
# How much the verdicts can be trusted on this machine: over repeated trials,
# the A/A false-alarm rate (same plugin on both sides), the detection rate of
# a 5% and a 10% slowdown and of +1 byte of memory, for `oombench compare`
# against a baseline and for `oombench ab`. Uses the `degrade` fixture plugin
# (tests/fixtures/degrade.c) built in four variants (base, slow5, slow10,
# mem1) on an MLP 512-768-768-10, batch 128, one BLAS thread: about 10 ms a
# step on one core of the development machine, long enough that a step is
# rarely cut by preemption. Each compare trial saves a baseline from
# BASE_RUNS runs of base (5: the between-run test of docs/verdicts.md; 1: the
# one-run test); ALPHA2, when set, also judges every compare trial's results
# with `compare --alpha ALPHA2` (no extra runs). AB_TRIALS=0 skips A/B.
# Results go to docs/verdicts.md by hand.
#
#   scripts/bench-verdicts.sh [BUILD_DIR]     (default: build/release)
#   TRIALS=100 BASE_RUNS=5 AB_TRIALS=15 AB_ROUNDS=10 STEPS=20 scripts/bench-verdicts.sh build/x
set -euo pipefail
build=${1:-build/release}
trials=${TRIALS:-100}
base_runs=${BASE_RUNS:-5}
alpha2=${ALPHA2:-}
ab_trials=${AB_TRIALS:-15}
ab_rounds=${AB_ROUNDS:-10}
steps=${STEPS:-20}
bin="$build/oombench"
fx="$build/tests/fixtures/degrade"
for v in base slow5 slow10 mem1; do
    test -f "$fx/$v/degrade.so" || { echo "missing $fx/$v/degrade.so: build the tests first"; exit 2; }
done
export NO_COLOR=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/bench.yaml" <<YAML
name: bench
model:
  input: 512
  classes: 10
  layers: [{linear: 768}, relu, {linear: 768}, relu, {linear: 10}]
input: {kind: synthetic, seed: 7}
mode: train
batch: 128
optimizer: {name: sgd, lr: 1e-2}
steps: {warmup: 2, measured: $steps}
budget: 1GiB
backend: cpu
timeout: 60s
strategies:
  - degrade
YAML
start=$(date +%s)
declare -A hit step
variants=(base slow5 slow10 mem1)
for v in "${variants[@]}"; do
    for m in cmp cmp2 ab; do hit[${m}_$v]=0; step[${m}_$v]=0; done
done

# verdict LOG KIND: 1 when the log holds a regression of that kind.
verdict() {
    case $2 in
        any) grep -qE "^REGRESSED" "$1" ;;
        time) grep -E "^REGRESSED" "$1" | grep -qE " (time\.|throughput)" ;;
        mem) grep -E "^REGRESSED" "$1" | grep -qE " memory\." ;;
        step) grep -E "^REGRESSED" "$1" | grep -qE " time\.step " ;;
    esac
}
kind_of() { case $1 in base) echo any ;; mem1) echo mem ;; *) echo time ;; esac; }

echo "compare against a baseline of $base_runs run(s): $trials trials"
for ((t = 0; t < trials; t++)); do
    rm -rf "$tmp/r" "$tmp/bl"
    for ((i = 0; i < base_runs; i++)); do
        "$bin" run --quiet --out "$tmp/r/base$i" -P "$fx/base" "$tmp/bench.yaml" >/dev/null
    done
    "$bin" baseline save --baseline "$tmp/bl" "$tmp"/r/base[0-9]*/*.json >/dev/null
    for v in "${variants[@]}"; do
        "$bin" run --quiet --out "$tmp/r/$v" -P "$fx/$v" --compare --baseline "$tmp/bl" \
            "$tmp/bench.yaml" >"$tmp/log" 2>&1 || true
        if verdict "$tmp/log" "$(kind_of "$v")"; then hit[cmp_$v]=$((hit[cmp_$v] + 1)); fi
        if verdict "$tmp/log" step; then step[cmp_$v]=$((step[cmp_$v] + 1)); fi
        if [ -n "$alpha2" ]; then
            "$bin" compare --alpha "$alpha2" --baseline "$tmp/bl" "$tmp"/r/$v/*.json \
                >"$tmp/log2" 2>&1 || true
            if verdict "$tmp/log2" "$(kind_of "$v")"; then hit[cmp2_$v]=$((hit[cmp2_$v] + 1)); fi
            if verdict "$tmp/log2" step; then step[cmp2_$v]=$((step[cmp2_$v] + 1)); fi
        fi
    done
done
echo "A/B: $ab_trials trials of $ab_rounds rounds"
for ((t = 0; t < ab_trials; t++)); do
    for v in "${variants[@]}"; do
        "$bin" ab --quiet --rounds "$ab_rounds" --out "$tmp/ab" --base "$fx/base" \
            --head "$fx/$v" "$tmp/bench.yaml" >"$tmp/log" 2>&1 || true
        if verdict "$tmp/log" "$(kind_of "$v")"; then hit[ab_$v]=$((hit[ab_$v] + 1)); fi
        if verdict "$tmp/log" step; then step[ab_$v]=$((step[ab_$v] + 1)); fi
    done
done
secs=$(($(date +%s) - start))
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b) printf "%.1f%% (%d/%d)", 100 * a / b, a, b; else printf "-" }'; }
echo
n2=0; h2=""; s2=""
if [ -n "$alpha2" ]; then n2=$trials; h2=" --alpha $alpha2 ($trials trials) |"; s2="---|"; fi
col2() { if [ -n "$alpha2" ]; then echo " $(pct "$1" "$n2") |"; fi; }
row() { # LABEL ARRAY VARIANT
    local -n a=$2
    echo "| $1 | $(pct "${a[cmp_$3]}" "$trials") |$(col2 "${a[cmp2_$3]}") $(pct "${a[ab_$3]}" "$ab_trials") |"
}
echo "| | compare vs a $base_runs-run baseline ($trials trials) |$h2 A/B, $ab_rounds rounds ($ab_trials trials) |"
echo "|---|---|$s2---|"
row "A/A false alarms (any regression)" hit base
row "5% slowdown detected" hit slow5
row "10% slowdown detected" hit slow10
row "A/A false alarms on the step time" step base
row "5% slowdown: step time regressed" step slow5
row "10% slowdown: step time regressed" step slow10
row "+1 byte detected" hit mem1
echo
med=$(python3 -c 'import json,sys; print("%.2f ms" % (json.load(open(sys.argv[1]))["runs"][0]["time"]["median"] / 1e6))' "$(ls "$tmp"/r/base0/*.json | head -1)" 2>/dev/null || echo "?")
echo "$steps measured steps a run (base step median $med in the last trial); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); ${secs}s"
