#!/usr/bin/env python3
"""PyTorch's dynamic int8 inference on oombench's MLP, for docs/performance.md.

Times one forward of the MLP 784-1024x4-10 (ReLU) at batch 256 on one thread,
FP32 and torch.ao.quantization.quantize_dynamic (int8 weights, activations
quantised per call), and with --oombench BIN also oombench's inference step of
scenarios/mlp.yaml for none, quantize, prune90 and prune24 (one `oombench run`
per round, 1 thread, the median step of each run), the rounds interleaved;
prints the median over the rounds in ms, and each round's time.
Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/bench-int8.py \
           [--oombench build/release/oombench] [--batch 256] [--rounds 7]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch

try:
    from torch.ao.quantization import quantize_dynamic
except ImportError:  # torch < 1.10
    from torch.quantization import quantize_dynamic


def mlp():
    layers, prev = [], 784
    for _ in range(4):
        layers += [torch.nn.Linear(prev, 1024), torch.nn.ReLU()]
        prev = 1024
    layers.append(torch.nn.Linear(prev, 10))
    return torch.nn.Sequential(*layers).eval()


def time_ms(model, x, reps):
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
        return (time.perf_counter() - t0) * 1e3 / reps


def oombench_ms(binary, batch, steps):
    """Median step (ms) of each mlp.yaml inference run at `batch`, by label."""
    scen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios", "mlp.yaml")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "run", "-q", "--threads", "1", "--steps", str(steps), "-o", out,
                        "--filter", f"mlp/infer/{batch}/(none|quantize|prune90|prune24)$", scen],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(glob.glob(os.path.join(out, "*.json"))[0]) as f:
            runs = json.load(f)["runs"]
    return {r.get("label") or r["strategy"]: r["time"]["median"] / 1e6 for r in runs
            if r["outcome"] == "ok"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=20, help="forwards per round")
    ap.add_argument("--oombench", action="append", default=[],
                    help="also time this oombench binary's mlp.yaml runs (repeatable: "
                    "e.g. a build before and after a change)")
    ap.add_argument("--steps", type=int, default=20, help="oombench measured steps per run")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(42)
    fp32 = mlp()
    q8 = quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    x = torch.randn(a.batch, 784)
    for m in (fp32, q8):
        time_ms(m, x, 3)  # warm-up
    res = {"fp32": [], "quantize_dynamic": []}
    for _ in range(a.rounds):
        res["fp32"].append(time_ms(fp32, x, a.reps))
        res["quantize_dynamic"].append(time_ms(q8, x, a.reps))
        for i, binary in enumerate(a.oombench):
            for k, v in oombench_ms(binary, a.batch, a.steps).items():
                res.setdefault(f"oombench[{i}] {k}", []).append(v)
    print(f"torch {torch.__version__}, engine {torch.backends.quantized.engine}, "
          f"batch {a.batch}, 1 thread, {a.rounds} rounds x {a.reps} forwards")
    for i, binary in enumerate(a.oombench):
        print(f"oombench[{i}] = {binary}")
    for k, v in res.items():
        print(f"{k:28s} median {statistics.median(v):7.2f} ms  "
              f"(min {min(v):.2f}, max {max(v):.2f})  rounds " + " ".join(f"{t:.2f}" for t in v))


if __name__ == "__main__":
    main()
