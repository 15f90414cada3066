"""Training speed of one architecture on one path: steady-state images/s in Lightning or in a plain PyTorch loop.

A path is a set of the fit CLI's execution options (pipeline, channels_last, sgd_impl, compile, precision,
eval batch size, cudnn.benchmark) plus the loop that drives the step. `measure` times training steps and evaluation
batches after warm-up (compile included there), synchronising the device only at the two ends of each timed
region, and projects the published recipe's 50 epochs. `python -m benchmarks.train_speed` runs one concurrent
measurement behind a file barrier and prints one JSON line: benchmarks/run.py starts several as subprocesses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbm_lightning.records.recipe import CIFAR10_TEST_SIZE, CIFAR10_TRAIN_SIZE, Execution, Recipe
from nbm_lightning.training.datamodule import CIFAR10DataModule
from nbm_lightning.training.module import MacroNetModule, make_sgd
from nbm_lightning.training.run import (
    apply_numerics,
    build_datamodule,
    build_module,
    build_network,
    build_trainer,
    seed_run,
)

RECIPE = Recipe()  # the published recipe
TRAIN_IMAGES, EVAL_IMAGES, EPOCHS = CIFAR10_TRAIN_SIZE, CIFAR10_TEST_SIZE, RECIPE.epochs  # one run: 50 x (train + eval)
Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class TrainPath:
    """How a run is executed: the fit CLI's execution options and the loop that drives the steps."""

    name: str
    loop: str = "lightning"  # "lightning": MacroNetModule in a pl.Trainer; "plain": a hand-written loop
    pipeline: str = "tensor"
    channels_last: bool = False
    sgd_impl: str = "auto"
    compile: bool = False
    precision: str = "32-true"
    eval_batch_size: int = 1024
    cudnn_benchmark: bool = True  # on in the published trainer, so on in both paths
    tf32: bool = False  # the fit CLI's default: strict fp32 convolutions and matmuls
    num_workers: int = 0  # torchvision pipeline only

    def with_(self, **changes: Any) -> TrainPath:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def recipe(self, steps: Steps | None = None) -> Recipe:
        """The published recipe with this path's precision and TF32 (batch size / steps.divisor for tiny runs)."""
        batch = steps.batch_size() if steps else RECIPE.batch_size
        return dataclasses.replace(RECIPE, batch_size=batch, precision=self.precision, tf32=self.tf32)

    def execution(self, data_dir: str | os.PathLike = ".", steps: Steps | None = None) -> Execution:
        """The fit CLI's execution settings of this path (no download, logger or progress bar)."""
        return Execution(
            data_dir=str(data_dir), download=False, pipeline=self.pipeline, num_workers=self.num_workers,
            eval_batch_size=steps.eval_batch_size(self) if steps else self.eval_batch_size,
            cudnn_benchmark=self.cudnn_benchmark, channels_last=self.channels_last, compile=self.compile,
            sgd_impl=self.sgd_impl, wandb_mode="disabled", progress=False,
        )  # fmt: skip


# The published trainer's way: torchvision DataLoader (the project's default workers), fp32, contiguous, default SGD,
# no compile; evaluation in batches of the training size (PUBLISHED.md: its evaluation batch is not stated).
REFERENCE = TrainPath("reference", pipeline="torchvision", eval_batch_size=256, num_workers=Execution().num_workers)


def fast_path(compile: bool = False, precision: str = "32-true", loop: str = "lightning") -> TrainPath:
    """The fast path: tensor pipeline, channels_last, fused SGD, eval batch 1024 (+ compile, + bf16 on request)."""
    name = "fast" + ("+compile" if compile else "") + ("+bf16" if precision != "32-true" else "")
    return TrainPath(name, loop=loop, channels_last=True, sgd_impl="fused", compile=compile, precision=precision)


@dataclass(frozen=True)
class Steps:
    """How many batches to warm up on and to time, and the batch sizes (divided by `divisor` for tiny runs)."""

    warmup: int
    steps: int
    eval_warmup: int
    eval_steps: int
    divisor: int = 1  # tiny runs: batch 256 / divisor, eval batch eval_batch_size / divisor

    def batch_size(self) -> int:
        return max(1, RECIPE.batch_size // self.divisor)

    def eval_batch_size(self, path: TrainPath) -> int:
        return max(1, path.eval_batch_size // self.divisor)

    def train_images(self) -> int:
        """Training images a measurement reads (warm-up, timed steps and the batch that closes the timing)."""
        return (self.warmup + self.steps + 1) * self.batch_size()


FULL = Steps(warmup=10, steps=100, eval_warmup=2, eval_steps=6)
TINY = Steps(warmup=2, steps=8, eval_warmup=1, eval_steps=3, divisor=8)


# ---------------------------------------------------------------------------------------------------------------
# Building blocks shared by both loops
# ---------------------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def quiet_lightning() -> None:
    """Silence Lightning's banner lines and the few-workers hint (the tensor pipeline needs no workers)."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


def make_datamodule(
    data_dir: str | os.PathLike, path: TrainPath, steps: Steps, device: torch.device, seed: int = 0
) -> CIFAR10DataModule:
    """fit's DataModule for a path (nbm_lightning.training.run.build_datamodule), set up on `device`."""
    dm = build_datamodule(path.recipe(steps), path.execution(data_dir, steps), seed, device)
    dm.setup("fit")
    return dm


def make_net(code: str, path: TrainPath, device: torch.device, seed: int = 0) -> nn.Module:
    """fit's network for a path (seed_run, then nbm_lightning.training.run.build_network), moved to `device`."""
    seed_run(seed)
    return build_network(code, 10, path.execution()).to(device)


def autocast(path: TrainPath, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for precision 'bf16-mixed' (what Lightning's plugin does), else nothing."""
    if path.precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def on_device(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Batches moved to `device` (no copy when they are there already)."""
    for x, y in batches:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def memory_format(path: TrainPath) -> torch.memory_format:
    return torch.channels_last if path.channels_last else torch.contiguous_format


# ---------------------------------------------------------------------------------------------------------------
# The plain PyTorch loop: the same step as MacroNetModule, without Lightning
# ---------------------------------------------------------------------------------------------------------------


class PlainLoop:
    """One SGD step as MacroNetModule takes it (per-image losses, device-side loss and accuracy sums)."""

    def __init__(self, net: nn.Module, path: TrainPath, device: torch.device):
        self.net, self.path, self.device = net, path, device
        self.optimizer = make_sgd(net.parameters(), RECIPE, path.sgd_impl)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        apply_numerics(path.recipe(), path.execution())

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Logits and per-image losses, accumulated into the device-side sums."""
        x, y = batch
        with autocast(self.path, self.device):
            logits = self.net(x.contiguous(memory_format=memory_format(self.path)))
            losses = F.cross_entropy(logits, y, reduction="none")
        self.loss_sum += losses.detach().sum()
        self.correct += (logits.detach().argmax(1) == y).sum()
        return logits, losses

    def train_step(self, batch: Batch) -> Tensor:
        """Forward, zero_grad, backward, step (Lightning's order); returns the detached batch loss."""
        self.net.train()
        loss = self.forward(batch)[1].mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def eval_step(self, batch: Batch) -> None:
        """An evaluation batch: forward only, no autograd."""
        self.net.eval()
        with torch.inference_mode():
            self.forward(batch)


def time_batches(
    batches: Iterable[Batch], step: Callable[[Batch], Any], warmup: int, steps: int, device: torch.device
) -> tuple[float, float]:
    """(seconds of the `warmup` first steps, seconds of the next `steps` steps), fetching included."""
    marks = [time.perf_counter()]
    for index, batch in enumerate(batches):
        if index in (warmup, warmup + steps):
            synchronize(device)
            marks.append(time.perf_counter())
        if index == warmup + steps:
            return marks[1] - marks[0], marks[2] - marks[1]
        step(batch)
    raise ValueError(f"need {warmup + steps + 1} batches, the loader gave {index + 1}")


def run_plain(
    code: str, path: TrainPath, dm: CIFAR10DataModule, steps: Steps, device: torch.device, seed: int = 0
) -> dict[str, float]:
    """Warm-up and timed seconds of training and evaluation in the plain loop."""
    loop = PlainLoop(make_net(code, path, device, seed), path, device)
    warm, timed = time_batches(
        on_device(dm.train_dataloader(), device), loop.train_step, steps.warmup, steps.steps, device
    )
    eval_warm, eval_timed = time_batches(
        on_device(dm.val_dataloader(), device), loop.eval_step, steps.eval_warmup, steps.eval_steps, device
    )
    return {"warmup_s": warm, "train_s": timed, "eval_warmup_s": eval_warm, "eval_s": eval_timed}


# ---------------------------------------------------------------------------------------------------------------
# Lightning: MacroNetModule in a pl.Trainer, timed by a callback
# ---------------------------------------------------------------------------------------------------------------


class Stopwatch(pl.Callback):
    """Marks the start of batches warmup and warmup+steps of training and evaluation (device synced there only)."""

    def __init__(self, steps: Steps, device: torch.device):
        self.steps, self.device = steps, device
        self.marks: dict[str, float] = {}

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.marks["start"] = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._mark("train", batch_idx, self.steps.warmup, self.steps.steps)

    def on_validation_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx == 0:
            self.marks["eval_begin"] = time.perf_counter()
        self._mark("eval", batch_idx, self.steps.eval_warmup, self.steps.eval_steps)

    def _mark(self, phase: str, index: int, warmup: int, steps: int) -> None:
        if index in (warmup, warmup + steps):
            synchronize(self.device)
            self.marks[f"{phase}_{'from' if index == warmup else 'to'}"] = time.perf_counter()

    def seconds(self) -> dict[str, float]:
        """Warm-up and timed seconds of training and evaluation."""
        m = self.marks
        return {
            "warmup_s": m["train_from"] - m["start"],
            "train_s": m["train_to"] - m["train_from"],
            "eval_warmup_s": m["eval_from"] - m["eval_begin"],
            "eval_s": m["eval_to"] - m["eval_from"],
        }


def make_trainer(path: TrainPath, device: torch.device, callbacks: list[pl.Callback], **overrides: Any) -> pl.Trainer:
    """fit's Trainer for a path (nbm_lightning.training.run.build_trainer), one epoch unless overridden, no logger."""
    quiet_lightning()
    return build_trainer(path.recipe(), path.execution(), device, callbacks, **{"max_epochs": 1, **overrides})


def make_module(code: str, path: TrainPath, device: torch.device, seed: int = 0) -> MacroNetModule:
    """fit's LightningModule for a path (nbm_lightning.training.run.build_module over make_net)."""
    return build_module(make_net(code, path, device, seed), 10, path.recipe(), path.execution())


def run_lightning(
    code: str, path: TrainPath, dm: CIFAR10DataModule, steps: Steps, device: torch.device, seed: int = 0
) -> dict[str, float]:
    """Warm-up and timed seconds of training and evaluation in a pl.Trainer."""
    watch = Stopwatch(steps, device)
    trainer = make_trainer(
        path,
        device,
        [watch],
        limit_train_batches=steps.warmup + steps.steps + 1,
        limit_val_batches=steps.eval_warmup + steps.eval_steps + 1,
    )
    trainer.fit(make_module(code, path, device, seed), datamodule=dm)
    return watch.seconds()


# ---------------------------------------------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------------------------------------------


def projected_50_epochs_s(train_ips: float, eval_ips: float) -> float:
    """Seconds of one published run at these rates: 50 x (50,000 training images + one 10,000-image evaluation)."""
    return EPOCHS * (TRAIN_IMAGES / train_ips + EVAL_IMAGES / eval_ips)


def measure(
    code: str, path: TrainPath, data_dir: str | os.PathLike, steps: Steps, device: torch.device, seed: int = 0
) -> dict[str, Any]:
    """Steady-state training and evaluation images/s of `code` on `path`, and the projected 50-epoch time."""
    dm = make_datamodule(data_dir, path, steps, device, seed)
    runner = run_lightning if path.loop == "lightning" else run_plain
    seconds = runner(code, path, dm, steps, device, seed)
    train_ips = steps.steps * steps.batch_size() / seconds["train_s"]
    eval_ips = steps.eval_steps * steps.eval_batch_size(path) / seconds["eval_s"]
    return {
        "arch": code,
        "path": path.name,
        "loop": path.loop,
        "train_images_per_s": train_ips,
        "eval_images_per_s": eval_ips,
        "projected_50_epochs_s": projected_50_epochs_s(train_ips, eval_ips),
        "warmup_s": seconds["warmup_s"],
        "eval_warmup_s": seconds["eval_warmup_s"],
        "options": dataclasses.asdict(path),
    }


# ---------------------------------------------------------------------------------------------------------------
# Concurrent runs on one device: a subprocess per run, started together behind a file barrier
# ---------------------------------------------------------------------------------------------------------------


def barrier(folder: Path, parties: int, timeout_s: float = 120.0) -> None:
    """Announce this process in `folder` and wait until `parties` processes have."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("ready-*"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {folder}: {parties} parties expected within {timeout_s:.0f} s")
        time.sleep(0.005)


class Window(pl.Callback):
    """After `warmup` steps: meet the other runs at the barrier, count the steps finished in `seconds`, stop."""

    def __init__(self, warmup: int, seconds: float, device: torch.device, meet: Callable[[], None]):
        self.warmup, self.seconds, self.device, self.meet = warmup, seconds, device, meet
        self.start: tuple[int, float] | None = None
        self.result: tuple[int, float] | None = None  # (steps, seconds)

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        step, now = trainer.global_step, time.perf_counter()
        if self.start is None and step >= self.warmup:
            synchronize(self.device)
            self.meet()
            self.start = (step, time.perf_counter())
        elif self.start is not None and self.result is None and now - self.start[1] >= self.seconds:
            synchronize(self.device)
            self.result = (step - self.start[0], time.perf_counter() - self.start[1])
            trainer.should_stop = True


def run_window(
    code: str,
    path: TrainPath,
    data_dir: str,
    steps: Steps,
    seconds: float,
    device: torch.device,
    meet: Callable[[], None],
) -> dict[str, Any]:
    """Training images/s of one Lightning run over a `seconds` window that starts at the barrier."""
    dm = make_datamodule(data_dir, path, steps, device)
    window = Window(steps.warmup, seconds, device, meet)
    trainer = make_trainer(
        path, device, [window], limit_val_batches=0, max_epochs=RECIPE.epochs
    )  # until the window closes
    trainer.fit(make_module(code, path, device), datamodule=dm)
    if window.result is None:
        raise RuntimeError(f"the {seconds} s window did not close within {RECIPE.epochs} epochs")
    n, elapsed = window.result
    return {
        "arch": code,
        "path": path.name,
        "steps": n,
        "seconds": elapsed,
        "train_images_per_s": n * steps.batch_size() / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    """One concurrent run: `--arch CODE --data-dir D --barrier DIR --parties K --seconds S [--device D] [--size S]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=main.__doc__)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--barrier", required=True)
    parser.add_argument("--parties", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    meet = lambda: barrier(Path(args.barrier), args.parties)  # noqa: E731
    steps = TINY if args.size == "tiny" else FULL
    result = run_window(
        args.arch, fast_path(args.compile), args.data_dir, steps, args.seconds, torch.device(args.device), meet
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
