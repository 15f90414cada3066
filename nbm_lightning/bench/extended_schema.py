"""The extended export format's schema and its validator (`FORMAT`, `VERSION`); `extended` writes and loads it.

One JSON object, written by `python -m nbm_lightning.export --format extended`:

    {
      "format": "nbm_lightning.extended",      # FORMAT
      "version": 2,                             # VERSION; this reader also reads v1 (READ_VERSIONS), refuses others
      "created_at": "2026-01-01T00:00:00+00:00",  # ISO UTC time of the export: at the top level (TOP_KEYS),
                                                  # beside "provenance", not inside it
      "provenance": {
        "recipe_hash": "0123456789ab",         # the one recipe every run was trained with
        "recipe": {...},                        # its fields (nbm_lightning.records.recipe.Recipe)
        "metric": "final",                      # the export's primary metric: "best" or "final"
        "eval_split": "test",                   # the split evaluated after every epoch: "test" (published) or
                                                # "val" (a recipe with val_size > 0); best_epoch and the curves
                                                # are of this split
        "metrics": {"test_acc_best": "...", "test_acc_final": "...", "val_acc_best": "...", ...},  # meanings
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
            {"seed": 0, "test_acc_best": 93.1, "test_acc_final": 92.9, "val_acc_best": null,
             "val_acc_final": null, "best_epoch": 47,
             "epochs": 50, "train_time_s": 812.4, "run_name": "01210210-s0",
             "wandb_id": "a1b2c3d4", "wandb_url": "https://...", "finished_at": "2026-...",
             "curves": {"eval_acc": "<base64>", "lr": "<base64>", ...}}   # or null (W&B source)
          ]
        }
      }
    }

Accuracies are percent. `test_acc_best` is the best per-epoch TEST accuracy (model selection on the test
set: the published semantics; null for a recipe with a validation split); `test_acc_final` is the
accuracy after the last epoch (the honest figure). With a validation split ("eval_split": "val") the test set
is evaluated once, after the last epoch, and the validation split after every epoch: `val_acc_best` (best
per-epoch validation accuracy), `val_acc_final` (after the last epoch), `best_epoch` and the curves are of the
validation split; with "eval_split": "test" both val_acc fields are null.

Version 2 added "eval_split" and the val_acc fields. A v1 file is still read (exports are costly to redo and
their sources may be gone): its eval split follows its recipe's val_size, and it holds no validation accuracies
(v1 dropped them), only the validation curves of a validation-split recipe.

Curves: a run's per-epoch series (epoch, lr, train_loss, train_acc, eval_loss, eval_acc, epoch_time_s;
one value per epoch) are each stored as the base64 text of little-endian float32 values. Plain JSON
lists were measured too slow: 11,907 runs x 7 curves x 50 epochs are 4.2 M numbers, which take ~2 s
to parse on two cores, while the base64 form loads in under 0.1 s and keeps float32 precision
(~7 significant digits, far below the noise of a single training). `decode_curves(run)` turns them
back into numpy arrays.

This module owns the format: the exporter writes through `build` and `write`; `load` reads a file as JSON,
`load_benchmark` as the records and columns of a `Benchmark` (and of the export's W&B Table).

`validate` (run by `write`, `load` and `load_benchmark`) refuses, in one line naming the
code, seed and value: accuracies outside 0..100 or not finite, a best below its final (test or val), val_acc
fields in an "eval_split": "test" file or a test_acc_best in a "val" one, an unknown eval_split, counts
(params, flops, ptflops_macs) that are not ints in 0..MAX_COUNT, best_epoch past the epochs, an unknown metric,
other curve encodings, curves that are not base64 of whole float32 values, of more values than the run's epochs
or of two lengths in one file (one recipe: one number of epochs), eval_acc curves outside 0..100.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ..arch.codes import unique_codes
from ..core.validate import shown
from ..records.recipe import SEEDS
from ..records.run_record import METRIC_FIELDS
from .published import ACC_RANGE, MAX_COUNT, value_problem

FORMAT = "nbm_lightning.extended"  # the "format" field
VERSION = 2  # the "version" field written; bump on any incompatible change
READ_VERSIONS = (1, 2)  # versions this reader reads (v1: no eval_split, no val_acc fields; module docstring)
CURVE_DTYPE = "<f4"  # numpy dtype of stored curve values (little-endian float32)
CURVE_ENCODING = {"encoding": "base64", "dtype": CURVE_DTYPE}  # provenance["curves"]
METRICS = {  # provenance["metrics"]: the definition of each stored accuracy
    "test_acc_best": (
        "max over epochs of the per-epoch test accuracy, percent (published semantics; selection on the test set)"
    ),
    "test_acc_final": "test accuracy after the last epoch, percent (no selection on the test set)",
    "val_acc_best": "max over epochs of the per-epoch validation accuracy, percent (null without a validation split)",
    "val_acc_final": "validation accuracy after the last epoch, percent (null without a validation split)",
}
SPLITS = ("test", "val")  # the splits a run may hold accuracies of (RunRecord.eval_split values)
SPLIT_FIELDS = {  # split -> metric -> the per-run key of its accuracy
    "test": METRIC_FIELDS,
    "val": {"best": "val_acc_best", "final": "val_acc_final"},
}
TOP_KEYS = ("format", "version", "created_at", "provenance", "archs")  # required top-level keys
PROVENANCE_KEYS = ("recipe_hash", "recipe", "metric", "metrics", "sources", "versions", "devices", "counts", "curves")
PROVENANCE_KEYS_V2 = ("eval_split",)  # required from version 2 on
ARCH_KEYS = ("params", "flops", "ptflops_macs", "runs")  # required per-architecture keys
RUN_KEYS = (
    "seed",
    "test_acc_best",
    "test_acc_final",
    "val_acc_best",
    "val_acc_final",
    "best_epoch",
    "epochs",
    "train_time_s",
    "run_name",
    "wandb_id",
    "wandb_url",
    "finished_at",
    "curves",
)  # required per-run keys (v1: without the val_acc fields: V2_RUN_KEYS)
V2_RUN_KEYS = ("val_acc_best", "val_acc_final")  # required from version 2 on
TEXT_KEYS = ("run_name", "wandb_id", "wandb_url", "finished_at")  # per-run keys holding a string or null
MAX_EPOCHS = 100_000  # the largest number of epochs accepted (the published recipe trains 50)


def encode_curve(values: Sequence[float | None]) -> str:
    """A curve as base64 little-endian float32 (None -> NaN)."""
    array = np.asarray([math.nan if v is None else v for v in values], dtype=CURVE_DTYPE)
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_curve(text: str) -> np.ndarray:
    """A stored curve back as a float32 numpy array; ValueError unless it is base64 of whole float32 values."""
    if not isinstance(text, str):
        raise TypeError(f"expected base64 text, got a {type(text).__name__}")
    raw = base64.b64decode(text, validate=True)
    if len(raw) % np.dtype(CURVE_DTYPE).itemsize:
        raise ValueError(f"{len(raw)} bytes are not whole {CURVE_DTYPE} values")
    return np.frombuffer(raw, dtype=CURVE_DTYPE)


def decode_curves(run: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """All curves of one stored run as numpy arrays (None where the run has none)."""
    curves = run.get("curves")
    return None if curves is None else {name: decode_curve(text) for name, text in curves.items()}


def eval_split(data: Mapping[str, Any]) -> str:
    """The split a validated document's best_epoch and curves are of (v1 files: by their recipe's val_size)."""
    return data["provenance"]["eval_split"] if data["version"] >= 2 else recipe_split(data["provenance"]["recipe"])


def recipe_split(recipe: Any) -> str:
    """The split a recipe (its fields) evaluates after every epoch: "val" where it holds out val_size > 0 images."""
    val_size = recipe.get("val_size", 0) if isinstance(recipe, Mapping) else 0
    return "val" if type(val_size) is int and val_size > 0 else "test"


def validate(data: Any, where: str) -> None:
    """Raise ValueError (naming `where`) unless `data` is a well-formed extended document."""
    problem = _problem(data)
    if problem:
        version = data.get("version") if isinstance(data, dict) and data.get("version") in READ_VERSIONS else VERSION
        raise ValueError(f"{where!r} is not a valid {FORMAT} v{version} file: {problem}")


def _problem(data: Any) -> str | None:
    """The first problem of a document, or None."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"no 'format': {FORMAT!r}"
    version = data.get("version")
    if type(version) is not int or version not in READ_VERSIONS:
        return f"version {shown(version)} (this reader knows {', '.join(map(str, READ_VERSIONS))})"
    missing = [k for k in TOP_KEYS if k not in data]
    if missing or not isinstance(data["provenance"], dict):
        return f"missing key(s) {missing}" if missing else "'provenance' is not an object"
    provenance = data["provenance"]
    missing = [k for k in PROVENANCE_KEYS + (PROVENANCE_KEYS_V2 if version >= 2 else ()) if k not in provenance]
    if missing:
        return f"missing key(s) {missing}"
    if version >= 2 and (not isinstance(provenance["eval_split"], str) or provenance["eval_split"] not in SPLITS):
        return f"eval_split {shown(provenance['eval_split'])}: expected one of {', '.join(SPLITS)}"
    split = eval_split(data)
    metric = provenance["metric"]
    if not isinstance(metric, str) or metric not in METRIC_FIELDS:
        return f"unknown metric {shown(metric)}: expected one of {', '.join(METRIC_FIELDS)}"
    if provenance["curves"] != CURVE_ENCODING:
        return f"curves stored as {shown(provenance['curves'])}: this reader decodes {CURVE_ENCODING}"
    if not isinstance(data["archs"], dict):
        return "'archs' is not an object"
    lengths: set[int] = set()  # curve lengths seen: one per file (one recipe, one number of epochs)
    for code, arch in data["archs"].items():
        problem = _arch_problem(code, arch, _RunRules(METRIC_FIELDS[metric], split, version), lengths)
        if problem:
            return problem
    return None


@dataclass(frozen=True)
class _RunRules:
    """What a file's runs must hold."""

    primary: str  # the per-run key of the primary metric (never null)
    split: str  # the file's eval split: "test" or "val"
    version: int  # the file's version (v1 runs have no val_acc fields)


def _arch_problem(code: str, arch: Any, rules: _RunRules, lengths: set[int]) -> str | None:
    """The first problem of one architecture entry, or None."""
    if code not in canonical_codes():
        return f"key {shown(code)} is not a canonical code"
    if not isinstance(arch, dict) or any(k not in arch for k in ARCH_KEYS):
        return f"{code}: expected keys {list(ARCH_KEYS)}"
    problem = (
        value_problem("params", arch["params"], 0, MAX_COUNT, integer=True)
        or value_problem("flops", arch["flops"], 0, MAX_COUNT, integer=True)
        or value_problem("ptflops_macs", arch["ptflops_macs"], 0, MAX_COUNT, integer=True, null=True)
    )
    if problem:
        return f"{code}: {problem}"
    runs = arch["runs"]
    seeds = [r.get("seed") if isinstance(r, dict) else None for r in runs] if isinstance(runs, list) else None
    if seeds is None or any(type(s) is not int for s in seeds) or seeds != list(SEEDS):
        return f"{code}: runs must be one per seed in order {list(SEEDS)}"
    for run in runs:
        problem = _run_problem(run, rules, lengths)
        if problem:
            return f"{code} seed {run['seed']}: {problem}"
    return None


def _run_problem(run: dict[str, Any], rules: _RunRules, lengths: set[int]) -> str | None:
    """The first problem of one run entry, or None."""
    keys = RUN_KEYS if rules.version >= 2 else tuple(k for k in RUN_KEYS if k not in V2_RUN_KEYS)
    if any(k not in run for k in keys):
        return f"expected keys {list(keys)}"
    best, final, epochs = run["test_acc_best"], run["test_acc_final"], run["epochs"]
    problem = (
        value_problem("test_acc_best", best, *ACC_RANGE, null=rules.primary != "test_acc_best")
        or value_problem("test_acc_final", final, *ACC_RANGE)
        or value_problem("epochs", epochs, 0, MAX_EPOCHS, integer=True, null=True)
        or value_problem("best_epoch", run["best_epoch"], 0, MAX_EPOCHS if epochs is None else epochs - 1, True, True)
        or value_problem("train_time_s", run["train_time_s"], 0, math.inf, null=True)
        or next((f"{k} {shown(run[k])}: expected a string or null" for k in TEXT_KEYS if not _text(run[k])), None)
    )
    if problem:
        return problem
    if best is not None and best < final:
        return f"test_acc_best {best!r} is below test_acc_final {final!r} (the best epoch includes the last)"
    problem = _split_problem(run, rules.split)
    if problem:
        return problem
    return None if run["curves"] is None else _curves_problem(run["curves"], epochs, lengths)


def _split_problem(run: dict[str, Any], split: str) -> str | None:
    """The first problem of a run's accuracies against the file's eval split (val_acc fields: v2 only), or None."""
    if split == "val" and run["test_acc_best"] is not None:
        return f"test_acc_best {run['test_acc_best']!r} with eval_split 'val': the test set is evaluated once (null)"
    best, final = run.get("val_acc_best"), run.get("val_acc_final")
    if split == "test" and (best is not None or final is not None):
        return f"val_acc_best {shown(best)} / val_acc_final {shown(final)} with eval_split 'test': expected null"
    problem = value_problem("val_acc_best", best, *ACC_RANGE, null=True) or value_problem(
        "val_acc_final", final, *ACC_RANGE, null=True
    )
    if problem:
        return problem
    if best is not None and final is not None and best < final:
        return f"val_acc_best {best!r} is below val_acc_final {final!r} (the best epoch includes the last)"
    return None


def _curves_problem(curves: Any, epochs: int | None, lengths: set[int]) -> str | None:
    """The first problem of one run's curves (base64 float32, one length per file, at most `epochs`), or None."""
    if not isinstance(curves, dict):
        return f"curves {shown(curves)}: expected an object of base64 texts or null"
    for name, text in curves.items():
        try:
            values = decode_curve(text)
        except (TypeError, ValueError) as err:  # binascii.Error is a ValueError
            return f"curve {shown(name)} is not base64 of {CURVE_DTYPE} values ({' '.join(str(err).split())[:80]})"
        lengths.add(len(values))
        if len(lengths) > 1 or (epochs is not None and len(values) > epochs):
            seen = f"curves of {sorted(lengths)} epochs in one file" if len(lengths) > 1 else f"{epochs} epochs"
            return f"curve {shown(name)} holds {len(values)} values ({seen})"
        if name == "eval_acc" and not np.all(np.isnan(values) | ((values >= ACC_RANGE[0]) & (values <= ACC_RANGE[1]))):
            return f"curve 'eval_acc' holds values outside {ACC_RANGE[0]:g}..{ACC_RANGE[1]:g} %"
    return None


@cache
def canonical_codes() -> frozenset[str]:
    """The 3969 canonical codes (a set, built once)."""
    return frozenset(unique_codes())


def _text(value: Any) -> bool:
    """True for a string or null."""
    return value is None or isinstance(value, str)
