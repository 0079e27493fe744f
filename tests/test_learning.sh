#!/usr/bin/env bash
# Every shipped scenario that trains learns: `none` (or, where `none` runs
# out of memory on purpose, another run of the `none` plugin) has its loss
# going down over its steps and its accuracy well above chance. The
# synthetic scenarios run with their own steps, so the numbers are those of
# the main job; the Fashion-MNIST ones with --steps 40 (their epochs take
# minutes) and are judged by their held-out test accuracy. Then synthetic
# samples made on demand by a streaming pipeline equal the resident ones:
# the same losses and weights, bit for bit.
#
# Learning means: the mean of the last k losses (k = 3, fewer for short runs;
# warm-up steps included, the losses are recorded from the first step) is
# below 0.97 of the mean of the first k, and the accuracy is at least 1.5
# times chance (1 / classes): chance plus 2.6 standard deviations of a
# guessing classifier's accuracy over the smallest number of samples here
# (resnet: 8 measured steps of 32).
#
# The two deep plain MLPs (16 ReLU layers of 1024 in offload.yaml, 32
# activations in checkpoint-deep.yaml) use `model.init: kaiming`: from
# PyTorch's default initialisation the input's influence on their logits
# vanishes with depth and their loss stays at ln(classes).
#
# usage: test_learning.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

# The scenarios that train (mode absent, `train`, or a list with train),
# split by input kind.
synthetic=() fmnist=()
for f in "$src"/scenarios/*.yaml; do
    # gpt2-small is for `plan`: a real step of its 93M parameters at T = 1024
    # takes minutes here (tests/test_plan.sh plans it)
    [[ $(basename "$f") == gpt2-small.yaml ]] && continue
    mode=$(sed -n 's/^mode: *//p' "$f")
    case "$mode" in "" | *train*) ;; *) continue ;; esac
    if grep -q '^input: .*fashion-mnist' "$f"; then fmnist+=("$f"); else synthetic+=("$f"); fi
done
[ ${#synthetic[@]} -ge 10 ] || bad "only ${#synthetic[@]} synthetic training scenarios found"
[ ${#fmnist[@]} -ge 2 ] || bad "only ${#fmnist[@]} Fashion-MNIST training scenarios found"

# `exact` is fragmentation.yaml's `none` under the exact allocator model:
# its `none` runs out of memory by design.
filter='/train/[0-9]+/(none|exact)$'
"$bin" run -q --filter "$filter" --out "$tmp/syn" "${synthetic[@]}" >"$tmp/syn.log" 2>&1 ||
    bad "run of the synthetic scenarios: exit $? ($(tail -3 "$tmp/syn.log"))"
# Their shortened runs fail fmnist's own accuracy checks: exit 1 is expected.
rc=0
"$bin" run -q --steps 40 --filter "$filter" --out "$tmp/fm" "${fmnist[@]}" >"$tmp/fm.log" 2>&1 ||
    rc=$?
[ $rc -le 1 ] || bad "run of the Fashion-MNIST scenarios: exit $rc ($(tail -3 "$tmp/fm.log"))"

n=$((${#synthetic[@]} + ${#fmnist[@]}))
python3 - "$src" "$n" "$tmp"/syn/*.json "$tmp"/fm/*.json <<'PY' || bad "learning"
import json, math, os, re, sys

src, expected, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def classes_of(name):
    """model.classes of the shipped scenario `name` (file name = name)."""
    text = open(os.path.join(src, "scenarios", name + ".yaml")).read()
    return int(re.search(r"^  classes: *(\d+)", text, re.M).group(1))

seen, failures = {}, []
for path in files:
    for r in json.load(open(path))["runs"]:
        if r["mode"] != "train" or r["plugin"] != "none" or r["outcome"] != "ok":
            continue
        name, q = r["scenario"], r["quality"]
        K = classes_of(name)
        L = q["losses"]
        tag = "%s/train/%d/%s" % (name, r["batch"], r["strategy"])
        if not L or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in L):
            failures.append("%s: losses %r" % (tag, L))
            continue
        k = max(1, min(3, len(L) // 3))
        first, last = sum(L[:k]) / k, sum(L[-k:]) / k
        acc = q.get("test_accuracy", q.get("accuracy"))
        line = "%-40s first %.3f last %.3f (%d steps) accuracy %.3f" % (
            tag, first, last, len(L), acc if acc is not None else float("nan"))
        print(line)
        seen[name] = seen.get(name, 0) + 1
        if not last < 0.97 * first:
            failures.append("%s: the loss did not go down: %s" % (tag, line))
        if acc is None or not acc >= 1.5 / K:
            failures.append("%s: accuracy not above chance (1/%d): %s" % (tag, K, line))
print("%d scenarios with a training run of none" % len(seen))
if len(seen) != expected:
    failures.append("%d of %d training scenarios had an ok run of none: %s" %
                    (len(seen), expected, sorted(seen)))
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
PY

# Streaming synthetic input: each step's batch generated on demand by the
# loader thread equals the resident set's rows (mlp-budget's model, batch
# 256, 6 steps), so the runs match none bit for bit.
sed -e '/^strategies:/,$d' -e 's/^name: .*/name: stream/' -e 's/^batch: .*/batch: 256/' \
    "$src/scenarios/mlp-budget.yaml" >"$tmp/stream.yaml"
cat >>"$tmp/stream.yaml" <<'EOF'
strategies:
  - none
  - {plugin: none, label: streaming, pipeline: {kind: streaming, prefetch: 2}}
checks:
  - "streaming.numerics.loss_rel_err == 0"
  - "streaming.numerics.weight_rel_err == 0"
  - "streaming.quality.accuracy == none.quality.accuracy"
EOF
"$bin" run -q --out "$tmp/stream" "$tmp/stream.yaml" >"$tmp/stream.log" 2>&1 ||
    bad "streaming synthetic input differs from resident: $(grep 'check FAIL' "$tmp/stream.log")"
grep -q "3 check(s): 0 failed" "$tmp/stream.log" || bad "the streaming checks did not all run"

[ "$fail" = 0 ] && echo "learning: all passed"
[ "$fail" = 0 ]
