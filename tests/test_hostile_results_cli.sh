#!/usr/bin/env bash
# Results and baseline files are untrusted input (they arrive with pull
# requests and CI artifacts). Through the CLI: names made of gnuplot, shell,
# HTML and Markdown syntax run nothing when `report` draws them with the
# real gnuplot, and the charts still render; names that would leave the
# baseline folder, malformed runs and folders given as results files are
# input errors (exit 2) that name the file, run and field, and write
# nothing.
set -euo pipefail
src=$1
build=$2
bin="$build/oombench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1
unset OOMB_DEVICE_CLASS
mark="$tmp/PWNED"
fail() { echo "FAIL: $*"; exit 1; }

# expect_input_error WHAT PATTERN CMD...: exit 2 and PATTERN on stderr.
expect_input_error() {
    local what=$1 pattern=$2
    shift 2
    local rc=0
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    test "$rc" = 2 || { cat "$tmp/out" "$tmp/err"; fail "$what: exit $rc, expected 2"; }
    grep -qF -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "$what: no '$pattern' on stderr"; }
}

# gen.py OUT [key=value...]: a results file of two strategies at two batches
# with timelines; options replace the names or break one run.
cat >"$tmp/gen.py" <<'PY'
import json, sys
out, opts = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
created = opts.get("created", "2024-05-01T12:00:00Z")
scen = opts.get("scenario", "mlp")
strats = json.loads(opts["strategies"]) if "strategies" in opts else ["none", "checkpoint"]
runs = []
for batch in (32, 64):
    for k, st in enumerate(strats):
        base = 1000000 * (1 + k % 3) + batch * 1000 + int(opts.get("shift", 0))
        samples = [base + 97 * i for i in range(5)]
        runs.append({
            "scenario": scen, "strategy": st, "plugin": "none" if k == 0 else "x",
            "params": {}, "mode": "train", "backend": "cpu", "batch": batch,
            "outcome": "ok", "reason": "",
            "memory": {"peak_bytes": 4096 * (k + 1) * batch,
                       "peak_by_tag": {"weights": 1024, "grads": 1024, "optimizer": 0,
                                       "activations": 2048 * (k + 1) * batch - 2048,
                                       "workspace": 0, "other": 0}},
            "time": {"unit": "ns", "samples": samples, "median": float(samples[2]),
                     "phases": {"forward": {"samples": [s // 2 for s in samples],
                                            "median": float(samples[2] // 2)}}},
            "throughput": {"samples_per_s": batch * 1e9 / samples[2]},
            "quality": {"final_loss": 0.5 + 0.01 * k, "losses": [0.9, 0.5 + 0.01 * k]},
            "timeline": {"events": [[0, 1024, 1024, "weights", "other", -1],
                                    [10, 2048, 3072, "activations", "forward", 0],
                                    [20, -2048, 1024, "activations", "backward", 0]]}})
bad = opts.get("break")
if bad == "no-memory":
    del runs[1]["memory"]
elif bad == "negative-batch":
    runs[1]["batch"] = -64
elif bad == "too-many-samples":
    runs[0]["time"]["samples"] = [1000] * 1000001
d = {"schema": "oombench-results/2", "tool_version": opts.get("tool", "0.1.0"),
     "created": created,
     "host": {"name": opts.get("host", "ci"), "os": "Linux", "cpu": "x", "cores": 2,
              "mem_bytes": 1 << 30},
     "device": {"class": opts.get("class", "cpu-test"), "backend": "cpu",
                "name": opts.get("device", "cpu"), "driver": "", "runtime": ""},
     "runs": runs, "checks": []}
json.dump(d, open(out, "w"))
PY
gen() { python3 "$tmp/gen.py" "$@"; }

# --- 1. names that are gnuplot, shell, HTML and Markdown syntax ------------
if command -v gnuplot >/dev/null; then
    evil_scen="s\`touch $mark-s1\`@x\"; system(\"touch $mark-s2\") #"
    strategies=$(python3 - "$mark" <<'PY'
import json, sys
m = sys.argv[1]
print(json.dumps([
    "none",
    "`touch %s-1`" % m,
    'system("touch %s-2")' % m,
    '"; ! touch %s-3; "' % m,
    "a\nset output '%s-4'\nplot 1\n#" % m,
    "@evil '' ' \\\\ \\ {/Symbol a}^2_x",
    "'.system('touch %s-5').'" % m,
    "<script>alert(1)</script> | *b* [l](javascript:x) @team $x$",
]))
PY
)
    gen "$tmp/old.json" "scenario=$evil_scen" "strategies=$strategies" \
        "created=2024-05-01T12:00:00Z" "host=<b>h\`touch $mark-h\`</b>" \
        "tool=\`touch $mark-t\`"
    gen "$tmp/new.json" "scenario=$evil_scen" "strategies=$strategies" \
        "created=2024-05-02T12:00:00Z\`touch $mark-c\`" "shift=50000" \
        "device=\$(touch $mark-d)"
    mkdir -p "$tmp/hist"
    cp "$tmp/old.json" "$tmp/hist/"
    rc=0
    "$bin" report --quiet --out "$tmp/rep" --history "$tmp/hist" "$tmp/old.json" \
        "$tmp/new.json" 2>"$tmp/rep-err" || rc=$?
    test "$rc" = 0 || { cat "$tmp/rep-err"; fail "report: exit $rc"; }
    ls "$tmp" | grep -q PWNED && { ls "$tmp"; fail "a name ran a command"; }
    ls "$tmp/rep"/*.gp >/dev/null
    for gp in "$tmp"/rep/*.gp; do
        stem=$(basename "$gp" .gp)
        test -s "$tmp/rep/$stem.svg" || { cat "$tmp/rep-err"; fail "$stem.svg not drawn"; }
    done
    test "$(ls "$tmp"/rep/*.svg | wc -l)" -ge 5 || fail "fewer than 5 charts drawn"
    # Re-plotting a script by hand runs nothing either.
    (cd "$tmp/rep" && gnuplot chart1-memory.gp) 2>/dev/null
    ls "$tmp" | grep -q PWNED && fail "re-plotting ran a command"
    # No name reaches HTML or Markdown unencoded.
    grep -q "<script>" "$tmp/rep/index.html" && fail "raw <script> in index.html"
    grep -q "&lt;script&gt;alert(1)&lt;/script&gt;" "$tmp/rep/index.html" ||
        fail "the strategy name is not in index.html, encoded"
    grep -q "<b>h" "$tmp/rep/index.html" && fail "raw host name markup in index.html"
    grep -q "<script>" "$tmp/rep/summary.md" && fail "raw <script> in summary.md"
    grep -qF '\<script\>alert(1)\</script\> \| \*b\* \[l\](javascript:x) \@team \$x\$' \
        "$tmp/rep/summary.md" || { cat "$tmp/rep/summary.md"; fail "Markdown not escaped"; }
    # The Markdown table keeps its columns: no name adds a cell or a line.
    python3 - "$tmp/rep/summary.md" <<'PY'
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("| ") and "---" not in l]
widths = {len(re.split(r"(?<!\\)\|", l)) for l in rows}
assert len(widths) == 1, widths
PY
    # The verdicts' Markdown and JUnit of compare: the same names, encoded.
    "$bin" baseline save --baseline "$tmp/bl-ok" "$tmp/old.json" >/dev/null 2>&1 &&
        fail "baseline save accepted an unsafe scenario name"
else
    echo "gnuplot not found: the gnuplot part is skipped"
fi

# --- 2. names that would leave the baseline folder ------------------------
mkdir -p "$tmp/bl" "$tmp/outside"
long=$(printf 'a%.0s' $(seq 1 200))
for name in "../outside/escape" "a/b" "" ".hidden" "$long" "x y"; do
    gen "$tmp/bad-name.json" "scenario=$name"
    expect_input_error "baseline save, scenario '$name'" "field 'runs[0].scenario'" \
        "$bin" baseline save --baseline "$tmp/bl" "$tmp/bad-name.json"
done
gen "$tmp/bad-name.json" "scenario=../outside/escape"
expect_input_error "compare, scenario ../" "field 'runs[0].scenario'" \
    "$bin" compare --baseline "$tmp/bl" "$tmp/bad-name.json"
gen "$tmp/bad-class.json" "class=../outside"
expect_input_error "baseline save, device.class ../" "field 'device.class'" \
    "$bin" baseline save --baseline "$tmp/bl" "$tmp/bad-class.json"
expect_input_error "report --baseline, device.class ../" "field 'device.class'" \
    "$bin" report --quiet --gnuplot /nonexistent --out "$tmp/rep2" --baseline "$tmp/bl" \
    "$tmp/bad-class.json"
gen "$tmp/good.json"
expect_input_error "baseline save --device-class ../" "--device-class '../outside'" \
    "$bin" baseline save --baseline "$tmp/bl" --device-class ../outside "$tmp/good.json"
expect_input_error "OOMB_DEVICE_CLASS=a/b" "\$OOMB_DEVICE_CLASS 'a/b'" \
    env OOMB_DEVICE_CLASS=a/b "$bin" baseline save --baseline "$tmp/bl" "$tmp/good.json"
expect_input_error "compare --device-class .." "--device-class '..'" \
    "$bin" compare --baseline "$tmp/bl" --device-class .. "$tmp/good.json"
test -z "$(find "$tmp/bl" "$tmp/outside" -type f)" || { find "$tmp/bl" "$tmp/outside"; fail "a refused save wrote a file"; }

# --- 3. malformed runs ------------------------------------------------------
gen "$tmp/no-memory.json" break=no-memory
expect_input_error "compare, ok run without memory" \
    "run 1 (scenario 'mlp', strategy 'checkpoint'): field 'runs[1].memory': missing (required for an ok run)" \
    "$bin" compare --baseline "$tmp/bl" "$tmp/no-memory.json"
expect_input_error "baseline save, ok run without memory" "'runs[1].memory'" \
    "$bin" baseline save --baseline "$tmp/bl" "$tmp/no-memory.json"
gen "$tmp/neg.json" break=negative-batch
expect_input_error "negative batch" "'runs[1].batch': -64 is out of range" \
    "$bin" baseline save --baseline "$tmp/bl" "$tmp/neg.json"
gen "$tmp/many.json" break=too-many-samples
start=$(date +%s)
expect_input_error "10^6 + 1 samples" "'runs[0].time.samples': 1000001 samples, at most 1000000" \
    "$bin" compare --baseline "$tmp/bl" "$tmp/many.json"
test $(($(date +%s) - start)) -lt 30 || fail "refusing 10^6 + 1 samples took over 30 s"
test -z "$(find "$tmp/bl" -type f)" || fail "a refused save wrote a file"

# A baseline that is itself malformed: compare names it.
mkdir -p "$tmp/bl2/cpu-test"
gen "$tmp/bl2/cpu-test/mlp.json" break=no-memory
expect_input_error "compare, malformed baseline" "$tmp/bl2/cpu-test/mlp.json: run 1" \
    "$bin" compare --baseline "$tmp/bl2" "$tmp/good.json"

# --- 4. a folder or an unreadable file given as results -------------------
mkdir -p "$tmp/adir"
expect_input_error "baseline save, a folder" "$tmp/adir: is a directory" \
    "$bin" baseline save --baseline "$tmp/bl" "$tmp/adir"
expect_input_error "baseline save, no such file" "$tmp/nope.json" \
    "$bin" baseline save --baseline "$tmp/bl" "$tmp/nope.json"
expect_input_error "compare, a folder" "$tmp/adir: is a directory" \
    "$bin" compare --baseline "$tmp/bl" "$tmp/adir"
test -z "$(find "$tmp/bl" -type f)" || fail "a refused save wrote a file"

# The good file is still saved and compared.
"$bin" baseline save --baseline "$tmp/bl" "$tmp/good.json" >/dev/null
test -f "$tmp/bl/cpu-test/mlp.json"
"$bin" compare --baseline "$tmp/bl" "$tmp/good.json" >/dev/null
echo "hostile results: ok"
