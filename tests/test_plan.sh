#!/usr/bin/env bash
# `plan` equals `run`: every strategy of every shipped scenario that this
# machine can run (all but gpt2-small), one measured step, once for real and
# once as a dry run on the counting backend: the same outcome, the same peak
# and the same peak per tag, to the byte (and the same reserved peak where a
# scenario models the caching allocator). Then `plan` on the
# GPT-2-small-sized scenario: every strategy's peak and largest batch under
# 80 GiB, its JSON parsed. Under the sanitizers (ASAN_OPTIONS set) the real
# runs cover three scenarios (the dense and sparse strategies, Fashion-MNIST
# streaming, the caching allocator) to keep the suite's time.
#
# usage: test_plan.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

scen=()
if [[ -n "${ASAN_OPTIONS:-}" ]]; then
    scen=("$src/scenarios/mlp.yaml" "$src/scenarios/fmnist-mlp.yaml" "$src/scenarios/fragmentation.yaml")
else
    for f in "$src"/scenarios/*.yaml; do
        [[ $(basename "$f") == gpt2-small.yaml ]] && continue
        scen+=("$f")
    done
fi

"$bin" run -q --steps 1 --json - --out "$tmp/real" "${scen[@]}" >"$tmp/real.json" \
    2>"$tmp/real.log" || true # checks may fail on one step; the runs are what counts
"$bin" run -q --steps 1 --dry-run --json - --out "$tmp/dry" "${scen[@]}" >"$tmp/dry.json" \
    2>"$tmp/dry.log" || true
python3 - "$tmp/real.json" "$tmp/dry.json" <<'PY' || bad "plan != run"
import json, sys
real = json.load(open(sys.argv[1]))["runs"]
dry = json.load(open(sys.argv[2]))["runs"]
assert len(real) == len(dry) and len(real) > 0, (len(real), len(dry))
n = 0
for a, b in zip(real, dry):
    key = (a["scenario"], a["mode"], a["batch"], a["strategy"])
    assert key == (b["scenario"], b["mode"], b["batch"], b["strategy"]), (key, b["strategy"])
    assert b.get("dry_run") is True and "dry_run" not in a, key
    assert a["outcome"] == b["outcome"], (key, a["outcome"], b["outcome"], a["reason"], b["reason"])
    if a["outcome"] not in ("ok", "oom"):
        continue
    ma, mb = a["memory"], b["memory"]
    assert ma["peak_bytes"] == mb["peak_bytes"], (key, ma["peak_bytes"], mb["peak_bytes"])
    assert ma["peak_by_tag"] == mb["peak_by_tag"], (key, ma["peak_by_tag"], mb["peak_by_tag"])
    if "allocator" in ma:
        assert ma["allocator"].get("reserved_peak_bytes") == mb["allocator"].get("reserved_peak_bytes"), key
    n += 1
print(f"{n} runs: plan == run per tag")
assert n >= 20, n
PY

"$bin" plan -q --json - --out "$tmp/plan" "$src/scenarios/gpt2-small.yaml" \
    >"$tmp/gpt2.json" 2>"$tmp/gpt2.log" || bad "plan gpt2-small: exit $? ($(tail -3 "$tmp/gpt2.log"))"
python3 - "$tmp/gpt2.json" <<'PY' || bad "plan gpt2-small answers"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["scenario"] == "gpt2-small" and j["budget_bytes"] == 80 << 30, j["budget_bytes"]
plans = {(p["strategy"], p["mode"], p["batch"]): p for p in j["plans"]}
none = plans[("none", "train", 8)]
# Adam: weights, gradients, m and v of 92,920,330 parameters
assert none["peak_by_tag"]["weights"] == 4 * 92920330, none
assert none["peak_by_tag"]["optimizer"] == 8 * 92920330, none
fits = {(a["strategy"], a["mode"]): a for a in j["fits"]}
for k in [("none", "train"), ("checkpoint", "train"), ("grad_accum", "train"), ("none", "infer")]:
    a = fits[k]
    assert a["exact"] and a["first_oom_batch"] == a["max_batch"] + 1, (k, a)
# checkpointing and accumulation fit more than none
assert fits[("checkpoint", "train")]["max_batch"] > fits[("none", "train")]["max_batch"]
assert fits[("grad_accum", "train")]["max_batch"] > fits[("none", "train")]["max_batch"]
print({k: fits[k]["max_batch"] for k in fits})
PY
grep -q "max batch" "$tmp/gpt2.log" || bad "plan prints no table"

if "$bin" plan --batch 0 "$src/scenarios/mlp.yaml" >/dev/null 2>"$tmp/e"; then
    bad "plan --batch 0 accepted"
else
    [[ $? -eq 2 ]] || bad "plan --batch 0: exit not 2"
fi
[[ $fail -eq 0 ]] && echo "plan: all passed"
exit $fail
