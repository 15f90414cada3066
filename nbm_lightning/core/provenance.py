"""Provenance of a run or an export: library versions, the package's own git commit, the device trained on."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "pytorch_lightning", "torchmetrics", "wandb", "ptflops", "numpy", "nbm_lightning")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this package's source folder


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


@cache
def code_version(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """The git commit of this package's own checkout and whether it is dirty; None outside such a checkout.

    The package counts as a checkout only where the repository's top level is the folder holding the package
    and the package's `__init__.py` is tracked there: an installed copy inside some other repository (a
    virtual environment in a project folder) records no commit. Dirty means tracked files differ from the
    commit; untracked files are not counted (benchmarks/ uses the same rule).
    """
    try:
        top = Path(_git(package_dir, "rev-parse", "--show-toplevel")).resolve()
        if top != package_dir.parent:
            return {"git_commit": None, "git_dirty": None}
        _git(top, "ls-files", "--error-unmatch", str(package_dir / "__init__.py"))
        commit = _git(top, "rev-parse", "HEAD")
        dirty = bool(_git(top, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def device_info(device: Any) -> dict[str, Any]:
    """Where the run trained: accelerator type, device name, device count, host."""
    import torch

    kind = getattr(device, "type", str(device))
    name = torch.cuda.get_device_name(device) if kind == "cuda" else (platform.processor() or platform.machine())
    count = torch.cuda.device_count() if kind == "cuda" else os.cpu_count()
    return {"type": kind, "name": name, "count": count, "host": socket.gethostname()}
