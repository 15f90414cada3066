"""Read what an offline W&B run sent: the records of its `.wandb` file (W&B's transaction log of protobufs).

wandb 0.31 ships no Python reader of this file (its core is in Go), so the tests read it here: a 7-byte file
header (`:W&B`, magic, version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 of type and
data, length, type: 1 full, 2 first, 3 middle, 4 last); a chunk never straddles a block, whose unusable tail is
padding. Each assembled record is a `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def wandb_records(path: Path) -> list[Any]:
    """Every record of an offline run's .wandb file (LevelDB-log framing, W&B's protobuf Record)."""
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    ident, _magic, _version = struct.unpack("<4sHB", data[:header])
    assert ident == b":W&B", f"{path} is not a W&B transaction log"
    records, pos, pending = [], header, b""
    while pos + header <= len(data):
        left = block - pos % block
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + header]) if left >= header else (0, 0, 0)
        if left < header or (crc, length, kind) == (0, 0, 0):
            pos += left  # block trailer or padding
            continue
        chunk = data[pos + header : pos + header + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"bad chunk at {pos} of {path}"
        pos += header + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start a record, MIDDLE/LAST extend it
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
    return records


@dataclass
class Sent:
    """What one offline run sent to W&B."""

    run_id: str = ""  # the run's id
    name: str = ""  # its display name
    init_config: dict[str, Any] = field(default_factory=dict)  # the config of the run record (wandb.init)
    config: dict[str, Any] = field(default_factory=dict)  # the config after every update
    summary: dict[str, Any] = field(default_factory=dict)  # top-level key -> value (nested dicts for media)
    history: set[str] = field(default_factory=set)  # top-level keys of every history row
    files: list[str] = field(default_factory=list)  # files saved to the run
    artifacts: list[Any] = field(default_factory=list)  # artifact records
    exit_code: int | None = None  # the exit code the run finished with (None: never finished)


def _put(target: dict[str, Any], item: Any) -> None:
    """Set a config/summary item (plain or nested key) in a dict."""
    path = [item.key] if item.key else list(item.nested_key)
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)


def sent_by(run_dir: Path) -> Sent:
    """Read back one offline run folder's .wandb file."""
    (path,) = run_dir.glob("run-*.wandb")
    sent = Sent()
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            sent.run_id, sent.name = record.run.run_id, record.run.display_name
            for item in record.run.config.update:
                _put(sent.init_config, item)
                _put(sent.config, item)
        elif kind in ("config", "summary"):
            for item in getattr(record, kind).update:
                _put(getattr(sent, kind), item)
        elif kind == "history":
            sent.history |= {item.key or item.nested_key[0] for item in record.history.item}
        elif kind == "files":
            sent.files += [f.path for f in record.files.files]
        elif kind == "artifact":
            sent.artifacts.append(record.artifact)
        elif kind == "exit":
            sent.exit_code = record.exit.exit_code
    return sent
