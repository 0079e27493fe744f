#!/usr/bin/env bash
# The main job: set up, build (release preset), and run the default
# scenarios on the CPU. Prints each scenario's table as it finishes and
# writes a results file under results/.
#
# By default the Fashion-MNIST scenarios train half an epoch (`run --epochs
# 0.5`), which keeps the job to a few minutes on 2 cores; `--full` trains
# them for the epochs their files give (4: the accuracies quoted in them).
# Other arguments go to `oombench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=(--epochs 0.5)
if [[ "${1:-}" == --full ]]; then
    epochs=()
    shift
fi
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
scenarios=(${OOMB_SCENARIOS:-scenarios/mlp.yaml scenarios/mlp-budget.yaml scenarios/fragmentation.yaml scenarios/fmnist-mlp.yaml scenarios/fmnist-cnn.yaml scenarios/transformer.yaml scenarios/resnet.yaml})
exec ./build/release/oombench run "${epochs[@]}" "${scenarios[@]}" "$@"
