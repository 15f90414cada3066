"""The extended export format: every run of the benchmark with its provenance, written and loaded here.

`build` and `write` make the document (`python -m nbm_lightning.export --format extended`); `load` reads it back
through the validator and `load_benchmark` turns it into a benchmark's rows. The schema (every key, its meaning,
the curve encoding) and the validator are in `extended_schema`; its names are re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.jsonread import JSONReadError, read_json
from ..records.run_record import METRIC_FIELDS, RunRecord
from .extended_schema import (
    ARCH_KEYS,
    CURVE_DTYPE,
    CURVE_ENCODING,
    FORMAT,
    MAX_EPOCHS,
    METRICS,
    PROVENANCE_KEYS,
    PROVENANCE_KEYS_V2,
    READ_VERSIONS,
    RUN_KEYS,
    SPLIT_FIELDS,
    SPLITS,
    TEXT_KEYS,
    TOP_KEYS,
    VERSION,
    canonical_codes,
    decode_curve,
    decode_curves,
    encode_curve,
    eval_split,
    recipe_split,
    validate,
)
from .published import ArchResult

__all__ = [  # this module's own names and the schema's, re-exported (`extended.FORMAT`, `extended.validate`)
    "RunLike",
    "build",
    "finite_or_none",
    "load",
    "load_benchmark",
    "write",
    "ARCH_KEYS",
    "CURVE_DTYPE",
    "CURVE_ENCODING",
    "FORMAT",
    "MAX_EPOCHS",
    "METRICS",
    "PROVENANCE_KEYS",
    "PROVENANCE_KEYS_V2",
    "READ_VERSIONS",
    "RUN_KEYS",
    "SPLIT_FIELDS",
    "SPLITS",
    "TEXT_KEYS",
    "TOP_KEYS",
    "VERSION",
    "canonical_codes",
    "decode_curve",
    "decode_curves",
    "encode_curve",
    "eval_split",
    "recipe_split",
    "validate",
]  # fmt: skip


class RunLike(Protocol):
    """What `build` reads from a run (nbm_lightning.export.sources.Run)."""

    record: RunRecord  # the run
    curves: Mapping[str, str] | None  # its curves, already encoded with encode_curve


def build(groups: Mapping[str, Sequence[RunLike]], provenance: Mapping[str, Any], created_at: str) -> dict[str, Any]:
    """The extended document from canonical code -> its runs in seed order, and the provenance block."""
    archs = {code: _arch(runs) for code, runs in sorted(groups.items())}
    split = recipe_split(provenance.get("recipe"))  # the recipe decides (a run rebuilt from a W&B summary has no split)
    meta = {**provenance, "eval_split": split, "metrics": METRICS, "curves": CURVE_ENCODING}
    return {"format": FORMAT, "version": VERSION, "created_at": created_at, "provenance": meta, "archs": archs}


def _arch(runs: Sequence[RunLike]) -> dict[str, Any]:
    """One architecture's entry."""
    first = runs[0].record
    macs = next((r.record.ptflops_macs for r in runs if r.record.ptflops_macs is not None), None)
    return {"params": first.params, "flops": first.flops, "ptflops_macs": macs, "runs": [_run(r) for r in runs]}


def _run(run: RunLike) -> dict[str, Any]:
    """One run's entry."""
    r, wandb = run.record, run.record.wandb or {}
    return {
        "seed": r.seed, "test_acc_best": r.test_acc_best, "test_acc_final": r.test_acc_final,
        "val_acc_best": r.val_acc_best, "val_acc_final": r.val_acc_final, "best_epoch": r.best_epoch,
        "epochs": r.epochs_completed, "train_time_s": finite_or_none(r.train_time_s),
        "run_name": r.run_name, "wandb_id": wandb.get("id"), "wandb_url": wandb.get("url"),
        "finished_at": r.finished_at, "curves": None if run.curves is None else dict(run.curves),
    }  # fmt: skip


def finite_or_none(value: Any) -> float | None:
    """A finite number as a float, else None (missing, not a number, NaN/inf: strict JSON has no NaN)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def write(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Validate and atomically write an extended document as compact, strict JSON."""
    validate(data, str(path))
    return atomic_write_text(path, json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n")


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate an extended file (bounded JSON, regular files only); ValueError naming the file otherwise."""
    try:
        data = read_json(path)
    except JSONReadError as err:
        raise ValueError(f"cannot read extended export: {err}") from None
    validate(data, str(path))
    return data


def load_benchmark(data: dict[str, Any], source: str) -> tuple[list[ArchResult], dict[str, Any]]:
    """A validated document's records (its primary metric's test accuracies, canonical codes sorted) and its further
    Benchmark fields: the metric, every test and validation accuracy it holds, the eval split, training times and
    eval_acc curves; ValueError otherwise."""
    validate(data, source)
    metric = data["provenance"]["metric"]
    key = METRIC_FIELDS[metric]
    archs = sorted(data["archs"].items())  # row order of Benchmark.from_records
    records = [
        ArchResult.of_seeds(code, [r[key] for r in arch["runs"]], arch["params"], arch["flops"]) for code, arch in archs
    ]
    if not records:
        raise ValueError(f"{source!r} holds no architectures")
    runs = [arch["runs"] for _, arch in archs]
    test, val = ({name: column for name, field_ in SPLIT_FIELDS[split].items() if (column := _run_column(runs, field_))
                  is not None} for split in SPLITS)  # fmt: skip
    columns = {"accs": test, "val_accs": val, "eval_split": eval_split(data)}
    columns |= {"train_time_s": _run_column(runs, "train_time_s"), "eval_acc": _eval_curves(runs)}
    return records, {"metric": metric, **columns}


def _run_column(runs: list[list[dict[str, Any]]], key: str) -> np.ndarray | None:
    """(archs, seeds) values of one per-run field, read-only; None unless every run has a finite number."""
    values = [[run.get(key) for run in arch] for arch in runs]
    if not all(finite_or_none(v) is not None for arch in values for v in arch):
        return None
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


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
    curves = run.get("curves") or {}
    return decode_curve(curves["eval_acc"]) if "eval_acc" in curves else np.empty(0)
