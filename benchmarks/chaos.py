"""Chaos check: a worker training many tiny runs is killed again and again (SIGKILL and SIGTERM at random, seeded
moments), restarted each time with the same command, then run once more; nothing may be lost or trained twice,
and every record must equal that of an uninterrupted run.

    python -m benchmarks.chaos [--runs 30] [--kills 15] [--seed 0] [--out FILE.json]

Runs: grid pairs 0..runs-1, 3 epochs of 128 synthetic learnable images each (4 steps an epoch), W&B disabled,
through one `fit --index 0-(runs-1)` worker process at a time. Kills: after a random delay (uniform in
--delay-min..--delay-max seconds from the process's start), SIGKILL or SIGTERM (a fair coin), until --kills have
been sent; a SIGTERM must end the process with the preempted status 143 and a SIGKILL with -9. Then the same command
runs to its end. Report: kills sent and survived, runs completed, runs lost (no complete record: must be 0),
runs completed twice (a pair trained to completion more than once: must be 0), and whether every record's curves
equal those of the same runs trained without interruption (epoch times excepted).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.run import _cpu_model
from nbm_lightning.job import index_to_pair
from nbm_lightning.record import run_name
from nbm_lightning.synthetic import write_cifar10

TINY = ["--download=false", "--epochs=3", "--batch-size=32", "--eval-batch-size=64", "--progress=false",
        "--accelerator=cpu", "--num-workers=0", "--wandb-mode=disabled"]  # fmt: skip
COMPLETED = re.compile(r"^(\S+): complete in ", re.M)  # the worker's line for a run trained to completion
PREEMPTED_EXIT = 143


def command(data: Path, runs: int) -> list[str]:
    """The worker command every attempt runs."""
    return [sys.executable, "-m", "nbm_lightning.fit", f"--index=0-{runs - 1}", f"--data-dir={data}", *TINY]


def _env() -> dict[str, str]:
    return dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_SILENT="true", PYTHONUNBUFFERED="1")


def attempt(argv: list[str], folder: Path, kill: tuple[float, int] | None) -> tuple[int, str]:
    """One run of the command, killed after `delay` seconds with `signum` when given: (exit status, stdout)."""
    log = folder / f"attempt-{len(list(folder.glob('attempt-*.log'))):03d}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=folder, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        if kill is not None:
            try:
                proc.wait(timeout=kill[0])
            except subprocess.TimeoutExpired:
                proc.send_signal(kill[1])
        status = proc.wait(timeout=600)
    return status, log.read_text()


def chaos(data: Path, folder: Path, runs: int, kills: int, rng: random.Random, delays: tuple[float, float]) -> dict:
    """Kill and restart until `kills` kills were sent, then finish; the attempts' statuses and logs."""
    argv, sent, statuses, logs = command(data, runs), Counter(), [], []
    while sum(sent.values()) < kills:
        signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
        status, log = attempt(argv, folder, (rng.uniform(*delays), signum))
        logs.append(log)
        if status == 0:  # finished before the kill: nothing left to interrupt
            break
        sent[signal.Signals(signum).name] += 1
        statuses.append((signal.Signals(signum).name, status))
    final, log = attempt(argv, folder, None)
    logs.append(log)
    return {"sent": dict(sent), "statuses": statuses, "final_status": final, "logs": logs}


def survived(statuses: list[tuple[str, int]]) -> int:
    """Kills that ended the process as they should: SIGTERM with the preempted status (or the status of a process
    stopped before training began), SIGKILL with -9."""
    expected = {"SIGKILL": {-9}, "SIGTERM": {PREEMPTED_EXIT, -15}}
    return sum(status in expected[name] for name, status in statuses)


def compare(chaos_dir: Path, clean_dir: Path, runs: int) -> dict[str, Any]:
    """Lost runs, and runs whose record differs from the uninterrupted run's (epoch times excepted)."""
    lost, differ = [], []
    for index in range(runs):
        name = run_name(*index_to_pair(index))
        mine, clean = (d / "results" / f"{name}.json" for d in (chaos_dir, clean_dir))
        record = json.loads(mine.read_text()) if mine.exists() else {}
        if record.get("status") != "complete":
            lost.append(name)
        elif _curves(record) != _curves(json.loads(clean.read_text())):
            differ.append(name)
    return {"lost": lost, "curves_differ": differ}


def _curves(record: dict) -> dict:
    return {k: v for k, v in record["curves"].items() if k != "epoch_time_s"}


def main(argv: list[str] | None = None) -> int:
    """Run the chaos check and print its report (exit 1 when a run was lost, duplicated or differs)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay-min", type=float, default=2.5, help="seconds after a start, at the earliest")
    parser.add_argument("--delay-max", type=float, default=7.0, help="seconds after a start, at the latest")
    parser.add_argument("--out", default=None)
    parser.add_argument("--work", default=None, help="keep the runs' folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        if args.work:
            tmp = Path(args.work)
        data = write_cifar10(Path(tmp) / "data", n_train=128, n_test=64, learnable=True, seed=0).parent
        (clean := Path(tmp) / "clean").mkdir()
        (mess := Path(tmp) / "chaos").mkdir()
        clean_status, _ = attempt(command(data, args.runs), clean, None)
        result = chaos(data, mess, args.runs, args.kills, random.Random(args.seed), (args.delay_min, args.delay_max))
        verdict = compare(mess, clean, args.runs)
    completed = Counter(name for log in result.pop("logs") for name in COMPLETED.findall(log))
    report = {
        "command": " ".join(["python -m benchmarks.chaos", *(argv if argv is not None else sys.argv[1:])]),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "seconds": round(time.time() - start, 1),
        "runs": args.runs, "kills_sent": result["sent"], "kills_survived": survived(result["statuses"]),
        "exit_statuses": result["statuses"], "final_status": result["final_status"], "clean_status": clean_status,
        "runs_completed": args.runs - len(verdict["lost"]), "runs_lost": verdict["lost"],
        "runs_completed_twice": sorted(n for n, c in completed.items() if c > 1),
        "records_differing_from_uninterrupted": verdict["curves_differ"],
    }  # fmt: skip
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    bad = report["runs_lost"] or report["runs_completed_twice"] or report["records_differing_from_uninterrupted"]
    return 1 if bad or report["kills_survived"] != sum(result["sent"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
