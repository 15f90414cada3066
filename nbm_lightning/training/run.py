"""Train one Job, from builders that the benchmarks and tests use too.

The builders take a recipe and execution settings and make exactly what a `fit` run trains with: the
DataModule, the network, the LightningModule and the Trainer. `run(job)` is one run, its steps in order: seed,
data, network, module, trainer (with the W&B logger, the record and checkpoint callbacks), fit (resuming), test,
record; it returns how the run ended (an `Outcome`). Threads, locks and signals stay around it, in the worker.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch import nn

from ..arch.complexity import complexity
from ..arch.network import MacroNet, weights_sha256
from ..core import trace
from ..core.atomic import atomic_write_text
from ..core.errors import UserError
from ..records.job import Job
from ..records.outcome import Outcome
from ..records.recipe import Execution, Recipe
from ..records.run_record import RunRecord
from ..records.runkeys import DATA_KEY, run_config
from ..records.tracking import make_logger, offline_note, resolve_mode
from . import checkpoints
from .callbacks import (
    EpochCheckpoint,
    EpochProgressBar,
    RunControl,
    RunPreempted,
    RunRecorder,
    RunStopped,
    wandb_calls,
    wandb_run,
)
from .cifar10_files import fingerprint
from .datamodule import CIFAR10DataModule, DataCache
from .module import MacroNetModule, NonFiniteLossError

# Lightning notices that do not apply here: we log once per epoch, never per step.
warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
# Printed wherever `srun` is on PATH (every SLURM node) and a run was not started by srun: a run is one process on one
# device, so srun's multi-process launch does not apply (sweeps/slurm_array.sh starts it without srun, on purpose).
warnings.filterwarnings("ignore", "The `srun` command is available on your system but is not used")


class LightningNotices(logging.Filter):
    """Drops Lightning's informational notices that say nothing about a run here, each named below; everything
    else it logs (its warnings and errors, and any notice not listed) still prints."""

    MESSAGES = (
        "GPU available:",  # hardware inventory: the record holds the device
        "TPU available:",
        "HPU available:",
        "💡 Tip:",  # advertisements for Lightning's hosted loggers
        "`Trainer.fit` stopped:",  # `max_epochs` reached: the project's own line says the run is complete
        "Restoring states from the checkpoint path",  # the project's own line says it resumes, and from where
        "Restored all states from the checkpoint",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.MESSAGES)


for _handler in logging.getLogger("pytorch_lightning").handlers:  # Lightning's own console handler
    _handler.addFilter(LightningNotices())


# ---------------------------------------------------------------- builders


def seed_run(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) as every run is seeded, before anything is built."""
    pl.seed_everything(seed, workers=True, verbose=False)


def apply_numerics(recipe: Recipe, execution: Execution) -> None:
    """The process-wide arithmetic settings of a run: TF32 (recipe) and cuDNN autotuning (execution)."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = recipe.tf32
    torch.backends.cudnn.benchmark = execution.cudnn_benchmark


def pick_device(accelerator: str) -> torch.device:
    """The single training device for an accelerator choice."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


def build_datamodule(
    recipe: Recipe, execution: Execution, seed: int, device: torch.device, cache: DataCache | None = None
) -> CIFAR10DataModule:
    """The CIFAR-10 DataModule of a run (not yet prepared or set up); `cache`: a worker's resident data."""
    r, e = recipe, execution
    return CIFAR10DataModule(
        data_dir=e.data_dir, batch_size=r.batch_size, eval_batch_size=e.eval_batch_size, pipeline=e.pipeline,
        val_size=r.val_size, split_seed=r.split_seed, download=e.download, train_limit=r.train_limit,
        eval_limit=r.eval_limit, num_workers=e.num_workers, seed=seed, device=str(device), cache=cache,
    )  # fmt: skip


def build_network(arch: str, num_classes: int, execution: Execution) -> nn.Module:
    """MacroNet(arch) on the CPU (weights from the current seed), in the run's memory format, compiled on request."""
    net = MacroNet(arch, num_classes=num_classes)
    if execution.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if execution.compile:
        net.compile(dynamic=False)
    return net


def build_module(net: nn.Module, num_classes: int, recipe: Recipe, execution: Execution) -> MacroNetModule:
    """The LightningModule that trains `net` with the recipe."""
    return MacroNetModule(net, num_classes, recipe, execution.channels_last, execution.sgd_impl)


def build_trainer(
    recipe: Recipe,
    execution: Execution,
    device: torch.device,
    callbacks: list[pl.Callback],
    logger: Any = False,
    **overrides: Any,
) -> pl.Trainer:
    """A single-device Trainer for the recipe (checkpoints are ours: atomic, every epoch); `overrides`: Trainer args."""
    apply_numerics(recipe, execution)
    callbacks = [*trace.callbacks(), *callbacks]  # first: a phase's end is traced before the next phase starts
    progress = [EpochProgressBar()] if execution.progress else []
    settings = dict(
        max_epochs=recipe.epochs, accelerator="gpu" if device.type == "cuda" else device.type, devices=1,
        precision=recipe.precision, logger=logger, callbacks=[*callbacks, *progress], enable_checkpointing=False,
        num_sanity_val_steps=0, benchmark=execution.cudnn_benchmark, enable_progress_bar=execution.progress,
        enable_model_summary=False, log_every_n_steps=50,
    )  # fmt: skip
    return pl.Trainer(**{**settings, **overrides})


# ---------------------------------------------------------------- one run


class StopEvents(Protocol):
    """What a run reads to stop on request (nbm_lightning.runner.worker.StopSignal sets them)."""

    soon: threading.Event  # stop after the next checkpoint (end of the current epoch)
    now: threading.Event  # stop at the next training step
    preempt: threading.Event  # save a checkpoint after the current training step and end as preempted

    def reason(self) -> str:
        """The signal that asked for preemption, by name."""


def run(
    job: Job, cache: DataCache | None = None, stop: StopEvents | None = None, guard: Callable[[], None] | None = None
) -> Outcome:
    """One run, in order: seed, data, network, module, trainer, fit, test, record. Returns how it ended: COMPLETE,
    FAILED (the record says why), STOPPED (Ctrl-C) or PREEMPTED (SIGTERM/SIGUSR1: checkpoint saved, record
    `preempted`).

    `cache` keeps the data of a worker's earlier runs; `stop` (set by the worker's main thread) ends the run
    after a checkpoint; `guard` runs before every checkpoint and record write and raises lock.LockLost (out of
    run, nothing written) where another process took the run's lock over. Everything else is built and seeded
    afresh, as in a new process.
    """
    trace.phase("setup", detail=job.name)
    seed_run(job.seed)
    device = pick_device(job.execution.accelerator)
    dm = prepared_data(job, device, cache)  # missing data fails here, before any W&B run or record exists
    net = build_network(job.arch, dm.num_classes, job.execution)
    module = build_module(net, dm.num_classes, job.recipe, job.execution)
    meta = checkpoints.meta(job.name, job.recipe.hash(), job.execution.pipeline)
    ckpt = resumable_checkpoint(job, meta)
    data = fingerprint(job.execution.data_dir)
    extra = {**run_fields(dm, ckpt), "init_sha256": weights_sha256(net), "data": data}
    recorder = RunRecorder(job.record_path, identity(job), job.recipe, job.execution, extra)
    recorder.guard = guard
    callbacks = [recorder, EpochCheckpoint(ckpt, meta, guard)] + ([RunControl(stop, ckpt, guard)] if stop else [])
    trainer = build_trainer(
        job.recipe, job.execution, device, callbacks, logger=wandb_logger(job, data),
        default_root_dir=str(job.ckpt_dir), plugins=cluster_plugins(),
    )  # fmt: skip
    resume = str(ckpt) if ckpt.exists() else None
    if resume:
        print(f"{job.name}: resuming from {ckpt}")
    try:
        with checkpoints.safe_loading():  # Lightning's own load of the checkpoint: data only, as `problem`'s
            trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
        if dm.eval_split == "val" and not trainer.interrupted:
            trainer.test(module, datamodule=dm, verbose=False)
    except NonFiniteLossError as err:
        return ended(job, Outcome.FAILED, f"FAILED: {err}; record: {job.record_path}")
    except RunStopped as err:
        return ended(job, Outcome.STOPPED, f"{err}; a rerun resumes from {ckpt}")
    except RunPreempted as err:
        outcome = ended(job, Outcome.PREEMPTED, f"{err}; {_preempted_note(job, recorder)}")
        finish_wandb(trainer, outcome.exit_status)  # before the agent does: W&B requeues a run exiting non-zero
        return outcome
    finally:
        finish_wandb(trainer)
    return recorded(job, recorder.record, ckpt)


def prepared_data(job: Job, device: torch.device, cache: DataCache | None) -> CIFAR10DataModule:
    """The run's DataModule, its data present and split; a bad split (e.g. a validation split as large as the data)
    is a UserError, before any work."""
    dm = build_datamodule(job.recipe, job.execution, job.seed, device, cache)
    dm.prepare_data()
    try:
        dm.setup("fit")
    except ValueError as err:
        raise UserError(str(err)) from None
    return dm


def resumable_checkpoint(job: Job, meta: dict[str, Any]) -> Path:
    """The run's checkpoint path; a checkpoint there that cannot be resumed (`meta`: what this run writes) is set
    aside first (one line), out of the run's folder."""
    ckpt = job.ckpt_dir / checkpoints.LAST
    if job.force:
        shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    for partial in job.ckpt_dir.glob(f".{checkpoints.LAST}.*.tmp"):  # a process killed while writing one
        partial.unlink(missing_ok=True)
    for other in checkpoints.other_recipes(Path(job.execution.ckpt_dir), job.name, job.recipe.hash()):
        print(f"note: {other} holds a checkpoint of {job.name} of another recipe (left for it)", file=sys.stderr)
    if ckpt.exists():
        why = checkpoints.problem(ckpt, meta)
        if why:
            checkpoints.set_aside(ckpt, why)
    return ckpt


def cluster_plugins() -> list[Any]:
    """Under SLURM, Lightning's own auto-requeue off: preemption and requeueing are ours (sweeps/slurm_array.sh)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def ended(job: Job, outcome: Outcome, line: str) -> Outcome:
    """A run that ended early: its one line (after the run's name) on stderr; the outcome."""
    print(f"{job.name}: {line}", file=sys.stderr)
    return outcome


def _preempted_note(job: Job, recorder: RunRecorder) -> str:
    """What a preempted run left: its `preempted` record, or (a --force run over a complete record) that record."""
    if recorder.kept:
        return f"kept the record at {job.record_path}; --force trains again from the start"
    return f"record {job.record_path} says preempted; a rerun resumes"


def recorded(job: Job, record: RunRecord | None, ckpt: Path) -> Outcome:
    """A run that fitted to the end: COMPLETE (checkpoint removed unless kept, the result line) or FAILED."""
    if record is None or record.status != Outcome.COMPLETE:
        why = record.error if record is not None else "interrupted before the end"
        return ended(job, Outcome.FAILED, f"FAILED: {why}; checkpoint kept at {ckpt}")
    if not job.execution.keep_checkpoint:
        shutil.rmtree(job.ckpt_dir, ignore_errors=True)
    print(f"{job.name}: {_result_line(record)}; record: {job.record_path}")
    return Outcome.COMPLETE


def identity(job: Job) -> dict[str, Any]:
    """The run's key fields for its record (RunRecord derives the architecture keys and recipe name from them)."""
    return {"arch": job.arch, "canonical": job.canonical, "seed": job.seed, "recipe_hash": job.recipe.hash()}


def wandb_logger(job: Job, data: dict[str, Any]) -> Any:
    """The W&B logger (mode resolved without prompting); its run id persists beside the checkpoint; `data`: the
    run's data fingerprint, in the config as in the record."""
    e = job.execution
    mode = resolve_mode(e.wandb_mode)
    if mode == "disabled":
        return False
    job.ckpt_dir.mkdir(parents=True, exist_ok=True)
    id_file = job.ckpt_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.exists() else None
    counts = complexity(job.arch)  # memoized parts: the config is complete at wandb.init
    config = run_config(job.arch, job.seed, job.recipe, job.execution, counts.params, counts.flops, job.name)
    config[DATA_KEY] = data  # what it trains on: an export from W&B checks it like a record's
    logger = make_logger(
        mode, e.wandb_project, e.wandb_entity, job.name, job.canonical, _tags(job), config, run_id, Path(".")
    )
    atomic_write_text(id_file, logger.experiment.id)
    if mode == "offline":
        print(offline_note(logger.experiment, e.wandb_mode))
    return logger


def _tags(job: Job) -> list[str]:
    """Tags for filtering in the W&B UI."""
    recipe = "published-recipe" if job.recipe == Recipe() else "custom-recipe"
    kind = "canonical-input" if job.arch == job.canonical else "noncanonical-input"
    return [recipe, f"seed-{job.seed}", f"pipeline-{job.execution.pipeline}", job.recipe.precision, kind]


def run_fields(dm: CIFAR10DataModule, ckpt: Path) -> dict[str, Any]:
    """Record fields that depend on the data split and on resuming."""
    extra: dict[str, Any] = {"resumed": ckpt.exists()}
    if dm.val_indices is not None:
        extra["val_indices"] = list(dm.val_indices)
    return extra


def finish_wandb(trainer: pl.Trainer, exit_code: int | None = None) -> None:
    """Close the W&B run so offline files are complete (W&B is never imported by a run that did not use it); where
    its service is gone, the run's mirror says so once (tracking.WandbMirror) and nothing is closed."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None and wandb_run(trainer) is not None:
        with wandb_calls(trainer):
            wandb.finish(exit_code=exit_code)


def _result_line(record: RunRecord) -> str:
    """The headline numbers of a complete record."""
    best = "n/a (validation split)" if record.test_acc_best is None else f"{record.test_acc_best:.2f}%"
    return f"test acc final {record.test_acc_final:.2f}% best {best}"
