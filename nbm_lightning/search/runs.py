"""Search runs: the algorithms by name, many trials of one, the runs file (JSON) and its summaries.

A runs file is one JSON object:

    {"format": "nbm_lightning.search-runs", "version": 2,
     "algo": "re", "config": {"population": 30, "sample": 10}, "budget": 100, "observe": "seed",
     "observed_split": "val", "reported_split": "test", "metric": "best", "epoch": null,
     "benchmark": {"path": "...", "sha256": "...", "archs": 3969, "best_mean_acc": 93.13, "time_source": "..."},
     "trials": [{"seed": 0, "incumbent_mean_acc": [...], "incumbent_rank": [...], "incumbent": ["..."],
                 "seconds": [...]}]}

Each trial's lists hold one value per query (`budget` of them): the incumbent's true mean accuracy (percent),
its rank by true mean accuracy (1 = the best; ties share the better rank), its canonical code, and the
cumulative simulated training seconds. Regret = best_mean_acc - incumbent_mean_acc (percentage points).
The search observed the accuracies of "observed_split" ("test", or "val": model selection on a validation
split); the incumbent's accuracy, rank, best_mean_acc and regret are of "reported_split" (always "test").
Version 1 files (before the splits were named) are read as observed and reported on "test".
Optional keys: "constraint" ({"score": "latency", "max": 5.0, "feasible": 1234}: networks above the limit were
never queried; best_mean_acc, ranks and regrets are among the feasible ones) and, in the multi-objective mode,
"cost" (the score name) with each trial's "pareto": [{"code": ..., "observed": 92.1, "latency": 3.2}, ...], the
queried networks not dominated on observed accuracy (up) and the cost (down).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..arch.codes import unique_codes
from ..bench.extended import MAX_EPOCHS, canonical_codes
from ..bench.published import ACC_RANGE, MAX_COUNT, value_problem
from ..bench.table import ACC_METRICS
from ..core.atomic import atomic_write_text
from ..core.errors import UserError
from ..core.jsonread import JSONReadError, loads, read_bytes
from ..core.validate import check_choice, shown
from .algorithms import (
    EvolutionConfig,
    LocalSearchConfig,
    RandomSearchConfig,
    RankedConfig,
    local_search,
    random_search,
    ranked,
    regularized_evolution,
)
from .interop import PREFIX, OptunaConfig, known_sampler_name, optuna_search, sampler_class, sampler_key
from .mcts import MCTSConfig, mcts
from .oracle import OBSERVATIONS, REPORT_SPLIT, SPLITS, Oracle, Trajectory, Trial, pareto_front

FORMAT = "nbm_lightning.search-runs"  # the "format" field of a runs file
VERSION = 2  # its "version" written
READ_VERSIONS = (1, 2)  # versions read (v1: no split keys, both splits "test"); a reader refuses others
SPLIT_KEYS = ("observed_split", "reported_split")  # required from version 2 on
TABLE_BUDGETS = (10, 20, 50, 100, 200)  # budgets at which `table_lines` reports regret and rank
BASELINE_NOTE = (
    "A result means little here until it beats the free baseline: networks ranked by FLOPs, no accuracy observed "
    "(`search run --algo ranked --by flops`; on the published file FLOPs rank-correlate with accuracy)."
)  # printed above every table (docs/search.md)
KEYS = ("algo", "config", "budget", "observe", "metric", "epoch", "benchmark", "trials")  # required, beside format
BENCHMARK_KEYS = ("path", "sha256", "archs", "best_mean_acc")  # required keys of "benchmark"
TRIAL_KEYS = ("seed", "incumbent_mean_acc", "incumbent_rank", "incumbent", "seconds")  # required keys of a trial


class RunsFileError(UserError, ValueError):
    """A runs file that cannot be read or breaks its format: one line (exit status 2 on the command line)."""


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
        Algorithm("ranked", "ranked", ranked, RankedConfig()),  # the free baseline: by a score, no observation
    )
}  # beside these: any Optuna sampler by name, PREFIX + sampler (`algorithm`)


def algorithm(name: str) -> Algorithm:
    """The algorithm of a name (an Optuna sampler's: `optuna-tpe`, ...); InvalidValue listing the names otherwise."""
    if isinstance(name, str) and name.startswith(PREFIX):
        title = f"Optuna {sampler_class(name).__name__}"  # refuses an unknown sampler, or Optuna missing
        return Algorithm(name, title, optuna_search, OptunaConfig(sampler_key(name)))
    return ALGORITHMS[check_choice("algo", name, (*ALGORITHMS, f"{PREFIX}SAMPLER"))]


def search(oracle: Oracle, algo: str, budget: int, seed: int, config: Any = None) -> Trajectory:
    """One trial of an algorithm: deterministic given (oracle, budget, seed, config); config None: its default."""
    chosen = algorithm(algo)
    trial = Trial(oracle, budget, seed)
    chosen.run(trial, chosen.config if config is None else config)
    return trial.trajectory()


def run_trials(oracle: Oracle, algo: str, budget: int, seeds: Sequence[int], config: Any = None) -> list[Trajectory]:
    """One trial per seed."""
    return [search(oracle, algo, budget, seed, config) for seed in seeds]


def runs_document(
    oracle: Oracle,
    algo: str,
    budget: int,
    trials: Sequence[Trajectory],
    sha256: str,
    config: Any = None,
    cost: str | None = None,
) -> dict[str, Any]:
    """The runs file's content (module docstring); `config` as given to the trials (None: the default); with `cost`
    (a free score) each trial's Pareto set of (observed accuracy up, cost down)."""
    chosen, codes = algorithm(algo), oracle.index.codes
    extra: dict[str, Any] = {} if oracle.constraint is None else {"constraint": dict(oracle.constraint)}
    if cost is not None:
        extra["cost"] = cost
    document = {
        "format": FORMAT,
        "version": VERSION,
        "algo": chosen.name,
        "config": dataclasses.asdict(chosen.config if config is None else config),
        "budget": budget,
        "observe": oracle.observe,
        "observed_split": oracle.split,
        "reported_split": oracle.report,
        "metric": oracle.metric,
        "epoch": oracle.epoch,
        "benchmark": {"path": oracle.source, "sha256": sha256, "archs": len(oracle), "best_mean_acc": oracle.best},
        "trials": [_trial(oracle, t, codes) for t in trials],
        **extra,
    }
    if cost is not None:
        for entry, t in zip(document["trials"], trials):
            entry["pareto"] = pareto_entries(oracle, t, cost)
    return document


def pareto_entries(oracle: Oracle, t: Trajectory, cost: str) -> list[dict[str, Any]]:
    """A trial's Pareto set (oracle.pareto_front): code, observed accuracy (percent), cost, by cost ascending."""
    observed = dict(zip(t.rows, t.observed))
    front = pareto_front(oracle, t.rows, t.observed, cost)
    scores, codes = oracle.scores[cost], oracle.index.codes
    return [{"code": codes[r], "observed": observed[r], cost: float(scores[r])} for r in front]


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
    """Read a runs file (bounded JSON, regular files only) and check it; RunsFileError (one line) naming the file."""
    try:
        text = read_bytes(path)
    except JSONReadError as err:
        raise RunsFileError(f"cannot read runs file{str(err).removeprefix('cannot read')}") from None
    try:
        data = loads(text, str(path))
    except JSONReadError as err:
        raise RunsFileError(f"runs file {err}") from None
    problem = _problem(data)
    if problem:
        raise RunsFileError(f"{str(path)!r} is not a {FORMAT} v{VERSION} file (write one with `search run`): {problem}")
    return data if data["version"] >= 2 else {**data, "observed_split": "test", "reported_split": REPORT_SPLIT}


def _problem(data: Any) -> str | None:
    """The first problem of a runs document, or None."""
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != FORMAT or type(version) is not int:
        return f"no 'format': {FORMAT!r} and 'version': {VERSION}"
    if version not in READ_VERSIONS:
        return f"version {shown(version)} (this reader knows {', '.join(map(str, READ_VERSIONS))})"
    missing = [key for key in KEYS + (SPLIT_KEYS if version >= 2 else ()) if key not in data]
    if missing:
        return f"missing key(s) {missing}"
    algos = (*ALGORITHMS, f"{PREFIX}SAMPLER")
    splits = (("observed_split", SPLITS), ("reported_split", (REPORT_SPLIT,))) if version >= 2 else ()
    for key, choices in (("algo", algos), ("observe", OBSERVATIONS), ("metric", ACC_METRICS), *splits):
        if (
            not isinstance(data[key], str)
            or data[key] not in choices
            and not (key == "algo" and known_sampler_name(data[key]))
        ):
            return f"{key} {shown(data[key])}: expected one of {', '.join(choices)}"
    if not isinstance(data["config"], dict):
        return f"config {shown(data['config'])}: expected an object"
    bench = data["benchmark"]
    if not isinstance(bench, dict) or any(key not in bench for key in BENCHMARK_KEYS):
        return f"benchmark {shown(bench)}: expected an object with keys {list(BENCHMARK_KEYS)}"
    problem = (
        value_problem("budget", data["budget"], 1, len(unique_codes()), integer=True)
        or value_problem("epoch", data["epoch"], 0, MAX_EPOCHS, integer=True, null=True)
        or value_problem("benchmark archs", bench["archs"], 1, len(unique_codes()), integer=True)
        or value_problem("benchmark best_mean_acc", bench["best_mean_acc"], *ACC_RANGE)
        or next(
            (
                f"benchmark {k} {shown(bench[k])}: expected a string"
                for k in ("path", "sha256")
                if not isinstance(bench[k], str)
            ),
            None,
        )
    )
    if problem:
        return problem
    if not isinstance(data["trials"], list) or not data["trials"]:
        return f"trials {shown(data['trials'])}: expected a non-empty list"
    for i, trial in enumerate(data["trials"]):
        problem = _trial_problem(trial, data["budget"], bench["archs"], bench["best_mean_acc"])
        if problem:
            return f"trial {i}: {problem}"
    return _optional_problem(data)


def _optional_problem(data: dict[str, Any]) -> str | None:
    """The first problem of the optional keys (module docstring): a constraint, a cost and its Pareto sets."""
    limit = data.get("constraint")
    if limit is not None and (
        not isinstance(limit, dict)
        or sorted(limit) != ["feasible", "max", "score"]
        or not isinstance(limit["score"], str)
        or value_problem("max", limit["max"], 0.0, math.inf)
        or value_problem("feasible", limit["feasible"], data["budget"], data["benchmark"]["archs"], integer=True)
    ):
        return f"constraint {shown(limit)}: expected {{'score': NAME, 'max': LIMIT, 'feasible': NETWORKS >= budget}}"
    cost = data.get("cost")
    if cost is None:
        return None
    if not isinstance(cost, str) or not cost:
        return f"cost {shown(cost)}: expected a score name"
    for i, trial in enumerate(data["trials"]):
        front = trial.get("pareto")
        if not isinstance(front, list) or not 0 < len(front) <= data["budget"]:
            return f"trial {i}: pareto {shown(front)}: expected a list of 1..{data['budget']} networks"
        for member in front:
            if (
                not isinstance(member, dict)
                or sorted(member) != sorted(("code", "observed", cost))
                or not isinstance(member["code"], str)
                or member["code"] not in canonical_codes()
                or value_problem("observed", member["observed"], *ACC_RANGE)
                or value_problem(cost, member[cost], -math.inf, math.inf)
            ):
                return f"trial {i}: pareto member {shown(member)}: expected {{'code', 'observed', {cost!r}}}"
    return None


def _trial_problem(trial: Any, budget: int, archs: int, best: float) -> str | None:
    """The first problem of one trial (its lists hold one value per query), or None."""
    if not isinstance(trial, dict) or any(key not in trial for key in TRIAL_KEYS):
        return f"expected an object with keys {list(TRIAL_KEYS)}"
    problem = value_problem("seed", trial["seed"], 0, MAX_COUNT, integer=True)
    bad_list = next((k for k in TRIAL_KEYS[1:] if not isinstance(trial[k], list) or len(trial[k]) != budget), None)
    if problem or bad_list:
        return problem or f"{bad_list} {shown(trial[bad_list])}: expected a list of {budget} values (one per query)"
    acc, rank, seconds = trial["incumbent_mean_acc"], trial["incumbent_rank"], trial["seconds"]
    values = (
        *(value_problem(f"incumbent_mean_acc[{q}]", v, 0.0, best) for q, v in enumerate(acc)),  # regret >= 0
        *(value_problem(f"incumbent_rank[{q}]", v, 1, archs, integer=True) for q, v in enumerate(rank)),
        *(value_problem(f"seconds[{q}]", v, 0.0, math.inf) for q, v in enumerate(seconds)),
    )
    problem = next(filter(None, values), None)
    if problem:
        return problem
    code = next((c for c in trial["incumbent"] if not isinstance(c, str) or c not in canonical_codes()), None)
    if code is not None:
        return f"incumbent {shown(code)}: expected canonical codes"
    if any(b < a for a, b in zip(seconds, seconds[1:])):
        return "seconds decrease: expected cumulative seconds"
    return None


def regrets(runs: dict[str, Any]) -> np.ndarray:
    """(trials, budget) regret after each query, percentage points."""
    acc = np.array([t["incumbent_mean_acc"] for t in runs["trials"]], dtype=np.float64)
    return runs["benchmark"]["best_mean_acc"] - acc


def ranks(runs: dict[str, Any]) -> np.ndarray:
    """(trials, budget) rank of the incumbent after each query (1 = the best)."""
    return np.array([t["incumbent_rank"] for t in runs["trials"]], dtype=np.int64)


def label(runs: dict[str, Any]) -> str:
    """A short name of a runs file: algorithm (ranked: by what; Optuna: the sampler), observation mode, and the
    splits where one was observed and the other reported ("observed val -> reported test")."""
    algo, config = runs["algo"], runs["config"]
    if algo in ALGORITHMS:
        title = ALGORITHMS[algo].title + (f" by {config.get('by')}" if algo == "ranked" else "")
    else:  # an Optuna sampler (the reader checked the name's form; Optuna itself need not be installed to read)
        title = f"Optuna {algo.removeprefix(PREFIX)}" + (f" (cost {config['cost']})" if config.get("cost") else "")
    observed, reported = runs["observed_split"], runs["reported_split"]
    splits = "" if observed == reported else f", observed {observed} -> reported {reported}"
    limit = runs.get("constraint")
    limit = f", {limit['score']} <= {limit['max']:g}" if isinstance(limit, dict) and _limit_ok(limit) else ""
    return f"{title} ({runs['observe']}{splits}{limit})"


def _limit_ok(limit: dict) -> bool:
    """Whether a runs file's constraint has a name and a finite limit (else the label leaves it out)."""
    value = limit.get("max")
    return isinstance(limit.get("score"), str) and isinstance(value, int | float) and math.isfinite(value)


def table_lines(files: Sequence[dict[str, Any]], budgets: Sequence[int] = TABLE_BUDGETS) -> list[str]:
    """A Markdown table: per runs file, mean regret +- standard error and median rank at each budget."""
    head = ["algorithm", "trials", *(f"N = {b}" for b in budgets), "final regret"]
    lines = [BASELINE_NOTE, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
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
