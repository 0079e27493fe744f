#!/usr/bin/env bash
# Scale-out: scenarios/mlp.yaml (2 steps per run) as 3 shards in parallel
# processes and one unsharded run; `merge` of the shards equals the unsharded results (the
# same runs in the same order, outcomes, memory per tag and space to the
# byte, the same check results); merge refuses other builds, device classes,
# scenario versions, a missing or repeated shard (exit 2, naming the files);
# docs/scale-out/slurm-array.sh runs a shard with SLURM_* set by hand, and
# docs/scale-out/github-matrix.yml parses with its matrix naming every shard.
#
# usage: test_shards.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
py() { python3 - "$@"; }

# mlp.yaml as shipped (every strategy, mode, batch and check) with fewer
# steps, to keep the suite short: memory and the merge do not depend on them.
scen="$tmp/mlp.yaml"
sed 's/^steps: .*/steps: {warmup: 0, measured: 2}/' "$src/scenarios/mlp.yaml" >"$scen"
grep -q '^steps: {warmup: 0, measured: 2}' "$scen" || bad "mlp.yaml has no steps line to shorten"
pids=()
for i in 1 2 3; do
    "$bin" run -q --no-color --shard "$i/3" --out "$tmp/s$i" "$scen" >"$tmp/log$i" 2>&1 &
    pids+=($!)
done
"$bin" run -q --no-color --out "$tmp/full" "$scen" >"$tmp/logf" 2>&1 || bad "unsharded run: exit $?"
for i in 0 1 2; do
    wait "${pids[$i]}" || bad "shard $((i + 1)): exit $? ($(tail -3 "$tmp/log$((i + 1))"))"
done
shards=("$tmp"/s1/*.json "$tmp"/s2/*.json "$tmp"/s3/*.json)
full=("$tmp"/full/*.json)
# every configuration in one shard, none twice
py "${shards[@]}" <<'PY' || bad "shard contents"
import json, sys
seen = {}
for path in sys.argv[1:]:
    r = json.load(open(path))
    assert r["shard"]["count"] == 3, r.get("shard")
    for run in r["runs"]:
        cfg = (run["scenario"], run["mode"], run["batch"])
        seen.setdefault(cfg, set()).add(r["shard"]["index"])
assert all(len(s) == 1 for s in seen.values()), seen
assert len(seen) == 4, seen  # train and infer at batch 64 and 256
PY
"$bin" merge "${shards[@]}" --out "$tmp/merged.json" >"$tmp/merge.log" 2>&1 ||
    bad "merge: exit $? ($(cat "$tmp/merge.log"))"
python3 "$src/tests/results_equal.py" "${full[0]}" "$tmp/merged.json" || bad "merged != unsharded"
# in any order
"$bin" merge "${shards[2]}" "${shards[0]}" "${shards[1]}" --out "$tmp/merged2.json" >/dev/null 2>&1 ||
    bad "merge in another order"
cmp -s <(py "$tmp/merged.json" <<<'import json,sys; r=json.load(open(sys.argv[1])); print([x["strategy"] for x in r["runs"]])') \
    <(py "$tmp/merged2.json" <<<'import json,sys; r=json.load(open(sys.argv[1])); print([x["strategy"] for x in r["runs"]])') ||
    bad "the order of the files changed the merged order"

# refusals: exit 2, both files named, nothing written
edit() { # FILE PYTHON-EXPR-ON-r OUT
    py "$1" "$3" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(r, open(sys.argv[2], "w"))
PY
}
refuse() { # WHAT WANT FILES...
    local what=$1 want=$2
    shift 2
    rm -f "$tmp/refused.json"
    set +e
    "$bin" merge "$@" --out "$tmp/refused.json" >"$tmp/ref.out" 2>"$tmp/ref.err"
    local rc=$?
    set -e
    [ "$rc" -eq 2 ] || bad "$what: exit $rc, expected 2"
    grep -q -- "$want" "$tmp/ref.err" || bad "$what: message lacks '$want': $(cat "$tmp/ref.err")"
    [ ! -e "$tmp/refused.json" ] || bad "$what: a file was written"
}
edit "${shards[1]}" 'r["build_id"] = "0123456789abcdef"' "$tmp/otherbuild.json"
refuse "other build" "different builds" "${shards[0]}" "$tmp/otherbuild.json" "${shards[2]}"
grep -q "otherbuild.json" "$tmp/ref.err" || bad "other build: the file is not named"
edit "${shards[1]}" 'r["device"]["class"] = "nvidia-h100"' "$tmp/otherdev.json"
refuse "other device class" "different device classes" "${shards[0]}" "$tmp/otherdev.json" "${shards[2]}"
edit "${shards[1]}" '[x.__setitem__("scenario_digest", "ffffffffffffffff") for x in r["runs"]]' "$tmp/otherscen.json"
if py "$tmp/otherscen.json" <<<'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["runs"] else 1)'; then
    refuse "other scenario version" "different versions of scenario" "${shards[0]}" "$tmp/otherscen.json" "${shards[2]}"
fi
refuse "missing shard" "2 file(s) given for a split into 3" "${shards[0]}" "${shards[1]}"
refuse "repeated shard" "are both shard" "${shards[0]}" "${shards[0]}" "${shards[1]}"
refuse "unsharded with shards" "not shards of one split" "${full[0]}" "${shards[0]}" "${shards[1]}"

# hostile files: a shard out of its count, a negative place, not JSON
edit "${shards[1]}" 'r["shard"] = {"index": 5, "count": 3}' "$tmp/badshard.json"
refuse "shard index beyond the count" "badshard.json" "${shards[0]}" "$tmp/badshard.json" "${shards[2]}"
edit "${shards[0]}" 'r["runs"][0]["seq"] = -4' "$tmp/badseq.json"
refuse "negative seq" "badseq.json" "$tmp/badseq.json" "${shards[1]}" "${shards[2]}"
printf '{"schema": "oombench-results/2", "runs": [' >"$tmp/cut.json"
refuse "a cut file" "cut.json" "${shards[0]}" "$tmp/cut.json" "${shards[2]}"

# the Slurm script, as one array task
small="$tmp/small.yaml"
cat >"$small" <<'YAML'
name: small
model: {input: 8, classes: 3, layers: [{linear: 16}, relu, {linear: 3}]}
mode: [train, infer]
batch: [4, 8]
steps: {warmup: 0, measured: 1}
strategies: [none, checkpoint]
YAML
(cd "$tmp" && SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_COUNT=3 \
    SLURM_ARRAY_JOB_ID=77 OOMBENCH="$bin" SCENARIOS="$small" \
    bash "$src/docs/scale-out/slurm-array.sh" >"$tmp/slurm.log" 2>&1) || bad "slurm script: $(tail -3 "$tmp/slurm.log")"
py "$tmp"/results/shards-77/shard-2/*.json <<'PY' || bad "slurm script: results"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["shard"] == {"index": 2, "count": 3}, r.get("shard")
PY

# the workflow: YAML whose matrix names shards 1..SHARDS, each run with --shard
py "$src/docs/scale-out/github-matrix.yml" <<'PY' || bad "workflow"
import sys, yaml
w = yaml.safe_load(open(sys.argv[1]))
n = int(w["env"]["SHARDS"])
job = w["jobs"]["shard"]
assert job["strategy"]["matrix"]["shard"] == list(range(1, n + 1)), job["strategy"]
runs = " ".join(s.get("run", "") for s in job["steps"])
assert "--shard ${{ matrix.shard }}/${{ env.SHARDS }}" in runs, runs
merge = " ".join(s.get("run", "") for s in w["jobs"]["merge"]["steps"])
assert "oombench merge" in merge and w["jobs"]["merge"]["needs"] == "shard"
assert job["needs"] == "build"
PY

[ "$fail" -eq 0 ] && echo "shards: ok" || { echo "shards: $fail failure(s)"; exit 1; }
