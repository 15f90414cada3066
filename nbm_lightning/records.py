"""Run records: one JSON file per (canonical code, seed), written atomically; provenance helpers."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = "nbm_lightning.run_record"  # the `schema` field of every record
SCHEMA_VERSION = 1
COMPLETE, FAILED = "complete", "failed"  # values of a record's `status`
PACKAGES = ("torch", "torchvision", "pytorch_lightning", "torchmetrics", "wandb", "ptflops", "numpy", "nbm_lightning")


def run_name(canonical: str, seed: int) -> str:
    """The primary key of a run: `<canonical>-s<seed>` (W&B run name and record file stem)."""
    return f"{canonical}-s{seed}"


def record_path(results_dir: str | Path, canonical: str, seed: int) -> Path:
    """Where the record of (canonical, seed) lives."""
    return Path(results_dir) / f"{run_name(canonical, seed)}.json"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text (see atomic_write_bytes)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write `data` as indented JSON."""
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def read_record(path: str | Path) -> dict[str, Any]:
    """Read a run record; a file that is not a record raises ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"corrupt run record {str(path)!r}: {err}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{str(path)!r} is not a run record (no schema {SCHEMA!r})")
    return data


def library_versions() -> dict[str, str | None]:
    """Versions of Python, the key packages, CUDA and cuDNN, and the code (git commit where known)."""
    from importlib import metadata

    import torch

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    versions.update(code_version())
    return versions


def code_version() -> dict[str, Any]:
    """The git commit of this package's checkout and whether it has uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def device_info(device: Any) -> dict[str, Any]:
    """Where the run trained: accelerator type, device name, host."""
    import torch

    kind = getattr(device, "type", str(device))
    name = torch.cuda.get_device_name(device) if kind == "cuda" else (platform.processor() or platform.machine())
    return {
        "type": kind,
        "name": name,
        "count": torch.cuda.device_count() if kind == "cuda" else os.cpu_count(),
        "host": socket.gethostname(),
    }
