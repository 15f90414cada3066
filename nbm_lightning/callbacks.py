"""Callbacks: the run record (with W&B config/summary) and an atomic per-epoch checkpoint."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from . import runkeys
from .atomic import atomic_write_text
from .complexity import count_flops, count_params, ptflops_macs
from .config import Execution, Recipe
from .errors import MissingDependency
from .module import MacroNetModule
from .provenance import device_info, library_versions
from .record import COMPLETE, FAILED, RunRecord

ARCH_CACHE = "architectures"  # folder under the checkpoint root where each code's picture is drawn once


def now_iso() -> str:
    """The current UTC time as ISO text (seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunRecorder(pl.Callback):
    """At fit start: logs the measured complexity and the network's picture; at the end: writes the run record."""

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
        self.record: RunRecord | None = None  # the last record written

    def on_fit_start(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        net = pl_module.net
        self.complexity = {"params": count_params(net), "flops": count_flops(net), "ptflops_macs": ptflops_macs(net)}
        run = wandb_run(trainer)
        if run is not None:  # the config is complete since wandb.init: add what is measured on the built network
            device = {"device_name": device_info(pl_module.device)["name"]}
            run.config.update({**self.complexity, **device}, allow_val_change=True)
            run.summary.update(self.complexity)
            log_architecture(run, self.identity["arch"], Path(self.execution.ckpt_dir) / ARCH_CACHE, self.complexity)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "test" and not trainer.interrupted:
            self.write(trainer, pl_module, COMPLETE)

    def on_test_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "val":
            self.write(trainer, pl_module, COMPLETE)

    def on_exception(self, trainer: pl.Trainer, pl_module: MacroNetModule, exception: BaseException) -> None:
        if isinstance(exception, RunStopped):
            return  # stopped on request after a checkpoint: no record, a rerun resumes
        self.write(trainer, pl_module, FAILED, error=f"{type(exception).__name__}: {exception}")

    def write(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str | None = None) -> Path:
        """Build and atomically write the run record; mirror the headline numbers to W&B."""
        self.record = self.build(trainer, module, status, error)
        self.record.write(self.path)
        run = wandb_run(trainer)
        if run is not None:
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


def wandb_run(trainer: pl.Trainer) -> Any:
    """The live W&B run of the trainer's logger, or None."""
    from pytorch_lightning.loggers import WandbLogger

    logger = trainer.logger
    return logger.experiment if isinstance(logger, WandbLogger) else None


def save_record(run: Any, record: RunRecord) -> Path:
    """Save the record (curves included) as the file runkeys.RECORD_FILE of the W&B run, uploaded at once."""
    path = atomic_write_text(Path(run.dir) / runkeys.RECORD_FILE, record.to_json())
    run.save(str(path), base_path=run.dir, policy="now")
    return path


def log_architecture(run: Any, code: str, cache: Path, counts: dict[str, int]) -> None:
    """Log the picture of the network (drawn once per code into `cache`); without matplotlib, a one-line notice."""
    from . import archplot

    try:
        path = archplot.cached_png(code, cache, counts.get("params"), counts.get("flops"))
    except MissingDependency as err:
        print(f"no architecture picture on the W&B run: {err}", file=sys.stderr)
        return
    import wandb

    run.log({runkeys.ARCH_IMAGE_KEY: wandb.Image(str(path), caption=code)})


def _wandb_info(trainer: pl.Trainer) -> dict[str, Any] | None:
    run = wandb_run(trainer)
    if run is None or getattr(run, "disabled", False):
        return None
    return {
        "id": run.id, "url": getattr(run, "url", None), "project": run.project, "mode": run.settings.mode,
        "sweep_id": os.environ.get("WANDB_SWEEP_ID"),
    }  # fmt: skip


class EpochCheckpoint(pl.Callback):
    """Saves `last.ckpt` after every epoch's evaluation, atomically (temporary file + rename)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp)
        os.replace(tmp, self.path)


class RunStopped(Exception):
    """A run ended on request (Ctrl-C) after its checkpoint: no record is written and a rerun resumes it."""


class GracefulStop(pl.Callback):
    """Ends a run on request: after the epoch's checkpoint once `soon` is set, at the next step once `now` is.

    Placed after EpochCheckpoint, so at the end of an epoch the checkpoint is saved before the run stops. The
    events are set by the worker's main thread (signal handlers live there); the run may be on another thread.
    """

    def __init__(self, soon: threading.Event, now: threading.Event):
        self.soon, self.now = soon, now

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self.now.is_set():
            raise RunStopped(f"stopped in epoch {trainer.current_epoch + 1} (its checkpoint is the last epoch's)")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.soon.is_set() and not trainer.sanity_checking and trainer.state.fn == "fit":
            raise RunStopped(f"stopped after the checkpoint of epoch {trainer.current_epoch + 1}")
