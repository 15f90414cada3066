"""A training job: one (code, seed) under one recipe, resolved from defaults, a YAML config and overrides.

This module sits below both the command line (`fit`, `sweep`) and the trainer (`train`): it owns the job's
resolution, the numbering of the benchmark grid (`--index N`) and the question "is this job done?".
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch.codes import canonical, unique_codes, validate
from ..core.errors import PairRefused
from ..core.validate import check_int, fail, shown
from .recipe import SEED_MAX, SEEDS, Execution, Recipe, build_configs, field_names, load_yaml
from .run_record import NewerRecordError, RecordError, RunRecord, record_path, run_name

GRID_SIZE = len(SEEDS) * len(unique_codes())  # 11,907 (canonical code, seed) pairs


@dataclass(frozen=True)
class Job:
    """One training run, fully resolved."""

    arch: str  # the code as given (validated); its layout is what trains
    seed: int  # the run's seed (all generators)
    recipe: Recipe  # hashed training recipe
    execution: Execution  # how to run it
    force: bool = False  # retrain even where a complete record exists

    def __post_init__(self) -> None:
        validate(self.arch)
        check_int("seed", self.seed, 0, SEED_MAX)

    @property
    def canonical(self) -> str:
        """The canonical form of the code: the key of the record."""
        return canonical(self.arch)

    @property
    def name(self) -> str:
        """`<canonical>-s<seed>`."""
        return run_name(self.canonical, self.seed)

    @property
    def record_path(self) -> Path:
        """Where the run record is written."""
        return record_path(self.execution.results_dir, self.canonical, self.seed)

    @property
    def ckpt_dir(self) -> Path:
        """The checkpoint folder of this (canonical, seed, recipe)."""
        return Path(self.execution.ckpt_dir) / f"{self.name}-{self.recipe.hash()}"


def index_to_pair(index: int) -> tuple[str, int]:
    """Grid pair N -> (canonical code, seed), with N = len(SEEDS) * position in unique_codes() + seed."""
    check_int("index", index, 0, GRID_SIZE - 1)
    return unique_codes()[index // len(SEEDS)], SEEDS[index % len(SEEDS)]


def parse_indices(text: str) -> list[int]:
    """Grid indices from `N`, an inclusive range `A-B`, or a list `A,B,C` (ranges allowed in it), in order.

    ValueError (one line naming the bad part) for a malformed part (ASCII digits only), a reversed range, an index
    outside the grid, or an index given twice. Linear in the number of indices.
    """
    indices: list[int] = []
    seen: set[int] = set()
    for part in text.split(","):
        for index in _index_part(part.strip(), text):
            if index in seen:
                raise fail("index", text, f"each pair once ({index} appears twice)")
            seen.add(index)
            indices.append(index)
    return indices


INDEX_PART_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")  # N or A-B, ASCII digits (int() would read others too)


def _index_part(part: str, text: str) -> range:
    """One comma-separated part of --index: N or A-B."""
    match = INDEX_PART_RE.fullmatch(part)
    if match is None:
        found = "" if part == text.strip() else f", found the part {shown(part)}"
        raise fail("index", text, f"N, A-B or A,B,C with N, A, B ASCII digits in 0..{GRID_SIZE - 1}{found}")
    low, high = (_grid_index(digits) for digits in (match[1], match[2] or match[1]))
    if high < low:
        raise fail("index", text, f"a range A-B with A <= B ({part} is reversed)")
    return range(low, high + 1)


def _grid_index(digits: str) -> int:
    """An index of the grid from its ASCII digits (InvalidValue outside it)."""
    expected = f"an int in 0..{GRID_SIZE - 1}"
    if len(digits) > len(str(GRID_SIZE)) + 2:  # far outside (and int() of a huge digit string is slow)
        raise fail("index", digits, expected)
    return check_int("index", int(digits), 0, GRID_SIZE - 1)


def select_pair(arch: str | None, seed: int | None, index: int | None) -> tuple[str, int]:
    """(arch, seed) from an arch and optional seed (default 0), or from a grid index; ValueError otherwise."""
    if index is not None:
        if arch is not None or seed is not None:
            raise ValueError("--index selects both code and seed: do not combine it with --arch or --seed")
        return index_to_pair(index)
    if arch is None:
        raise ValueError("one of --arch CODE or --index N is required")
    return arch, check_int("seed", 0 if seed is None else seed, 0, SEED_MAX)


def resolve_job(
    overrides: dict[str, Any],
    arch: str | None = None,
    seed: int | None = None,
    index: int | None = None,
    config: str | None = None,
    force: bool = False,
) -> Job:
    """Defaults, then the YAML `config`, then `overrides` (recipe and execution fields) -> a validated Job."""
    arch, seed = select_pair(arch, seed, index)
    values: dict[str, Any] = load_yaml(config) if config else {}
    values.update({k: v for k, v in overrides.items() if k in field_names(Recipe) + field_names(Execution)})
    recipe, execution = build_configs(values)
    return Job(arch=arch, seed=seed, recipe=recipe, execution=execution, force=force)


def done_record(job: Job, say: bool = True) -> RunRecord | None:
    """The record that makes this job done (complete for its recipe: `RunRecord.problem`), else None.

    A record that is unreadable or unsound (what the exporter would reject: a file name, code, seed or recipe
    hash that disagree, impossible numbers, no data fingerprint) is named in one line and trained over; a failed
    or preempted one silently. A UserError (one line, nothing trained or overwritten) where the path holds a
    record of a newer schema version, or a complete run of another recipe (results of two recipes would mix).
    `say`: print the line naming an unsound record (False: the caller looked before and said it).
    """
    path = job.record_path
    try:
        if not path.exists():
            return None
    except OSError:  # an unusable path (a name too long, say): the checks before training report it
        return None
    try:
        record = RunRecord.read(path)
    except NewerRecordError as err:
        raise PairRefused(f"{err}; not trained or overwritten") from None
    except RecordError as err:  # a corrupt or foreign file is retrained over (atomically), never trusted
        if say:
            print(f"{job.name}: not done: {err}; training over it", file=sys.stderr)
        return None
    if job.force:
        return None
    found = record.problem(job.recipe.hash())
    if found is None:
        return record
    rule, why = found
    if rule == "recipe":  # the rules before it passed: a sound, complete record of another recipe
        raise PairRefused(
            f"{path} holds a complete run of another recipe (hash {record.recipe_hash}, this one "
            f"{job.recipe.hash()}): use another --results-dir, or --force to overwrite"
        )
    if rule != "status" and say:
        print(f"{job.name}: not done: {path}: {why}; training over it", file=sys.stderr)
    return None
