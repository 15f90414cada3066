"""The benchmark table: one row per canonical architecture in read-only numpy columns, and its file formats.

`Benchmark.load(path)` reads the published format or this project's extended export (auto-detected; the
extended one by its primary metric, best or final, and with both metrics, training times and learning curves);
`query`, `accuracy`, `train_time`, `best`, `archs`, `top`, `pareto`, `sample` and `to_frame` answer from numpy
arrays, and every query can be charged to a `Budget`. `benchmark_path` finds the file: an explicit path, else
the one environment variable `NBM_BENCHMARK`, else the cached published file (`fetch`: downloaded once).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..arch.codes import all_codes, canonical, unique_codes
from ..core.errors import UserError, require
from ..core.jsonread import JSONReadError, loads, read_bytes
from ..core.validate import check_choice, check_int, check_number, fail, shown
from ..records.run_record import METRIC_FIELDS
from .budget import Budget
from .extended import ACC_RANGE, MAX_COUNT, value_problem
from .fetch import ENV_BENCHMARK, ENV_CACHE, ENV_URL, PUBLISHED_NAME, cache_dir, cached_published, published_file

GET_PUBLISHED = (  # where a command's benchmark file comes from, for help texts
    f"${ENV_BENCHMARK}, else {PUBLISHED_NAME} from the xiusu/NAS-Bench-Macro GitHub repository, downloaded once "
    f"into a cache: ${ENV_CACHE}, else ~/.cache/nbm_lightning; ${ENV_URL} overrides the URL"
)
FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")  # keys of one record in the published format
ACC_METRICS = tuple(METRIC_FIELDS)  # per-seed accuracies a file may hold: "best" (max over epochs), "final"
PROXY_SECONDS_PER_MAC = 8e-6  # the FLOPs time proxy: simulated seconds of one training = this x flops, i.e.
# 50 epochs x (3 x 50,000 training + 10,000 test images) MACs at an assumed 1e12 MAC/s; a proxy, not a measurement
TIME_RECORDED = "recorded train_time_s"  # Benchmark.time_source where the file records every run's training time
TIME_PROXY = f"FLOPs proxy ({PROXY_SECONDS_PER_MAC:g} s per MAC of flops; not measured)"  # otherwise
EXTENDED_PREFIX = "nbm_lightning"  # the "format" value of this project's extended files starts with it
SUMMARY_TOLERANCE = 1e-6  # pp: how far mean_acc and std may be from the mean and population std (ddof=0) of test_acc.
# The published file stores both unrounded: over its 6561 records they equal numpy's float64 mean and std(ddof=0) of
# test_acc exactly (largest difference 0.0; the sample std, ddof=1, would be up to 0.19 pp off). 1e-6 pp leaves room
# for another summation order (float64 round-off, ~1e-14 pp) and refuses any edit a table (0.01 pp) could show.


class BenchmarkError(UserError):
    """A benchmark file that cannot be read (one line, exit status 2 on the command line)."""


class BenchmarkFormatError(BenchmarkError, ValueError):
    """A file that is not a benchmark of a supported format, or breaks its invariants (also a ValueError)."""


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


@dataclass(frozen=True)
class ArchResult:
    """The results of one canonical architecture."""

    code: str  # canonical code (the key a non-canonical query resolves to)
    test_acc: tuple[float, ...]  # test accuracy per seed (0, 1, 2...), percent
    mean_acc: float  # mean of test_acc as stored in the file, percent
    std: float  # population std (ddof=0) of test_acc as stored in the file, percentage points
    params: int  # number of parameters
    flops: int  # multiply-accumulates of conv and linear weights for one 3x32x32 image


def benchmark_path(path: str | os.PathLike[str] | None = None, download: bool = False) -> Path:
    """The benchmark file: `path`, else $NBM_BENCHMARK, else the cached published file (fetched once if `download`)."""
    chosen = path or os.environ.get(ENV_BENCHMARK)
    if chosen:
        return Path(chosen)
    if download:
        return published_file()
    cached = cached_published()
    if cached is None:
        raise UserError(
            f"no benchmark file: pass a path (--file PATH), set {ENV_BENCHMARK}, or let Benchmark.load() "
            f"download the published file into {cache_dir() / PUBLISHED_NAME}"
        )
    return cached


@cache
def _canonical_map() -> dict[str, str]:
    """Every one of the 6561 codes -> its canonical form (computed once)."""
    return {code: canonical(code) for code in all_codes()}


def _canonical_of(code: object) -> str:
    """canonical(code), through the table for valid codes; search_space's error for anything else."""
    canon = _canonical_map().get(code) if isinstance(code, str) else None
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
    # no curve for that run); None: the file has no curves (the published file)
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
        others = {name: acc for name, acc in self.accs.items() if name != self.metric}  # test_acc wins (a replace)
        accs = {self.metric: self.test_acc, **others}
        if any(array.shape != self.test_acc.shape for array in accs.values()):
            raise ValueError("Benchmark accuracies must have one row per code and one column per seed")
        object.__setattr__(self, "accs", accs)
        object.__setattr__(self, "_rows", rows)
        problem = self._invariant_problem()
        if problem:
            raise BenchmarkFormatError(f"{self.source!r} is inconsistent: {problem}")

    def _invariant_problem(self) -> str | None:
        """The first row breaking an invariant every query relies on, in words, or None.

        Accuracies finite percentages (NaN in a curve: no curve for that run); best >= final; mean_acc and std the
        mean and population std of test_acc (SUMMARY_TOLERANCE); params and flops non-negative; times finite."""
        low, high = ACC_RANGE
        percent = f"finite percentages in {low:g}..{high:g}"
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below, without warnings
            mean, std = self.test_acc.mean(axis=1), self.test_acc.std(axis=1)
        summary = f"(to {SUMMARY_TOLERANCE:g} pp)"
        checks: list[tuple[str, np.ndarray, Any, Callable[[int], str]]] = [
            *((METRIC_FIELDS[name], acc, (np.isfinite(acc) & (acc >= low) & (acc <= high)).all(axis=1),
               lambda row: percent) for name, acc in self.accs.items()),
            ("mean_acc", self.mean_acc, np.abs(self.mean_acc - mean) <= SUMMARY_TOLERANCE,
             lambda row: f"{float(mean[row])!r}, the mean of its test_acc "
                         f"{shown(self.test_acc[row].tolist())} {summary}"),
            ("std", self.std, np.abs(self.std - std) <= SUMMARY_TOLERANCE,
             lambda row: f"{float(std[row])!r}, the population std (ddof=0) of its test_acc {summary}"),
            ("params", self.params, self.params >= 0, lambda row: "a non-negative count"),
            ("flops", self.flops, self.flops >= 0, lambda row: "a non-negative count"),
        ]  # fmt: skip
        if "best" in self.accs and "final" in self.accs:
            best, final = self.accs["best"], self.accs["final"]
            checks.append(("test_acc_best", best, (best >= final).all(axis=1), lambda row: "at least test_acc_final"))
        if self.train_time_s is not None:
            times = self.train_time_s
            ok = (np.isfinite(times) & (times >= 0)).all(axis=1)
            checks.append(("train_time_s", times, ok, lambda row: "finite seconds >= 0"))
        if self.eval_acc is not None:
            curve = self.eval_acc
            ok = (np.isnan(curve) | ((curve >= low) & (curve <= high))).all(axis=(1, 2))
            checks.append(("an eval_acc curve", curve, ok, lambda row: f"{percent} (or NaN: no curve)"))
        for name, values, ok, expected in checks:
            bad = np.flatnonzero(~np.asarray(ok))
            if len(bad):
                row = int(bad[0])
                return f"{self.codes[row]} has {name} {shown(values[row].tolist())}, expected {expected(row)}"
        return None

    def __repr__(self) -> str:
        return f"Benchmark({len(self)} archs, {self.test_acc.shape[1]} seeds, source={self.source!r})"

    @classmethod
    def from_records(cls, records: Iterable[ArchResult], source: str = "<memory>", metric: str = "best") -> Benchmark:
        """Build a benchmark from records of distinct canonical codes (any order, equal seed counts)."""
        rows = sorted(records, key=lambda r: r.code)
        if not rows:
            raise ValueError("Benchmark.from_records needs at least one record")
        if any(_canonical_map().get(r.code) != r.code for r in rows):
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
        (data, digest), source = _read_json(path), str(path)
        bench = dataclasses.replace(_LOADERS[detect_format(data, source)](data, source), sha256=digest)
        for note in () if quiet else bench.notes:
            print(f"note: {note}", file=sys.stderr)
        return bench

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: object) -> bool:
        """True if `code` is a valid code whose canonical form is in this benchmark."""
        return isinstance(code, str) and _canonical_map().get(code) in self._rows

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

    def metrics(self) -> tuple[str, ...]:
        """The per-seed accuracies this file holds ("best", "final"), its primary one (test_acc) first."""
        return tuple(self.accs)

    def acc_table(self, metric: str | None = None, epoch: int | None = None) -> np.ndarray:
        """(rows, seeds) accuracies, percent: a metric held (default: the primary one), or those after `epoch`."""
        if epoch is None:
            return self.accs[check_choice("metric", self.metric if metric is None else metric, self.metrics())]
        if metric is not None:
            raise ValueError(f"pass metric or epoch, not both (got metric {metric!r} and epoch {epoch!r})")
        if self.eval_acc is None:
            raise BenchmarkError(
                f"{self.source} has no learning curves (the published file has none; an extended export of records "
                f"has them): cannot answer the accuracy at epoch {epoch!r}"
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
        metric: str | None = None,
        epoch: int | None = None,
        rng: np.random.Generator | int | None = None,
        budget: Budget | None = None,
    ) -> float:
        """One architecture's accuracy, percent: the mean over seeds (seed None), one seed (an int), or one random
        seed (seed "random", drawn with `rng`: NATS-Bench's is_random); of `metric` or after `epoch` (0-based)."""
        row, table = self.row(code), self.acc_table(metric, epoch)
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


def ranked(values: np.ndarray, descending: bool) -> np.ndarray:
    """Row indices best first; rows are in code order, so a stable sort breaks ties by code."""
    return np.argsort(-values if descending else values, kind="stable")


def pareto_rows(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Rows not dominated (lower cost and higher gain, one strictly), sorted by cost, then row."""
    order = np.lexsort((np.arange(len(cost)), -gain, cost))  # cost ascending, gain descending, row
    keep, best_gain, best_cost = [], -math.inf, None
    for i, c, g in zip(order.tolist(), cost[order].tolist(), gain[order].tolist()):
        if g > best_gain or (g == best_gain and c == best_cost):
            keep.append(i)  # equal (cost, gain) points do not dominate each other: all are kept
            best_gain, best_cost = g, c
    return np.array(keep, dtype=np.int64)


# ---------------------------------------------------------------- loading


def _read_json(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """A JSON file parsed (bounded in size and depth: jsonread), and its bytes' sha256; BenchmarkError where it cannot
    be read (missing, not a regular file, too large), BenchmarkFormatError where it is not JSON."""
    try:
        text = read_bytes(path)
    except JSONReadError as err:
        raise BenchmarkError(f"cannot read benchmark file{str(err).removeprefix('cannot read')}") from None
    try:
        return loads(text, str(path)), hashlib.sha256(text).hexdigest()
    except JSONReadError as err:
        raise BenchmarkFormatError(f"benchmark file {err}") from None


def detect_format(data: Any, source: str) -> str:
    """The format of parsed JSON: "extended" (this project's) or "published"; else BenchmarkFormatError."""
    if not isinstance(data, dict):
        raise BenchmarkFormatError(
            f"{source!r} is not a NAS-Bench-Macro benchmark: top level is a JSON {type(data).__name__}, "
            "expected an object"
        )
    if isinstance(data.get("format"), str) and data["format"].startswith(EXTENDED_PREFIX):
        return "extended"
    return "published"


def _load_extended(data: dict[str, Any], source: str) -> Benchmark:
    """This project's extended export: per-seed accuracies of the file's primary metric (best or final)."""
    from . import extended

    try:
        extended.validate(data, source)
    except ValueError as err:
        raise BenchmarkFormatError(str(err)) from None
    metric = data["provenance"]["metric"]
    key = METRIC_FIELDS[metric]
    archs = sorted(data["archs"].items())  # row order of Benchmark.from_records
    records = [_extended_record(code, arch, key, source) for code, arch in archs]
    if not records:
        raise BenchmarkFormatError(f"{source!r} holds no architectures")
    runs = [arch["runs"] for _, arch in archs]
    accs = {name: column for name, field_ in METRIC_FIELDS.items() if (column := _run_column(runs, field_)) is not None}
    bench = Benchmark.from_records(records, source, metric=metric)
    return dataclasses.replace(
        bench, accs=accs, train_time_s=_run_column(runs, "train_time_s"), eval_acc=_eval_curves(runs)
    )


def _run_column(runs: list[list[dict[str, Any]]], key: str) -> np.ndarray | None:
    """(archs, seeds) values of one per-run field, read-only; None unless every run has a finite number."""
    values = [[run.get(key) for run in arch] for arch in runs]
    if not all(_number(v) for arch in values for v in arch):
        return None
    return _readonly(values, np.float64)


def _eval_curves(runs: list[list[dict[str, Any]]]) -> np.ndarray | None:
    """(archs, seeds, epochs) eval_acc curves (NaN where a run has none), read-only; None where no run has one."""
    curves = [[_eval_acc(run) for run in arch] for arch in runs]
    epochs = max((len(c) for arch in curves for c in arch), default=0)
    if not epochs:
        return None
    array = np.full((len(curves), len(curves[0]), epochs), np.nan)
    for i, arch in enumerate(curves):
        for j, curve in enumerate(arch):
            array[i, j, : len(curve)] = curve
    array.flags.writeable = False
    return array


def _eval_acc(run: dict[str, Any]) -> np.ndarray:
    """One run's eval_acc curve (empty where the run stores no curves)."""
    from .extended import decode_curve

    curves = run.get("curves") or {}
    return decode_curve(curves["eval_acc"]) if "eval_acc" in curves else np.empty(0)


def _extended_record(code: str, arch: dict[str, Any], key: str, source: str) -> ArchResult:
    """One architecture of an extended file (validated: `key` holds a number in every run) as an ArchResult."""
    acc = [run[key] for run in arch["runs"]]
    values = np.asarray(acc, dtype=np.float64)
    return ArchResult(
        code, tuple(acc), float(values.mean()), float(values.std()), int(arch["params"]), int(arch["flops"])
    )


def _load_published(data: dict[str, Any], source: str) -> Benchmark:
    """The published format: the 6561 codes -> record, each key holding its canonical code's record; a partial file
    (an `--allow-partial` export) holds the keys of fewer canonical codes, with a one-line notice on stderr."""
    keys, expected = set(data), set(all_codes())
    if keys - expected:
        bad = sorted(keys - expected, key=str)[0]
        raise BenchmarkFormatError(f"{source!r} is not a NAS-Bench-Macro benchmark: unexpected key {bad!r}")
    if not keys:
        raise BenchmarkFormatError(f"{source!r} holds no architectures")
    canonicals = [code for code in unique_codes() if code in keys]
    records = [_parse_record(data[code], code, source) for code in canonicals]
    if len({len(r.test_acc) for r in records}) > 1:
        raise BenchmarkFormatError(f"{source!r}: records have different numbers of seeds in test_acc")
    _check_invariant(data, source)
    bench = Benchmark.from_records(records, source)
    if len(keys) == len(expected):
        return bench
    missing = sorted(expected - keys)
    note = (
        f"{source} is partial: {len(canonicals)} of {len(unique_codes())} canonical codes "
        f"({len(missing)} of {len(expected)} arch codes missing, e.g. {missing[0]!r})"
    )
    return dataclasses.replace(bench, notes=(note,))


def _check_invariant(data: dict[str, Any], source: str) -> None:
    """BenchmarkFormatError unless every key holds the record of its canonical code, which is present too."""
    for code in data:
        canon = _canonical_map()[code]
        if canon not in data:
            raise BenchmarkFormatError(
                f"{source!r} breaks the published invariant: key {code!r} is present, its canonical code {canon!r} not"
            )
        if data[code] != data[canon]:
            raise BenchmarkFormatError(
                f"{source!r} breaks the published invariant: key {code!r} differs from its canonical code {canon!r}"
            )


# format name -> loader; a new format is one function here plus its detection in detect_format
_LOADERS: dict[str, Callable[[dict[str, Any], str], Benchmark]] = {
    "published": _load_published,
    "extended": _load_extended,
}


def _number(value: Any, integer: bool = False) -> bool:
    """True for a finite JSON number (an int when `integer`), never a bool."""
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return integer or math.isfinite(value)


def _parse_record(value: Any, code: str, source: str) -> ArchResult:
    """One published record, type- and range-checked (its mean and std are checked by Benchmark against test_acc);
    BenchmarkFormatError naming the code and the field."""

    def bad(why: str) -> BenchmarkFormatError:
        return BenchmarkFormatError(f"{source!r}: record {code!r} {why}")

    if not isinstance(value, dict) or set(value) != set(FIELDS):
        keys = shown(sorted(value)) if isinstance(value, dict) else type(value).__name__
        raise bad(f"has {keys}, expected an object with keys {list(FIELDS)}")
    acc = value["test_acc"]
    if not isinstance(acc, list) or not acc:
        raise bad(f"has test_acc {shown(acc)}, expected a non-empty list of accuracies")
    problem = (
        next(filter(None, (value_problem(f"test_acc[{i}]", a, *ACC_RANGE) for i, a in enumerate(acc))), None)
        or value_problem("mean_acc", value["mean_acc"], *ACC_RANGE)
        or value_problem("std", value["std"], *ACC_RANGE)
        or value_problem("params", value["params"], 0, MAX_COUNT, integer=True)
        or value_problem("flops", value["flops"], 0, MAX_COUNT, integer=True)
    )
    if problem:
        raise bad(f"has {problem}")
    return ArchResult(
        code,
        tuple(float(a) for a in acc),
        float(value["mean_acc"]),
        float(value["std"]),
        value["params"],
        value["flops"],
    )
