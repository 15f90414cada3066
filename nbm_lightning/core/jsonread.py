"""Reading JSON from outside: regular files only, bounded in size and nesting depth, every failure one line.

Every reader of a file this project did not just write (run records, benchmark files, search runs files) goes
through `read_json` (or `loads` for text in hand): a FIFO, a device or a folder never blocks or crashes a reader,
a huge or deeply nested file is refused before it costs memory or recursion, and whatever is wrong comes back as
one `JSONReadError` (a ValueError) naming the file. This module imports nothing of ours.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 256 * 2**20  # the largest JSON file read (the published file is 1.18 MB; an extended export ~ 100 MB)
MAX_DEPTH = 64  # the deepest nesting of arrays and objects accepted (our formats nest at most 6 deep)


class JSONReadError(ValueError):
    """A file or text that is not readable, bounded JSON (the message names its source)."""


def read_bytes(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; JSONReadError for anything else (FIFO, folder, device).

    The file is opened without blocking (a FIFO with no writer would block a plain open) and checked as opened,
    so a file swapped for a FIFO between a look and the open is refused too.
    """
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise JSONReadError(f"cannot read {name!r}: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JSONReadError(f"cannot read {name!r}: not a regular file")
        if info.st_size > max_bytes:
            raise JSONReadError(f"cannot read {name!r}: {info.st_size} bytes, more than the {max_bytes} allowed")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise JSONReadError(f"cannot read {name!r}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while read
        raise JSONReadError(f"cannot read {name!r}: more than the {max_bytes} bytes allowed")
    return data


def loads(text: str | bytes, source: str = "<memory>", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text nested at most `max_depth` deep; JSONReadError naming `source` otherwise.

    Python's json accepts NaN and Infinity (our failed runs write them): the format's own checks judge them.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONReadError(f"{source!r} is nested more than {max_depth} deep") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, and integers past int's digit limit
        raise JSONReadError(f"{source!r} is not valid JSON ({' '.join(str(err).split())[:200]})") from None
    if depth(value, max_depth) > max_depth:
        raise JSONReadError(f"{source!r} is nested more than {max_depth} deep")
    return value


def read_json(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of a regular file (bounded in size and depth); JSONReadError naming the file otherwise."""
    return loads(read_bytes(path, max_bytes), str(Path(path)), max_depth)


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion; stops past `limit`."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
