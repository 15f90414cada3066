"""Time the data fingerprint (`nbm_lightning.training.cifar10_files.fingerprint`) on a CIFAR-10-sized synthetic folder.

A synthetic CIFAR-10 of the real size (50,000 + 10,000 images, ~178 MB) is written to a temporary folder, then
the fingerprint is taken three times: the first call (every file hashed whole; the files are in the OS page
cache, just written), a second call (in-process cache: size and mtime unchanged) and, for comparison, the first
64 KiB of each file as the fingerprint hashed before whole files. Prints JSON with the hardware.

    python -m benchmarks.fingerprint [--n-train 50000 --n-test 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run import _cpu_model
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training import cifar10_files


def head_64k(root: Path) -> float:
    """Seconds to hash the first 64 KiB of each CIFAR-10 file (the fingerprint before whole files)."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    for name in sorted(cifar10_files._file_names()):
        with open(cifar10_files.cifar10_folder(root) / name, "rb") as handle:
            digest.update(handle.read(65536))
    return time.perf_counter() - start


def run(n_train: int, n_test: int) -> dict[str, Any]:
    """Write the folder, then time the first and the cached fingerprint (seconds) and the old 64 KiB read."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar10(root, n_train, n_test)
        size = sum(f.stat().st_size for f in cifar10_files.cifar10_folder(root).iterdir())
        start = time.perf_counter()
        first = cifar10_files.fingerprint(root)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        again = cifar10_files.fingerprint(root)
        cached_s = time.perf_counter() - start
        assert again == first
        return {
            "bytes": size, "first_call_s": round(first_s, 3), "cached_call_s": round(cached_s, 5),
            "first_over_cached": round(first_s / cached_s), "MB_per_s": round(size / first_s / 1e6),
            "head_64k_s": round(head_64k(root), 5), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg()[0], "python": platform.python_version(),
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(run(args.n_train, args.n_test), indent=1))


if __name__ == "__main__":
    main()
