"""The published pipeline: a DataLoader over torchvision's CIFAR10 with RandomCrop(32, padding=4),
RandomHorizontalFlip, ToTensor, Normalize, each image's augmentation seeded by (seed, epoch, image); resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from .augment import CIFAR10_MEAN, CIFAR10_STD, CROP_PADDING, CROP_SIZE, epoch_generator
from .tensor_loader import EpochPosition


def train_transform() -> transforms.Compose:
    """The published training transform: RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize."""
    return transforms.Compose(
        [
            transforms.RandomCrop(CROP_SIZE, padding=CROP_PADDING),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )


def eval_transform() -> transforms.Compose:
    """The published evaluation transform: ToTensor, Normalize."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


class IndexedDataset(Dataset):
    """The images `indices` of an untransformed CIFAR10, with `transform` applied to each."""

    def __init__(self, base: CIFAR10, indices: Sequence[int], transform: Callable):
        self.base, self.indices, self.transform = base, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, label = self.base[self.indices[i]]
        return self.transform(image), label


class SeededDataset(IndexedDataset):
    """Training images whose random augmentation is seeded by (seed, epoch, image): the same in any worker, on resume.

    Items are asked for as (epoch, i) by `EpochSampler`; torchvision's transforms draw from torch's global
    generator, which is forked and seeded for each image, so no other random stream is disturbed.
    """

    def __init__(self, base: CIFAR10, indices: Sequence[int], transform: Callable, seed: int):
        super().__init__(base, indices, transform)
        self.seed = seed

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        epoch, i = key
        image, label = self.base[self.indices[i]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_image_seed(self.seed, epoch, i))
            return self.transform(image), label


def _image_seed(seed: int, epoch: int, index: int) -> int:
    """A seed of its own for one image of one epoch of one run."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0])


class EpochSampler(torch.utils.data.Sampler):
    """Training order of one epoch, a permutation seeded by (seed, epoch), yielding (epoch, i); resumable."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch_fn: Callable[[], int] | None, position: EpochPosition):
        self.n, self.batch_size, self.seed, self.epoch_fn, self.position = n, batch_size, seed, epoch_fn, position
        self._iterations = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.epoch_fn()) if self.epoch_fn else self._iterations
        self._iterations += 1
        order = torch.randperm(self.n, generator=epoch_generator(self.seed, epoch, "cpu")).tolist()
        start = self.position.start() * self.batch_size
        return ((epoch, i) for i in order[start:])


class ResumableDataLoader(DataLoader):
    """The torchvision pipeline's training DataLoader, whose position Lightning saves and restores."""

    def state_dict(self) -> dict[str, int]:
        """Where the training stands in its epoch."""
        return self.sampler.position.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume after the batches already trained."""
        self.sampler.position.load_state_dict(state)
