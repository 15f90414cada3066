"""A run's checkpoint file: written atomically, checked before it is resumed, set aside when it cannot be.

`last.ckpt` lives in `<ckpt_dir>/<canonical>-s<seed>-<recipe hash>/`. Every checkpoint carries `META_KEY`: the
run name, recipe hash, input pipeline and checkpoint format it was written for. Before a run resumes, `problem`
loads the file: a truncated or corrupt file, or one of another pipeline, recipe or format, is moved aside under
a name that says why (never resumed silently) and the run starts from epoch 0.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from . import trace

FORMAT = 2  # checkpoint format: 2 = mid-epoch resumable (loader position and running metrics saved)
META_KEY = "nbm_run"  # the checkpoint's entry naming what it was written for
LAST = "last.ckpt"  # the one checkpoint file of a run


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, I/O error): the run fails, the previous file is intact."""


def meta(run_name: str, recipe_hash: str, pipeline: str) -> dict[str, Any]:
    """What a checkpoint is written for: the run, its recipe, its input pipeline, the checkpoint format."""
    return {"run_name": run_name, "recipe_hash": recipe_hash, "pipeline": pipeline, "format": FORMAT}


def save(trainer: Any, path: Path) -> Path:
    """Write the trainer's checkpoint to `path` through a temporary file and an atomic rename."""
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


def problem(path: Path, expected: dict[str, Any]) -> str | None:
    """Why the checkpoint at `path` cannot be resumed by the run described by `expected` (meta()), or None."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 (truncated, corrupt, not a checkpoint: any reason to set it aside)
        return f"unreadable ({type(err).__name__}: {' '.join(str(err).split())[:120]})"
    found = checkpoint.get(META_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(found, dict):
        return "written by an older version (no run description)"
    differing = [f"{k} {found.get(k)!r}, this run {v!r}" for k, v in expected.items() if found.get(k) != v]
    return "; ".join(differing) or None


def set_aside(path: Path, why: str) -> Path:
    """Move a checkpoint that cannot be resumed out of the way, under a name that says so; one line on stderr."""
    aside = path.with_name(f"{path.name}.set-aside-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    print(f"warning: checkpoint {path} not resumed ({why}): moved to {aside.name}; from epoch 0", file=sys.stderr)
    return aside


def other_recipes(ckpt_dir: Path, run_name: str, recipe_hash: str) -> list[Path]:
    """Checkpoint folders of the same (code, seed) under other recipes (left by a run whose options changed)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob(f"{run_name}-*") if p.is_dir() and p.name != f"{run_name}-{recipe_hash}")
