"""A run's checkpoint file: written atomically, checked before it is resumed, set aside when it cannot be.

`last.ckpt` lives in `<ckpt_dir>/<canonical>-s<seed>-<recipe hash>/`. Every checkpoint carries `META_KEY`: the
run name, recipe hash, input pipeline and checkpoint format it was written for. Before a run resumes, `problem`
loads the file: a truncated or corrupt file, one that is not plain data, or one of another pipeline, recipe or
format, is moved aside to `<ckpt_dir>/set-aside/` under a name that says why (never resumed silently, kept when
the run's folder is removed) and the run starts from epoch 0.

A checkpoint is data, never code: it is unpickled only by torch's weights-only loader (tensors, storages, plain
containers and numbers), widened by SAFE_GLOBALS alone, so a crafted file runs nothing; Lightning's own resume
loads it the same way (`safe_loading`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core import trace

FORMAT = 2  # checkpoint format: 2 = mid-epoch resumable (loader position and running metrics saved)
META_KEY = "nbm_run"  # the checkpoint's entry naming what it was written for
LAST = "last.ckpt"  # the one checkpoint file of a run
SET_ASIDE = "set-aside"  # folder under the checkpoint root where checkpoints that cannot be resumed are kept
# What our checkpoints hold beyond what torch's weights-only loader allows by itself (tensors, storages, dicts,
# OrderedDicts, lists, numbers, strings): nothing. Found by loading real checkpoints (end of an epoch and
# mid-epoch at a preemption, both input pipelines) with weights_only=True; tests/test_reliability.py resumes
# both kinds through it. A type added here must be data: rebuilding it must run no code of the file's choosing.
SAFE_GLOBALS: list[Any] = []


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, I/O error): the run fails, the previous file is intact."""


def meta(run_name: str, recipe_hash: str, pipeline: str) -> dict[str, Any]:
    """What a checkpoint is written for: the run, its recipe, its input pipeline, the checkpoint format."""
    return {"run_name": run_name, "recipe_hash": recipe_hash, "pipeline": pipeline, "format": FORMAT}


def save(trainer: Any, path: Path, guard: Callable[[], None] | None = None) -> Path:
    """Write the trainer's checkpoint to `path` through a temporary file and an atomic rename.

    `guard` runs first and raises (LockLost) where this process may no longer write the run's files.
    """
    if guard is not None:
        guard()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    trace.phase("checkpoint")
    try:
        trainer.save_checkpoint(tmp, weights_only=False)  # a full checkpoint (said, so Lightning does not say it)
        trace.phase("checkpoint", "written")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {err.strerror or err}") from None
    trace.phase("checkpoint", "end")
    return path


@contextlib.contextmanager
def safe_loading() -> Iterator[None]:
    """Inside: torch's weights-only loader accepts SAFE_GLOBALS too (and nothing else); pass weights_only=True."""
    import torch

    with torch.serialization.safe_globals(SAFE_GLOBALS):
        yield


def load(path: Path) -> Any:
    """The checkpoint at `path`, unpickled as data only (weights_only=True): a crafted file runs nothing."""
    import torch

    with safe_loading():
        return torch.load(path, map_location="cpu", weights_only=True)


def problem(path: Path, expected: dict[str, Any]) -> str | None:
    """Why the checkpoint at `path` cannot be resumed by the run described by `expected` (meta()), or None."""
    import pickle

    try:
        checkpoint = load(path)
    except pickle.UnpicklingError as err:  # torch's weights-only loader refuses what is not plain data
        refused = re.search(r"GLOBAL (\S+)", str(err))
        if refused:  # (torch's message suggests allowing it: never, for a file we did not just write)
            return f"not plain data (it names {refused.group(1).rstrip('.,:;')}, which a checkpoint never holds)"
        return f"unreadable (UnpicklingError: {' '.join(str(err).split())[:120]})"
    except Exception as err:  # noqa: BLE001 (truncated, corrupt, not a checkpoint: any reason to set it aside)
        return f"unreadable ({type(err).__name__}: {' '.join(str(err).split())[:120]})"
    found = checkpoint.get(META_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(found, dict):
        return "written by an older version (no run description)"
    differing = [f"{k} {found.get(k)!r}, this run {v!r}" for k, v in expected.items() if found.get(k) != v]
    return "; ".join(differing) or None


def set_aside(path: Path, why: str) -> Path:
    """Move a checkpoint that cannot be resumed out of its run's folder (removed when the run completes) to
    `<ckpt root>/set-aside/<run folder>-<time>-<reason>.ckpt`; one line on stderr says why and where."""
    reason = re.sub(r"[^a-z0-9]+", "-", why.split("(")[0].lower()).strip("-")[:60].rstrip("-") or "unknown"
    folder = path.parent.parent / SET_ASIDE
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f"{path.parent.name}-{time.strftime('%Y%m%d-%H%M%S')}-{reason}.ckpt"
    os.replace(path, aside)
    print(f"warning: checkpoint {path} not resumed ({why}): moved to {aside}; from epoch 0", file=sys.stderr)
    return aside


def other_recipes(ckpt_dir: Path, run_name: str, recipe_hash: str) -> list[Path]:
    """Checkpoint folders of the same (code, seed) under other recipes (left by a run whose options changed)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob(f"{run_name}-*") if p.is_dir() and p.name != f"{run_name}-{recipe_hash}")
