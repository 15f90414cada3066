"""benchmarks/fusion_probe.py: the fused network computes the three seeds' networks, and a wrong fusion is caught."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from benchmarks import fusion_probe as fp
from nbm_lightning.arch.network import weights_sha256

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """As the probe's CPU check runs: many tiny per-group float64 calls are faster on one thread."""
    with fp.cpu_threads(1):
        yield


def _nets(code: str, dtype: torch.dtype) -> list[nn.Module]:
    return fp.build_nets(code, fp.SEEDS, dtype, CPU)


def _failed(rows: list[fp.Agreement]) -> set[tuple[str, str]]:
    return {(row.mode, row.what) for row in rows if not row.passed}


def test_the_fused_median_network_equals_the_three_seeds_in_float32():
    nets = _nets(fp.CODE, torch.float32)
    assert len({weights_sha256(net) for net in nets}) == 3  # three seeds, three initialisations
    rows = fp.check_fusion(nets, fp.fuse(nets), batch=2)
    assert {(r.mode, r.what) for r in rows} == {
        ("init", "weights"),
        ("train", "logits"),
        ("train", "gradients"),
        ("train", "running stats"),
        ("eval", "logits"),
        ("eval", "gradients"),
    }
    assert not _failed(rows), [r.line() for r in rows]
    assert all(r.tensors > 0 for r in rows)


def test_the_fusion_is_exact_in_float64():
    nets = _nets(fp.CODE, torch.float64)
    rows = fp.check_fusion(nets, fp.fuse(nets), batch=2)
    assert not _failed(rows), [r.line() for r in rows]
    assert max(r.max_abs_diff for r in rows) < 1e-12


def test_permuted_models_fail_the_check():
    nets = _nets(fp.CODE, torch.float32)
    wrong = fp.fuse([nets[1], nets[0], nets[2]])
    failed = _failed(fp.check_fusion(nets, wrong, batch=2))
    assert failed >= {("init", "weights"), ("train", "logits"), ("train", "gradients"), ("eval", "logits")}


def test_a_subtle_error_fails_in_float64():
    nets = _nets(fp.CODE, torch.float64)
    fused = fp.fuse(nets)
    fused.head[1].eps = 1e-3  # one BatchNorm with another eps: the weights are still equal
    failed = _failed(fp.check_fusion(nets, fused, batch=2))
    assert ("init", "weights") not in failed
    assert {("train", "logits"), ("train", "gradients")} <= failed


def test_fuse_refuses_unknown_modules_and_mismatched_shapes():
    with pytest.raises(TypeError, match="GELU"):
        fp.fuse([nn.Sequential(nn.GELU()), nn.Sequential(nn.GELU())])
    with pytest.raises(ValueError, match="out_channels"):
        fp.fuse([nn.Conv2d(3, 4, 1), nn.Conv2d(3, 5, 1)])


def test_the_command_line_checks_times_and_writes_json(tmp_path):
    out = tmp_path / "probe.json"
    argv = ["--device", "cpu", "--arch", fp.CODE, "--batch", "2", "--steps", "1", "--warmup", "1", "--rounds", "1"]
    argv += ["--check-batch", "2"]
    assert fp.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["command"] == " ".join(["python -m benchmarks.fusion_probe", *argv, "--json", str(out)])
    assert result["check"]["passed"] and {r["dtype"] for r in result["check"]["rows"]} == {"float32", "float64"}
    assert set(result["throughput"]["cases"]) == {"single", "sequential", "fused"}
    assert result["throughput"]["cases"]["fused"]["models"] == 3
    assert result["hardware"]["cpu_count"] and result["versions"]["torch"] == torch.__version__
