"""Runs per hour on one GPU: K = 1, 2, 4 worker processes against K command-line agents, and the GPU memory
a worker holds between runs.

    python -m benchmarks.worker_gpu --device cuda [--workers 1,2,4] [--runs 2] [--train-limit 10240] [--json OUT]

A short recipe (1 epoch on `--train-limit` training images, evaluation on the 10,000 test images, the fast path:
tensor pipeline, channels_last, fused SGD) on CIFAR-10 of the real size (real files where --data-dir holds them,
else synthetic ones: 50,000 + 10,000 images). W&B is disabled.
  worker      K processes `fit --index A-B`, each training --runs pairs in one process, all at once;
  subprocess  K loops at once, each running --runs `fit --index N` processes one after another (what K
              `wandb agent` processes do: one process per run);
  memory      one worker in this process: after each run, the GPU memory still allocated against what the
              resident dataset needs (`DataCache.nbytes`).
runs/hour = K * runs / wall time. Optional sections stop once --budget-s seconds have passed; the JSON is rewritten
after every measurement. `--device cpu --train-limit 256 --runs 1 --workers 1,2` is a CPU dry run of the logic.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run import _cpu_model, _versions
from nbm_lightning.records.recipe import CIFAR10_TEST_SIZE, CIFAR10_TRAIN_SIZE
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training.cifar10_files import missing_files

FAST = ["--pipeline=tensor", "--channels-last=true", "--sgd-impl=fused", "--progress=false", "--wandb-mode=disabled",
        "--download=false", "--epochs=1", "--schedule=standard"]  # fmt: skip


def fit_argv(data: Path, args: argparse.Namespace, *selection: str) -> list[str]:
    """A `fit` command of the short recipe."""
    device = ["--accelerator=gpu"] if args.device == "cuda" else ["--accelerator=cpu", "--channels-last=false"]
    limit = [f"--train-limit={args.train_limit}"]
    return [sys.executable, "-m", "nbm_lightning.fit", *selection, f"--data-dir={data}", *FAST, *limit, *device]


def _env() -> dict[str, str]:
    return dict(os.environ, NBM_CIFAR_SKIP_MD5="1", PYTHONUNBUFFERED="1")


def workers(data: Path, args: argparse.Namespace, k: int, folder: Path) -> dict[str, Any]:
    """K worker processes at once, each `--runs` pairs in one process."""
    start, procs = time.perf_counter(), []
    for w in range(k):
        first = w * args.runs
        argv = fit_argv(data, args, f"--index={first}-{first + args.runs - 1}", f"--results-dir={folder}/w{w}")
        procs.append(subprocess.Popen(argv, cwd=folder, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return _finish(procs, start, k * args.runs)


def agents(data: Path, args: argparse.Namespace, k: int, folder: Path) -> dict[str, Any]:
    """K loops at once, each running one `fit` process per run, one after another."""
    start, procs = time.perf_counter(), []
    for w in range(k):
        commands = [shlex.join(fit_argv(data, args, f"--index={w * args.runs + r}", f"--results-dir={folder}/a{w}"))
                    for r in range(args.runs)]  # fmt: skip
        procs.append(subprocess.Popen(["bash", "-c", " && ".join(commands)], cwd=folder, env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    return _finish(procs, start, k * args.runs)


def _finish(procs: list[subprocess.Popen], start: float, runs: int) -> dict[str, Any]:
    """Wait for the processes; wall time and runs per hour (or the failure's last lines)."""
    outputs = [p.communicate()[0].decode(errors="replace") for p in procs]
    wall = time.perf_counter() - start
    failed = [out[-800:] for p, out in zip(procs, outputs) if p.returncode != 0]
    if failed:
        return {"status": f"failed: {failed[0]}"}
    return {"runs": runs, "wall_s": round(wall, 2), "runs_per_hour": round(runs / wall * 3600, 1)}


MEMORY = """
import json, sys, torch
from nbm_lightning.records.recipe import Execution, Recipe
from nbm_lightning.records.job import Job, index_to_pair
from nbm_lightning.runner.worker import Worker
data, limit, runs, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cuda = device == "cuda"
execution = Execution(data_dir=data, download=False, accelerator="gpu" if cuda else "cpu", progress=False,
                      wandb_mode="disabled", channels_last=cuda, sgd_impl="fused" if cuda else "auto")
recipe = Recipe(epochs=1, schedule="standard", train_limit=limit)
worker, rows = Worker(), []
for index in range(runs):
    worker.run(Job(*index_to_pair(index), recipe, execution))
    allocated = torch.cuda.memory_allocated() if cuda else 0
    rows.append({"run": index, "allocated_bytes": allocated, "resident_data_bytes": worker.cache.nbytes()})
print(json.dumps(rows))
"""


def memory(data: Path, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """GPU memory allocated after each run of one worker, against the resident dataset."""
    argv = [sys.executable, "-c", MEMORY, str(data), str(args.train_limit), str(max(args.runs, 3)), args.device]
    proc = subprocess.run(argv, cwd=folder, env=_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"status": f"failed: {proc.stderr[-800:]}"}
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = [r["allocated_bytes"] - r["resident_data_bytes"] for r in rows]
    return {"rows": rows, "max_extra_mib": round(max(extra) / 2**20, 1), "returns_to_resident": max(extra) < 64 * 2**20}


def dataset(args: argparse.Namespace, tmp: Path) -> Path:
    """Real CIFAR-10 where --data-dir holds it, else a synthetic one of the real size."""
    if args.data_dir and not missing_files(args.data_dir):
        return Path(args.data_dir)
    return write_cifar10(tmp / "data", CIFAR10_TRAIN_SIZE, CIFAR10_TEST_SIZE, seed=0).parent


def meta(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Hardware, versions, date and command."""
    gpu = None
    if args.device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
    return {"command": " ".join(["python -m benchmarks.worker_gpu", *argv]), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "gpu": gpu, "versions": _versions(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure each section while the budget lasts; rewrite the JSON after each."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--workers", default="1,2,4", help="K values, comma-separated")
    parser.add_argument("--runs", type=int, default=2, help="runs per worker (and per agent loop)")
    parser.add_argument("--train-limit", type=int, default=10240, help="training images of the short recipe")
    parser.add_argument("--data-dir", default=None, help="real CIFAR-10 (cifar-10-batches-py inside), else synthetic")
    parser.add_argument("--budget-s", type=float, default=150, help="no section starts after this many seconds")
    parser.add_argument("--json", default=None, help="write the result here (rewritten after every section)")
    args = parser.parse_args(argv)
    raw = list(argv if argv is not None else sys.argv[1:])
    result: dict[str, Any] = {"meta": meta(args, raw), "worker": {}, "subprocess": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(args, Path(tmp))
        plan = [("memory", None)] + [(s, int(k)) for k in args.workers.split(",") for s in ("worker", "subprocess")]
        for section, k in plan:
            if time.perf_counter() - start > args.budget_s:
                break
            (folder := Path(tmp) / f"{section}{k or ''}").mkdir()
            if section == "memory":
                result["memory"] = memory(data, args, folder)
            else:
                result[section][k] = (workers if section == "worker" else agents)(data, args, k, folder)
            _write(result, args.json)
    print(json.dumps(result, indent=1))
    return 0


def _write(result: dict[str, Any], path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
