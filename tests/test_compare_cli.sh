#!/usr/bin/env bash
# The acceptance of baselines and verdicts through the CLI: `run --compare`
# against a baseline saved from the same build finds no memory regression
# and exits 0; with one tag's baseline peak lowered by 1 byte it names
# exactly that tag and exits 1. A baseline saved from several results files
# keeps every run and judges time against their spread; one whose memory
# differs between them is refused. JUnit XML parses, the Markdown summary and
# the Google Benchmark export are written and compare.py reads the export.
set -euo pipefail
src=$1
build=$2
bin="$build/oombench"
fixtures="$build/tests/fixtures/degrade/base"
scenario="$src/tests/data/degrade.yaml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1 OPENBLAS_NUM_THREADS=1
unset OOMB_DEVICE_CLASS
run() { "$bin" run --quiet --out "$tmp/results" -P "$fixtures" "$@"; }

# No baseline yet: said so, not a failure.
run --compare --baseline "$tmp/bl" "$scenario" >"$tmp/log0"
grep -q "no baseline for scenario 'degrade'" "$tmp/log0"

first=$(ls "$tmp"/results/*.json)
"$bin" baseline save --baseline "$tmp/bl" "$first" | tee "$tmp/save"
grep -q "new, 2 run(s)" "$tmp/save"
base="$tmp/bl/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["device"]["class"])' "$first")/degrade.json"
test -f "$base"

# Same build: no memory (or outcome, or quality) regression, exit 0. Time
# is statistical: on a machine shared with other jobs a time verdict may
# still fire, which is accepted here only when every regression is a time row.
set +e
run --compare --baseline "$tmp/bl" "$scenario" >"$tmp/log1" 2>&1
rc=$?
set -e
if [ "$rc" != 0 ]; then
    if [ "$rc" != 1 ] || grep -E "^REGRESSED" "$tmp/log1" | grep -vqE " (time\.|throughput)"; then
        cat "$tmp/log1"; echo "FAIL: exit $rc against the same build"; exit 1
    fi
    echo "note: time verdicts fired on this loaded machine (memory identical)"
fi
grep -q "baseline $base (2 run(s))" "$tmp/log1"

# Lower the baseline's peak of one tag (activations of `none`) by 1 byte.
python3 - "$base" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
for r in d["runs"]:
    if r["strategy"] == "none":
        r["memory"]["peak_by_tag"]["activations"] -= 1
json.dump(d, open(p, "w"), indent=1)
PY
set +e
"$bin" run --quiet --out "$tmp/results2" -P "$fixtures" --compare --baseline "$tmp/bl" \
    "$scenario" >"$tmp/log2" 2>&1
rc=$?
set -e
cat "$tmp/log2"
test "$rc" = 1 || { echo "FAIL: expected exit 1, got $rc"; exit 1; }
mem=$(grep -E "^REGRESSED .* memory\." "$tmp/log2")
test "$(echo "$mem" | wc -l)" = 1 || { echo "FAIL: expected exactly one memory regression"; exit 1; }
echo "$mem" | grep -qE "degrade train b128 none +memory\.activations .*\+1 B" ||
    { echo "FAIL: the regression is not none's activations +1 B"; exit 1; }

# A baseline of several runs of one build: every run stored, and the time
# verdicts use the spread between them (with the head run, from 4 runs in all).
run --out "$tmp/results3" "$scenario" >/dev/null
run --out "$tmp/results4" "$scenario" >/dev/null
third=$(ls "$tmp"/results3/*.json)
fourth=$(ls "$tmp"/results4/*.json)
second=$(ls "$tmp"/results2/*.json)
"$bin" baseline save --baseline "$tmp/bl3" "$first" "$third" "$fourth" | tee "$tmp/save3"
grep -q "new, 6 run(s), up to 3 per configuration" "$tmp/save3"
test "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"]))' \
    "$tmp/bl3/$(basename "$(dirname "$base")")/degrade.json")" = 6
set +e
"$bin" compare --baseline "$tmp/bl3" "$second" >"$tmp/log3" 2>&1
rc=$?
set -e
test "$rc" = 0 || test "$rc" = 1
grep -qE " time\.step .*\(3 base runs\)" "$tmp/log3" ||
    { cat "$tmp/log3"; echo "FAIL: the step time was not judged against 3 base runs"; exit 1; }
# --append adds a run; --keep caps each configuration at the most recent runs.
"$bin" baseline save --append --keep 3 --baseline "$tmp/bl3" "$second" | tee "$tmp/save4"
grep -q "updated, 6 run(s), up to 3 per configuration" "$tmp/save4"
# run --repeat N: N results files, judged together against the baseline
# (the between-run test with both sides' spread); compare takes several too.
set +e
run --repeat 3 --out "$tmp/results6" --compare --baseline "$tmp/bl3" "$scenario" \
    >"$tmp/log6" 2>&1
rc=$?
set -e
test "$rc" = 0 || test "$rc" = 1 || { cat "$tmp/log6"; echo "FAIL: --repeat: exit $rc"; exit 1; }
test "$(find "$tmp/results6" -name '*.json' | wc -l)" = 3 ||
    { echo "FAIL: --repeat 3 did not write 3 results files"; exit 1; }
grep -q "head: 3 results files" "$tmp/log6"
grep -qE " time\.step .*\(3 base runs, 3 head runs\)" "$tmp/log6" ||
    { cat "$tmp/log6"; echo "FAIL: the step time was not judged on 3 + 3 runs"; exit 1; }
test "$(grep -cE " degrade +time\.step " "$tmp/log6")" = 1 ||
    { echo "FAIL: one time.step verdict expected for the 3 head runs of degrade"; exit 1; }
set +e
"$bin" compare --baseline "$tmp/bl3" "$tmp"/results6/*.json >"$tmp/log7" 2>&1
rc=$?
set -e
test "$rc" = 0 || test "$rc" = 1
grep -qE " time\.step .*\(3 base runs, 3 head runs\)" "$tmp/log7"
"$bin" run --repeat 0 "$scenario" 2>"$tmp/rep0" && { echo "FAIL: --repeat 0 accepted"; exit 1; }
grep -q "\-\-repeat '0': expected a count" "$tmp/rep0"
# --calibrate: the reference GEMM timed after every step (time.calibration,
# one sample per step); --compare then divides it out and says so. Against a
# baseline without calibration, --normalize names the run that lacks it and
# compares the raw times.
run --calibrate --repeat 2 --out "$tmp/cal" "$scenario" >/dev/null
python3 - "$tmp"/cal/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    for r in json.load(open(path))["runs"]:
        t = r["time"]
        assert len(t["calibration"]["samples"]) == len(t["samples"]) > 0, path
        assert t["calibration"]["median"] > 0, path
PY
"$bin" baseline save --baseline "$tmp/blc" "$tmp"/cal/*.json >/dev/null
set +e
run --calibrate --compare --baseline "$tmp/blc" "$scenario" >"$tmp/log8" 2>&1
rc=$?
"$bin" compare --normalize --baseline "$tmp/bl3" "$second" >"$tmp/log9" 2>&1
rc9=$?
set -e
test "$rc" = 0 || test "$rc" = 1
test "$rc9" = 0 || test "$rc9" = 1
grep -q "times normalised by the calibration GEMM timed after each step" "$tmp/log8" ||
    { cat "$tmp/log8"; echo "FAIL: run --calibrate --compare did not normalise"; exit 1; }
grep -qE "times not normalised: base run degrade train batch 128 [a-z]+ has no calibration samples" \
    "$tmp/log9" || { cat "$tmp/log9"; echo "FAIL: --normalize without calibration"; exit 1; }
# Memory is deterministic: runs that differ in memory are refused (exit 2),
# naming the run and the tag, and nothing is written.
python3 - "$first" "$tmp/odd.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["runs"]:
    if r["strategy"] == "degrade":
        r["memory"]["peak_by_tag"]["workspace"] += 64
        r["memory"]["peak_bytes"] += 64
json.dump(d, open(sys.argv[2], "w"), indent=1)
PY
set +e
"$bin" baseline save --baseline "$tmp/bl5" "$first" "$tmp/odd.json" >"$tmp/save5" 2>&1
rc=$?
set -e
cat "$tmp/save5"
test "$rc" = 2 || { echo "FAIL: differing memory: expected exit 2, got $rc"; exit 1; }
grep -qE "odd\.json: run degrade train batch 128 degrade: memory\.total" "$tmp/save5" ||
    { echo "FAIL: the refusal does not name the run and the tag"; exit 1; }
test ! -e "$tmp/bl5" || test -z "$(find "$tmp/bl5" -name '*.json')" ||
    { echo "FAIL: a baseline was written despite differing memory"; exit 1; }

# A/B: two builds of the plugin, one holding 1 byte more (tag workspace):
# exit 1, that byte named on the tag and the total, nothing else in memory.
"$bin" ab --help >"$tmp/abhelp"
grep -q "rounds per side (default: 15)" "$tmp/abhelp"
set +e
"$bin" ab --quiet --rounds 2 --out "$tmp/ab" --base "$fixtures" \
    --head "$build/tests/fixtures/degrade/mem1" "$scenario" >"$tmp/logab" 2>&1
rc=$?
set -e
cat "$tmp/logab"
test "$rc" = 1 || { echo "FAIL: ab: expected exit 1, got $rc"; exit 1; }
grep -q "2 rounds per side, paired by round" "$tmp/logab"
test "$(grep -cE "^REGRESSED .* memory\." "$tmp/logab")" = 2 &&
    grep -qE "^REGRESSED +degrade train b128 degrade +memory\.total .*\+1 B" "$tmp/logab" &&
    grep -qE "^REGRESSED +degrade train b128 degrade +memory\.workspace .*\+1 B" "$tmp/logab" ||
    { echo "FAIL: ab: expected exactly degrade's memory.total and memory.workspace +1 B"; exit 1; }

# One verdict engine: the same two results files through `compare` and
# through `report` give the same regressions, improvements, inconclusive
# times and numbers. The head: none's step samples 25% slower, degrade's 20%
# faster, one byte more activations for none.
mkdir -p "$tmp/one/cls"
cp "$first" "$tmp/one/cls/degrade.json"
python3 - "$first" "$tmp/one-head.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["runs"]:
    if r["outcome"] != "ok":
        continue
    f = 1.25 if r["strategy"] == "none" else 0.8
    r["time"]["samples"] = [int(x * f) for x in r["time"]["samples"]]
    if r["strategy"] == "none":
        r["memory"]["peak_by_tag"]["activations"] += 1
        r["memory"]["peak_bytes"] += 1
json.dump(d, open(sys.argv[2], "w"))
PY
set +e
"$bin" compare --baseline "$tmp/one" --device-class cls --summary "$tmp/one-cmp.md" \
    "$tmp/one-head.json" >"$tmp/one-cmp.txt"
rc=$?
set -e
test "$rc" = 1 || { cat "$tmp/one-cmp.txt"; echo "FAIL: compare: expected exit 1, got $rc"; exit 1; }
"$bin" report --quiet --gnuplot /nonexistent/gnuplot --baseline "$tmp/one/cls/degrade.json" \
    --out "$tmp/one-rep" "$tmp/one-head.json" 2>/dev/null
python3 - "$tmp/one-cmp.md" "$tmp/one-rep/summary.md" "$tmp/one-rep/index.html" <<'PY'
import re, sys, html
cmp_md, rep_md, rep_html = (open(p).read() for p in sys.argv[1:])
unesc = lambda t: re.sub(r"\\(.)", r"\1", t)
kinds = {"REGRESSED": "regression", "IMPROVED": "improvement", "INCONCLUSIVE": "inconclusive"}
a = set()
for line in cmp_md.splitlines():
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    if len(cells) == 7 and cells[0] in kinds:
        run = unesc(cells[1]).split()  # scenario mode bN
        a.add((kinds[cells[0]], "%s/%s %s b=%s" % (run[0], unesc(cells[2]), run[1], run[2][1:]),
               unesc(cells[3]), unesc(cells[6])))
b = set()
for line in rep_md.splitlines():
    m = re.match(r"- (regression|improvement|inconclusive) (.+?), (\S+): [^()]* -> [^()]* \((.*)\)$", line)
    if m:
        b.add((m.group(1), unesc(m.group(2)), unesc(m.group(3)), unesc(m.group(4))))
assert a and a == b, "compare and report differ:\n only compare: %s\n only report: %s" % (a - b, b - a)
counts = lambda t: [int(x) for x in re.findall(r"(\d+) (?:regression|improvement|inconclusive time)", t)[:3]]
m = re.search(r"\*\*(\d+) regression\(s\)\*\*, (\d+) improvement\(s\)", cmp_md)
n_inc = re.search(r"(\d+) inconclusive time", cmp_md)
cmp_counts = [int(m.group(1)), int(m.group(2)), int(n_inc.group(1)) if n_inc else 0]
m = re.search(r"\*\*(\d+) regression\(s\)\*\*, (\d+) improvement\(s\), (\d+) inconclusive", rep_md)
rep_counts = [int(x) for x in m.groups()]
assert cmp_counts == rep_counts, (cmp_counts, rep_counts)
assert ("%d regression(s)</span>, %d improvement(s), %d inconclusive" % tuple(rep_counts)) in rep_html
assert any(k == "regression" and m == "memory.activations" for k, _, m, _ in a), a
print("compare = report: %d regression(s), %d improvement(s), %d inconclusive; %d items" %
      (tuple(cmp_counts) + (len(a),)))
PY

# Reports: JUnit XML, Markdown, Google Benchmark JSON read by compare.py.
second=$(ls "$tmp"/results2/*.json)
set +e
"$bin" compare --baseline "$tmp/bl" --junit "$tmp/j.xml" --summary "$tmp/s.md" \
    --gbench "$tmp/head.json" "$second" >/dev/null
rc=$?
set -e
test "$rc" = 1
python3 - "$tmp/j.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = root.findall(".//testcase")
fails = [c for c in cases if c.find("failure") is not None]
assert len(cases) > 10, len(cases)
assert [c.get("name") for c in fails if c.get("name").startswith("memory.")] == ["memory.activations"], \
    [c.get("name") for c in fails]
print("junit: %d testcases, %d failures" % (len(cases), len(fails)))
PY
grep -q "regression" "$tmp/s.md"
grep -q "memory.activations" "$tmp/s.md"
"$bin" compare --baseline "$tmp/bl" --gbench "$tmp/base.json" "$first" >/dev/null || true
cmp_py=/usr/share/benchmark/compare.py
if [ ! -f "$cmp_py" ] && [ "${OOMB_NO_GBENCH_COMPARE:-0}" = 1 ]; then
    # Only for machines that cannot install Debian packages (scripts/gpu-check.sh).
    echo "compare cli: 0 failed (compare.py step not run: $cmp_py absent, OOMB_NO_GBENCH_COMPARE=1)"
    exit 0
fi
if [ ! -f "$cmp_py" ]; then
    echo "FAIL: $cmp_py missing: install libbenchmark-tools (scripts/setup.sh does)"; exit 1
fi
# compare.py needs numpy and scipy: Debian's python3 has them (python3-scipy).
py=/usr/bin/python3
"$py" "$cmp_py" --no-color benchmarks "$tmp/base.json" "$tmp/head.json" >"$tmp/cmp"
grep -q "degrade/train/batch:128/none/step" "$tmp/cmp"
echo "compare cli: 0 failed"
