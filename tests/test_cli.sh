#!/usr/bin/env bash
# The command line as a user meets it: exit codes (0 fine, 1 failed run or
# check, 2 usage/input error), help on every subcommand, that failing
# plugins end as outcomes in a complete results file, that no process a
# plugin starts outlives its run or the harness (SIGKILL, SIGTERM, SIGINT),
# that temporary files are cleaned, and that unsafe plugin paths are refused.
set -euo pipefail
bin=$1
src=$2
fixtures=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
expect() { # expect CODE DESCRIPTION -- command...
    local want=$1 what=$2
    shift 3
    local got=0
    "$@" >"$tmp/out" 2>"$tmp/err" || got=$?
    if [ "$got" = "$want" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $what: exit $got, expected $want"
        sed 's/^/  | /' "$tmp/out" "$tmp/err" | head -20
    fi
}

expect 0 "--version" -- "$bin" --version
expect 0 "--help" -- "$bin" --help
expect 2 "no command" -- "$bin"
expect 2 "unknown command" -- "$bin" frobnicate
for cmd in run list; do
    expect 0 "$cmd --help" -- "$bin" "$cmd" --help
    grep -q "usage: oombench $cmd" "$tmp/out" || { echo "FAIL: $cmd --help text"; fail=$((fail + 1)); }
done
expect 2 "run without scenario" -- "$bin" run
expect 2 "run with a bad option" -- "$bin" run --bogus x.yaml
expect 2 "run with a bad --device" -- "$bin" run --device tpu "$src/scenarios/mlp.yaml"
expect 2 "run with --timeout beyond a week" -- "$bin" run --timeout 1e10 "$src/scenarios/mlp.yaml"

# A malformed scenario: exit 2, file:line:col in the message, nothing written.
expect 2 "malformed scenario" -- "$bin" run --out "$tmp/bad-out" "$src/tests/data/scenarios/bad/negative_batch.yaml"
grep -q "negative_batch.yaml:[0-9]*:[0-9]*: key 'batch'" "$tmp/err" || { echo "FAIL: error lacks file:line:col and key"; cat "$tmp/err"; fail=$((fail + 1)); }
[ ! -e "$tmp/bad-out" ] || [ -z "$(ls -A "$tmp/bad-out")" ] || { echo "FAIL: a results file was written"; fail=$((fail + 1)); }

# Not a scenario file: a FIFO is refused without blocking on it, a directory
# is not a YAML syntax error; exit 2 and nothing written.
mkfifo "$tmp/pipe.yaml"
expect 2 "FIFO as the scenario" -- timeout 10 "$bin" run --out "$tmp/fifo-out" "$tmp/pipe.yaml"
grep -q "pipe.yaml: cannot read: a FIFO" "$tmp/err" || { echo "FAIL: FIFO message"; cat "$tmp/err"; fail=$((fail + 1)); }
mkdir "$tmp/dir.yaml"
expect 2 "directory as the scenario" -- "$bin" run --out "$tmp/dir-out" "$tmp/dir.yaml"
grep -q "dir.yaml: cannot read: a directory" "$tmp/err" || { echo "FAIL: directory message"; cat "$tmp/err"; fail=$((fail + 1)); }
[ ! -e "$tmp/fifo-out" ] && [ ! -e "$tmp/dir-out" ] || { echo "FAIL: output written for a non-file"; fail=$((fail + 1)); }
# A hostile file name with no name: key: exit 2 asking for one, not a scenario named after it.
cp "$src/tests/data/scenarios/good/minimal.yaml" "$tmp/set title 'x'.yaml"
expect 2 "unsafe file name" -- "$bin" run --out "$tmp/name-out" "$tmp/set title 'x'.yaml"
grep -q "key 'name': .*add a 'name:' key" "$tmp/err" || { echo "FAIL: unsafe file name message"; cat "$tmp/err"; fail=$((fail + 1)); }

# Crash, abort, hang, over budget: outcomes, exit 1, every run in the file.
expect 1 "failing fixtures" -- "$bin" run --no-color --out "$tmp/fx" --plugin-dir "$fixtures" "$src/tests/data/cli/fixtures-fail.yaml"
python3 - "$tmp/fx" <<'PY' || fail=$((fail + 1))
import glob, json, sys
files = glob.glob(sys.argv[1] + "/*.json")
assert len(files) == 1, files
runs = {r["strategy"]: r for r in json.load(open(files[0]))["runs"]}
want = {"none": "ok", "segv": "crash", "abrt": "crash", "hang": "timeout", "over_budget": "oom"}
got = {k: runs[k]["outcome"] for k in want}
assert got == want, got
assert runs["over_budget"]["memory"]["oom"]["request_bytes"] == 1 << 62
PY
pass=$((pass + 1))

# ---- containment: no process of a run outlives it or the harness ----
model='model: {input: 16, classes: 4, layers: [{linear: 32}, relu, {linear: 4}]}
mode: train
batch: 8
steps: {warmup: 1, measured: 3}'
check() { # check DESCRIPTION -- command...: one assertion
    local what=$1
    shift 2
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}
# The fixtures name their processes oomb-fx-* and append their pids to
# $OOMB_FIXTURE_PIDFILE (tests/fixtures/fixture_hostile.c).
none_alive() { # none_alive PIDFILE: no recorded process exists any more
    local p
    [ -s "$1" ] || { echo "  (no pid recorded in $1)"; return 1; }
    for p in $(cat "$1"); do
        if grep -q '^oomb-fx' "/proc/$p/comm" 2>/dev/null; then
            echo "  pid $p ($(cat /proc/$p/comm)) is still running"
            return 1
        fi
    done
}
wait_pids() { # wait_pids PIDFILE N: until N pids are recorded (10 s at most)
    local i
    for i in $(seq 100); do
        [ -s "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
kill_recorded() { # leave nothing behind even when a check failed
    local p
    for p in $(cat "$1" 2>/dev/null); do
        grep -q '^oomb-fx' "/proc/$p/comm" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
}

# A plugin that forks and one that escapes with setsid: the run ends, its
# output pipe closes (nothing holds it), and no process of theirs is left.
printf '%s\ntimeout: 10s\nstrategies: [none, fixture_fork, fixture_setsid]\n' "$model" >"$tmp/fork.yaml"
export OOMB_FIXTURE_PIDFILE=$tmp/fork.pids
got=0
timeout 30 bash -c '"$1" run --no-color --out "$2" -p "$3/fixture_fork.so" -p "$3/fixture_setsid.so" "$4" 2>&1 | cat >"$5"' _ \
    "$bin" "$tmp/fork-out" "$fixtures" "$tmp/fork.yaml" "$tmp/fork.txt" || got=$?
unset OOMB_FIXTURE_PIDFILE
check "forking plugins: the piped run ends (exit $got)" -- test "$got" = 0
check "forking plugins: no process outlives the run" -- none_alive "$tmp/fork.pids"
kill_recorded "$tmp/fork.pids"

# `list` survives descriptors with wild and unterminated strings, and says why.
expect 0 "list with hostile descriptors" -- "$bin" list --plugin-dir "$fixtures" --scenarios "$tmp"
check "list names the wild pointer" -- grep -q "rejected: .*fixture_wild.so: descriptor field 'description' points to memory that cannot be read" "$tmp/out"
check "list names the unterminated string" -- grep -q "rejected: .*fixture_unterminated.so: descriptor field 'description' is longer than" "$tmp/out"
check "list shows a plugin whose constructor crashes outside the probe" -- grep -q "^  fixture_ctorparent - " "$tmp/out"

# SIGKILL of `oombench run`: its spinning run and that run's grandchild end
# within the run's deadline (4 s), and the next run removes the temporary
# folder the killed one left.
mkdir -p "$tmp/t"
printf '%s\ntimeout: 4s\nstrategies: [fixture_spin]\n' "$model" >"$tmp/spin.yaml"
rm -f "$tmp/spin.pids"
OOMB_FIXTURE_PIDFILE=$tmp/spin.pids TMPDIR=$tmp/t "$bin" run -q --out "$tmp/spin-out" \
    --plugin "$fixtures/fixture_spin.so" "$tmp/spin.yaml" >/dev/null 2>&1 &
victim=$!
check "SIGKILL: the run started" -- wait_pids "$tmp/spin.pids" 2
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
gone=1
for i in $(seq 30); do
    none_alive "$tmp/spin.pids" >/dev/null && { gone=0; break; }
    sleep 0.1
done
check "SIGKILL: the spinning run and its grandchild end within 3 s" -- test "$gone" = 0
kill_recorded "$tmp/spin.pids"
tbase=$tmp/t/oombench-$(id -u)
check "SIGKILL: the killed run left its folder" -- compgen -G "$tbase/run-$victim.*" >/dev/null
printf '%s\nstrategies: [none]\n' "$model" >"$tmp/none.yaml"
expect 0 "a run after the killed one" -- env TMPDIR="$tmp/t" "$bin" run -q --out "$tmp/spin-out" "$tmp/none.yaml"
check "the next run removed the stale folder" -- test -z "$(ls -A "$tbase")"

# SIGTERM and SIGINT: the harness stops its run, removes its folder and any
# results temp file, and dies of the signal. (A background job of a script
# starts with SIGINT ignored, which oombench respects: env restores it.)
for sig in TERM INT; do
    rm -f "$tmp/spin.pids"
    printf '%s\ntimeout: 20s\nstrategies: [fixture_spin]\n' "$model" >"$tmp/spin.yaml"
    OOMB_FIXTURE_PIDFILE=$tmp/spin.pids TMPDIR=$tmp/t env --default-signal=INT \
        "$bin" run -q --out "$tmp/sig-out" \
        --plugin "$fixtures/fixture_spin.so" "$tmp/spin.yaml" >/dev/null 2>&1 &
    victim=$!
    check "SIG$sig: the run started" -- wait_pids "$tmp/spin.pids" 2
    kill -"$sig" "$victim"
    got=0
    wait "$victim" 2>/dev/null || got=$?
    check "SIG$sig: died of the signal (exit $got)" -- test "$got" = $((128 + $(kill -l "$sig")))
    check "SIG$sig: no process of the run is left" -- none_alive "$tmp/spin.pids"
    kill_recorded "$tmp/spin.pids"
    check "SIG$sig: the temporary folder is gone" -- test -z "$(ls -A "$tbase")"
    check "SIG$sig: no results temp file" -- test -z "$(find "$tmp/sig-out" -name '*.tmp.*')"
done

# Plugins others may write are refused, with the path and the mode, unless
# --allow-unsafe-plugins.
mkdir -p "$tmp/ww"
cp "$fixtures/fixture_fail.so" "$tmp/ww/"
chmod 0777 "$tmp/ww"
expect 2 "list: world-writable plugin folder" -- "$bin" list --plugin-dir "$tmp/ww" --scenarios "$tmp"
check "the refusal names the folder and its mode" -- grep -q "$tmp/ww.*world-writable (mode 0777" "$tmp/err"
expect 0 "list --allow-unsafe-plugins" -- "$bin" list --allow-unsafe-plugins --plugin-dir "$tmp/ww" --scenarios "$tmp"
check "the allowed plugin is listed" -- grep -q "^  fixture_fail - " "$tmp/out"
chmod 0755 "$tmp/ww"
chmod 0666 "$tmp/ww/fixture_fail.so"
printf '%s\nstrategies: [none, fixture_fail]\n' "$model" >"$tmp/ww.yaml"
expect 2 "run: world-writable plugin file" -- "$bin" run -q --out "$tmp/ww-out" --plugin "$tmp/ww/fixture_fail.so" "$tmp/ww.yaml"
check "the refusal names the file and its mode" -- grep -q "fixture_fail.so.*plugin file.*world-writable (mode 0666" "$tmp/err"
expect 1 "run --allow-unsafe-plugins (fixture_fail crashes by default)" -- "$bin" run -q --out "$tmp/ww-out" --allow-unsafe-plugins --plugin "$tmp/ww/fixture_fail.so" "$tmp/ww.yaml"
expect 2 "ab: world-writable plugin file" -- "$bin" ab --quiet --rounds 1 --out "$tmp/ab" --base "$tmp/ww" --head "$tmp/ww" "$tmp/ww.yaml"
check "ab says so" -- grep -q "world-writable (mode 0666" "$tmp/err"

# ---- selection, machine output, streaming ----
printf '%s\nbatch: [4, 8]\nstrategies: [none, checkpoint, grad_accum]\nchecks:\n  - "checkpoint.memory.activations <= none.memory.activations"\n  - "grad_accum.memory.activations < none.memory.activations"\n' \
    "$(printf '%s\n' "$model" | grep -v '^batch')" >"$tmp/sel.yaml"
expect 0 "run --filter --json -" -- "$bin" run --no-color --out "$tmp/sel" --filter '/8/checkpoint$' --json - "$tmp/sel.yaml"
check "--json - writes the results JSON to stdout, with none kept as the reference" -- \
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert [(x["batch"], x["strategy"]) for x in r["runs"]] == [(8, "none"), (8, "checkpoint")], r["runs"]; assert [c["status"] for c in r["checks"]] == ["pass", "skipped"], r["checks"]' "$tmp/out"
check "the tables and checks go to stderr with --json -" -- grep -q "check SKIP.*not selected by --filter" "$tmp/err"
check "a progress line per finished run with elapsed time and ETA" -- grep -Eq '^\[2/2 [0-9]+:[0-9]{2}, eta [0-9]+:[0-9]{2}\] .* batch 8 checkpoint: ok' "$tmp/err"
check "the results file is written too" -- test -n "$(ls "$tmp"/sel/*.json)"
expect 0 "run streams each scenario's table" -- "$bin" run --no-color --out "$tmp/sel" "$tmp/sel.yaml"
check "the table is on stdout" -- grep -q "^sel (train, batch 8)" "$tmp/out"
expect 2 "run --filter with a bad expression" -- "$bin" run --out "$tmp/sel" --filter '(' "$tmp/sel.yaml"
check "the bad expression is named" -- grep -q "filter '('" "$tmp/err"
expect 2 "run --filter that selects nothing" -- "$bin" run --out "$tmp/sel" --filter 'nothing-like-it' "$tmp/sel.yaml"
check "... says how runs are named" -- grep -q "scenario/mode/batch/label" "$tmp/err"
expect 2 "run --json to a file" -- "$bin" run --out "$tmp/sel" --json x.json "$tmp/sel.yaml"

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
