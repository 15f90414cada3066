"""`python -m nbm_lightning.sweep`: write the W&B sweep files of the benchmark and start sweep agents on GPUs.

make [--preset all|smoke] [--out FILE]   the grid of 3969 canonical codes x seeds 0, 1, 2 (sweeps/all.yaml)
                                          or a 4-code smoke grid (sweeps/smoke.yaml)
make --missing DIR [--missing DIR2] --out FILE [--config-file configs/X.yaml]
                                          a sweep of only the (code, seed) pairs with no complete record
                                          of that recipe in DIRs, as grid indices (`fit --index N`)
agents SWEEP_PATH [--per-gpu K] [--gpus 0,1] [--mode inprocess|subprocess] [--log-dir DIR] [--dry-run]
                                          K agents per GPU, one GPU each (CUDA_VISIBLE_DEVICES); run the
                                          same on every machine. inprocess (default): each agent is a worker
                                          (`python -m nbm_lightning.agent`) training its runs in one process;
                                          subprocess: `wandb agent SWEEP_PATH`, one `fit` process per run.
                                          GPU ids: ints or GPU-/MIG- UUIDs; unless --dry-run they must exist
workspace ENTITY/PROJECT[/SWEEP_ID] [--name NAME] [--dry-run]
                                          create the benchmark's W&B workspace (nbm_lightning.runner.workspace;
                                          extra [workspace]); --dry-run prints its panels and keys

This module is the command line; the work is in nbm_lightning/runner/: sweep_files.py (the grids and their YAML),
missing.py (pairs without a complete record) and agents.py (GPU ids, agents' commands, launch and supervision).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli import ArgParser, run_main, write_failed
from .core.atomic import atomic_write_text
from .core.errors import UserError
from .core.validate import InvalidValue, check_int, shown
from .records.job import GRID_SIZE
from .runner import agents as gpu_agents
from .runner import missing
from .runner.sweep_files import PRESETS, PROG, SWEEPS_DIR, missing_sweep, preset, render, render_preset


def build_parser() -> ArgParser:
    """The sweep CLI: `make` and `agents`."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgParser)
    make = sub.add_parser("make", help="write a sweep file")
    make.add_argument(
        "--preset", choices=PRESETS, default="all", help="all: the whole grid; smoke: 4 codes, three short epochs"
    )
    make.add_argument(
        "--missing",
        action="append",
        metavar="RESULTS_DIR",
        help="only pairs without a complete record here (repeatable)",
    )
    make.add_argument(
        "--config-file", default=None, help="with --missing: the recipe's YAML (default: the built-in published recipe)"
    )
    make.add_argument(
        "--out", default=None, help="output file (default: sweeps/<preset>.yaml; required with --missing)"
    )
    agents = sub.add_parser("agents", help="start K W&B agents per GPU and wait for them")
    agents.add_argument("sweep_path", metavar="SWEEP_PATH", help="ENTITY/PROJECT/SWEEP_ID as printed by `wandb sweep`")
    agents.add_argument("--per-gpu", type=int, default=1, metavar="K", help="agents per GPU (default 1)")
    agents.add_argument(
        "--mode",
        choices=gpu_agents.AGENT_MODES,
        default="inprocess",
        help="inprocess: each agent trains its runs in one process (data resident, no start-up per run); "
        "subprocess: W&B's `wandb agent`, one `fit` process per run",
    )
    agents.add_argument("--gpus", default=None, help="GPU ids, e.g. 0,1 (default: $CUDA_VISIBLE_DEVICES, else all)")
    agents.add_argument(
        "--log-dir", default=None, help="write each agent's output to a file here instead of the terminal"
    )
    agents.add_argument(
        "--dry-run", action="store_true", help="print the agents' commands and environment; start nothing"
    )
    _add_workspace_parser(sub)
    return parser


def make(args: argparse.Namespace) -> int:
    """Write a preset or a missing-pairs sweep, atomically."""
    try:
        if args.out and Path(args.out).is_dir():
            raise UserError(f"bad --out {shown(args.out)}: it is a folder")
    except OSError as err:  # a name too long, a loop of links
        raise UserError(f"bad --out {shown(args.out)}: {err.strerror or type(err).__name__}") from None
    if not args.missing:
        if args.config_file:
            raise UserError("--config-file goes with --missing (the presets fix their own config)")
        out = Path(args.out or SWEEPS_DIR / f"{args.preset}.yaml")
        _write(out, render_preset(args.preset))
        print(f"wrote {out}: {_size(preset(args.preset))} runs")
        return 0
    return make_missing(args)


def make_missing(args: argparse.Namespace) -> int:
    """Write the sweep of the pairs missing from the results folders."""
    if not args.out:
        raise UserError("--missing needs --out FILE")
    folders = [Path(d) for d in args.missing]
    absent = [str(d) for d in folders if not d.is_dir()]
    if absent:
        raise UserError(f"--missing: no such folder {absent[0]!r}")
    recipe = missing.recipe_hash_of(args.config_file)
    indices = missing.missing_indices(folders, recipe)
    if not indices:
        print(
            f"nothing missing: all {GRID_SIZE} pairs have a complete record of recipe {recipe}; {args.out} not written"
        )
        return 0
    command = shlex.join(
        [
            *PROG.split(),
            "make",
            *(f"--missing={d}" for d in args.missing),
            *([f"--config-file={args.config_file}"] if args.config_file else []),
            f"--out={args.out}",
        ]
    )
    _write(args.out, render(missing_sweep(indices, args.config_file), command))
    print(f"wrote {args.out}: {len(indices)} of {GRID_SIZE} pairs missing (recipe {recipe})")
    return 0


def _write(out: str | Path, text: str) -> None:
    """Write the sweep file atomically; a failed write (full or read-only disk) is one line, nothing written."""
    try:
        atomic_write_text(out, text)
    except OSError as err:
        raise write_failed("--out", out, err) from None


def _size(config: dict[str, Any]) -> int:
    """Runs of a grid: the product of its parameters' value counts."""
    size = 1
    for param in config["parameters"].values():
        size *= len(param.get("values", [None]))
    return size


def agents(args: argparse.Namespace) -> int:
    """Plan the agents; print them (--dry-run) or run them."""
    if not gpu_agents.SWEEP_PATH_RE.match(args.sweep_path):
        raise UserError(f"bad SWEEP_PATH {args.sweep_path!r}: expected ENTITY/PROJECT/SWEEP_ID")
    try:
        per_gpu = check_int("agents per GPU", args.per_gpu, 1)
    except InvalidValue as err:
        raise UserError(f"bad --per-gpu: {err}") from None
    # ids named by --gpus or CUDA_VISIBLE_DEVICES must exist (unless --dry-run)
    given = gpu_agents.requested_gpus(args.gpus)
    if given is not None and not args.dry_run:
        gpu_agents.check_gpus_exist(*given)
    planned = gpu_agents.plan(args.sweep_path, given[1] if given else gpu_agents.visible_gpus(None), per_gpu, args.mode)
    if args.dry_run:
        for number, agent in enumerate(planned):
            print(f"agent {number}: gpu {agent.gpu} slot {agent.slot}: {agent.shell()}")
        return 0
    return gpu_agents.launch(planned, Path(args.log_dir) if args.log_dir else None)


def _add_workspace_parser(sub: Any) -> None:
    """The `workspace` subcommand."""
    parser = sub.add_parser("workspace", help="create the benchmark's W&B workspace (extra [workspace])")
    parser.add_argument("target", metavar="ENTITY/PROJECT[/SWEEP_ID]", help="the project, or one sweep of it")
    parser.add_argument("--name", default=None, help="the workspace's name (default: NAS-Bench-Macro [sweep ID])")
    parser.add_argument("--dry-run", action="store_true", help="print the panels and the keys they read; send nothing")


def workspace(args: argparse.Namespace) -> int:
    """Print the workspace (--dry-run) or create it and print its URL."""
    from .runner import workspace as ws

    target = ws.parse_target(args.target)
    if args.dry_run:
        print("\n".join(ws.describe(target, args.name)))
        return 0
    print(f"workspace saved: {ws.save(ws.build(target, args.name))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch the subcommand."""
    args = build_parser().parse_args(argv)
    return {"make": make, "agents": agents, "workspace": workspace}[args.command](args)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
