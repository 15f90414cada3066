"""A versioned JSON file keyed by code, as the cost and proxies files are: its envelope checked, one entry a line.

The envelope: {"format": F, "version": V, ..., "versions": {...}, "runs": [{...}, ...], KEY: {code: entry}}. The
formats' own modules (hwcost.costfile, zerocost.proxyfile) check their settings and entries; this module checks what
they share and writes their text. It imports nothing of ours outside core/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from .validate import shown

T = TypeVar("T")


def check_envelope(data: Any, source: str, fmt: str, version: int, keys: tuple[str, ...], what: str) -> None:
    """ValueError (one line naming `source`) unless `data` is an object of format `fmt`, `version` and `keys`."""
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ValueError(f"{source!r} is not a {what}: no 'format': {fmt!r}")
    if isinstance(data.get("version"), bool) or data.get("version") != version:
        raise ValueError(f"{source!r}: version {shown(data.get('version'))} (this reader knows {version})")
    if sorted(data) != sorted(keys):
        raise ValueError(f"{source!r}: keys {shown(sorted(data))}, expected {list(keys)}")


def check_provenance(data: dict[str, Any]) -> None:
    """ValueError unless `versions` is an object of strings and `runs` a non-empty list of objects."""
    versions = data["versions"]
    if not isinstance(versions, dict) or not all(isinstance(v, (str, bool, type(None))) for v in versions.values()):
        raise ValueError(f"versions {shown(versions)}: expected an object of strings")
    runs = data["runs"]
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"runs {shown(runs)}: expected a non-empty list of objects")


def dumps_keyed(doc: dict[str, Any], key: str) -> str:
    """The document's text, `key` last with one entry per line (readable, diffable, and quick to write)."""
    doc = dict(doc)
    entries = doc.pop(key)
    head = json.dumps(doc, indent=1)[:-2]  # without the closing "\n}"
    lines = [f"  {json.dumps(code)}: {json.dumps(entry)}" for code, entry in entries.items()]
    body = "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"
    return f"{head},\n {json.dumps(key)}: {body}\n}}\n"


def read_entries(entries: Any, key: str, source: str, codes: set[str], parse: Callable[[Any], T]) -> dict[str, T]:
    """code -> parse(entry) for each entry of the object `entries`, sorted by code; ValueError (one line naming
    `source`, the code and the problem) where it is not an object, a code is not in `codes` or parse fails."""
    if not isinstance(entries, dict):
        raise ValueError(f"{source!r}: {key} {shown(entries)}: expected an object keyed by code")
    out = {}
    for code, value in sorted(entries.items()):
        if code not in codes:
            raise ValueError(f"{source!r}: {key} of {shown(code)}: expected a canonical architecture code")
        try:
            out[code] = parse(value)
        except ValueError as err:
            raise ValueError(f"{source!r}: {key} of {code}: {' '.join(str(err).split())}") from None
    return out
