"""A worker: trains many jobs one after another in one process, paying the fixed cost of a process once.

What stays between runs: the imported libraries, the CIFAR-10 data (decoded once, and held as uint8 tensors
on the device: `data.DataCache`), and on CUDA the CUDA context and cuDNN's autotuning cache. Everything that
defines a run is built and seeded afresh by `train.train`, exactly as in a new `fit` process: network,
LightningModule, optimizer, Trainer, callbacks, logger and every generator. Around each run the worker resets
what a run may leave in the process: W&B's environment variables, the TF32 and cuDNN flags (set by each run's
Trainer), the compiler's caches (`torch._dynamo.reset()` before a compiled run), and the memory of a failed run.

Stopping: the first Ctrl-C (SIGINT, handled in the main thread) ends the current run after its next checkpoint
and the worker after it; a second Ctrl-C ends the run at its next training step. A rerun resumes either way.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .errors import UserError
from .job import Job, done_record
from .record import RecordError, RunRecord

SKIPPED, COMPLETE, FAILED, STOPPED = "skipped", "complete", "failed", "stopped"  # outcomes of a job
INTERRUPTED_EXIT = 130  # exit status of a worker stopped by Ctrl-C


@dataclass
class StopSignal:
    """Stop requests from the main thread to the run (on any thread): `soon` after a checkpoint, `now` at a step."""

    soon: threading.Event = field(default_factory=threading.Event)  # first Ctrl-C
    now: threading.Event = field(default_factory=threading.Event)  # second Ctrl-C
    finished: threading.Event = field(default_factory=threading.Event)  # the run has stopped: end the main loop

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
    def handling(self, *signums: int) -> Iterator[StopSignal]:
        """Route the signals (SIGINT by default) to `request` while inside; only the main thread can."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self.request) for s in signums or (signal.SIGINT,)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@dataclass(frozen=True)
class Outcome:
    """What became of one job."""

    name: str  # <canonical>-s<seed>
    status: str  # SKIPPED, COMPLETE, FAILED or STOPPED
    wall_s: float  # seconds from taking the job to its record written and its W&B run finished
    train_s: float | None  # the record's training + evaluation seconds (None: no record)
    error: str | None = None  # one line, for FAILED

    @property
    def overhead_s(self) -> float | None:
        """The job's fixed cost: wall time minus training and evaluation time."""
        return None if self.train_s is None else self.wall_s - self.train_s


class Worker:
    """Trains jobs in this process with skip, resume, checkpoint and record semantics of a single `fit` run."""

    def __init__(self, stop: StopSignal | None = None):
        from .data import DataCache  # torch loads with the worker, not with this module

        self.cache = DataCache()
        self.stop = stop or StopSignal()
        self._frozen = False  # gc.freeze() done (after the first run)

    def run(self, job: Job) -> Outcome:
        """Train one job (or skip it when done); a failure is reported in one line and returned, never raised.

        A UserError (bad input: missing data, another recipe's record at the path) is raised: it would fail
        every job alike.
        """
        start = time.perf_counter()
        done = done_record(job)
        if done is not None:
            print(
                f"{job.name}: a complete record of this recipe exists at {job.record_path} "
                f"(test acc final {done.test_acc_final:.2f}%); nothing to do (--force retrains)"
            )
            return Outcome(job.name, SKIPPED, time.perf_counter() - start, None)
        status, error = self._train(job)
        return self._outcome(job, status, error, time.perf_counter() - start)

    def _train(self, job: Job) -> tuple[str, str | None]:
        """Run train() inside the per-run resets; (status, one-line error)."""
        from .train import COMPLETE_EXIT, STOPPED_EXIT, train

        try:
            with run_scope(job):
                code = train(job, self.cache, self.stop)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 (any failure of one run: reported, the worker goes on)
            message = " ".join(f"{type(err).__name__}: {err}".split())
            print(f"{job.name}: FAILED: {message}", file=sys.stderr)
            return FAILED, message
        finally:
            release_memory()
            self._freeze_once()
        return {COMPLETE_EXIT: COMPLETE, STOPPED_EXIT: STOPPED}.get(code, FAILED), None

    def _freeze_once(self) -> None:
        """After the first run, exempt what survives it (libraries, W&B, the data) from later collections.

        A full gc.collect() after every run frees a failed run's tensors, but scanning every object of torch,
        Lightning and W&B each time costs a large share of the worker's fixed cost; frozen objects are
        skipped. Only objects alive at that moment are frozen, so at most that set is never collected.
        """
        if not self._frozen:
            gc.freeze()
            self._frozen = True

    def _outcome(self, job: Job, status: str, error: str | None, wall_s: float) -> Outcome:
        """The Outcome of a trained job, its training time and error read from the record it wrote."""
        try:
            record = RunRecord.read(job.record_path) if status != STOPPED else None
        except RecordError:
            record = None
        train_s = record.train_time_s if record is not None else None
        error = error or (record.error if record is not None and status == FAILED else None)
        outcome = Outcome(job.name, status, wall_s, train_s, error)
        if train_s is not None:
            cost = f"training {train_s:.2f} s, fixed cost {outcome.overhead_s:.2f} s"
            print(f"{job.name}: {status} in {wall_s:.2f} s ({cost})")
        return outcome

    def run_all(self, jobs: Sequence[Job]) -> int:
        """Train the jobs in order until done or stopped: 0 when all are complete or skipped, 1 when any failed,
        INTERRUPTED_EXIT when stopped; the last line says which jobs failed (or remain)."""
        outcomes: list[Outcome] = []
        for job in jobs:
            if self.stop.soon.is_set():
                break
            outcomes.append(self.run(job))
        return report(outcomes, len(jobs))


def report(outcomes: Sequence[Outcome], total: int) -> int:
    """Print the worker's last line and return its exit status."""
    counts = {s: sum(o.status == s for o in outcomes) for s in (COMPLETE, SKIPPED, FAILED, STOPPED)}
    failed = [o.name for o in outcomes if o.status == FAILED]
    line = f"worker: {total} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    left = total - len(outcomes) + counts[STOPPED]
    if left:
        line += f"; {left} not done (stopped: rerun the same command to resume)"
    if failed:
        line += f"; failed: {' '.join(failed)}"
    print(line, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else INTERRUPTED_EXIT if left else 0


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
