#!/usr/bin/env bash
# The hostile-input acceptance suite: hostile YAML, names, results files,
# plugins and paths, each its own case through the real CLI (`oombench run`,
# `list`, `baseline save`, `compare`, `report`), each in a fresh sandbox
# folder, and every case held to the same checks:
#   1. the expected exit status (2 for an input error; for a plugin fault the
#      run's outcome in the results file, with the run's exit status);
#   2. the message names the file and the key or field;
#   3. no file created or changed outside the case's output folder (the
#      whole suite folder is watched, so `../` escapes are seen), no new entry
#      in $TMPDIR (the harness's run-<pid>.* folders included), no `*.tmp.*`
#      file in the output folder, and for an exit 2 nothing written at all;
#   4. no process left behind: every command runs with a marker in its
#      environment (OOMB_HOSTILE_CASE, inherited by every descendant) and no
#      process may still hold it 1 s after the harness exits.
# usage: test_hostile.sh SOURCE_DIR BUILD_DIR [CASE_REGEX]
set -uo pipefail
src=$1
build=$2
only=${3:-${OOMB_HOSTILE_ONLY:-}}
bin="$build/oombench"
fixtures="$build/tests/fixtures"
base=$(mktemp -d)
root=$base/root   # watched: every case's sandbox and the canary folder
mkdir -p "$root/cases" "$root/canary" "$base/tmp" "$base/pids" "$base/gen" "$base/logs"
echo "canary" >"$root/canary/keep"
cleanup() {
    # Kill anything a failed case left (only processes carrying our marker).
    local f pid
    for f in /proc/[0-9]*/environ; do
        grep -qzF "OOMB_HOSTILE_CASE=$$-" "$f" 2>/dev/null || continue
        pid=${f#/proc/}
        pid=${pid%/environ}
        kill -KILL "$pid" 2>/dev/null || true
    done
    chmod -R u+rwX "$base" 2>/dev/null
    rm -rf "$base"
}
trap cleanup EXIT
export TMPDIR=$base/tmp NO_COLOR=1 LC_ALL=C
unset OOMB_DEVICE_CLASS OOMB_FIXTURE_PIDFILE
uid=$(id -u)
g=$base/gen # inputs made once and shared by the cases (read-only)

ncases=0
nfail=0
failed=()
declare -A group_count

# ------------------------------------------------------------ the checks -

snapshot() { # everything under the suite folder but the case's output folder
    find "$root" -path "$S/out" -prune -o -printf '%P %y %s %m\n' 2>/dev/null | sort
}
tmp_snapshot() { # $TMPDIR, its oombench-<uid> folder being the harness's own
    find "$TMPDIR" -mindepth 1 -printf '%P\n' 2>/dev/null | grep -vx "oombench-$uid" | sort
}
out_snapshot() {
    [ -e "$S/out" ] || return 0
    find "$S/out" -printf '%P %y %s\n' 2>/dev/null | sort
}
left_behind() { # PIDs of processes still carrying the case's marker (one grep)
    grep -lzxF "OOMB_HOSTILE_CASE=$mark" /proc/[0-9]*/environ 2>/dev/null |
        sed 's|^/proc/||; s|/environ$||'
}

# new_case GROUP NAME: a fresh sandbox $S (cwd) with in/ for the inputs; the
# output folder is $S/out. Returns 1 when the case is filtered out.
new_case() {
    group=$1
    name=$2
    if [ -n "$only" ] && ! [[ $name =~ $only ]]; then return 1; fi
    S=$root/cases/$name
    log=$base/logs/$name
    mkdir -p "$S/in"
    cd "$S" || exit 1
    known=""
    post=""
    return 0
}

# expect RC PATTERN... -- COMMAND...: runs COMMAND (cwd $S, stdin closed,
# 60 s at most, under the marker) and applies the uniform checks. Every
# PATTERN must appear (fixed string) in stdout + stderr. $post, when set, is
# run afterwards as one more check (e.g. the outcome in the results file).
expect() {
    local want=$1
    shift
    local pats=()
    while [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    ncases=$((ncases + 1))
    group_count[$group]=$((${group_count[$group]:-0} + 1))
    mark="$$-$ncases-$name"
    local why=() before tbefore obefore got=0 i p pids
    before=$(snapshot)
    tbefore=$(tmp_snapshot)
    obefore=$(out_snapshot)
    local t0=$EPOCHREALTIME
    timeout -k 5 60 env "OOMB_HOSTILE_CASE=$mark" "$@" </dev/null >"$log.stdout" 2>"$log.stderr" || got=$?
    # 4. nothing of the run still alive (1 s of grace)
    for i in $(seq 20); do
        pids=$(left_behind)
        [ -z "$pids" ] && break
        sleep 0.05
    done
    if [ -n "$pids" ]; then
        why+=("processes left behind: $(for p in $pids; do printf '%s(%s) ' "$p" "$(cat /proc/$p/comm 2>/dev/null)"; done)")
        for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    fi
    # 1. the exit status
    [ "$got" = "$want" ] || why+=("exit $got, expected $want")
    # 2. the message names the file and the key or field
    for p in "${pats[@]}"; do
        grep -qF -- "$p" "$log.stdout" "$log.stderr" || why+=("no '$p' in the output")
    done
    # 3. no file outside the output folder, none in $TMPDIR, no temporaries
    local after tafter oafter
    after=$(snapshot)
    tafter=$(tmp_snapshot)
    oafter=$(out_snapshot)
    [ "$after" = "$before" ] || why+=("files changed outside the output folder: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -5 | tr '\n' ' ')")
    [ "$tafter" = "$tbefore" ] || why+=("left in \$TMPDIR: $(diff <(echo "$tbefore") <(echo "$tafter") | grep '^[<>]' | head -5 | tr '\n' ' ')")
    if [ -d "$S/out" ] && [ -n "$(find "$S/out" -name '*.tmp.*' 2>/dev/null)" ]; then
        why+=("temporary files in the output folder: $(find "$S/out" -name '*.tmp.*' | head -3 | tr '\n' ' ')")
    fi
    if [ "$want" = 2 ] && [ "$oafter" != "$obefore" ]; then
        why+=("exit 2 but the output folder changed: $(diff <(echo "$obefore") <(echo "$oafter") | grep '^[<>]' | head -5 | tr '\n' ' ')")
    fi
    # the case's own check
    if [ -n "$post" ]; then
        local perr
        perr=$(eval "$post" 2>&1) || why+=("check '$post' failed: $perr")
    fi
    if [ "${#why[@]}" = 0 ] && [ -z "$known" ]; then
        printf 'ok   %-45s %5.2f s\n' "$group/$name" "$(echo "$EPOCHREALTIME - $t0" | bc)"
        # OOMB_HOSTILE_VERBOSE=1: the message each case got
        [ -z "${OOMB_HOSTILE_VERBOSE:-}" ] || grep -v '^\[' "$log.stderr" | head -2 | cut -c1-240 | sed 's/^/     | /'
        cd "$root" && chmod -R u+rwX "$S" && rm -rf "$S" # a passing sandbox is not watched any more
        return 0
    fi
    nfail=$((nfail + 1))
    failed+=("$group/$name")
    if [ -n "$known" ]; then
        echo "FAIL $group/$name (KNOWN BUG: $known)"
    else
        echo "FAIL $group/$name"
    fi
    for p in "${why[@]}"; do echo "     - $p"; done
    sed 's/^/     | /' "$log.stdout" "$log.stderr" | cut -c1-300 | head -12
    return 0
}

# outcome LABEL OUTCOME: the run of LABEL in the one results file of $S/out.
outcome() {
    python3 - "$S/out" "$1" "$2" <<'PY'
import glob, json, sys
files = glob.glob(sys.argv[1] + "/*.json")
assert len(files) == 1, "results files: %r" % files
runs = [r for r in json.load(open(files[0]))["runs"] if r["strategy"] == sys.argv[2]]
assert runs, "no run of " + sys.argv[2]
got = sorted({r["outcome"] for r in runs})
assert got == [sys.argv[3]], "outcome %r, expected %r" % (got, sys.argv[3])
PY
}

# The process check must see a marked process, or it proves nothing (e.g.
# where /proc/PID/environ cannot be read).
mark="$$-selftest"
env "OOMB_HOSTILE_CASE=$mark" sleep 30 &
selftest=$!
for i in $(seq 20); do [ -n "$(left_behind)" ] && break; sleep 0.05; done
[ "$(left_behind)" = "$selftest" ] || { echo "FAIL: the process check does not see a marked process"; kill "$selftest"; exit 1; }
kill "$selftest"
wait "$selftest" 2>/dev/null

# ------------------------------------------------------ shared inputs -----

# A small valid scenario; scen FILE [LINES...] writes it with LINES appended
# (a later key of the same name would be a duplicate: callers add only new
# keys) and scen_body FILE writes stdin verbatim.
model='model: {input: 8, classes: 2, layers: [{linear: 4}, relu, {linear: 2}]}'
scen() {
    local f=$1
    shift
    {
        echo "name: hostile"
        echo "$model"
        echo "mode: train"
        echo "steps: {warmup: 0, measured: 1}"
        printf '%s\n' "$@"
    } >"$f"
}
scen_body() { cat >"$1"; }

# One real results file, made once by the harness itself; the results cases
# break copies of it (mutate IN OUT PYTHON: d is the parsed document).
scen "$g/ok.yaml" "batch: 4" "strategies: [none]"
"$bin" run -q --out "$g/ok-out" "$g/ok.yaml" >/dev/null 2>"$g/ok.err" || {
    cat "$g/ok.err"
    echo "FAIL: cannot make the reference results file"
    exit 1
}
good=$(ls "$g"/ok-out/*.json | head -1)
[ -f "$good" ] || { echo "FAIL: no reference results file"; exit 1; }
rm -rf "$TMPDIR"/* 2>/dev/null
mutate() {
    python3 - "$good" "$2" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
if isinstance(d, (dict, list)):
    json.dump(d, open(sys.argv[2], "w"))
else:
    open(sys.argv[2], "wb").write(d)
PY
}

# ================================================================ YAML ====

if new_case yaml alias_cycle; then
    cp "$src/tests/data/scenarios/bad/alias_cycle.yaml" in/
    expect 2 "alias_cycle.yaml:" "key 'model.layers" "cycle" -- "$bin" run --out out in/alias_cycle.yaml
fi
if new_case yaml alias_bomb; then
    python3 - in/bomb.yaml <<'PY'
import sys
lines = ["name: bomb", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
for i in range(1, 12):
    lines.append("a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
    expect 2 "bomb.yaml:" "key 'a" "100000" -- "$bin" run --out out in/bomb.yaml
fi
if new_case yaml deep_nesting; then
    python3 -c 'import sys; open(sys.argv[1], "w").write("name: deep\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")' in/deep.yaml
    expect 2 "deep.yaml:" "key 'description'" -- "$bin" run --out out in/deep.yaml
fi
if new_case yaml huge_file; then
    scen in/huge.yaml "batch: 4" "strategies: [none]"
    python3 -c 'import sys; open(sys.argv[1], "a").write(("# " + "x" * 1000 + "\n") * 2100)' in/huge.yaml
    expect 2 "huge.yaml" "1048576" -- "$bin" run --out out in/huge.yaml
fi
if new_case yaml non_utf8; then
    scen in/latin1.yaml "batch: 4" "strategies: [none]"
    printf 'description: "caf\xe9 \xff\xfe"\n' >>in/latin1.yaml
    expect 2 "latin1.yaml:7:" "UTF-8" -- "$bin" run --out out in/latin1.yaml
fi
if new_case yaml duplicate_key; then
    scen in/dup.yaml "batch: 4" "strategies: [none]" "batch: 8"
    expect 2 "dup.yaml:" "key 'batch'" -- "$bin" run --out out in/dup.yaml
fi
# wrong types for each top-level key
for kv in "name=[a, b]" "description={x: 1}" "model=5" "batch={x: 1}" \
          "steps=[1, 2]" "mode={a: 1}" "budget=[1]" "timeout={s: 1}" "strategies=5" "checks=5" \
          "optimizer=[sgd]" "backend=[cpu]" "threads=[1]" "input=[1]" "seed=abc"; do
    k=${kv%%=*}
    v=${kv#*=}
    new_case yaml "type_$k" || continue
    case $k in
    name) scen_body in/t.yaml <<EOF
name: $v
$model
batch: 4
strategies: [none]
EOF
    ;;
    model) scen_body in/t.yaml <<EOF
name: t
model: $v
batch: 4
strategies: [none]
EOF
    ;;
    input) scen_body in/t.yaml <<EOF
name: t
model: {input: $v, classes: 2, layers: [{linear: 2}]}
batch: 4
strategies: [none]
EOF
        k=model.input
    ;;
    mode | steps) scen_body in/t.yaml <<EOF
name: t
$model
$k: $v
batch: 4
strategies: [none]
EOF
    ;;
    batch) scen in/t.yaml "batch: $v" "strategies: [none]" ;;
    strategies) scen in/t.yaml "batch: 4" "strategies: $v" ;;
    *) scen in/t.yaml "batch: 4" "strategies: [none]" "$k: $v" ;;
    esac
    expect 2 "t.yaml:" "key '$k" -- "$bin" run --out out in/t.yaml
done
for kv in "negative=-4" "zero=0" "overflow=9000000000000000000" "beyond64=18446744073709551617" \
          "fraction=2.5" "huge_list=[$(seq -s, 1 300)]"; do
    k=${kv%%=*}
    new_case yaml "batch_$k" || continue
    scen in/b.yaml "batch: ${kv#*=}" "strategies: [none]"
    expect 2 "b.yaml:" "key 'batch" -- "$bin" run --out out in/b.yaml
done
if new_case yaml steps_overflow; then
    scen_body in/s.yaml <<EOF
name: s
$model
batch: 4
steps: {warmup: 1, measured: 2000000000}
strategies: [none]
EOF
    expect 2 "s.yaml:" "key 'steps.measured'" -- "$bin" run --out out in/s.yaml
fi
if new_case yaml steps_warmup_overflow; then
    scen_body in/s.yaml <<EOF
name: s
$model
batch: 4
steps: {warmup: 99999999999999999999, measured: 1}
strategies: [none]
EOF
    expect 2 "s.yaml:" "key 'steps.warmup'" -- "$bin" run --out out in/s.yaml
fi
if new_case yaml epochs_overflow; then
    scen_body in/e.yaml <<EOF
name: e
model: {input: 784, classes: 10, layers: [{linear: 10}]}
input: fashion-mnist
batch: 1
steps: {warmup: 0, epochs: 1e300}
strategies: [none]
EOF
    expect 2 "e.yaml:" "key 'steps.epochs'" -- "$bin" run --out out in/e.yaml
fi
if new_case yaml timeout_1e10; then
    scen in/t.yaml "batch: 4" "strategies: [none]" "timeout: 1e10"
    expect 2 "t.yaml:" "key 'timeout'" -- "$bin" run --out out in/t.yaml
fi
if new_case yaml timeout_negative; then
    scen in/t.yaml "batch: 4" "strategies: [none]" "timeout: -5s"
    expect 2 "t.yaml:" "key 'timeout'" -- "$bin" run --out out in/t.yaml
fi
if new_case yaml unknown_top_key; then
    scen in/u.yaml "batch: 4" "strategies: [none]" "bach: 64"
    expect 2 "u.yaml:" "key 'bach'" -- "$bin" run --out out in/u.yaml
fi
if new_case yaml unknown_nested_key; then
    scen in/u.yaml "batch: 4" "strategies: [none]" "optimizer: {name: sgd, lrr: 0.1}"
    expect 2 "u.yaml:" "key 'optimizer.lrr'" -- "$bin" run --out out in/u.yaml
fi
if new_case yaml fifo; then
    mkfifo in/pipe.yaml
    expect 2 "pipe.yaml" "FIFO" -- "$bin" run --out out in/pipe.yaml
fi
if new_case yaml directory; then
    mkdir in/dir.yaml
    expect 2 "dir.yaml" "directory" -- "$bin" run --out out in/dir.yaml
fi
if new_case yaml missing_file; then
    expect 2 "nothere.yaml" -- "$bin" run --out out in/nothere.yaml
fi
if new_case yaml empty_file; then
    : >in/empty.yaml
    expect 2 "empty.yaml" -- "$bin" run --out out in/empty.yaml
fi
if new_case yaml nul_bytes; then
    scen in/nul.yaml "batch: 4"
    printf 'strategies: [no\0ne]\n' >>in/nul.yaml
    expect 2 "nul.yaml:6:" "control characters" -- "$bin" run --out out in/nul.yaml
fi
if new_case yaml layer_size_overflow; then
    scen_body in/big.yaml <<EOF
name: big
model: {input: 4000000000, classes: 2, layers: [{linear: 4000000000}, {linear: 2}]}
batch: 4000000
strategies: [none]
EOF
    expect 2 "big.yaml:" "key '" "overflow" -- "$bin" run --out out in/big.yaml
fi
if new_case yaml unknown_plugin; then
    scen in/p.yaml "batch: 4" "strategies: [no_such_plugin]"
    expect 2 "p.yaml" "no_such_plugin" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml unknown_parameter; then
    scen in/p.yaml "batch: 4" "strategies: [{plugin: none, params: {bogus: 1}}]"
    expect 2 "p.yaml" "bogus" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml parameter_out_of_range; then
    # Below the plugin's declared minimum: refused when the scenario loads,
    # with file:line:col and the range, before anything runs.
    scen in/p.yaml "batch: 4" "strategies: [{plugin: checkpoint, params: {segments: -3}}]"
    expect 2 "p.yaml:" "key 'segments'" "must be >= 0" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml parameter_not_a_choice; then
    scen in/p.yaml "batch: 4" "strategies: [{plugin: prune, params: {pattern: \"1:3\"}}]"
    expect 2 "p.yaml:" "key 'pattern'" "one of unstructured|2:4" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml parameter_range_of_the_model; then
    scen in/p.yaml "batch: 4" "strategies: [{plugin: checkpoint, params: {segments: 99}}]"
    # Within the declared range but beyond this model's layers: the plugin
    # refuses it when created, which is that run's outcome (error).
    post='outcome checkpoint error'
    expect 1 "checkpoint" "parameter 'segments'" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml parameter_wrong_type; then
    scen in/p.yaml "batch: 4" "strategies: [{plugin: checkpoint, params: {segments: [1, 2]}}]"
    expect 2 "p.yaml:" "key 'strategies.params.segments'" -- "$bin" run --out out in/p.yaml
fi
if new_case yaml check_too_long; then
    scen in/c.yaml "batch: 4" "strategies: [none]" \
        "checks: [\"none.memory.peak_bytes <= $(printf '1+%.0s' $(seq 700))1\"]"
    expect 2 "c.yaml:" "key 'checks" "1024" -- "$bin" run --out out in/c.yaml
fi
if new_case yaml check_too_deep; then
    scen in/c.yaml "batch: 4" "strategies: [none]" \
        "checks: [\"none.memory.peak_bytes <= $(printf '(%.0s' $(seq 100))1$(printf ')%.0s' $(seq 100))\"]"
    expect 2 "c.yaml:" "key 'checks" "nested too deeply" -- "$bin" run --out out in/c.yaml
fi
if new_case yaml check_malformed; then
    scen in/c.yaml "batch: 4" "strategies: [none]" 'checks: ["none.memory.peak_bytes <= * 2"]'
    expect 2 "c.yaml:" "key 'checks" "column" -- "$bin" run --out out in/c.yaml
fi
if new_case yaml two_documents; then
    scen in/two.yaml "batch: 4" "strategies: [none]"
    printf -- '---\nname: second\n' >>in/two.yaml
    expect 2 "two.yaml" -- "$bin" run --out out in/two.yaml
fi
if new_case yaml syntax_error; then
    printf 'name: x\nmodel: {input: 8\nbatch: [4\n' >in/syn.yaml
    expect 2 "syn.yaml:" -- "$bin" run --out out in/syn.yaml
fi
if new_case yaml too_many_strategies; then
    scen in/many.yaml "batch: 4" "strategies:"
    for i in $(seq 300); do echo "  - {plugin: none, label: s$i}"; done >>in/many.yaml
    expect 2 "many.yaml:" "key 'strategies'" -- "$bin" run --out out in/many.yaml
fi

# =============================================================== names ====

for nv in "slash=a/b" "dotdot=.." "gnuplot=x'; system('touch $root/canary/PWNED'); '" \
          "html=<script>alert(1)</script>" "shell=\$(touch $root/canary/PWNED)" \
          "long=$(printf 'n%.0s' $(seq 300))" "newline=a\\nb" "leading_dot=.hidden"; do
    k=${nv%%=*}
    new_case names "scenario_name_$k" || continue
    v=${nv#*=}
    python3 - in/n.yaml "$v" "$model" <<'PY'
import json, sys
open(sys.argv[1], "w").write("name: %s\n%s\nbatch: 4\nsteps: {warmup: 0, measured: 1}\nstrategies: [none]\n"
                             % (json.dumps(sys.argv[2]), sys.argv[3]))
PY
    expect 2 "n.yaml:" "key 'name'" -- "$bin" run --out out in/n.yaml
done
if new_case names unsafe_file_name; then
    {
        echo "$model"
        echo "batch: 4"
        echo "strategies: [none]"
    } >"in/set output '..x'; \$(id).yaml"
    expect 2 "set output" "key 'name'" -- "$bin" run --out out "in/set output '..x'; \$(id).yaml"
fi
if new_case names label_too_long; then
    scen in/l.yaml "batch: 4" "strategies: [{plugin: none, label: $(printf 'l%.0s' $(seq 100))}]"
    expect 2 "l.yaml:" "label" -- "$bin" run --out out in/l.yaml
fi
if new_case names label_unsafe; then
    scen in/l.yaml "batch: 4" 'strategies: [{plugin: none, label: "../x"}]'
    expect 2 "l.yaml:" "label" -- "$bin" run --out out in/l.yaml
fi
if new_case names plugin_name_unsafe; then
    scen in/l.yaml "batch: 4" 'strategies: [{plugin: "../../tmp/evil"}]'
    expect 2 "l.yaml:" "plugin" -- "$bin" run --out out in/l.yaml
fi
if new_case names device_class_option; then
    expect 2 "device-class" "../x" -- "$bin" baseline save --baseline out/b --device-class ../x "$good"
fi
if new_case names device_class_env; then
    expect 2 "OOMB_DEVICE_CLASS" "../x" -- env OOMB_DEVICE_CLASS=../x "$bin" baseline save --baseline out/b "$good"
fi
if new_case names device_class_env_compare; then
    expect 2 "OOMB_DEVICE_CLASS" -- env "OOMB_DEVICE_CLASS=a/../../b" "$bin" compare --baseline out/b "$good"
fi

# ============================================================= results ====

# break-a-copy cases: NAME, the Python that breaks it, the field expected.
results_case() { # results_case NAME FIELD PYTHON [COMMAND]
    new_case results "$1" || return 0
    mutate "$good" in/r.json "$3"
    case ${4:-compare} in
    compare) expect 2 "r.json" "$2" -- "$bin" compare --baseline out/b in/r.json ;;
    save) expect 2 "r.json" "$2" -- "$bin" baseline save --baseline out/b in/r.json ;;
    report) expect 2 "r.json" "$2" -- "$bin" report -q --out out/rep in/r.json ;;
    esac
}
results_case missing_memory "'runs[0].memory'" 'del d["runs"][0]["memory"]'
results_case negative_batch "'runs[0].batch'" 'd["runs"][0]["batch"] = -4' save
results_case negative_sample "'runs[0].time.samples'" 'd["runs"][0]["time"]["samples"][0] = -5' report
results_case too_many_samples "'runs[0].time.samples'" 'd["runs"][0]["time"]["samples"] = [1000] * 1000001'
results_case wrong_schema "schema" 'd["schema"] = "oombench-results/99"' save
results_case truncated_json "r.json" 'd = open(sys.argv[1], "rb").read()[:-40]' report
results_case scenario_escape "scenario" 'd["runs"][0]["scenario"] = "../../../canary/x"' save
results_case device_class_escape "device.class" 'd["device"]["class"] = "../x"' save
results_case runs_not_list "runs" 'd["runs"] = {"a": 1}'
results_case batch_huge "'runs[0].batch'" 'd["runs"][0]["batch"] = 2**40' save
results_case outcome_unknown "'runs[0].outcome'" 'd["runs"][0]["outcome"] = "pwned"'
results_case peak_negative "peak_bytes" 'd["runs"][0]["memory"]["peak_bytes"] = -1' save
results_case nul_in_string "r.json" 'd = open(sys.argv[1], "rb").read().replace(b"\"none\"", b"\"no\\u0000ne\"", 1)' report
if new_case results folder_as_file; then
    mkdir in/r.json
    expect 2 "r.json" "directory" -- "$bin" compare --baseline out/b in/r.json
fi
if new_case results empty_file; then
    : >in/r.json
    expect 2 "r.json" -- "$bin" baseline save --baseline out/b in/r.json
fi
if new_case results control_chars_in_report; then
    mutate "$good" in/r.json "
m = '$root/canary/PWNED'
r = d['runs'][0]
r['strategy'] = 'x\x1b[31m\\\\\"; system(\"touch ' + m + '-1\") #<b>*'
d['host']['name'] = '\x07\x1b]0;t\x07<script>alert(1)</script>\`touch ' + m + '-2\`'
d['device']['name'] = '\$(touch ' + m + '-3)\n| a | b |'"
    post='! ls "$root/canary" | grep -q PWNED && ! grep -q "<script>" out/rep/index.html &&
          grep -q "&lt;script&gt;" out/rep/index.html && ! grep -qP "\x1b|\x07" out/rep/*.html out/rep/*.md out/rep/*.gp'
    expect 0 -- "$bin" report -q --out out/rep in/r.json
fi

# ============================================================= plugins ====

fxscen() { # fxscen FILE STRATEGIES [TIMEOUT]: the small model, 2 steps
    printf 'name: hostile\n%s\nmode: train\nbatch: 4\nsteps: {warmup: 1, measured: 2}\ntimeout: %s\nstrategies: %s\n' \
        "$model" "${3:-10s}" "$2" >"$1"
}
if new_case plugins forking; then
    fxscen in/f.yaml "[fixture_fork]"
    post='outcome fixture_fork ok'
    expect 0 "fixture_fork" -- env OOMB_FIXTURE_PIDFILE="$base/pids/fork" "$bin" run --out out -p "$fixtures/fixture_fork.so" in/f.yaml
fi
if new_case plugins setsid; then
    fxscen in/f.yaml "[fixture_setsid]"
    post='outcome fixture_setsid ok'
    expect 0 "fixture_setsid" -- env OOMB_FIXTURE_PIDFILE="$base/pids/setsid" "$bin" run --out out -p "$fixtures/fixture_setsid.so" in/f.yaml
fi
if new_case plugins fork_in_constructor; then
    expect 0 "fixture_forkctor" -- env OOMB_FIXTURE_PIDFILE="$base/pids/forkctor" "$bin" list -s in -p "$fixtures/fixture_forkctor.so"
fi
if new_case plugins no_nul_message; then
    fxscen in/f.yaml "[fixture_nonul]"
    post='outcome fixture_nonul error'
    expect 1 "fixture_nonul" -- "$bin" run --out out -p "$fixtures/fixture_nonul.so" in/f.yaml
fi
if new_case plugins wild_descriptor; then
    expect 2 "fixture_wild.so" "'description'" -- "$bin" list -s in -p "$fixtures/fixture_wild.so"
fi
if new_case plugins unterminated_descriptor; then
    expect 2 "fixture_unterminated.so" "'description'" -- "$bin" list -s in -p "$fixtures/fixture_unterminated.so"
fi
for how in segv:crash abort:crash hang:timeout error:error; do
    new_case plugins "fault_${how%%:*}" || continue
    fxscen in/f.yaml "[{plugin: fixture_fail, label: f, params: {where: step, how: ${how%%:*}}}]" 2s
    post="outcome f ${how#*:}"
    expect 1 "f" "${how#*:}" -- "$bin" run --out out -p "$fixtures/fixture_fail.so" in/f.yaml
done
if new_case plugins ctor_crash; then
    expect 2 "fixture_ctorcrash.so" -- "$bin" run --out out -p "$fixtures/fixture_ctorcrash.so" "$g/ok.yaml"
fi
ww_setup() { # a copy of fixture_fail.so in in/ww, folder or file world-writable
    mkdir -p in/ww
    cp "$fixtures/fixture_fail.so" in/ww/
    chmod 755 in/ww
    chmod 644 in/ww/fixture_fail.so
    chmod "$2" "in/ww${1:+/$1}"
}
if new_case plugins ww_folder_refused; then
    ww_setup "" 777
    expect 2 "in/ww" "world-writable" -- "$bin" run --out out -P in/ww "$g/ok.yaml"
fi
if new_case plugins ww_file_refused; then
    ww_setup fixture_fail.so 666
    expect 2 "fixture_fail.so" "world-writable" -- "$bin" run --out out -p in/ww/fixture_fail.so "$g/ok.yaml"
fi
if new_case plugins ww_folder_allowed; then
    ww_setup "" 777
    expect 0 "fixture_fail" -- "$bin" list -s in --allow-unsafe-plugins -P in/ww
fi
if new_case plugins ww_file_allowed; then
    ww_setup fixture_fail.so 666
    post='outcome none ok'
    expect 0 "hostile" -- "$bin" run --out out --allow-unsafe-plugins -p in/ww/fixture_fail.so "$g/ok.yaml"
fi
if new_case plugins missing_plugin_file; then
    expect 2 "nothere.so" -- "$bin" run --out out -p in/nothere.so "$g/ok.yaml"
fi
if new_case plugins not_elf; then
    echo "not a shared object" >in/fake.so
    expect 2 "fake.so" -- "$bin" run --out out -p in/fake.so "$g/ok.yaml"
fi
if new_case plugins plugin_is_directory; then
    mkdir in/dir.so
    expect 2 "dir.so" -- "$bin" run --out out -p in/dir.so "$g/ok.yaml"
fi

# =============================================================== paths ====

if new_case paths run_out_into_file; then
    echo x >in/file
    expect 2 "in/file" -- "$bin" run --out in/file/sub "$g/ok.yaml"
fi
if new_case paths run_out_is_file; then
    echo x >in/file
    expect 2 "in/file" -- "$bin" run --out in/file "$g/ok.yaml"
fi
if new_case paths baseline_dotdot; then
    # ../ in --baseline goes where the user says (here: the output folder);
    # the names from the results file may not add an escape of their own.
    mutate "$good" in/r.json 'd["runs"][0]["scenario"] = "../../x"'
    expect 2 "r.json" "scenario" -- "$bin" baseline save --baseline out/../out/b in/r.json
fi
if new_case paths report_baseline_dotdot_missing; then
    expect 2 "--baseline ../nothere" -- "$bin" report -q --out out/rep --baseline ../nothere "$good"
fi
if new_case paths report_out_into_file; then
    echo x >in/file
    expect 2 "in/file" -- "$bin" report -q --out in/file/rep "$good"
fi

cd "$base" || exit 1
echo
printf 'cases:'
for k in yaml names results plugins paths; do printf ' %s %s,' "$k" "${group_count[$k]:-0}"; done
echo " $ncases in all; $nfail failed"
[ "$nfail" = 0 ] || { printf '  %s\n' "${failed[@]}"; exit 1; }
[ -n "$only" ] || [ "$ncases" -ge 60 ] || { echo "FAIL: fewer than 60 cases"; exit 1; }
exit 0
