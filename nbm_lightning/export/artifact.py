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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..bench.formats import parse, read_json
from ..core.errors import UserError
from ..records.recipe import SEEDS
from ..records.runkeys import BENCHMARK_TABLE, BENCHMARK_TYPE, EXPORT_JOB_TYPE, layer_ops, table_columns
from ..records.tracking import WandbPath, start_run

NAME_PREFIX = "nas-bench-macro"  # artifact names: <prefix>-<format>[-<metric>-<recipe hash>]
META_KEYS = ("recipe_hash", "recipe", "metric", "counts", "wandb_sweeps", "versions", "sources", "devices", "numerics")


def read_export(path: str | Path) -> tuple[str, list[list[Any]], dict[str, Any] | None]:
    """(format, Table rows in code order, the file's provenance or None) of an export file, read and checked by the
    benchmark's reader (`bench.formats`); UserError (one line) if it is not one."""
    data, _ = read_json(path, "export file")
    fmt, records, _ = parse(data, str(path))
    seeds = len(records[0].test_acc)
    if seeds != len(SEEDS):
        raise UserError(f"{str(path)!r} is not a benchmark export: its records hold {seeds} seeds, not {len(SEEDS)}")
    rows = [row(r.code, r.params, r.flops, list(r.test_acc), r.mean_acc, r.std) for r in records]
    if fmt == "extended":
        return "extended", rows, data["provenance"]
    return "original", rows, None


def row(code: str, params: int, flops: int, acc: list[float], mean: float, std: float) -> list[Any]:
    """One Table row in `table_columns` order."""
    return [code, *layer_ops(code), params, flops, *acc, mean, std]


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
