"""The published benchmark file on a fresh install: a local cache, filled once from the seed repository.

`published_file()` returns the cached copy of the published file, downloading it first where the cache lacks
it: from `NBM_BENCHMARK_URL` (else the raw file URL of the `xiusu/NAS-Bench-Macro` repository) into
`NBM_CACHE_DIR` (else `$XDG_CACHE_HOME/nbm_lightning`, else `~/.cache/nbm_lightning`). The download is checked
against the published file's sha256 before it is renamed into the cache (atomically): a mismatch or a failed
download leaves nothing there and is one line naming the URL, the cache path and `NBM_BENCHMARK`. urllib only.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import UserError

ENV_BENCHMARK = "NBM_BENCHMARK"  # the one environment variable naming the benchmark file (every command reads it)
PUBLISHED_NAME = "nas-bench-macro_cifar10.json"  # the published file's name (and its name in the cache)
PUBLISHED_SHA256 = "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297"  # of its 1,178,821 bytes
PUBLISHED_URL = f"https://raw.githubusercontent.com/xiusu/NAS-Bench-Macro/main/{PUBLISHED_NAME}"  # default source
ENV_URL = "NBM_BENCHMARK_URL"  # overrides PUBLISHED_URL (a mirror, another branch, a file:// URL)
ENV_CACHE = "NBM_CACHE_DIR"  # overrides the cache folder
TIMEOUT_S = 60.0  # seconds the download may stall before it fails


def cache_dir() -> Path:
    """The cache folder: $NBM_CACHE_DIR, else $XDG_CACHE_HOME/nbm_lightning, else ~/.cache/nbm_lightning."""
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nbm_lightning"


def download_url(url: str | None = None) -> str:
    """The URL to download from: `url`, else $NBM_BENCHMARK_URL, else the seed repository's raw file."""
    return url or os.environ.get(ENV_URL) or PUBLISHED_URL


def sha256_of(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def cached_published(cache: str | os.PathLike[str] | None = None) -> Path | None:
    """The cached published file where it is present and intact (its sha256), else None."""
    path = Path(cache or cache_dir()) / PUBLISHED_NAME
    try:
        return path if sha256_of(path.read_bytes()) == PUBLISHED_SHA256 else None
    except OSError:
        return None


def _download(url: str, target: Path) -> bytes:
    """The bytes at `url`; UserError naming the URL, the cache path and NBM_BENCHMARK where that fails."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - http(s) or file by design
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download the published benchmark from {url} ({reason}) into {target}: "
            f"set {ENV_BENCHMARK} to a local copy of {PUBLISHED_NAME} (or {ENV_URL} to another URL)"
        ) from None


def published_file(url: str | None = None, cache: str | os.PathLike[str] | None = None) -> Path:
    """The cached published file, downloaded and sha256-checked once where the cache lacks it."""
    found = cached_published(cache)
    if found is not None:
        return found
    source, target = download_url(url), Path(cache or cache_dir()) / PUBLISHED_NAME
    data = _download(source, target)
    actual = sha256_of(data)
    if actual != PUBLISHED_SHA256:
        raise UserError(
            f"download from {source} has sha256 {actual}, expected {PUBLISHED_SHA256}: nothing written to {target} "
            f"(set {ENV_BENCHMARK} to a local copy of {PUBLISHED_NAME}, or {ENV_URL} to another URL)"
        )
    try:
        return atomic_write_bytes(target, data)
    except OSError as err:
        raise UserError(f"cannot write the benchmark cache {target}: {err.strerror or err} (set {ENV_CACHE})") from None
