"""Random search, regularized evolution (Real et al. 2019), local search (White et al. 2020) and proxy-ranked
search (a free baseline) on a `Trial`.

Each runs until the trial's budget (distinct networks queried) is spent and draws all its randomness from
`trial.rng`, so a run is a function of (benchmark, observation mode, budget, seed). No network is queried twice:
where an algorithm would produce a network already queried, it is told so (its observation is free) or, for a
new candidate, draws among the unqueried ones as stated per algorithm. Hyperparameters are the configs'
defaults, fixed from the papers before any result on this benchmark was looked at.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..core.errors import UserError
from ..core.validate import check_int, check_str
from .oracle import Trial


@dataclass(frozen=True)
class RandomSearchConfig:
    """Random search has no hyperparameters: networks uniform over the 3969, without replacement."""


@dataclass(frozen=True)
class EvolutionConfig:
    """Regularized (ageing) evolution, Real et al. 2019, Algorithm 1 (defaults: NASLib's for tabular benchmarks)."""

    population: int = 30  # P: networks alive; the first P are random (as random search), then the oldest dies
    sample: int = 10  # S: tournament size, drawn from the population uniformly WITH replacement (the paper's)

    def __post_init__(self) -> None:
        check_int("population", self.population, 1)
        check_int("sample", self.sample, 1)


@dataclass(frozen=True)
class LocalSearchConfig:
    """Local search, White et al. 2020, Algorithm 1 (best improvement over the whole neighbourhood), restarted."""

    init: int = 1  # random networks queried at each (re)start; the search starts from the best of them (paper: 1)

    def __post_init__(self) -> None:
        check_int("init", self.init, 1)


@dataclass(frozen=True)
class RankedConfig:
    """Proxy-ranked search: networks in descending order of a free score, ties in an order drawn by the trial."""

    by: str = "flops"  # the score: a name of the oracle's free scores ("flops", "params", a proxy given to it)

    def __post_init__(self) -> None:
        check_str("by", self.by, allow_empty=False)


def random_search(trial: Trial, config: RandomSearchConfig = RandomSearchConfig()) -> None:
    """Query networks uniformly at random over the 3969, without replacement, until the budget is spent."""
    while not trial.done:
        trial.query(trial.fresh())


def _novel_child(trial: Trial, parent: int, u: float) -> int:
    """A one-op change of `parent` (layer and op uniform, by `u` in [0, 1)) among those whose network is unqueried;
    a random unqueried network where there is none."""
    fresh = [row for row in trial.oracle.index.changes[parent] if row not in trial.observed]
    return fresh[int(u * len(fresh))] if fresh else trial.fresh()


def regularized_evolution(trial: Trial, config: EvolutionConfig = EvolutionConfig()) -> None:
    """Ageing evolution: tournament of S (with replacement), the best observed mutates, the oldest dies."""
    population: deque[tuple[int, float]] = deque()
    while not trial.done and len(population) < config.population:
        row = trial.fresh()
        population.append((row, trial.query(row)))
    steps = trial.budget - len(trial.rows)  # drawn in bulk: one numpy call per trial, not per step
    tournaments = trial.rng.integers(len(population), size=(steps, config.sample)).tolist()
    for picks, u in zip(tournaments, trial.rng.random(steps).tolist()):
        parent = max((population[i] for i in picks), key=lambda member: member[1])  # first of ties
        child = _novel_child(trial, parent[0], u)
        population.append((child, trial.query(child)))
        population.popleft()


def _start(trial: Trial, init: int) -> int:
    """The best observed of `init` fresh random networks (fewer where the budget ends)."""
    rows = []
    while not trial.done and len(rows) < init:
        rows.append(trial.fresh())
        trial.query(rows[-1])
    return max(rows, key=trial.observed.__getitem__)


def local_search(trial: Trial, config: LocalSearchConfig = LocalSearchConfig()) -> None:
    """From a random start: query every neighbour (random order), move to the best if it beats the current one,
    else restart from a random network; until the budget is spent."""
    while not trial.done:
        current = _start(trial, config.init)
        while not trial.done:
            around = trial.oracle.index.neighbours[current]
            for row in trial.rng.permutation(around).tolist():
                if trial.done:
                    break
                trial.query(row)
            best = max((r for r in around if r in trial.observed), key=trial.observed.__getitem__)
            if trial.observed[best] <= trial.observed[current]:
                break  # a local optimum (as observed): restart
            current = best


def ranked(trial: Trial, config: RankedConfig = RankedConfig()) -> None:
    """Query networks in descending order of the score `config.by` (ties in a random order drawn from the trial's
    seed), until the budget is spent: a baseline that uses no observation at all."""
    scores = trial.oracle.scores
    if config.by not in scores:
        raise UserError(f"invalid by {config.by!r}: expected one of {', '.join(scores)} (scores of this oracle)")
    order = np.lexsort((trial.rng.random(len(trial.oracle)), -scores[config.by]))  # last key sorts first
    for row in order.tolist():
        if trial.done:
            break
        if row not in trial.oracle.excluded:  # outside a limit: skipped, not charged
            trial.query(row)
