"""The selection rules of an export: one recipe, sound runs only, the latest of duplicates, whole codes.

A run is used when its record passes `RunRecord.problem` for the exported recipe (the test `fit` and
`sweep make --missing` use too), its seed is one of the benchmark's seeds, and it has the exported metric.
Of two usable runs of one (code, seed) the later finished is kept. A canonical code needs all its seeds.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import multiprocessing
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..arch.codes import unique_codes
from ..core.errors import UserError
from ..records.job import GRID_SIZE
from ..records.recipe import SEEDS
from ..records.run_record import COMPLETE, HEAD_64K, METRIC_FIELDS, PREEMPTED
from .sources import Rejected, Run, parse_time

NO_TIME = dt.datetime.min.replace(tzinfo=dt.timezone.utc)  # a missing finished_at sorts before every real time


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
    preempted: int = 0  # preempted runs read: counted as missing (a rerun resumes them), never as rejected

    @property
    def used(self) -> int:
        """Runs written to the export."""
        return len(SEEDS) * len(self.groups)

    @property
    def unused(self) -> int:
        """Usable runs of codes left out as incomplete."""
        return len(self.runs_by_pair) - self.used


def choose_recipe(runs: Sequence[Run], requested: str | None) -> str:
    """The recipe hash to export: `requested`, else that of most complete runs (UserError on none or a tie)."""
    counts = collections.Counter(r.record.recipe_hash for r in runs if r.record.status == COMPLETE)
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


def rejection(run: Run, recipe_hash: str, metric: str, expected: Mapping[str, tuple[int, int]]) -> Rejected | None:
    """Why a run cannot be exported (the first rule it fails), or None if it can."""
    record = run.record
    found = record.problem(recipe_hash, expected.__getitem__)
    if found is not None:
        rule, why = found
        reason = f"recipe {record.recipe_hash} (exporting {recipe_hash})" if rule == "recipe" else why
        return Rejected(run.source, record.run_name, rule, reason)
    if record.seed not in SEEDS:
        return Rejected(run.source, record.run_name, "seed", f"seed {record.seed} is not one of {list(SEEDS)}")
    if getattr(record, METRIC_FIELDS[metric]) is None:
        why = f"no {METRIC_FIELDS[metric]} (a validation-split recipe has no test_acc_best: use --metric final)"
        return Rejected(run.source, record.run_name, "accuracy", why)
    return None


def dedupe(runs: Iterable[Run]) -> tuple[dict[tuple[str, int], Run], list[Rejected]]:
    """Keep the latest finished run per (canonical, seed) (ties: the later source); list the others."""
    ordered = sorted(enumerate(runs), key=lambda item: (parse_time(item[1].record.finished_at) or NO_TIME, item[0]))
    kept: dict[tuple[str, int], Run] = {}
    superseded = []
    for _, run in ordered:
        older = kept.get(run.pair)
        if older is not None:
            reason = _superseded_reason(older, run)
            superseded.append(Rejected(older.source, older.record.run_name, "duplicate", reason))
        kept[run.pair] = run
    return kept, superseded


def _wandb_id(run: Run) -> str | None:
    return (run.record.wandb or {}).get("id")


def _superseded_reason(older: Run, newer: Run) -> str:
    """Why `older` was dropped."""
    if _wandb_id(older) and _wandb_id(older) == _wandb_id(newer):
        return f"same W&B run {_wandb_id(older)} as {newer.source}"
    when = f"finished {newer.record.finished_at}, this one {older.record.finished_at}"
    return f"duplicate of {newer.record.run_name}: kept the later {newer.source} ({when})"


def select(
    runs: Sequence[Run],
    pre_rejected: Sequence[Rejected],
    recipe_hash: str,
    metric: str,
    expected: Mapping[str, tuple[int, int]],
) -> Selection:
    """Apply every rule: reject, dedupe, then group the usable runs by canonical code."""
    usable, rejected, preempted = [], list(pre_rejected), 0
    for run in runs:
        if run.record.status == PREEMPTED:  # not failed: missing until its rerun resumes it
            preempted += 1
            continue
        reason = rejection(run, recipe_hash, metric, expected)
        if reason:
            rejected.append(reason)
        else:
            usable.append(run)
    by_pair, superseded = dedupe(usable)
    groups, incomplete = group(by_pair)
    recipe = next((dict(r.record.recipe) for r in runs if r.record.recipe_hash == recipe_hash), {})
    read = len(runs) + len(pre_rejected)
    missing = GRID_SIZE - len(by_pair)
    one_dataset(by_pair.values())
    return Selection(recipe_hash, recipe, groups, read, rejected, superseded, incomplete, missing, by_pair, preempted)


def one_dataset(runs: Iterable[Run]) -> None:
    """UserError naming both when the runs trained on data with different fingerprints (synthetic and real
    CIFAR-10, say). Fingerprints of two kinds (record.DATA_KINDS: whole files, or the first 64 KiB of each in
    records written before) never compare equal: the first 64 KiB say nothing of the rest."""
    seen: dict[tuple, list[Run]] = collections.defaultdict(list)
    for run in runs:
        data = run.record.data
        if data:  # every usable run has one (RunRecord.problem's data rule)
            seen[(data.get("kind", HEAD_64K), data.get("files_sha256"), data.get("md5_checked"))].append(run)
    if len(seen) > 1:
        (a, runs_a), (b, runs_b) = sorted(seen.items(), key=lambda item: -len(item[1]))[:2]
        raise UserError(
            f"the runs trained on different data: {_data_name(a)} ({len(runs_a)} runs, e.g. {runs_a[0].source}) and "
            f"{_data_name(b)} ({len(runs_b)} runs, e.g. {runs_b[0].source}); export one data set at a time"
        )


def _data_name(key: tuple) -> str:
    kind, files, md5_checked = key
    checked = "md5 checked" if md5_checked else "md5 not checked: synthetic or modified"
    older = ", an older fingerprint: retrain or export these runs apart" if kind == HEAD_64K else ""
    return f"files {files} ({kind}{older}; {checked})"


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
    """(params, flops) of each code (nbm_lightning.arch.complexity, imported here: in the pool's worker)."""
    from ..arch.complexity import complexity_table

    return complexity_table(codes)


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
