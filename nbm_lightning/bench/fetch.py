"""The published benchmark file on a fresh install: a local cache, filled once from the seed repository.

`published_file()` returns the cached copy of the published file, downloading it first where the cache lacks
it: from `NBM_BENCHMARK_URL` (else the raw file URL of the `xiusu/NAS-Bench-Macro` repository) into
`NBM_CACHE_DIR` (else `$XDG_CACHE_HOME/nbm_lightning`, else `~/.cache/nbm_lightning`). The download is bounded:
at most MAX_DOWNLOAD_BYTES, all of it within DEADLINE_S (a server trickling bytes is cut off; no read waits more
than STALL_S), and checked against the published file's sha256 before it is renamed into the cache (atomically):
a mismatch or a failed download leaves nothing there and is one line naming the URL, the cache path and
`NBM_BENCHMARK`. urllib only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes
from ..core.errors import UserError
from ..core.jsonread import JSONReadError, read_bytes

ENV_BENCHMARK = "NBM_BENCHMARK"  # the one environment variable naming the benchmark file (every command reads it)
PUBLISHED_NAME = "nas-bench-macro_cifar10.json"  # the published file's name (and its name in the cache)
PUBLISHED_SHA256 = "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297"  # of its 1,178,821 bytes
PUBLISHED_REPO = "xiusu/NAS-Bench-Macro"  # the seed repository on GitHub: the file is data/<name> on branch master
PUBLISHED_URL = f"https://raw.githubusercontent.com/{PUBLISHED_REPO}/master/data/{PUBLISHED_NAME}"  # default source
ENV_URL = "NBM_BENCHMARK_URL"  # overrides PUBLISHED_URL (a mirror, another branch, a file:// URL)
ENV_CACHE = "NBM_CACHE_DIR"  # overrides the cache folder
MAX_DOWNLOAD_BYTES = 4 * 2**20  # the most bytes read (the published file has 1,178,821): more is not that file
DEADLINE_S = 300.0  # seconds the whole download (connection, headers, body) may take
STALL_S = 60.0  # seconds one read may wait for a byte (the socket timeout)
CHUNK_BYTES = 2**16  # bytes asked for per read


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
        return path if sha256_of(read_bytes(path, MAX_DOWNLOAD_BYTES)) == PUBLISHED_SHA256 else None
    except JSONReadError:  # missing, not a regular file (a FIFO never blocks), too large
        return None


def _download(url: str, target: Path) -> bytes:
    """The bytes at `url` (bounded: `fetch_bytes`); UserError naming the URL, the cache path and NBM_BENCHMARK."""
    try:
        return fetch_bytes(url)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:  # TimeoutError: OSError
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download the published benchmark from {url} ({reason}) into {target}: "
            f"set {ENV_BENCHMARK} to a local copy of {PUBLISHED_NAME} (or {ENV_URL} to another URL)"
        ) from None


def fetch_bytes(url: str, max_bytes: int | None = None, deadline_s: float | None = None) -> bytes:
    """The bytes at `url`: at most `max_bytes` (MAX_DOWNLOAD_BYTES), all within `deadline_s` (DEADLINE_S);
    ValueError past the size, TimeoutError past the deadline, URLError/OSError where the transfer fails.

    The transfer runs in a daemon thread so that the deadline holds whatever blocks (a trickling server, an open
    that never returns); past it the thread is told to stop and stops at its next read (at most STALL_S later)."""
    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    deadline_s = DEADLINE_S if deadline_s is None else deadline_s
    stop, outcome = threading.Event(), {}
    worker = threading.Thread(target=_transfer, args=(url, max_bytes, stop, outcome), daemon=True, name="download")
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        stop.set()
        raise TimeoutError(f"not complete within the {deadline_s:g} s allowed")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]


def _transfer(url: str, max_bytes: int, stop: threading.Event, outcome: dict[str, Any]) -> None:
    """Read `url` into outcome["data"] in chunks, or its exception into outcome["error"]; stops when `stop` is set."""
    try:
        with urllib.request.urlopen(url, timeout=min(STALL_S, DEADLINE_S)) as response:  # noqa: S310 - by design
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ValueError(f"{int(declared)} bytes announced, more than the {max_bytes} allowed")
            read, chunks, size = getattr(response, "read1", response.read), [], 0
            while not stop.is_set():
                chunk = read(CHUNK_BYTES)  # read1: returns what one read brings, so `stop` is seen between bytes
                if not chunk:
                    outcome["data"] = b"".join(chunks)
                    return
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"more than the {max_bytes} bytes allowed")
                chunks.append(chunk)
    except Exception as err:  # noqa: BLE001 - handed to the waiting thread, which raises it
        outcome["error"] = err


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
