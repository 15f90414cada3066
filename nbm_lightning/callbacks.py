"""Callbacks: the run record (with W&B config/summary) and an atomic per-epoch checkpoint."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from . import records
from .complexity import count_flops, count_params, ptflops_macs
from .module import MacroNetModule


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunRecorder(pl.Callback):
    """Logs the architecture's identity and complexity at fit start; writes the run record at the end."""

    def __init__(
        self,
        path: Path,
        identity: dict[str, Any],
        recipe: dict[str, Any],
        execution: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ):
        self.path, self.identity, self.recipe, self.execution = Path(path), identity, recipe, execution
        self.extra = extra or {}
        self.complexity: dict[str, int] = {}
        self.started_at, self._t0, self.written = _now(), time.perf_counter(), False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        net = pl_module.net
        self.complexity = {"params": count_params(net), "flops": count_flops(net), "ptflops_macs": ptflops_macs(net)}
        run = _wandb_run(trainer)
        if run is not None:
            run.config.update({**self.identity, **self.complexity}, allow_val_change=True)
            run.summary.update(self.complexity)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "test" and not trainer.interrupted:
            self.write(trainer, pl_module, records.COMPLETE)

    def on_test_end(self, trainer: pl.Trainer, pl_module: MacroNetModule) -> None:
        if trainer.datamodule.eval_split == "val":
            self.write(trainer, pl_module, records.COMPLETE)

    def on_exception(self, trainer: pl.Trainer, pl_module: MacroNetModule, exception: BaseException) -> None:
        self.write(trainer, pl_module, records.FAILED, error=f"{type(exception).__name__}: {exception}")

    def write(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str | None = None) -> Path:
        """Assemble and atomically write the run record; mirror the headline numbers to W&B."""
        record = self.build(trainer, module, status, error)
        records.write_json(self.path, record)
        self.written = True
        run = _wandb_run(trainer)
        if run is not None:
            keys = ("status", "test_acc_final", "test_acc_best", "best_epoch", "epochs_completed", "finished_at")
            run.summary.update({k: record[k] for k in keys if record.get(k) is not None})
        return self.path

    def build(self, trainer: pl.Trainer, module: MacroNetModule, status: str, error: str | None) -> dict[str, Any]:
        """The record's fields (see README, 'Run records')."""
        dm, curves = trainer.datamodule, module.history
        record = {"schema": records.SCHEMA, "schema_version": records.SCHEMA_VERSION, "status": status, "error": error}
        record.update(self.identity)
        record.update(recipe=self.recipe, execution=self.execution, **self.complexity)
        record.update(eval_split=dm.eval_split, epochs_completed=len(curves["epoch"]))
        record.update(_accuracies(curves, dm.eval_split, module.test_result, status, self.recipe["epochs"]))
        record.update(
            curves=curves, train_time_s=sum(curves["epoch_time_s"]), wall_time_s=time.perf_counter() - self._t0
        )
        record.update(versions=records.library_versions(), device=records.device_info(module.device))
        record.update(wandb=_wandb_info(trainer), started_at=self.started_at, finished_at=_now(), **self.extra)
        if status == records.COMPLETE and record["epochs_completed"] != self.recipe["epochs"]:
            record.update(
                status=records.FAILED,
                error=f"truncated: {record['epochs_completed']} of {self.recipe['epochs']} epochs",
            )
        return record


def _accuracies(
    curves: dict[str, list[float]], eval_split: str, test: dict[str, float], status: str, epochs: int
) -> dict[str, Any]:
    """Final and best accuracy (percent) and the best epoch, from the per-epoch evaluation curve."""
    acc = curves["eval_acc"]
    best_epoch = max(range(len(acc)), key=acc.__getitem__) if acc else None
    best = acc[best_epoch] if acc else None
    if eval_split == "test":
        return {"test_acc_final": acc[-1] if acc else None, "test_acc_best": best, "best_epoch": best_epoch}
    return {
        "test_acc_final": test.get("test_acc"),
        "test_acc_best": None,
        "best_epoch": best_epoch,
        "val_acc_final": acc[-1] if acc else None,
        "val_acc_best": best,
    }


def _wandb_run(trainer: pl.Trainer) -> Any:
    """The live W&B run of the trainer's logger, or None."""
    from pytorch_lightning.loggers import WandbLogger

    logger = trainer.logger
    return logger.experiment if isinstance(logger, WandbLogger) else None


def _wandb_info(trainer: pl.Trainer) -> dict[str, Any] | None:
    run = _wandb_run(trainer)
    if run is None or getattr(run, "disabled", False):
        return None
    return {
        "id": run.id,
        "url": getattr(run, "url", None),
        "project": run.project,
        "mode": run.settings.mode,
        "sweep_id": os.environ.get("WANDB_SWEEP_ID"),
    }


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
