#!/usr/bin/env bash
# Installs the Debian packages oombench needs, only those missing, so that it
# can run on a fresh Debian 12 machine and again at no cost. Needs root (or
# sudo) only when something is missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libopenblas-dev libjansson-dev libyaml-dev zlib1g-dev
    libdnnl-dev
    libcriterion-dev
    gnuplot-nox
    python3
    libbenchmark-tools python3-scipy
    python3-yaml
    valgrind
    dataset-fashion-mnist
    clang
)
# zlib1g-dev: the Fashion-MNIST reader (gzipped IDX files).
# libdnnl-dev: oneDNN's sgemm, the CPU backend's alternative FP32 GEMM
# (OOMB_CPU_GEMM=onednn; kernels/cpu/gemm_cpu.h), optional at build time.
# libbenchmark-tools and python3-scipy: the compare_cli test reads the
# Google Benchmark export with compare.py, which needs scipy.
# python3-yaml: the shards test parses the GitHub Actions workflow under
# docs/scale-out/.
# valgrind: `oombench run --instructions` counts the instructions of the
# measured steps under callgrind (its client-request headers and the tool).
# clang: the libFuzzer targets (tests/fuzz, docs/fuzzing.md), built by the
# fuzz preset and run by scripts/test.sh.
# dataset-fashion-mnist: the real data set (/usr/share/datasets/fashion-mnist)
# of the Fashion-MNIST scenarios and of the data tests.
# Optional extras: install with OOMB_SETUP_EXTRAS=1 (report screenshots).
if [ "${OOMB_SETUP_EXTRAS:-0}" = 1 ]; then
    packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} Debian packages present"
    exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
