"""MacroNetModule: the LightningModule that trains an injected network with the published recipe."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from ..records.recipe import Recipe
from ..records.run_record import CURVES
from ..records.runkeys import HISTORY_KEYS as LOG_KEYS  # curve name -> logged metric name (W&B)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the run is failed, never recorded as complete."""


def make_sgd(parameters: Iterable[nn.Parameter], recipe: Recipe, sgd_impl: str = "auto") -> torch.optim.SGD:
    """The recipe's SGD at the first epoch's learning rate; sgd_impl 'auto', 'foreach' or 'fused'."""
    r, impl = recipe, {"auto": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[sgd_impl]
    return torch.optim.SGD(
        parameters, lr=r.lr_at(0), momentum=r.momentum, weight_decay=r.weight_decay, nesterov=r.nesterov, **impl
    )


class MacroNetModule(pl.LightningModule):
    """Cross-entropy + SGD with the recipe's cosine schedule; per-epoch metrics reduced on the device."""

    def __init__(
        self, net: nn.Module, num_classes: int, recipe: Recipe, channels_last: bool = False, sgd_impl: str = "auto"
    ):
        super().__init__()
        self.net, self.recipe, self.sgd_impl = net, recipe, sgd_impl
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # nan_strategy="disable": a NaN loss must propagate (and fail the run), not be silently dropped
        self.train_loss, self.eval_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        self.train_acc, self.eval_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro") for _ in range(3)
        )
        for metric in (self.train_loss, self.train_acc):
            metric.persistent(True)  # a mid-epoch checkpoint carries the epoch's running sums (exact resume)
        self.history: dict[str, list[float]] = {name: [] for name in CURVES}
        self.test_result: dict[str, float] = {}
        self._epoch_start = 0.0  # perf_counter() at the start of the current epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor], loss_metric: MeanMetric, acc_metric: MulticlassAccuracy
    ) -> torch.Tensor:
        """Forward, loss, and device-side metric updates (no host synchronisation).

        The metric gets the per-image losses: an exact mean over images, and no Python-number weight (which
        MeanMetric copies to the device, a blocking copy on CUDA, and ignores under nan_strategy="disable").
        """
        x, y = batch
        logits = self(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        loss_metric.update(losses.detach())
        acc_metric.update(logits.detach(), y)
        return losses.mean()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, self.train_loss, self.train_acc)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, self.eval_loss, self.eval_acc)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, self.test_loss, self.test_acc)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_sgd(self.parameters(), self.recipe, self.sgd_impl)

    def on_train_epoch_start(self) -> None:
        """Set this epoch's learning rate from the recipe (a pure function of the epoch: resume-safe)."""
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.recipe.lr_at(self.current_epoch)
        self._epoch_start = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        """Close the epoch: reduce metrics once, fail on a non-finite loss, log and extend the curves."""
        if self.trainer.sanity_checking:
            return
        row = self._epoch_row()
        if not math.isfinite(row["train_loss"]):
            raise NonFiniteLossError(f"training loss is {row['train_loss']} in epoch {self.current_epoch}: run failed")
        for name in CURVES:
            self.history[name].append(row[name])
        self.log_dict({key: row[name] for name, key in LOG_KEYS.items()}, on_epoch=True)
        self.print(self._epoch_line(row))

    def _epoch_row(self) -> dict[str, float]:
        """This epoch's numbers (accuracies in percent), read from the device once."""
        values = torch.stack(
            [m.compute().float() for m in (self.train_loss, self.train_acc, self.eval_loss, self.eval_acc)]
        ).tolist()
        for metric in (self.train_loss, self.train_acc, self.eval_loss, self.eval_acc):
            metric.reset()
        lr = self.optimizers().optimizer.param_groups[0]["lr"]
        return {
            "epoch": self.current_epoch,
            "lr": lr,
            "train_loss": values[0],
            "train_acc": 100 * values[1],
            "eval_loss": values[2],
            "eval_acc": 100 * values[3],
            "epoch_time_s": time.perf_counter() - self._epoch_start,
        }

    def _epoch_line(self, row: dict[str, float]) -> str:
        return (
            f"epoch {row['epoch'] + 1}/{self.recipe.epochs} lr {row['lr']:.5f} train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.2f}% | eval loss {row['eval_loss']:.4f} acc {row['eval_acc']:.2f}% | "
            f"{row['epoch_time_s']:.1f}s"
        )

    def on_test_epoch_end(self) -> None:
        values = torch.stack([self.test_loss.compute().float(), self.test_acc.compute().float()]).tolist()
        self.test_result = {"test_loss": values[0], "test_acc": 100 * values[1]}
        self.log_dict({"test/loss": values[0], "test/acc": 100 * values[1]})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nbm_history"] = self.history
        checkpoint["nbm_epoch_elapsed_s"] = time.perf_counter() - self._epoch_start  # used by a mid-epoch resume

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = checkpoint.get("nbm_history", self.history)
        if len(self.history["epoch"]) == checkpoint.get("epoch"):  # saved mid-epoch: its time so far counts
            # Lightning resumes that epoch without on_train_epoch_start (the optimizer keeps the epoch's lr)
            self._epoch_start = time.perf_counter() - checkpoint.get("nbm_epoch_elapsed_s", 0.0)
