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
#   sbatch --partition=cpu --gres=none --cpus-per-task=1 --mem=1G sweeps/slurm_array.sh   # a CPU-only partition
#
# Runs log to W&B offline (upload later with `wandb sync --sync-all` from the run folder) and write their
# records to RESULTS_DIR on a shared filesystem. `fit` skips pairs whose complete record exists and
# resumes from its checkpoint, so resubmitting the same array (or only the failed task ids) is safe.
# Download CIFAR-10 into DATA_DIR once before submitting: tasks run with --download=false.
#
# Preemption and the time limit: SLURM sends SIGUSR1 to this batch shell 300 s before the limit
# (--signal=B:USR1@300), and SIGTERM to all of the job's processes when it preempts the job. The shell passes
# either on to Python, which saves a checkpoint after its current training step, writes a `preempted` record
# and exits with status 143; the shell then requeues the task (`scontrol requeue`), whose rerun resumes; a task
# that SLURM is already ending (`scancel`) is not requeued. Lightning's own SLURM auto-requeue is off (ours does
# it). SLURM opens --output before the script runs: logs/slurm/ must exist (it is in the repository); it appends,
# so a task's log keeps every attempt.
#
#SBATCH --job-name=nas-bench-macro
#SBATCH --array=0-3968%64
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=logs/slurm/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
set -uo pipefail

PER_TASK=${PER_TASK:-3}                       # pairs per array task
GRID_SIZE=11907                               # nbm_lightning.fit.GRID_SIZE: 3969 codes x 3 seeds
CONFIG=${CONFIG:-configs/default.yaml}        # the recipe (its hash keys the records)
RESULTS_DIR=${RESULTS_DIR:-results}           # shared by every task
CKPT_DIR=${CKPT_DIR:-checkpoints}             # shared too, so a requeued task resumes
DATA_DIR=${DATA_DIR:-./data}                  # holds cifar-10-batches-py/
PYTHON=${PYTHON:-python}                      # the project's environment
TASK=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array (or set SLURM_ARRAY_TASK_ID)}
PREEMPTED=143                                 # fit's exit status when preempted (nbm_lightning.records.outcome)

first=$((TASK * PER_TASK))
last=$((first + PER_TASK - 1))
(( last < GRID_SIZE )) || last=$((GRID_SIZE - 1))
(( first < GRID_SIZE )) || { echo "task ${TASK}: no pairs (the grid ends at $((GRID_SIZE - 1)))"; exit 0; }
echo "task ${TASK}: pairs ${first}-${last}"
# One worker process trains the task's pairs in order (data loaded once), skipping those already complete.
# It runs in the background so that this shell can pass SLURM's signals on to it.
export PYTHONUNBUFFERED=1                     # the log shows each line as it is printed, not at exit
pid=""
forward() { echo "task ${TASK}: $1: preempting pid ${pid}"; [ -n "${pid}" ] && kill -"$1" "${pid}" 2>/dev/null; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
"${PYTHON}" -m nbm_lightning.fit --index="${first}-${last}" --config="${CONFIG}" --wandb-mode=offline \
    --results-dir="${RESULTS_DIR}" --ckpt-dir="${CKPT_DIR}" --data-dir="${DATA_DIR}" --download=false --progress=false &
pid=$!
wait "${pid}"
while kill -0 "${pid}" 2>/dev/null; do   # a trapped signal ends `wait` early: wait for the real exit
    wait "${pid}"
done
wait "${pid}"; status=$?                  # bash keeps a background job's exit status: Python's own
if [ "${status}" -eq "${PREEMPTED}" ]; then
    job="${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-}}${SLURM_ARRAY_JOB_ID:+_${TASK}}"
    state=$(squeue --noheader --jobs="${job}" --format=%T 2>/dev/null)
    if [ "${state}" = COMPLETING ]; then  # SLURM is ending the job: `scancel` (a requeue would undo it)
        echo "task ${TASK}: cancelled; not requeued (resubmit it to resume: README, SLURM)"
    else                                  # still RUNNING: the time-limit warning, or a signal that asks us to
        echo "task ${TASK}: preempted; requeueing ${job}"
        scontrol requeue "${job}" || echo "task ${TASK}: scontrol requeue ${job} failed: resubmit the task"
    fi
fi
exit "${status}"
