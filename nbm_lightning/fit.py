"""`python -m nbm_lightning.fit --arch CODE`: train one architecture for one seed and write its run record.

Options come from the built-in defaults (the published recipe), then `--config FILE.yaml`, then the
command line, in the `--key=value` form a W&B agent passes. `--index N` picks pair N of the full grid;
`--index A-B` (inclusive) or `--index A,B,C` trains those pairs in order in one worker process (a job array).
Ctrl-C stops after the current run's next checkpoint (twice: at the next step); rerunning resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .arch.codes import canonical
from .cli import ArgParser, arch_code, bool_arg, int_arg, run_main
from .records.job import GRID_SIZE, Job, index_to_pair, parse_indices, resolve_job
from .records.recipe import SEED_MAX, Execution, Recipe, field_names, valid_range
from .runner import requeue

PROG = "python -m nbm_lightning.fit"


def build_parser() -> ArgParser:
    """The fit CLI: run selection, then every Recipe and Execution field as --field (or --field_name)."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run selection")
    run.add_argument("--arch", type=arch_code, help="architecture code, 8 digits over {0,1,2} (e.g. 12012012)")
    seed_help = f"seed of all generators, 0..{SEED_MAX} (default: 0)"
    run.add_argument("--seed", type=int_arg("seed", 0, SEED_MAX), default=None, help=seed_help)
    run.add_argument(
        "--index",
        default=None,
        help=f"grid pair N in 0..{GRID_SIZE - 1} instead of --arch/--seed; A-B or A,B,C: those pairs in one process",
    )
    run.add_argument("--config", default=None, help="YAML file of recipe/execution fields (e.g. configs/smoke.yaml)")
    run.add_argument(
        "--force", nargs="?", const=True, default=False, type=bool_arg, help="retrain even if a complete record exists"
    )
    for cls, title in (
        (Recipe, "recipe (hashed into the run record)"),
        (Execution, "execution (recorded, not hashed)"),
    ):
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            flags = [f"--{f.name.replace('_', '-')}"] + ([f"--{f.name}"] if "_" in f.name else [])
            group.add_argument(
                *flags, dest=f.name, default=argparse.SUPPRESS, metavar="VALUE",
                help=f"(default: {f.default!r}) {f.metadata['help']}; valid: {valid_range(cls, f.name)}",
            )  # fmt: skip
    passed_back = parser.add_argument_group(
        "passed back by W&B when it requeues a run (restated keys must agree with the job; the others are ignored)"
    )
    for key in (*requeue.RESTATED_KEYS, *requeue.IGNORED_KEYS):
        passed_back.add_argument(
            f"--{key}", dest=key, default=argparse.SUPPRESS, metavar="VALUE", help=argparse.SUPPRESS
        )
    return parser


def resolve_all(args: argparse.Namespace) -> list[Job]:
    """The Jobs of parsed arguments: one, or one per index of an --index range or list (ValueError on bad input).

    A W&B requeue argv (requeue.is_requeue) resolves with this machine's execution settings, and the keys it
    restates must agree with the job.
    """
    given = vars(args)
    if not requeue.is_requeue(given):
        indices = [None] if args.index is None else parse_indices(args.index)
        return [resolve_job(given, args.arch, args.seed, i, args.config, bool(args.force)) for i in indices]
    local = {k: v for k, v in given.items() if k not in field_names(Execution)}
    arch, seed, index = _requeued_selection(args)
    job = resolve_job(local, arch, seed, index, args.config, bool(args.force))
    requeue.check(job, given)
    return [job]


def _requeued_selection(args: argparse.Namespace) -> tuple[str | None, int | None, int | None]:
    """(arch, seed, index) of a requeue argv, which may restate a sweep's --index with --arch and --seed."""
    if args.index is None:
        return args.arch, args.seed, None
    indices = parse_indices(args.index)
    if len(indices) != 1:
        raise ValueError(f"a requeued run selects one pair, got --index {args.index}")
    code, seed = index_to_pair(indices[0])
    if args.arch is not None and (canonical(args.arch), args.seed) != (code, seed):
        raise ValueError(f"--arch {args.arch} --seed {args.seed} disagree with --index {indices[0]} ({code}-s{seed})")
    return None, None, indices[0]


def resolve(args: argparse.Namespace) -> Job:
    """The Job of parsed arguments that select one run (ValueError on bad input or several runs)."""
    jobs = resolve_all(args)
    if len(jobs) != 1:
        raise ValueError(f"--index {args.index} selects {len(jobs)} runs, expected one")
    return jobs[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and resolve every job, then train them in one worker (skipping those already done)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        jobs = resolve_all(args)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    from .runner.worker import StopSignal, Worker  # torch and Lightning load only once the input is known to be good

    stop = StopSignal()
    with stop.handling():
        worker = Worker(stop)
        if len(jobs) == 1:  # exit status: records.outcome.EXIT_STATUS (0 done, 1 failed, 130 Ctrl-C, 143 preempted)
            return worker.run(jobs[0]).outcome.exit_status
        return worker.run_all(jobs)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
