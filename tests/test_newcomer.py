"""What a newcomer runs first: the README's CPU smoke command learns on the learnable synthetic data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbm_lightning.records.run_record import RunRecord
from nbm_lightning.synthetic.cifar10 import write_cifar10

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_config_learns_on_the_readme_synthetic_data(tmp_path):
    """The README's command, W&B off: configs/smoke.yaml as committed, on write_cifar10(root, 2000, 500, learnable)."""
    write_cifar10(tmp_path / "synthetic", 2000, 500, learnable=True)
    config = str(ROOT / "configs" / "smoke.yaml")
    command = [sys.executable, "-m", "nbm_lightning.fit", "--arch", "12012012", "--config", config, "--data-dir",
               "synthetic", "--download", "false", "--wandb-mode", "disabled", "--progress", "false"]  # fmt: skip
    env = {**os.environ, "NBM_CIFAR_SKIP_MD5": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = RunRecord.read(tmp_path / "results" / "smoke" / "12012012-s0.json")
    assert record.recipe["epochs"] * record.recipe["train_limit"] <= 2048  # short: a CPU minute, a GPU moment
    assert record.test_acc_final > 50.0, (record.test_acc_final, record.curves)  # chance: 10 %


def test_slurm_log_folder_is_committed_and_its_logs_ignored():
    """sbatch opens `#SBATCH --output` before the script runs: its folder must exist in a fresh clone."""
    script = (ROOT / "sweeps" / "slurm_array.sh").read_text()
    folder = Path(re.search(r"^#SBATCH --output=(\S+)", script, re.M)[1]).parent
    keep = folder / ".gitkeep"
    assert (ROOT / keep).is_file() and str(keep) in _readme()
    ignored = _ignored([str(keep), str(folder / "1_2.out"), "logs/agents/agent-host-gpu0-0.log", "synthetic/x",
                        "plots/histograms.png", "bench_cpu_tiny.json", "runs.json", "nbm_extended.json"])  # fmt: skip
    assert ignored == {str(folder / "1_2.out"), "logs/agents/agent-host-gpu0-0.log", "synthetic/x",
                       "plots/histograms.png", "bench_cpu_tiny.json", "runs.json", "nbm_extended.json"}  # fmt: skip


def test_created_at_is_documented_where_the_export_writes_it():
    from nbm_lightning.bench import extended, extended_schema

    doc = extended.build({}, {}, "2026-01-01T00:00:00+00:00")
    assert "created_at" in doc and "created_at" not in doc["provenance"]
    assert "`created_at` (the\n  export's ISO UTC time, at the top level" in _readme()
    assert "at the top level (TOP_KEYS)" in extended_schema.__doc__


def test_readme_shows_a_code_to_its_network():
    import torch

    text = _readme()
    section = text[text.index("From a code to its network") :]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(block, scope)  # the README's snippet, as a newcomer runs it
    assert isinstance(scope["net"], torch.nn.Module) and scope["net"](torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def _readme() -> str:
    """The README and the docs/ pages, one text."""
    return "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def _ignored(paths: list[str]) -> set[str]:
    """The paths git ignores in this checkout (`git check-ignore`: read-only)."""
    proc = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *paths], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        pytest.skip("not a git checkout (an unpacked archive): git cannot say which paths it ignores")
    return set(proc.stdout.split())
