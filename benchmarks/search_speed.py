"""Time 500 trials of budget 200 of random search, regularized evolution and local search on the published file.

    python -m benchmarks.search_speed [--trials 500] [--budget 200] [--observe seed]

Prints JSON: seconds per algorithm and in all (loading the file and building the oracle excluded, reported
apart), the hardware (CPU model, cores, load average before and after), versions, date and the exact command.
The benchmark file: $NBM_BENCHMARK, else the cached published file (downloaded once).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from nbm_lightning.bench import Benchmark, benchmark_path
from nbm_lightning.core.errors import UserError
from nbm_lightning.search import oracle, run_trials

ALGOS = ("rs", "re", "ls")  # the algorithms whose total the issue bounds (under 10 s on 2 cores)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def hardware() -> dict[str, Any]:
    """CPU model, logical cores and the 1-minute load average now."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}


def run(trials: int = 500, budget: int = 200, observe: str = "seed") -> dict[str, Any]:
    """Seconds to run `trials` trials of `budget` queries of each of ALGOS, and in all."""
    before, start = hardware(), time.perf_counter()
    space = oracle(Benchmark.load(benchmark_path(download=True)), observe)
    space.lists  # noqa: B018 - the oracle's one-off conversion, timed with the loading
    setup = time.perf_counter() - start
    seconds = {}
    for algo in ALGOS:
        start = time.perf_counter()
        run_trials(space, algo, budget, range(trials))
        seconds[algo] = time.perf_counter() - start
    return {
        "trials": trials, "budget": budget, "observe": observe, "load_and_oracle_s": setup, "seconds": seconds,
        "total_s": sum(seconds.values()), "hardware": before, "load_average_after": os.getloadavg()[0],
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.search_speed", *sys.argv[1:]]),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--observe", choices=("seed", "mean"), default="seed")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.trials, args.budget, args.observe), indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        sys.exit(f"benchmarks/search_speed.py: error: {err}")
