#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one go (under 10 minutes on one H100 / H200), from the repository root:
#
#     bash benchmarks/gpu_prepare.sh      # here, once: the wheels the GPU machine lacks (.whl/, git-ignored)
#     bash benchmarks/gpu_check.sh        # there, with .whl carried along
#
# 1. makes `nbm_lightning` importable (PYTHONPATH=.; pip install -e . quietly where its dependencies are missing)
#    and records the machine;
# 2. python -m benchmarks.fastpath_check on CUDA: does the fast path (compiled too) compute the reference's function?
# 3. python -m benchmarks.run --device cuda --size full: every speed figure (a few hundred steps per architecture,
#    projected to 50 epochs), optional parts skipped once BUDGET_S seconds have passed, the JSON rewritten after
#    every section, so a run cut short still leaves its figures;
# 4. python -m benchmarks.worker_gpu: runs per hour of K = 1, 2, 4 workers against K command-line agents on one
#    GPU, and the GPU memory a worker holds between runs (the resident dataset only);
# 5. python -m benchmarks.fusion_probe: 1 model, 3 models one after another, 3 models fused (HFTA);
# 6. python -m nbm_lightning.cost: the hardware cost of all 3969 networks on CUDA (latency at batch 1 and 1024,
#    a training step at batch 256, peak memory, weights; docs/cost.md) into $COST_FILE, saved as it goes, then its
#    report (rank correlation of latency with FLOPs and params) in cost_report.txt. Cut short by COST_TIMEOUT (not
#    a failure) it keeps what it measured, and `STEPS=cost COST_FILE=<that file, carried>` resumes it. Not yet timed
#    on a GPU (a guess: ~0.1 s a network, ~7 min for the 3969: `STEPS=cost COST_TIMEOUT=540` in a session alone);
# 7. the tables as Markdown (tables.md), also from a partial JSON.
# STEPS picks steps (default: all; e.g. STEPS=cost for a session of the cost measurement alone).
# Everything goes to $OUT if set, else ./bench_out. Exit status: 0 when every step passed.
# A CPU dry run of the same logic: DEVICE=cpu SIZE=tiny FASTPATH_ARGS="--arch 12000000 --batch-size 8 --steps 3" \
#   WORKER_ARGS="--train-limit 256 --runs 1 --workers 1,2" FUSION_ARGS="--batch 8 --steps 2 --warmup 1" \
#   COST_ARGS="--limit 3 --batch-sizes 1 --no-train-step --repeats 3 --warmup 1" bash benchmarks/gpu_check.sh
set -uo pipefail

OUT="${OUT:-./bench_out}"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-full}"
DATA_DIR="${DATA_DIR:-./data}"            # real CIFAR-10 when it is there, else synthetic data of the real size
FASTPATH_ARGS="${FASTPATH_ARGS:-}"        # extra arguments of fastpath_check (default: 12012012, batch 256, 5 steps)
WORKER_ARGS="${WORKER_ARGS:-}"            # extra arguments of worker_gpu (default: K = 1,2,4, 2 runs each)
FUSION_ARGS="${FUSION_ARGS:-}"            # extra arguments of fusion_probe (default: 12012012, batch 256)
FASTPATH_TIMEOUT="${FASTPATH_TIMEOUT:-100}"
RUN_TIMEOUT="${RUN_TIMEOUT:-240}"
BUDGET_S="${BUDGET_S:-150}"               # no optional measurement (bf16, concurrency, compile) starts after this
WORKER_TIMEOUT="${WORKER_TIMEOUT:-120}"   # benchmarks.worker_gpu (its own budget: WORKER_BUDGET_S)
WORKER_BUDGET_S="${WORKER_BUDGET_S:-80}"
FUSION_TIMEOUT="${FUSION_TIMEOUT:-100}"
COST_ARGS="${COST_ARGS:---repeats 5 --warmup 2}"  # extra arguments of nbm_lightning.cost (all 3969 codes)
COST_FILE="${COST_FILE:-$OUT/cost_${DEVICE}.json}"  # an existing cost file of the same settings is resumed
COST_TIMEOUT="${COST_TIMEOUT:-120}"         # keeps the whole script near 10 min; the cost file resumes next time
STEPS="${STEPS:-fastpath bench worker fusion cost}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT"
status=0

step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "environment"
if ls .whl/*.whl >/dev/null 2>&1; then           # wheels carried from benchmarks/gpu_prepare.sh (no network there)
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/nbm_site .whl/*.whl \
        && export PYTHONPATH="/tmp/nbm_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the source tree serves where the package is not installed
IMPORTS="import torch, torchvision, pytorch_lightning, torchmetrics, nbm_lightning.training.module, nbm_lightning.training.datamodule"
if ! "$PYTHON" -c "$IMPORTS" 2>/dev/null; then    # dependencies missing: install (needs the package index)
    timeout 300 "$PYTHON" -m pip install -q --retries 1 --timeout 20 -e . >"$OUT/pip.log" 2>&1 \
        || echo "pip install -e . failed (see $OUT/pip.log)"
fi
"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/environment.txt"
import platform, torch, torchvision, pytorch_lightning, torchmetrics
print("python", platform.python_version(), "| torch", torch.__version__, "| torchvision", torchvision.__version__,
      "| pytorch_lightning", pytorch_lightning.__version__, "| torchmetrics", torchmetrics.__version__)
print("cuda available:", torch.cuda.is_available(), "| torch CUDA", torch.version.cuda,
      "| GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "the Python environment is incomplete: see $OUT/environment.txt"; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1

# timed NAME SECONDS MODULE ARGS...: one step, its output also in $OUT/NAME.log; a failure or timeout (124) is
# reported and marks the whole check failed, and the next step still runs (its JSON holds what was done)
timed() {
    local name=$1 seconds=$2; shift 2
    step "$name --device $DEVICE"
    timeout "$seconds" "$PYTHON" -m "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "$name: exit status $rc (124: timed out after ${seconds}s)"; status=1; }
}

want() { [[ " $STEPS " == *" $1 "* ]]; }

want fastpath && timed fastpath_check "$FASTPATH_TIMEOUT" benchmarks.fastpath_check --device "$DEVICE" $FASTPATH_ARGS \
    --json "$OUT/fastpath_check.json"
want bench && timed "bench_${DEVICE}_${SIZE}" "$RUN_TIMEOUT" benchmarks.run --device "$DEVICE" --size "$SIZE" \
    --data-dir "$DATA_DIR" --budget-s "$BUDGET_S" --out "$OUT/bench_${DEVICE}_${SIZE}.json"
want worker && timed worker_gpu "$WORKER_TIMEOUT" benchmarks.worker_gpu --device "$DEVICE" --data-dir "$DATA_DIR" \
    --budget-s "$WORKER_BUDGET_S" $WORKER_ARGS --json "$OUT/worker_gpu.json"
want fusion && timed fusion_probe "$FUSION_TIMEOUT" benchmarks.fusion_probe --device "$DEVICE" $FUSION_ARGS \
    --json "$OUT/fusion_probe.json"
if want cost; then   # SIGTERM from timeout: the command saves what it measured, and the next run resumes it
    step "cost --device $DEVICE"
    timeout "$COST_TIMEOUT" "$PYTHON" -m nbm_lightning.cost --device "$DEVICE" $COST_ARGS --save-every-s 30 \
        --out "$COST_FILE" 2>&1 | tee "$OUT/cost.log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ]; then
        echo "cost: cut short after ${COST_TIMEOUT}s; $COST_FILE keeps what was measured: STEPS=cost COST_FILE=... resumes"
    elif [ "$rc" -ne 0 ]; then
        echo "cost: exit status $rc"; status=1
    fi
    if [ -s "$COST_FILE" ]; then
        [ "$COST_FILE" -ef "$OUT/$(basename "$COST_FILE")" ] || cp "$COST_FILE" "$OUT/"
        "$PYTHON" -m nbm_lightning.cost report "$COST_FILE" 2>&1 | tee "$OUT/cost_report.txt"
    fi
fi

if want bench; then
    step "tables"
    if [ -s "$OUT/bench_${DEVICE}_${SIZE}.json" ]; then
        "$PYTHON" -m benchmarks.tables "$OUT/bench_${DEVICE}_${SIZE}.json" >"$OUT/tables.md" && echo "written: $OUT/tables.md"
    else
        echo "no benchmark JSON to render"; status=1
    fi
fi
echo "gpu_check: $([ "$status" -eq 0 ] && echo PASS || echo FAIL); outputs in $OUT"
exit "$status"
