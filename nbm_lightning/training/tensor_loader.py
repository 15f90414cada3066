"""The tensor pipeline's loader: uint8 images held on the training device, shuffled and augmented as batched
tensor ops, resumable mid-epoch; and the position in an epoch that both pipelines' loaders save and restore."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..core.validate import check_int
from .augment import CIFAR10_MEAN, CIFAR10_STD, augment, epoch_generator, normalize, per_channel, sample_augment_params

Batch = tuple[Tensor, Tensor]


class TensorLoader:
    """Batches (x float32 normalized [B,3,32,32], y int64 [B]) from uint8 images held on one device."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        train: bool,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
        progress_fn: Callable[[], int] | None = None,
    ):
        _check_images(images, labels)
        self.images, self.labels, self.train, self.epoch_fn = images, labels, train, epoch_fn
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        self._mean = per_channel(CIFAR10_MEAN, images.device)
        self._std = per_channel(CIFAR10_STD, images.device)
        self._iterations = 0
        self._position = EpochPosition(progress_fn)  # where a resumed epoch starts

    def __len__(self) -> int:
        """Number of batches, the last partial one included."""
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        """One epoch: for training, shuffled and augmented from the (seed, epoch) generator; else in order."""
        if not self.train:
            return self._eval_batches()
        n, device, epoch = len(self.labels), self.images.device, self._next_epoch()
        generator = epoch_generator(self.seed, epoch, device)
        order = torch.randperm(n, generator=generator, device=device)
        offsets, flips = sample_augment_params(n, generator, device)
        start = self._position.start() * self.batch_size
        return self._train_batches(order[start:], offsets[start:], flips[start:])

    def state_dict(self) -> dict[str, int]:
        """Where the training stands in its epoch (Lightning saves it in a mid-epoch checkpoint)."""
        return self._position.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the next epoch's batches after those already trained (from a mid-epoch checkpoint)."""
        self._position.load_state_dict(state)

    def _next_epoch(self) -> int:
        """The epoch about to run: from epoch_fn when given, else this loader's own count of epochs."""
        if self.epoch_fn is not None:
            return int(self.epoch_fn())
        self._iterations += 1
        return self._iterations - 1

    def _train_batches(self, order: Tensor, offsets: Tensor, flips: Tensor) -> Iterator[Batch]:
        """Augmented batches in `order`, image order[i] with offsets[i] and flips[i]."""
        for start in range(0, len(order), self.batch_size):
            part = slice(start, start + self.batch_size)
            index = order[part]
            x = augment(self.images[index], offsets[part], flips[part], self._mean, self._std)
            yield x, self.labels[index]

    def _eval_batches(self) -> Iterator[Batch]:
        """Normalized batches in dataset order, no augmentation."""
        for start in range(0, len(self.labels), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield normalize(self.images[part], self._mean, self._std), self.labels[part]


def _check_images(images: Tensor, labels: Tensor) -> None:
    """ValueError unless images are uint8 [N, 3, H, W] and labels [N] on the same device."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}")
    if labels.dtype != torch.int64 or labels.shape != images.shape[:1] or labels.device != images.device:
        raise ValueError(
            f"labels must be int64 [{len(images)}] on {images.device}, "
            f"got {labels.dtype} {list(labels.shape)} on {labels.device}"
        )


class EpochPosition:
    """Batches of the current epoch already trained, as Lightning's checkpoint stores them for a loader."""

    def __init__(self, progress_fn: Callable[[], int] | None):
        self.progress_fn = progress_fn  # the trainer's count of batches trained this epoch (None: none)
        self._skip = 0  # batches to skip at the next epoch's start, once (set by load_state_dict)

    def state_dict(self) -> dict[str, int]:
        """The batches trained so far in this epoch."""
        return {"batches": int(self.progress_fn()) if self.progress_fn else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip that many batches at the next epoch's start (a resumed epoch)."""
        self._skip = int(state.get("batches", 0))

    def start(self) -> int:
        """The first batch of the epoch about to run: after a resume, the batches already trained; else 0."""
        skip, self._skip = self._skip, 0
        return skip
