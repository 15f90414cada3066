"""The fast path: same function as the reference path, no per-step host sync, bounded recompiles; the benchmark's
Lightning-vs-plain comparison compares like with like; benchmarks.run writes every section with positive numbers."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.overrides import TorchFunctionMode

from benchmarks import fastpath_check as fc
from benchmarks import run as bench
from benchmarks import train_speed as ts
from nbm_lightning.arch.network import MacroNet
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training.datamodule import CIFAR10DataModule
from nbm_lightning.training.module import MacroNetModule
from nbm_lightning.training.run import build_datamodule, build_module, build_network, build_trainer, seed_run

CPU = torch.device("cpu")
SMALL = "12000000"  # both inverted-residual kinds (depthwise 3x3 and 5x5), quick on a CPU


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A synthetic CIFAR-10 big enough for the tiny benchmark."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=bench.SIZES["tiny"].n_train, n_test=bench.SIZES["tiny"].n_test, seed=0)
    return root


@pytest.fixture(autouse=True)
def skip_md5(monkeypatch):
    """Synthetic files fail torchvision's md5 check: skip it (restored after each test)."""
    monkeypatch.setenv("NBM_CIFAR_SKIP_MD5", "1")


# ---------------------------------------------------------------- the fast path computes the same function
def test_fast_path_matches_reference_on_cpu():
    outcomes = fc.check(SMALL, CPU, steps=3, batch_size=8, compile="off")
    assert [o.variant for o in outcomes] == ["channels_last+fused+benchmark", "channels_last+foreach+benchmark"]
    assert all(o.passed for o in outcomes), [o.line() for o in outcomes]
    assert all(
        o.update_diff == 0.0 for o in outcomes
    )  # fused / foreach SGD are bit-identical to the default on the CPU


def test_check_fails_for_another_function():
    data = fc.batches(2, 8, CPU)
    outcome = fc.compare(
        SMALL,
        fc.REFERENCE.with_(name="bf16", precision="bf16-mixed"),
        fc.reference_run(SMALL, data, CPU),
        data,
        CPU,
        fc.TOLERANCE["fp32"],
    )
    assert not outcome.passed and "gradients" in outcome.failures()


def _outcome(device: torch.device, grad_error: float = 0.1, loss_diff: float = 1e-5) -> fc.Outcome:
    """A channels_last variant's outcome as the CPU gives it at batch 256: gradients off, losses close."""
    path = fc.variants(device, "off")[0]
    return fc.Outcome(path.name, grad_error, 1e-4, 0.0, [loss_diff], 1e-5, 1e-3, fc.expected_failures(path, device))


@pytest.mark.parametrize(
    "device, loss_diff, status, verdict",
    [
        ("cpu", 1e-5, 0, "EXPECTED FAIL (gradients: expected on a CPU: PyTorch's CPU channels_last BatchNorm kernel"),
        ("cpu", 1e-1, 1, "FAIL (gradients, loss at steps [1])"),  # a loss failure is never expected
        ("cuda", 1e-5, 1, "FAIL (gradients)"),  # on CUDA nothing is expected to fail
    ],
)
def test_only_the_cpu_channels_last_gradient_failure_is_expected(
    monkeypatch, capsys, device, loss_diff, status, verdict
):
    outcome = _outcome(torch.device(device), loss_diff=loss_diff)
    monkeypatch.setattr(fc, "check", lambda *args: [outcome, _outcome(torch.device(device), grad_error=1e-5)])
    assert fc.main(["--device", device]) == status
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(verdict) and lines[1].startswith("PASS ")
    expected = "PASS (every failure is expected on this device: gradients; see the EXPECTED FAIL lines)"
    assert lines[-1] == "fastpath_check: " + (expected if status == 0 else "FAIL")


# ---------------------------------------------------------------- Lightning vs the plain loop: like with like
class LossRecorder(pl.Callback):
    def __init__(self):
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach())


def fit_parts(data: Path, path: ts.TrainPath, code: str, seed: int, callbacks: list, **trainer_args):
    """What `fit` builds for a benchmark path (nbm_lightning.training.run's builders): trainer, module, datamodule."""
    recipe, execution = path.recipe(ts.TINY), path.execution(data, ts.TINY)
    trainer = build_trainer(recipe, execution, CPU, callbacks, max_epochs=1, **trainer_args)
    seed_run(seed)
    module = build_module(build_network(code, 10, execution), 10, recipe, execution)
    return trainer, module, build_datamodule(recipe, execution, seed, CPU)


@pytest.mark.parametrize("path", [ts.fast_path(), ts.REFERENCE.with_(num_workers=0)], ids=["fast", "reference"])
def test_lightning_and_plain_loops_take_the_same_steps(data, path):
    recorder = LossRecorder()
    trainer, module, dm = fit_parts(data, path, SMALL, 3, [recorder], limit_train_batches=4, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    seed_run(3)
    loop = ts.PlainLoop(build_network(SMALL, 10, path.execution()), path, CPU)
    plain_data = build_datamodule(path.recipe(ts.TINY), path.execution(data, ts.TINY), 3, CPU)
    plain_data.setup("fit")
    plain = [loop.train_step(batch) for batch in itertools.islice(ts.on_device(plain_data.train_dataloader(), CPU), 4)]
    torch.testing.assert_close(torch.stack(recorder.losses), torch.stack(plain), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- no host synchronisation inside a training step
SYNCING = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.unique,
    torch.Tensor.unique,
    torch.nonzero,
    torch.Tensor.nonzero,
}
FROM_HOST = {torch.as_tensor, torch.tensor}  # Python data -> device: a blocking copy on CUDA


class SyncCounter(TorchFunctionMode):
    """Counts calls that read a tensor on the host (a device sync on CUDA) while `armed`."""

    def __init__(self):
        super().__init__()
        self.armed, self.calls = False, collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        from_host = func in FROM_HOST and not isinstance(args[0], torch.Tensor)
        if self.armed and (func in SYNCING or from_host):
            self.calls[getattr(func, "__name__", str(func))] += 1
        return func(*args, **(kwargs or {}))


class Arm(pl.Callback):
    """Arms the counter for training batches 2..5 (after Lightning's first-batch set-up)."""

    def __init__(self, counter: SyncCounter):
        self.counter = counter

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.counter.armed = 2 <= batch_idx <= 5


def test_counter_sees_a_host_read():
    counter = SyncCounter()
    with counter:
        counter.armed = True
        torch.ones(2).sum().item()
        torch.as_tensor(3)
    assert counter.calls == {"item": 1, "as_tensor": 1}


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_lightning_training_steps_never_read_the_device(data, precision):
    path, counter = ts.fast_path(precision=precision), SyncCounter()
    trainer, module, dm = fit_parts(
        data, path, "10000000", 0, [Arm(counter)], limit_train_batches=7, limit_val_batches=1
    )
    with counter:
        trainer.fit(module, datamodule=dm)
    assert counter.calls == {}


# ---------------------------------------------------------------- compile: partial batches do not recompile forever
class GraphCount(pl.Callback):
    def __init__(self):
        self.per_epoch: list[int] = []

    def on_validation_epoch_end(self, trainer, module):
        from torch._dynamo.utils import counters

        self.per_epoch.append(counters["stats"]["unique_graphs"])


def test_compile_graphs_are_bounded_across_epochs(tmp_path):
    """dynamic=False: one graph per (mode, batch shape): full and partial training and evaluation batches, then none."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    write_cifar10(tmp_path, n_train=40, n_test=24, seed=0)  # batches 16, 16, 8 and 16, 8
    net = MacroNet("10000000")
    net.compile(dynamic=False, backend="eager")  # as the fit CLI, with Dynamo's graphs run eagerly (fast on a CPU)
    dm = CIFAR10DataModule(data_dir=tmp_path, batch_size=16, eval_batch_size=16, download=False, device="cpu")
    graphs = GraphCount()
    trainer = build_trainer(ts.fast_path().recipe(), ts.fast_path().execution(), CPU, [graphs], max_epochs=3)
    trainer.fit(MacroNetModule(net, 10, ts.RECIPE), datamodule=dm)
    assert graphs.per_epoch[0] <= 4 and graphs.per_epoch == graphs.per_epoch[:1] * 3, graphs.per_epoch


# ---------------------------------------------------------------- the benchmark run
def _positive(value) -> bool:
    """Every number in a nested section is > 0 (ratios and rates; booleans and strings are not numbers here)."""
    if isinstance(value, dict):
        return all(_positive(v) for k, v in value.items() if k not in ("options", "steps", "num_workers", "conditions"))
    if isinstance(value, list):
        return all(_positive(v) for v in value)
    if value is None:
        return False  # a figure that is missing is not a positive figure
    return not isinstance(value, (int, float)) or isinstance(value, bool) or value > 0


def test_run_writes_every_section_with_positive_numbers(data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [
        "--device",
        "cpu",
        "--size",
        "tiny",
        "--data-dir",
        str(data),
        "--archs",
        "00000000",
        "--sections",
        "pipeline,training,concurrency,query,compile",
        "--out",
        str(out),
    ]
    assert bench.main(args) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["command"] == "python -m benchmarks.run " + " ".join(args)
    assert {"meta", "pipeline", "training", "concurrency", "query"} <= set(result)
    assert (
        result["meta"]["data"]["kind"] == "cifar10 format, md5 not checked"
        and result["meta"]["versions"]["torch"] == torch.__version__
    )
    assert len(result["pipeline"]["rows"]) >= 2 and _positive(result["pipeline"])
    paths = {(r["path"], r["loop"]) for r in result["training"]["rows"]}
    assert {("reference", "lightning"), ("fast", "lightning"), ("fast", "plain"), ("fast+bf16", "lightning")} == paths
    assert _positive(result["training"]["rows"]) and _positive(result["training"]["ratios"])
    assert "GPU only" in result["concurrency"]["status"] and "not measured" in result["compile"]["status"]
    assert "| tensor pipeline ÷ this |" in capsys.readouterr().out


@pytest.mark.parametrize("tensor_rate, inverted", [(100.0, True), (60_000.0, False)])
def test_an_inverted_pipeline_result_is_flagged_with_threads_and_load(data, monkeypatch, capsys, tensor_rate, inverted):
    from benchmarks import tables

    monkeypatch.setattr(bench, "loader_rate", lambda d, path, *a: tensor_rate if path.name == "tensor" else 2500.0)
    section = bench.pipeline_section(data, bench.SIZES["tiny"], CPU)
    assert [c["torch_threads"] for c in section["conditions"]] == [torch.get_num_threads()] * 2
    assert all(len(c["load_average"]) == 3 for c in section["conditions"])
    assert ("warning" in section) == inverted and ("warning: inverted" in capsys.readouterr().err) == inverted
    if inverted:
        assert "tensor pipeline ran at 0.04x the DataLoader with 0 workers" in section["warning"]
        assert f"{torch.get_num_threads()} torch threads" in section["warning"] and "load average" in section["warning"]
    assert ("**warning**: inverted result" in tables.pipeline(section)) == inverted


def test_overhead_section_reports_medians_and_cost_per_step(data):
    size = dataclasses.replace(bench.SIZES["tiny"], overhead_steps=3)
    section = bench.overhead_section(data, size, CPU, repeats=1)
    assert set(section["median_images_per_s"]) == {"lightning", "plain"} and _positive(section["median_images_per_s"])
    assert section["lightning_vs_plain"] == pytest.approx(
        section["median_images_per_s"]["lightning"] / section["median_images_per_s"]["plain"]
    )


def test_concurrent_runs_meet_at_the_barrier(data, tmp_path):
    clock = bench.Clock(0)
    section = bench.concurrency_section(
        data, "tiny", bench.SIZES["tiny"], CPU, tmp_path, clock, parties=(2,), code="00000000"
    )
    assert [r["runs"] for r in section["rows"]] == [2] and _positive(section["rows"])
    assert section["rows"][0]["aggregate_images_per_s"] == pytest.approx(2 * section["rows"][0]["per_run_images_per_s"])


def test_missing_export_module_is_reported_not_fatal(monkeypatch):
    import benchmarks

    monkeypatch.setitem(sys.modules, "benchmarks.export", None)
    monkeypatch.delattr(benchmarks, "export", raising=False)  # imported already by tests/test_export.py
    assert bench.guarded(lambda: bench.export_section(bench.SIZES["tiny"]))["status"].startswith("not available")
    assert bench.guarded(lambda: 1 / 0)["status"].startswith("error (ZeroDivisionError")
