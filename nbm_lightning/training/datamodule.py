"""CIFAR-10 for training (PUBLISHED.md, "Training recipe"): the LightningDataModule, its splits and DataCache.

Two pipelines give the same data. "torchvision" is the published one: a DataLoader over torchvision's CIFAR10
with RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize. "tensor" (the default) holds the
uint8 images in one tensor on the training device and applies the same crop, flip and normalization as batched
tensor ops, drawn per epoch from a generator seeded by (seed, epoch): no workers, and a resumed run sees exactly
the batches of an uninterrupted one. Their parts: `augment.py` (the tensor ops), `tensor_loader.py`,
`torchvision_pipeline.py`, and `cifar10_files.py` (presence, md5, download, decoding, fingerprint).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.datasets import CIFAR10

from ..core.validate import check_bool, check_choice, check_int, check_path, fail
from ..records.recipe import CIFAR10_TRAIN_SIZE, PIPELINES
from .cifar10_files import cifar10_folder, dataset_class, download_cifar10, open_cifar10, require_cifar10
from .tensor_loader import EpochPosition, TensorLoader
from .torchvision_pipeline import (
    EpochSampler,
    IndexedDataset,
    ResumableDataLoader,
    SeededDataset,
    eval_transform,
    train_transform,
)


def split_indices(n_train: int, val_size: int, split_seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices, each sorted: val is `val_size` images drawn by randperm(split_seed)."""
    if val_size and val_size >= n_train:
        raise fail("val_size", val_size, f"an int below the {n_train} training images")
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(split_seed)).tolist()
    return sorted(perm[val_size:]), sorted(perm[:val_size])


def _first(indices: Sequence[int], limit: int) -> list[int]:
    """The first `limit` indices (all of them for limit 0)."""
    return list(indices[:limit] if limit else indices)


def _tensor_split(base: CIFAR10, indices: list[int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] of `indices`, on `device`."""
    images = torch.from_numpy(base.data[indices]).to(device).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(base.targets, dtype=torch.int64)[indices].to(device)
    return images, labels


class DataCache:
    """CIFAR-10 kept between the runs of one process: the decoded files and the uint8 splits on each device.

    Keyed by data folder (and, for tensors, split, validation split, limits and device). The tensors are
    shared read-only by the runs: the pipeline gathers and normalizes copies, never writes into them.
    """

    def __init__(self) -> None:
        self._bases: dict[tuple[str, bool, str], CIFAR10] = {}
        self._tensors: dict[tuple, tuple[Tensor, Tensor]] = {}

    def base(self, root: str | os.PathLike, train: bool) -> CIFAR10:
        """One split of CIFAR-10 as torchvision reads it, opened (and md5-checked) once."""
        key = (str(cifar10_folder(root)), train, dataset_class().__name__)
        if key not in self._bases:
            self._bases[key] = open_cifar10(root, train=train)
        return self._bases[key]

    def tensors(self, root: str | os.PathLike, key: tuple, build: Callable[[], tuple[Tensor, Tensor]]) -> tuple:
        """The images and labels of one split on one device, built once."""
        full_key = (str(cifar10_folder(root)), *key)
        if full_key not in self._tensors:
            self._tensors[full_key] = build()
        return self._tensors[full_key]

    def nbytes(self) -> int:
        """Bytes held by the cached tensors (all devices)."""
        return sum(t.numel() * t.element_size() for pair in self._tensors.values() for t in pair)


class CIFAR10DataModule(pl.LightningDataModule):
    """CIFAR-10 train / per-epoch evaluation / test loaders for the published recipe, in either pipeline."""

    def __init__(
        self,
        data_dir: str | os.PathLike = "./data",
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        pipeline: str = "tensor",
        val_size: int = 0,
        split_seed: int = 0,
        download: bool = True,
        train_limit: int = 0,
        eval_limit: int = 0,
        num_workers: int = 0,
        seed: int = 0,
        device: str | None = None,
        cache: DataCache | None = None,
    ):
        super().__init__()
        self.data_dir = check_path("data_dir", data_dir)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, 1)
        self.pipeline = check_choice("pipeline", pipeline, PIPELINES)
        self.val_size = check_int("val_size", val_size, 0, CIFAR10_TRAIN_SIZE - 1)
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.download = check_bool("download", download)
        self.train_limit = check_int("train_limit", train_limit, 0)
        self.eval_limit = check_int("eval_limit", eval_limit, 0)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.seed = check_int("seed", seed, 0)
        self.device = _check_device("device", device)
        self.cache = cache  # shared by the runs of one worker process; None: load afresh
        self._loaded: dict[str, object] = {}  # split name -> (images, labels) or Dataset
        self._loaded_on: torch.device | None = None  # None until setup()
        self._num_classes = 0
        self._train_indices: list[int] = []
        self._val_indices: list[int] | None = None

    @property
    def eval_split(self) -> str:
        """The per-epoch evaluation split: "test" as published (val_size 0), else "val"."""
        return "val" if self.val_size else "test"

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset (after setup)."""
        self._require_setup()
        return self._num_classes

    @property
    def val_indices(self) -> list[int] | None:
        """The training-set indices held out for validation (sorted), None when val_size is 0 (after setup)."""
        self._require_setup()
        return self._val_indices

    @property
    def train_indices(self) -> list[int]:
        """The training-set indices trained on (sorted, before train_limit; after setup)."""
        self._require_setup()
        return self._train_indices

    def prepare_data(self) -> None:
        """Download CIFAR-10 (download=True), else check that its files are there."""
        if self.download:
            download_cifar10(self.data_dir)
        else:
            require_cifar10(self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        """Load both CIFAR-10 splits, split off the validation images, apply the limits (once per device)."""
        device = self._target_device()
        if self._loaded_on == device:
            return
        bases = {"train": self._open(train=True), "test": self._open(train=False)}
        train, val = split_indices(len(bases["train"]), self.val_size, self.split_seed)
        self._train_indices, self._val_indices = train, (val if self.val_size else None)
        chosen = self._chosen_images(len(bases["test"]))
        self._loaded = {name: self._build(name, bases, indices, device) for name, indices in chosen.items()}
        self._num_classes, self._loaded_on = len(bases["train"].classes), device

    def train_dataloader(self) -> TensorLoader | DataLoader:
        """Shuffled, augmented training batches (last partial batch kept)."""
        return self._loader("train")

    def val_dataloader(self) -> TensorLoader | DataLoader:
        """The per-epoch evaluation split (test set as published, or the val subset), in order, no augmentation."""
        return self._loader(self.eval_split)

    def test_dataloader(self) -> TensorLoader | DataLoader:
        """The test set, in order, no augmentation."""
        return self._loader("test")

    def _target_device(self) -> torch.device:
        """Where the tensor pipeline keeps the images: `device`, else the trainer's root device, else cpu."""
        if self.device is not None:
            return torch.device(self.device)
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def _chosen_images(self, n_test: int) -> dict[str, list[int]]:
        """The images of each split to load, limits applied: train, test, and val when val_size > 0."""
        chosen = {
            "train": _first(self._train_indices, self.train_limit),
            "test": _first(range(n_test), self.eval_limit),
        }
        if self._val_indices is not None:
            chosen["val"] = _first(self._val_indices, self.eval_limit)
        return chosen

    def _open(self, train: bool) -> CIFAR10:
        """One CIFAR-10 split as torchvision reads it (from the worker's cache where there is one)."""
        return self.cache.base(self.data_dir, train) if self.cache else open_cifar10(self.data_dir, train=train)

    def _build(self, name: str, bases: dict[str, CIFAR10], indices: list[int], device: torch.device) -> object:
        """One split as the pipeline holds it: tensors on `device`, or a transformed Dataset."""
        base = bases["test" if name == "test" else "train"]
        if self.pipeline == "tensor" and self.cache is not None:
            key = (name, self.val_size, self.split_seed, self.train_limit, self.eval_limit, str(device))
            return self.cache.tensors(self.data_dir, key, lambda: _tensor_split(base, indices, device))
        if self.pipeline == "tensor":
            return _tensor_split(base, indices, device)
        if name == "train":
            return SeededDataset(base, indices, train_transform(), self.seed)
        return IndexedDataset(base, indices, eval_transform())

    def _loader(self, split: str) -> TensorLoader | DataLoader:
        """The loader of a loaded split: training shuffles and augments, evaluation keeps order."""
        self._require_setup()
        data = self._loaded[split]
        train = split == "train"
        batch_size = self.batch_size if train else self.eval_batch_size
        if self.pipeline == "tensor":
            epoch_fn, progress_fn = (self._epoch_fn(), self._progress_fn()) if train else (None, None)
            return TensorLoader(
                *data, batch_size, train=train, seed=self.seed, epoch_fn=epoch_fn, progress_fn=progress_fn
            )
        workers = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if not train:
            return DataLoader(data, batch_size, shuffle=False, pin_memory=torch.cuda.is_available(), **workers)
        sampler = EpochSampler(len(data), batch_size, self.seed, self._epoch_fn(), EpochPosition(self._progress_fn()))
        return ResumableDataLoader(data, batch_size, sampler=sampler, pin_memory=torch.cuda.is_available(), **workers)

    def _epoch_fn(self) -> Callable[[], int] | None:
        """Reads the epoch the attached trainer is about to train (None without a trainer).

        That is the fit loop's count of processed epochs, the value Lightning gives samplers' set_epoch:
        `trainer.current_epoch` still reads one less when the loader is iterated after resuming from an
        end-of-epoch checkpoint, which would replay the previous epoch's batches.
        """
        trainer = self.trainer
        return None if trainer is None else (lambda: trainer.fit_loop.epoch_progress.current.processed)

    def _progress_fn(self) -> Callable[[], int] | None:
        """Reads how many batches of the current epoch the attached trainer has trained (None without a trainer)."""
        trainer = self.trainer
        return None if trainer is None else (lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def _require_setup(self) -> None:
        """RuntimeError when setup() has not run yet."""
        if self._loaded_on is None:
            raise RuntimeError("CIFAR10DataModule: call setup() first")


# ---------------------------------------------------------------------------------------------------------------
# Argument checks beyond nbm_lightning.core.validate
# ---------------------------------------------------------------------------------------------------------------


def _check_device(name: str, value: object) -> str | None:
    """`value` if it is None or a torch device string such as "cpu", "cuda", "cuda:1"."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(RuntimeError):
            torch.device(value)  # RuntimeError for a malformed device string
            return value
    raise fail(name, value, "None or a torch device such as 'cpu' or 'cuda:0'")
