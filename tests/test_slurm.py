"""`sbatch sweeps/slurm_array.sh` under a real one-node SLURM (tests/helpers/slurm_cluster.py), on a tiny recipe and
synthetic data: preemption (time-limit warning, SIGTERM), requeue and exact resume, cancel and resubmit.

Skips where the cluster cannot be started (not root, not Debian, SLURM not installed); fails instead under
NBM_REQUIRE_SLURM=1 (.ci/run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from helpers import slurm_cluster

from nbm_lightning.records.job import index_to_pair
from nbm_lightning.synthetic.cifar10 import write_cifar10

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = ROOT / "sweeps" / "slurm_array.sh"
PER_TASK, TASKS = 2, 4  # 4 array tasks x 2 pairs: grid indices 0-7
CPU_ONLY = ["--gres=none", "--cpus-per-task=1", "--mem=1G"]  # what the README says for a CPU-only partition
RECIPE = {"epochs": 2, "batch_size": 8, "num_workers": 0, "accelerator": "cpu", "eval_batch_size": 256}
N_TRAIN = 256  # 32 steps an epoch: a signal sent a third into epoch 2 (timed by epoch 1) lands mid-epoch 2
TIME_FIELDS = {"wall_time_s", "train_time_s", "started_at", "finished_at", "resumed", "wandb"}  # wandb: the run id
# Every line a task's log may hold: the script's, the worker's and a run's own, and SLURM's notice of a signal.
LOG_LINES = [
    r"task \d+: .*",
    r"worker: .*",
    r"W&B offline \(--wandb-mode offline\): upload later with `wandb sync \S+`",  # the script asks for offline
    r"\d{8}-s\d: W&B service lost \(.+\); this run's W&B data stops here; its record and checkpoint are unaffected",
    r"epoch \d+/\d+ lr [\d.]+ train loss [\d.]+ acc [\d.]+% \| eval loss [\d.]+ acc [\d.]+% \| [\d.]+s",
    r"\d{8}-s\d: (test acc final|complete in|resuming from|preempted by|preempted in) .*",
    r"slurmstepd(-\S+)?: error: \*\*\* JOB \d+ ON \S+ CANCELLED AT \S+( DUE TO JOB REQUEUE)? \*\*\*",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node SLURM cluster, up for this module's tests."""
    cluster, why = None, slurm_cluster.unavailable()
    if why is None:  # every task of an array runs at once: see _signal_mid_epoch
        cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"), min_cpus=TASKS)
        try:
            cluster.start()  # stops what it started when it fails
        except RuntimeError as err:
            why = str(err)
    if why:
        if os.environ.get("NBM_REQUIRE_SLURM") == "1":
            pytest.fail(f"NBM_REQUIRE_SLURM=1 but no SLURM test cluster: {why}")
        pytest.skip(why)
    yield cluster
    cluster.stop()


@pytest.fixture
def work(tmp_path) -> Path:
    """A submission folder: logs/slurm/, synthetic CIFAR-10 in data/, the tiny recipe in recipe.yaml."""
    (tmp_path / "logs" / "slurm").mkdir(parents=True)
    write_cifar10(tmp_path / "data", n_train=N_TRAIN, n_test=32, learnable=True, seed=0)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    return tmp_path


def _env(cluster, work: Path) -> dict[str, str]:
    """What the tasks run with (sbatch exports the submitting environment): this Python, our data and recipe."""
    env = {k: v for k, v in cluster.env.items() if not k.startswith(("WANDB_", "SLURM_ARRAY", "SLURM_JOB"))}
    return {**env, "PYTHON": sys.executable, "PER_TASK": str(PER_TASK), "CONFIG": str(work / "recipe.yaml"),
            "DATA_DIR": str(work / "data"), "NBM_CIFAR_SKIP_MD5": "1", "HOME": str(work), "WANDB_SILENT": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1"}  # one CPU per task (--cpus-per-task=1)  # fmt: skip


def _wait_for(path: Path, pattern: str, timeout_s: float = 600) -> None:
    """Until `path` holds a line matching `pattern`."""
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and re.search(pattern, path.read_text(), re.M)):
        assert time.monotonic() < deadline, f"no {pattern!r} in {path} after {timeout_s} s"
        time.sleep(0.1)


def _signal_mid_epoch(cluster, job: str, task: int, log: Path, *scancel: str) -> None:
    """`scancel` an array task a third into the second epoch of its first pair (epoch 1 as long as epoch 2).

    While other tasks of the array are pending, `scancel --batch --signal=...` (SLURM 22.05) signals the task but
    answers "Job can not be altered now" and signals it again every few seconds for a minute, so the cluster runs
    every task at once.
    """
    _wait_for(log, r"^epoch 1/2 .*s$")
    epoch_s = float(re.search(r"^epoch 1/2 .* ([\d.]+)s$", log.read_text(), re.M).group(1))
    time.sleep(epoch_s / 3)
    cluster.run("scancel", *scancel, f"{job}_{task}")


def _comparable(record: dict) -> dict:
    curves = {k: v for k, v in record["curves"].items() if k != "epoch_time_s"}
    return {**{k: v for k, v in record.items() if k not in TIME_FIELDS}, "curves": curves}


def _name(index: int) -> str:
    code, seed = index_to_pair(index)
    return f"{code}-s{seed}"


def test_an_array_preempted_cancelled_and_resubmitted_trains_every_pair_once(cluster, work):
    env = _env(cluster, work)
    (work / "reference").mkdir()
    reference = subprocess.Popen(  # the preempted pairs, uninterrupted, with the script's own flags
        [sys.executable, "-m", "nbm_lightning.fit", "--index=0,2", f"--config={env['CONFIG']}",
         "--wandb-mode=offline", "--results-dir=results", "--ckpt-dir=checkpoints", f"--data-dir={env['DATA_DIR']}",
         "--download=false", "--progress=false"],
        cwd=work / "reference", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first, logs = _check_the_array(cluster, work, env)
        out, _ = reference.communicate(timeout=600)
    finally:
        reference.kill()
    assert reference.returncode == 0, out
    for n in (0, 2):  # the preempted pairs resumed exactly: their records equal uninterrupted runs'
        resumed = json.loads((work / "results" / f"{_name(n)}.json").read_text())
        straight = json.loads((work / "reference" / "results" / f"{_name(n)}.json").read_text())
        assert resumed["resumed"] is True and _comparable(resumed) == _comparable(straight), n  # curves included
    for task in (2, 3):  # cancelled mid-training: checkpoint saved, Python exited 143, the task was not requeued
        assert f"task {task}: cancelled; not requeued" in first[task], first[task]
    # No line but the project's own and SLURM's, in any log (the script's echo and Python's lines may interleave).
    lines = [line for text in logs for line in text.splitlines() if line.strip()]  # interleaved writes leave blank ones
    foreign = [line for line in lines if not any(re.fullmatch(p, line) for p in LOG_LINES)]
    assert foreign == []


def _check_the_array(cluster, work: Path, env: dict[str, str]) -> tuple[dict[int, str], list[str]]:
    """Run the array, interrupt it, resubmit what is missing; (the first array's logs by task, every log)."""
    job = cluster.sbatch(f"--array=0-{TASKS - 1}", *CPU_ONLY, str(SCRIPT), cwd=work, env=env)
    log = {task: work / "logs" / "slurm" / f"{job}_{task}.out" for task in range(TASKS)}
    # Mid-epoch 2 of each task's first pair: task 0 gets the time-limit warning, task 1 a preemption's SIGTERM to
    # all of its processes (both requeue themselves), and the user cancels tasks 2 and 3 (half the array).
    # Each task is signalled on a thread of its own, timed from its own log: one task's wait never delays another's
    # signal past its first pair.
    signals = {0: ("--batch", "--signal=USR1"), 1: ("--signal=TERM", "--full"), 2: (), 3: ()}
    with ThreadPoolExecutor(len(signals)) as pool:
        sent = [pool.submit(_signal_mid_epoch, cluster, job, task, log[task], *how) for task, how in signals.items()]
        for future in sent:
            future.result()  # a task that never reached epoch 2 fails the test here
    cluster.wait_idle(600)
    for task, how in ((0, "SIGUSR1"), (1, "SIGTERM")):
        text = log[task].read_text()
        assert cluster.job(f"{job}_{task}")["Restarts"] == "1", text
        assert re.search(rf"^{_name(2 * task)}: preempted by {how} after step \d+ of epoch 2; ", text, re.M), text
        assert f"task {task}: preempted; requeueing {job}_{task}" in text  # Python exited 143
        # the log holds both attempts (--open-mode=append): the preempted one, then the resumed one
        assert text.count(f"task {task}: pairs ") == 2 and f"{_name(2 * task)}: resuming from " in text, text
    for task in (2, 3):  # the user's scancel stands
        assert cluster.job(f"{job}_{task}")["JobState"] == "CANCELLED" and "requeueing" not in log[task].read_text()
    # Resubmit only the tasks whose pairs `sweep make --missing` lists.
    made = subprocess.run([sys.executable, "-m", "nbm_lightning.sweep", "make", "--missing=results",
                           f"--config-file={env['CONFIG']}", "--out=missing.yaml"],
                          cwd=work, env=env, capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    missing = yaml.safe_load((work / "missing.yaml").read_text())["parameters"]["index"]["values"]
    tasks = sorted({n // PER_TASK for n in missing if n < TASKS * PER_TASK})
    assert tasks == [2, 3]
    again = cluster.sbatch(f"--array={','.join(map(str, tasks))}", *CPU_ONLY, str(SCRIPT), cwd=work, env=env)
    cluster.wait_idle(600)
    logs = [p.read_text() for p in sorted((work / "logs" / "slurm").glob("*.out"))]
    assert len(logs) == TASKS + len(tasks), [p.name for p in (work / "logs" / "slurm").iterdir()]
    for task in tasks:
        assert cluster.job(f"{again}_{task}")["JobState"] == "COMPLETED"
    # Every pair complete exactly once, each of its epochs trained once over all attempts.
    runs = [run for text in logs for run in _runs(text)]
    for n in range(TASKS * PER_TASK):
        record = json.loads((work / "results" / f"{_name(n)}.json").read_text())
        assert record["status"] == "complete" and record["epochs_completed"] == 2
        lines = [line for name, run in runs if name == _name(n) for line in run]
        for start in ("epoch 1/2 ", "epoch 2/2 ", f"{_name(n)}: test acc final "):
            assert sum(line.startswith(start) for line in lines) == 1, (n, start, lines)
    assert sorted(p.name for p in (work / "results").iterdir()) == sorted(f"{_name(n)}.json" for n in range(8))
    return {task: log[task].read_text() for task in range(TASKS)}, logs


def _runs(text: str) -> list[tuple[str, list[str]]]:
    """Each run a log shows (from its `W&B offline` line), as (its pair's name, its lines)."""
    runs: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("W&B offline"):
            runs.append(("", []))
        elif runs:
            name = re.match(r"\d{8}-s\d(?=: )", line)
            runs[-1] = (runs[-1][0] or (name.group() if name else ""), [*runs[-1][1], line])
    return runs
