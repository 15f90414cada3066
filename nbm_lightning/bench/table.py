"""The benchmark table: one row per canonical architecture in read-only numpy columns, and the queries on it.

`Benchmark.load(path)` reads the published format or this project's extended export (found and told apart by
`formats`; the extended one by its primary metric, best or final, and with both metrics, training times,
learning curves and, where its runs held out a validation split, the validation accuracies); `query`, `accuracy`
(of a split: `splits()`), `train_time`, `best`, `archs`, `top`, `pareto`, `sample` and `to_frame` answer from numpy
arrays, and every query can be charged to a `Budget`. `cost` and `costs` join a hardware-cost file (`hwcost`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arch.codes import canonical, unique_codes
from ..core.errors import require
from ..core.validate import check_choice, check_int, check_number, fail
from ..records.record_schema import EVAL_SPLITS
from ..records.run_record import METRIC_FIELDS
from . import formats
from .budget import Budget
from .formats import BenchmarkError, BenchmarkFormatError, benchmark_path
from .published import ArchResult, canonical_map
from .rankstats import pareto_rows, ranked

ACC_METRICS = tuple(METRIC_FIELDS)  # per-seed accuracies a file may hold: "best" (max over epochs), "final"
SPLITS = EVAL_SPLITS  # the splits a file may hold accuracies of: "test" (every file), "val" (a validation split)
PROXY_SECONDS_PER_MAC = 8e-6  # the FLOPs time proxy: simulated seconds of one training = this x flops, i.e.
# 50 epochs x (3 x 50,000 training + 10,000 test images) MACs at an assumed 1e12 MAC/s; a proxy, not a measurement
TIME_RECORDED = "recorded train_time_s"  # Benchmark.time_source where the file records every run's training time
TIME_PROXY = f"FLOPs proxy ({PROXY_SECONDS_PER_MAC:g} s per MAC of flops; not measured)"  # otherwise


class ArchNotFound(BenchmarkError, KeyError):
    """A valid code whose canonical form the benchmark does not hold (a partial file): a KeyError, and one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Metric:
    """A per-architecture column that `top`, `pareto` and the plots rank or draw."""

    name: str  # column name, as in the published JSON
    label: str  # axis or table label, with its display unit
    scale: float  # raw value x scale = display value (params -> M, flops -> M MACs)
    higher_is_better: bool  # True: `top` sorts descending and `pareto` maximises it


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("mean_acc", "mean test accuracy (%)", 1.0, True),
        Metric("params", "params (M)", 1e-6, False),
        Metric("flops", "FLOPs (M MACs)", 1e-6, False),
    )
}


def _canonical_of(code: object) -> str:
    """canonical(code), through the table for valid codes; search_space's error for anything else."""
    canon = canonical_map().get(code) if isinstance(code, str) else None
    return canonical(code) if canon is None else canon


def _readonly(values: Any, dtype: type) -> np.ndarray:
    """A read-only numpy array."""
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False, repr=False)
class Benchmark:
    """Results of canonical architectures, one row per code (sorted), in read-only numpy columns."""

    codes: tuple[str, ...]  # canonical codes, sorted; row i of every column belongs to codes[i]
    test_acc: np.ndarray  # (rows, seeds) float64, percent
    mean_acc: np.ndarray  # (rows,) float64, percent
    std: np.ndarray  # (rows,) float64, percentage points
    params: np.ndarray  # (rows,) int64, parameters
    flops: np.ndarray  # (rows,) int64, MACs for one 3x32x32 image
    source: str = "<memory>"  # where the data came from (a path), for messages and tables
    metric: str = "best"  # what test_acc holds: "best" (max over epochs: the published semantics) or "final"
    accs: Mapping[str, np.ndarray] = field(default_factory=dict)  # every per-seed accuracy held: metric ->
    # (rows, seeds) percent; test_acc is added under `metric`
    train_time_s: np.ndarray | None = None  # (rows, seeds) recorded training seconds; None: the file records none
    eval_acc: np.ndarray | None = None  # (rows, seeds, epochs) evaluation accuracy after each epoch, percent (NaN:
    # no curve for that run), of the split `eval_split`; None: the file has no curves (the published file)
    val_accs: Mapping[str, np.ndarray] = field(default_factory=dict)  # validation accuracies held: metric ->
    # (rows, seeds) percent; empty: no validation split (the published file)
    eval_split: str = "test"  # the split evaluated after every epoch (eval_acc's): "test" (published) or "val"
    sha256: str = ""  # hex sha256 of the file's bytes ("" for a benchmark built in memory)
    notes: tuple[str, ...] = ()  # what a reader should know of the file (one line each), e.g. that it is partial
    _rows: dict[str, int] = field(init=False, default_factory=dict)  # canonical code -> row

    def __post_init__(self) -> None:
        rows = {code: i for i, code in enumerate(self.codes)}
        if list(rows) != sorted(rows) or len(rows) != len(self.codes):
            raise ValueError("Benchmark codes must be distinct and sorted")
        if any(
            len(column) != len(rows) for column in (self.test_acc, self.mean_acc, self.std, self.params, self.flops)
        ):
            raise ValueError("Benchmark columns must have one row per code")
        check_choice("metric", self.metric, ACC_METRICS)
        check_choice("eval_split", self.eval_split, SPLITS)
        others = {name: acc for name, acc in self.accs.items() if name != self.metric}  # test_acc wins (a replace)
        accs = {self.metric: self.test_acc, **others}
        if any(array.shape != self.test_acc.shape for array in (*accs.values(), *self.val_accs.values())):
            raise ValueError("Benchmark accuracies must have one row per code and one column per seed")
        object.__setattr__(self, "accs", accs)
        object.__setattr__(self, "_rows", rows)
        problem = formats.consistency_problem(self)
        if problem:
            raise BenchmarkFormatError(f"{self.source!r} is inconsistent: {problem}")

    def __repr__(self) -> str:
        return f"Benchmark({len(self)} archs, {self.test_acc.shape[1]} seeds, source={self.source!r})"

    @classmethod
    def from_records(cls, records: Iterable[ArchResult], source: str = "<memory>", metric: str = "best") -> Benchmark:
        """Build a benchmark from records of distinct canonical codes (any order, equal seed counts)."""
        rows = sorted(records, key=lambda r: r.code)
        if not rows:
            raise ValueError("Benchmark.from_records needs at least one record")
        if any(canonical_map().get(r.code) != r.code for r in rows):
            raise ValueError("Benchmark.from_records takes canonical codes only")
        if len({len(r.test_acc) for r in rows}) > 1:
            raise ValueError("Benchmark.from_records: every record needs the same number of seeds")
        return cls(
            codes=tuple(r.code for r in rows),
            test_acc=_readonly([r.test_acc for r in rows], np.float64).reshape(len(rows), -1),
            mean_acc=_readonly([r.mean_acc for r in rows], np.float64),
            std=_readonly([r.std for r in rows], np.float64),
            params=_readonly([r.params for r in rows], np.int64),
            flops=_readonly([r.flops for r in rows], np.int64),
            source=source,
            metric=metric,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, quiet: bool = False) -> Benchmark:
        """Read a benchmark file (`benchmark_path`: no path downloads the published file once), detecting its format;
        its `notes` go to stderr, one line each, unless `quiet`."""
        path = benchmark_path(path, download=True)
        records, fields = formats.read(path)
        metric = fields.pop("metric", "best")
        bench = dataclasses.replace(cls.from_records(records, str(path), metric), **fields)
        for note in () if quiet else bench.notes:
            print(f"note: {note}", file=sys.stderr)
        return bench

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: object) -> bool:
        """True if `code` is a valid code whose canonical form is in this benchmark."""
        return isinstance(code, str) and canonical_map().get(code) in self._rows

    def row(self, code: object) -> int:
        """Row index of a code's canonical form; TypeError/ValueError for a bad code, ArchNotFound (a KeyError) if
        absent."""
        canon = _canonical_of(code)
        if canon not in self._rows:
            held = f"it holds {len(self)} of {len(unique_codes())} canonical codes"
            raise ArchNotFound(f"arch {canon!r} (canonical of {code!r}) is not in {self.source} ({held})")
        return self._rows[canon]

    def record(self, row: int) -> ArchResult:
        """The record stored in one row."""
        return ArchResult(
            code=self.codes[row],
            test_acc=tuple(self.test_acc[row].tolist()),
            mean_acc=float(self.mean_acc[row]),
            std=float(self.std[row]),
            params=int(self.params[row]),
            flops=int(self.flops[row]),
        )

    def query(self, code: object, budget: Budget | None = None) -> ArchResult:
        """The record of any valid code, resolved to its canonical form (all seeds: each seed's run is charged)."""
        row = self.row(code)
        if budget is not None:
            self._charge(budget, row, list(range(self.seeds)), None)
        return self.record(row)

    @property
    def seeds(self) -> int:
        """Seeds (training runs) per architecture."""
        return int(self.test_acc.shape[1])

    def splits(self) -> tuple[str, ...]:
        """The splits this file holds accuracies of: "test" (every file), then "val" where its runs held one out."""
        val = self.val_accs or (self.eval_split == "val" and self.eval_acc is not None)
        return ("test", "val") if val else ("test",)

    def metrics(self, split: str = "test") -> tuple[str, ...]:
        """The per-seed accuracies this file holds of a split ("best", "final"), the file's primary metric first."""
        accs = self.split_accs(self._split(split))
        return tuple(sorted(accs, key=lambda name: name != self.metric))

    def split_accs(self, split: str) -> Mapping[str, np.ndarray]:
        """metric -> (rows, seeds) accuracies of one split (empty where the file holds none)."""
        return self.accs if split == "test" else self.val_accs

    def _split(self, split: str) -> str:
        """`split` if this file holds it; InvalidValue for a name that is no split, BenchmarkError where it lacks it."""
        if check_choice("split", split, SPLITS) not in self.splits():
            held = ", ".join(self.splits())
            raise BenchmarkError(
                f"{self.source} holds no {split!r} split (it holds: {held}; a validation split comes from records "
                "trained with --val-size, exported with --format extended)"
            )
        return split

    def acc_table(self, metric: str | None = None, epoch: int | None = None, split: str = "test") -> np.ndarray:
        """(rows, seeds) accuracies of a split, percent: a metric held (default: the file's primary one), or those
        after `epoch` (the split evaluated after every epoch only)."""
        split = self._split(split)
        if epoch is None:
            held = self.metrics(split)
            if not held:  # a v1 extended export of a validation-split recipe: its curves only
                raise BenchmarkError(
                    f"{self.source} holds per-epoch {split} curves only (pass epoch=), no {split} accuracies "
                    "(a v1 extended export dropped them: re-export the records)"
                )
            return self.split_accs(split)[check_choice("metric", self.metric if metric is None else metric, held)]
        if metric is not None:
            raise ValueError(f"pass metric or epoch, not both (got metric {metric!r} and epoch {epoch!r})")
        if self.eval_acc is None:
            raise BenchmarkError(
                f"{self.source} has no learning curves (the published file has none; an extended export of records "
                f"has them): cannot answer the accuracy at epoch {epoch!r}"
            )
        if split != self.eval_split:
            raise BenchmarkError(
                f"{self.source} has per-epoch curves of the {self.eval_split} split only (the {split} split was "
                f"evaluated once, after the last epoch): cannot answer the {split} accuracy at epoch {epoch!r}"
            )
        return self.eval_acc[:, :, check_int("epoch", epoch, 0, self.eval_acc.shape[2] - 1)]

    @property
    def time_source(self) -> str:
        """Where simulated training seconds come from: the file's recorded training times, else the FLOPs proxy."""
        return TIME_PROXY if self.train_time_s is None else TIME_RECORDED

    def seconds_table(self) -> np.ndarray:
        """(rows, seeds) simulated seconds of each full training run (see `time_source`)."""
        if self.train_time_s is not None:
            return self.train_time_s
        return np.repeat((self.flops * PROXY_SECONDS_PER_MAC)[:, None], self.seeds, axis=1)

    def accuracy(
        self,
        code: object,
        seed: int | str | None = None,
        *,
        split: str = "test",
        metric: str | None = None,
        epoch: int | None = None,
        rng: np.random.Generator | int | None = None,
        budget: Budget | None = None,
    ) -> float:
        """One architecture's accuracy on a split ("test" or "val": `splits()`), percent: the mean over seeds (seed
        None), one seed (an int), or one random seed (seed "random", drawn with `rng`: NATS-Bench's is_random); of
        `metric` (`metrics(split)`) or after `epoch` (0-based)."""
        row, table = self.row(code), self.acc_table(metric, epoch, split)
        seeds = self._seeds(seed, row, rng, budget)
        value = float(table[row, seeds].mean())
        if math.isnan(value):
            raise BenchmarkError(f"{self.source}: {self.codes[row]} has no curve for seed(s) {seeds}")
        if budget is not None:
            self._charge(budget, row, seeds, epoch)
        return value

    def _seeds(self, seed: object, row: int, rng: Any, budget: Budget | None) -> list[int]:
        """The seeds a query reads: all, one, or a random one (the one already paid for, if any)."""
        if seed is None:
            return list(range(self.seeds))
        if seed == "random":
            paid = None if budget is None else budget.first_seed(self.codes[row])
            if paid is not None:
                return [paid]
            if rng is None:
                raise ValueError("invalid rng None: expected a numpy Generator or an int seed with seed='random'")
            return [int(np.random.default_rng(rng).integers(self.seeds))]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < self.seeds:
            raise fail("seed", seed, f"None (the mean), 'random' or an int in 0..{self.seeds - 1}")
        return [seed]

    def _charge(self, budget: Budget, row: int, seeds: list[int], epoch: int | None) -> None:
        """Charge the runs a query reads: whole trainings, or up to `epoch` of them."""
        fraction = 1.0 if epoch is None or self.eval_acc is None else (epoch + 1) / self.eval_acc.shape[2]
        budget.charge(self.codes[row], seeds, fraction, self.seconds_table()[row, seeds].tolist())

    def train_time(self, code: object, seed: int | None = None) -> float:
        """Recorded training seconds of one seed's run, or their mean over seeds; BenchmarkError where unrecorded."""
        if self.train_time_s is None:
            raise BenchmarkError(f"{self.source} records no training time (budgets charge the {TIME_PROXY})")
        row = self.row(code)
        if seed is None:
            return float(self.train_time_s[row].mean())
        return float(self.train_time_s[row, check_int("seed", seed, 0, self.seeds - 1)])

    def best(self, max_flops: float | None = None, max_params: float | None = None) -> ArchResult:
        """The record of highest mean accuracy among those within the limits (ties by code); ValueError if none."""
        keep = np.ones(len(self), dtype=bool)
        if max_flops is not None:
            keep &= self.flops <= check_number("max_flops", max_flops, 0)
        if max_params is not None:
            keep &= self.params <= check_number("max_params", max_params, 0)
        rows = np.flatnonzero(keep)
        if not len(rows):
            raise ValueError(f"no architecture of {self.source} has flops <= {max_flops} and params <= {max_params}")
        return self.record(int(rows[ranked(self.mean_acc[rows], True)[0]]))

    def cost(
        self,
        code: object,
        measure: str = "latency_ms",
        *,
        file: str | os.PathLike[str] | Any,
        batch_size: int = 1,
        stat: str = "median",
    ) -> float | int:
        """One network's measured cost from a cost file (`hwcost.query.MEASURES`), its params and FLOPs checked
        against this benchmark's: `bench.cost("12012012", "latency_ms", file="results/cost_cpu.json")`."""
        return self._join([self.codes[self.row(code)]], measure, file, batch_size, stat)[0]

    def costs(
        self, file: str | os.PathLike[str] | Any, measure: str = "latency_ms", batch_size: int = 1, stat: str = "median"
    ) -> np.ndarray:
        """(rows,) float64: `measure` of every architecture of this benchmark from a cost file (which must hold
        each, with the same params and FLOPs: `hwcost.join`; CostNotFound or CostFileError otherwise)."""
        return _readonly(self._join(self.codes, measure, file, batch_size, stat), np.float64)

    def _join(self, codes: Iterable[str], measure: str, file: Any, batch_size: int, stat: str) -> list[float | int]:
        """hwcost.join of canonical codes of this benchmark, its counts checked, in the order given."""
        from ..hwcost.query import join

        codes = list(codes)
        counts = {c: (int(self.params[self._rows[c]]), int(self.flops[self._rows[c]])) for c in codes}
        joined = join(codes, measure, file=file, batch_size=batch_size, stat=stat, counts=counts)
        return [joined[c] for c in codes]

    def archs(self) -> tuple[str, ...]:
        """The canonical codes in this benchmark, sorted (3969 for a complete file)."""
        return self.codes

    def column(self, name: str) -> np.ndarray:
        """The read-only array of one metric (a name in METRICS), one value per row."""
        return getattr(self, _metric(name))

    def top(self, k: int, by: str = "mean_acc") -> list[ArchResult]:
        """The k best records by a metric: accuracy descending, params/flops ascending; ties by code."""
        order = ranked(self.column(by), METRICS[by].higher_is_better)
        return [self.record(int(i)) for i in order[: check_int("k", k, 1)]]

    def pareto(self, x: str = "flops", y: str = "mean_acc") -> list[ArchResult]:
        """The non-dominated records (minimise x, maximise y), sorted by x, then by code."""
        if METRICS[_metric(x)].higher_is_better or not METRICS[_metric(y)].higher_is_better:
            raise ValueError(f"pareto needs a cost x (params, flops) and an accuracy y (mean_acc), got {x!r}, {y!r}")
        return [self.record(int(i)) for i in pareto_rows(self.column(x), self.column(y))]

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """n distinct canonical codes drawn uniformly without replacement; the same for the same seed."""
        n = check_int("n", n, 0)
        if n > len(self):
            raise ValueError(f"cannot sample {n} distinct archs from {len(self)}")
        picks = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        return [self.codes[int(i)] for i in picks]

    def to_frame(self) -> Any:
        """A pandas DataFrame indexed by canonical code: test_acc_<seed>, mean_acc, std, params, flops."""
        pd = require("pandas", "pandas", "Benchmark.to_frame()")
        columns = {f"test_acc_{s}": self.test_acc[:, s] for s in range(self.test_acc.shape[1])}
        columns.update(mean_acc=self.mean_acc, std=self.std, params=self.params, flops=self.flops)
        return pd.DataFrame(columns, index=pd.Index(self.codes, name="code"))


def _metric(name: str) -> str:
    """`name` if it is a known metric (InvalidValue listing them otherwise)."""
    return check_choice("metric", name, tuple(METRICS))
