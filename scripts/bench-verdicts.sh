#!/usr/bin/env bash
# How much the verdicts can be trusted on this machine: over repeated trials,
# the A/A false-alarm rate (same plugin on both sides), the detection rate of
# a 5% and a 10% slowdown and of +1 byte of memory, for `oombench compare`
# against a stored baseline and for `oombench ab`. Uses the `degrade` fixture
# plugin (tests/fixtures/degrade.c) built in four variants (base, slow5,
# slow10, mem1) on an MLP 512-768-768-10, batch 128, one BLAS thread: about
# 10 ms a step on one core of the development machine.
#
# A compare trial saves a baseline from BASE_RUNS runs of base (`run
# --calibrate --repeat`), then runs each variant HEAD_RUNS times with `run
# --calibrate --repeat HEAD_RUNS --compare` (the between-run test of
# docs/verdicts.md on times divided by the calibration GEMM), and judges the
# same head files once more with a plain `compare` (raw times). An A/B
# trial runs `ab --base base --head VARIANT --rounds AB_ROUNDS` for each
# variant. Compare and A/B trials alternate, so both see the same machine.
# Memory verdicts are exact and do not depend on how many runs there are:
# the +1 byte variant (mem1) runs MEM_RUNS times (2) in either mode.
# Every trial's step-time verdict goes to LOG (CSV) when set. Results go to
# docs/verdicts.md by hand.
#
#   scripts/bench-verdicts.sh [BUILD_DIR]     (default: build/release)
#   TRIALS=60 BASE_RUNS=10 HEAD_RUNS=10 AB_TRIALS=60 AB_ROUNDS=15 MEM_RUNS=2 STEPS=20 \
#       LOG=trials.csv scripts/bench-verdicts.sh build/x
set -euo pipefail
build=${1:-build/release}
trials=${TRIALS:-60}
base_runs=${BASE_RUNS:-10}
head_runs=${HEAD_RUNS:-10}
ab_trials=${AB_TRIALS:-60}
ab_rounds=${AB_ROUNDS:-15}
mem_runs=${MEM_RUNS:-2}
steps=${STEPS:-20}
log=${LOG:-/dev/null}
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
    for m in cmp raw ab; do hit[${m}_$v]=0; step[${m}_$v]=0; done
done
echo "mode,trial,variant,regressed,step_change_pct,step_ci_low_pct,step_ci_high_pct,metrics" >"$log"

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
# tally MODE TRIAL VARIANT LOGFILE
tally() {
    local r=0
    if verdict "$4" "$(kind_of "$3")"; then hit[$1_$3]=$((hit[$1_$3] + 1)); r=1; fi
    if verdict "$4" step; then step[$1_$3]=$((step[$1_$3] + 1)); fi
    # "+8.25% [+5.52%, +11.05%]" of the time.step row
    local c
    c=$(grep -E " time\.step " "$4" | head -1 |
        sed -nE 's/.* ([+-][0-9.]+)% \[([+-][0-9.]+)%, ([+-][0-9.]+)%\].*/\1,\2,\3/p')
    # the metrics that regressed, e.g. "time.step;throughput"
    local m
    m=$(grep -E "^REGRESSED" "$4" | awk '{print $6}' | paste -sd';' -) || true
    echo "$1,$2,$3,$r,${c:-,,},$m" >>"$log"
}

echo "compare: $trials trials, baseline of $base_runs runs, heads of $head_runs runs;" \
    "A/B: $ab_trials trials of $ab_rounds rounds; alternating"
n=$((trials > ab_trials ? trials : ab_trials))
for ((t = 0; t < n; t++)); do
    if ((t < trials)); then
        rm -rf "$tmp/r" "$tmp/bl"
        "$bin" run --quiet --calibrate --repeat "$base_runs" --out "$tmp/r/base" -P "$fx/base" \
            "$tmp/bench.yaml" >/dev/null
        "$bin" baseline save --baseline "$tmp/bl" "$tmp"/r/base/*.json >/dev/null
        for v in "${variants[@]}"; do
            reps=$head_runs
            [ "$v" = mem1 ] && reps=$mem_runs
            "$bin" run --quiet --calibrate --repeat "$reps" --out "$tmp/r/$v" -P "$fx/$v" \
                --compare --baseline "$tmp/bl" "$tmp/bench.yaml" >"$tmp/log" 2>&1 || true
            grep -q "times normalised by the calibration GEMM" "$tmp/log" ||
                { cat "$tmp/log"; echo "not normalised"; exit 1; }
            tally cmp "$t" "$v" "$tmp/log"
            "$bin" compare --baseline "$tmp/bl" "$tmp/r/$v"/*.json >"$tmp/log" 2>&1 || true
            tally raw "$t" "$v" "$tmp/log"
        done
    fi
    if ((t < ab_trials)); then
        for v in "${variants[@]}"; do
            rm -rf "$tmp/ab"
            rounds=$ab_rounds
            [ "$v" = mem1 ] && rounds=$mem_runs
            "$bin" ab --quiet --rounds "$rounds" --out "$tmp/ab" --base "$fx/base" \
                --head "$fx/$v" "$tmp/bench.yaml" >"$tmp/log" 2>&1 || true
            tally ab "$t" "$v" "$tmp/log"
        done
    fi
    echo "trial $((t + 1))/$n ($(($(date +%s) - start)) s): compare A/A ${hit[cmp_base]}," \
        "slow5 ${hit[cmp_slow5]}, slow10 ${hit[cmp_slow10]}, mem1 ${hit[cmp_mem1]};" \
        "raw A/A ${hit[raw_base]}, slow5 ${hit[raw_slow5]}, slow10 ${hit[raw_slow10]};" \
        "A/B A/A ${hit[ab_base]}, slow5 ${hit[ab_slow5]}, slow10 ${hit[ab_slow10]}, mem1 ${hit[ab_mem1]}"
done
secs=$(($(date +%s) - start))
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b) printf "%.1f%% (%d/%d)", 100 * a / b, a, b; else printf "-" }'; }
row() { # LABEL ARRAY VARIANT
    local -n a=$2
    echo "| $1 | $(pct "${a[cmp_$3]}" "$trials") | $(pct "${a[raw_$3]}" "$trials") | $(pct "${a[ab_$3]}" "$ab_trials") |"
}
echo
echo "| | compare --normalize, $base_runs-run baseline, $head_runs head runs ($trials trials) | the same runs, raw times | A/B, $ab_rounds rounds ($ab_trials trials) |"
echo "|---|---|---|---|"
row "A/A false alarms (any regression)" hit base
row "5% slowdown detected" hit slow5
row "10% slowdown detected" hit slow10
row "A/A false alarms on the step time" step base
row "5% slowdown: step time regressed" step slow5
row "10% slowdown: step time regressed" step slow10
row "+1 byte detected" hit mem1
echo
echo "$steps measured steps a run; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); ${secs}s"
