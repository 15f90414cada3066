"""CIFAR-10 for training (PUBLISHED.md, "Training recipe"): the published augmentation and a LightningDataModule.

Two pipelines give the same data. "torchvision" is the published one: a DataLoader over torchvision's CIFAR10
with RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize. "tensor" (the default) holds the
uint8 images in one tensor on the training device and applies the same crop, flip and normalization as batched
tensor ops, drawn per epoch from a generator seeded by (seed, epoch): no workers, and a resumed run sees exactly
the batches of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision.datasets.cifar
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from ..core.errors import UserError
from ..core.validate import check_bool, check_choice, check_int, check_path, fail
from ..records.recipe import CIFAR10_TRAIN_SIZE, PIPELINES
from ..records.run_record import WHOLE_FILES

CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)  # the published Normalize values
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CROP_SIZE = 32
CROP_PADDING = 4
HASH_CHUNK = 2**20  # bytes read at a time while hashing a data file
SKIP_MD5_ENV = "NBM_CIFAR_SKIP_MD5"  # "1": accept CIFAR-10 files without torchvision's md5 check (presence only)

ChannelStats = Sequence[float] | Tensor
Batch = tuple[Tensor, Tensor]


class DataMissingError(UserError):
    """CIFAR-10 is not where it should be (or fails its md5 check), and was not (or could not be) downloaded."""


# ---------------------------------------------------------------------------------------------------------------
# Augmentation as batched tensor ops
# ---------------------------------------------------------------------------------------------------------------


def normalize(images: Tensor, mean: ChannelStats, std: ChannelStats) -> Tensor:
    """uint8 [B, C, H, W] -> float32, exactly as ToTensor (/255) then Normalize(mean, std)."""
    return images.float().div_(255).sub_(_per_channel(mean, images.device)).div_(_per_channel(std, images.device))


def augment(
    images: Tensor, offsets: Tensor, flips: Tensor, mean: ChannelStats, std: ChannelStats, padding: int = CROP_PADDING
) -> Tensor:
    """Zero-pad by `padding`, crop at `offsets` (y, x), flip where `flips`, normalize: [B,3,H,W] uint8 -> float32."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4).flatten(2)
    index = _crop_index(offsets.long(), flips.bool(), h, w, w + 2 * padding)
    crops = padded.gather(2, index[:, None, :].expand(b, c, h * w))
    return normalize(crops.view(b, c, h, w), mean, std)


def sample_augment_params(
    n: int, generator: torch.Generator, device: torch.device | str, padding: int = CROP_PADDING
) -> tuple[Tensor, Tensor]:
    """Offsets [n, 2] uniform in 0..2*padding per image and axis, and flips [n] bool with p = 0.5."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    return offsets, flips


def epoch_generator(seed: int, epoch: int, device: torch.device | str) -> torch.Generator:
    """A generator on `device` seeded from (seed, epoch) alone: the same stream for the same pair."""
    high, low = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(high) << 32 | int(low))


def _per_channel(values: ChannelStats, device: torch.device) -> Tensor:
    """Per-channel values as float32 [1, C, 1, 1] on `device`."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def _crop_index(offsets: Tensor, flips: Tensor, height: int, width: int, padded_width: int) -> Tensor:
    """For each output pixel, its flat index [B, H*W] in the padded image (crop at offsets, then flip)."""
    rows = offsets[:, :1] + torch.arange(height, device=offsets.device)
    cols = offsets[:, 1:] + torch.arange(width, device=offsets.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    return (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)


# ---------------------------------------------------------------------------------------------------------------
# The tensor pipeline's loader
# ---------------------------------------------------------------------------------------------------------------


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
        self._mean = _per_channel(CIFAR10_MEAN, images.device)
        self._std = _per_channel(CIFAR10_STD, images.device)
        self._iterations = 0
        self._position = _Position(progress_fn)  # where a resumed epoch starts

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


# ---------------------------------------------------------------------------------------------------------------
# Files: presence, md5, download
# ---------------------------------------------------------------------------------------------------------------


class PresenceCheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 whose integrity check only asks that the files exist (no md5)."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}  # check_integrity(path, md5=None) checks presence only


def dataset_class() -> type[CIFAR10]:
    """CIFAR10, or PresenceCheckedCIFAR10 where $NBM_CIFAR_SKIP_MD5 is "1"."""
    return PresenceCheckedCIFAR10 if os.environ.get(SKIP_MD5_ENV) == "1" else CIFAR10


def cifar10_folder(root: str | os.PathLike) -> Path:
    """The folder torchvision reads: root/cifar-10-batches-py."""
    return Path(root).expanduser().absolute() / CIFAR10.base_folder


def missing_files(root: str | os.PathLike) -> list[str]:
    """The CIFAR-10 files absent from root/cifar-10-batches-py."""
    return [name for name in _file_names() if not (cifar10_folder(root) / name).is_file()]


def _by_hand(root: str | os.PathLike) -> str:
    """How to put CIFAR-10 into `root` by hand."""
    return f"extract {CIFAR10.url} so that {CIFAR10.base_folder} lies in {Path(root).expanduser().absolute()}"


def require_cifar10(root: str | os.PathLike) -> None:
    """DataMissingError unless every CIFAR-10 file is in root/cifar-10-batches-py."""
    missing = missing_files(root)
    if missing:
        raise DataMissingError(
            f"CIFAR-10 not found in {cifar10_folder(root)} (missing {', '.join(missing)}): "
            f"download it with --download=true (download=True), or {_by_hand(root)}"
        )


def open_cifar10(root: str | os.PathLike, train: bool) -> CIFAR10:
    """One split of CIFAR-10 (no transform), turning absent or corrupted files into DataMissingError."""
    require_cifar10(root)
    try:
        return _decoded(root, train)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise DataMissingError(
            f"CIFAR-10 in {cifar10_folder(root)} fails torchvision's md5 check: download it again with "
            f"--download=true (download=True), or {_by_hand(root)}; for synthetic data set {SKIP_MD5_ENV}=1"
        ) from err


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a CIFAR-10 file can name no other callable, so an unchecked
    file (NBM_CIFAR_SKIP_MD5) or a crafted one runs nothing."""

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),  # an array's class and its dtype
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),  # protocols <= 4
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
    })  # fmt: skip

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not plain data (only numpy arrays are allowed)")
        return super().find_class(module, name)


class UndecodableFile(Exception):
    """A CIFAR-10 file that does not unpickle as plain data (truncated, not CIFAR-10, or naming code)."""

    def __init__(self, path: str, cause: BaseException):
        super().__init__(f"{path}: {_one_line(cause)}")
        self.path, self.cause = path, cause


def _array_load(file: object, **kwargs: object) -> object:
    """pickle.load through ArrayUnpickler (torchvision passes encoding="latin1"); UndecodableFile naming the file."""
    try:
        return ArrayUnpickler(file, **kwargs).load()  # type: ignore[arg-type]
    except Exception as err:  # noqa: BLE001 (whatever a damaged pickle raises: UnpicklingError, EOFError, ...)
        raise UndecodableFile(str(getattr(file, "name", "?")), err) from None


_ARRAYS_ONLY = types.SimpleNamespace(load=_array_load)  # the `pickle` torchvision's cifar module sees while loading
_LOADING = threading.Lock()  # one CIFAR-10 load at a time swaps that name


@contextlib.contextmanager
def _arrays_only() -> Iterator[None]:
    """torchvision's CIFAR10 loader unpickles through ArrayUnpickler inside (its code runs unchanged)."""
    with _LOADING:
        torchvision.datasets.cifar.pickle = _ARRAYS_ONLY
        try:
            yield
        finally:
            torchvision.datasets.cifar.pickle = pickle


def _decoded(root: str | os.PathLike, train: bool, download: bool = False) -> CIFAR10:
    """torchvision's CIFAR10 of `root`, its files unpickled as arrays only; a file it cannot decode (truncated, not
    CIFAR-10, naming code) is a DataMissingError naming the file (its RuntimeError, a failed md5 check or
    download, is the caller's)."""
    try:
        with _arrays_only():
            return dataset_class()(str(Path(root).expanduser()), train=train, download=download)
    except UndecodableFile as err:
        raise DataMissingError(
            f"CIFAR-10 file {err.path} cannot be decoded ({_one_line(err.cause)}): it is truncated or not CIFAR-10; "
            f"{_by_hand(root)}"
        ) from None
    except (RuntimeError, OSError):  # a failed md5 check, download or read: the caller's to report
        raise
    except Exception as err:  # noqa: BLE001 (decoded files of the wrong shape: numpy's errors)
        raise DataMissingError(
            f"CIFAR-10 files of {cifar10_folder(root)} cannot be decoded ({_one_line(err)}): not CIFAR-10; "
            f"{_by_hand(root)}"
        ) from None


def fingerprint(root: str | os.PathLike) -> dict[str, object]:
    """What a run trains on: the sha256 over the CIFAR-10 files' names, sizes and whole-file sha256 (`kind`
    WHOLE_FILES: see nbm_lightning.records.run_record), their bytes, and whether torchvision's md5 check of them was
    skipped
    (NBM_CIFAR_SKIP_MD5: synthetic data). Equal for equal files on any machine; a synthetic CIFAR-10 never matches
    the real one. Each file is hashed once per process while its size and mtime stay (`file_sha256`)."""
    digest, total = hashlib.sha256(), 0
    for name in sorted(_file_names()):
        path = cifar10_folder(root) / name
        size = path.stat().st_size if path.is_file() else -1
        digest.update(f"{name}:{size}:{file_sha256(path) if size >= 0 else ''}\n".encode())
        total += max(size, 0)
    return {
        "kind": WHOLE_FILES,
        "files_sha256": digest.hexdigest(),
        "bytes": total,
        "md5_checked": dataset_class() is CIFAR10,
    }


_FILE_HASHES: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, inode) -> sha256 of the whole file


def file_sha256(path: Path) -> str:
    """sha256 of a whole file, streamed; cached in this process by (path, size, mtime, inode).

    A file changed while it was read (its size or mtime differ after) is not cached. No cache file: the
    cache would be one more thing read from disk that decides what a record says.
    """
    before = os.stat(path)
    key = (str(Path(path).absolute()), before.st_size, before.st_mtime_ns, before.st_ino)
    cached = _FILE_HASHES.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ino) == key[1:]:
        _FILE_HASHES[key] = digest.hexdigest()
    return digest.hexdigest()


def _file_names() -> list[str]:
    """The CIFAR-10 files torchvision reads."""
    return [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]


def download_cifar10(root: str | os.PathLike) -> None:
    """Download and extract CIFAR-10 into root unless it is there; failures become DataMissingError."""
    for train in (True, False):
        try:
            _decoded(root, train, download=True)
        except (OSError, RuntimeError) as err:  # no network, refused, bad archive
            raise DataMissingError(
                f"could not download CIFAR-10 into {cifar10_folder(root)} ({_one_line(err)}): {_by_hand(root)}"
            ) from err


def _one_line(err: BaseException) -> str:
    """An exception as one line: its type and message, whitespace collapsed."""
    return " ".join(f"{type(err).__name__}: {err}".split())


# ---------------------------------------------------------------------------------------------------------------
# The torchvision pipeline
# ---------------------------------------------------------------------------------------------------------------


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


class _Position:
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


class EpochSampler(torch.utils.data.Sampler):
    """Training order of one epoch, a permutation seeded by (seed, epoch), yielding (epoch, i); resumable."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch_fn: Callable[[], int] | None, position: _Position):
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


# ---------------------------------------------------------------------------------------------------------------
# The DataModule
# ---------------------------------------------------------------------------------------------------------------


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
        sampler = EpochSampler(len(data), batch_size, self.seed, self._epoch_fn(), _Position(self._progress_fn()))
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
