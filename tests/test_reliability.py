"""Reliability as a cluster tries it: preemption (SIGTERM/SIGUSR1, SLURM), W&B's requeue argv, one trainer per
pair, and faults injected (failed writes, corrupt or foreign checkpoints, leftovers, unusable settings)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import wandb_offline

from nbm_lightning import fit
from nbm_lightning.records.recipe import Recipe
from nbm_lightning.records.runkeys import RECORD_FILE
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training import checkpoints

ROOT = Path(__file__).resolve().parents[1]

CODE, SEED = "00000000", 1
NAME = f"{CODE}-s{SEED}"
TIME_FIELDS = {"wall_time_s", "train_time_s", "started_at", "finished_at", "resumed"}
RUN = [f"--arch={CODE}", f"--seed={SEED}", "--download=false", "--epochs=3", "--batch-size=32", "--eval-batch-size=64",
       "--progress=false", "--accelerator=cpu", "--num-workers=0", "--wandb-mode=disabled"]  # fmt: skip
RECIPE_HASH = Recipe(epochs=3, batch_size=32).hash()
HASH_2 = Recipe(epochs=2, batch_size=32).hash()  # the faults' recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=128, n_test=64, learnable=True, seed=0)  # 4 steps an epoch
    return root


def _env(**extra: str) -> dict:
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_SILENT="true")
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        env.pop(key, None)
    return {**env, **extra}


def _fit(cwd: Path, *argv: str, env: dict | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    """`fit` in a subprocess, or a wrapper script `code` that patches it first."""
    head = [sys.executable, "-c", textwrap.dedent(code)] if code else [sys.executable, "-m", "nbm_lightning.fit"]
    return subprocess.run([*head, *argv], cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300)


def _comparable(record: dict) -> dict:
    curves = {k: v for k, v in record["curves"].items() if k != "epoch_time_s"}
    return {**{k: v for k, v in record.items() if k not in TIME_FIELDS}, "curves": curves}


def _record(folder: Path) -> dict:
    return json.loads((folder / "results" / f"{NAME}.json").read_text())


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory) -> dict:
    """The record of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("straight")
    proc = _fit(folder, *RUN, f"--data-dir={data}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _record(folder)


# ---------------------------------------------------------------- preemption

SIGNAL_AT_STEP = """
    import os, signal, sys, time
    from nbm_lightning.training import callbacks
    from nbm_lightning import fit
    original = callbacks.RunControl.on_train_batch_end
    def at_step(self, trainer, module, outputs, batch, idx):
        if trainer.global_step == int(os.environ["SIGNAL_AT_STEP"]) and not os.path.exists("signalled"):
            open("signalled", "w").write(str(time.time()))
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL"]))  # as a scheduler would
            self.stop.preempt.wait(10)  # the main thread's handler has seen it
        original(self, trainer, module, outputs, batch, idx)
    callbacks.RunControl.on_train_batch_end = at_step
    sys.exit(fit.main(sys.argv[1:]))
"""

FAKE_SCONTROL = """#!/bin/sh
echo "$@" >> "$SCONTROL_CALLS"
"""


@pytest.mark.parametrize(
    "sig, slurm, step",
    [("SIGUSR1", True, 4)],  # 4 steps an epoch: step 4 ends epoch 1 (SIGTERM mid-epoch: the test after this one)
    ids=["sigusr1-slurm-last-step-of-an-epoch"],
)
def test_preemption_then_an_exact_resume(data, straight, tmp_path, sig, slurm, step):
    env = _env(SIGNAL_AT_STEP=str(step), SIGNAL=sig)
    if slurm:  # Lightning sees a SLURM job: its own auto-requeue (hpc_ckpt_*, scontrol) must stay off
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "scontrol").write_text(FAKE_SCONTROL)
        (tmp_path / "bin" / "scontrol").chmod(0o755)
        calls = str(tmp_path / "scontrol_calls")
        env.update(SLURM_JOB_ID="77", SLURM_NTASKS="1", SLURM_JOB_NAME="nbm", SLURM_NODELIST="node1",
                   PATH=f"{tmp_path / 'bin'}:{env['PATH']}", SCONTROL_CALLS=calls)  # fmt: skip
    preempted = _fit(tmp_path, *RUN, f"--data-dir={data}", env=env, code=SIGNAL_AT_STEP)
    ended = time.time()
    assert preempted.returncode == 143, preempted.stderr[-3000:]
    assert ended - float((tmp_path / "signalled").read_text()) < 30
    record = _record(tmp_path)
    assert record["status"] == "preempted" and f"preempted by {sig}" in record["error"]
    assert record["epochs_completed"] == 1  # epoch 2 was cut in the middle
    assert not list(tmp_path.rglob("hpc_ckpt_*")) and not (tmp_path / "scontrol_calls").exists()
    resumed = _fit(tmp_path, *RUN, f"--data-dir={data}", env=env)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-3000:]
    final = _record(tmp_path)
    assert final["status"] == "complete" and final["resumed"] is True
    assert _comparable(final) == _comparable(straight)  # every field and curve, times excepted


# What a run prints (stdout and stderr), W&B offline: its own lines and the worker's, nothing of W&B's.
RUN_LINES = [
    r"W&B offline \(--wandb-mode offline\): upload later with `wandb sync \S+`",
    r"worker: (SIGTERM: preempting after the current training step|2 jobs: 2 complete)",
    r"epoch \d/3 lr [\d.]+ train loss [\d.]+ acc [\d.]+% \| eval loss [\d.]+ acc [\d.]+% \| [\d.]+s",
    r"\d{8}-s\d: (preempted by|resuming from|test acc final|complete in) .*",
    r"\d{8}-s\d: W&B service lost \(.+\); this run's W&B data stops here; its record and checkpoint are unaffected",
]


def _held_run(data: Path, folder: Path, *select: str) -> tuple[subprocess.Popen, int]:
    """`fit` of RUN (or of the pairs `select` names), W&B offline, in a session of its own, held at its first
    training step (NBM_TRACE_HOLD); (the process, its W&B service's pid: wandb-core, a child process of the run)."""
    trace = folder / "trace"
    env = _env(NBM_TRACE=str(trace), NBM_TRACE_HOLD="train:start", NBM_TRACE_HOLD_S="2", WANDB_DIR=str(folder))
    argv = [a for a in RUN if a != "--wandb-mode=disabled" and not (select and a.startswith(("--arch", "--seed")))]
    argv += [*select, "--wandb-mode=offline", f"--data-dir={data}"]
    proc = subprocess.Popen([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while not (trace.exists() and " train start " in trace.read_text()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    tasks = Path(f"/proc/{proc.pid}/task")  # wandb-core is a child of the thread that started it
    children = [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]
    (core,) = [pid for pid in children if Path(f"/proc/{pid}/comm").read_text().strip() == "wandb-core"]
    return proc, core


def _lines(out: str, err: str) -> list[str]:
    """Every line a run printed that is not one of its own (RUN_LINES): a traceback, W&B's, Lightning's."""
    return [line for line in (out + err).splitlines() if not any(re.fullmatch(p, line) for p in RUN_LINES)]


def test_sigterm_to_every_process_of_the_job_preempts_and_a_lost_wandb_service_stops_nothing(data, straight, tmp_path):
    """SLURM's scancel and preemption send SIGTERM to every process of the job, W&B's service (wandb-core, in a
    session of its own) too: the run still ends preempted (exit 143, mid-epoch checkpoint, record `preempted`),
    and the rerun, whose service alone is killed while it trains, completes as an uninterrupted run; the next run
    of that worker logs to W&B again."""
    proc, core = _held_run(data, tmp_path)
    os.killpg(proc.pid, signal.SIGTERM)  # the run's session (start_new_session) ...
    os.kill(core, signal.SIGTERM)  # ... and the service's: every process of the job
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and _lines(out, err) == [], err[-3000:]
    assert (
        err.count("W&B service lost") == 1 and err.count(f"{NAME}: preempted by SIGTERM after step 1 of epoch 1") == 1
    )
    record = _record(tmp_path)
    assert record["status"] == "preempted" and record["epochs_completed"] == 0
    ckpt = tmp_path / "checkpoints" / f"{NAME}-{RECIPE_HASH}" / "last.ckpt"
    assert checkpoints.load(ckpt)["global_step"] == 1  # saved after the step under way
    (tmp_path / "trace").unlink()
    proc, core = _held_run(data, tmp_path, "--index=1,0")  # the rerun (index 1 is NAME), held at its first step
    os.kill(core, signal.SIGTERM)  # W&B's service alone goes away (mid-epoch 1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and _lines(out, err) == [] and err.count("W&B service lost") == 1, err[-3000:]
    assert f"{NAME}: resuming from" in out and f"{NAME}: test acc final" in out
    final = _record(tmp_path)
    assert final["status"] == "complete" and final["resumed"] is True and final["wandb"]["mode"] == "offline"
    offline = {"execution": {**straight["execution"], "wandb_mode": "offline"}, "wandb": final["wandb"]}
    assert _comparable(final) == _comparable({**straight, **offline})  # every field and curve, times excepted
    after = json.loads((tmp_path / "results" / "00000000-s0.json").read_text())  # the worker's next run
    (run_dir,) = (tmp_path / "wandb").glob(f"offline-run-*-{after['wandb']['id']}")
    sent = wandb_offline.sent_by(run_dir)  # a service of its own: its record saved and its run finished
    assert after["status"] == "complete" and sent.exit_code == 0 and RECORD_FILE in sent.files


SERVICE_GONE_AFTER_THE_RUN = """
    import os, signal, sys
    from pathlib import Path
    import wandb
    from nbm_lightning.records import tracking
    logger = tracking.make_logger("offline", "p", "", "00000000-s0", "00000000", [], {}, None, Path("."))
    logger.log_metrics({"loss": 1.0})
    wandb.finish()
    tasks = Path("/proc/self/task").iterdir()  # wandb-core is a child of this process (of the thread that started it)
    (core,) = [int(pid) for task in tasks for pid in (task / "children").read_text().split()]
    os.kill(core, signal.SIGTERM)  # SLURM's signal, after the run and before this process ends
    os.waitpid(core, 0)
    sys.exit(143)
"""


def test_a_wandb_service_gone_after_the_run_leaves_no_traceback_at_exit(tmp_path):
    """W&B's own exit hook tears its service down: where the service is gone already, the process exits quietly."""
    proc = _fit(tmp_path, env=_env(WANDB_DIR=str(tmp_path)), code=SERVICE_GONE_AFTER_THE_RUN)
    assert proc.returncode == 143 and proc.stdout + proc.stderr == "", proc.stderr[-3000:]


FAKE_PYTHON = """#!/bin/bash
trap 'echo USR1 > "$WORK/python.signal"; kill %1; exit 143' USR1
trap 'echo TERM > "$WORK/python.signal"; kill %1; exit 143' TERM
sleep 30 >/dev/null 2>&1 &
echo "$$" > "$WORK/python.pid"
wait
"""


def test_slurm_array_forwards_the_signal_and_requeues_the_task(tmp_path):
    for name, text in (("python", FAKE_PYTHON), ("scontrol", FAKE_SCONTROL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = dict(os.environ, PYTHON=str(tmp_path / "python"), WORK=str(tmp_path), SLURM_ARRAY_TASK_ID="5",
               SLURM_ARRAY_JOB_ID="77", SLURM_JOB_ID="78", PATH=f"{tmp_path}:{os.environ['PATH']}",
               SCONTROL_CALLS=str(tmp_path / "calls"))  # fmt: skip
    shell = subprocess.Popen(["bash", str(ROOT / "sweeps" / "slurm_array.sh")], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 20
    while not (tmp_path / "python.pid").exists() and time.time() < deadline:
        time.sleep(0.05)
    shell.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends to the batch shell
    out, _ = shell.communicate(timeout=30)
    assert shell.returncode == 143, out
    assert (tmp_path / "python.signal").read_text().strip() == "USR1"  # the signal reached Python
    assert (tmp_path / "calls").read_text().split() == ["requeue", "77_5"]  # the task requeued itself


# ---------------------------------------------------------------- W&B's requeue argv


def test_the_requeue_argv_of_a_real_run_resolves_the_same_job(data, tmp_path, capsys):
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    argv = [a for a in RUN if a != "--wandb-mode=disabled"] + ["--arch=00001000", "--epochs=1", f"--data-dir={data}"]
    proc = _fit(tmp_path, *argv, "--wandb-mode=offline", env=_env(WANDB_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    config = wandb_offline.sent_by(run_dir).config  # everything the run logged, `_wandb` included
    requeue_argv = create_sweep_command_args({"args": {k: {"value": v} for k, v in config.items()}})["args"]
    assert any(a.startswith("--_wandb=") for a in requeue_argv) and "--canonical=00010000" in requeue_argv
    job = fit.resolve(fit.build_parser().parse_args(requeue_argv))
    assert (job.arch, job.seed, job.recipe.hash()) == ("00001000", SEED, Recipe(epochs=1, batch_size=32).hash())
    assert job.execution.data_dir == "./data"  # the first machine's folders give way to this machine's
    with pytest.raises(SystemExit) as exc:
        fit.main([a if not a.startswith("--canonical=") else "--canonical=00000000" for a in requeue_argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "invalid canonical '00000000'" in err


# ---------------------------------------------------------------- one trainer per pair

HOLD_AFTER_FIRST_EPOCH = """
    import os, sys, time
    from nbm_lightning.training import callbacks
    from nbm_lightning import fit
    save = callbacks.EpochCheckpoint.on_validation_end
    def save_then_hold(self, trainer, module):
        save(self, trainer, module)
        deadline = time.time() + 120
        while not os.path.exists("release") and time.time() < deadline:
            time.sleep(0.05)
    callbacks.EpochCheckpoint.on_validation_end = save_then_hold
    sys.exit(fit.main(sys.argv[1:]))
"""


def test_two_processes_on_one_pair_train_it_once(data, tmp_path):
    argv = [sys.executable, "-c", textwrap.dedent(HOLD_AFTER_FIRST_EPOCH), *RUN, f"--data-dir={data}"]
    first = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "checkpoints" / f"{NAME}-{RECIPE_HASH}.lock"
    deadline = time.time() + 120
    while not (tmp_path / "checkpoints" / f"{NAME}-{RECIPE_HASH}" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert lock.exists()
    second = _fit(tmp_path, *RUN, f"--data-dir={data}")
    assert second.returncode == 0 and f"{NAME}: being trained by pid {first.pid}" in second.stdout, second.stderr
    assert not (tmp_path / "results" / f"{NAME}.json").exists()  # the second wrote no record
    (tmp_path / "release").touch()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-3000:]
    assert [p.name for p in (tmp_path / "results").iterdir()] == [f"{NAME}.json"] and not lock.exists()


def test_a_stale_lock_is_taken_over(data, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "checkpoints" / f"{NAME}-{Recipe(epochs=1, batch_size=32).hash()}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": int(gone.stdout), "started": time.time()}))
    proc = _fit(tmp_path, *RUN, "--epochs=1", f"--data-dir={data}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"took over the stale lock of pid {int(gone.stdout)}" in proc.stderr and not lock.exists()
    assert _record(tmp_path)["status"] == "complete"


def test_another_recipe_is_refused_and_a_frozen_owner_that_lost_its_lock_writes_nothing(
    data, tmp_path, capsys, monkeypatch
):
    from nbm_lightning.cli import run_main
    from nbm_lightning.runner.pair_lock import PairLock

    monkeypatch.setenv("NBM_CIFAR_SKIP_MD5", "1")  # the second run is in this process: as _env() for a subprocess

    folders = [f"--results-dir={tmp_path / 'results'}", f"--ckpt-dir={tmp_path / 'checkpoints'}"]
    argv = [sys.executable, "-c", textwrap.dedent(HOLD_AFTER_FIRST_EPOCH), *RUN, *folders, f"--data-dir={data}"]
    first = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "checkpoints" / f"{NAME}-{RECIPE_HASH}" / "last.ckpt"
    record = tmp_path / "results" / f"{NAME}.json"
    deadline = time.time() + 300
    while not ckpt.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), first.stderr.read()[-3000:] if first.poll() is not None else "no checkpoint in 300 s"
    # the same pair under another recipe (--lr 0.05), into the same results folder: refused before training
    assert run_main(fit.main, [*RUN, "--lr=0.05", *folders, f"--data-dir={data}"], prog="fit") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"being trained under another recipe (hash {RECIPE_HASH}" in err, err
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()] == [f"{NAME}-{RECIPE_HASH}"]
    # the owner frozen past the stale time (1 s here) loses a lock to another process (this one, here)
    os.kill(first.pid, signal.SIGSTOP)
    time.sleep(1.2)
    taker = PairLock(ckpt.parent.with_name(ckpt.parent.name + ".lock"), stale_s=1.0)
    try:
        assert taker.acquire() is None and taker.took_over is not None and taker.took_over.pid == first.pid
        epoch_1 = ckpt.read_bytes()
        os.kill(first.pid, signal.SIGCONT)
        (tmp_path / "release").touch()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 1 and "Traceback" not in err, err[-3000:]
        assert err.count("lost the lock") == 1 and f"{NAME}: FAILED: LockLost: lost the lock" in err
        assert ckpt.read_bytes() == epoch_1 and not record.exists()  # no checkpoint and no record written by it
        assert json.loads(taker.path.read_text())["token"] == taker.token  # nor the new owner's lock removed
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
        taker.release()


# ---------------------------------------------------------------- who holds a lock


def _lock_file(path: Path, pid: int, **identity: object) -> None:
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started": time.time(), **identity}))


def test_a_lock_naming_this_process_is_alive_only_while_this_process_holds_it(tmp_path):
    from nbm_lightning.runner.pair_lock import PairLock, boot_id, process_start

    if boot_id() is None or process_start(os.getpid()) is None:
        pytest.skip("no /proc here: the holder's boot and start time are unknown")
    path, me, started = tmp_path / f"{NAME}.json.lock", os.getpid(), process_start(os.getpid())
    for left in ({}, {"boot_id": boot_id(), "pid_start": started - 1}, {"boot_id": "another-boot", "token": "t"}):
        _lock_file(path, me, **left)  # an older version's lock, a restarted container's pid 1, another boot
        lock = PairLock(path)
        assert lock.acquire() is None and lock.took_over is not None and lock.took_over.pid == me, left
        holder = PairLock(path).acquire()  # held by another PairLock of this process: a live holder
        assert holder is not None and (holder.pid, holder.pid_start, holder.token) == (me, started, lock.token)
        lock.release()
        assert not path.exists()
    other = subprocess.Popen(["sleep", "60"])
    try:
        while process_start(other.pid) is None:
            time.sleep(0.01)
        alive = {"boot_id": boot_id(), "pid_start": process_start(other.pid), "token": "t"}
        _lock_file(path, other.pid, **alive)
        assert PairLock(path).acquire().pid == other.pid  # a live process of this host
        for dead in ({**alive, "pid_start": alive["pid_start"] + 1}, {**alive, "boot_id": "another-boot"}):
            _lock_file(path, other.pid, **dead)  # its pid reused by another process; written before a reboot
            lock = PairLock(path)
            assert lock.acquire() is None and lock.took_over.pid == other.pid, dead
            lock.release()
    finally:
        other.kill()
        other.wait()


# ---------------------------------------------------------------- faults, injected (one process, one folder each)

FAULTS = """
    import contextlib, errno, io, json, os, sys
    from pathlib import Path
    import pytorch_lightning as pl
    from nbm_lightning.training import callbacks
    from nbm_lightning.core.errors import UserError
    from nbm_lightning.records.job import resolve_job
    from nbm_lightning.runner.worker import Worker

    data, results = sys.argv[1], {}
    base = dict(download=False, epochs=2, batch_size=32, eval_batch_size=64, progress=False, accelerator="cpu",
                wandb_mode="disabled", data_dir=data)

    def job(folder, **changes):
        values = {**base, "results_dir": f"{folder}/results", "ckpt_dir": f"{folder}/ckpt", **changes}
        return resolve_job(values, "00000000", 1)

    def scenario(name, make_job, prepare=lambda j: None, patch=contextlib.nullcontext):
        j = make_job(name)
        prepare(j)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), patch():
            try:
                status = Worker().run(j).outcome
            except UserError as error:
                status, err = "user-error", io.StringIO(str(error))
        files = sorted(str(p.relative_to(name)) for p in Path(name).rglob("*") if p.is_file())
        results[name] = {"status": status, "out": out.getvalue(), "err": err.getvalue(), "files": files}

    def corrupt(j):
        j.ckpt_dir.mkdir(parents=True)
        (j.ckpt_dir / "last.ckpt").write_bytes(b"PK\\x03\\x04 truncated")

    class Payload:  # what a crafted checkpoint carries: unpickling it would create a file
        def __reduce__(self):
            return (open, (os.path.abspath("crafted/code-ran"), "w"))

    def crafted(j):
        import torch
        j.ckpt_dir.mkdir(parents=True)
        torch.save({"nbm_run": {}, "state_dict": {}, "payload": Payload()}, j.ckpt_dir / "last.ckpt")

    def other_pipeline(j):  # a checkpoint written by the torchvision pipeline, under this recipe
        kill = callbacks.RunControl.on_validation_end
        def stop(self, trainer, module):
            raise callbacks.RunStopped("test: stopped after the first checkpoint")
        callbacks.RunControl.on_validation_end = stop
        try:
            Worker().run(job(j.execution.results_dir.rsplit("/", 1)[0], pipeline="torchvision", num_workers=0))
        finally:
            callbacks.RunControl.on_validation_end = kill
        (j.ckpt_dir.parent / "00000000-s1-0123456789ab").mkdir()  # a folder of another recipe

    def leftover(j):  # a finished run killed between its record and its cleanup
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            Worker().run(j)
        j.ckpt_dir.mkdir(parents=True)
        (j.ckpt_dir / "wandb_id").write_text("abc")

    @contextlib.contextmanager
    def disk_full_on_second_checkpoint():
        save, calls = pl.Trainer.save_checkpoint, []
        def failing(self, path, *args, **kwargs):
            calls.append(path)
            if len(calls) == 2:
                Path(path).write_bytes(b"partial")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return save(self, path, *args, **kwargs)
        pl.Trainer.save_checkpoint = failing
        try:
            yield
        finally:
            pl.Trainer.save_checkpoint = save

    @contextlib.contextmanager
    def io_error_on_fsync():
        fsync = os.fsync
        def failing(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync = failing
        try:
            yield
        finally:
            os.fsync = fsync

    def not_json(j):
        j.record_path.parent.mkdir(parents=True)
        j.record_path.write_text("{not json")

    scenario("corrupt", job, corrupt)
    scenario("crafted", job, crafted)
    scenario("pipeline", job, other_pipeline)
    scenario("leftover", job, leftover)
    scenario("checkpoint_write", job, patch=disk_full_on_second_checkpoint)
    scenario("record_write", job, patch=io_error_on_fsync)
    scenario("not_json", job, not_json)
    Path("a_file").write_text("")
    scenario("results_is_a_file", lambda name: job(name, results_dir="a_file"))
    scenario("long_path", lambda name: job(name, ckpt_dir=name + "/" + "x" * 260))
    print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def faults(data, tmp_path_factory) -> dict:
    """What each injected fault did (one subprocess for all: each scenario in a folder of its own)."""
    folder = tmp_path_factory.mktemp("faults")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FAULTS), str(data)], cwd=folder, env=_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_corrupt_checkpoint_is_set_aside_and_the_run_starts_over(faults):
    result = faults["corrupt"]
    assert result["status"] == "complete" and "Traceback" not in result["err"]
    warning = [line for line in result["err"].splitlines() if line.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "unreadable" in warning[0] and "from epoch 0" in warning[0]
    (aside,) = [f for f in result["files"] if f.startswith("ckpt/set-aside/")]  # kept after the run completed
    assert f"moved to corrupt/{aside}" in warning[0] and aside.startswith(f"ckpt/set-aside/{NAME}-{HASH_2}-")
    assert aside.endswith("-unreadable.ckpt")  # its name says why
    assert not any(f.startswith(f"ckpt/{NAME}-") for f in result["files"])  # the run's own folder is gone


def test_a_crafted_checkpoint_runs_nothing_and_is_set_aside(faults):
    result = faults["crafted"]
    assert result["status"] == "complete" and "resuming from" not in result["out"]  # trained from epoch 0
    assert "code-ran" not in str(result["files"])  # its unpickling would have created crafted/code-ran
    warning = [line for line in result["err"].splitlines() if line.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "not plain data (it names " in warning[0] and "from epoch 0" in warning[0]
    assert [f for f in result["files"] if f.startswith("ckpt/set-aside/") and f.endswith("-not-plain-data.ckpt")]


def test_a_checkpoint_of_another_pipeline_is_named_and_set_aside(faults):
    result = faults["pipeline"]
    assert result["status"] == "complete" and "pipeline 'torchvision', this run 'tensor'" in result["err"]
    assert "00000000-s1-0123456789ab holds a checkpoint of 00000000-s1 of another recipe" in result["err"]


def test_what_a_finished_run_left_behind_is_cleaned_up(faults):
    result = faults["leftover"]
    assert result["status"] == "skipped" and "removed" in result["out"] and "left behind" in result["out"]
    assert not any(f.startswith("ckpt/00000000-s1-") and "/" in f[5:] for f in result["files"])


def test_a_failed_checkpoint_write_fails_the_run_and_keeps_the_previous_checkpoint(faults):
    result = faults["checkpoint_write"]
    assert result["status"] == "failed" and "No space left on device" in result["err"]
    assert "Traceback" not in result["err"]
    checkpoint_files = [f for f in result["files"] if f.startswith("ckpt/")]
    assert [Path(f).name for f in checkpoint_files] == ["last.ckpt"]  # the first epoch's, and no partial file
    record = [f for f in result["files"] if f.startswith("results/")]
    assert record == ["results/00000000-s1.json"]  # the failed run's record


def test_a_failed_record_write_leaves_no_partial_file(faults):
    result = faults["record_write"]
    assert result["status"] == "failed" and "Input/output error" in result["err"] and "Traceback" not in result["err"]
    assert not [f for f in result["files"] if f.startswith("results/")]  # no record, no temporary file
    assert [Path(f).name for f in result["files"] if f.startswith("ckpt/")] == ["last.ckpt"]


def test_a_record_that_is_not_json_is_trained_over(faults):
    assert faults["not_json"]["status"] == "complete"


@pytest.mark.parametrize("name, fragment", [("results_is_a_file", "bad --results-dir 'a_file'"),
                                            ("long_path", "bad --ckpt-dir")])  # fmt: skip
def test_unusable_folders_are_found_before_training(faults, name, fragment):
    result = faults[name]
    assert result["status"] == "user-error" and fragment in result["err"] and "\n" not in result["err"].strip()
    assert not any(f.endswith(".ckpt") or f.endswith(".json") for f in result["files"])


def test_wandb_online_unreachable_exits_2_and_auto_falls_back_to_offline(data, tmp_path):
    env = _env(WANDB_API_KEY="k" * 40, WANDB_BASE_URL="http://127.0.0.1:9", WANDB_DIR=str(tmp_path))
    argv = [a for a in RUN if not a.startswith("--wandb-mode")] + ["--epochs=1", f"--data-dir={data}"]
    online = _fit(tmp_path, *argv, "--wandb-mode=online", env=env)
    assert online.returncode == 2 and "unreachable" in online.stderr and online.stderr.count("\n") == 1
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").rglob("*.ckpt"))
    auto = _fit(tmp_path, *argv, "--wandb-mode=auto", env=env)
    assert auto.returncode == 0 and "unreachable within 5 s: logging offline" in auto.stderr, auto.stderr[-2000:]
    assert list((tmp_path / "wandb").glob("offline-run-*"))
