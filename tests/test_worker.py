"""The worker: many runs in one process, each exactly as a fresh `fit` process would train it; job arrays
(`--index A-B`, `--index A,B,C`); Ctrl-C; the in-process W&B sweep agent."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import wandb_offline

from nbm_lightning import fit
from nbm_lightning.records.job import Job
from nbm_lightning.records.outcome import EXIT_STATUS, Outcome
from nbm_lightning.records.recipe import Execution, Recipe
from nbm_lightning.runner import worker
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.synthetic.records import make_record, write_records

ROOT = Path(__file__).resolve().parents[1]


TIME_FIELDS = {"wall_time_s", "train_time_s", "started_at", "finished_at"}  # differ between any two runs
TINY = ["--download=false", "--epochs=1", "--batch-size=32", "--eval-batch-size=64", "--progress=false",
        "--accelerator=cpu", "--num-workers=0"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=64, n_test=32, learnable=True, seed=0)
    return root


def _env(mode: str = "disabled", **extra: str) -> dict:
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_MODE=mode, WANDB_SILENT="true", **extra)
    env.pop("WANDB_API_KEY", None)
    return env


def _python(code: str, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _fit(cwd: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _comparable(record: dict) -> dict:
    """A record without what differs between any two runs: times and timestamps."""
    curves = {k: v for k, v in record["curves"].items() if k != "epoch_time_s"}
    return {**{k: v for k, v in record.items() if k not in TIME_FIELDS}, "curves": curves}


# ---------------------------------------------------------------- isolation and fidelity of the start

THREE_JOBS = """
    import gc, json, sys, weakref
    import torch
    from nbm_lightning.training import run as train
    from nbm_lightning.records.recipe import Execution, Recipe
    from nbm_lightning.records.job import Job
    from nbm_lightning.runner.worker import Worker

    probes, modules = [], []
    build_trainer, build_module = train.build_trainer, train.build_module
    def probing_trainer(*args, **kwargs):  # the flags each run trains with
        trainer = build_trainer(*args, **kwargs)
        probes.append([torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32])
        return trainer
    def tracked_module(*args, **kwargs):
        module = build_module(*args, **kwargs)
        modules.append(weakref.ref(module))
        return module
    train.build_trainer, train.build_module = probing_trainer, tracked_module

    data, out = sys.argv[1], sys.argv[2]
    execution = Execution(data_dir=data, download=False, accelerator="cpu", progress=False, results_dir=out,
                          ckpt_dir=out + "/ckpt", wandb_mode="disabled", eval_batch_size=64)
    tiny = dict(epochs=1, batch_size=32)
    jobs = [Job("00000000", 0, Recipe(lr=1e30, schedule="standard", **tiny), execution),  # A: NaN loss
            Job("10000000", 1, Recipe(tf32=True, **tiny), execution),  # B: TF32 on
            Job("12012012", 2, Recipe(**tiny), execution)]  # C: the published trainer's weights are known
    worker = Worker()
    outcomes = [worker.run(jobs[0])]
    gc.collect()
    freed = modules[0]() is None
    outcomes += [worker.run(job) for job in jobs[1:]]
    print(json.dumps({"status": [o.outcome for o in outcomes], "flags": probes, "failed_run_freed": freed}))
"""


def test_three_jobs_in_one_worker_equal_fresh_processes(data, tmp_path, init_checksums):
    proc = _python(THREE_JOBS, tmp_path, str(data), str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == ["failed", "complete", "complete"]
    assert report["flags"] == [[False, False], [True, True], [False, False]]  # reset for every run
    assert report["failed_run_freed"]  # no reference to the failed run's module survives it
    alone = _fit(tmp_path, "--arch=12012012", "--seed=2", f"--data-dir={data}", "--results-dir=alone",
                 "--ckpt-dir=ck", "--wandb-mode=disabled", *TINY)  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    in_worker = json.loads((tmp_path / "w" / "12012012-s2.json").read_text())
    fresh = json.loads((tmp_path / "alone" / "12012012-s2.json").read_text())
    assert in_worker["init_sha256"] == init_checksums["12012012-s2"] == fresh["init_sha256"]
    fresh["execution"] = in_worker["execution"]  # paths differ by construction
    assert _comparable(in_worker) == _comparable(fresh)
    failed = json.loads((tmp_path / "w" / "00000000-s0.json").read_text())
    assert failed["status"] == "failed" and "NonFiniteLossError" in failed["error"]


def test_run_scope_restores_wandb_environment_and_resets_the_compiler(monkeypatch):
    import torch._dynamo

    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setenv("WANDB_PROJECT", "kept")
    job = Job("00000000", 0, Recipe(), Execution(compile=True))
    with worker.run_scope(job):
        os.environ["WANDB_RUN_ID"] = "abc"
        os.environ["WANDB_PROJECT"] = "changed"
    assert "WANDB_RUN_ID" not in os.environ and os.environ["WANDB_PROJECT"] == "kept" and resets == [1]
    with worker.run_scope(Job("00000000", 0, Recipe(), Execution())):
        pass
    assert resets == [1]  # only a compiled run resets the compiler


# ---------------------------------------------------------------- job arrays


BAD_INDICES = ["5-3", "0-20000", "a-b", "1,,2", "-1", "1,1", "11907", "²", "１２-１３", "1,²", "9" * 5000]


@pytest.mark.parametrize("value", BAD_INDICES, ids=range(len(BAD_INDICES)))
def test_bad_index_lists_exit_2_with_one_line_and_nothing_written(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        fit.main([f"--index={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "invalid index" in err and "expected" in err and len(err) < 400, err  # what was expected and found
    assert list(tmp_path.iterdir()) == []


def test_index_takes_ascii_digits_in_linear_time():
    from nbm_lightning.records.job import GRID_SIZE, parse_indices

    start = time.perf_counter()
    assert parse_indices(f"0-{GRID_SIZE - 1}") == list(range(GRID_SIZE))
    assert parse_indices(",".join(map(str, range(GRID_SIZE)))) == list(range(GRID_SIZE))
    assert time.perf_counter() - start < 1.5  # the quadratic duplicate check took 4 s for the range alone
    with pytest.raises(ValueError, match=r"ASCII digits in 0\.\.11906, found the part '²'"):
        parse_indices("1,²")


def test_a_range_trains_only_its_missing_pairs(data, tmp_path):
    recipe = Recipe(epochs=1, batch_size=32)
    from nbm_lightning.arch.complexity import complexity

    counts = complexity("00000000")
    write_records(tmp_path / "results", [make_record("00000000", 1, (counts.params, counts.flops), 50.0, 40.0,
                                                     curve_epochs=1, recipe=recipe)])  # fmt: skip
    proc = _fit(tmp_path, "--index=0-2", f"--data-dir={data}", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "00000000-s1: a complete record of this recipe exists" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "worker: 3 jobs: 2 complete, 1 skipped"
    assert {p.name for p in (tmp_path / "results").iterdir()} == {f"00000000-s{s}.json" for s in range(3)}
    assert len([line for line in proc.stdout.splitlines() if "fixed cost" in line]) == 2


def test_a_failed_job_does_not_stop_the_others_and_is_named_last(data, tmp_path):
    proc = _fit(tmp_path, "--index=3,0", "--lr=1e30", "--schedule=standard", f"--data-dir={data}", *TINY)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "worker: 2 jobs: 2 failed; failed: 00000010-s0 00000000-s0", proc.stderr[-2000:]


CTRL_C_AFTER_FIRST_CHECKPOINT = """
    import os, signal, sys
    from nbm_lightning.training import callbacks
    from nbm_lightning import fit
    save = callbacks.EpochCheckpoint.on_validation_end
    def save_then_ctrl_c(self, trainer, module):
        save(self, trainer, module)
        if not os.path.exists("interrupted"):
            open("interrupted", "w").close()
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C, right after the first checkpoint
            control = next(c for c in trainer.callbacks if isinstance(c, callbacks.RunControl))
            control.stop.soon.wait(10)  # the main thread's handler has seen it (this is the run thread)
    callbacks.EpochCheckpoint.on_validation_end = save_then_ctrl_c
    sys.exit(fit.main(sys.argv[1:]))
"""


def test_ctrl_c_stops_after_the_checkpoint_and_a_rerun_resumes(data, tmp_path):
    argv = ["--index=0-1", f"--data-dir={data}", "--keep-checkpoint=true", *TINY, "--epochs=2"]
    stopped = _python(CTRL_C_AFTER_FIRST_CHECKPOINT, tmp_path, *argv)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "stopped after the checkpoint of epoch 1" in stopped.stderr
    assert "2 not done (stopped: rerun the same command to resume)" in stopped.stdout.strip().splitlines()[-1]
    assert not (tmp_path / "results").exists() and list((tmp_path / "checkpoints").glob("*/last.ckpt"))
    rerun = _fit(tmp_path, *argv)
    assert rerun.returncode == 0 and "00000000-s0: resuming from" in rerun.stdout, rerun.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "00000000-s0.json").read_text())
    assert record["status"] == "complete" and record["resumed"] is True and record["curves"]["epoch"] == [0, 1]


def test_stop_signal_escalates():
    stop = worker.StopSignal()
    stop.request()
    assert stop.soon.is_set() and not stop.now.is_set()
    stop.request()
    assert stop.now.is_set()
    stop.finished.set()
    with pytest.raises(KeyboardInterrupt):
        stop.request()


# ---------------------------------------------------------------- the in-process W&B agent

AGENT_CALLS = """
    import json, os, sys, threading
    import wandb
    from wandb.sdk.lib import config_util
    from nbm_lightning.agent import run_function
    from nbm_lightning.runner.worker import Worker

    data = sys.argv[1]
    run = run_function(Worker())
    for run_id, params in (("run0aaaa", {"arch": "01201201", "seed": 2}), ("run1bbbb", {"index": 3})):
        params.update({"data_dir": data, "download": False, "epochs": 1, "batch_size": 32,
                       "accelerator": "cpu", "progress": False, "eval_batch_size": 64})
        path = os.path.join("wandb", "sweep-swp1", f"config-{run_id}.yaml")
        config_util.save_config_file_from_dict(path, {k: {"value": v} for k, v in params.items()})
        os.environ.update(WANDB_SWEEP_ID="swp1", WANDB_RUN_ID=run_id, WANDB_SWEEP_PARAM_PATH=path)
        wandb.teardown()  # what wandb's agent does before every run
        thread = threading.Thread(target=run)  # a run thread, as wandb's agent starts one
        thread.start()
        thread.join()
        for key in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
            os.environ.pop(key)
    print("done")
"""


def test_the_agent_function_trains_each_sweep_run_in_process(data, tmp_path):
    proc = _python(AGENT_CALLS, tmp_path, str(data), env=_env("offline", WANDB_DIR=str(tmp_path)))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("done"), proc.stderr[-3000:]
    assert {p.name for p in (tmp_path / "results").iterdir()} == {"01210210-s2.json", "00000010-s0.json"}
    record = json.loads((tmp_path / "results" / "01210210-s2.json").read_text())
    assert (record["arch"], record["seed"], record["status"]) == ("01201201", 2, "complete")
    assert record["wandb"]["id"] == "run0aaaa" and record["wandb"]["sweep_id"] == "swp1"
    runs = {p.name.rsplit("-", 1)[1]: p for p in (tmp_path / "wandb").glob("offline-run-*")}
    assert set(runs) == {"run0aaaa", "run1bbbb"}
    sent = {run_id: wandb_offline.sent_by(path) for run_id, path in runs.items()}
    assert (sent["run0aaaa"].run_id, sent["run0aaaa"].name) == ("run0aaaa", "01210210-s2")
    assert (sent["run1bbbb"].run_id, sent["run1bbbb"].name) == ("run1bbbb", "00000010-s0")
    assert sent["run0aaaa"].config["arch"] == "01201201" and sent["run0aaaa"].summary["status"] == "complete"


AGENT_PREEMPTED = """
    import os, signal, sys, threading, time
    import wandb
    from wandb.sdk.lib import config_util
    from nbm_lightning.training import callbacks
    from nbm_lightning.agent import run_function
    from nbm_lightning.runner.worker import StopSignal, Worker

    original = callbacks.RunControl.on_train_batch_end
    def at_step(self, trainer, module, outputs, batch, idx):
        if trainer.global_step == 2 and not self.stop.preempt.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler; handled by the main thread's handler
            self.stop.preempt.wait(10)
        original(self, trainer, module, outputs, batch, idx)
    callbacks.RunControl.on_train_batch_end = at_step

    params = {"arch": "00000000", "seed": 0, "data_dir": sys.argv[1], "download": False, "epochs": 2,
              "batch_size": 32, "accelerator": "cpu", "progress": False, "eval_batch_size": 64}
    path = os.path.join("wandb", "sweep-swp1", "config-runpre01.yaml")
    config_util.save_config_file_from_dict(path, {k: {"value": v} for k, v in params.items()})
    os.environ.update(WANDB_SWEEP_ID="swp1", WANDB_RUN_ID="runpre01", WANDB_SWEEP_PARAM_PATH=path)
    stop = StopSignal()
    with stop.handling():
        thread = threading.Thread(target=run_function(Worker(stop)))
        thread.start()
        try:
            while thread.is_alive():  # as wandb's agent waits for its run thread
                thread.join(0.1)
        except KeyboardInterrupt:  # how the run function ends the agent's loop
            print("agent loop ended")
        thread.join()
"""


def test_a_preempted_sweep_run_ends_with_143_before_the_agent_finishes_it(data, tmp_path):
    proc = _python(AGENT_PREEMPTED, tmp_path, str(data), env=_env("offline", WANDB_DIR=str(tmp_path)))
    assert proc.returncode == 0 and "agent loop ended" in proc.stdout, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "00000000-s0.json").read_text())
    assert record["status"] == "preempted" and "preempted by SIGTERM" in record["error"]
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*-runpre01")
    assert wandb_offline.sent_by(run_dir).exit_code == 143  # W&B requeues a preempting run that exits non-zero


# ---------------------------------------------------------------- what a worker reports


def test_a_preempted_run_reports_no_training_time_or_fixed_cost(tmp_path, capsys):
    execution = Execution(results_dir=str(tmp_path))
    job = Job("00000000", 0, Recipe(epochs=2), execution)
    from nbm_lightning.arch.complexity import complexity

    counts = complexity("00000000")
    write_records(tmp_path, [make_record("00000000", 0, (counts.params, counts.flops), 50.0, 40.0, curve_epochs=1,
                                         recipe=job.recipe, status="preempted", epochs_completed=1,
                                         error="preempted by SIGTERM", train_time_s=0.0)])  # fmt: skip
    result = worker.Worker._result(None, job, Outcome.PREEMPTED, None, 117.58)  # type: ignore[arg-type]
    assert result.train_s is None and result.overhead_s is None  # part of a run: not a run's times
    assert "fixed cost" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "statuses, preempted, line, code",
    [([], False, "worker: 12 jobs: none run; 12 not done (stopped: rerun the same command to resume)", 130),
     ([], True, "worker: 12 jobs: none run; 12 not done (preempted: rerun the same command to resume)", 143),
     (["complete", "refused", "failed"], False,
      "worker: 3 jobs: 1 complete, 1 failed, 1 refused; failed: j1 (refused) j2", 2),
     (["preempted", "failed", "skipped"], True,
      "worker: 3 jobs: 1 skipped, 1 failed, 1 preempted; 1 not done (preempted: rerun the same command to resume); "
      "failed: j1", 1)],
    ids=["stopped-before-any", "preempted-before-any", "refused-and-failed", "failed-and-preempted"],
)  # fmt: skip
def test_the_last_line_says_what_ran(statuses, preempted, line, code, capsys):
    results = [worker.JobResult(f"j{n}", Outcome(status), 1.0, None) for n, status in enumerate(statuses)]
    assert worker.report(results, 12 if not statuses else len(statuses), preempted=preempted) == code
    captured = capsys.readouterr()
    assert (captured.out + captured.err).strip() == line


def test_an_array_goes_on_past_a_pair_holding_another_recipes_record(data, tmp_path, monkeypatch, capsys):
    from nbm_lightning.arch.complexity import complexity
    from nbm_lightning.cli import run_main

    monkeypatch.chdir(tmp_path)
    counts, tiny = complexity("00000000"), Recipe(epochs=1, batch_size=32)  # the recipe of TINY
    records = [make_record("00000000", seed, (counts.params, counts.flops), 50.0, 40.0, curve_epochs=1, recipe=recipe)
               for seed, recipe in ((0, dataclasses.replace(tiny, lr=0.05)), (1, tiny))]  # fmt: skip
    write_records(tmp_path / "results", records)
    before = (tmp_path / "results" / "00000000-s0.json").read_text()
    assert run_main(fit.main, ["--index=0-1", f"--data-dir={data}", *TINY], prog=fit.PROG) == 2
    captured = capsys.readouterr()
    assert "00000000-s0: refused: " in captured.err and "another recipe" in captured.err
    assert "00000000-s1: a complete record of this recipe exists" in captured.out  # the array went on
    last = captured.err.strip().splitlines()[-1]
    assert last == "worker: 2 jobs: 1 skipped, 1 refused; failed: 00000000-s0 (refused)", captured.err[-2000:]
    assert (tmp_path / "results" / "00000000-s0.json").read_text() == before  # the other recipe's record stays


def test_an_array_stops_at_a_refusal_that_would_refuse_every_job(tmp_path, capsys):
    from nbm_lightning.core.errors import UserError

    jobs = [Job("00000000", seed, Recipe(), Execution(results_dir=str(tmp_path))) for seed in (0, 1, 2)]
    tried = []

    def refuse(job: Job) -> worker.JobResult:
        tried.append(job.name)
        raise UserError("CIFAR-10 not found in /nowhere")  # names no pair: every job would fail alike

    stub = worker.Worker.__new__(worker.Worker)  # no data cache: nothing is trained
    stub.stop, stub.run = worker.StopSignal(), refuse
    assert stub.run_all(jobs) == 2 and tried == ["00000000-s0"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "00000000-s0: refused: CIFAR-10 not found in /nowhere"
    assert err[-1] == ("worker: 3 jobs: 1 refused; 2 not done (not tried after the refusal above); "
                       "failed: 00000000-s0 (refused)")  # fmt: skip


# ---------------------------------------------------------------- one outcome vocabulary, one map to exit statuses

EXITS = {"complete": 0, "skipped": 0, "busy": 0, "failed": 1, "refused": 2, "stopped": 130, "preempted": 143}


def test_one_map_from_outcome_to_exit_status_and_the_slurm_script_agrees():
    assert {outcome.value: status for outcome, status in EXIT_STATUS.items()} == EXITS
    assert {outcome.value: outcome.exit_status for outcome in Outcome} == EXITS  # every outcome has one
    script = (ROOT / "sweeps" / "slurm_array.sh").read_text()
    (preempted,) = re.findall(r"^PREEMPTED=(\d+)", script, re.MULTILINE)  # what the script requeues on
    assert int(preempted) == Outcome.PREEMPTED.exit_status


@pytest.mark.parametrize("outcome", [Outcome.COMPLETE, Outcome.FAILED, Outcome.STOPPED, Outcome.PREEMPTED])
def test_fit_reaches_the_run_on_a_thread_and_exits_with_its_outcome(outcome, data, tmp_path, monkeypatch):
    from nbm_lightning.training import run as training

    calls = []

    def run(job, cache, stop, guard):  # the run function: one hop from the worker's run
        calls.append((job.name, threading.current_thread().name, cache is not None, stop.stopping()))
        guard()  # the worker's lock check: holds
        return outcome

    monkeypatch.setattr(training, "run", run)
    argv = ["--arch=12012012", f"--data-dir={data}", f"--results-dir={tmp_path}/r", f"--ckpt-dir={tmp_path}/c",
            "--wandb-mode=disabled", *TINY]  # fmt: skip
    assert fit.main(argv) == EXITS[outcome.value]
    assert calls == [("12012012-s0", "run-12012012-s0", True, False)]  # on a run thread: signals stay with main
    assert not list((tmp_path / "r").glob("*.lock"))  # the worker released the pair's locks


def test_the_agent_exits_143_when_preempted_and_130_when_stopped(monkeypatch):
    import signal

    import wandb

    from nbm_lightning import agent

    for signum, code in ((signal.SIGTERM, 143), (signal.SIGUSR1, 143), (signal.SIGINT, 130), (None, 0)):

        def fake_agent(*args, signum=signum, **kwargs):  # a signal arrives while wandb.agent waits for runs
            if signum is not None:
                signal.getsignal(signum)(signum, None)  # the handler the agent installed

        monkeypatch.setattr(wandb, "agent", fake_agent)
        assert agent.main(["entity/project/sweep1"]) == code
