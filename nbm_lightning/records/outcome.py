"""What became of one job, in one vocabulary, and the one map from outcome to exit status (no torch)."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Outcome(str, enum.Enum):
    """What became of one job; the first three are also a run record's `status` (the same strings on disk)."""

    COMPLETE = "complete"  # trained to the recipe's last epoch, record written
    FAILED = "failed"  # the run failed (its record says why, where it could write one)
    PREEMPTED = "preempted"  # SIGTERM/SIGUSR1: checkpoint saved, record `preempted`, a rerun resumes
    STOPPED = "stopped"  # Ctrl-C: checkpoint saved, no record, a rerun resumes
    SKIPPED = "skipped"  # a complete record of this recipe exists
    BUSY = "busy"  # another process holds the pair's lock under this recipe
    REFUSED = "refused"  # bad input (a UserError) for a job of an array: reported as failed

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__  # f"{outcome}" is its value, as str() is

    @property
    def exit_status(self) -> int:
        """The exit status of a command whose one job ended so."""
        return EXIT_STATUS[self]


RECORD_STATUSES = (Outcome.COMPLETE, Outcome.FAILED, Outcome.PREEMPTED)  # the values of a run record's `status`
EXIT_STATUS = {  # the one map from outcome to exit status (fit, the worker, the agent, sweeps/slurm_array.sh)
    Outcome.COMPLETE: 0,
    Outcome.SKIPPED: 0,
    Outcome.BUSY: 0,  # the other process trains it
    Outcome.FAILED: 1,
    Outcome.REFUSED: 2,  # its input needs a person: a rerun fails alike
    Outcome.STOPPED: 130,  # 128 + SIGINT
    Outcome.PREEMPTED: 143,  # 128 + SIGTERM: non-zero, so W&B and SLURM requeue the run
}


def worker_exit(outcomes: Iterable[Outcome], preempted: bool, left: int) -> int:
    """A worker's exit status over its jobs: 2 when one was refused, else 1 when one failed, else 143 when
    preempted, else 130 when jobs are left (stopped), else 0."""
    seen = set(outcomes)
    for worst in (Outcome.REFUSED, Outcome.FAILED):
        if worst in seen:
            return worst.exit_status
    if preempted:
        return Outcome.PREEMPTED.exit_status
    return Outcome.STOPPED.exit_status if left else 0
