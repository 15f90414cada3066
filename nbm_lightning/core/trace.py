"""An opt-in trace of a run's phases, for checks that must know where a process was when it was killed.

With `NBM_TRACE=FILE` set, each `phase(name, step, detail)` call appends one line to FILE:
`<unix time, s> <pid> <name> <step> <detail>`, in one `write` (lines of concurrent processes never mix). The
phases: `setup` (a job's building, detail: its run name), `train` (an epoch's start and each training step), `eval` (an
evaluation pass), `checkpoint` (a checkpoint write: `start`, `written` = the temporary file is complete, `end`)
and `record` (a run record write, detail: its status). Unset (the default), `phase` only reads the environment.

With `NBM_TRACE_HOLD=<name>:<step>` (e.g. `checkpoint:written`) the process also sleeps `NBM_TRACE_HOLD_S`
seconds (default 5) the first time it reaches that point, so that a kill is sure to land inside a short phase
(`benchmarks/chaos.py` uses both).
"""

from __future__ import annotations

import os
import time
from typing import Any

TRACE_ENV, HOLD_ENV, HOLD_S_ENV = "NBM_TRACE", "NBM_TRACE_HOLD", "NBM_TRACE_HOLD_S"
_held = False  # this process has held once already


def phase(name: str, step: str = "start", detail: str = "") -> None:
    """Note that this process reached `step` of phase `name` (nothing unless NBM_TRACE names a file)."""
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    line = f"{time.time():.6f} {os.getpid()} {name} {step} {detail or '-'}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    global _held
    if not _held and os.environ.get(HOLD_ENV) == f"{name}:{step}":
        _held = True
        time.sleep(float(os.environ.get(HOLD_S_ENV, "5")))


def callbacks() -> list[Any]:
    """Lightning callbacks that trace the training and evaluation phases (none unless NBM_TRACE is set)."""
    if not os.environ.get(TRACE_ENV):
        return []
    import pytorch_lightning as pl

    class PhaseTrace(pl.Callback):
        """Traces `train` at each epoch's start and each step (a resumed epoch has no start), `eval` around each
        evaluation pass."""

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            phase("train")

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            phase("train")

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            phase("eval")

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            phase("eval", "end")

        def on_test_start(self, trainer: Any, pl_module: Any) -> None:
            phase("eval")

        def on_test_end(self, trainer: Any, pl_module: Any) -> None:
            phase("eval", "end")

    return [PhaseTrace()]
