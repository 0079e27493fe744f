#!/usr/bin/env bash
# kill -9 at random moments of `oombench run` and `oombench baseline save`:
# every results and baseline file on disk parses and is complete (a results
# file holds 0..N finished runs; a baseline is byte for byte the old or the
# new one), no process of the killed harness survives (the supervisor dies
# through PR_SET_PDEATHSIG and takes the worker's group with it), and the
# next start removes what the killed one left (its folder under
# $TMPDIR/oombench-<uid>/ and any *.json.tmp.* file).
#
# usage: test_kill9.sh SOURCE_DIR BUILD_DIR [RUN_KILLS] [SAVE_KILLS]
set -euo pipefail
src=$1
build=$2
run_kills=${3:-50}
save_kills=${4:-50}
bin="$build/oombench"
tmp=$(mktemp -d)
marker="OOMB_KILL9_MARKER=$$-$RANDOM$RANDOM"
bg=
cleanup() {
    if [ -n "$bg" ]; then kill -9 "$bg" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export TMPDIR="$tmp/tmpdir"
mkdir -p "$TMPDIR"
tbase="$TMPDIR/oombench-$(id -u)"
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# Processes whose environment holds the marker (only ours are readable).
survivors() {
    python3 - "$marker" <<'EOF'
import os, sys
m = sys.argv[1].encode()
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if m in open("/proc/%s/environ" % p, "rb").read().split(b"\0"):
                print(p, end=" ")
        except OSError:
            pass
EOF
}

# results_ok FILE: parses, the schema's top level, every run has an outcome;
# prints the number of runs.
results_ok() {
    python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"].startswith("oombench-results/"), "schema"
assert isinstance(d["runs"], list), "runs"
for r in d["runs"]:
    assert isinstance(r.get("outcome"), str) and r["outcome"], "run without an outcome"
print(len(d["runs"]))
EOF
}

# Milliseconds since the epoch.
ms() { date +%s%3N; }

# ---------------------------------------------------------------- run ---
# A small MLP with three strategies and a few steps: about a second.
cat >"$tmp/k9.yaml" <<'EOF'
name: k9
description: "kill -9 loop: MLP 64-128-10, synthetic data, SGD"
model:
  input: 64
  classes: 10
  layers:
    - linear: 128
    - relu
    - linear: 10
input: {kind: synthetic, seed: 11}
mode: train
batch: 64
optimizer: {name: sgd, lr: 1e-2}
steps: {warmup: 1, measured: 20}
budget: 64MiB
backend: cpu
timeout: 20s
strategies:
  - none
  - checkpoint
  - {plugin: grad_accum, params: {steps: 2}}
EOF
# The "next start": a quick run into the same output folder.
sed -e 's/^name: k9/name: k9next/' -e 's/measured: 20/measured: 1/' \
    -e '/^  - checkpoint/d' -e '/grad_accum/d' "$tmp/k9.yaml" >"$tmp/next.yaml"
out="$tmp/out"

t0=$(ms)
"$bin" run --quiet --out "$tmp/calib" "$tmp/k9.yaml" >/dev/null 2>&1 || true
run_ms=$(($(ms) - t0))
[ "$run_ms" -ge 200 ] || run_ms=200
echo "an uninterrupted run takes ${run_ms} ms; killing within $((run_ms * 5 / 4)) ms"

run_with_runs=0 run_mid=0 run_leftovers=0
t_loop=$(ms)
for ((i = 0; i < run_kills; i++)); do
    delay=$((RANDOM % (run_ms * 5 / 4)))
    env "$marker" "$bin" run --quiet --out "$out" "$tmp/k9.yaml" >/dev/null 2>&1 &
    bg=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 "$bg" 2>/dev/null || true
    wait "$bg" 2>/dev/null || true
    pid=$bg
    bg=
    # Every results file parses and is complete.
    for f in "$out"/*.json; do
        [ -e "$f" ] || continue
        if ! n_runs=$(results_ok "$f" 2>"$tmp/perr"); then
            bad "run kill $i after ${delay} ms: $f is not a complete results file: $(cat "$tmp/perr" | tail -1)"
            head -c 300 "$f" | sed 's/^/  | /'
        elif [ "$n_runs" -gt 0 ]; then
            run_with_runs=$((run_with_runs + 1))
        fi
        rm -f "$f"
    done
    # No process survives: the supervisor gets SIGTERM from PDEATHSIG and
    # kills the worker's group (its kill loop gives up after 3 s).
    left=
    for ((w = 0; w < 50; w++)); do
        left=$(survivors)
        [ -z "${left// /}" ] && break
        sleep 0.1
    done
    [ -z "${left// /}" ] || bad "run kill $i after ${delay} ms: processes survive:$left"
    # What the killed run left, if anything.
    leftover_dir=$(ls -d "$tbase/run-$pid."* 2>/dev/null || true)
    leftover_tmp=$(ls "$out"/*.json.tmp.* 2>/dev/null || true)
    [ -n "$leftover_tmp" ] && run_mid=$((run_mid + 1))
    if [ -n "$leftover_dir$leftover_tmp" ]; then
        run_leftovers=$((run_leftovers + 1))
        # Stale temp results files are removed only once a minute old (the
        # age spares a writer in another pid namespace sharing the folder,
        # proc.c oomb_proc_clean_stale_results): age them instead of waiting.
        [ -z "$leftover_tmp" ] || touch -d '2 minutes ago' $leftover_tmp
        env "$marker" "$bin" run --quiet --out "$out" "$tmp/next.yaml" >/dev/null 2>&1 ||
            bad "run kill $i: the next start failed"
        [ -z "$(ls -d "$tbase/run-$pid."* 2>/dev/null)" ] ||
            bad "run kill $i: the next start left the killed run's temp folder"
        [ -z "$(ls "$out"/*.json.tmp.* 2>/dev/null)" ] ||
            bad "run kill $i: the next start left temp results files: $(ls "$out")"
        rm -f "$out"/k9next-*.json
    fi
done
echo "run: $(($(ms) - t_loop)) ms for $run_kills kills, $run_with_runs results files with runs, $run_leftovers left something, $run_mid mid-write (a *.json.tmp.* left)"

# ------------------------------------------------------ baseline save ---
# Results A and B: two real runs of the same scenario (their timings differ),
# each spread over 12 scenario names so that a save writes 12 baselines.
"$bin" run --quiet --out "$tmp/ra" "$tmp/next.yaml" >/dev/null
"$bin" run --quiet --out "$tmp/rb" "$tmp/next.yaml" >/dev/null
spread() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
runs = []
for k in range(12):
    for r in d["runs"]:
        r = dict(r)
        r["scenario"] = "s%02d" % k
        runs.append(r)
d["runs"] = runs
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
}
spread "$tmp"/ra/*.json "$tmp/a.json"
spread "$tmp"/rb/*.json "$tmp/b.json"
# The old and the new baselines, from uninterrupted saves.
"$bin" baseline save --baseline "$tmp/old" "$tmp/a.json" >/dev/null
t0=$(ms)
"$bin" baseline save --baseline "$tmp/new" "$tmp/b.json" >/dev/null
save_ms=$(($(ms) - t0))
"$bin" baseline save --baseline "$tmp/new2" "$tmp/b.json" >/dev/null
diff -r "$tmp/new" "$tmp/new2" >/dev/null || bad "two saves of the same results differ"
cls=$(ls "$tmp/old")
[ "$(ls "$tmp/old/$cls" | wc -l)" = 12 ] || bad "expected 12 baselines, got $(ls "$tmp/old/$cls")"
cmp -s "$tmp/old/$cls/s00.json" "$tmp/new/$cls/s00.json" && bad "old and new baselines are identical"
[ "$save_ms" -ge 20 ] || save_ms=20
echo "an uninterrupted save takes ${save_ms} ms; killing within $((save_ms * 5 / 4)) ms"

bl="$tmp/bl"
save_mixed=0 save_mid=0 save_new=0
t_loop=$(ms)
for ((i = 0; i < save_kills; i++)); do
    rm -rf "$bl"
    cp -r "$tmp/old" "$bl"
    delay=$((RANDOM % (save_ms * 5 / 4)))
    env "$marker" "$bin" baseline save --baseline "$bl" "$tmp/b.json" >/dev/null 2>&1 &
    bg=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -9 "$bg" 2>/dev/null || true
    wait "$bg" 2>/dev/null || true
    bg=
    n_old=0 n_new=0
    for f in "$tmp/old/$cls"/*.json; do
        name=$(basename "$f")
        if cmp -s "$bl/$cls/$name" "$f"; then
            n_old=$((n_old + 1))
        elif cmp -s "$bl/$cls/$name" "$tmp/new/$cls/$name"; then
            n_new=$((n_new + 1))
        else
            bad "save kill $i after ${delay} ms: $cls/$name is neither the old nor the new baseline"
            results_ok "$bl/$cls/$name" >/dev/null || bad "save kill $i: $cls/$name does not parse"
        fi
    done
    [ "$n_new" = 12 ] && save_new=$((save_new + 1))
    [ "$n_old" -gt 0 ] && [ "$n_new" -gt 0 ] && save_mixed=$((save_mixed + 1))
    left=$(survivors)
    [ -z "${left// /}" ] || bad "save kill $i: processes survive:$left"
    leftover=$(ls "$bl/$cls"/*.json.tmp.* 2>/dev/null || true)
    if [ -n "$leftover" ]; then
        save_mid=$((save_mid + 1))
        # As for results: only temp files a minute old are taken as stale.
        touch -d '2 minutes ago' $leftover
        "$bin" baseline save --baseline "$bl" "$tmp/b.json" >/dev/null 2>&1 ||
            bad "save kill $i: the next save failed"
        [ -z "$(ls "$bl/$cls"/*.json.tmp.* 2>/dev/null)" ] ||
            bad "save kill $i: the next save left temp files: $(ls "$bl/$cls" | grep tmp | head -3)"
        diff -r "$bl" "$tmp/new" >/dev/null || bad "save kill $i: the next save did not give the new baselines"
    fi
done
echo "baseline save: $(($(ms) - t_loop)) ms for $save_kills kills, $save_mixed with some files old and some new, $save_new all new, $save_mid mid-write (a *.json.tmp.* left)"

# Nothing of ours is left in the temp base either.
[ -z "$(ls -A "$tbase" 2>/dev/null)" ] || bad "temp folders left: $(ls -A "$tbase")"
if [ "$fail" -gt 0 ]; then
    echo "$fail failure(s)"
    exit 1
fi
echo "kill -9 loop: all checks passed"
