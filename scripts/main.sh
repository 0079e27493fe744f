#!/usr/bin/env bash
# The main job: set up, build (release preset), and run the default scenarios
# on the CPU. Prints the table and writes a results file under results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
scenarios=(${OOMB_SCENARIOS:-scenarios/mlp.yaml scenarios/mlp-budget.yaml scenarios/fragmentation.yaml scenarios/fmnist-mlp.yaml scenarios/fmnist-cnn.yaml scenarios/transformer.yaml scenarios/resnet.yaml})
exec ./build/release/oombench run "${scenarios[@]}" "$@"
