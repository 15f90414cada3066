"""Shared fixtures: the published benchmark file.

The tests find it at $NBM_REFERENCE_JSON, else at ../shared/reference/ beside the repository (the
workplace's reference folder; library code never looks there: users name the file with NBM_BENCHMARK).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nbm_lightning.arch.codes import unique_codes
from nbm_lightning.bench import PUBLISHED_NAME, Benchmark

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / PUBLISHED_NAME  # named in the CI failure


def default_published_path() -> Path | None:
    """The published file: $NBM_REFERENCE_JSON, else ../shared/reference/ beside the repository, else None."""
    for candidate in (os.environ.get("NBM_REFERENCE_JSON"), DEFAULT_REFERENCE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def published_path() -> Path:
    """Path of the published NAS-Bench-Macro JSON; skips (never in CI) where it is absent."""
    path = default_published_path()
    if path is None:
        if os.environ.get("NBM_REQUIRE_REFERENCE") == "1":
            pytest.fail(
                "NBM_REQUIRE_REFERENCE=1 but the published file is at neither $NBM_REFERENCE_JSON "
                f"nor {DEFAULT_REFERENCE}"
            )
        pytest.skip(
            "published nas-bench-macro_cifar10.json not found: set NBM_REFERENCE_JSON to its path "
            "(get it from the xiusu/NAS-Bench-Macro repository)"
        )
    return path


@pytest.fixture(scope="session")
def published(published_path: Path) -> dict:
    """The published benchmark, parsed."""
    return json.loads(published_path.read_text())


@pytest.fixture(scope="session")
def init_checksums(published_path: Path) -> dict:
    """The published trainer's initial-weight checksums (`init_checksums.json` beside the published file),
    keyed `<code>-s<seed>`; skips where absent or computed with another torch (never under NBM_REQUIRE_REFERENCE
    for absence)."""
    import torch

    path = Path(os.environ.get("NBM_INIT_CHECKSUMS", published_path.parent / "init_checksums.json"))
    if not path.is_file():
        if os.environ.get("NBM_REQUIRE_REFERENCE") == "1":
            pytest.fail(f"NBM_REQUIRE_REFERENCE=1 but {path} is missing")
        pytest.skip(f"init_checksums.json not found at {path} (set NBM_INIT_CHECKSUMS)")
    data = json.loads(path.read_text())
    if data["torch"].split("+")[0] != torch.__version__.split("+")[0]:
        pytest.skip(f"checksums were computed with torch {data['torch']}, this is {torch.__version__}")
    return data["checksums"]


@pytest.fixture(scope="module")
def bench(published_path: Path) -> Benchmark:
    """The published file as a Benchmark (tests of search and its interop; a module may define its own)."""
    return Benchmark.load(published_path)


@pytest.fixture(scope="module")
def truth(published: dict) -> np.ndarray:
    """The true mean accuracy of each canonical code (unique_codes() order), from the published JSON itself."""
    return np.array([np.mean(published[code]["test_acc"]) for code in unique_codes()])
