"""Search runs: the algorithms by name, many trials of one, the runs file (JSON) and its summaries.

A runs file is one JSON object:

    {"format": "nbm_lightning.search-runs", "version": 1,
     "algo": "re", "config": {"population": 30, "sample": 10}, "budget": 100, "observe": "seed",
     "metric": "best", "epoch": null,
     "benchmark": {"path": "...", "sha256": "...", "archs": 3969, "best_mean_acc": 93.13, "time_source": "..."},
     "trials": [{"seed": 0, "incumbent_mean_acc": [...], "incumbent_rank": [...], "incumbent": ["..."],
                 "seconds": [...]}]}

Each trial's lists hold one value per query (`budget` of them): the incumbent's true mean accuracy (percent),
its rank by true mean accuracy (1 = the best; ties share the better rank), its canonical code, and the
cumulative simulated training seconds. Regret = best_mean_acc - incumbent_mean_acc (percentage points).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..checks import check_choice
from ..errors import UserError
from .algorithms import (
    EvolutionConfig,
    LocalSearchConfig,
    RandomSearchConfig,
    local_search,
    random_search,
    regularized_evolution,
)
from .mcts import MCTSConfig, mcts
from .oracle import Oracle, Trajectory, Trial

FORMAT = "nbm_lightning.search-runs"  # the "format" field of a runs file
VERSION = 1  # its "version"; a reader refuses others
TABLE_BUDGETS = (10, 20, 50, 100, 200)  # budgets at which `table_lines` reports regret and rank


@dataclass(frozen=True)
class Algorithm:
    """A search algorithm by name."""

    name: str  # its name on the command line
    title: str  # its name in tables and legends
    run: Callable[[Trial, Any], None]  # runs one trial to the end of its budget
    config: Any  # its hyperparameters (a frozen dataclass)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("rs", "random search", random_search, RandomSearchConfig()),
        Algorithm("re", "regularized evolution", regularized_evolution, EvolutionConfig()),
        Algorithm("ls", "local search", local_search, LocalSearchConfig()),
        Algorithm("mcts", "MCTS sampler", mcts, MCTSConfig()),
    )
}


def algorithm(name: str) -> Algorithm:
    """The algorithm of a name; InvalidValue listing the names otherwise."""
    return ALGORITHMS[check_choice("algo", name, tuple(ALGORITHMS))]


def search(oracle: Oracle, algo: str, budget: int, seed: int, config: Any = None) -> Trajectory:
    """One trial of an algorithm: deterministic given (oracle, budget, seed, config)."""
    chosen = algorithm(algo)
    trial = Trial(oracle, budget, seed)
    chosen.run(trial, chosen.config if config is None else config)
    return trial.trajectory()


def run_trials(oracle: Oracle, algo: str, budget: int, seeds: Sequence[int], config: Any = None) -> list[Trajectory]:
    """One trial per seed."""
    return [search(oracle, algo, budget, seed, config) for seed in seeds]


def runs_document(oracle: Oracle, algo: str, budget: int, trials: Sequence[Trajectory], sha256: str) -> dict[str, Any]:
    """The runs file's content (module docstring)."""
    chosen, codes = algorithm(algo), oracle.index.codes
    return {
        "format": FORMAT,
        "version": VERSION,
        "algo": chosen.name,
        "config": dataclasses.asdict(chosen.config),
        "budget": budget,
        "observe": oracle.observe,
        "metric": oracle.metric,
        "epoch": oracle.epoch,
        "benchmark": {"path": oracle.source, "sha256": sha256, "archs": len(oracle), "best_mean_acc": oracle.best},
        "trials": [_trial(oracle, t, codes) for t in trials],
    }


def _trial(oracle: Oracle, t: Trajectory, codes: tuple[str, ...]) -> dict[str, Any]:
    """One trial's entry."""
    return {
        "seed": t.seed,
        "incumbent_mean_acc": list(t.incumbent_mean_acc),
        "incumbent_rank": oracle.rank[list(t.incumbent)].tolist(),
        "incumbent": [codes[row] for row in t.incumbent],
        "seconds": [round(s, 3) for s in t.seconds],
    }


def write_runs(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write a runs file atomically (compact JSON)."""
    return atomic_write_text(path, json.dumps(document, separators=(",", ":")) + "\n")


def read_runs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a runs file; UserError (one line) naming the file where it is not one."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read runs file {str(path)!r}: {getattr(err, 'strerror', None) or err}") from None
    problem = _problem(data)
    if problem:
        raise UserError(f"{str(path)!r} is not a {FORMAT} v{VERSION} file (write one with `search run`): {problem}")
    return data


def _problem(data: Any) -> str | None:
    """The first structural problem of a runs document, or None."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        return f"no 'format': {FORMAT!r} and 'version': {VERSION}"
    missing = [key for key in ("algo", "budget", "observe", "benchmark", "trials") if key not in data]
    if missing or data["algo"] not in ALGORITHMS or not isinstance(data["trials"], list) or not data["trials"]:
        return f"missing or bad keys {missing or ['algo', 'trials']}"
    for trial in data["trials"]:
        lists = [trial.get(key) for key in ("incumbent_mean_acc", "incumbent_rank")] if isinstance(trial, dict) else []
        if len(lists) != 2 or any(not isinstance(v, list) or len(v) != data["budget"] for v in lists):
            return f"every trial needs incumbent_mean_acc and incumbent_rank, one per query ({data['budget']})"
    return None


def regrets(runs: dict[str, Any]) -> np.ndarray:
    """(trials, budget) regret after each query, percentage points."""
    acc = np.array([t["incumbent_mean_acc"] for t in runs["trials"]], dtype=np.float64)
    return runs["benchmark"]["best_mean_acc"] - acc


def ranks(runs: dict[str, Any]) -> np.ndarray:
    """(trials, budget) rank of the incumbent after each query (1 = the best)."""
    return np.array([t["incumbent_rank"] for t in runs["trials"]], dtype=np.int64)


def label(runs: dict[str, Any]) -> str:
    """A short name of a runs file: algorithm and observation mode."""
    return f"{ALGORITHMS[runs['algo']].title} ({runs['observe']})"


def table_lines(files: Sequence[dict[str, Any]], budgets: Sequence[int] = TABLE_BUDGETS) -> list[str]:
    """A Markdown table: per runs file, mean regret +- standard error and median rank at each budget."""
    head = ["algorithm", "trials", *(f"N = {b}" for b in budgets), "final regret"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for runs in files:
        regret, rank = regrets(runs), ranks(runs)
        cells = [_cell(regret[:, b - 1], rank[:, b - 1]) if b <= runs["budget"] else "-" for b in budgets]
        final = f"{regret[:, -1].mean():.3f} (N = {runs['budget']})"
        lines.append("| " + " | ".join([label(runs), str(len(regret)), *cells, final]) + " |")
    return lines


def _cell(regret: np.ndarray, rank: np.ndarray) -> str:
    """'mean regret +- se / median rank'."""
    se = regret.std(ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else float("nan")
    return f"{regret.mean():.3f} ± {se:.3f} / {np.median(rank):g}"
