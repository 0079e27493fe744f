#!/usr/bin/env bash
# Builds and runs the whole test suite: warnings as errors (with the CUDA
# backend compiled and linked when the toolkit is present), then the numeric
# suites again under a second OpenBLAS core type and two BLAS threads and
# with oneDNN's sgemm, then
# again under AddressSanitizer + UndefinedBehaviorSanitizer, then a CPU-only
# configure, then a bounded run of the libFuzzer targets (OOMB_FUZZ_SECONDS
# each).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== werror build + tests"
cmake --preset werror >/dev/null
cmake --build --preset werror -j "$jobs"
ctest --preset werror -j "$jobs"

# The numeric tolerances must hold for any summation order OpenBLAS picks:
# the first pass ran under the environment's core type (if any) with the
# runs on one BLAS thread (the harness's default); this one forces
# Sandybridge (AVX without FMA: the kernels most unlike Haswell's and
# SkylakeX's, and present on any AVX machine) and two BLAS threads in every
# run (OOMB_TEST_THREADS, read by tests/strategy_run.h).
echo "== numeric suites again under OPENBLAS_CORETYPE=Sandybridge, 2 BLAS threads"
OPENBLAS_CORETYPE=Sandybridge OPENBLAS_NUM_THREADS=2 OOMB_TEST_THREADS=2 \
    ctest --preset werror -j "$jobs" -L numeric

# The same suites with oneDNN's sgemm under the FP32 ops (OOMB_CPU_GEMM=onednn,
# kernels/cpu/gemm_cpu.h): other kernels, other summation orders.
echo "== numeric suites again with OOMB_CPU_GEMM=onednn"
OOMB_CPU_GEMM=onednn ctest --preset werror -j "$jobs" -L numeric

echo "== asan+ubsan build + tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ctest --preset asan -j "$jobs"

echo "== cpu-only configure + build (CUDA disabled)"
cmake --preset cpu-only >/dev/null
cmake --build --preset cpu-only -j "$jobs" --target oombench none

# Bounded fuzzing (docs/fuzzing.md): each libFuzzer target for
# OOMB_FUZZ_SECONDS (default 20); a crash, leak or hang fails the script.
echo "== fuzz build + ${OOMB_FUZZ_SECONDS:-20}s per target"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"
ctest --preset fuzz -j "$jobs"
bash tests/fuzz/run.sh build/fuzz "${OOMB_FUZZ_SECONDS:-20}"
echo "== all test suites passed"
