"""Which (code, seed) pairs of the grid lack a complete record of a recipe: what `sweep make --missing` sweeps."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..arch.codes import unique_codes
from ..core.errors import UserError
from ..records.job import GRID_SIZE, index_to_pair, resolve_job
from ..records.run_record import NewerRecordError, RecordError, RunRecord, record_files


def recipe_hash_of(config_file: str | None) -> str:
    """The recipe hash fit would use with `--config config_file` (the built-in recipe without one)."""
    try:
        return resolve_job({}, index=0, config=config_file).recipe.hash()
    except (TypeError, ValueError) as err:
        raise UserError(f"bad --config-file: {err}") from None


def done_pairs(folders: Sequence[Path], recipe_hash: str) -> set[tuple[str, int]]:
    """(canonical, seed) of every record complete for `recipe_hash` (RunRecord.problem: what export uses).

    An unreadable file, a failed run, or one the export would reject (a file name, code or recipe hash that
    disagree, truncated, impossible numbers, mis-measured) is not done; each unsound or unreadable one is named
    in a line (failed runs and other recipes' runs are not). A *.json that is not a regular file is skipped,
    named. UserError on a record of a newer schema version.
    """
    from ..arch.complexity import complexity_table

    expected = complexity_table(unique_codes()).__getitem__
    done = set()
    for folder in folders:
        paths, others = record_files(folder)
        for line in others:
            print(line, file=sys.stderr)
        for path in paths:
            try:
                record = RunRecord.read(path)
            except NewerRecordError as err:
                raise UserError(str(err)) from None
            except RecordError as err:
                print(f"not done: {err}", file=sys.stderr)
                continue
            found = record.problem(recipe_hash, expected)
            if found is None:
                done.add(record.pair)
            elif found[0] not in ("status", "recipe"):
                print(f"not done: {path}: {found[1]}", file=sys.stderr)
    return done


def missing_indices(folders: Sequence[Path], recipe_hash: str) -> list[int]:
    """Grid indices N (fit --index N) whose pair has no complete record of the recipe."""
    done = done_pairs(folders, recipe_hash)
    return [n for n in range(GRID_SIZE) if index_to_pair(n) not in done]
