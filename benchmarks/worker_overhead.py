"""The fixed cost of a run: N `fit` processes against one worker process, and the worker's memory over many runs.

    python -m benchmarks.worker_overhead [--jobs 6] [--leak-runs 20] [--out FILE.json]

The same N tiny jobs (grid pairs 0..N-1, 2 epochs of 96 synthetic images, W&B offline) run three ways:
  process  N `python -m nbm_lightning.fit --index i` processes, one after another;
  worker   one `python -m nbm_lightning.fit --index 0-(N-1)` process (the `--index` path);
  agent    one process calling the in-process W&B agent's run function as wandb's agent calls it: a new
           thread per run, the agent's environment variables, and `wandb.teardown()` before every run.
Fixed cost of a run = wall time from taking the job to its record written and its W&B run finished, minus the
record's training + evaluation time (`train_time_s`). For `process` the wall time is the whole process; for the
worker, each job's own wall time (printed by the worker) and, separately, the process's start-up once.
`leak` runs --leak-runs tiny jobs in one worker and reads its resident memory (/proc/self/statm) after each.
The JSON records hardware, versions, load, date and the exact command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from benchmarks.run import _cpu_model, _versions
from nbm_lightning.synthetic.cifar10 import write_cifar10

TINY = ["--download=false", "--epochs=2", "--batch-size=32", "--eval-batch-size=64", "--progress=false",
        "--accelerator=cpu", "--num-workers=0"]  # fmt: skip
JOB_LINE = re.compile(r"^(\S+): complete in ([\d.]+) s \(training ([\d.]+) s, fixed cost ([\d.]+) s\)$", re.M)


def _env(folder: Path) -> dict[str, str]:
    """W&B offline in `folder`, synthetic data accepted, no credentials."""
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(folder))
    env.pop("WANDB_API_KEY", None)
    return env


def _run(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, result) of one command; fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc


def _train_time(folder: Path, name: str) -> float:
    return json.loads((folder / "results" / f"{name}.json").read_text())["train_time_s"]


def per_process(data: Path, folder: Path, jobs: int) -> dict[str, Any]:
    """N fit processes: each one's wall time minus its record's training time."""
    costs = []
    for index in range(jobs):
        wall, proc = _run(
            [sys.executable, "-m", "nbm_lightning.fit", f"--index={index}", f"--data-dir={data}", *TINY], folder
        )
        name = JOB_LINE.search(proc.stdout)[1]
        costs.append(wall - _train_time(folder, name))
    return {"fixed_cost_s": costs, "median_fixed_cost_s": statistics.median(costs), "total_s": None}


def in_worker(data: Path, folder: Path, jobs: int) -> dict[str, Any]:
    """One fit process with --index 0-(N-1): the worker's own per-job lines, and the start-up once."""
    wall, proc = _run(
        [sys.executable, "-m", "nbm_lightning.fit", f"--index=0-{jobs - 1}", f"--data-dir={data}", *TINY], folder
    )
    lines = JOB_LINE.findall(proc.stdout)
    job_walls = [float(w) for _, w, _, _ in lines]
    costs = [float(w) - _train_time(folder, n) for n, w, _, _ in lines]
    return {"fixed_cost_s": costs, "median_fixed_cost_s": statistics.median(costs), "total_s": wall,
            "process_start_and_exit_s": wall - sum(job_walls)}  # fmt: skip


AGENT = """
    import json, os, sys, threading, time
    import wandb
    from wandb.sdk.lib import config_util
    from nbm_lightning.agent import run_function
    from nbm_lightning.runner.worker import Worker

    data, jobs, tiny = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    run, costs = run_function(Worker()), []
    for index in range(jobs):
        run_id = f"bench{index:04d}"
        path = os.path.join("wandb", "sweep-bench", f"config-{run_id}.yaml")
        params = {"index": index, **tiny, "data_dir": data}
        config_util.save_config_file_from_dict(path, {k: {"value": v} for k, v in params.items()})
        os.environ.update(WANDB_SWEEP_ID="bench", WANDB_RUN_ID=run_id, WANDB_SWEEP_PARAM_PATH=path)
        start = time.perf_counter()
        wandb.teardown()
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        wall = time.perf_counter() - start
        from nbm_lightning.records.job import index_to_pair
        code, seed = index_to_pair(index)
        record = json.load(open(f"results/{code}-s{seed}.json"))
        costs.append(wall - record["train_time_s"])
    print(json.dumps(costs))
"""


def in_agent(data: Path, folder: Path, jobs: int) -> dict[str, Any]:
    """The in-process W&B agent's run function, called as wandb's agent calls it."""
    tiny = {
        "download": False,
        "epochs": 2,
        "batch_size": 32,
        "eval_batch_size": 64,
        "progress": False,
        "accelerator": "cpu",
    }
    wall, proc = _run([sys.executable, "-c", textwrap.dedent(AGENT), str(data), str(jobs), json.dumps(tiny)], folder)
    costs = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"fixed_cost_s": costs, "median_fixed_cost_s": statistics.median(costs), "total_s": wall}


LEAK = """
    import json, os, sys
    from nbm_lightning.records.recipe import Execution, Recipe
    from nbm_lightning.records.job import Job, index_to_pair
    from nbm_lightning.runner.worker import Worker

    data, runs = sys.argv[1], int(sys.argv[2])
    execution = Execution(data_dir=data, download=False, accelerator="cpu", progress=False, eval_batch_size=64)
    worker, rss = Worker(), []
    for index in range(runs):
        worker.run(Job(*index_to_pair(index), Recipe(epochs=2, batch_size=32), execution))
        rss.append(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    print(json.dumps(rss))
"""


def leak(data: Path, folder: Path, runs: int) -> dict[str, Any]:
    """Resident memory of one worker after each of `runs` tiny runs (W&B offline)."""
    _, proc = _run([sys.executable, "-c", textwrap.dedent(LEAK), str(data), str(runs)], folder)
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"rss_mib": [round(r / 2**20, 1) for r in rss], "after_2nd_mib": round(rss[1] / 2**20, 1),
            "after_last_mib": round(rss[-1] / 2**20, 1), "growth": rss[-1] / rss[1] - 1}  # fmt: skip


def meta(argv: list[str]) -> dict[str, Any]:
    """Hardware, versions, load, date and command."""
    return {
        "command": " ".join(["python -m benchmarks.worker_overhead", *argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()), "versions": _versions(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure every section; print the JSON (and write it with --out)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=6, help="tiny jobs per section (at least 6 for BENCHMARKS.md)")
    parser.add_argument("--leak-runs", type=int, default=20, help="runs of the memory section (0: skip it)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"meta": meta(list(argv if argv is not None else sys.argv[1:]))}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_cifar10(Path(tmp) / "data", n_train=96, n_test=40, seed=0).parent
        for name, section in (("process", per_process), ("worker", in_worker), ("agent", in_agent)):
            (folder := Path(tmp) / name).mkdir()
            result[name] = section(data, folder, args.jobs)
        if args.leak_runs:
            (folder := Path(tmp) / "leak").mkdir()
            result["leak"] = leak(data, folder, args.leak_runs)
    result["ratio_process_to_worker"] = (
        result["process"]["median_fixed_cost_s"] / result["worker"]["median_fixed_cost_s"]
    )
    result["meta"]["load_average_at_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
