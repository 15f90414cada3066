"""Callbacks: the run record (with W&B config/summary) and an atomic per-epoch checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from ..arch.complexity import count_flops, count_params, ptflops_macs
from ..core import trace
from ..core.atomic import atomic_write_text
from ..core.errors import LockLost, MissingDependency
from ..core.provenance import device_info, library_versions
from ..records import runkeys
from ..records.recipe import Execution, Recipe
from ..records.run_record import COMPLETE, FAILED, PREEMPTED, NewerRecordError, RecordError, RunRecord
from . import checkpoints
from .module import MacroNetModule

ARCH_CACHE = "architectures"  # folder under the checkpoint root where each code's picture is drawn once


def now_iso() -> str:
    """The current UTC time as ISO text (seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunRecorder(pl.Callback):
    """At fit start: logs the measured complexity and the network's picture; at the end: writes the run record."""

    guard: Callable[[], None] | None = None  # runs before the record is written: raises LockLost if the lock was lost

    def __init__(
        self,
        path: Path,
        identity: dict[str, Any],
        recipe: Recipe,
        execution: Execution,
        extra: dict[str, Any] | None = None,
    ):
        self.path, self.identity, self.recipe, self.execution = Path(path), identity, recipe, execution
        self.extra = extra or {}
        self.complexity: dict[str, int] = {}
        self.started_at, self._t0 = now_iso(), time.perf_counter()
        self.record: RunRecord | None = None  # the last record built (written unless `kept`)
        self.kept = False  # True where a complete record at `path` was kept over this run's failed/preempted one

    def on_fit_start(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        net = pl_module.net
        self.complexity = {"params": count_params(net), "flops": count_flops(net), "ptflops_macs": ptflops_macs(net)}
        run = wandb_run(trainer)
        if run is not None:  # the config is complete since wandb.init: add what is measured on the built network
            device = {"device_name": device_info(pl_module.device)["name"]}
            cache = Path(self.execution.ckpt_dir) / ARCH_CACHE
            with wandb_calls(trainer):
                run.config.update({**self.complexity, **device}, allow_val_change=True)
                run.summary.update(self.complexity)
                log_architecture(run, self.identity["arch"], cache, self.complexity)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "test" and not trainer.interrupted:
            self.write(trainer, pl_module, COMPLETE)

    def on_test_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "val":
            self.write(trainer, pl_module, COMPLETE)

    def on_exception(self, trainer: pl.Trainer, pl_module: MacroNetModule, exception: BaseException) -> None:
        if isinstance(exception, (RunStopped, LockLost)):
            return  # stopped on request after a checkpoint: no record, a rerun resumes; or the record is another's
        if isinstance(exception, RunPreempted):
            self._mark_preempting(trainer)
            return self._try_write(trainer, pl_module, PREEMPTED, str(exception))
        self._try_write(trainer, pl_module, FAILED, f"{type(exception).__name__}: {exception}")

    def _try_write(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str) -> None:
        """Write the record of a run that ended by an exception; a failed write is reported, not raised over it."""
        try:
            self.write(trainer, module, status, error=error)
        except OSError as err:
            print(f"cannot write the run record {self.path}: {err.strerror or err}", file=sys.stderr)

    @staticmethod
    def _mark_preempting(trainer: pl.Trainer) -> None:
        """Tell W&B the run is being preempted (it requeues such a run when it exits non-zero)."""
        run = wandb_run(trainer)
        if run is not None and hasattr(run, "mark_preempting"):
            with wandb_calls(trainer):
                run.mark_preempting()

    def write(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str | None = None) -> Path:
        """Build and atomically write the run record; mirror the headline numbers to W&B.

        A run that did not complete (failed, preempted: a `--force` rerun, say) never replaces a complete record
        at the path, and no run replaces a record of a newer schema version: that record is kept, a line says
        so, and only W&B (where enabled) holds this run's.
        """
        if self.guard is not None:
            self.guard()
        self.record = self.build(trainer, module, status, error)
        held = _held_status(self.path)
        self.kept = held == NEWER or (held == COMPLETE and self.record.status != COMPLETE)
        if self.kept:
            ended = f"{self.record.status}" + (f" ({self.record.error})" if self.record.error else "")
            print(f"{self.path}: kept the {held} record there; this run ended {ended} and does not replace it",
                  file=sys.stderr)  # fmt: skip
        else:
            trace.phase("record", detail=status)
            self.record.write(self.path)
            trace.phase("record", "end", status)
        run = wandb_run(trainer)
        if run is not None:
            with wandb_calls(trainer):
                run.summary.update(runkeys.summary(self.record))
                save_record(run, self.record)
        return self.path

    def build(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str | None) -> RunRecord:
        """The record of this run as it stands (see README, 'What a run does and writes')."""
        dm, curves = trainer.datamodule, module.history
        done = len(curves["epoch"])
        if status == COMPLETE and done != self.recipe.epochs:
            status, error = FAILED, f"truncated: {done} of {self.recipe.epochs} epochs"
        return RunRecord(
            **self.identity, recipe=dataclasses.asdict(self.recipe), status=status, error=error,
            eval_split=dm.eval_split, epochs_completed=done,
            **_accuracies(curves, dm.eval_split, module.test_result), **self.complexity,
            curves={name: list(values) for name, values in curves.items()}, train_time_s=sum(curves["epoch_time_s"]),
            wall_time_s=time.perf_counter() - self._t0, execution=dataclasses.asdict(self.execution),
            versions=library_versions(), device=device_info(module.device), wandb=_wandb_info(trainer),
            started_at=self.started_at, finished_at=now_iso(), **self.extra,
        )  # fmt: skip


NEWER = "newer-version"  # _held_status of a record of a newer schema version


def _held_status(path: Path) -> str | None:
    """The status of the record at `path` (of any recipe), NEWER for a newer schema version, None for none or junk."""
    try:
        return RunRecord.read(path).status
    except NewerRecordError:
        return NEWER
    except RecordError:  # absent or corrupt: nothing to keep
        return None


def _accuracies(curves: dict[str, list[float]], eval_split: str, test: dict[str, float]) -> dict[str, Any]:
    """Final and best accuracy (percent) and the best epoch, from the per-epoch evaluation curve."""
    acc = curves["eval_acc"]
    best_epoch = max(range(len(acc)), key=acc.__getitem__) if acc else None
    best = acc[best_epoch] if acc else None
    if eval_split == "test":
        return {"test_acc_final": acc[-1] if acc else None, "test_acc_best": best, "best_epoch": best_epoch}
    return {
        "test_acc_final": test.get("test_acc"), "test_acc_best": None, "best_epoch": best_epoch,
        "val_acc_final": acc[-1] if acc else None, "val_acc_best": best,
    }  # fmt: skip


def wandb_run(trainer: pl.Trainer, lost_too: bool = False) -> Any:
    """The live W&B run of the trainer's logger, or None (also once its service is lost, unless `lost_too`)."""
    from pytorch_lightning.loggers import WandbLogger

    logger = trainer.logger
    if not isinstance(logger, WandbLogger):
        return None
    mirror = getattr(logger, "mirror", None)
    return logger.experiment if lost_too or mirror is None or mirror.lost is None else None


def wandb_calls(trainer: pl.Trainer) -> contextlib.AbstractContextManager[None]:
    """Around W&B calls of the trainer's run: a call that finds W&B's service gone ends the mirror with one line,
    not the run (tracking.WandbMirror)."""
    mirror = getattr(trainer.logger, "mirror", None)
    return mirror.calls() if mirror is not None else contextlib.nullcontext()


def save_record(run: Any, record: RunRecord) -> Path:
    """Save the record (curves included) as the file runkeys.RECORD_FILE of the W&B run, uploaded at once."""
    path = atomic_write_text(Path(run.dir) / runkeys.RECORD_FILE, record.to_json())
    run.save(str(path), base_path=run.dir, policy="now")
    return path


def log_architecture(run: Any, code: str, cache: Path, counts: dict[str, int]) -> None:
    """Log the picture of the network (drawn once per code into `cache`); without matplotlib, a one-line notice."""
    from ..arch import picture

    try:
        path = picture.cached_png(code, cache, counts.get("params"), counts.get("flops"))
    except MissingDependency as err:
        print(f"no architecture picture on the W&B run: {err}", file=sys.stderr)
        return
    import wandb

    run.log({runkeys.ARCH_IMAGE_KEY: wandb.Image(str(path), caption=code)})


def _wandb_info(trainer: pl.Trainer) -> dict[str, Any] | None:
    run = wandb_run(trainer, lost_too=True)  # read here, not asked of the service: the run its data went to
    if run is None or getattr(run, "disabled", False):
        return None
    mode = run.settings.mode
    url = getattr(run, "url", None) if mode == "online" else None  # an offline run has none (W&B warns if asked)
    return {
        "id": run.id,
        "url": url,
        "project": run.project,
        "mode": mode,
        "sweep_id": os.environ.get("WANDB_SWEEP_ID"),
    }


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar without the validation bar: the per-epoch line prints cleanly above the training bar."""

    def init_validation_tqdm(self) -> Any:
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar


class EpochCheckpoint(pl.Callback):
    """Saves `last.ckpt` after every epoch's evaluation, atomically, each checkpoint stating what it is for;
    `guard` runs before each write (raises LockLost where the run's lock was taken over)."""

    def __init__(self, path: Path, meta: dict[str, Any] | None = None, guard: Callable[[], None] | None = None):
        self.path, self.meta, self.guard = Path(path), meta or {}, guard

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[checkpoints.META_KEY] = self.meta

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        checkpoints.save(trainer, self.path, self.guard)


class RunStopped(Exception):
    """A run ended on request (Ctrl-C) after its checkpoint: no record is written and a rerun resumes it."""


class RunPreempted(Exception):
    """A run ended by SIGTERM/SIGUSR1 after saving a checkpoint: its record says `preempted`, a rerun resumes it."""


class RunControl(pl.Callback):
    """Ends a run on request, its checkpoint saved first: Ctrl-C (`soon`: after the epoch's checkpoint; `now`: at
    the next step) and preemption (`preempt`: after the current training step, with a mid-epoch checkpoint).

    Placed after EpochCheckpoint, so at the end of an epoch that checkpoint is saved before the run stops. The
    events are set by the worker's main thread (signal handlers live there); the run is on another thread.
    """

    def __init__(self, stop: Any, path: Path, guard: Callable[[], None] | None = None):
        self.stop, self.path, self.guard = stop, Path(path), guard

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self.stop.now.is_set():
            raise RunStopped(f"stopped in epoch {trainer.current_epoch + 1} (its checkpoint is the last epoch's)")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        last = idx + 1 >= trainer.num_training_batches  # then the epoch's own checkpoint follows its evaluation:
        if self.stop.preempt.is_set() and not last:  # a mid-epoch one there would resume past that evaluation
            checkpoints.save(trainer, self.path, self.guard)
            step = f"step {idx + 1} of epoch {trainer.current_epoch + 1}"
            raise RunPreempted(f"preempted by {self.stop.reason()} after {step}; checkpoint saved")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        epoch = f"epoch {trainer.current_epoch + 1}"
        if self.stop.preempt.is_set():
            raise RunPreempted(f"preempted by {self.stop.reason()} after {epoch}; checkpoint saved")
        if self.stop.soon.is_set():
            raise RunStopped(f"stopped after the checkpoint of {epoch}")
