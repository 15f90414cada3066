"""`python -m nbm_lightning.export`: collect run records into the published or the extended benchmark file.

Sources (`--from`, repeatable, read in order): a folder of run records (its *.json files, not its
subfolders; a corrupt or foreign JSON file fails the export, naming it), or `wandb:ENTITY/PROJECT[/SWEEP_ID]`
(finished runs through the W&B public API: their config and summary, one paged query, no history).

Rules: only complete runs of ONE recipe are used (the majority recipe of the complete runs, or
`--recipe-hash`); failed, truncated, non-finite or mis-measured (params/flops differ from
`complexity(canonical)`) runs are rejected and listed; of two runs of the same (code, seed) the latest
finished is kept; a canonical code needs all three seeds (else the export fails, or leaves the code out
with `--allow-partial`). A last line says how many runs were read, used, rejected and missing.

`--format original` writes the published layout (all 6561 codes, each the record of its canonical code);
`--metric best` is the published semantics (best test accuracy over the epochs: selection on the test
set), `--metric final` the last epoch's. `--format extended` (nbm_lightning.extended) keeps every run,
its curves and the provenance.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import extended, records
from .cli import ArgParser, UserError, run_main
from .config import SEEDS, Recipe, field_names
from .fit import GRID_SIZE
from .search_space import all_codes, canonical, is_canonical, unique_codes

PROG = "python -m nbm_lightning.export"
FORMATS = ("original", "extended")
METRIC_FIELDS = {"best": "test_acc_best", "final": "test_acc_final"}  # --metric -> run field
DEFAULT_METRIC = {"original": "best", "extended": "final"}  # per format, when --metric is not given
WANDB_SPEC = re.compile(r"^wandb:([^/\s]+)/([^/\s]+)(?:/([^/\s]+))?$")  # wandb:ENTITY/PROJECT[/SWEEP_ID]
HASH_RE = re.compile(r"^[0-9a-f]{4,64}$")  # what --recipe-hash accepts
WANDB_PAGE = 1000  # runs per page of the W&B query
WANDB_TIMEOUT_S = 120  # per W&B API request
EXAMPLES = 5  # examples named in a one-line error
LIST_LIMIT = 50  # report lines per list before "... and N more"
RULES = ("foreign", "identity", "status", "recipe", "truncated", "accuracy", "complexity", "duplicate")  # Rejected.rule
NO_TIME = dt.datetime.min.replace(tzinfo=dt.timezone.utc)  # a missing finished_at sorts before every real time


@dataclass(frozen=True)
class Run:
    """One training run of (canonical code, seed), read from a record file or a W&B run."""

    source: str  # where it was read: a file path or a W&B run path
    canonical: str  # canonical code (the key of results)
    seed: int  # training seed
    arch: str  # the code as given to the trainer
    status: str | None  # records.COMPLETE or records.FAILED (None where unknown)
    error: str | None  # why it failed
    recipe_hash: str  # Recipe.hash() of its recipe
    recipe: dict[str, Any]  # its Recipe fields
    epochs_completed: int | None  # epochs trained (None where the source does not say)
    test_acc_best: float | None  # best per-epoch test accuracy, percent
    test_acc_final: float | None  # last epoch's test accuracy, percent
    best_epoch: int | None  # 0-based epoch of test_acc_best
    params: int | None  # parameter count it reported
    flops: int | None  # weight MACs it reported
    ptflops_macs: int | None  # ptflops MACs it reported
    train_time_s: float | None  # summed epoch time
    curves: dict[str, str] | None  # per-epoch series, extended.encode_curve'd (None from W&B or when not kept)
    run_name: str  # <canonical>-s<seed>
    wandb_id: str | None  # W&B run id
    wandb_url: str | None  # W&B run page
    sweep_id: str | None  # W&B sweep it ran in
    finished_at: str | None  # ISO time it ended (orders duplicates)
    versions: dict[str, Any] | None  # library versions and git commit (records only)
    device: dict[str, Any] | None  # where it trained (records only)

    @property
    def pair(self) -> tuple[str, int]:
        """(canonical, seed): the key of a run within one recipe."""
        return self.canonical, self.seed


@dataclass(frozen=True)
class Rejected:
    """A run left out of the export, and why."""

    source: str  # where it was read
    run_name: str  # its name
    rule: str  # which rule: one of RULES
    reason: str  # one line


@dataclass
class Selection:
    """The outcome of the rules: the runs exported and everything left out."""

    recipe_hash: str  # the recipe exported
    recipe: dict[str, Any]  # its fields
    groups: dict[str, tuple[Run, ...]]  # canonical -> its runs in seed order (complete codes only)
    read: int  # runs read from all sources
    rejected: list[Rejected]  # runs excluded by a rule
    superseded: list[Rejected]  # older duplicates dropped
    incomplete: dict[str, tuple[int, ...]]  # canonical -> missing seeds, for codes left out
    missing: int  # grid pairs with no usable run
    runs_by_pair: dict[tuple[str, int], Run]  # every usable run, after dedupe

    @property
    def used(self) -> int:
        """Runs written to the export."""
        return len(SEEDS) * len(self.groups)

    @property
    def unused(self) -> int:
        """Usable runs of codes left out as incomplete."""
        return len(self.runs_by_pair) - self.used


# ---------------------------------------------------------------- sources


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
            got, bad = read_wandb(source.wandb_path, source.sweep_id)
            runs, rejected = runs + got, rejected + bad
    return runs, rejected


def read_folder(folder: Path, keep_curves: bool = True) -> list[Run]:
    """The runs of every *.json file of a folder; UserError naming a corrupt or foreign file."""
    try:
        return [
            run_from_record(records.read_record(path), str(path), keep_curves) for path in sorted(folder.glob("*.json"))
        ]
    except ValueError as err:
        raise UserError(str(err)) from None


def run_from_record(data: Mapping[str, Any], source: str, keep_curves: bool = True) -> Run:
    """A run record (records.SCHEMA) as a Run (curves encoded, or dropped); ValueError naming `source` and a bad field."""
    try:
        wandb = _field(data, "wandb", _dict_or_none) or {}
        return Run(
            source=source,
            canonical=_field(data, "canonical", _str),
            seed=_field(data, "seed", _int),
            arch=_field(data, "arch", _str),
            status=_field(data, "status", _str),
            error=data.get("error"),
            recipe_hash=_field(data, "recipe_hash", _str),
            recipe=_field(data, "recipe", _dict),
            epochs_completed=_field(data, "epochs_completed", _int_or_none),
            test_acc_best=_field(data, "test_acc_best", _num),
            test_acc_final=_field(data, "test_acc_final", _num),
            best_epoch=_field(data, "best_epoch", _int_or_none),
            params=_field(data, "params", _int_or_none),
            flops=_field(data, "flops", _int_or_none),
            ptflops_macs=_field(data, "ptflops_macs", _int_or_none),
            train_time_s=_field(data, "train_time_s", _num),
            curves=_encoded(_field(data, "curves", _dict_or_none), keep_curves),
            run_name=_field(data, "run_name", _str),
            wandb_id=wandb.get("id"),
            wandb_url=wandb.get("url"),
            sweep_id=wandb.get("sweep_id"),
            finished_at=data.get("finished_at"),
            versions=_field(data, "versions", _dict_or_none),
            device=_field(data, "device", _dict_or_none),
        )
    except ValueError as err:
        raise ValueError(f"malformed run record {source!r}: {err}") from None


def _encoded(curves: Mapping[str, Any] | None, keep: bool) -> dict[str, str] | None:
    """Curves in the extended file's compact form (encoded once, at read time: small to hold), or None."""
    if not keep or curves is None:
        return None
    try:
        return {str(name): extended.encode_curve(values) for name, values in curves.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"field 'curves' bad ({err})") from None


def read_wandb(path: str, sweep_id: str | None) -> tuple[list[Run], list[Rejected]]:
    """Finished runs of a W&B project (or one sweep of it), from their config and summary."""
    import wandb

    filters: dict[str, Any] = {"state": "finished"}
    if sweep_id:
        filters = {"$and": [filters, {"sweep": sweep_id}]}
    try:
        api = wandb.Api(timeout=WANDB_TIMEOUT_S)
        fetched = list(api.runs(path, filters=filters, per_page=WANDB_PAGE, **_eager(api.runs)))
    except Exception as err:  # network, auth, unknown project: one line, not a traceback
        raise UserError(
            f"W&B query of {path!r} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    runs, rejected = [], []
    for run in fetched:
        try:
            runs.append(run_from_wandb(run, path))
        except ValueError as err:
            rejected.append(
                Rejected(f"wandb:{path}/{run.id}", str(run.name), "foreign", f"not an nbm_lightning run: {err}")
            )
    return runs, rejected


def _eager(runs_method: Any) -> dict[str, Any]:
    """`lazy=False` where the API has it: config and summary come with the pages, not one request per run."""
    import inspect

    params = inspect.signature(runs_method).parameters
    return {"lazy": False} if "lazy" in params else {}


def run_from_wandb(run: Any, path: str) -> Run:
    """A W&B run (its config and summary) as a Run; ValueError where it is not a run of this project."""
    config, summary = dict(run.config), run.summary
    both = _Either(summary, config)  # complexity is in both; the summary wins
    return Run(
        source=f"wandb:{path}/{run.id}",
        canonical=_field(config, "canonical", _str),
        seed=_field(config, "seed", _int),
        arch=_field(config, "arch", _str),
        status=summary.get("status"),
        error=None,
        recipe_hash=_field(config, "recipe_hash", _str),
        recipe=_recipe_fields(config),
        epochs_completed=_field(summary, "epochs_completed", _int_or_none),
        test_acc_best=_field(summary, "test_acc_best", _num),
        test_acc_final=_field(summary, "test_acc_final", _num),
        best_epoch=_field(summary, "best_epoch", _int_or_none),
        params=_field(both, "params", _int_or_none),
        flops=_field(both, "flops", _int_or_none),
        ptflops_macs=_field(both, "ptflops_macs", _int_or_none),
        train_time_s=_field(summary, "_runtime", _num),
        curves=None,
        run_name=str(run.name),
        wandb_id=run.id,
        wandb_url=getattr(run, "url", None),
        sweep_id=_sweep_id(run),
        finished_at=_wandb_finished(run.created_at, summary.get("_runtime")),
        versions=None,
        device=None,
    )


class _Either:
    """Read a key from the first of two mappings that has it."""

    def __init__(self, first: Any, second: Mapping[str, Any]):
        self.first, self.second = first, second

    def get(self, key: str, default: Any = None) -> Any:
        """The first mapping's value where it has the key, else the second's."""
        return self.first.get(key) if key in self.first else self.second.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.first or key in self.second


def _recipe_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The Recipe fields of a W&B config (ValueError naming a missing one)."""
    missing = [name for name in field_names(Recipe) if name not in config]
    if missing:
        raise ValueError(f"missing config field(s) {missing}")
    return {name: config[name] for name in field_names(Recipe)}


def _sweep_id(run: Any) -> str | None:
    """The run's sweep id without a request per run (`sweep_name` is in the page; `.sweep` may load)."""
    if hasattr(run, "sweep_name"):
        return run.sweep_name
    return getattr(run.sweep, "id", None) if getattr(run, "sweep", None) is not None else None


def _wandb_finished(created_at: Any, runtime: Any) -> str | None:
    """ISO end time of a W&B run: created_at plus its runtime."""
    start = _parse_time(created_at)
    if start is None:
        return None
    seconds = runtime if isinstance(runtime, (int, float)) and math.isfinite(runtime) else 0
    return (start + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _parse_time(text: Any) -> dt.datetime | None:
    """An ISO time as an aware UTC datetime (naive means UTC; 'Z' accepted); None where unparsable."""
    if not isinstance(text, str):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _field(data: Any, name: str, check: Callable[[Any], Any]) -> Any:
    """`data[name]` checked by `check` (None where absent); ValueError naming the field."""
    try:
        return check(data.get(name))
    except TypeError as err:
        state = "missing" if name not in data else f"bad ({err})"
        raise ValueError(f"field {name!r} {state}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value


def _int_or_none(value: Any) -> int | None:
    return None if value is None else _int(value)


def _num(value: Any) -> float | None:
    """A JSON number (NaN/inf kept, for the rules to reject) or None."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {value!r}")
    return value


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return None if value is None else _dict(value)


# ---------------------------------------------------------------- rules


def choose_recipe(runs: Sequence[Run], requested: str | None) -> str:
    """The recipe hash to export: `requested`, else that of most complete runs (UserError on none or a tie)."""
    counts = collections.Counter(r.recipe_hash for r in runs if r.status == records.COMPLETE)
    seen = ", ".join(f"{h} ({n} runs)" for h, n in counts.most_common())
    if requested is not None:
        if requested not in counts:
            raise UserError(f"no complete run of recipe {requested} in the sources (found: {seen or 'none'})")
        return requested
    if not counts:
        raise UserError(f"no complete run in the sources ({len(runs)} runs read)")
    top = counts.most_common(2)
    if len(top) == 2 and top[0][1] == top[1][1]:
        raise UserError(f"recipes tie for the majority ({seen}): pass --recipe-hash")
    return top[0][0]


def rejection(run: Run, recipe_hash: str, field_name: str, expected: Mapping[str, tuple[int, int]]) -> Rejected | None:
    """Why a run cannot be exported (the first rule it fails), or None if it can."""
    for rule, problem in _problems(run, recipe_hash, field_name, expected):
        if problem:
            return Rejected(run.source, run.run_name, rule, problem)
    return None


def _problems(
    run: Run, recipe_hash: str, field_name: str, expected: Mapping[str, tuple[int, int]]
) -> Iterator[tuple[str, str | None]]:
    """(rule, problem or None) in rule order; lazily, so a rule runs only after the previous ones passed."""
    yield "identity", _identity_problem(run)
    yield (
        "status",
        None if run.status == records.COMPLETE else f"status {run.status}" + (f": {run.error}" if run.error else ""),
    )
    yield "recipe", None if run.recipe_hash == recipe_hash else f"recipe {run.recipe_hash} (exporting {recipe_hash})"
    yield "truncated", _truncation(run)
    yield "accuracy", _accuracy_problem(run, field_name)
    yield "complexity", _complexity_problem(run, expected[run.canonical])


def _truncation(run: Run) -> str | None:
    """A run that stopped before its recipe's last epoch (unknown epoch counts pass: W&B)."""
    epochs = run.recipe.get("epochs")
    done = run.epochs_completed
    return None if done is None or done == epochs else f"truncated: {done} of {epochs} epochs"


def _complexity_problem(run: Run, expected: tuple[int, int]) -> str | None:
    """Reported params/flops that differ from complexity(canonical)."""
    if (run.params, run.flops) == expected:
        return None
    return (
        f"params/flops {run.params}/{run.flops} differ from complexity({run.canonical}) = {expected[0]}/{expected[1]}"
    )


def _identity_problem(run: Run) -> str | None:
    """A bad code or seed, or None."""
    if not is_canonical(run.canonical):
        return f"canonical {run.canonical!r} is not a canonical code"
    try:
        if canonical(run.arch) != run.canonical:
            return f"arch {run.arch} is not a form of {run.canonical}"
    except (TypeError, ValueError) as err:
        return str(err)
    return None if run.seed in SEEDS else f"seed {run.seed} is not one of {list(SEEDS)}"


def _accuracy_problem(run: Run, field_name: str) -> str | None:
    """A missing exported accuracy or a non-finite one, or None."""
    values = {"test_acc_best": run.test_acc_best, "test_acc_final": run.test_acc_final}
    if values[field_name] is None:
        return f"no {field_name} (a validation-split recipe has no test_acc_best: use --metric final)"
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    return f"non-finite accuracy {bad}" if bad else None


def dedupe(runs: Iterable[Run]) -> tuple[dict[tuple[str, int], Run], list[Rejected]]:
    """Keep the latest finished run per (canonical, seed) (ties: the later source); list the others."""
    ordered = sorted(enumerate(runs), key=lambda item: (_parse_time(item[1].finished_at) or NO_TIME, item[0]))
    kept: dict[tuple[str, int], Run] = {}
    superseded = []
    for _, run in ordered:
        older = kept.get(run.pair)
        if older is not None:
            superseded.append(Rejected(older.source, older.run_name, "duplicate", _superseded_reason(older, run)))
        kept[run.pair] = run
    return kept, superseded


def _superseded_reason(older: Run, newer: Run) -> str:
    """Why `older` was dropped."""
    if older.wandb_id and older.wandb_id == newer.wandb_id:
        return f"same W&B run {older.wandb_id} as {newer.source}"
    return f"duplicate of {newer.run_name}: kept the later {newer.source} (finished {newer.finished_at}, this one {older.finished_at})"


def select(
    runs: Sequence[Run],
    pre_rejected: Sequence[Rejected],
    recipe_hash: str,
    metric: str,
    expected: Mapping[str, tuple[int, int]],
) -> Selection:
    """Apply every rule: reject, dedupe, then group the usable runs by canonical code."""
    field_name, usable, rejected = METRIC_FIELDS[metric], [], list(pre_rejected)
    for run in runs:
        reason = rejection(run, recipe_hash, field_name, expected)
        if reason:
            rejected.append(reason)
        else:
            usable.append(run)
    by_pair, superseded = dedupe(usable)
    groups, incomplete = group(by_pair)
    recipe = next((r.recipe for r in runs if r.recipe_hash == recipe_hash), {})
    read = len(runs) + len(pre_rejected)
    return Selection(
        recipe_hash, recipe, groups, read, rejected, superseded, incomplete, GRID_SIZE - len(by_pair), by_pair
    )


def group(by_pair: Mapping[tuple[str, int], Run]) -> tuple[dict[str, tuple[Run, ...]], dict[str, tuple[int, ...]]]:
    """Canonical codes with all seeds -> runs in seed order; the others -> the seeds they lack."""
    groups, incomplete = {}, {}
    for code in unique_codes():
        missing = tuple(s for s in SEEDS if (code, s) not in by_pair)
        if missing:
            incomplete[code] = missing
        else:
            groups[code] = tuple(by_pair[(code, s)] for s in SEEDS)
    return groups, incomplete


def expected_complexity(codes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(params, flops) of each canonical code by nbm_lightning.complexity."""
    from .complexity import complexity

    table = {}
    for code in codes:
        counts = complexity(code)
        table[code] = (counts.params, counts.flops)
    return table


def complexity_pool() -> Any:
    """A one-process fork pool that builds the complexity table while this process reads records, or a null context.

    `complexity` imports torch and warms its meta device (seconds, the export's critical path), so it runs
    on another core; leaving the `with` block terminates the worker, also on an error. Where torch is
    already imported (tests, notebooks) the table is computed in-process (the context yields None): a fork
    of a process whose torch threads may be running is not safe.
    """
    if "torch" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return contextlib.nullcontext()
    return multiprocessing.get_context("fork").Pool(1)


# ---------------------------------------------------------------- outputs


def original(selection: Selection, metric: str) -> dict[str, dict[str, Any]]:
    """The published layout: every code -> the record of its canonical code (complete codes only)."""
    field_name, table = METRIC_FIELDS[metric], {}
    for code, runs in selection.groups.items():
        acc = [getattr(run, field_name) for run in runs]
        table[code] = {
            "test_acc": acc,
            "mean_acc": float(np.mean(acc)),
            "std": float(np.std(acc)),
            "params": runs[0].params,
            "flops": runs[0].flops,
        }
    return {code: table[canonical(code)] for code in all_codes() if canonical(code) in table}


def provenance(selection: Selection, sources: Sequence[str], metric: str) -> dict[str, Any]:
    """The extended file's provenance block (see nbm_lightning.extended)."""
    used = [run for runs in selection.groups.values() for run in runs]
    return {
        "recipe_hash": selection.recipe_hash,
        "recipe": selection.recipe,
        "metric": metric,
        "sources": list(sources),
        "versions": _distinct(run.versions for run in used),
        "devices": _devices(used),
        "wandb_sweeps": sorted({r.sweep_id for r in used if r.sweep_id}),
        "counts": counts(selection),
        "rejected": [vars(r) for r in selection.rejected],
        "superseded": [vars(r) for r in selection.superseded],
        "incomplete": {code: list(seeds) for code, seeds in selection.incomplete.items()},
    }


def _distinct(dicts: Iterable[Mapping[str, Any] | None]) -> dict[str, list]:
    """Key -> the distinct values it takes across dicts (ordered by their JSON text)."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for item in dicts:
        for key, value in (item or {}).items():
            seen[key].add(json.dumps(value, sort_keys=True))
    return {key: [json.loads(v) for v in sorted(values)] for key, values in sorted(seen.items())}


def _devices(runs: Iterable[Run]) -> dict[str, int]:
    """Device name -> number of runs trained on it (runs without device info are not counted)."""
    names = collections.Counter(str(r.device.get("name")) for r in runs if r.device)
    return dict(sorted(names.items()))


def counts(selection: Selection) -> dict[str, int]:
    """The headline counts of an export."""
    return {
        "runs_read": selection.read,
        "runs_used": selection.used,
        "runs_rejected": len(selection.rejected),
        "runs_superseded": len(selection.superseded),
        "runs_missing": selection.missing,
        "runs_unused": selection.unused,
        "codes": len(selection.groups),
        "codes_incomplete": len(selection.incomplete),
    }


def summary_line(selection: Selection) -> str:
    """The last line of an export."""
    c = counts(selection)
    line = (
        f"read {c['runs_read']} runs: used {c['runs_used']} ({c['codes']} codes x {len(SEEDS)} seeds), "
        f"rejected {c['runs_rejected']}, superseded {c['runs_superseded']} duplicates, "
        f"missing {c['runs_missing']} of {GRID_SIZE}"
    )
    return line + (
        f"; left out {c['codes_incomplete']} incomplete codes ({c['runs_unused']} of their runs read)"
        if c["codes_incomplete"]
        else ""
    )


def incomplete_message(selection: Selection) -> str:
    """One line on the codes lacking seeds, with a few examples (partial codes first)."""
    partial = sorted(selection.incomplete, key=lambda code: (len(selection.incomplete[code]), code))
    examples = ", ".join(
        f"{code} (seeds {', '.join(map(str, selection.incomplete[code]))} missing)" for code in partial[:EXAMPLES]
    )
    return (
        f"{len(selection.incomplete)} of {len(unique_codes())} canonical codes lack seeds "
        f"({selection.missing} of {GRID_SIZE} runs missing), e.g. {examples}"
    )


def report(selection: Selection) -> list[str]:
    """Report lines: rejected runs (other recipes summed up), superseded duplicates."""
    other = collections.Counter(r.reason for r in selection.rejected if r.rule == "recipe")
    listed = [r for r in selection.rejected if r.rule != "recipe"]
    lines = [f"rejected {n} runs of {reason}: not mixed" for reason, n in sorted(other.items())]
    lines += _capped([f"rejected {r.source}: {r.reason}" for r in listed])
    return lines + _capped([f"superseded {r.source}: {r.reason}" for r in selection.superseded])


def _capped(lines: list[str]) -> list[str]:
    """At most LIST_LIMIT lines, then one saying how many more."""
    extra = len(lines) - LIST_LIMIT
    return lines[:LIST_LIMIT] + (
        [f"... and {extra} more (all listed in an extended export's provenance)"] if extra > 0 else []
    )


# ---------------------------------------------------------------- command line


def build_parser() -> ArgParser:
    """The export CLI."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--from",
        dest="sources",
        action="append",
        required=True,
        metavar="SOURCE",
        help="a folder of run records, or wandb:ENTITY/PROJECT[/SWEEP_ID] (repeatable)",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="published layout or extended schema")
    parser.add_argument("--out", required=True, help="file to write (atomically)")
    parser.add_argument(
        "--metric",
        choices=tuple(METRIC_FIELDS),
        default=None,
        help="accuracy of the original format's test_acc: best (published; default there) or final "
        "(default for extended, which stores both)",
    )
    parser.add_argument(
        "--allow-partial", action="store_true", help="leave out canonical codes lacking seeds instead of failing"
    )
    parser.add_argument(
        "--recipe-hash", type=_hash_arg, default=None, help="export this recipe (default: the majority's)"
    )
    return parser


def _hash_arg(text: str) -> str:
    if not HASH_RE.match(text):
        raise argparse.ArgumentTypeError(f"invalid recipe hash {text!r}: expected lowercase hex digits")
    return text


def export(
    sources: Sequence[str], fmt: str, out: str, metric: str, allow_partial: bool, recipe_hash: str | None
) -> Selection:
    """Read, select and write; UserError on bad input or (without allow_partial) incomplete codes."""
    parsed = [parse_source(spec) for spec in sources]
    if Path(out).is_dir():
        raise UserError(f"bad --out {out!r}: it is a folder")
    with complexity_pool() as pool:
        pending = pool.apply_async(expected_complexity, (unique_codes(),)) if pool is not None else None
        runs, pre_rejected = read_sources(parsed, keep_curves=fmt == "extended")
        chosen = choose_recipe(runs, recipe_hash)
        expected = pending.get() if pending is not None else expected_complexity(unique_codes())
    selection = select(runs, pre_rejected, chosen, metric, expected)
    for line in report(selection):
        print(line, file=sys.stderr)
    _check_complete(selection, allow_partial)
    _write(selection, sources, fmt, out, metric)
    return selection


def _check_complete(selection: Selection, allow_partial: bool) -> None:
    """UserError where codes lack seeds (unless allowed) or none is complete; else report the codes left out."""
    if selection.incomplete and not allow_partial:
        print(summary_line(selection), file=sys.stderr)
        raise UserError(
            f"{incomplete_message(selection)}: pass --allow-partial to export the {len(selection.groups)} complete codes"
        )
    if not selection.groups:
        raise UserError(f"no canonical code has all {len(SEEDS)} seeds: nothing to export ({summary_line(selection)})")
    if selection.incomplete:
        print(f"left out: {incomplete_message(selection)}", file=sys.stderr)


def _write(selection: Selection, sources: Sequence[str], fmt: str, out: str, metric: str) -> None:
    """Write the chosen format atomically."""
    if fmt == "original":
        records.atomic_write_text(out, json.dumps(original(selection, metric)) + "\n")
        return
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    extended.write(out, extended.build(selection.groups, provenance(selection, sources, metric), created))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, export, print the summary line."""
    args = build_parser().parse_args(argv)
    metric = args.metric or DEFAULT_METRIC[args.format]
    selection = export(args.sources, args.format, args.out, metric, args.allow_partial, args.recipe_hash)
    print(
        f"wrote {args.out} ({args.format}, metric {metric}, recipe {selection.recipe_hash}): {summary_line(selection)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
