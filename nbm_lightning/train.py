"""Train one Job: data, network, LightningModule, W&B logger, callbacks, resume, run record."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from . import records
from .callbacks import EpochCheckpoint, RunRecorder
from .data import CIFAR10DataModule
from .fit import Job
from .model import MacroNet
from .module import MacroNetModule, NonFiniteLossError
from .tracking import make_logger, resolve_mode

# Lightning notices that do not apply here: we log once per epoch, never per step.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def train(job: Job) -> int:
    """Run the job to a record; 0 when complete, 1 when the run failed (its record says why)."""
    pl.seed_everything(job.seed, workers=True, verbose=False)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = job.execution.tf32
    device = _device(job.execution.accelerator)
    dm = make_datamodule(job, device)
    dm.prepare_data()  # missing data fails here, before any W&B run or record exists
    dm.setup("fit")
    net = MacroNet(job.arch, num_classes=dm.num_classes)
    if job.execution.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if job.execution.compile:
        net.compile(dynamic=False)
    module = MacroNetModule(net, dm.num_classes, job.recipe, job.execution.channels_last, job.execution.sgd_impl)
    if job.force:
        shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    ckpt = job.ckpt_dir / "last.ckpt"
    recorder = RunRecorder(
        job.record_path,
        identity(job),
        dataclasses.asdict(job.recipe),
        dataclasses.asdict(job.execution),
        _extra(dm, ckpt),
    )
    trainer = make_trainer(job, device, [recorder, EpochCheckpoint(ckpt)])
    return _fit(job, trainer, module, dm, ckpt, recorder)


def _fit(
    job: Job, trainer: pl.Trainer, module: MacroNetModule, dm: CIFAR10DataModule, ckpt: Path, recorder: RunRecorder
) -> int:
    """Fit (resuming where a checkpoint exists), test on a held-out split, and report."""
    if ckpt.exists():
        print(f"{job.name}: resuming from {ckpt}")
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt.exists() else None)
        if dm.eval_split == "val" and not trainer.interrupted:
            trainer.test(module, datamodule=dm, verbose=False)
    except NonFiniteLossError as err:
        print(f"{job.name}: FAILED: {err}; record: {job.record_path}", file=sys.stderr)
        return 1
    finally:
        _finish_wandb(trainer)
    record = records.read_record(job.record_path) if recorder.written else {}
    if record.get("status") != records.COMPLETE:
        print(
            f"{job.name}: FAILED: {record.get('error', 'interrupted before the end')}; checkpoint kept at {ckpt}",
            file=sys.stderr,
        )
        return 1
    if not job.execution.keep_checkpoint:
        shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    print(
        f"{job.name}: test acc final {record['test_acc_final']:.2f}% best {_fmt(record['test_acc_best'])}; record: {job.record_path}"
    )
    return 0


def make_datamodule(job: Job, device: torch.device) -> CIFAR10DataModule:
    """The CIFAR-10 DataModule of a job."""
    r, e = job.recipe, job.execution
    return CIFAR10DataModule(
        data_dir=e.data_dir,
        batch_size=r.batch_size,
        eval_batch_size=e.eval_batch_size,
        pipeline=e.pipeline,
        val_size=r.val_size,
        split_seed=r.split_seed,
        download=e.download,
        train_limit=r.train_limit,
        eval_limit=r.eval_limit,
        num_workers=e.num_workers,
        seed=job.seed,
        device=str(device),
    )


def make_trainer(job: Job, device: torch.device, callbacks: list[pl.Callback]) -> pl.Trainer:
    """A single-device Trainer with the W&B logger; checkpointing is ours (atomic, every epoch)."""
    e = job.execution
    logger = _logger(job)
    return pl.Trainer(
        max_epochs=job.recipe.epochs,
        accelerator="gpu" if device.type == "cuda" else device.type,
        devices=1,
        precision=job.recipe.precision,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        benchmark=e.cudnn_benchmark,
        enable_progress_bar=e.progress,
        enable_model_summary=False,
        log_every_n_steps=50,
        default_root_dir=str(job.ckpt_dir),
    )


def identity(job: Job) -> dict[str, Any]:
    """The run's key fields, shared by the record and the W&B config."""
    return {
        "arch": job.arch,
        "canonical": job.canonical,
        "seed": job.seed,
        "run_name": job.name,
        "recipe_hash": job.recipe.hash(),
    }


def _logger(job: Job) -> Any:
    """The W&B logger (mode resolved without prompting); its run id persists beside the checkpoint."""
    e = job.execution
    mode = resolve_mode(e.wandb_mode)
    if mode == "disabled":
        return False
    job.ckpt_dir.mkdir(parents=True, exist_ok=True)
    id_file = job.ckpt_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.exists() else None
    config = {**identity(job), **dataclasses.asdict(job.recipe), **dataclasses.asdict(job.execution)}
    logger = make_logger(
        mode, e.wandb_project, e.wandb_entity, job.name, job.canonical, _tags(job), config, run_id, Path(".")
    )
    records.atomic_write_text(id_file, logger.experiment.id)
    if mode == "offline":
        print(
            f"W&B offline (no credentials found): upload later with `wandb sync {Path(logger.experiment.dir).parent}`"
        )
    return logger


def _tags(job: Job) -> list[str]:
    """Tags for filtering in the W&B UI."""
    recipe = "published-recipe" if job.recipe == type(job.recipe)() else "custom-recipe"
    return [
        recipe,
        f"seed-{job.seed}",
        f"pipeline-{job.execution.pipeline}",
        job.recipe.precision,
        "canonical-input" if job.arch == job.canonical else "noncanonical-input",
    ]


def _extra(dm: CIFAR10DataModule, ckpt: Path) -> dict[str, Any]:
    """Record fields that depend on the data split and on resuming."""
    extra: dict[str, Any] = {"resumed": ckpt.exists()}
    if dm.val_indices is not None:
        extra["val_indices"] = list(dm.val_indices)
    return extra


def _device(accelerator: str) -> torch.device:
    """The single training device for an accelerator choice."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


def _finish_wandb(trainer: pl.Trainer) -> None:
    """Close the W&B run so offline files are complete."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


def _fmt(value: float | None) -> str:
    return "n/a (validation split)" if value is None else f"{value:.2f}%"
