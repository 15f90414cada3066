#!/usr/bin/env bash
# The whole benchmark as a SLURM job array, for clusters without W&B access: no sweep, no agents.
#
# The grid has 11,907 (canonical code, seed) pairs, numbered N = 3 * position in unique_codes() + seed
# (`python -m nbm_lightning.fit --index N`). Array task T trains pairs T*PER_TASK .. T*PER_TASK+PER_TASK-1,
# one after the other on its one GPU, in one worker process (`fit --index A-B`: the data is loaded once).
# With PER_TASK=3 (default) a task is one architecture and its three
# seeds, and the array is 0-3968. Array size = ceil(11907 / PER_TASK): for a cluster whose MaxArraySize
# is 1001, use PER_TASK=12 and --array=0-992.
#
#   sbatch sweeps/slurm_array.sh                                   # 3969 tasks x 3 runs, at most 64 at once
#   PER_TASK=12 sbatch --array=0-992%64 sweeps/slurm_array.sh      # 993 tasks x 12 runs
#   CONFIG=configs/my_recipe.yaml RESULTS_DIR=/shared/nbm/results sbatch sweeps/slurm_array.sh
#
# Runs log to W&B offline (upload later with `wandb sync --sync-all` from the run folder) and write their
# records to RESULTS_DIR on a shared filesystem. `fit` skips pairs whose complete record exists and
# resumes from its checkpoint, so resubmitting the same array (or only the failed task ids) is safe.
# Download CIFAR-10 into DATA_DIR once before submitting: tasks run with --download=false.
#
#SBATCH --job-name=nas-bench-macro
#SBATCH --array=0-3968%64
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=logs/slurm/%A_%a.out
set -uo pipefail

PER_TASK=${PER_TASK:-3}                       # pairs per array task
GRID_SIZE=11907                               # nbm_lightning.fit.GRID_SIZE: 3969 codes x 3 seeds
CONFIG=${CONFIG:-configs/default.yaml}        # the recipe (its hash keys the records)
RESULTS_DIR=${RESULTS_DIR:-results}           # shared by every task
CKPT_DIR=${CKPT_DIR:-checkpoints}             # shared too, so a requeued task resumes
DATA_DIR=${DATA_DIR:-./data}                  # holds cifar-10-batches-py/
PYTHON=${PYTHON:-python}                      # the project's environment
TASK=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array (or set SLURM_ARRAY_TASK_ID)}

first=$((TASK * PER_TASK))
last=$((first + PER_TASK - 1))
(( last < GRID_SIZE )) || last=$((GRID_SIZE - 1))
(( first < GRID_SIZE )) || { echo "task ${TASK}: no pairs (the grid ends at $((GRID_SIZE - 1)))"; exit 0; }
echo "task ${TASK}: pairs ${first}-${last}"
# One worker process trains the task's pairs in order (data loaded once), skipping those already complete.
exec "${PYTHON}" -m nbm_lightning.fit --index="${first}-${last}" --config="${CONFIG}" --wandb-mode=offline \
    --results-dir="${RESULTS_DIR}" --ckpt-dir="${CKPT_DIR}" --data-dir="${DATA_DIR}" --download=false --progress=false
