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
#       VARIANTS="base slow5 slow10 mem1" LOG=trials.csv scripts/bench-verdicts.sh build/x
#
# MODE=busy: the same model with BUSY (2) CPU-bound busy processes running
# the whole time, one per core of the development machine, as on a CI runner
# shared with other jobs. TRIALS A/A trials of (a) a calibrated wall-time
# compare (a baseline of BUSY_RUNS (5) `run --calibrate` runs, then `run
# --calibrate --repeat BUSY_RUNS --compare`), counting false regressions and
# inconclusive step times; and of (b) `run --instructions` (INSTR_STEPS (3)
# measured steps; each base run compared with the previous one), counting
# false regressions, next to a head doing WORK_PCT (degrade's work_pct) more
# work, counting detections; and the largest difference between the
# instruction counts of two runs of the same build. Use a build without CUDA
# (cmake --preset cpu-only): valgrind reads every linked library's symbols
# at start, and cuBLASLt's take it about 10 s.
#
#   MODE=busy TRIALS=100 scripts/bench-verdicts.sh build/cpu-only
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
read -r -a variants <<<"${VARIANTS:-base slow5 slow10 mem1}"
for v in "${variants[@]}"; do
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
for v in base slow5 slow10 mem1; do
    for m in cmp raw ab; do hit[${m}_$v]=0; step[${m}_$v]=0; done
done

if [ "${MODE:-quiet}" = busy ]; then
    busy=${BUSY:-2}
    runs=${BUSY_RUNS:-5}
    isteps=${INSTR_STEPS:-3}
    work=${WORK_PCT:-2.5}
    command -v valgrind >/dev/null || { echo "valgrind missing (scripts/setup.sh)"; exit 2; }
    pids=()
    for ((i = 0; i < busy; i++)); do
        (while :; do :; done) &
        pids+=($!)
    done
    trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
    sed -e "s/measured: $steps/measured: $isteps/" "$tmp/bench.yaml" >"$tmp/instr.yaml"
    sed -e "s/  - degrade/  - {plugin: degrade, params: {work_pct: $work}}/" "$tmp/instr.yaml" \
        >"$tmp/work.yaml"
    echo "mode,trial,regressed,inconclusive,step_verdict,step_detail" >"$log"
    fa=0 inc=0 fb=0 det=0 maxdiff=0 prev=""
    work_pct_seen=""
    echo "busy: $busy busy processes; $trials trials; (a) $runs + $runs calibrated runs," \
        "(b) --instructions, $isteps steps, work_pct $work"
    for ((t = 0; t < trials; t++)); do
        # (a) calibrated wall time, baseline and head made under the same load
        rm -rf "$tmp/r" "$tmp/bl"
        "$bin" run --quiet --calibrate --repeat "$runs" --out "$tmp/r/base" -P "$fx/base" \
            "$tmp/bench.yaml" >/dev/null
        "$bin" baseline save --baseline "$tmp/bl" "$tmp"/r/base/*.json >/dev/null
        "$bin" run --quiet --calibrate --repeat "$runs" --out "$tmp/r/head" -P "$fx/base" \
            --compare --baseline "$tmp/bl" "$tmp/bench.yaml" >"$tmp/log" 2>&1 || true
        r=0 i=0
        grep -qE "^REGRESSED" "$tmp/log" && { r=1; fa=$((fa + 1)); }
        grep -qE "^INCONCLUSIVE .* time\.step " "$tmp/log" && { i=1; inc=$((inc + 1)); }
        line=$(grep -E " time\.step " "$tmp/log" | head -1 | tr ',' ';')
        echo "a,$t,$r,$i,$(echo "$line" | awk '{print $1}'),${line#* time.step }" >>"$log"
        # (b) instruction counts: this base run against the previous one
        # (A/A), and a head doing work_pct more work against this base run
        rm -rf "$tmp/i" "$tmp/bi"
        "$bin" run --quiet --instructions --out "$tmp/i/base" -P "$fx/base" "$tmp/instr.yaml" \
            >/dev/null
        cur=$(ls "$tmp"/i/base/*.json)
        "$bin" baseline save --baseline "$tmp/bi" "$cur" >/dev/null
        "$bin" run --quiet --instructions --out "$tmp/i/work" -P "$fx/base" \
            --compare --baseline "$tmp/bi" "$tmp/work.yaml" >"$tmp/log" 2>&1 || true
        grep -qE "^REGRESSED .* instructions\.step " "$tmp/log" && det=$((det + 1))
        [ -z "$work_pct_seen" ] &&
            work_pct_seen=$(grep -E " instructions\.step " "$tmp/log" | grep -oE "[+-][0-9.]+%" | head -1)
        if [ -n "$prev" ]; then
            rm -rf "$tmp/bp"
            "$bin" baseline save --baseline "$tmp/bp" "$prev" >/dev/null
            "$bin" compare --baseline "$tmp/bp" "$cur" >"$tmp/log" 2>&1 || true
            r=0
            grep -qE "^REGRESSED" "$tmp/log" && { r=1; fb=$((fb + 1)); }
            echo "b,$t,$r,0,$(grep -E " instructions\.step " "$tmp/log" | awk '{print $1","$7" -> "$8}')" >>"$log"
            d=$(python3 - "$prev" "$cur" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(max(abs(x["instructions"]["median"] - y["instructions"]["median"]) / x["instructions"]["median"]
          for x, y in zip(a["runs"], b["runs"]) if x.get("instructions") and y.get("instructions")))
PY
)
            maxdiff=$(awk -v a="$maxdiff" -v b="$d" 'BEGIN { print (b > a ? b : a) }')
        fi
        mkdir -p "$tmp/prev"
        cp "$cur" "$tmp/prev/base.json"
        prev="$tmp/prev/base.json"
        echo "trial $((t + 1))/$trials ($(($(date +%s) - start)) s): (a) false regressions $fa," \
            "inconclusive $inc; (b) false regressions $fb of $t, work_pct $work caught $det" \
            "(${work_pct_seen:-?} Ir); max A/A Ir difference $maxdiff; load $(cut -d' ' -f1 /proc/loadavg)"
    done
    secs=$(($(date +%s) - start))
    echo
    echo "| $trials trials, $busy busy processes | result |"
    echo "|---|---|"
    echo "| (a) calibrated wall-time compare, $runs + $runs runs: false regressions | $fa |"
    echo "| (a) step time inconclusive | $inc |"
    echo "| (b) --instructions A/A compare: false regressions | $fb of $((trials - 1)) |"
    echo "| (b) work_pct $work (${work_pct_seen:-?} instructions a step) caught | $det of $trials |"
    echo "| (b) largest relative difference of two runs' instructions.step | $maxdiff |"
    echo
    echo "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); ${secs}s"
    exit 0
fi
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
    grep -qE "^INCONCLUSIVE .* time\.step " "$4" && m="${m:+$m;}time.step inconclusive"
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
