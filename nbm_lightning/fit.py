"""`python -m nbm_lightning.fit --arch CODE`: train one architecture for one seed and write its run record.

Options come from the built-in defaults (the published recipe), then `--config FILE.yaml`, then the
command line, in the `--key=value` form a W&B agent passes. `--index N` picks pair N of the full grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .cli import ArgParser, arch_code, bool_arg, run_main
from .config import SEED_MAX, Execution, Recipe, valid_range
from .job import GRID_SIZE, Job, done_record, resolve_job

PROG = "python -m nbm_lightning.fit"


def build_parser() -> ArgParser:
    """The fit CLI: run selection, then every Recipe and Execution field as --field (or --field_name)."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run selection")
    run.add_argument("--arch", type=arch_code, help="architecture code, 8 digits over {0,1,2} (e.g. 12012012)")
    run.add_argument("--seed", type=int, default=None, help=f"seed of all generators, 0..{SEED_MAX} (default: 0)")
    run.add_argument(
        "--index", type=int, default=None, help=f"grid pair N in 0..{GRID_SIZE - 1} instead of --arch/--seed"
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
    return parser


def resolve(args: argparse.Namespace) -> Job:
    """The Job of parsed arguments (ValueError on bad input)."""
    return resolve_job(vars(args), args.arch, args.seed, args.index, args.config, bool(args.force))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, resolve, skip if done, else train."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        job = resolve(args)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    done = done_record(job)
    if done is not None:
        print(
            f"{job.name}: a complete record of this recipe exists at {job.record_path} "
            f"(test acc final {done.test_acc_final:.2f}%); nothing to do (--force retrains)"
        )
        return 0
    from .train import train  # torch and Lightning load only once the input is known to be good

    return train(job)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
