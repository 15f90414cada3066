"""Benchmark files on disk: which file, its JSON read within bounds, which format it is, and that format's loader.

Two formats: "published" (NAS-Bench-Macro's JSON: `published`) and "extended" (this project's export:
`extended`), told apart by the extended file's "format" field. A new format is one module with a
`load_benchmark(data, source)` plus its detection in `detect_format` and a line in LOADERS. `benchmark_path` finds
the file: an explicit path, else the one environment variable `NBM_BENCHMARK`, else the cached published file
(`fetch`: downloaded once).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError
from ..core.jsonread import JSONReadError, loads, read_bytes
from ..core.validate import shown
from ..records.record_schema import EVAL_SPLITS
from . import extended, published
from .fetch import ENV_BENCHMARK, ENV_CACHE, ENV_URL, PUBLISHED_NAME, cache_dir, cached_published, published_file
from .published import ACC_RANGE, ArchResult

GET_PUBLISHED = (  # where a command's benchmark file comes from, for help texts
    f"${ENV_BENCHMARK}, else {PUBLISHED_NAME} from the xiusu/NAS-Bench-Macro GitHub repository, downloaded once "
    f"into a cache: ${ENV_CACHE}, else ~/.cache/nbm_lightning; ${ENV_URL} overrides the URL"
)
EXTENDED_PREFIX = "nbm_lightning"  # the "format" value of this project's extended files starts with it
Loaded = tuple[list[ArchResult], dict[str, Any]]  # a loader's answer: records (canonical codes, sorted) and the
# further fields of a Benchmark it gives (metric, accs, train_time_s, eval_acc, notes)
SUMMARY_TOLERANCE = 1e-6  # pp: how far mean_acc and std may be from the mean and population std (ddof=0) of test_acc.
# The published file stores both unrounded: over its 6561 records they equal numpy's float64 mean and std(ddof=0) of
# test_acc exactly (largest difference 0.0; the sample std, ddof=1, would be up to 0.19 pp off). 1e-6 pp leaves room
# for another summation order (float64 round-off, ~1e-14 pp) and refuses any edit a table (0.01 pp) could show.
LOADERS: dict[str, Callable[[dict[str, Any], str], Loaded]] = {  # format name -> loader (ValueError: not this format)
    "published": published.load_benchmark,
    "extended": extended.load_benchmark,
}


class BenchmarkError(UserError):
    """A benchmark file that cannot be read (one line, exit status 2 on the command line)."""


class BenchmarkFormatError(BenchmarkError, ValueError):
    """A file that is not a benchmark of a supported format, or breaks its invariants (also a ValueError)."""


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


def read(path: str | os.PathLike[str]) -> Loaded:
    """A benchmark file's records and further Benchmark fields, its bytes' sha256 among them (see `read_json`,
    `parse`)."""
    data, digest = read_json(path)
    _, records, fields = parse(data, str(path))
    return records, {**fields, "sha256": digest}


def read_json(path: str | os.PathLike[str], what: str = "benchmark file") -> tuple[Any, str]:
    """A JSON file parsed (bounded in size and depth: jsonread), and its bytes' sha256; BenchmarkError where it cannot
    be read (missing, not a regular file, too large), BenchmarkFormatError where it is not JSON."""
    try:
        text = read_bytes(path)
    except JSONReadError as err:
        raise BenchmarkError(f"cannot read {what}{str(err).removeprefix('cannot read')}") from None
    try:
        return loads(text, str(path)), hashlib.sha256(text).hexdigest()
    except JSONReadError as err:
        raise BenchmarkFormatError(f"{what} {err}") from None


def parse(data: Any, source: str) -> tuple[str, list[ArchResult], dict[str, Any]]:
    """The format of parsed JSON, its records and further Benchmark fields; BenchmarkFormatError naming `source`."""
    fmt = detect_format(data, source)
    try:
        records, fields = LOADERS[fmt](data, source)
    except ValueError as err:
        raise BenchmarkFormatError(str(err)) from None
    return fmt, records, fields


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


def consistency_problem(bench: Any) -> str | None:
    """The first row of a loaded `Benchmark` breaking an invariant every query relies on, in words, or None.

    Accuracies finite percentages (NaN in a curve: no curve for that run); best >= final; mean_acc and std the
    mean and population std of test_acc (SUMMARY_TOLERANCE); params and flops non-negative; times finite."""
    low, high = ACC_RANGE
    percent = f"finite percentages in {low:g}..{high:g}"
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below, without warnings
        mean, std = bench.test_acc.mean(axis=1), bench.test_acc.std(axis=1)
    summary = f"(to {SUMMARY_TOLERANCE:g} pp)"
    checks: list[tuple[str, np.ndarray, Any, Callable[[int], str]]] = [
        *((f"{split}_acc_{name}", acc, (np.isfinite(acc) & (acc >= low) & (acc <= high)).all(axis=1),
           lambda row: percent) for split in EVAL_SPLITS for name, acc in bench.split_accs(split).items()),
        ("mean_acc", bench.mean_acc, np.abs(bench.mean_acc - mean) <= SUMMARY_TOLERANCE,
         lambda row: f"{float(mean[row])!r}, the mean of its test_acc "
                     f"{shown(bench.test_acc[row].tolist())} {summary}"),
        ("std", bench.std, np.abs(bench.std - std) <= SUMMARY_TOLERANCE,
         lambda row: f"{float(std[row])!r}, the population std (ddof=0) of its test_acc {summary}"),
        ("params", bench.params, bench.params >= 0, lambda row: "a non-negative count"),
        ("flops", bench.flops, bench.flops >= 0, lambda row: "a non-negative count"),
    ]  # fmt: skip
    for split in EVAL_SPLITS:
        accs = bench.split_accs(split)
        if "best" in accs and "final" in accs:
            best, final, name = accs["best"], accs["final"], f"{split}_acc"
            ok = (best >= final).all(axis=1)
            checks.append((f"{name}_best", best, ok, lambda row, n=name: f"at least {n}_final"))
    if bench.train_time_s is not None:
        times = bench.train_time_s
        ok = (np.isfinite(times) & (times >= 0)).all(axis=1)
        checks.append(("train_time_s", times, ok, lambda row: "finite seconds >= 0"))
    if bench.eval_acc is not None:
        curve = bench.eval_acc
        ok = (np.isnan(curve) | ((curve >= low) & (curve <= high))).all(axis=(1, 2))
        checks.append(("an eval_acc curve", curve, ok, lambda row: f"{percent} (or NaN: no curve)"))
    for name, values, ok, expected in checks:
        bad = np.flatnonzero(~np.asarray(ok))
        if len(bad):
            row = int(bad[0])
            return f"{bench.codes[row]} has {name} {shown(values[row].tolist())}, expected {expected(row)}"
    return None
