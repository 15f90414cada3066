"""The free baseline's best-of-N curve: networks ranked by FLOPs (or params), against random search, N = 1..20.

    python -m benchmarks.ranked_baseline [--trials 1000] [--budget 20] [--by flops]

Prints a Markdown table per observation mode (mean, seed): after N queries, the incumbent's mean true accuracy
(percent), mean regret (pp) and median rank (1 = the best of 3969), for ranked search and for random search
run in the same invocation with the same seeds; then the hardware, versions, date and the exact command.
The benchmark file: $NBM_BENCHMARK, else the cached published file (downloaded once).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.search_speed import hardware
from nbm_lightning.bench import Benchmark, benchmark_path
from nbm_lightning.core.errors import UserError
from nbm_lightning.search import RankedConfig, oracle, run_trials


def curves(trials: int = 1000, budget: int = 20, by: str = "flops") -> dict[str, Any]:
    """Per observation mode and algorithm, per N: mean incumbent accuracy, mean regret, median rank."""
    bench = Benchmark.load(benchmark_path(download=True))
    out: dict[str, Any] = {"source": bench.source, "sha256": bench.sha256, "trials": trials, "by": by, "modes": {}}
    for observe in ("mean", "seed"):
        space = oracle(bench, observe)
        out["best_mean_acc"] = space.best
        out["modes"][observe] = {}
        for algo, config in ((f"ranked by {by}", RankedConfig(by)), ("random search", None)):
            runs = run_trials(space, "ranked" if config else "rs", budget, range(trials), config)
            acc = np.array([t.incumbent_mean_acc for t in runs])
            rank = space.rank[np.array([t.incumbent for t in runs])]
            out["modes"][observe][algo] = {
                "mean_acc": acc.mean(axis=0).tolist(),
                "regret": (space.best - acc).mean(axis=0).tolist(),
                "median_rank": np.median(rank, axis=0).tolist(),
            }
    return out


def table(result: dict[str, Any], observe: str) -> list[str]:
    """A Markdown table of one observation mode: one row per N."""
    algos = list(result["modes"][observe])
    head = ["N", *(f"{a}: acc / regret / rank" for a in algos)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    budget = len(result["modes"][observe][algos[0]]["regret"])
    for n in range(budget):
        cells = []
        for algo in algos:
            curve = result["modes"][observe][algo]
            cells.append(f"{curve['mean_acc'][n]:.2f} / {curve['regret'][n]:.3f} / {curve['median_rank'][n]:g}")
        lines.append("| " + " | ".join([str(n + 1), *cells]) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the tables and the provenance."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ranked_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--by", default="flops")
    args = parser.parse_args(argv)
    before = hardware()
    result = curves(args.trials, args.budget, args.by)
    for observe in ("mean", "seed"):
        print(f"\n{observe} observation, {args.trials} trials (seeds 0..{args.trials - 1}):\n")
        print("\n".join(table(result, observe)))
    print(
        f"\nbenchmark: {result['source']} (sha256 {result['sha256'][:12]}), best mean acc {result['best_mean_acc']:.2f}"
    )
    print(f"hardware: {before}; python {platform.python_version()}, numpy {np.__version__}")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    print("command: " + " ".join(["python -m benchmarks.ranked_baseline", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        sys.exit(f"benchmarks/ranked_baseline.py: error: {err}")
