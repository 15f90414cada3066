"""Benchmark files on disk: which file, its JSON read within bounds, which format it is, and that format's loader.

Two formats: "published" (NAS-Bench-Macro's JSON: `published`) and "extended" (this project's export:
`extended`), told apart by the extended file's "format" field. A new format is one module with a
`load_benchmark(data, source)` plus its detection in `detect_format` and a line in LOADERS. `benchmark_path` finds
the file: an explicit path, else the one environment variable `NBM_BENCHMARK`, else the cached published file
(`fetch`: downloaded once).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.jsonread import JSONReadError, loads, read_bytes
from . import extended, published
from .fetch import ENV_BENCHMARK, ENV_CACHE, ENV_URL, PUBLISHED_NAME, cache_dir, cached_published, published_file
from .published import ArchResult

GET_PUBLISHED = (  # where a command's benchmark file comes from, for help texts
    f"${ENV_BENCHMARK}, else {PUBLISHED_NAME} from the xiusu/NAS-Bench-Macro GitHub repository, downloaded once "
    f"into a cache: ${ENV_CACHE}, else ~/.cache/nbm_lightning; ${ENV_URL} overrides the URL"
)
EXTENDED_PREFIX = "nbm_lightning"  # the "format" value of this project's extended files starts with it
Loaded = tuple[list[ArchResult], dict[str, Any]]  # a loader's answer: records (canonical codes, sorted) and the
# further fields of a Benchmark it gives (metric, accs, train_time_s, eval_acc, notes)
LOADERS: dict[str, Callable[[dict[str, Any], str], Loaded]] = {  # format name -> loader (ValueError: not this format)
    "published": published.load_benchmark,
    "extended": extended.load_benchmark,
}


class BenchmarkError(UserError):
    """A benchmark file that cannot be read (one line, exit status 2 on the command line)."""


class BenchmarkFormatError(BenchmarkError, ValueError):
    """A file that is not a benchmark of a supported format, or breaks its invariants (also a ValueError)."""


def benchmark_path(path: str | os.PathLike[str] | None = None, download: bool = False) -> Path:
    """The benchmark file: `path`, else $NBM_BENCHMARK, else the cached published file (fetched once if `download`)."""
    chosen = path or os.environ.get(ENV_BENCHMARK)
    if chosen:
        return Path(chosen)
    if download:
        return published_file()
    cached = cached_published()
    if cached is None:
        raise UserError(
            f"no benchmark file: pass a path (--file PATH), set {ENV_BENCHMARK}, or let Benchmark.load() "
            f"download the published file into {cache_dir() / PUBLISHED_NAME}"
        )
    return cached


def read(path: str | os.PathLike[str]) -> Loaded:
    """A benchmark file's records and further Benchmark fields, its bytes' sha256 among them (see `read_json`,
    `parse`)."""
    data, digest = read_json(path)
    _, records, fields = parse(data, str(path))
    return records, {**fields, "sha256": digest}


def read_json(path: str | os.PathLike[str], what: str = "benchmark file") -> tuple[Any, str]:
    """A JSON file parsed (bounded in size and depth: jsonread), and its bytes' sha256; BenchmarkError where it cannot
    be read (missing, not a regular file, too large), BenchmarkFormatError where it is not JSON."""
    try:
        text = read_bytes(path)
    except JSONReadError as err:
        raise BenchmarkError(f"cannot read {what}{str(err).removeprefix('cannot read')}") from None
    try:
        return loads(text, str(path)), hashlib.sha256(text).hexdigest()
    except JSONReadError as err:
        raise BenchmarkFormatError(f"{what} {err}") from None


def parse(data: Any, source: str) -> tuple[str, list[ArchResult], dict[str, Any]]:
    """The format of parsed JSON, its records and further Benchmark fields; BenchmarkFormatError naming `source`."""
    fmt = detect_format(data, source)
    try:
        records, fields = LOADERS[fmt](data, source)
    except ValueError as err:
        raise BenchmarkFormatError(str(err)) from None
    return fmt, records, fields


def detect_format(data: Any, source: str) -> str:
    """The format of parsed JSON: "extended" (this project's) or "published"; else BenchmarkFormatError."""
    if not isinstance(data, dict):
        raise BenchmarkFormatError(
            f"{source!r} is not a NAS-Bench-Macro benchmark: top level is a JSON {type(data).__name__}, "
            "expected an object"
        )
    if isinstance(data.get("format"), str) and data["format"].startswith(EXTENDED_PREFIX):
        return "extended"
    return "published"
