"""The chaos check's bookkeeping (benchmarks/chaos.py) on crafted traces and records: it fails when a phase was
never hit, when a run is lost or completed twice; and the phase trace (nbm_lightning/core/trace.py) it reads."""

from __future__ import annotations

import os
import random
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks import chaos
from nbm_lightning import fit
from nbm_lightning.cli import run_main
from nbm_lightning.core import trace
from nbm_lightning.records.recipe import Recipe
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.synthetic.records import make_record, write_records

ROOT = Path(__file__).resolve().parents[1]

COUNTS = (387882, 7713280)  # params and FLOPs of 00000000 in the published file
RECIPE = Recipe(epochs=3, batch_size=32)
NAMES = ["00000000-s0", "00000000-s1"]


def event(t: float, name: str, step: str = "start", detail: str = "-", pid: int = 7) -> str:
    return f"{t:.6f} {pid} {name} {step} {detail}"


def full_coverage() -> list[chaos.Kill]:
    """One kill of each signal landed in each phase, each ending its process as it should."""
    status = {"SIGKILL": -9, "SIGTERM": 143}
    return [chaos.Kill(p, s, sent_at=1.0, status=status[s], phase=p) for p in chaos.PHASES for s in chaos.SIGNALS]


def judge(kills=None, snapshots=None, events=(), differ=(), each_signal=True) -> dict:
    snapshots = [{n: "a" for n in NAMES}] if snapshots is None else snapshots
    kills = full_coverage() if kills is None else kills
    return chaos.judge(NAMES, kills, snapshots, list(events), differ, 0, 0, each_signal)


def test_a_clean_chaos_run_passes():
    assert judge()["problems"] == []


@pytest.mark.parametrize("missing", ["startup/SIGKILL", "train/SIGTERM", "eval/SIGKILL", "checkpoint/SIGTERM",
                                     "record/SIGKILL"])  # fmt: skip
def test_a_phase_never_hit_fails_the_check(missing):
    kills = [k for k in full_coverage() if f"{k.phase}/{k.signal}" != missing]
    kills.append(chaos.Kill("random", "SIGKILL", sent_at=2.0, status=-9, phase="between"))  # hits count per phase
    result = judge(kills)
    assert result["problems"] == [f"phase never hit: {missing}"]
    assert result["kills_per_phase"]["between"]["SIGKILL"] == 1
    assert judge(kills, each_signal=False)["problems"] == []  # each phase once is enough by default
    phase = missing.split("/")[0]
    others = [k for k in kills if k.phase != phase]
    assert judge(others, each_signal=False)["problems"] == [f"phase never hit: {phase}"]


def test_kills_that_never_landed_hit_nothing():
    """A vacuous run (every process ended before its kill) fails on every phase."""
    kills = [chaos.Kill(p, s, status=0) for p in chaos.PHASES for s in chaos.SIGNALS]
    problems = judge(kills)["problems"]
    assert len(problems) == len(chaos.PHASES) * len(chaos.SIGNALS) and all("never hit" in p for p in problems)


def test_a_kill_that_ends_the_process_wrongly_fails():
    kills = full_coverage() + [chaos.Kill("random", "SIGTERM", sent_at=3.0, status=1, phase="train")]
    assert judge(kills)["problems"] == ["kill not survived: SIGTERM in train: exit 1"]


def test_lost_and_doubled_runs_are_counted_from_records(tmp_path):
    """Completions come from the record files: a missing record is lost, a rewritten complete record doubles."""
    results = tmp_path / "results"
    first = make_record("00000000", 0, COUNTS, 90.0, 90.0, 3, RECIPE)
    write_records(results, [first, make_record("00000000", 1, COUNTS, 80.0, 80.0, 3, RECIPE, status="failed")])
    before = chaos.snapshot(results)
    assert list(before) == ["00000000-s0"]  # a failed record is no completion
    assert judge(snapshots=[before])["runs_lost"] == ["00000000-s1"]
    write_records(results, [{**first, "finished_at": "2026-01-02T00:00:00+00:00"}])  # trained again
    (results / "00000000-s1.json").write_text((results / "00000000-s0.json").read_text())  # a copy, misnamed
    after = chaos.snapshot(results)
    assert list(after) == ["00000000-s0"]
    result = judge(snapshots=[before, after])
    assert result["runs_completed_twice"] == ["00000000-s0"] and result["runs_lost"] == ["00000000-s1"]
    assert "run completed twice: 00000000-s0" in result["problems"] and "run lost: 00000000-s1" in result["problems"]


def test_training_after_completion_is_a_duplicate_even_where_the_record_looks_fine():
    done = [event(1, "setup", detail="00000000-s0"), event(2, "train"), event(3, "record", "end", "complete")]
    assert chaos.retrained(chaos.parse_trace("\n".join(done))) == set()
    again = [*done, event(9, "setup", detail="00000000-s0", pid=8), event(10, "train", pid=8)]
    assert chaos.retrained(chaos.parse_trace("\n".join(again))) == {"00000000-s0"}
    assert judge(events=chaos.parse_trace("\n".join(again)))["runs_completed_twice"] == ["00000000-s0"]
    resumed = [event(1, "setup", detail="00000000-s0"), event(2, "record", "end", "preempted"),
               event(5, "setup", detail="00000000-s0", pid=8),
               event(6, "record", "end", "complete", pid=8)]  # fmt: skip
    assert chaos.retrained(chaos.parse_trace("\n".join(resumed))) == set()


def test_where_a_kill_landed():
    lines = [event(1, "setup", detail="00000000-s0"), event(2, "train"), event(3, "eval"), event(4, "eval", "end"),
             event(5, "checkpoint"), event(6, "checkpoint", "written"), event(7, "checkpoint", "end"),
             event(8, "record", detail="complete"), "1.5 7 cut", event(2.5, "train", pid=99)]  # fmt: skip
    events = chaos.parse_trace("\n".join(lines))
    expected = {0.5: "startup", 1.5: "setup", 2.5: "train", 3.5: "eval", 4.5: "between", 5.5: "checkpoint",
                6.5: "checkpoint", 7.5: "between", 8.5: "record"}  # fmt: skip
    assert {t: chaos.landed(events, 7, t)[0] for t in expected} == expected
    assert chaos.landed(events, 7, 2.5) == ("train", "00000000-s0") and chaos.landed(events, 7, 0.5)[1] is None


def test_the_trace_writes_nothing_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(trace.TRACE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    trace.phase("train")
    assert trace.callbacks() == [] and list(tmp_path.iterdir()) == []
    monkeypatch.setenv(trace.TRACE_ENV, str(tmp_path / "t.txt"))
    trace.phase("record", "end", "complete")
    [line] = chaos.read_trace(tmp_path / "t.txt")
    assert (line.pid, line.name, line.step, line.detail) == (os.getpid(), "record", "end", "complete")


FAKE_WORKER = """
    import sys, time
    from nbm_lightning.core import trace
    time.sleep(float(sys.argv[1]))  # start-up
    trace.phase("setup", detail="00000000-s0")
    for name, step in [("train", "start"), ("eval", "start"), ("eval", "end"), ("checkpoint", "start"),
                       ("checkpoint", "written"), ("checkpoint", "end"), ("record", "start")]:
        trace.phase(name, step)
        time.sleep(0.05)
    sys.exit(0)
"""


@pytest.mark.parametrize("phase", ["checkpoint", "record", "startup"])
def test_an_aimed_kill_lands_in_its_phase(phase, tmp_path):
    """The harness holds a process inside a short phase (or kills within the measured start-up) and the trace
    says where the kill landed."""
    env = {**chaos._env(tmp_path / "trace.txt"), "PYTHONPATH": str(ROOT)}
    startup = 2.0 if phase == "startup" else 0.1  # a kill aimed at start-up comes at 0.2-0.7 s
    argv = [sys.executable, "-c", textwrap.dedent(FAKE_WORKER), str(startup)]
    aim = chaos.aim_for(phase, {"startup_s": 1.0, "run_s": 0.4, "train_s": 0.05}, random.Random(0))
    kill = chaos.attempt(argv, tmp_path, env, chaos.Kill(phase, "SIGKILL"), aim)
    assert (kill.phase, kill.status) == (phase, -signal.SIGKILL)
    assert kill.run == (None if phase == "startup" else "00000000-s0")


def test_a_run_traces_its_phases_in_order(tmp_path, monkeypatch):
    """The hooks in training/run.py, callbacks.py and checkpoints.py, on one real run of 2 epochs (2 steps each)."""
    write_cifar10(tmp_path / "data", n_train=64, n_test=32, learnable=True, seed=0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBM_CIFAR_SKIP_MD5", "1")
    monkeypatch.setenv(trace.TRACE_ENV, str(tmp_path / "trace.txt"))
    argv = ["--arch=00000000", "--data-dir=data", "--epochs=2", "--batch-size=32", *chaos.TINY[2:]]
    assert run_main(fit.main, argv, prog=fit.PROG) == 0
    events = chaos.read_trace(tmp_path / "trace.txt")
    steps = [f"{e.name} {e.step}" for e in events]
    epoch = ["train start"] * 3 + ["eval start", "eval end", "checkpoint start", "checkpoint written", "checkpoint end"]
    assert steps == ["setup start", *epoch, *epoch, "record start", "record end"]
    assert (events[0].detail, events[-1].detail) == ("00000000-s0", "complete") and events[0].pid == os.getpid()
    timing = chaos.measure(events, events[0].t - 1.0)
    assert timing["startup_s"] == pytest.approx(1.0) and timing["checkpoint_s"] < timing["run_s"]
