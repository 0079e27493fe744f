#!/usr/bin/env python3
"""PyTorch's dynamic int8 inference on oombench's MLP, for docs/performance.md.

Times one forward of the MLP 784-1024x4-10 (ReLU) at batch 256 on one thread,
FP32 and torch.ao.quantization.quantize_dynamic (int8 weights, activations
quantised per call), interleaved, and prints the median of the rounds in ms.
Usage: OPENBLAS_NUM_THREADS=1 python3 scripts/bench-int8.py [--batch 256] [--rounds 7]
"""
import argparse
import statistics
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=20, help="forwards per round")
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
    print(f"torch {torch.__version__}, engine {torch.backends.quantized.engine}, "
          f"batch {a.batch}, 1 thread, {a.rounds} rounds x {a.reps} forwards")
    for k, v in res.items():
        print(f"{k:18s} median {statistics.median(v):7.2f} ms  "
              f"(min {min(v):.2f}, max {max(v):.2f})")


if __name__ == "__main__":
    main()
