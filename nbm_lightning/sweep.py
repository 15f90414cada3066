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
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .arch.codes import unique_codes
from .cli import ArgParser, run_main, write_failed
from .core.atomic import atomic_write_text
from .core.errors import UserError
from .core.validate import InvalidValue, check_int, fail, shown
from .records.job import GRID_SIZE, index_to_pair, resolve_job
from .records.outcome import Outcome
from .records.recipe import SEEDS, Execution
from .records.run_record import NewerRecordError, RecordError, RunRecord, record_files
from .records.runkeys import EVAL_ACC_KEY

PROG = "python -m nbm_lightning.sweep"
SWEEPS_DIR = Path("sweeps")  # where presets are written (relative to the repository root)
PROGRAM = "nbm_lightning/fit.py"  # W&B requires `program`; `command` runs the module instead
COMMAND = ["${env}", "${interpreter}", "-m", "nbm_lightning.fit", "${args}"]  # what each agent runs
METRIC = {"name": EVAL_ACC_KEY, "goal": "maximize"}  # logged every epoch by MacroNetModule
PROJECT_NAME = Execution().wandb_project  # sweep names start with the default W&B project
SMOKE_CODES = ("00000000", "01210210", "12012012", "22212220")  # worst, a leading 0, the README example, the best
SMOKE_CONFIG = "configs/smoke.yaml"  # the smoke sweep's --config
PRESETS = ("all", "smoke")
SWEEP_PATH_RE = re.compile(r"^[\w.-]+(/[\w.-]+){0,2}$")  # SWEEP_ID, PROJECT/SWEEP_ID or ENTITY/PROJECT/SWEEP_ID
INTERRUPTED = Outcome.STOPPED.exit_status  # exit status after Ctrl-C (130)
AGENT_MODES = ("inprocess", "subprocess")  # `agents --mode`
CUDA_ENV = "CUDA_VISIBLE_DEVICES"  # what each agent gets: its one GPU
GPU_UUID_RE = re.compile(r"(GPU|MIG)-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)*|MIG-GPU-[0-9A-Fa-f-]+/\d+/\d+")  # nvidia-smi -L forms
GPU_ID_FORMS = "an int >= 0 or a GPU-/MIG- UUID as `nvidia-smi -L` prints it (-1 would hide every GPU)"


# ---------------------------------------------------------------- sweep files


def grid(parameters: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """A W&B grid sweep over `parameters` running the fit job."""
    return {
        "name": name,
        "description": description,
        "program": PROGRAM,
        "command": list(COMMAND),
        "method": "grid",
        "metric": dict(METRIC),
        "parameters": parameters,
    }


def preset(which: str) -> dict[str, Any]:
    """The 'all' grid (every canonical code x every seed) or the 'smoke' grid (4 codes, seed 0, smoke config)."""
    if which == "all":
        params = {"arch": {"values": list(unique_codes())}, "seed": {"values": list(SEEDS)}}
        return grid(
            params,
            PROJECT_NAME,
            f"NAS-Bench-Macro: {len(unique_codes())} canonical codes x seeds {list(SEEDS)} = {GRID_SIZE} runs",
        )
    params = {"arch": {"values": list(SMOKE_CODES)}, "seed": {"values": [SEEDS[0]]}, "config": {"value": SMOKE_CONFIG}}
    return grid(
        params,
        f"{PROJECT_NAME}-smoke",
        f"Smoke test: {len(SMOKE_CODES)} codes, three short epochs each ({SMOKE_CONFIG})",
    )


def missing_sweep(indices: Sequence[int], config_file: str | None) -> dict[str, Any]:
    """A grid over `index` (fit --index N) for the given grid pairs, with the recipe's --config."""
    params: dict[str, Any] = {"index": {"values": list(indices)}}
    if config_file:
        params["config"] = {"value": config_file}
    return grid(params, f"{PROJECT_NAME}-missing", f"{len(indices)} (code, seed) pairs without a complete record")


class _Dumper(yaml.SafeDumper):
    """Block-style YAML whose digit strings are always quoted (01201201 unquoted is an octal int in YAML 1.1)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        """Indent list items under their key (PyYAML's default puts them flush with it)."""
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'" if text.isdigit() else None)


_Dumper.add_representer(str, _represent_str)


def render(config: dict[str, Any], command: str) -> str:
    """The YAML text of a sweep, with a header naming the command that generates it."""
    header = (
        f"# Generated by `{command}` (nbm_lightning/sweep.py): do not edit, regenerate.\n"
        f"# Start it with `wandb sweep <this file>`, then `{PROG} agents ENTITY/PROJECT/SWEEP_ID` on every machine.\n"
    )
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def render_preset(which: str) -> str:
    """The text of sweeps/<which>.yaml."""
    return render(preset(which), f"{PROG} make" + ("" if which == "all" else f" --preset {which}"))


# ---------------------------------------------------------------- missing pairs


def recipe_hash_of(config_file: str | None) -> str:
    """The recipe hash fit would use with `--config config_file` (the built-in recipe without one)."""
    try:
        return resolve_job({}, index=0, config=config_file).recipe.hash()
    except (TypeError, ValueError) as err:
        raise UserError(f"bad --config-file: {err}") from None


def done_pairs(folders: Sequence[Path], recipe_hash: str) -> set[tuple[str, int]]:
    """(canonical, seed) of every record complete for `recipe_hash` (RunRecord.problem: what export uses).

    An unreadable file, a failed run, or one the export would reject (a file name, code or recipe hash that
    disagree, truncated, impossible numbers, mis-measured) is not done; each unsound or unreadable one is named
    in a line (failed runs and other recipes' runs are not). A *.json that is not a regular file is skipped,
    named. UserError on a record of a newer schema version.
    """
    from .arch.complexity import complexity_table

    expected = complexity_table(unique_codes()).__getitem__
    done = set()
    for folder in folders:
        paths, others = record_files(folder)
        for line in others:
            print(line, file=sys.stderr)
        for path in paths:
            try:
                record = RunRecord.read(path)
            except NewerRecordError as err:
                raise UserError(str(err)) from None
            except RecordError as err:
                print(f"not done: {err}", file=sys.stderr)
                continue
            found = record.problem(recipe_hash, expected)
            if found is None:
                done.add(record.pair)
            elif found[0] not in ("status", "recipe"):
                print(f"not done: {path}: {found[1]}", file=sys.stderr)
    return done


def missing_indices(folders: Sequence[Path], recipe_hash: str) -> list[int]:
    """Grid indices N (fit --index N) whose pair has no complete record of the recipe."""
    done = done_pairs(folders, recipe_hash)
    return [n for n in range(GRID_SIZE) if index_to_pair(n) not in done]


# ---------------------------------------------------------------- agents


@dataclass(frozen=True)
class Agent:
    """One agent process to start."""

    gpu: str  # its CUDA_VISIBLE_DEVICES (one GPU)
    slot: int  # its number on that GPU, 0..K-1
    argv: tuple[str, ...]  # the command
    env: tuple[tuple[str, str], ...]  # variables set on top of the inherited environment

    def shell(self) -> str:
        """The agent as one shell line (`$PATH` left for the shell to expand)."""
        assigns = " ".join(f"{k}={shlex.quote(v) if k != 'PATH' else v}" for k, v in self.env)
        return f"{assigns} {shlex.join(self.argv)}"

    def environ(self) -> dict[str, str]:
        """The full environment it runs with."""
        env = dict(os.environ)
        env.update({k: v.replace("$PATH", os.environ.get("PATH", "")) for k, v in self.env})
        return env


def visible_gpus(option: str | None) -> list[str]:
    """GPUs from --gpus, else $CUDA_VISIBLE_DEVICES, else every device torch sees (UserError on none or a bad id)."""
    given = requested_gpus(option)
    if given is not None:
        return given[1]
    import torch

    gpus = [str(i) for i in range(torch.cuda.device_count())]
    if not gpus:
        raise UserError(f"no GPU visible: pass --gpus 0,1,... (or set {CUDA_ENV})")
    return gpus


def requested_gpus(option: str | None) -> tuple[str, list[str]] | None:
    """(where they come from, the ids) of --gpus, else of a non-empty $CUDA_VISIBLE_DEVICES; None where neither."""
    if option is not None:
        return "--gpus", parse_gpu_ids("--gpus", option)
    text = os.environ.get(CUDA_ENV, "")
    return (CUDA_ENV, parse_gpu_ids(CUDA_ENV, text)) if text.strip() else None


def parse_gpu_ids(source: str, text: str) -> list[str]:
    """Distinct GPU ids separated by commas: ints >= 0 or GPU-/MIG- UUIDs (UserError naming `source`)."""
    try:
        ids = [_gpu_id(g.strip()) for g in text.split(",")]
        if len(set(ids)) != len(ids):
            raise fail("GPU ids", text, "distinct ids separated by commas, e.g. 0,1")
    except InvalidValue as err:
        raise UserError(f"bad {source}: {err}") from None
    return ids


def _gpu_id(gpu: str) -> str:
    """`gpu` as a CUDA device id (an int without leading zeros, or a GPU-/MIG- UUID); InvalidValue otherwise."""
    if re.fullmatch(r"[0-9]+", gpu):
        return str(int(gpu))
    if not GPU_UUID_RE.fullmatch(gpu):
        raise fail("GPU id", gpu, GPU_ID_FORMS)
    return gpu


def check_gpus_exist(source: str, gpus: Sequence[str]) -> None:
    """UserError naming the first id that is no GPU of this machine: ints against the GPUs torch counts without
    CUDA_VISIBLE_DEVICES, UUIDs (or their prefixes, as CUDA allows) against `nvidia-smi -L`, where it runs."""
    ints, uuids = [g for g in gpus if g.isdigit()], [g for g in gpus if not g.isdigit()]
    count = physical_gpu_count() if ints else 0
    absent = next((g for g in ints if int(g) >= count), None)
    if absent is not None:
        raise UserError(f"bad {source}: {fail('GPU id', absent, f'one of the {count} GPU(s) torch sees here')}")
    listed = gpu_uuids() if uuids else None
    absent = next((g for g in uuids if listed is not None and not any(u.startswith(g) for u in listed)), None)
    if absent is not None:
        known = f"the UUIDs `nvidia-smi -L` lists ({', '.join(listed or []) or 'none'})"
        raise UserError(f"bad {source}: {fail('GPU id', absent, known)}")


def physical_gpu_count() -> int:
    """The machine's GPUs as torch counts them without CUDA_VISIBLE_DEVICES (in a child process where it is set)."""
    if CUDA_ENV not in os.environ:
        import torch

        return torch.cuda.device_count()
    env = {k: v for k, v in os.environ.items() if k != CUDA_ENV}
    code = "import torch; print(torch.cuda.device_count())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"cannot count the GPUs ({sys.executable} -c {code!r}): {last}")
    return int(proc.stdout)


def gpu_uuids() -> list[str] | None:
    """The GPU and MIG UUIDs `nvidia-smi -L` lists, or None where it is not available (UUIDs then go unchecked)."""
    found = shutil.which("nvidia-smi")
    try:
        proc = subprocess.run([found, "-L"], capture_output=True, text=True, timeout=60) if found else None
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is None or proc.returncode != 0:
        print("GPU UUIDs not checked: `nvidia-smi -L` is not available", file=sys.stderr)
        return None
    return re.findall(r"UUID:\s*((?:GPU|MIG)-[^\s)]+)", proc.stdout)


def _python_path_env() -> tuple[tuple[str, str], ...]:
    """PATH with this interpreter's folder first, where plain `python` (what the agent runs) is another one."""
    here = Path(sys.executable).parent
    found = shutil.which("python")
    return () if found and Path(found).parent == here else (("PATH", f"{here}{os.pathsep}$PATH"),)


def plan(sweep_path: str, gpus: Sequence[str], per_gpu: int, mode: str = "inprocess") -> list[Agent]:
    """K agents per GPU, GPU-major: in-process workers (`python -m nbm_lightning.agent`) or W&B's CLI agent."""
    program = ("nbm_lightning.agent",) if mode == "inprocess" else ("wandb", "agent")
    argv = (sys.executable, "-m", *program, sweep_path)
    extra = _python_path_env() if mode == "subprocess" else ()
    return [Agent(gpu, k, argv, (("CUDA_VISIBLE_DEVICES", gpu),) + extra) for gpu in gpus for k in range(per_gpu)]


def launch(agents: Sequence[Agent], log_dir: Path | None) -> int:
    """Start the agents, print one line each, wait for all; forward Ctrl-C / SIGTERM to them."""
    procs, logs = [], []
    try:
        for number, agent in enumerate(agents):
            log = _log_file(log_dir, agent) if log_dir else None
            logs += [log] if log else []
            procs.append(
                subprocess.Popen(
                    agent.argv,
                    env=agent.environ(),
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                    start_new_session=True,
                )
            )  # the terminal's Ctrl-C reaches only us: forwarded once
            where = f", log {log.name}" if log else ""
            print(
                f"agent {number}: gpu {agent.gpu} slot {agent.slot} pid {procs[-1].pid}{where}: {agent.shell()}",
                flush=True,
            )
    except OSError as err:
        for proc in procs:
            proc.terminate()
        raise UserError(f"cannot start agent {len(procs)}: {err}") from None
    try:
        return supervise(procs)
    finally:
        for log in logs:
            log.close()


def _log_file(log_dir: Path, agent: Agent) -> Any:
    """An append-mode log file per agent, named by host, GPU and slot."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return open(log_dir / f"agent-{socket.gethostname()}-gpu{agent.gpu}-{agent.slot}.log", "a")


def supervise(procs: Sequence[subprocess.Popen]) -> int:
    """Wait for every process; the first SIGINT is forwarded as SIGINT, later ones and SIGTERM as SIGTERM."""
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        """Signal handler: pass the signal on to every agent still running."""
        received.append(signum)
        sig = signal.SIGINT if received == [signal.SIGINT] else signal.SIGTERM
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return INTERRUPTED if received else int(any(codes))


# ---------------------------------------------------------------- command line


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
        choices=AGENT_MODES,
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
    recipe = recipe_hash_of(args.config_file)
    indices = missing_indices(folders, recipe)
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
    if not SWEEP_PATH_RE.match(args.sweep_path):
        raise UserError(f"bad SWEEP_PATH {args.sweep_path!r}: expected ENTITY/PROJECT/SWEEP_ID")
    try:
        per_gpu = check_int("agents per GPU", args.per_gpu, 1)
    except InvalidValue as err:
        raise UserError(f"bad --per-gpu: {err}") from None
    given = requested_gpus(args.gpus)  # ids named by --gpus or CUDA_VISIBLE_DEVICES must exist (unless --dry-run)
    if given is not None and not args.dry_run:
        check_gpus_exist(*given)
    planned = plan(args.sweep_path, given[1] if given else visible_gpus(None), per_gpu, args.mode)
    if args.dry_run:
        for number, agent in enumerate(planned):
            print(f"agent {number}: gpu {agent.gpu} slot {agent.slot}: {agent.shell()}")
        return 0
    return launch(planned, Path(args.log_dir) if args.log_dir else None)


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
