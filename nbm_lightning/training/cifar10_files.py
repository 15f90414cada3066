"""CIFAR-10's files: presence, torchvision's md5 check, download, decoding as plain arrays only, and the data
fingerprint a run records."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import torchvision.datasets.cifar
from torchvision.datasets import CIFAR10

from ..core.errors import UserError
from ..records.run_record import WHOLE_FILES

HASH_CHUNK = 2**20  # bytes read at a time while hashing a data file
SKIP_MD5_ENV = "NBM_CIFAR_SKIP_MD5"  # "1": accept CIFAR-10 files without torchvision's md5 check (presence only)


class DataMissingError(UserError):
    """CIFAR-10 is not where it should be (or fails its md5 check), and was not (or could not be) downloaded."""


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
