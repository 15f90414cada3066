"""The benchmark as a W&B artifact: the exported file and a W&B Table of it, one row per canonical code.

`log_benchmark(path, target, provenance)` starts a run (job type `export`) in ENTITY/PROJECT (online with
credentials, else offline: `wandb sync` uploads it later) and logs a versioned artifact of type `benchmark`
holding the export file and the Table `benchmark` (`runkeys.table_columns`: code, layer_1..layer_8, params,
flops, acc_seed_0..2, mean_acc, std), with the export's provenance as metadata. The run's summary holds
the Table too, for the workspace's accuracy histogram. The Table is read back from the written file, so its
values are the export's: the original format's `test_acc`, `mean_acc` and `std`; for the extended format the
accuracies of its primary metric, their mean and population std.

Fetch it later: `wandb.Api().artifact("ENTITY/PROJECT/NAME:latest").download()`, then `Benchmark.load(file)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..arch.codes import is_canonical
from ..bench import extended
from ..core.errors import UserError
from ..records.recipe import SEEDS
from ..records.run_record import METRIC_FIELDS
from ..records.runkeys import BENCHMARK_TABLE, BENCHMARK_TYPE, EXPORT_JOB_TYPE, layer_ops, table_columns
from ..records.tracking import WandbPath, start_run

NAME_PREFIX = "nas-bench-macro"  # artifact names: <prefix>-<format>[-<metric>-<recipe hash>]
META_KEYS = ("recipe_hash", "recipe", "metric", "counts", "wandb_sweeps", "versions", "sources", "devices", "numerics")
ORIGINAL_FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")  # one record of the original format


def read_export(path: str | Path) -> tuple[str, list[list[Any]], dict[str, Any] | None]:
    """(format, Table rows in code order, the file's provenance or None) of an export file; UserError if not one."""
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as err:
        raise UserError(f"cannot read export file {str(path)!r}: {err.strerror or err}") from None
    except ValueError as err:
        raise UserError(f"export file {str(path)!r} is not JSON: {err}") from None
    if isinstance(data, dict) and data.get("format") == extended.FORMAT:
        try:
            extended.validate(data, str(path))
        except ValueError as err:
            raise UserError(str(err)) from None
        return "extended", _extended_rows(data), data["provenance"]
    return "original", _original_rows(data, str(path)), None


def row(code: str, params: int, flops: int, acc: list[float], mean: float, std: float) -> list[Any]:
    """One Table row in `table_columns` order."""
    return [code, *layer_ops(code), params, flops, *acc, mean, std]


def _original_rows(data: Any, source: str) -> list[list[Any]]:
    """The canonical codes of a file in the published layout."""
    entries = data.items() if isinstance(data, dict) else ()
    canonical = sorted((code, rec) for code, rec in entries if isinstance(code, str) and _is_canonical(code))
    bad = next((code for code, rec in canonical if not _original_entry(rec)), None)
    if not canonical or bad is not None:
        why = f"entry {bad!r} lacks {list(ORIGINAL_FIELDS)} for {len(SEEDS)} seeds" if bad else "no canonical code"
        raise UserError(f"{source!r} is not a benchmark export: {why}")
    return [row(code, r["params"], r["flops"], r["test_acc"], r["mean_acc"], r["std"]) for code, r in canonical]


def _is_canonical(code: str) -> bool:
    try:
        return is_canonical(code)
    except (TypeError, ValueError):
        return False


def _original_entry(rec: Any) -> bool:
    """True for a published-layout record of every seed."""
    if not isinstance(rec, dict) or any(k not in rec for k in ORIGINAL_FIELDS):
        return False
    return isinstance(rec["test_acc"], list) and len(rec["test_acc"]) == len(SEEDS)


def _extended_rows(data: Mapping[str, Any]) -> list[list[Any]]:
    """One row per architecture of an extended file, accuracies of its primary metric."""
    key, rows = METRIC_FIELDS[data["provenance"]["metric"]], []
    for code, arch in sorted(data["archs"].items()):
        acc = [run[key] for run in arch["runs"]]
        values = np.asarray(acc, dtype=np.float64)
        rows.append(row(code, arch["params"], arch["flops"], acc, float(values.mean()), float(values.std())))
    return rows


def metadata(fmt: str, path: str | Path, provenance: Mapping[str, Any] | None, codes: int) -> dict[str, Any]:
    """The artifact's metadata: format, file, package version, codes, and the export's provenance (no run lists)."""
    known = {key: provenance[key] for key in META_KEYS if key in (provenance or {})}
    return {"format": fmt, "file": Path(path).name, "nbm_lightning": __version__, "codes": codes, **known}


def artifact_name(fmt: str, meta: Mapping[str, Any]) -> str:
    """`nas-bench-macro-<format>-<metric>-<recipe hash>` (format only where the file does not say)."""
    parts = [NAME_PREFIX, fmt, *(str(meta[k]) for k in ("metric", "recipe_hash") if meta.get(k))]
    return "-".join(parts)


def log_benchmark(path: str | Path, target: WandbPath, provenance: Mapping[str, Any] | None = None) -> str:
    """Log an export file and its Table as an artifact of a new run in `target`; returns the artifact's name.

    `provenance`: the export's (formats.provenance), else the file's own (extended format) or none (original).
    """
    fmt, rows, own = read_export(path)
    meta = metadata(fmt, path, provenance if provenance is not None else own, len(rows))
    name = artifact_name(fmt, meta)
    try:
        _log(path, target, name, meta, rows)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 (network, auth, server: one line, not a traceback)
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"logging artifact {name} to {target} failed: {type(err).__name__}: {first}") from None
    return name


def _log(path: str | Path, target: WandbPath, name: str, meta: Mapping[str, Any], rows: list[list[Any]]) -> None:
    """The W&B calls: a run, the Table in its summary, the artifact (file + Table), finish."""
    import wandb

    config = {key: meta.get(key) for key in ("format", "metric", "recipe_hash", "codes")}
    run = start_run(target, EXPORT_JOB_TYPE, f"export-{name}", config)
    try:
        artifact = wandb.Artifact(name, type=BENCHMARK_TYPE, metadata=dict(meta), description=_description(meta))
        artifact.add_file(str(path))
        artifact.add(wandb.Table(columns=table_columns(SEEDS), data=rows), BENCHMARK_TABLE)
        run.log_artifact(artifact)
        run.log({BENCHMARK_TABLE: wandb.Table(columns=table_columns(SEEDS), data=rows)})  # its own: no shared state
    finally:
        run.finish()


def _description(meta: Mapping[str, Any]) -> str:
    """One line on what the artifact holds."""
    metric = f", metric {meta['metric']}" if meta.get("metric") else ""
    recipe = f", recipe {meta['recipe_hash']}" if meta.get("recipe_hash") else ""
    return f"NAS-Bench-Macro on CIFAR-10 ({meta['format']} format{metric}{recipe}): {meta['codes']} canonical codes"
