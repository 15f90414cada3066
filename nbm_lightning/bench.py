"""Query API over a NAS-Bench-Macro results file, rank statistics to compare two files, and the bench CLI.

`Benchmark.load(path)` reads the published format or this project's extended export (auto-detected;
the extended one by its primary metric, best or final); `query`, `archs`, `top`, `pareto`,
`sample` and `to_frame` answer from numpy arrays with one row per canonical code; `compare(a, b)` says
how well two files agree and how that sits against the seed-to-seed noise within each.
`python -m nbm_lightning.bench {query,top,compare,plot}` is the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .cli import ArgParser, UserError, arch_code, run_main
from .search_space import all_codes, canonical, unique_codes

PROG = "python -m nbm_lightning.bench"
ENV_BENCHMARK = "NBM_BENCHMARK"  # env var: the file the CLI reads when --file is not given
ENV_REFERENCE = "NBM_REFERENCE_JSON"  # env var: where the published file lives (tests, benchmarks)
PUBLISHED_NAME = "nas-bench-macro_cifar10.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
GET_PUBLISHED = f"get {PUBLISHED_NAME} from the xiusu/NAS-Bench-Macro GitHub repository"
FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")  # keys of one record in the published format
EXTENDED_PREFIX = "nbm_lightning"  # the "format" value of this project's extended files starts with it


class BenchmarkError(UserError):
    """A benchmark file that cannot be read (one line, exit status 2 on the command line)."""


class BenchmarkFormatError(BenchmarkError):
    """A file that is not a benchmark of a supported format, or breaks its invariants."""


class MissingDependency(UserError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


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
class Record:
    """The results of one canonical architecture."""

    code: str  # canonical code (the key a non-canonical query resolves to)
    test_acc: tuple[float, ...]  # test accuracy per seed (0, 1, 2...), percent
    mean_acc: float  # mean of test_acc as stored in the file, percent
    std: float  # population std (ddof=0) of test_acc as stored in the file, percentage points
    params: int  # number of parameters
    flops: int  # multiply-accumulates of conv and linear weights for one 3x32x32 image


@dataclass(frozen=True)
class Comparison:
    """How two benchmark files agree on their shared canonical architectures."""

    a: str  # source of the first file
    b: str  # source of the second file
    n_shared: int  # canonical architectures present in both
    kendall_tau: float  # Kendall tau-b of mean_acc, a vs b
    spearman_rho: float  # Spearman rho (average ranks) of mean_acc, a vs b
    mean_abs_diff: float  # mean |mean_acc_a - mean_acc_b|, percentage points
    max_abs_diff: float  # max |mean_acc_a - mean_acc_b|, percentage points
    top_k_overlap: dict[int, float]  # k -> fraction of a's top-k (by mean_acc) also in b's top-k
    noise_tau_a: float  # mean Kendall tau-b between single seeds of a (pairs of seeds), nan if < 2 seeds
    noise_tau_b: float  # the same within b

    @property
    def within_noise(self) -> bool:
        """True when a vs b rank at least as alike as two single seeds of the same file do."""
        return self.kendall_tau >= min(self.noise_tau_a, self.noise_tau_b)


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise MissingDependency naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependency(f'{purpose} needs {module} ({err}): pip install "nbm_lightning[{extra}]"') from err


def default_published_path() -> Path | None:
    """The published file: $NBM_REFERENCE_JSON, else ../shared/reference/ beside the repo, else None."""
    for candidate in (os.environ.get(ENV_REFERENCE), REPO_ROOT.parent / "shared" / "reference" / PUBLISHED_NAME):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


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
    _rows: dict[str, int] = field(init=False, default_factory=dict)  # canonical code -> row

    def __post_init__(self) -> None:
        rows = {code: i for i, code in enumerate(self.codes)}
        if list(rows) != sorted(rows) or len(rows) != len(self.codes):
            raise ValueError("Benchmark codes must be distinct and sorted")
        if any(
            len(column) != len(rows) for column in (self.test_acc, self.mean_acc, self.std, self.params, self.flops)
        ):
            raise ValueError("Benchmark columns must have one row per code")
        object.__setattr__(self, "_rows", rows)

    def __repr__(self) -> str:
        return f"Benchmark({len(self)} archs, {self.test_acc.shape[1]} seeds, source={self.source!r})"

    @classmethod
    def from_records(cls, records: Iterable[Record], source: str = "<memory>") -> Benchmark:
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
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Benchmark:
        """Read a benchmark file, detecting its format; BenchmarkError (one line) for anything else."""
        data, source = _read_json(path), str(path)
        return _LOADERS[detect_format(data, source)](data, source)

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: object) -> bool:
        """True if `code` is a valid code whose canonical form is in this benchmark."""
        return isinstance(code, str) and _canonical_map().get(code) in self._rows

    def row(self, code: object) -> int:
        """Row index of a code's canonical form; TypeError/ValueError for a bad code, KeyError if absent."""
        canon = _canonical_of(code)
        if canon not in self._rows:
            raise KeyError(f"arch {canon!r} (canonical of {code!r}) is not in {self.source}")
        return self._rows[canon]

    def record(self, row: int) -> Record:
        """The record stored in one row."""
        return Record(
            code=self.codes[row],
            test_acc=tuple(self.test_acc[row].tolist()),
            mean_acc=float(self.mean_acc[row]),
            std=float(self.std[row]),
            params=int(self.params[row]),
            flops=int(self.flops[row]),
        )

    def query(self, code: object) -> Record:
        """The record of any valid code, resolved to its canonical form (all seeds, no random choice)."""
        return self.record(self.row(code))

    def archs(self) -> tuple[str, ...]:
        """The canonical codes in this benchmark, sorted (3969 for a complete file)."""
        return self.codes

    def column(self, name: str) -> np.ndarray:
        """The read-only array of one metric (a name in METRICS), one value per row."""
        return getattr(self, _metric(name))

    def top(self, k: int, by: str = "mean_acc") -> list[Record]:
        """The k best records by a metric: accuracy descending, params/flops ascending; ties by code."""
        order = _ranked(self.column(by), METRICS[by].higher_is_better)
        return [self.record(int(i)) for i in order[: _count("k", k, 1)]]

    def pareto(self, x: str = "flops", y: str = "mean_acc") -> list[Record]:
        """The non-dominated records (minimise x, maximise y), sorted by x, then by code."""
        if METRICS[_metric(x)].higher_is_better or not METRICS[_metric(y)].higher_is_better:
            raise ValueError(f"pareto needs a cost x (params, flops) and an accuracy y (mean_acc), got {x!r}, {y!r}")
        return [self.record(int(i)) for i in pareto_rows(self.column(x), self.column(y))]

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """n distinct canonical codes drawn uniformly without replacement; the same for the same seed."""
        n = _count("n", n, 0)
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
    """`name` if it is a known metric, else ValueError listing them."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}: expected one of {', '.join(METRICS)}")
    return name


def _count(name: str, value: object, minimum: int) -> int:
    """`value` if it is an int >= minimum, else TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _ranked(values: np.ndarray, descending: bool) -> np.ndarray:
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


def _read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; BenchmarkError (missing/unreadable) or BenchmarkFormatError (not JSON)."""
    try:
        text = Path(path).read_bytes()
    except OSError as err:
        raise BenchmarkError(f"cannot read benchmark file {str(path)!r}: {err.strerror or err}") from None
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchmarkFormatError(f"benchmark file {str(path)!r} is not JSON: {err}") from None


def detect_format(data: Any, source: str) -> str:
    """The format of parsed JSON: "extended" (this project's) or "published"; else BenchmarkFormatError."""
    if not isinstance(data, dict):
        raise BenchmarkFormatError(
            f"{source!r} is not a NAS-Bench-Macro benchmark: top level is a JSON {type(data).__name__}, expected an object"
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
    key = {"best": "test_acc_best", "final": "test_acc_final"}[metric]
    records = [_extended_record(code, arch, key, source) for code, arch in data["archs"].items()]
    if not records:
        raise BenchmarkFormatError(f"{source!r} holds no architectures")
    return Benchmark.from_records(records, source)


def _extended_record(code: str, arch: dict[str, Any], key: str, source: str) -> Record:
    """One architecture of an extended file as a Record."""
    acc = [run[key] for run in arch["runs"]]
    if any(a is None for a in acc):
        raise BenchmarkFormatError(f"{source!r}: {code} lacks {key} for some seed")
    values = np.asarray(acc, dtype=np.float64)
    return Record(code, tuple(acc), float(values.mean()), float(values.std()), int(arch["params"]), int(arch["flops"]))


def _load_published(data: dict[str, Any], source: str) -> Benchmark:
    """The published format: all 6561 codes -> record, each key holding its canonical code's record."""
    keys, expected = set(data), set(all_codes())
    if keys - expected:
        bad = sorted(keys - expected, key=str)[0]
        raise BenchmarkFormatError(f"{source!r} is not a NAS-Bench-Macro benchmark: unexpected key {bad!r}")
    if expected - keys:
        missing = sorted(expected - keys)
        raise BenchmarkFormatError(
            f"{source!r}: {len(missing)} of {len(expected)} arch codes missing, e.g. {missing[0]!r}"
        )
    records = [_parse_record(data[code], code, source) for code in unique_codes()]
    if len({len(r.test_acc) for r in records}) > 1:
        raise BenchmarkFormatError(f"{source!r}: records have different numbers of seeds in test_acc")
    for code, canon in _canonical_map().items():
        if data[code] != data[canon]:
            raise BenchmarkFormatError(
                f"{source!r} breaks the published invariant: key {code!r} differs from its canonical code {canon!r}"
            )
    return Benchmark.from_records(records, source)


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


def _parse_record(value: Any, code: str, source: str) -> Record:
    """One published record, type-checked; BenchmarkFormatError naming the code and the field."""

    def bad(why: str) -> BenchmarkFormatError:
        return BenchmarkFormatError(f"{source!r}: record {code!r} {why}")

    if not isinstance(value, dict) or set(value) != set(FIELDS):
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise bad(f"has {keys}, expected an object with keys {list(FIELDS)}")
    acc = value["test_acc"]
    if not isinstance(acc, list) or not acc or not all(_number(a) for a in acc):
        raise bad(f"has test_acc {acc!r}, expected a non-empty list of finite numbers")
    for name, integer in (("mean_acc", False), ("std", False), ("params", True), ("flops", True)):
        if not _number(value[name], integer) or value[name] < 0:
            raise bad(f"has {name} {value[name]!r}, expected a non-negative {'int' if integer else 'number'}")
    return Record(
        code,
        tuple(float(a) for a in acc),
        float(value["mean_acc"]),
        float(value["std"]),
        value["params"],
        value["flops"],
    )


# ---------------------------------------------------------------- rank statistics


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D float arrays of equal length."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"samples differ in length: {len(x)} != {len(y)}")
    return x, y


def _tied_pairs(values: np.ndarray) -> int:
    """Number of pairs with equal values."""
    counts = np.unique(values, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(y: np.ndarray) -> int:
    """Pairs i < j with y[i] > y[j] (non-negative ints): a bottom-up merge count, one numpy pass a level."""
    n = len(y)
    pos, span = np.arange(n), int(y.max()) + 1 if n else 1
    runs, width, total = y.astype(np.int64), 1, 0
    while width < n:  # invariant: runs is sorted inside each block of `width`
        block = pos // (2 * width)
        keys = block * span + runs  # sorted left halves, concatenated, are globally sorted
        right = (pos // width) % 2 == 1
        not_greater = np.searchsorted(keys[~right], keys[right], side="right") - block[right] * width
        total += int((width - not_greater).sum())
        runs, width = np.sort(keys) - block * span, width * 2
    return total


def kendall_tau(x: Any, y: Any) -> float:
    """Kendall's tau-b (ties in x or y handled as scipy.stats.kendalltau does); nan if undefined."""
    x, y = _pair(x, y)
    rx, ry = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
    n = len(x)
    pairs = n * (n - 1) // 2
    x_ties, y_ties = _tied_pairs(rx), _tied_pairs(ry)
    if pairs == x_ties or pairs == y_ties:
        return math.nan
    both_ties = _tied_pairs(rx.astype(np.int64) * n + ry)
    discordant = _inversions(ry[np.lexsort((ry, rx))])
    concordant_minus_discordant = pairs - x_ties - y_ties + both_ties - 2 * discordant
    return concordant_minus_discordant / math.sqrt((pairs - x_ties) * (pairs - y_ties))  # exact int product


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def spearman_rho(x: Any, y: Any) -> float:
    """Spearman's rho: Pearson correlation of average ranks; nan if either sample is constant."""
    x, y = _pair(x, y)
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denominator if denominator else math.nan


def seed_noise_tau(test_acc: np.ndarray) -> float:
    """Mean Kendall tau-b between single seeds over all seed pairs; nan with fewer than two seeds."""
    taus = [kendall_tau(test_acc[:, i], test_acc[:, j]) for i, j in combinations(range(test_acc.shape[1]), 2)]
    return float(np.mean(taus)) if taus else math.nan


# ---------------------------------------------------------------- comparison


def shared_rows(a: Benchmark, b: Benchmark) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into a and into b of their shared canonical codes, in code order."""
    shared = sorted(set(a.codes).intersection(b.codes))
    return (
        np.array([a._rows[c] for c in shared], dtype=np.int64),
        np.array([b._rows[c] for c in shared], dtype=np.int64),
    )


def _top_overlap(mean_a: np.ndarray, mean_b: np.ndarray, k: int) -> float:
    """Fraction of a's top-k also in b's top-k (k capped at the sample size); ties by code."""
    k = min(_count("k", k, 1), len(mean_a))
    top_a, top_b = _ranked(mean_a, True)[:k], _ranked(mean_b, True)[:k]
    return len(np.intersect1d(top_a, top_b)) / k


def compare(a: Benchmark, b: Benchmark, ks: Sequence[int] = (10, 100)) -> Comparison:
    """Rank agreement, accuracy differences, top-k overlap and seed-noise ceilings of a vs b."""
    rows_a, rows_b = shared_rows(a, b)
    if len(rows_a) < 2:
        raise ValueError(f"{a.source} and {b.source} share {len(rows_a)} architectures; compare needs 2")
    mean_a, mean_b = a.mean_acc[rows_a], b.mean_acc[rows_b]
    diff = np.abs(mean_a - mean_b)
    return Comparison(
        a=a.source,
        b=b.source,
        n_shared=len(rows_a),
        kendall_tau=kendall_tau(mean_a, mean_b),
        spearman_rho=spearman_rho(mean_a, mean_b),
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        top_k_overlap={int(k): _top_overlap(mean_a, mean_b, k) for k in ks},
        noise_tau_a=seed_noise_tau(a.test_acc[rows_a]),
        noise_tau_b=seed_noise_tau(b.test_acc[rows_b]),
    )


# ---------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _benchmark_file(path: str | None) -> str:
    """--file, else $NBM_BENCHMARK, else a UserError saying how to get the published file."""
    path = path or os.environ.get(ENV_BENCHMARK)
    if not path:
        raise UserError(f"no benchmark file: pass --file PATH or set {ENV_BENCHMARK} ({GET_PUBLISHED})")
    return path


def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, nan to None: plain, valid JSON."""
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _record_lines(code: str, rec: Record) -> list[str]:
    """A record as `name value` lines."""
    seeds = "  ".join(f"{a:.2f}" for a in rec.test_acc)
    return [
        f"code       {code}",
        f"canonical  {rec.code}{'' if code == rec.code else '  (non-canonical input)'}",
        f"test_acc   {seeds}  (%, seeds 0..{len(rec.test_acc) - 1})",
        f"mean_acc   {rec.mean_acc:.2f} %",
        f"std        {rec.std:.3f} pp (ddof=0)",
        f"params     {rec.params:,}",
        f"flops      {rec.flops:,} MACs",
    ]


def _table_lines(records: Sequence[Record]) -> list[str]:
    """Records as a ranked table (accuracy in %, params in M, FLOPs in M MACs)."""
    lines = [f"{'rank':>4}  {'code':<8}  {'mean_acc%':>9}  {'std':>5}  {'params_M':>8}  {'flops_M':>8}"]
    for rank, rec in enumerate(records, 1):
        lines.append(
            f"{rank:>4}  {rec.code:<8}  {rec.mean_acc:>9.2f}  {rec.std:>5.2f}  {rec.params / 1e6:>8.3f}  {rec.flops / 1e6:>8.2f}"
        )
    return lines


def _comparison_lines(c: Comparison) -> list[str]:
    """A comparison as `name value` lines and a verdict against the seed noise."""
    lines = [
        f"a                  {c.a}",
        f"b                  {c.b}",
        f"shared archs       {c.n_shared}",
        f"Kendall tau-b      {c.kendall_tau:.4f}",
        f"Spearman rho       {c.spearman_rho:.4f}",
        f"mean |diff|        {c.mean_abs_diff:.4f} pp",
        f"max |diff|         {c.max_abs_diff:.4f} pp",
    ]
    lines += [f"{f'top-{k} overlap':<18} {v:.3f}" for k, v in c.top_k_overlap.items()]
    lines.append(f"seed-to-seed tau   a {c.noise_tau_a:.4f}  b {c.noise_tau_b:.4f}  (noise ceiling)")
    verdict = "a and b rank within seed noise" if c.within_noise else "a and b rank apart beyond seed noise"
    return lines + [f"verdict            {verdict}"]


def _emit(lines: list[str], payload: Any, as_json: bool) -> int:
    """Print a table, or JSON with --json."""
    print(json.dumps(_jsonable(payload), indent=1) if as_json else "\n".join(lines))
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    """`query CODE`: one record."""
    rec = Benchmark.load(_benchmark_file(args.file)).query(args.code)
    return _emit(_record_lines(args.code, rec), {"query": args.code, **dataclasses.asdict(rec)}, args.json)


def _cmd_top(args: argparse.Namespace) -> int:
    """`top K [--by METRIC]`: a ranked table."""
    records = Benchmark.load(_benchmark_file(args.file)).top(args.k, by=args.by)
    return _emit(_table_lines(records), records, args.json)


def _cmd_compare(args: argparse.Namespace) -> int:
    """`compare A B`: agreement of two files (and their scatter with --out)."""
    a, b = Benchmark.load(args.a), Benchmark.load(args.b)
    try:
        result = compare(a, b, ks=args.k)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.out:
        from .plots import plot_compare

        print(_writing(args.out, lambda: plot_compare(a, b, args.out, result)), file=sys.stderr)
    return _emit(_comparison_lines(result), result, args.json)


def _cmd_plot(args: argparse.Namespace) -> int:
    """`plot --out DIR`: histograms and accuracy vs FLOPs."""
    bench = Benchmark.load(_benchmark_file(args.file))
    from .plots import plot_all

    print("\n".join(map(str, _writing(args.out, lambda: plot_all(bench, args.out)))))
    return 0


def _writing(out: str, write: Callable[[], Any]) -> Any:
    """Run a plot writer; an OSError becomes a one-line UserError naming the folder."""
    try:
        return write()
    except OSError as err:
        raise UserError(f"cannot write plots to {out!r}: {err.strerror or err}") from None


def build_parser() -> ArgParser:
    """The bench command line: query, top, compare, plot."""
    parser = ArgParser(prog=PROG, description="Query and compare NAS-Bench-Macro results files.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{query,top,compare,plot}")
    source = ArgParser(add_help=False)
    source.add_argument("--file", help=f"benchmark JSON (default: ${ENV_BENCHMARK}; {GET_PUBLISHED})")
    as_json = ArgParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a table")
    query = sub.add_parser("query", parents=[source, as_json], help="the record of one code (any form)")
    query.add_argument("code", type=arch_code, help="8 digits over {0,1,2}, e.g. 10201201")
    top = sub.add_parser("top", parents=[source, as_json], help="the best K architectures")
    top.add_argument("k", type=_positive_int, metavar="K")
    top.add_argument(
        "--by", choices=list(METRICS), default="mean_acc", help="mean_acc: highest first; params, flops: smallest first"
    )
    comp = sub.add_parser("compare", parents=[as_json], help="agreement of two files")
    comp.add_argument("a", metavar="A", help="first benchmark JSON")
    comp.add_argument("b", metavar="B", help="second benchmark JSON")
    comp.add_argument("--k", type=_positive_int, nargs="+", default=[10, 100], help="top-k overlaps to report")
    comp.add_argument("--out", help="also write the scatter of mean accuracies (PNG) into this folder")
    plot = sub.add_parser("plot", parents=[source], help="histograms and accuracy vs FLOPs (PNG)")
    plot.add_argument("--out", required=True, help="folder for the PNG files")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "query": _cmd_query,
    "top": _cmd_top,
    "compare": _cmd_compare,
    "plot": _cmd_plot,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bench subcommand."""
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
