#!/bin/bash
# oombench as a Slurm array job: one shard of the scenarios per array task,
# then one merge. Copy this file, set the #SBATCH lines for your cluster,
# and submit it from the repository root (docs/scale-out.md):
#
#   jid=$(sbatch --parsable docs/scale-out/slurm-array.sh)
#   sbatch --dependency=afterany:$jid --wrap \
#       "build/release/oombench merge results/shards-$jid/shard-*/*.json \
#        --out results/merged-$jid.json"
#
# Every task must run the same oombench executable (merge refuses to mix
# builds): build it once on a shared file system, not per task.
#SBATCH --job-name=oombench
#SBATCH --array=1-4
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=oombench-%A_%a.log
set -euo pipefail

OOMBENCH=${OOMBENCH:-build/release/oombench}
SCENARIOS=${SCENARIOS:-scenarios/*.yaml}
: "${SLURM_ARRAY_TASK_ID:?run this as an array job (sbatch), or set SLURM_ARRAY_TASK_ID}"
# Shards are 1..N whatever the array's first index is.
first=${SLURM_ARRAY_TASK_MIN:-1}
count=${SLURM_ARRAY_TASK_COUNT:-4}
shard=$((SLURM_ARRAY_TASK_ID - first + 1))
out=${OUT:-results/shards-${SLURM_ARRAY_JOB_ID:-manual}}/shard-$shard

# shellcheck disable=SC2086 # SCENARIOS is a list of files or a glob
"$OOMBENCH" run --no-color --shard "$shard/$count" --out "$out" $SCENARIOS
