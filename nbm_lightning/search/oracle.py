"""The benchmark as a searcher sees it (`Oracle`), and one search run against it (`Trial`).

Observation modes (what one query of an architecture returns):

- "seed": the accuracy of ONE training, its seed drawn uniformly from the file's seeds (NATS-Bench's
  `is_random`), once per architecture: asking again returns the same value, free. The true quality that the
  incumbent is judged by stays the mean over seeds.
- "mean": the mean over the file's seeds (the true quality itself; noise-free).

The accuracy is the file's primary metric (or another it holds, `metric`), or with `epoch` the evaluation
accuracy after that epoch from an extended file's curves (a low-fidelity search; the truth stays the metric's
mean). It is of one split (`split`): "test" (default; the published file's only one), or "val" where the runs held
out a validation split: the honest protocol, model selection on validation. The incumbent is always judged and
reported on the test split (REPORT_SPLIT): its truth, rank and regret are test figures (of `metric`, which the
test split must hold too). A query charges a `Budget` once per network (its canonical code): all seeds in "mean"
mode, the drawn seed in "seed" mode, (epoch + 1) / epochs of a run with `epoch`; a `Trial`'s budget counts
such queries.

Free per-network scores (`Oracle.scores`: name -> one number per row) are what a searcher may know without a
query: the file's FLOPs and params, and any table of code -> score given to `oracle` (a zero-cost proxy, a
hardware cost). Proxy-ranked search ranks by one; an Optuna study may minimise one as a second objective.

A limit on a score (`constrain`, e.g. latency <= 5 ms from a cost file) makes the networks above it infeasible:
they are never queried (a trial knows them from the start, free, as observed at -inf, so no algorithm proposes
them: random draws skip them, evolution and MCTS never reach them, local search and Optuna are told -inf or a
pruned trial without a charge), the budget counts feasible networks only, and the best, rank and regret are those
among the feasible networks. `pareto_front` is the multi-objective result of a trial: the queried networks that no
other queried network beats on observed accuracy and a cost together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..bench.budget import Budget
from ..bench.rankstats import pareto_rows
from ..bench.table import Benchmark
from ..core.errors import UserError
from ..core.validate import check_choice, check_int, fail
from .space import SpaceIndex, space_index

OBSERVATIONS = ("seed", "mean")  # observation modes (module docstring)
SPLITS = ("test", "val")  # splits a search may observe (module docstring)
REPORT_SPLIT = "test"  # the split the incumbent is judged and reported on


@dataclass(frozen=True, eq=False)
class Oracle:
    """A complete benchmark as arrays over the space's rows (unique_codes() order): observations, costs, truth."""

    source: str  # the benchmark file
    observe: str  # observation mode: "seed" or "mean" (module docstring)
    metric: str  # the accuracy observed and judged ("best" or "final")
    epoch: int | None  # observe the accuracy after this epoch (0-based) instead; None: the metric itself
    values: np.ndarray  # (rows, seeds) what a one-seed query observes, percent
    means: np.ndarray  # (rows,) what a mean query observes, percent
    truth: np.ndarray  # (rows,) true quality: the metric's mean over seeds, percent
    rank: np.ndarray  # (rows,) 1 + number of architectures of higher truth (1 = the best)
    seconds: np.ndarray  # (rows, seeds) simulated seconds of one full training run (bench.time_source)
    fraction: float  # part of a run a query pays for: 1, or (epoch + 1) / epochs
    index: SpaceIndex  # the space's integer tables
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (rows,) free score (module docstring)
    split: str = "test"  # the split observed: "test" or "val" (module docstring)
    report: str = REPORT_SPLIT  # the split of `truth`: the incumbent is judged and reported on it
    feasible: np.ndarray | None = None  # (rows,) bool: within `constraint` (None: every network; `constrain`)
    constraint: dict | None = None  # {"score": name, "max": limit, "feasible": count}; None: unconstrained

    @property
    def best(self) -> float:
        """The highest true mean accuracy (of the feasible networks): regret is measured from it."""
        return float(self.truth.max() if self.feasible is None else self.truth[self.feasible].max())

    @cached_property
    def excluded(self) -> frozenset[int]:
        """Rows outside the constraint: never queried."""
        return frozenset() if self.feasible is None else frozenset(np.flatnonzero(~self.feasible).tolist())

    @property
    def seeds(self) -> int:
        """Seeds per architecture."""
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return len(self.truth)

    @cached_property
    def lists(self) -> tuple[list[list[float]], list[float], list[list[float]]]:
        """values, means and seconds as Python lists (scalar access in trials is ~10x faster than numpy's)."""
        return self.values.tolist(), self.means.tolist(), self.seconds.tolist()


FILE_SCORES = ("flops", "params")  # free scores every benchmark file holds (MACs per image, parameters)


def oracle(
    bench: Benchmark,
    observe: str = "seed",
    metric: str | None = None,
    epoch: int | None = None,
    split: str = "test",
    scores: Mapping[str, Mapping[str, float]] | None = None,
) -> Oracle:
    """The oracle of a complete benchmark (all 3969 canonical codes) observing `split` and judging on the test split;
    UserError for an incomplete one or a split it lacks. `scores`: further free scores, name -> {code: score}
    (`score_table`), beside the file's FLOPs and params."""
    index, observe = space_index(), check_choice("observe", observe, OBSERVATIONS)
    split = check_choice("split", split, SPLITS)
    if bench.codes != index.codes:
        raise UserError(f"search needs all {len(index.codes)} architectures; {bench.source} holds {len(bench)}")
    judged = bench.metric if metric is None else metric
    if judged not in bench.metrics(REPORT_SPLIT) and split != REPORT_SPLIT:
        held = ", ".join(bench.metrics(REPORT_SPLIT))
        raise UserError(f"{bench.source} holds no {REPORT_SPLIT} {judged!r} accuracy to judge the incumbent on "
                        f"(its {REPORT_SPLIT} metrics: {held}): choose the metric with --metric")  # fmt: skip
    truth = bench.acc_table(metric, split=REPORT_SPLIT).mean(axis=1)
    values = bench.acc_table(metric, split=split) if epoch is None else bench.acc_table(epoch=epoch, split=split)
    if np.isnan(values).any():
        raise UserError(f"{bench.source} lacks the curve of some run at epoch {epoch}")
    epochs = None if bench.eval_acc is None else bench.eval_acc.shape[2]
    return Oracle(
        source=bench.source,
        observe=observe,
        metric=bench.metric if metric is None else metric,
        epoch=epoch,
        values=values,
        means=values.mean(axis=1),
        truth=truth,
        rank=1 + np.searchsorted(np.sort(-truth), -truth, side="left"),
        seconds=bench.seconds_table(),
        fraction=1.0 if epoch is None or epochs is None else (epoch + 1) / epochs,
        index=index,
        split=split,
        scores={
            "flops": bench.flops.astype(np.float64),
            "params": bench.params.astype(np.float64),
            **{name: score_table(name, table, index) for name, table in (scores or {}).items()},
        },
    )


def constrain(space: Oracle, score: str, limit: float) -> Oracle:
    """`space` with the networks whose free score `score` exceeds `limit` infeasible (module docstring); UserError
    for an unknown score or a limit that no network meets."""
    if score not in space.scores:
        raise UserError(f"invalid score {score!r}: expected one of {', '.join(space.scores)} (scores of this oracle)")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit) or limit <= 0:
        raise UserError(f"invalid limit {limit!r} on {score}: expected a positive number")
    values = space.scores[score]
    feasible = values <= limit
    if not feasible.any():
        raise UserError(f"no network has {score} <= {limit:g} (the smallest is {values.min():g})")
    feasible.flags.writeable = False
    ranked = np.sort(-space.truth[feasible])
    return replace(
        space,
        feasible=feasible,
        rank=1 + np.searchsorted(ranked, -space.truth, side="left"),  # among the feasible networks
        constraint={"score": score, "max": float(limit), "feasible": int(feasible.sum())},
    )


def pareto_front(space: Oracle, rows: Sequence[int], observed: Sequence[float], score: str) -> list[int]:
    """The queried rows not dominated on (observed accuracy up, score `score` down), sorted by score, then row."""
    if score not in space.scores:
        raise UserError(f"invalid cost {score!r}: expected one of {', '.join(space.scores)} (scores of this oracle)")
    rows = np.asarray(rows, dtype=np.int64)
    keep = pareto_rows(space.scores[score][rows], np.asarray(observed, dtype=np.float64))
    return rows[keep].tolist()


def score_table(name: str, table: Mapping[str, float], index: SpaceIndex) -> np.ndarray:
    """A table of code -> score as one finite score per row: every network once (by any of its codes, the
    same score where several of its codes are given); ValueError naming the first problem."""
    if name in FILE_SCORES:
        raise ValueError(f"score {name!r} is the file's own: name a proxy or cost otherwise")
    out, first = np.full(len(index.codes), np.nan), {}  # first: row -> the first code given for it
    for code, value in table.items():
        row = index.row_of.get(code) if isinstance(code, str) else None
        if row is None:
            raise ValueError(f"score {name!r}: {code!r} is not an architecture code")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"score {name!r} of {code}: {value!r} is not a finite number")
        if not math.isnan(out[row]) and out[row] != value:
            raise ValueError(
                f"score {name!r}: codes {first[row]} and {code} of network {index.codes[row]} differ "
                f"({out[row]:g}, {value:g})"
            )
        out[row], first[row] = value, first.get(row, code)
    missing = np.flatnonzero(np.isnan(out))
    if len(missing):
        raise ValueError(f"score {name!r} lacks {len(missing)} of {len(out)} networks, e.g. {index.codes[missing[0]]}")
    out.flags.writeable = False
    return out


def observation(text: str) -> tuple[str, str]:
    """`search run --observe`'s value -> (split, mode): a mode ("seed", "mean"), a split ("val", "test"; mode seed),
    or both joined by a comma ("val,mean"); InvalidValue naming the choices otherwise."""
    parts = text.split(",") if isinstance(text, str) else [text]
    splits, modes = [p for p in parts if p in SPLITS], [p for p in parts if p in OBSERVATIONS]
    if len(parts) > 2 or len(splits) > 1 or len(modes) > 1 or len(splits) + len(modes) != len(parts):
        choices = f"{', '.join(OBSERVATIONS)} (a mode), {', '.join(SPLITS)} (a split), or both as SPLIT,MODE"
        raise fail("observe", text, choices)
    return (splits or ["test"])[0], (modes or ["seed"])[0]


@dataclass(frozen=True)
class Trajectory:
    """What one search run did: every query in order, and after each one the incumbent by observed accuracy."""

    seed: int  # the trial's seed
    rows: tuple[int, ...]  # rows queried, in order (distinct networks)
    observed: tuple[float, ...]  # what each query observed, percent
    incumbent: tuple[int, ...]  # after each query: the row of the best observation so far (the first of ties)
    incumbent_mean_acc: tuple[float, ...]  # after each query: the incumbent's true mean accuracy, percent
    seconds: tuple[float, ...]  # after each query: cumulative simulated training seconds charged


class Trial:
    """One search run: each network queried at most once, charged once; the incumbent after every query."""

    def __init__(self, oracle: Oracle, budget: int, seed: int) -> None:
        self.oracle = oracle
        feasible = len(oracle) - len(oracle.excluded)
        self.budget = check_int("budget", budget, 1, feasible)  # queries (distinct feasible networks) allowed
        self.seed = check_int("seed", seed, 0)  # everything random in the trial derives from it
        search, noise = np.random.SeedSequence(self.seed).spawn(2)
        self.rng = np.random.default_rng(search)  # the algorithm's randomness
        self._seeds = np.random.default_rng(noise).integers(oracle.seeds, size=self.budget).tolist()
        self.observed: dict[int, float] = dict.fromkeys(oracle.excluded, -math.inf)  # row -> its observation, for
        # every row queried, and -inf (free, never charged) for every row outside the oracle's constraint
        self.rows: list[int] = []  # rows queried, in order
        self.incumbents: list[int] = []  # the incumbent's row after each query
        self.seconds: list[float] = []  # cumulative simulated training seconds after each query
        self.spent = Budget()  # the budget counter the queries are charged to
        self._best, self._order, self._next = -math.inf, None, 0

    @property
    def done(self) -> bool:
        """True once the budget is spent."""
        return len(self.rows) >= self.budget

    def query(self, row: int) -> float:
        """The observation of one network: charged and recorded the first time, free (the same value) after."""
        if row in self.observed:
            return self.observed[row]
        if self.done:
            raise RuntimeError(f"budget of {self.budget} queries spent")
        o, (values, means, seconds) = self.oracle, self.oracle.lists
        if o.observe == "seed":
            seeds = [self._seeds[len(self.rows)]]
            value = values[row][seeds[0]]
        else:
            seeds, value = list(range(o.seeds)), means[row]
        self.spent.charge(o.index.codes[row], seeds, o.fraction, [seconds[row][s] for s in seeds])
        self._record(row, value)
        return value

    def _record(self, row: int, value: float) -> None:
        """Record a paid query: its observation, the incumbent after it (the first best), the seconds so far."""
        self.observed[row] = value
        self.rows.append(row)
        improved = value > self._best  # strictly: the first of equal observations stays the incumbent
        self._best = max(self._best, value)
        self.incumbents.append(row if improved else self.incumbents[-1])
        self.seconds.append(self.spent.seconds)

    def trajectory(self) -> Trajectory:
        """What this trial did so far."""
        return Trajectory(
            seed=self.seed,
            rows=tuple(self.rows),
            observed=tuple(self.observed[r] for r in self.rows),
            incumbent=tuple(self.incumbents),
            incumbent_mean_acc=tuple(self.oracle.truth[self.incumbents].tolist()),
            seconds=tuple(self.seconds),
        )

    def fresh(self) -> int:
        """The next unqueried network of a random order drawn once per trial (uniform, without replacement)."""
        if self._order is None:
            self._order = self.rng.permutation(len(self.oracle)).tolist()
        while self._order[self._next] in self.observed:
            self._next += 1
        return self._order[self._next]
