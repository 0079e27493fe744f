#!/usr/bin/env bash
# Builds and runs the whole test suite: warnings as errors (with the CUDA
# backend compiled and linked when the toolkit is present), then again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then a CPU-only configure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

echo "== werror build + tests"
cmake --preset werror >/dev/null
cmake --build --preset werror -j "$jobs"
ctest --preset werror -j "$jobs"

echo "== asan+ubsan build + tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ctest --preset asan -j "$jobs"

echo "== cpu-only configure + build (CUDA disabled)"
cmake --preset cpu-only >/dev/null
cmake --build --preset cpu-only -j "$jobs" --target oombench none
echo "== all test suites passed"
