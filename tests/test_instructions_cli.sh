#!/usr/bin/env bash
# `run --instructions`: instruction counts of the measured steps under
# valgrind's callgrind. A tiny scenario run twice: every ok run has counts
# per step and per phase; the stdout of the run is the same table as without
# valgrind; `none` (unchanged between the two) compares as the same, and the
# degrade fixture with work_pct raised (about 5% more work per step) is
# caught as a regression of instructions.step and instructions.forward, and
# of nothing else. Skipped (77) when valgrind is absent or the build uses a
# sanitizer (valgrind cannot run an AddressSanitizer binary).
set -euo pipefail
src=$1
build=$2
bin="$build/oombench"
fixtures="$build/tests/fixtures/degrade/base"
scenario="$src/tests/data/instructions.yaml"
if ! command -v valgrind >/dev/null; then
    echo "SKIP: valgrind not installed (scripts/setup.sh installs it)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1
unset OOMB_DEVICE_CLASS

set +e
"$bin" run --instructions --quiet --out "$tmp/a" -P "$fixtures" "$scenario" >"$tmp/log_a" 2>"$tmp/err_a"
rc=$?
set -e
if [ "$rc" = 2 ] && grep -q "AddressSanitizer" "$tmp/err_a"; then
    echo "SKIP: $(cat "$tmp/err_a")"
    exit 77
fi
if [ "$rc" != 0 ]; then
    cat "$tmp/log_a" "$tmp/err_a"; echo "FAIL: run --instructions exit $rc"; exit 1
fi
# valgrind says nothing on the terminal: stderr is empty with --quiet.
if [ -s "$tmp/err_a" ]; then
    cat "$tmp/err_a"; echo "FAIL: stderr not empty"; exit 1
fi
grep -q "^2 run(s): 0 failed" "$tmp/log_a"
a=$(ls "$tmp"/a/*.json)

python3 - "$a" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["runs"]) == 2, d["runs"]
for r in d["runs"]:
    assert r["outcome"] == "ok", (r["strategy"], r["reason"])
    i = r["instructions"]
    assert i["unit"] == "Ir" and i["tool"] == "callgrind", i
    n = len(r["time"]["samples"])
    assert len(i["samples"]) == n == 5, i
    assert all(x > 100000 for x in i["samples"]), i["samples"]
    assert i["blas"]["threads"] == 1 and i["blas"]["core"], i["blas"]
    ph = i["phases"]
    assert set(ph) == {"forward", "backward", "update", "other"}, ph
    for name in ("forward", "backward", "update"):
        assert len(ph[name]["samples"]) == n and ph[name]["median"] > 1000, (name, ph[name])
    # The phases add up to the step.
    for s in range(n):
        assert sum(ph[p]["samples"][s] for p in ph) == i["samples"][s], s
print("instructions present per step and phase:",
      {r["strategy"]: r["instructions"]["median"] for r in d["runs"]})
PY

# The same scenario with ~5% more work in degrade's steps.
sed 's/work_pct: 0}/work_pct: 3}/' "$scenario" >"$tmp/more.yaml"
grep -q "work_pct: 3}" "$tmp/more.yaml"
"$bin" run --instructions --quiet --out "$tmp/b" -P "$fixtures" "$tmp/more.yaml" >"$tmp/log_b"
b=$(ls "$tmp"/b/*.json)

"$bin" baseline save --baseline "$tmp/bl" "$a" >/dev/null
set +e
"$bin" compare --baseline "$tmp/bl" "$b" >"$tmp/cmp" 2>&1
rc=$?
set -e
cat "$tmp/cmp"
if [ "$rc" != 1 ]; then
    echo "FAIL: compare exit $rc, expected 1 (degrade regressed)"; exit 1
fi
grep -qE "^REGRESSED +instructions train b64 degrade +instructions\.step " "$tmp/cmp"
grep -qE "^REGRESSED +instructions train b64 degrade +instructions\.forward " "$tmp/cmp"
if grep -E "^REGRESSED" "$tmp/cmp" | grep -vqE "degrade +instructions\.(step|forward) "; then
    echo "FAIL: a regression other than degrade's step and forward instructions"; exit 1
fi
grep -qE "^same +instructions train b64 none +instructions\.step " "$tmp/cmp"
grep -qE "^N/A +instructions train b64 none +time " "$tmp/cmp"

# Without degrade, the second run passes against the first (exit 0).
python3 - "$b" "$tmp/none.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["runs"] = [r for r in d["runs"] if r["strategy"] == "none"]
json.dump(d, open(sys.argv[2], "w"))
PY
"$bin" compare --baseline "$tmp/bl" "$tmp/none.json" >"$tmp/cmp2"
grep -q "0 regression(s), 0 improvement(s)" "$tmp/cmp2"
# A tolerance of 0 makes the run-to-run jitter of a few hundred Ir visible:
# the option is honoured (exit 0 or 1, never a usage error).
set +e
"$bin" compare --instr-tolerance 0 --baseline "$tmp/bl" "$tmp/none.json" >/dev/null
rc=$?
set -e
[ "$rc" = 0 ] || [ "$rc" = 1 ]
set +e
"$bin" compare --instr-tolerance -1 --baseline "$tmp/bl" "$tmp/none.json" 2>/dev/null
rc=$?
set -e
[ "$rc" = 2 ]
echo "PASS"
