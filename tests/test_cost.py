"""The hardware-cost command (issue 20, point 2): networks measured, the file resumed after a kill without measuring a
code twice, bad input refused in one line, tampered files refused, queries, the join and the rank correlation.

Every measurement runs at batch 1 and 8 with one thread (steadier on a shared machine), a few repeats, and the
training step at a tiny batch only where it is tested; about 15 s in all on 2 cores.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nbm_lightning import cost as cost_cli
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.bench.rankstats import spearman_rho
from nbm_lightning.cli import run_main
from nbm_lightning.hwcost import (
    CostFileError,
    CostNotFound,
    Settings,
    cost,
    costfile,
    join,
    load,
    rank_correlations,
    session,
    spearman,
)
from nbm_lightning.hwcost.measure import measure
from nbm_lightning.records.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
IDENTITY, HEAVIEST = "00000000", "22222222"  # all identity ops; all MB6_K5 (ORIGINAL.md: digit 0 is identity)
CHEAP = ("00000000", "00000100", "00100000", "10000000", "00000200", "00200000", "20000000", "00000010")  # canonical


def settings(**changes) -> Settings:
    base = dict(device="cpu", batch_sizes=(1, 8), repeats=5, warmup=1, train_step=False,
                train_batch_size=Recipe().batch_size, threads=1, channels_last=False, cudnn_benchmark=False,
                tf32=False)  # fmt: skip
    return Settings(**{**base, **changes})


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A cost file of three networks, measured in this process."""
    out = tmp_path_factory.mktemp("cost") / "cost.json"
    session.run([IDENTITY, "12012010", HEAVIEST], settings(), out, ["test"], save_every_s=0, log=lambda _: None)
    return out


def test_networks_are_measured_and_ordered_sanely(measured, published):
    cost_file = load(measured)
    assert sorted(cost_file.costs) == [IDENTITY, "12012010", HEAVIEST]
    for code, entry in cost_file.costs.items():
        for timing in entry.latency.values():
            assert 0 < timing.q1 <= timing.median <= timing.q3
        assert (entry.params, entry.flops) == (published[code]["params"], published[code]["flops"])
        assert entry.weights_bytes > 4 * entry.params  # float32 parameters and the BatchNorm buffers
        assert entry.train_step is None and entry.peak_memory is None  # not asked for; no memory figure on a CPU
    for batch in (1, 8):  # 14x fewer MACs: faster at either batch size, by a wide margin
        assert cost(IDENTITY, file=measured, batch_size=batch) < cost(HEAVIEST, file=measured, batch_size=batch)
    assert cost_file.settings.threads == 1 and cost_file.device["type"] == "cpu" and cost_file.runs[0]["command"]


def test_a_training_step_is_timed_at_the_settings_batch():
    entry = measure(IDENTITY, settings(batch_sizes=(1,), repeats=3, train_step=True, train_batch_size=4), cpu())
    assert entry.train_step is not None and 0 < entry.train_step.median
    assert costfile.entry_from_json(json.loads(json.dumps(entry.to_json())), settings(
        batch_sizes=(1,), repeats=3, train_step=True, train_batch_size=4)) == entry  # fmt: skip


def test_cuda_entries_carry_memory_and_cpu_entries_none():
    timing = {"median": 2.0, "q1": 1.5, "q3": 2.5}
    doc = {
        "params": 387882,
        "flops": 7713280,
        "weights_bytes": 1_600_000,
        "latency_ms": {"1": timing},
        "train_step_ms": timing,
        "peak_memory_bytes": {"1": 9_000_000},
        "train_peak_memory_bytes": 50_000_000,
    }
    gpu = settings(device="cuda", batch_sizes=(1,), train_step=True, cudnn_benchmark=True)  # fmt: skip
    entry = costfile.entry_from_json(doc, gpu)
    assert entry.peak_memory == {1: 9_000_000} and entry.train_peak_memory == 50_000_000 and entry.train_step.iqr == 1
    for key in ("peak_memory_bytes", "train_peak_memory_bytes"):
        with pytest.raises(ValueError, match="peak memory must be recorded on cuda only"):
            costfile.entry_from_json({**doc, key: None}, gpu)
        with pytest.raises(ValueError, match="peak memory must be recorded on cuda only"):
            costfile.entry_from_json(doc, settings(batch_sizes=(1,), train_step=True))


def test_an_interrupt_saves_what_was_measured(tmp_path):
    def log(line: str) -> None:  # Ctrl-C (or SIGTERM, which the command turns into it) after the first network
        if line.startswith("cost: [1/"):
            raise KeyboardInterrupt

    out = tmp_path / "cost.json"
    with pytest.raises(KeyboardInterrupt):
        session.run(CHEAP[:3], settings(batch_sizes=(1,), repeats=3), out, ["test"], save_every_s=1e9, log=log)
    assert list(load(out).costs) == [CHEAP[0]]  # saved on the way out, not by the (never due) periodic save


def cpu():
    import torch

    return torch.device("cpu")


def _cheap_argv(out: Path) -> list[str]:
    return ["--codes", ",".join(CHEAP), "--batch-sizes", "1", "--repeats", "3", "--warmup", "1", "--no-train-step",
            "--threads", "1", "--save-every-s", "0", "--out", str(out)]  # fmt: skip


def test_resume_after_a_kill_measures_no_code_twice(tmp_path, capsys):
    out, env = tmp_path / "cost.json", {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "nbm_lightning.cost", *_cheap_argv(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("cost: [1/"):
            proc.send_signal(signal.SIGKILL)  # no handler runs: only what was saved survives
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, lines
    first = load(out)
    assert 1 <= len(first.costs) < len(CHEAP)
    assert run_main(cost_cli.main, _cheap_argv(out)) == 0  # the same command again, in this process (torch loaded)
    again = capsys.readouterr().out.splitlines()
    measured_again = [line.split()[2] for line in again if line.startswith("cost: [")]
    assert sorted(measured_again) == sorted(set(CHEAP) - set(first.costs))
    assert f"{len(first.costs)} already in" in again[0]
    final = load(out)
    assert sorted(final.costs) == sorted(CHEAP) and len(final.runs) == 2
    assert all(final.costs[code] == entry for code, entry in first.costs.items())  # kept as measured first


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--codes", "1201201"], "invalid arch code '1201201'"),
        (["--codes", "00000000,,"], "invalid --codes"),
        (["--batch-sizes", "1,0"], "invalid batch size 0"),
        (["--repeats", "2"], "invalid --repeats 2"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--save-every-s", "nan"], "invalid --save-every-s 'nan'"),
        (["report"], "the following arguments are required: file"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(argv, fragment, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        run_main(cost_cli.main, [*argv, "--out", str(tmp_path / "c.json")] if argv[0] != "report" else argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and fragment in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_file_of_other_settings_or_a_bad_file_is_refused_in_one_line(measured, tmp_path, capsys):
    before = measured.read_bytes()
    argv = ["--codes", IDENTITY, "--batch-sizes", "1,8", "--repeats", "7", "--warmup", "1", "--no-train-step",
            "--threads", "1", "--out", str(measured)]  # fmt: skip
    assert run_main(cost_cli.main, argv) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "repeats 5" in err and "uses 7" in err and err.count("\n") == 1
    assert measured.read_bytes() == before  # untouched
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert run_main(cost_cli.main, ["--out", str(bad)]) == 2
    assert "is not a cost file" in capsys.readouterr().err and bad.read_text() == "{}"
    if not __import__("torch").cuda.is_available():
        assert run_main(cost_cli.main, ["--device", "cuda", "--out", str(tmp_path / "c.json")]) == 2
        assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "c.json").exists()


def _set(path: tuple, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _rename(old: str, new: str):
    def edit(doc):
        doc["costs"][new] = doc["costs"].pop(old)

    return edit


def _other_batch(doc):
    entry = doc["costs"][IDENTITY]["latency_ms"]
    entry["16"] = entry.pop("8")


TAMPERED = [
    ("version", _set(("version",), 2), "version 2"),
    ("median above q3", _set(("costs", IDENTITY, "latency_ms", "1", "median"), 1e3), "quartiles"),
    ("negative time", _set(("costs", IDENTITY, "latency_ms", "1", "q1"), -1.0), "q1 -1.0"),
    ("nan time", _set(("costs", IDENTITY, "latency_ms", "8", "q3"), math.nan), "q3 nan"),
    ("non-canonical code", _rename(IDENTITY, "00001000"), "'00001000': expected a canonical"),
    ("other batch size", _other_batch, "latency_ms at batch sizes [1, 16]"),
    ("memory on a cpu", _set(("costs", IDENTITY, "peak_memory_bytes"), {"1": 5, "8": 5}), "peak memory"),
    ("train step not measured", _set(("costs", IDENTITY, "train_step_ms"), {"median": 1, "q1": 1, "q3": 1}),
     "train_step_ms present"),
    ("weights too small", _set(("costs", IDENTITY, "weights_bytes"), 10), "weights_bytes 10"),
    ("params as float", _set(("costs", IDENTITY, "params"), 387882.0), "params 387882.0"),
    ("unknown key", _set(("costs", IDENTITY, "extra"), 1), "expected an object with keys"),
    ("settings", _set(("settings", "warmup"), 0), "invalid warmup 0"),
    ("batch sizes", _set(("settings", "batch_sizes"), [1, "8"]), "invalid batch size '8'"),
    ("unsorted batch sizes", _set(("settings", "batch_sizes"), [8, 1]), "expected ascending distinct"),
    ("device type", _set(("device", "type"), "cuda"), "device type 'cuda' differs"),
]  # fmt: skip


@pytest.mark.parametrize("name, edit, fragment", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_the_reader_refuses_a_tampered_file(measured, tmp_path, name, edit, fragment, capsys):
    doc = json.loads(measured.read_text())
    edit(doc)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CostFileError) as exc:
        load(path)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)
    assert run_main(cost_cli.main, ["report", str(path)]) == 2  # the command line: one line, exit 2
    assert fragment in capsys.readouterr().err


def test_changed_counts_are_refused_by_report_and_join(measured, tmp_path, capsys, published):
    doc = json.loads(measured.read_text())
    doc["costs"][HEAVIEST]["flops"] += 1  # well-formed, but not this network's count
    path = tmp_path / "counts.json"
    path.write_text(json.dumps(doc))
    assert run_main(cost_cli.main, ["report", str(path)]) == 2
    assert "not this package's network" in capsys.readouterr().err
    counts = {code: (published[code]["params"], published[code]["flops"]) for code in (IDENTITY, HEAVIEST)}
    with pytest.raises(CostFileError, match="not the same network"):
        join([IDENTITY, HEAVIEST], file=path, counts=counts)


def test_queries_and_the_join(measured, published):
    cost_file = load(measured)
    entry = cost_file.costs["12012010"]
    assert cost("12012010", "latency_ms", file=measured) == entry.latency[1].median
    assert cost("12012010", "latency_ms", file=measured, batch_size=8, stat="iqr") == entry.latency[8].iqr
    assert cost("12012010", "weights_bytes", file=measured) == entry.weights_bytes
    assert cost("12012001", "params", file=measured) == entry.params  # a non-canonical code: its canonical form
    with pytest.raises(CostNotFound, match="no cost of 11111111"):
        cost("11111111", file=measured)
    with pytest.raises(CostFileError, match="no peak_memory_bytes in this file"):
        cost(IDENTITY, "peak_memory_bytes", file=measured)
    with pytest.raises(CostFileError, match="batch_size 2"):
        cost(IDENTITY, file=measured, batch_size=2)
    with pytest.raises(ValueError, match="invalid measure 'latency'"):
        cost(IDENTITY, "latency", file=measured)
    counts = {code: (rec["params"], rec["flops"]) for code, rec in published.items()}
    codes = sorted({"11111111", *cost_file.costs})  # a benchmark's codes: one the file lacks
    with pytest.raises(CostNotFound):
        join(codes, file=measured, counts=counts)
    joined = join(codes, file=measured, counts=counts, skip_missing=True)
    assert joined == {code: e.latency[1].median for code, e in cost_file.costs.items()}


def test_a_rewritten_file_is_read_again(measured, tmp_path):
    path = tmp_path / "copy.json"
    path.write_bytes(measured.read_bytes())
    first = cost(IDENTITY, file=path)
    doc = json.loads(path.read_text())
    doc["costs"][IDENTITY]["latency_ms"]["1"] = {"median": 123.0, "q1": 122.0, "q3": 124.5}
    path.write_text(json.dumps(doc))
    assert first != 123.0 and cost(IDENTITY, file=path) == 123.0


def test_spearman_handles_ties_like_rankstats():  # bench's rho, itself checked against scipy in test_bench
    x, y = [3.0, 1.0, 2.0, 2.0, 5.0, 5.0, 0.5], [10.0, 2.0, 2.0, 3.0, 9.0, 11.0, 1.0]
    assert spearman(x, y) == pytest.approx(spearman_rho(x, y), abs=1e-12) and 0.8 < spearman(x, y) < 1
    assert math.isnan(spearman([1.0, 1.0], [1.0, 2.0])) and spearman([1, 2, 3], [3, 2, 1]) == -1.0


def test_rank_correlations_and_the_report(measured, capsys):
    cost_file = load(measured)
    fake = copy.deepcopy(cost_file.to_json())
    for code, entry in fake["costs"].items():  # latency = flops / 1e6: rank correlation 1 with flops
        entry["latency_ms"]["1"] = {"median": complexity(code).flops / 1e6, "q1": 1e-3, "q3": 1e3}
    corr = rank_correlations(costfile.from_json(fake, "fake"))
    assert corr.n == 3 and corr.rho["flops"] == 1.0
    assert run_main(cost_cli.main, ["report", str(measured)]) == 0
    out = capsys.readouterr().out
    assert "latency_ms batch 1" in out and "Spearman rho with flops" in out and "threads 1" in out
