"""Queries of a cost file: one network's cost (`cost`) and the join of many codes with a file (`join`; no torch)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..arch.codes import canonical
from ..core.errors import UserError
from ..core.validate import check_choice, check_int, shown
from .costfile import CostFile, CostFileError, load

MEASURES: dict[str, str] = {  # measure -> what it is, with its unit
    "latency_ms": "inference time per call at batch_size (eval mode, inference mode), ms",
    "train_step_ms": "one training step (forward, loss, backward, SGD step) at the file's train_batch_size, ms",
    "peak_memory_bytes": "peak bytes allocated during inference at batch_size (CUDA files only)",
    "train_peak_memory_bytes": "peak bytes allocated during the training steps (CUDA files with a train step)",
    "weights_bytes": "bytes of the state_dict's tensors (parameters and BatchNorm buffers)",
    "params": "number of parameters",
    "flops": "conv + linear weight MACs per 3x32x32 image (the published flops)",
}
STATS = ("median", "q1", "q3", "iqr")  # of the timed measures (latency_ms, train_step_ms)
_CACHE: dict[str, tuple[tuple[int, int, int], CostFile]] = {}  # resolved path -> (file identity, CostFile)
_CACHE_SIZE = 4


class CostNotFound(UserError, KeyError):
    """A valid code whose canonical network a cost file does not hold: a KeyError, and one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def open_cost_file(file: str | os.PathLike[str] | CostFile) -> CostFile:
    """A CostFile, read once per version of the file on disk (re-read and re-checked when it changes)."""
    if isinstance(file, CostFile):
        return file
    path = Path(file)
    try:
        info = path.stat()
    except OSError as err:
        raise CostFileError(f"cannot read cost file {shown(str(path))}: {err.strerror or err}") from None
    key, stamp = str(path.resolve()), (info.st_ino, info.st_size, info.st_mtime_ns)
    if key in _CACHE and _CACHE[key][0] == stamp:
        return _CACHE[key][1]
    loaded = load(path)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (stamp, loaded)
    return loaded


def value(
    cost_file: CostFile, code: object, measure: str = "latency_ms", batch_size: int = 1, stat: str = "median"
) -> float | int:
    """`measure` of the canonical network of `code` in a loaded file (a float for times, else an int)."""
    check_choice("measure", measure, tuple(MEASURES))
    check_choice("stat", stat, STATS)
    check_int("batch_size", batch_size, 1)
    key = canonical(code)
    entry = cost_file.costs.get(key)
    if entry is None:
        raise CostNotFound(
            f"{cost_file.source}: no cost of {key}" + ("" if key == code else f" (canonical form of {code})")
            + f": the file holds {len(cost_file.costs)} codes"
        )  # fmt: skip
    settings = cost_file.settings
    if measure in ("latency_ms", "peak_memory_bytes") and batch_size not in settings.batch_sizes:
        raise CostFileError(f"{cost_file.source}: no {measure} at batch_size {batch_size} (measured at "
                            f"{', '.join(map(str, settings.batch_sizes))})")  # fmt: skip
    found = {
        "latency_ms": entry.latency[batch_size] if measure == "latency_ms" else None,
        "train_step_ms": entry.train_step,
        "peak_memory_bytes": None if entry.peak_memory is None else entry.peak_memory.get(batch_size),
        "train_peak_memory_bytes": entry.train_peak_memory,
        "weights_bytes": entry.weights_bytes,
        "params": entry.params,
        "flops": entry.flops,
    }[measure]
    if found is None:
        raise CostFileError(
            f"{cost_file.source}: no {measure} in this file (device {settings.device}, train step "
            f"{'on' if settings.train_step else 'off'}): {MEASURES[measure]}"
        )
    if measure.endswith("_ms"):
        return found.iqr if stat == "iqr" else getattr(found, stat)
    return found


def cost(
    code: object,
    measure: str = "latency_ms",
    *,
    file: str | os.PathLike[str] | CostFile,
    batch_size: int = 1,
    stat: str = "median",
) -> float | int:
    """The cost of one network from a cost file: `cost("12012012", "latency_ms", file="results/cost_cpu.json")`."""
    return value(open_cost_file(file), code, measure, batch_size, stat)


def join(
    codes: Iterable[str],
    measure: str = "latency_ms",
    *,
    file: str | os.PathLike[str] | CostFile,
    batch_size: int = 1,
    stat: str = "median",
    counts: Mapping[str, tuple[int, int]] | None = None,
    skip_missing: bool = False,
) -> dict[str, float | int]:
    """canonical code -> `measure` for each of `codes` (a benchmark's architectures); CostNotFound where the file
    lacks one unless `skip_missing`. `counts` (code -> (params, flops), a benchmark's own) must agree with the
    file's: a file measured on another network definition is refused, not joined."""
    cost_file = open_cost_file(file)
    out: dict[str, float | int] = {}
    for code in codes:
        key = canonical(code)
        entry = cost_file.costs.get(key)
        if entry is None and skip_missing:
            continue
        if (
            counts is not None
            and entry is not None
            and key in counts
            and tuple(counts[key])
            != (
                entry.params,
                entry.flops,
            )
        ):
            raise CostFileError(
                f"{cost_file.source}: {key} has params, flops {entry.params}, {entry.flops}, the benchmark "
                f"{tuple(counts[key])}: not the same network"
            )
        out[key] = value(cost_file, key, measure, batch_size, stat)
    return out
