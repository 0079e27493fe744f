#!/usr/bin/env bash
# Smoke test of oombench-roofline on the CPU backend: a quick run with small
# shapes must succeed, write JSON that parses, and report every achieved
# throughput, peak and time as a finite positive number. Then `--device cuda`
# must be refused with exit 2 and a clear message when no GPU is usable.
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --device cpu --quick --reps 3 --shapes '8,32,64;16,64,10' --json "$tmp/roof.json" \
    >"$tmp/out.txt"
grep -q "gemm" "$tmp/out.txt"

python3 - "$tmp/roof.json" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "oombench-roofline/1", d["schema"]
assert d["device"]["backend"] == "cpu" and d["device"]["name"], d["device"]
def pos(v, what):
    assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{what}: {v!r}"
for k, v in d["peaks"].items():
    pos(v, "peak " + k)
res = d["results"]
names = {r["name"] for r in res}
want = {"copy", "gemm", "linear_forward", "linear_backward", "relu_forward", "gelu_forward",
        "cast_f32_f16", "adam_update"}
assert want <= names, f"missing: {want - names}"
for r in res:
    what = f'{r["name"]} {r["dtype"]} {r["shape"]}'
    for k in ("achieved", "peak", "ratio", "bytes"):
        pos(r[k], f"{what}: {k}")
    pos(r["time"]["median"], f"{what}: time")
    assert len(r["time"]["samples"]) == d["config"]["reps"], what
    if r["unit"] == "TFLOP/s":
        for k in ("flops", "roof", "ratio_roof"):
            pos(r[k], f"{what}: {k}")
    else:
        assert r["unit"] == "GB/s", what
        assert r["bytes"] == r["bytes_read"] + r["bytes_written"], what
print(f"roofline json: {len(res)} results, all finite and positive")
PY

# Usage errors exit 2.
set +e
"$bin" --reps 0 >/dev/null 2>&1; rc=$?
set -e
test "$rc" -eq 2 || { echo "--reps 0: exit $rc, expected 2"; exit 1; }

# --device cuda: on a machine without a usable GPU (this one) it must exit 2
# saying so; where a GPU is usable the same quick run must simply succeed.
set +e
"$bin" --device cuda --quick --reps 1 --shapes '8,32,64' >"$tmp/cuda.out" 2>"$tmp/cuda.err"
rc=$?
set -e
case $rc in
0) echo "--device cuda: a GPU is usable here, quick run passed" ;;
2)
    grep -qi "no CUDA device" "$tmp/cuda.err" || { echo "no clear message:"; cat "$tmp/cuda.err"; exit 1; }
    echo "--device cuda without a GPU: exit 2: $(head -n1 "$tmp/cuda.err")"
    ;;
*) echo "--device cuda: exit $rc, expected 2 (no GPU) or 0"; cat "$tmp/cuda.err"; exit 1 ;;
esac
echo "roofline smoke test passed"
