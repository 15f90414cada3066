"""The published format (NAS-Bench-Macro's JSON), read and written: every code -> the record of its canonical code.

    {"00000000": {"test_acc": [92.1, 92.3, 92.0], "mean_acc": 92.13, "std": 0.12, "params": 1234, "flops": 5678},
     ...}                                  # FIELDS; accuracies percent, std the population std (ddof=0) of test_acc

`load_benchmark(data, source)` checks a file's parsed JSON and returns its records (`ArchResult`, one per canonical
code held); `to_dict(records)` builds the layout (the exporter's `--format original`). A partial file (an
`--allow-partial` export) holds the keys of fewer canonical codes. The value checks (`value_problem`, ACC_RANGE,
MAX_COUNT) are shared with the extended format. Problems are ValueErrors of one line naming the file, code and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ..arch.codes import all_codes, canonical, unique_codes
from ..core.validate import shown

FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")  # keys of one record in the published format
ACC_RANGE = (0.0, 100.0)  # accuracies are percent
MAX_COUNT = 2**53  # the largest params/flops accepted: exact in float64 (the space's largest network has < 2**23)


@dataclass(frozen=True)
class ArchResult:
    """The results of one canonical architecture."""

    code: str  # canonical code (the key a non-canonical query resolves to)
    test_acc: tuple[float, ...]  # test accuracy per seed (0, 1, 2...), percent
    mean_acc: float  # mean of test_acc as stored in the file, percent
    std: float  # population std (ddof=0) of test_acc as stored in the file, percentage points
    params: int  # number of parameters
    flops: int  # multiply-accumulates of conv and linear weights for one 3x32x32 image

    @classmethod
    def of_seeds(cls, code: str, acc: Sequence[float], params: int, flops: int) -> ArchResult:
        """The record of per-seed accuracies, with their mean and population std (ddof=0) as the published file."""
        values = np.asarray(acc, dtype=np.float64)
        return cls(code, tuple(acc), float(values.mean()), float(values.std()), params, flops)


@cache
def canonical_map() -> dict[str, str]:
    """Every one of the 6561 codes -> its canonical form (computed once)."""
    return {code: canonical(code) for code in all_codes()}


def load_benchmark(data: dict[str, Any], source: str) -> tuple[list[ArchResult], dict[str, Any]]:
    """A published file's records (canonical codes, sorted) and its further Benchmark fields (notes: one line where
    the file is partial); ValueError naming `source` where a key, a record or the invariant is wrong."""
    keys, expected = set(data), set(all_codes())
    if keys - expected:
        bad = sorted(keys - expected, key=str)[0]
        raise ValueError(f"{source!r} is not a NAS-Bench-Macro benchmark: unexpected key {bad!r}")
    if not keys:
        raise ValueError(f"{source!r} holds no architectures")
    canonicals = [code for code in unique_codes() if code in keys]
    records = [parse_record(data[code], code, source) for code in canonicals]
    if len({len(r.test_acc) for r in records}) > 1:
        raise ValueError(f"{source!r}: records have different numbers of seeds in test_acc")
    check_invariant(data, source)
    if len(keys) == len(expected):
        return records, {}
    missing = sorted(expected - keys)
    note = (
        f"{source} is partial: {len(canonicals)} of {len(unique_codes())} canonical codes "
        f"({len(missing)} of {len(expected)} arch codes missing, e.g. {missing[0]!r})"
    )
    return records, {"notes": (note,)}


def check_invariant(data: dict[str, Any], source: str) -> None:
    """ValueError unless every key holds the record of its canonical code, which is present too."""
    for code in data:
        canon = canonical_map()[code]
        if canon not in data:
            raise ValueError(
                f"{source!r} breaks the published invariant: key {code!r} is present, its canonical code {canon!r} not"
            )
        if data[code] != data[canon]:
            raise ValueError(
                f"{source!r} breaks the published invariant: key {code!r} differs from its canonical code {canon!r}"
            )


def parse_record(value: Any, code: str, source: str) -> ArchResult:
    """One published record, type- and range-checked (its mean and std are checked by Benchmark against test_acc);
    ValueError naming the code and the field."""

    def bad(why: str) -> ValueError:
        return ValueError(f"{source!r}: record {code!r} {why}")

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


def to_dict(records: Iterable[ArchResult]) -> dict[str, dict[str, Any]]:
    """The published layout of records of canonical codes: every code whose canonical code is among them -> its
    canonical code's record (one object shared by the keys of a class), in code order."""
    table = {
        r.code: {"test_acc": list(r.test_acc), "mean_acc": r.mean_acc, "std": r.std, "params": r.params,
                 "flops": r.flops}
        for r in records
    }  # fmt: skip
    return {code: table[canon] for code in all_codes() if (canon := canonical_map()[code]) in table}


def value_problem(
    name: str, value: Any, low: float, high: float, integer: bool = False, null: bool = False
) -> str | None:
    """None if `value` is a finite JSON number (an int if `integer`, never a bool; null if `null`) in low..high, else
    '<name> <value>: expected ...'."""
    if value is None and null:
        return None
    kind = isinstance(value, int) if integer else isinstance(value, (int, float))
    if kind and not isinstance(value, bool) and (integer or math.isfinite(value)) and low <= value <= high:
        return None
    what = f"{'an int' if integer else 'a finite number'} in {_bound(low)}..{_bound(high)}" + (
        " or null" if null else ""
    )
    return f"{name} {shown(value)}: expected {what}"


def _bound(value: float) -> str:
    """A range bound in words: ints as they are, floats short."""
    return f"{value:g}" if isinstance(value, float) else str(value)
