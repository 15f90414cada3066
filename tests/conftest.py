"""Shared fixtures: the published benchmark file (located as nbm_lightning.bench does)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbm_lightning.bench import PUBLISHED_NAME, REPO_ROOT, default_published_path

DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / PUBLISHED_NAME  # named in the CI failure


@pytest.fixture(scope="session")
def published_path() -> Path:
    """Path of the published NAS-Bench-Macro JSON; skips (never in CI) where it is absent."""
    path = default_published_path()
    if path is None:
        if os.environ.get("NBM_REQUIRE_REFERENCE") == "1":
            pytest.fail(
                f"NBM_REQUIRE_REFERENCE=1 but the published file is at neither $NBM_REFERENCE_JSON nor {DEFAULT_REFERENCE}"
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
