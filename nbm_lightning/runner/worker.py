"""A worker: trains many jobs one after another in one process, paying the fixed cost of a process once.

What stays between runs: the imported libraries, the CIFAR-10 data (decoded once, and held as uint8 tensors
on the device: `datamodule.DataCache`), and on CUDA the CUDA context and cuDNN's autotuning cache. Everything that
defines a run is built and seeded afresh by `training.run.run`, exactly as in a new `fit` process: network,
LightningModule, optimizer, Trainer, callbacks, logger and every generator. Around each run the worker resets
what a run may leave in the process: W&B's environment variables, the TF32 and cuDNN flags (set by each run's
Trainer), the compiler's caches (`torch._dynamo.reset()` before a compiled run), and the memory of a failed run.

Each run trains on a thread of its own, so that every signal reaches the worker's main thread (Lightning
installs handlers only there, and would compete). Stopping: the first Ctrl-C (SIGINT) ends the current run after
its next checkpoint and the worker after it; a second Ctrl-C ends the run at its next training step. SIGTERM
or SIGUSR1 (a scheduler's preemption) ends the run after its current training step with a mid-epoch checkpoint
and a `preempted` record, and the worker with exit status 143. A rerun resumes either way.

One trainer per record: a run holds a lock beside its record, whatever the recipe, and one beside its checkpoint
folder (`lock.PairLock`); a job whose pair another process trains under the same recipe is skipped with a line
naming that process, under another recipe it is refused (UserError, naming that recipe) before training. The run
re-checks its locks before every checkpoint and record write, and stops (FAILED, writing nothing) when it lost one.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import PairRefused, UserError
from ..records.job import Job, done_record
from ..records.outcome import Outcome, worker_exit
from ..records.run_record import RecordError, RunRecord
from . import preflight
from .pair_lock import Holder, PairLock

if TYPE_CHECKING:  # torch loads with the first run trained, not with this module
    from ..training.datamodule import DataCache

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # what a scheduler sends ahead of a kill
REPORTED = (  # the outcomes a worker's last line counts, in its order
    Outcome.COMPLETE,
    Outcome.SKIPPED,
    Outcome.BUSY,
    Outcome.FAILED,
    Outcome.REFUSED,
    Outcome.STOPPED,
    Outcome.PREEMPTED,
)


@dataclass
class StopSignal:
    """Stop requests from the main thread to the run (on any thread): `soon` after a checkpoint, `now` at a step."""

    soon: threading.Event = field(default_factory=threading.Event)  # first Ctrl-C
    now: threading.Event = field(default_factory=threading.Event)  # second Ctrl-C
    preempt: threading.Event = field(default_factory=threading.Event)  # SIGTERM or SIGUSR1
    finished: threading.Event = field(default_factory=threading.Event)  # the run has stopped: end the main loop
    signal_name: str = ""  # the signal that asked for preemption

    def reason(self) -> str:
        """The preempting signal's name."""
        return self.signal_name or "a preemption request"

    def preempt_request(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Signal handler: the run saves a checkpoint after its current step and ends as preempted."""
        if self.finished.is_set():
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.preempt.set()
        print(f"worker: {self.signal_name}: preempting after the current training step", file=sys.stderr, flush=True)

    def stopping(self) -> bool:
        """True once any stop or preemption was asked for."""
        return self.soon.is_set() or self.preempt.is_set()

    def request(self, signum: int = signal.SIGINT, frame: object = None) -> None:
        """Signal handler: the first request stops after the next checkpoint, the second at the next step.

        Once the run has stopped (`finished`, set by the run thread with `_thread.interrupt_main()`), a
        KeyboardInterrupt in the main thread ends a loop that waits there (wandb.agent's).
        """
        if self.finished.is_set():
            raise KeyboardInterrupt
        if self.soon.is_set():
            self.now.set()
            print("worker: stopping at the next training step", file=sys.stderr, flush=True)
            return
        self.soon.set()
        print("worker: stopping after this run's next checkpoint (Ctrl-C again: at the next step)", file=sys.stderr)

    @contextlib.contextmanager
    def handling(self) -> Iterator[StopSignal]:
        """Route SIGINT to `request` and SIGTERM/SIGUSR1 to `preempt_request` while inside (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        handlers = {signal.SIGINT: self.request, **dict.fromkeys(PREEMPT_SIGNALS, self.preempt_request)}
        previous = {s: signal.signal(s, handler) for s, handler in handlers.items()}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@dataclass(frozen=True)
class JobResult:
    """What became of one job, and its times."""

    name: str  # <canonical>-s<seed>
    outcome: Outcome  # how it ended (records.outcome: its exit status too)
    wall_s: float  # seconds from taking the job to its record written and its W&B run finished
    train_s: float | None  # a complete run's training + evaluation seconds (None: no whole run in this process)
    error: str | None = None  # one line, for FAILED and REFUSED

    @property
    def overhead_s(self) -> float | None:
        """The job's fixed cost: wall time minus training and evaluation time."""
        return None if self.train_s is None else self.wall_s - self.train_s


class Worker:
    """Trains jobs in this process with skip, resume, checkpoint and record semantics of a single `fit` run."""

    def __init__(self, stop: StopSignal | None = None):
        self.stop = stop or StopSignal()
        self._cache: DataCache | None = None  # made with the first run trained
        self._frozen = False  # gc.freeze() done (after the first run)

    @property
    def cache(self) -> DataCache:
        """The data kept between this worker's runs; torch loads with the first run, so a job found done (a
        resubmitted array task) answers without it."""
        if self._cache is None:
            from ..training.datamodule import DataCache

            self._cache = DataCache()
        return self._cache

    def run(self, job: Job) -> JobResult:
        """Train one job (or skip it when done); a failure is reported in one line and returned, never raised.

        A UserError (bad input: missing data, a bad setting) is raised: it would fail every job alike; a
        PairRefused (another recipe's record at the path, or its run training it) concerns this job only.
        """
        start = time.perf_counter()
        if self._skip_done(job):
            return JobResult(job.name, Outcome.SKIPPED, time.perf_counter() - start, None)
        preflight.check(job)
        locks = take_locks(job)
        if isinstance(locks, tuple):
            busy, holder = locks
            print(f"{job.name}: being trained by {holder.describe()} (lock {busy.path}); skipped")
            return JobResult(job.name, Outcome.BUSY, time.perf_counter() - start, None)
        try:
            for lock in (lock for lock in locks if lock.took_over is not None):
                print(f"{job.name}: took over the stale lock of {lock.took_over.describe()}", file=sys.stderr)
            if self._skip_done(job, holding=True):  # finished by another process while we looked
                return JobResult(job.name, Outcome.SKIPPED, time.perf_counter() - start, None)

            def guard() -> None:
                """Raise LockLost where another process took one of our locks over (we were frozen)."""
                for lock in locks:
                    lock.check()

            from ..training import run as training  # loaded with the first run trained, not with this module

            outcome, error = self.on_run_thread(job, lambda: training.run(job, self.cache, self.stop, guard))
            if any(not lock.owned() for lock in locks):  # the record at the path is the other process's
                return JobResult(job.name, Outcome.FAILED, time.perf_counter() - start, None, error or "lock lost")
        finally:
            for lock in reversed(locks):
                lock.release()
        return self._result(job, outcome, error, time.perf_counter() - start)

    def _skip_done(self, job: Job, holding: bool = False) -> bool:
        """True (with a line) when the job's complete record exists; what that run left behind is removed
        (under the pair's lock: `holding` says this process holds it already)."""
        done = done_record(job, say=not holding)  # the second look says nothing the first one said
        if done is None:
            return False
        print(
            f"{job.name}: a complete record of this recipe exists at {job.record_path} "
            f"(test acc final {done.test_acc_final:.2f}%); nothing to do (--force retrains)"
        )
        if job.ckpt_dir.exists() and not job.execution.keep_checkpoint:  # a kill after the record, before cleanup
            self._remove_leftover(job, holding)
        return True

    @staticmethod
    def _remove_leftover(job: Job, holding: bool) -> None:
        """Remove a finished run's checkpoint folder, under its lock (never one that a process trains)."""
        lock = None if holding else PairLock(checkpoint_lock_path(job), recipe_hash=job.recipe.hash())
        if lock is not None and lock.acquire() is not None:
            return
        try:
            shutil.rmtree(job.ckpt_dir, ignore_errors=True)
            print(f"{job.name}: removed {job.ckpt_dir}, left behind by the run that wrote the record")
        finally:
            if lock is not None:
                lock.release()

    def on_run_thread(self, job: Job, run: Callable[[], Outcome]) -> tuple[Outcome, str | None]:
        """`run()` (the job's run) inside the per-run resets, on a thread of its own so that every signal stays with
        the main thread, which waits: (its outcome, None), or (FAILED, a one-line error) where it raised. A UserError
        (bad input) is raised here: the worker's caller reports it."""
        result: dict[str, object] = {}

        def target() -> None:
            try:
                with run_scope(job):
                    result["value"] = run(), None
            except UserError as err:
                result["error"] = err
            except Exception as err:  # noqa: BLE001 (any failure of one run: reported, the worker goes on)
                message = " ".join(f"{type(err).__name__}: {err}".split())
                print(f"{job.name}: FAILED: {message}", file=sys.stderr)
                result["value"] = Outcome.FAILED, message
            except BaseException as err:  # noqa: BLE001 (handed to the calling thread below)
                result["error"] = err
            finally:
                release_memory()
                self._freeze_once()

        if threading.current_thread() is threading.main_thread():
            thread = threading.Thread(target=target, name=f"run-{job.name}")
            thread.start()
            while thread.is_alive():
                thread.join(0.2)  # short waits: the main thread stays free to run signal handlers
        else:  # a thread already (wandb.agent's): run here
            target()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]  # a UserError (bad input): the worker's caller reports it
        return result["value"]  # type: ignore[return-value]

    def _freeze_once(self) -> None:
        """After the first run, exempt what survives it (libraries, W&B, the data) from later collections.

        A full gc.collect() after every run frees a failed run's tensors, but scanning every object of torch,
        Lightning and W&B each time costs a large share of the worker's fixed cost; frozen objects are
        skipped. Only objects alive at that moment are frozen, so at most that set is never collected.
        """
        if not self._frozen:
            gc.freeze()
            self._frozen = True

    def _result(self, job: Job, outcome: Outcome, error: str | None, wall_s: float) -> JobResult:
        """The JobResult of a trained job, its training time and error read from the record it wrote.

        Training time and fixed cost are those of a whole run only: complete, and not resumed (a resumed run's
        training time spans processes; a preempted or failed one's covers only part of its work)."""
        try:
            record = RunRecord.read(job.record_path) if outcome != Outcome.STOPPED else None
        except RecordError:
            record = None
        whole = outcome == Outcome.COMPLETE and record is not None and not record.resumed
        train_s = record.train_time_s if whole else None
        error = error or (record.error if record is not None and outcome == Outcome.FAILED else None)
        result = JobResult(job.name, outcome, wall_s, train_s, error)
        if train_s is not None:
            cost = f"training {train_s:.2f} s, fixed cost {result.overhead_s:.2f} s"
            print(f"{job.name}: {outcome} in {wall_s:.2f} s ({cost})")
        return result

    def run_all(self, jobs: Sequence[Job]) -> int:
        """Train the jobs in order until done or stopped; the last line says which jobs failed (or remain).

        Exit status (records.outcome.worker_exit): 0 when all are complete or skipped; 2 when a job was refused as
        bad input (another recipe's record at its path, say), else 1 when a run failed; else 143 (preempted) or 130
        when stopped. A refusal of one pair (`PairRefused`: its record or lock) is reported and the
        others go on; any other (missing data, a bad setting) would refuse every job alike: the jobs left are not
        tried.
        """
        results: list[JobResult] = []
        halted = False
        for job in jobs:
            if self.stop.stopping() or halted:
                break
            start = time.perf_counter()
            try:
                results.append(self.run(job))
            except UserError as err:
                message = " ".join(str(err).split())
                print(f"{job.name}: refused: {message}", file=sys.stderr)
                results.append(JobResult(job.name, Outcome.REFUSED, time.perf_counter() - start, None, message))
                halted = not isinstance(err, PairRefused)
        return report(results, len(jobs), preempted=self.stop.preempt.is_set(), halted=halted)


def report(results: Sequence[JobResult], total: int, preempted: bool = False, halted: bool = False) -> int:
    """Print the worker's last line and return its exit status: 2 refused, 1 failed, 143 preempted, 130 stopped,
    else 0.

    `preempted`: a preemption signal arrived (also between runs, when no run reports it); `halted`: the jobs left
    were not tried after a refusal that would refuse each of them.
    """
    counts = {o: sum(r.outcome == o for r in results) for o in REPORTED}
    refused, failed = Outcome.REFUSED, (Outcome.FAILED, Outcome.REFUSED)
    failed_names = [r.name + (" (refused)" if r.outcome == refused else "") for r in results if r.outcome in failed]
    preempted = preempted or bool(counts[Outcome.PREEMPTED])
    line = f"worker: {total} jobs: " + (", ".join(f"{n} {o}" for o, n in counts.items() if n) or "none run")
    left = total - len(results) + counts[Outcome.STOPPED] + counts[Outcome.PREEMPTED]
    if left:
        why = "preempted" if preempted else "stopped"
        why = f"{why}: rerun the same command to resume" if not halted else "not tried after the refusal above"
        line += f"; {left} not done ({why})"
    if failed_names:
        line += f"; failed: {' '.join(failed_names)}"
    print(line, file=sys.stderr if failed_names else sys.stdout)
    return worker_exit((r.outcome for r in results), preempted, left)


def lock_path(job: Job) -> Path:
    """The record's lock file, beside it, whatever the recipe: `<results_dir>/<canonical>-s<seed>.json.lock`."""
    return job.record_path.with_name(job.record_path.name + ".lock")


def checkpoint_lock_path(job: Job) -> Path:
    """The checkpoint folder's lock file, beside it: `<ckpt_dir>/<canonical>-s<seed>-<recipe hash>.lock`."""
    return job.ckpt_dir.with_name(job.ckpt_dir.name + ".lock")


def take_locks(job: Job) -> list[PairLock] | tuple[PairLock, Holder]:
    """Take the record's lock, then the checkpoint folder's: the locks taken, or (the busy lock, its live holder).

    UserError (nothing taken) when the record is being trained under another recipe: two recipes' runs would
    overwrite one record. The checkpoint lock keeps out a run of this recipe writing to another results folder.
    """
    taken: list[PairLock] = []
    for path in (lock_path(job), checkpoint_lock_path(job)):
        lock = PairLock(path, recipe_hash=job.recipe.hash())
        holder = lock.acquire()
        if holder is None:
            taken.append(lock)
            continue
        for mine in reversed(taken):
            mine.release()
        if holder.recipe_hash not in (None, job.recipe.hash()):
            raise PairRefused(
                f"{job.record_path} is being trained under another recipe (hash {holder.recipe_hash}, this one "
                f"{job.recipe.hash()}) by {holder.describe()}: use another --results-dir"
            )
        return lock, holder
    return taken


WANDB_PREFIX = "WANDB_"  # environment variables a run (or W&B's agent) may set for itself


@contextlib.contextmanager
def run_scope(job: Job) -> Iterator[None]:
    """Per-run process state: W&B's environment restored afterwards; a fresh compiler for a compiled run."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(WANDB_PREFIX)}
    if job.execution.compile:
        import torch._dynamo

        torch._dynamo.reset()  # no run inherits another's graphs or counts toward its recompile limit
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(WANDB_PREFIX) and k not in saved]:
            del os.environ[key]
        os.environ.update(saved)


def release_memory() -> None:
    """Free what a finished (or failed) run left: unreachable objects, and cached CUDA blocks."""
    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
