#!/usr/bin/env bash
# Here (with network to the package index), before a GPU session: the wheels the GPU machine lacks, in .whl/
# (git-ignored through .git/info/exclude). The GPU machine (Python 3.12, torch, Lightning, torchmetrics, no
# wandb, no ptflops, no network) installs them from there (benchmarks/gpu_check.sh does). ptflops is pure
# Python; W&B is not needed there: the GPU scripts run with --wandb-mode=disabled.
#
#     bash benchmarks/gpu_prepare.sh     # then call the device with carry [".whl"] and `bash benchmarks/gpu_check.sh`
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl "ptflops==0.7.5"
ls -l .whl
