"""Fidelity of the start: a run's initial weights equal those of the published trainer for the same (code, seed).

The checksums come from the workplace's reference folder (`init_checksums.json`, beside the published file:
see PUBLISHED.md, "Seeding and initial weights"). They were computed with torch 2.14.1 on the CPU; another
torch may draw PyTorch's default initialisation differently, so the tests skip there with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nbm_lightning.arch.network import MacroNet, weights_sha256
from nbm_lightning.records.recipe import Execution
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training.run import build_network, seed_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checksums(init_checksums: dict) -> dict:
    """The 15 published initial-weight checksums (conftest.py), keyed `<code>-s<seed>`."""
    return init_checksums


def test_digest_reads_float32_le_bytes_in_parameter_order():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0]]))
        net.bias.fill_(0.5)
    import hashlib

    expected = hashlib.sha256(torch.tensor([1.0, -2.0, 0.5]).numpy().astype("<f4").tobytes()).hexdigest()
    assert weights_sha256(net) == expected
    assert weights_sha256(net.to(memory_format=torch.channels_last)) == expected


def test_all_published_initial_weights_are_reproduced(checksums):
    assert len(checksums) == 15
    for key, digest in checksums.items():
        code, seed = key.split("-s")
        seed_run(int(seed))
        assert weights_sha256(build_network(code, 10, Execution())) == digest, key


def test_channels_last_keeps_the_initial_weights(checksums):
    seed_run(2)
    net = build_network("12012012", 10, Execution(channels_last=True))
    assert weights_sha256(net) == checksums["12012012-s2"]
    torch.manual_seed(0)
    assert weights_sha256(MacroNet("12012012")) != checksums["12012012-s2"]  # the check can fail


def test_a_fresh_fit_process_starts_from_the_published_weights(checksums, tmp_path):
    write_cifar10(tmp_path / "data", n_train=64, n_test=32, seed=0)
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_MODE="disabled")
    argv = ["--arch=21021021", "--seed=1", f"--data-dir={tmp_path / 'data'}", "--download=false", "--epochs=1",
            "--batch-size=32", "--progress=false", "--accelerator=cpu", "--wandb-mode=disabled"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "results" / "21021021-s1.json").read_text())
    assert record["init_sha256"] == checksums["21021021-s1"]
