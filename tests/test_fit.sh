#!/usr/bin/env bash
# `oombench fit`: on scenarios/mlp-budget.yaml the largest batch of `none`
# and `checkpoint` under the 84 MiB budget, each verified in the results
# file by an ok run at B and an oom run at B + 1 (the JSON on stdout parses
# and points at them); on a model whose weights, gradients and Adam state
# alone exceed the budget, fit says so with the numbers; usage errors exit 2.
#
# usage: test_fit.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

"$bin" fit -q --filter '^(none|checkpoint)$' --max-batch 2048 --out "$tmp/out" --json - \
    "$src/scenarios/mlp-budget.yaml" >"$tmp/fit.json" 2>"$tmp/fit.log" ||
    bad "fit mlp-budget: exit $? ($(tail -3 "$tmp/fit.log"))"
python3 - "$tmp/fit.json" <<'PY' || bad "fit answers"
import json, sys
j = json.load(open(sys.argv[1]))
runs = json.load(open(j["results"]))["runs"]
assert j["scenario"] == "mlp-budget" and j["budget_bytes"] == 84 << 20, j
got = {a["strategy"]: a for a in j["fits"]}
assert set(got) == {"none", "checkpoint"}, got.keys()
for name, a in got.items():
    b = a["max_batch"]
    assert a["exact"] and a["first_oom_batch"] == b + 1, a
    ok, oom = runs[a["ok_run"]], runs[a["oom_run"]]
    assert ok["strategy"] == name and ok["batch"] == b and ok["outcome"] == "ok", ok["outcome"]
    assert oom["strategy"] == name and oom["batch"] == b + 1 and oom["outcome"] == "oom"
    assert ok["memory"]["peak_bytes"] <= 84 << 20 < oom["memory"]["oom"]["in_use_bytes"] + \
        oom["memory"]["oom"]["request_bytes"]
    # every run of the search in the file, one strategy alone (no reference)
    assert sum(r["strategy"] == name for r in runs) >= 3
# checkpointing keeps fewer activations: it fits a larger batch
assert got["checkpoint"]["max_batch"] > got["none"]["max_batch"], got
print({k: v["max_batch"] for k, v in got.items()})
PY
grep -q 'ok at [0-9]*, oom at [0-9]*' "$tmp/fit.log" || bad "the table names the verifying runs"

# Static memory above the budget: 1024-2048-2048-100 with Adam is 6.5M
# parameters, 24.80 MiB each of weights and gradients and 49.59 MiB of Adam
# state, 99.19 MiB against 64 MiB.
cat >"$tmp/big.yaml" <<'YAML'
name: big
model:
  input: 1024
  classes: 100
  layers: [{linear: 2048}, relu, {linear: 2048}, relu, {linear: 100}]
batch: 64
budget: 64MiB
strategies: [none]
YAML
"$bin" fit -q --max-batch 64 --out "$tmp/out" "$tmp/big.yaml" >"$tmp/big.log" 2>&1 ||
    bad "fit big: exit $?"
grep -q 'weights 24.80 MiB + gradients 24.80 MiB + Adam state 49.59 MiB = 99.19 MiB' "$tmp/big.log" ||
    bad "static memory not named: $(head -2 "$tmp/big.log")"
grep -q 'static memory alone exceeds the budget by 35.19 MiB' "$tmp/big.log" || bad "no excess"
grep -q 'even batch 1 runs out of memory' "$tmp/big.log" || bad "batch 1 not explained"

# usage errors: exit 2, nothing written
sed 's/^budget: .*//' "$tmp/big.yaml" >"$tmp/nobudget.yaml"
set +e
"$bin" fit --out "$tmp/none" "$tmp/nobudget.yaml" >/dev/null 2>"$tmp/e1"; r1=$?
"$bin" fit --max-batch 0 "$tmp/big.yaml" >/dev/null 2>&1; r2=$?
"$bin" fit --filter 'nothing' --out "$tmp/none" "$tmp/big.yaml" >/dev/null 2>&1; r3=$?
set -e
[ "$r1" -eq 2 ] && grep -q 'has no budget' "$tmp/e1" || bad "no budget: exit $r1"
[ "$r2" -eq 2 ] || bad "--max-batch 0: exit $r2"
[ "$r3" -eq 2 ] || bad "empty --filter: exit $r3"
[ ! -e "$tmp/none" ] || bad "a refused fit wrote $tmp/none"

[ "$fail" -eq 0 ] && echo "fit: all checks passed"
exit "$fail"
