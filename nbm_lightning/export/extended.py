"""The extended export format: every run of the benchmark with its provenance (`FORMAT`, `VERSION`).

One JSON object, written by `python -m nbm_lightning.export --format extended`:

    {
      "format": "nbm_lightning.extended",      # FORMAT
      "version": 1,                             # VERSION; a reader refuses other versions
      "created_at": "2026-01-01T00:00:00+00:00",  # ISO UTC time of the export: at the top level (TOP_KEYS),
                                                  # beside "provenance", not inside it
      "provenance": {
        "recipe_hash": "0123456789ab",         # the one recipe every run was trained with
        "recipe": {...},                        # its fields (nbm_lightning.config.Recipe)
        "metric": "final",                      # the export's primary metric: "best" or "final"
        "metrics": {"test_acc_best": "...", "test_acc_final": "..."},  # what each accuracy means
        "sources": ["results/", "wandb:ENTITY/PROJECT/SWEEP"],  # what was read, in order
        "versions": {"torch": ["2.4.1"], "git_commit": ["abc..."], ...},  # distinct values seen per key
        "devices": {"NVIDIA H100 80GB HBM3": 11907},  # device name -> runs trained on it
        "numerics": [{"pipeline": "tensor", "channels_last": true, "compile": false, "sgd_impl": "fused",
                      "device": "NVIDIA H100 80GB HBM3", "runs": 11907}],  # runs per combination of the
                                                # settings that change only rounding or the augmentation stream
        "wandb_sweeps": ["abc123"],             # distinct W&B sweep ids of the runs used
        "counts": {"runs_read": .., "runs_used": .., "runs_rejected": .., "runs_superseded": ..,
                   "runs_missing": .., "runs_unused": .., "codes": .., "codes_incomplete": ..},
        "rejected": [{"source": .., "run_name": .., "reason": ..}],   # runs left out, and why
        "superseded": [{"source": .., "run_name": .., "reason": ..}], # older duplicates dropped
        "incomplete": {"00000000": [1, 2]},     # canonical code -> seeds it lacks (left out)
        "curves": {"encoding": "base64", "dtype": "<f4"}  # how run curves are stored (below)
      },
      "archs": {                                # keyed by CANONICAL code: look a code up by canonical(code)
        "01210210": {
          "params": 1234567, "flops": 12345678, "ptflops_macs": 12345688,  # ptflops_macs may be null
          "runs": [                             # one per seed, in seed order 0, 1, 2
            {"seed": 0, "test_acc_best": 93.1, "test_acc_final": 92.9, "best_epoch": 47,
             "epochs": 50, "train_time_s": 812.4, "run_name": "01210210-s0",
             "wandb_id": "a1b2c3d4", "wandb_url": "https://...", "finished_at": "2026-...",
             "curves": {"eval_acc": "<base64>", "lr": "<base64>", ...}}   # or null (W&B source)
          ]
        }
      }
    }

Accuracies are percent. `test_acc_best` is the best per-epoch TEST accuracy (model selection on the test
set: the published semantics; null for a recipe with a validation split); `test_acc_final` is the
accuracy after the last epoch (the honest figure).

Curves: a run's per-epoch series (epoch, lr, train_loss, train_acc, eval_loss, eval_acc, epoch_time_s;
one value per epoch) are each stored as the base64 text of little-endian float32 values. Plain JSON
lists were measured too slow: 11,907 runs x 7 curves x 50 epochs are 4.2 M numbers, which take ~2 s
to parse on two cores, while the base64 form loads in under 0.1 s and keeps float32 precision
(~7 significant digits, far below the noise of a single training). `decode_curves(run)` turns them
back into numpy arrays.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..atomic import atomic_write_text
from ..config import SEEDS
from ..record import RunRecord
from ..search_space import is_canonical

FORMAT = "nbm_lightning.extended"  # the "format" field
VERSION = 1  # the "version" field; bump on any incompatible change
CURVE_DTYPE = "<f4"  # numpy dtype of stored curve values (little-endian float32)
CURVE_ENCODING = {"encoding": "base64", "dtype": CURVE_DTYPE}  # provenance["curves"]
METRICS = {  # provenance["metrics"]: the definition of each stored accuracy
    "test_acc_best": (
        "max over epochs of the per-epoch test accuracy, percent (published semantics; selection on the test set)"
    ),
    "test_acc_final": "test accuracy after the last epoch, percent (no selection on the test set)",
}
TOP_KEYS = ("format", "version", "created_at", "provenance", "archs")  # required top-level keys
PROVENANCE_KEYS = ("recipe_hash", "recipe", "metric", "metrics", "sources", "versions", "devices", "counts", "curves")
ARCH_KEYS = ("params", "flops", "ptflops_macs", "runs")  # required per-architecture keys
RUN_KEYS = (
    "seed",
    "test_acc_best",
    "test_acc_final",
    "best_epoch",
    "epochs",
    "train_time_s",
    "run_name",
    "wandb_id",
    "wandb_url",
    "finished_at",
    "curves",
)  # required per-run keys


class RunLike(Protocol):
    """What `build` reads from a run (nbm_lightning.export.sources.Run)."""

    record: RunRecord  # the run
    curves: Mapping[str, str] | None  # its curves, already encoded with encode_curve


def encode_curve(values: Sequence[float | None]) -> str:
    """A curve as base64 little-endian float32 (None -> NaN)."""
    array = np.asarray([math.nan if v is None else v for v in values], dtype=CURVE_DTYPE)
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_curve(text: str) -> np.ndarray:
    """A stored curve back as a float32 numpy array."""
    return np.frombuffer(base64.b64decode(text), dtype=CURVE_DTYPE)


def decode_curves(run: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """All curves of one stored run as numpy arrays (None where the run has none)."""
    curves = run.get("curves")
    return None if curves is None else {name: decode_curve(text) for name, text in curves.items()}


def build(groups: Mapping[str, Sequence[RunLike]], provenance: Mapping[str, Any], created_at: str) -> dict[str, Any]:
    """The extended document from canonical code -> its runs in seed order, and the provenance block."""
    archs = {code: _arch(runs) for code, runs in sorted(groups.items())}
    meta = {**provenance, "metrics": METRICS, "curves": CURVE_ENCODING}
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
        "best_epoch": r.best_epoch, "epochs": r.epochs_completed, "train_time_s": finite_or_none(r.train_time_s),
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
    """Read and validate an extended file; ValueError naming the file where it is not one."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as err:  # ValueError: bad JSON or bad UTF-8
        raise ValueError(f"cannot read extended export {str(path)!r}: {err}") from None
    validate(data, str(path))
    return data


def validate(data: Any, where: str) -> None:
    """Raise ValueError (naming `where`) unless `data` is a well-formed extended document."""
    problem = _problem(data)
    if problem:
        raise ValueError(f"{where!r} is not a valid {FORMAT} v{VERSION} file: {problem}")


def _problem(data: Any) -> str | None:
    """The first structural problem of a document, or None."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"no 'format': {FORMAT!r}"
    if data.get("version") != VERSION:
        return f"version {data.get('version')!r} (this reader knows {VERSION})"
    missing = [k for k in TOP_KEYS if k not in data] or [k for k in PROVENANCE_KEYS if k not in data["provenance"]]
    if missing:
        return f"missing key(s) {missing}"
    if not isinstance(data["archs"], dict):
        return "'archs' is not a mapping"
    return next(filter(None, (_arch_problem(code, arch) for code, arch in data["archs"].items())), None)


def _arch_problem(code: str, arch: Any) -> str | None:
    """The first problem of one architecture entry, or None."""
    if not is_canonical(code):
        return f"key {code!r} is not a canonical code"
    if not isinstance(arch, dict) or any(k not in arch for k in ARCH_KEYS):
        return f"{code}: expected keys {list(ARCH_KEYS)}"
    runs = arch["runs"]
    if not isinstance(runs, list) or [r.get("seed") if isinstance(r, dict) else None for r in runs] != list(SEEDS):
        return f"{code}: runs must be one per seed in order {list(SEEDS)}"
    bad = next((r for r in runs if any(k not in r for k in RUN_KEYS) or not _is_number(r["test_acc_final"])), None)
    return (
        None
        if bad is None
        else f"{code} seed {bad['seed']}: expected keys {list(RUN_KEYS)} and a numeric test_acc_final"
    )


def _is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
