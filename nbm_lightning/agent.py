"""`python -m nbm_lightning.agent SWEEP_PATH`: a W&B sweep agent that trains its runs in this one process.

`wandb.agent(sweep_id, function=...)` asks the sweep for a run, writes the run's parameters to a file, sets
`WANDB_SWEEP_ID`, `WANDB_RUN_ID` and `WANDB_SWEEP_PARAM_PATH`, and calls the function on a new thread. The
function turns the parameters into the argv W&B's command-line agent would pass to `fit`
(`create_sweep_command_args`), resolves it with fit's own parser, and trains the job with a `Worker` that
keeps the data resident between runs. Signal handlers stay in the main thread (only it can have them): Ctrl-C
there tells the run thread to stop after its next checkpoint, and the agent to take no further run.
`python -m nbm_lightning.sweep agents SWEEP_PATH --per-gpu K` starts K of these per GPU.
"""

from __future__ import annotations

import _thread
import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .cli import ArgParser, int_arg, run_main
from .core.errors import UserError
from .fit import build_parser as fit_parser
from .fit import resolve
from .records.outcome import Outcome
from .runner.worker import StopSignal, Worker

PROG = "python -m nbm_lightning.agent"
PARAM_PATH_ENV = "WANDB_SWEEP_PARAM_PATH"  # set by wandb's agent: the run's parameters (W&B config YAML)


class SweepRunFailed(Exception):
    """A sweep run that failed (its record says why); W&B's agent counts it as an errored run."""


def sweep_run_argv(param_path: str) -> list[str]:
    """The `fit` argv of a sweep run: its parameters as W&B's command-line agent passes them (`--key=value`)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
    from wandb.sdk.lib import config_util

    params = config_util.dict_from_config_file(param_path, must_exist=True) or {}
    return list(create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})["args"])


def run_function(worker: Worker) -> Callable[[], None]:
    """The function wandb.agent calls once per run, on a run thread (the environment names the run)."""

    def run() -> None:
        if worker.stop.stopping():  # Ctrl-C or preemption arrived between runs: take no more
            return _end_agent(worker)
        argv = sweep_run_argv(os.environ[PARAM_PATH_ENV])
        try:
            job = resolve(fit_parser().parse_args(argv))
        except (TypeError, ValueError, SystemExit) as err:
            raise SweepRunFailed(f"bad sweep parameters {argv}: {err}") from None
        result = worker.run(job)
        if result.outcome in (Outcome.STOPPED, Outcome.PREEMPTED):  # ended (W&B knows it preempted): no more runs
            _end_agent(worker)
        elif result.outcome == Outcome.FAILED:
            raise SweepRunFailed(f"{job.name}: {result.error or 'failed (see its record)'}") from None

    return run


def _end_agent(worker: Worker) -> None:
    """Make wandb.agent's loop (in the main thread) end after this run: a KeyboardInterrupt there."""
    worker.stop.finished.set()
    _thread.interrupt_main()


def split_sweep_path(path: str) -> tuple[str | None, str | None, str]:
    """(entity, project, sweep id) of SWEEP_ID, PROJECT/SWEEP_ID or ENTITY/PROJECT/SWEEP_ID."""
    parts = path.split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise UserError(f"bad SWEEP_PATH {path!r}: expected ENTITY/PROJECT/SWEEP_ID")
    return (None,) * (3 - len(parts)) + tuple(parts)  # type: ignore[return-value]


def build_parser() -> ArgParser:
    """The agent CLI."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_path", metavar="SWEEP_PATH", help="ENTITY/PROJECT/SWEEP_ID as printed by `wandb sweep`")
    parser.add_argument("--count", type=int_arg("count", 1), default=None, help="stop after N runs (default: never)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep's runs in this process until the sweep is done, --count runs, or Ctrl-C."""
    import wandb

    args = build_parser().parse_args(argv)
    entity, project, sweep_id = split_sweep_path(args.sweep_path)
    stop = StopSignal()
    with stop.handling():
        wandb.agent(sweep_id, function=run_function(Worker(stop)), entity=entity, project=project, count=args.count)
    if stop.preempt.is_set():
        return Outcome.PREEMPTED.exit_status
    return Outcome.STOPPED.exit_status if stop.soon.is_set() else 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
