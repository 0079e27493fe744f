#!/usr/bin/python3
"""Time one Adam update of oombench's CPU kernels against torch.optim.Adam.

A reference benchmark, not a test. The parameters are those of the MLP
784-1024x4-10 of scenarios/mlp.yaml (3,962,890), one flat array for
oombench (its engine's layout), the model's ten tensors for PyTorch (grads
set, weight decay 0, lr 1e-3). One thread everywhere. Each round runs, in
turn: the C kernels with OOMB_CPU_ISA=scalar and =avx2 (scripts/bench-adam.c,
built here against the release build's static kernel library), then
torch.optim.Adam with its default (foreach=None) and with foreach=False;
each entry is the median of STEPS steps; the table gives the median over
the rounds.

    cmake --preset release && cmake --build build/release -j2
    /usr/bin/python3 scripts/bench-adam.py [--rounds 7] [--steps 20]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(1024, 784), (1024,), (1024, 1024), (1024,), (1024, 1024), (1024,),
          (1024, 1024), (1024,), (10, 1024), (10,)]


def build(tmp):
    lib = os.path.join(ROOT, "build/release/kernels/liboomb_kernels_cpu.a")
    if not os.path.exists(lib):
        sys.exit("bench-adam: build the release preset first (%s is missing)" % lib)
    exe = os.path.join(tmp, "bench-adam")
    subprocess.run(["cc", "-O2", "-std=gnu17", "-I", os.path.join(ROOT, "kernels"),
                    "-I", os.path.join(ROOT, "harness/include"),
                    os.path.join(ROOT, "scripts/bench-adam.c"), lib,
                    "-lopenblas", "-lm", "-o", exe], check=True)
    return exe


def run_c(exe, n, steps, isa):
    env = dict(os.environ, OOMB_CPU_ISA=isa, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([exe, str(n), str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1]


def run_torch(torch, steps, foreach):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.rand(s, generator=gen) - 0.5) for s in SHAPES]
    for p in params:
        p.grad = (torch.rand(p.shape, generator=gen) - 0.5) * 1e-2
    kw = {} if foreach is None else {"foreach": foreach}
    opt = torch.optim.Adam(params, lr=1e-3, **kw)
    times = []
    with torch.no_grad():
        for k in range(steps + 3):
            t0 = time.perf_counter()
            opt.step()
            t1 = time.perf_counter()
            if k >= 3:
                times.append((t1 - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    n = sum(torch.Size(s).numel() for s in SHAPES)
    rows = {"oombench scalar": [], "oombench avx2": [], "torch default": [],
            "torch foreach=False": []}
    isas = {}
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        for r in range(a.rounds):
            for isa in ("scalar", "avx2"):
                ms, name = run_c(exe, n, a.steps, isa)
                rows["oombench " + isa].append(ms)
                isas[isa] = name
            rows["torch default"].append(run_torch(torch, a.steps, None))
            rows["torch foreach=False"].append(run_torch(torch, a.steps, False))
    ref = statistics.median(rows["torch default"])
    print("Adam update, %d parameters, 1 thread, median of %d rounds x %d steps (torch %s)"
          % (n, a.rounds, a.steps, torch.__version__))
    print("| implementation | ms | vs torch default | rounds (ms) |")
    print("|---|---:|---:|---|")
    for k, v in rows.items():
        label = k
        if k.startswith("oombench"):
            label += " (cpu_isa %s)" % isas[k.split()[1]]
        med = statistics.median(v)
        print("| %s | %.2f | %.2fx | %s |" % (label, med, med / ref,
                                              " ".join("%.2f" % x for x in v)))


if __name__ == "__main__":
    main()
