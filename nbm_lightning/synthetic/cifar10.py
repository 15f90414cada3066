"""Synthetic CIFAR-10 in torchvision's exact on-disk format: tests, benchmarks and smoke runs without internet.

`write_cifar10` writes `root/cifar-10-batches-py/` (`data_batch_1..5`, `test_batch`, `batches.meta`) so that
`torchvision.datasets.CIFAR10(root)` reads it. Its md5 sums differ from the real files: read it with
`NBM_CIFAR_SKIP_MD5=1` (see `nbm_lightning.training.cifar10_files`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from ..core.validate import check_int
from ..records.recipe import CIFAR10_TEST_SIZE, CIFAR10_TRAIN_SIZE

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)  # channel planes R, G, B, each 32 x 32 row-major
TRAIN_FILES = tuple(name for name, _ in CIFAR10.train_list)
TEST_FILES = tuple(name for name, _ in CIFAR10.test_list)
NOISE_SHIFT = 2  # learnable data: pixel = class colour level in 0..192 + uniform noise (random byte >> 2) in 0..63
MIN_LEVELS = 3  # learnable data: class colours come from a grid of at least 3 levels per channel (27 colours)


def write_cifar10(
    root: str | os.PathLike,
    n_train: int = CIFAR10_TRAIN_SIZE,
    n_test: int = CIFAR10_TEST_SIZE,
    learnable: bool = False,
    seed: int = 0,
    num_classes: int = 10,
) -> Path:
    """Write a synthetic CIFAR-10 under `root` and return its folder `root/cifar-10-batches-py`."""
    for name, value, low in (
        ("n_train", n_train, 0),
        ("n_test", n_test, 0),
        ("seed", seed, 0),
        ("num_classes", num_classes, 1),
    ):
        check_int(name, value, low)
    folder = Path(root) / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    streams = np.random.SeedSequence(seed).spawn(1 + len(TRAIN_FILES) + len(TEST_FILES))
    colours = _class_colours(np.random.default_rng(streams[0]), num_classes) if learnable else None
    sizes = _split_sizes(n_train, len(TRAIN_FILES)) + [n_test]
    for name, size, stream in zip(TRAIN_FILES + TEST_FILES, sizes, streams[1:]):
        data, labels = _images(np.random.default_rng(stream), size, num_classes, colours)
        _atomic_pickle(folder / name, {"data": data, "labels": labels.tolist()})
    _atomic_pickle(folder / CIFAR10.meta["filename"], {CIFAR10.meta["key"]: label_names(num_classes)})
    return folder


def label_names(num_classes: int) -> list[str]:
    """The real CIFAR-10 class names for 10 classes, else `class_0`, `class_1`, ..."""
    if num_classes == len(CIFAR10_CLASSES):
        return list(CIFAR10_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def _split_sizes(total: int, parts: int) -> list[int]:
    """`total` split into `parts` sizes that differ by at most one (zeros where total < parts)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def _class_colours(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Distinct RGB base levels per class, uint8 [num_classes, 3]: points of an evenly spaced colour grid."""
    steps = max(MIN_LEVELS, next(k for k in range(1, num_classes + 1) if k**3 >= num_classes))
    levels = np.linspace(0, 255 - (255 >> NOISE_SHIFT), steps).round().astype(np.uint8)  # base + noise <= 255
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[rng.permutation(len(grid))[:num_classes]]


def _images(
    rng: np.random.Generator, n: int, num_classes: int, colours: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """`n` images as uint8 [n, 3072] and their labels: uniform noise, or class colour plus noise."""
    labels = rng.integers(0, num_classes, size=n)
    pixels = int(np.prod(IMAGE_SHAPE[1:]))
    if colours is None:
        return rng.integers(0, 256, size=(n, 3 * pixels), dtype=np.uint8), labels
    images = rng.integers(0, 256, size=(n, 3, pixels), dtype=np.uint8)  # full bytes: fast to draw
    images >>= NOISE_SHIFT
    images += colours[labels][:, :, None]  # at most 192 + 63: no uint8 overflow
    return images.reshape(n, 3 * pixels), labels


def _atomic_pickle(path: Path, obj: object) -> None:
    """Pickle `obj` to `path` through a temporary file in the same folder and os.replace."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
