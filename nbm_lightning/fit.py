"""`python -m nbm_lightning.fit --arch CODE`: train one architecture for one seed and write its run record.

Options come from the built-in defaults (the published recipe), then `--config FILE.yaml`, then the
command line, in the `--key=value` form a W&B agent passes. `--index N` picks pair N of the full grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import records
from .cli import ArgParser, UserError, arch_code, run_main
from .config import SEEDS, Execution, Recipe, coerce, field_names, load_yaml, split_overrides
from .search_space import canonical, unique_codes

PROG = "python -m nbm_lightning.fit"
GRID_SIZE = len(SEEDS) * len(unique_codes())  # 11,907 (canonical code, seed) pairs


@dataclass(frozen=True)
class Job:
    """One training run, fully resolved from the command line."""

    arch: str  # the code as given (validated)
    seed: int  # the run's seed (all generators)
    recipe: Recipe  # hashed training recipe
    execution: Execution  # how to run it
    force: bool  # retrain even where a complete record exists

    @property
    def canonical(self) -> str:
        return canonical(self.arch)

    @property
    def name(self) -> str:
        return records.run_name(self.canonical, self.seed)

    @property
    def record_path(self) -> Path:
        return records.record_path(self.execution.results_dir, self.canonical, self.seed)

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.execution.ckpt_dir) / f"{self.name}-{self.recipe.hash()}"


def index_to_pair(index: int) -> tuple[str, int]:
    """Grid pair N -> (canonical code, seed), with N = len(SEEDS) * position in unique_codes() + seed."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < GRID_SIZE:
        raise ValueError(f"invalid index {index!r}: expected an int in 0..{GRID_SIZE - 1}")
    return unique_codes()[index // len(SEEDS)], SEEDS[index % len(SEEDS)]


def build_parser() -> ArgParser:
    """The fit CLI: run selection, then every Recipe and Execution field as --field (or --field_name)."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run selection")
    run.add_argument("--arch", type=arch_code, help="architecture code, 8 digits over {0,1,2} (e.g. 12012012)")
    run.add_argument("--seed", type=int, default=None, help="seed of all generators (default: 0)")
    run.add_argument(
        "--index",
        type=int,
        default=None,
        help=f"grid pair N in 0..{GRID_SIZE - 1} instead of --arch/--seed (job arrays)",
    )
    run.add_argument("--config", default=None, help="YAML file of recipe/execution fields (e.g. configs/smoke.yaml)")
    run.add_argument(
        "--force", nargs="?", const=True, default=False, type=_bool_arg, help="retrain even if a complete record exists"
    )
    for cls, title in ((Recipe, "recipe (hashed into the run record)"), (Execution, "execution")):
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(cls):
            flags = [f"--{f.name.replace('_', '-')}"] + ([f"--{f.name}"] if "_" in f.name else [])
            choices = f" {{{','.join(f.metadata['choices'])}}}" if f.metadata.get("choices") else ""
            group.add_argument(
                *flags,
                dest=f.name,
                default=argparse.SUPPRESS,
                metavar="VALUE",
                help=f"{f.metadata['help']}{choices} (default: {f.default!r})",
            )
    return parser


def _bool_arg(text: str) -> bool:
    from .config import parse_bool

    try:
        return parse_bool(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def resolve(args: argparse.Namespace) -> Job:
    """Merge defaults, --config and CLI fields into a validated Job (ValueError on bad input)."""
    arch, seed = _select(args)
    values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k in field_names(Recipe) + field_names(Execution)})
    recipe_values, exec_values = split_overrides(values)
    recipe = Recipe(**{k: coerce(Recipe, k, v) for k, v in recipe_values.items()})
    execution = Execution(**{k: coerce(Execution, k, v) for k, v in exec_values.items()})
    return Job(arch=arch, seed=seed, recipe=recipe, execution=execution, force=bool(args.force))


def _select(args: argparse.Namespace) -> tuple[str, int]:
    """(arch, seed) from --arch/--seed or --index."""
    if args.index is not None:
        if args.arch is not None or args.seed is not None:
            raise ValueError("--index selects both code and seed: do not combine it with --arch or --seed")
        return index_to_pair(args.index)
    if args.arch is None:
        raise ValueError("one of --arch CODE or --index N is required")
    seed = 0 if args.seed is None else args.seed
    if seed < 0:
        raise ValueError(f"invalid seed {seed!r}: expected an int >= 0")
    return args.arch, seed


def existing_record(job: Job) -> dict[str, Any] | None:
    """The complete record of this job's recipe if one exists; UserError if a complete one of another recipe does."""
    path = job.record_path
    if job.force or not path.exists():
        return None
    try:
        record = records.read_record(path)
    except ValueError:
        return None  # a corrupt or foreign file is retrained over (atomically), never trusted
    if record.get("status") != records.COMPLETE:
        return None
    if record.get("recipe_hash") != job.recipe.hash():
        raise UserError(
            f"{path} holds a complete run of another recipe (hash {record.get('recipe_hash')}, this one {job.recipe.hash()}): "
            "use another --results-dir, or --force to overwrite"
        )
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, resolve, skip if done, else train."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        job = resolve(args)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    done = existing_record(job)
    if done is not None:
        print(
            f"{job.name}: a complete record of this recipe exists at {job.record_path} "
            f"(test acc final {done['test_acc_final']:.2f}%); nothing to do (--force retrains)"
        )
        return 0
    from .train import train

    return train(job)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
