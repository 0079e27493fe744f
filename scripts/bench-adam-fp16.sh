#!/bin/bash
# fp16 training against FP32 `none` on the CPU, by kernel path: each round runs
# the selected runs with OOMB_CPU_ISA=scalar, then with the best instruction
# set the CPU has, and (with BASE) the oombench of another build first;
# prints the medians over the rounds of each run's median step and phases,
# then each round's step time and fp16 / none ratio.
# Interleaved because the machine's load changes between rounds.
#
#   scripts/bench-adam-fp16.sh ROUNDS FILTER SCENARIO [BASE]
#   scripts/bench-adam-fp16.sh 5 'mlp/train/256/(none|fp16)$' scenarios/mlp.yaml
#
# BASE: the root of another checkout with a release build (its
# build/release/oombench and plugins), e.g. an older commit's.
set -eu
[ $# -ge 3 ] || { sed -n 2,13p "$0"; exit 2; }
rounds=$1 filter=$2 scenario=$(realpath "$3") base=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/base" "$out/scalar" "$out/auto"
for _ in $(seq "$rounds"); do
    if [ -n "$base" ]; then
        (cd "$base" && ./build/release/oombench run -q -o "$out/base" --filter "$filter" "$scenario" >/dev/null)
    fi
    (cd "$root" && OOMB_CPU_ISA=scalar ./build/release/oombench run -q -o "$out/scalar" --filter "$filter" "$scenario" >/dev/null)
    (cd "$root" && ./build/release/oombench run -q -o "$out/auto" --filter "$filter" "$scenario" >/dev/null)
done
python3 - "$out" <<'PY'
import glob, json, statistics as st, sys
out = sys.argv[1]
print("| build | cpu_isa | run | step ms | forward | backward | update | final loss |")
print("|---|---|---|---:|---:|---:|---:|---|")
rounds = {}
for cfg in ("base", "scalar", "auto"):
    acc, isa = {}, ""
    for f in sorted(glob.glob(out + "/" + cfg + "/*.json")):
        d = json.load(open(f))
        isa = d["blas"].get("cpu_isa", "") or "(not recorded)"
        for r in d["runs"]:
            ph = r["time"]["phases"]
            acc.setdefault("%s/%s" % (r.get("label") or r["strategy"], r["batch"]), []).append(
                [r["time"]["median"], ph["forward"]["median"], ph["backward"]["median"],
                 ph["update"]["median"], r["quality"].get("final_loss")])
    for k, v in sorted(acc.items()):
        med = [st.median(x[i] for x in v) / 1e6 for i in range(4)]
        print("| %s | %s | %s | %.1f | %.1f | %.1f | %.2f | %.6f |" % ((cfg, isa, k) + tuple(med) + (v[0][4],)))
        rounds[(cfg, k)] = [x[0] / 1e6 for x in v]
print()
print("step ms per round (in run order), and fp16 / none per round:")
for (cfg, k), v in sorted(rounds.items()):
    print("%-6s %-16s %s" % (cfg, k, " ".join("%.1f" % x for x in v)))
for cfg in ("base", "scalar", "auto"):
    pairs = [(k, kn) for (c, k) in rounds if c == cfg and k.startswith("fp16/")
             for kn in ["none/" + k.split("/", 1)[1]] if (cfg, kn) in rounds]
    for k, kn in pairs:
        r = [f / n for f, n in zip(rounds[(cfg, k)], rounds[(cfg, kn)])]
        print("%-6s %-16s %s  median %.3f" % (cfg, "fp16/none", " ".join("%.3f" % x for x in r),
                                               st.median(r)))
PY
