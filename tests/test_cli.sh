#!/usr/bin/env bash
# The command line as a user meets it: exit codes (0 fine, 1 failed run or
# check, 2 usage/input error), help on every subcommand, and that failing
# plugins end as outcomes in a complete results file.
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

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
