"""Where an export reads runs: folders of run records, and W&B projects or sweeps.

Every source yields `Run`s: a `RunRecord` (the one owner of the record schema; a W&B run is turned into one)
with the source it came from and, for the extended format, its curves already encoded. A W&B run is read
from its config and summary (one paged query); for the extended format, the run record saved as a file of
the run (`runkeys.RECORD_FILE`: curves and provenance) is used where the run has one.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..bench import extended
from ..core.errors import UserError
from ..records.recipe import Execution, Recipe, field_names
from ..records.run_record import SCHEMA_VERSION, RecordError, RunRecord, record_files
from ..records.runkeys import RECORD_FILE, SUMMARY_KEYS

WANDB_SPEC = re.compile(r"^wandb:([^/\s]+)/([^/\s]+)(?:/([^/\s]+))?$")  # wandb:ENTITY/PROJECT[/SWEEP_ID]
WANDB_PAGE = 1000  # runs per page of the W&B query
WANDB_TIMEOUT_S = 120  # per W&B API request
WANDB_FILE_THREADS = 16  # record files downloaded at once (one or two requests per run)
SHOWN = 3  # unread subfolders named in a message


@dataclass(frozen=True)
class Run:
    """One training run as an export sees it."""

    source: str  # where it was read: a file path or a W&B run path
    record: RunRecord  # the run (its curves dropped: they are in `curves`)
    curves: dict[str, str] | None = None  # per-epoch series, extended.encode_curve'd (None: not kept, or W&B)

    @property
    def pair(self) -> tuple[str, int]:
        """(canonical, seed)."""
        return self.record.pair


@dataclass(frozen=True)
class Rejected:
    """A run left out of the export, and why."""

    source: str  # where it was read
    run_name: str  # its name
    rule: str  # which rule: "foreign", one of record.RULES, "seed" or "duplicate"
    reason: str  # one line


@dataclass(frozen=True)
class Source:
    """One --from argument."""

    spec: str  # as given
    folder: Path | None  # a record folder, or None for W&B
    wandb_path: str | None  # ENTITY/PROJECT
    sweep_id: str | None  # optional sweep filter


def parse_source(spec: str) -> Source:
    """A --from value: 'wandb:ENTITY/PROJECT[/SWEEP_ID]' or an existing folder (UserError otherwise)."""
    if spec.startswith("wandb:"):
        match = WANDB_SPEC.match(spec)
        if not match:
            raise UserError(f"bad --from {spec!r}: expected wandb:ENTITY/PROJECT or wandb:ENTITY/PROJECT/SWEEP_ID")
        return Source(spec, None, f"{match[1]}/{match[2]}", match[3])
    if not Path(spec).is_dir():
        raise UserError(f"bad --from {spec!r}: no such folder (or use wandb:ENTITY/PROJECT[/SWEEP_ID])")
    return Source(spec, Path(spec), None, None)


def read_sources(sources: Sequence[Source], keep_curves: bool) -> tuple[list[Run], list[Rejected]]:
    """All runs of all sources in order, and the W&B runs that are not runs of this project."""
    runs: list[Run] = []
    rejected: list[Rejected] = []
    for source in sources:
        if source.folder is not None:
            runs += read_folder(source.folder, keep_curves)
        else:
            got, bad = read_wandb(source.wandb_path, source.sweep_id, keep_curves)
            runs, rejected = runs + got, rejected + bad
    return runs, rejected


def unread_subfolders(sources: Sequence[Source]) -> str:
    """'; ' and a sentence naming the subfolders holding *.json of each --from folder that holds none ('' if none)."""
    notes = []
    for source in (s for s in sources if s.folder is not None and not any(s.folder.glob("*.json"))):
        found = sorted(str(d) + "/" for d in source.folder.iterdir() if d.is_dir() and any(d.glob("*.json")))
        if found:
            shown = ", ".join(found[:SHOWN]) + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
            notes.append(f"{source.spec!r} holds no *.json file; its subfolders {shown} were not read")
    if not notes:
        return ""
    return f"; {'; '.join(notes)} (folders are read non-recursively: pass a subfolder as --from)"


def read_folder(folder: Path, keep_curves: bool = True) -> list[Run]:
    """The runs of every regular *.json file of a folder (others named in a line and skipped); UserError naming a
    corrupt or foreign file, or a record of a newer schema version."""
    paths, others = record_files(folder)
    for line in others:
        print(line, file=sys.stderr)
    try:
        return [from_record(RunRecord.read(path), str(path), keep_curves) for path in paths]
    except ValueError as err:  # RecordError, or curves that are not numbers
        raise UserError(str(err)) from None


def from_record(record: RunRecord, source: str, keep_curves: bool = True) -> Run:
    """A Run of a record: curves encoded once, at read time (small to hold), or dropped."""
    if not keep_curves or record.curves is None:
        return Run(source, record.without_curves())
    try:
        curves = {str(name): extended.encode_curve(values) for name, values in record.curves.items()}
    except (TypeError, ValueError) as err:
        raise RecordError(f"malformed run record {source!r}: field 'curves' bad ({err})") from None
    return Run(source, record.without_curves(), curves)


def read_wandb(path: str, sweep_id: str | None, with_files: bool = False) -> tuple[list[Run], list[Rejected]]:
    """Finished runs of a W&B project (or one sweep of it): config and summary, or (`with_files`) their record file."""
    import wandb

    filters: dict[str, Any] = {"state": "finished"}
    if sweep_id:
        filters = {"$and": [filters, {"sweep": sweep_id}]}
    try:
        api = wandb.Api(timeout=WANDB_TIMEOUT_S)
        fetched = list(api.runs(path, filters=filters, per_page=WANDB_PAGE, **_eager(api.runs)))
    except Exception as err:  # noqa: BLE001 (network, auth, unknown project: one line, not a traceback)
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"W&B query of {path!r} failed: {type(err).__name__}: {first}") from None
    try:
        with ThreadPoolExecutor(WANDB_FILE_THREADS) as pool:
            read = list(pool.map(lambda run: _read_run(run, f"wandb:{path}/{run.id}", with_files), fetched))
    except Exception as err:  # noqa: BLE001 (a file download failed: one line, not a traceback)
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"reading the record files of {path!r} failed: {type(err).__name__}: {first}") from None
    runs, rejected = [], []
    for run, got in zip(fetched, read):
        if isinstance(got, Run):
            runs.append(got)
        else:
            rejected.append(Rejected(f"wandb:{path}/{run.id}", str(run.name), "foreign", got))
    return runs, rejected


def _read_run(run: Any, source: str, with_files: bool) -> Run | str:
    """A W&B run as a Run (its saved record where asked and present), or why it is not a run of this project."""
    try:
        saved = saved_record(run) if with_files else None
        if saved is not None:
            return from_record(saved, source, keep_curves=True)
        return Run(source, record_from_wandb(run))
    except ValueError as err:
        return f"not an nbm_lightning run: {err}"


def saved_record(run: Any) -> RunRecord | None:
    """The run record saved as a file of the W&B run (curves included), or None where it has none."""
    found = [f for f in run.files(names=[RECORD_FILE]) if f.name == RECORD_FILE and getattr(f, "size", 1)]
    if not found:
        return None
    with tempfile.TemporaryDirectory() as folder:
        with found[0].download(root=folder, replace=True) as handle:
            text = handle.read()
    record = RunRecord.from_json(text, f"W&B run {run.id} file {RECORD_FILE}")
    if record.wandb and record.wandb.get("id") not in (None, run.id):
        raise RecordError(f"W&B run {run.id} holds the record of run {record.wandb.get('id')}")
    return record


def _eager(runs_method: Any) -> dict[str, Any]:
    """`lazy=False` where the API has it: config and summary come with the pages, not one request per run."""
    return {"lazy": False} if "lazy" in inspect.signature(runs_method).parameters else {}


def record_from_wandb(run: Any) -> RunRecord:
    """A W&B run (its config and summary) as a RunRecord; ValueError where it is not a run of this project.

    The recipe hash is recomputed from the recipe fields of the config (runs logged before `tf32` joined the
    recipe carry an older hash). No curves (the summary has none), versions or timestamps but the end; the
    architecture fields are derived from `arch` by RunRecord. `train_time_s` is the summary's, else the
    run's `_runtime` (runs logged before the summary carried it).
    """
    config, summary = dict(run.config), run.summary
    recipe = _recipe(config)
    both = {**{k: config[k] for k in ("params", "flops", "ptflops_macs") if k in config}, **_get(summary, _COUNTS)}
    data = {
        "schema": "nbm_lightning.run_record", "canonical": config.get("canonical"), "seed": config.get("seed"),
        "arch": config.get("arch"), "recipe": recipe, "recipe_hash": Recipe(**recipe).hash(),
        **_status(summary), **_get(summary, _SUMMARY), **both,
        "train_time_s": extended.finite_or_none(summary.get("train_time_s", summary.get("_runtime"))),
        "execution": _execution(config),
        "device": {"name": config["device_name"]} if "device_name" in config else None,
        "data": config.get("data") if isinstance(config.get("data"), dict) else None,
        "wandb": {"id": run.id, "url": getattr(run, "url", None), "sweep_id": _sweep_id(run)},
        "finished_at": summary.get("finished_at") or _wandb_finished(run.created_at, summary.get("_runtime")),
        "schema_version": SCHEMA_VERSION,
    }  # fmt: skip
    return replace(RunRecord.from_dict(data, f"W&B run {run.id}"), from_summary=True)


_SUMMARY = tuple(k for k in SUMMARY_KEYS if k not in ("status", "train_time_s", "finished_at"))  # read as stored
_COUNTS = ("params", "flops", "ptflops_macs")


def _status(summary: Any) -> dict[str, Any]:
    """The run's status from its summary (a run that never wrote one counts as failed)."""
    if "status" in summary:
        return {"status": summary.get("status")}
    return {"status": "failed", "error": "no status in the W&B summary"}


def _get(summary: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The keys of a W&B summary that it has."""
    return {k: summary.get(k) for k in keys if k in summary}


def _recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The Recipe fields of a W&B config (ValueError naming a missing or bad one)."""
    missing = [name for name in field_names(Recipe) if name not in config]
    if missing:
        raise ValueError(f"missing config field(s) {missing}")
    values = {name: config[name] for name in field_names(Recipe)}
    Recipe(**values)  # ValueError/TypeError where a value is not valid
    return values


def _execution(config: Mapping[str, Any]) -> dict[str, Any]:
    """The Execution fields that a W&B config holds."""
    return {f.name: config[f.name] for f in fields(Execution) if f.name in config}


def _sweep_id(run: Any) -> str | None:
    """The run's sweep id without a request per run (`sweep_name` is in the page; `.sweep` may load)."""
    if hasattr(run, "sweep_name"):
        return run.sweep_name
    return getattr(run.sweep, "id", None) if getattr(run, "sweep", None) is not None else None


def _wandb_finished(created_at: Any, runtime: Any) -> str | None:
    """ISO end time of a W&B run: created_at plus its runtime."""
    start = parse_time(created_at)
    if start is None:
        return None
    seconds = extended.finite_or_none(runtime) or 0
    return (start + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def parse_time(text: Any) -> dt.datetime | None:
    """An ISO time as an aware UTC datetime (naive means UTC; 'Z' accepted); None where unparsable."""
    if not isinstance(text, str):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
