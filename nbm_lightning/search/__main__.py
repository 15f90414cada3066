"""`python -m nbm_lightning.search {run,plot,table}`: search baselines on the benchmark, their curves and table."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..arch.codes import unique_codes
from ..bench.formats import GET_PUBLISHED
from ..bench.table import ACC_METRICS, Benchmark
from ..cli import ArgParser, int_arg, run_main
from ..core.errors import UserError
from .interop import PREFIX
from .oracle import FILE_SCORES, constrain, observation, oracle
from .runs import ALGORITHMS, TABLE_BUDGETS, read_runs, regrets, run_trials, runs_document, table_lines, write_runs
from .runs import algorithm as find_algorithm

PROG = "python -m nbm_lightning.search"
LATENCY = "latency"  # the free score a cost file's latencies (ms, batch 1, median) become
SHOW_FRONT = 12  # Pareto-set members printed (all are in the runs file)


def _cmd_run(args: argparse.Namespace) -> int:
    """`run`: trials of one algorithm, written as a runs file."""
    if args.max_latency_ms is not None and args.cost_file is None:
        raise UserError(f"--max-latency-ms {args.max_latency_ms:g} needs --cost-file (the measured latencies)")
    bench = Benchmark.load(args.file)
    split, mode = args.observe
    scores = {} if args.cost_file is None else {LATENCY: _latencies(bench, args.cost_file)}
    if args.proxies_file is not None:
        scores.update(_proxy_scores(bench, args.proxies_file))
    try:
        space = oracle(bench, mode, args.metric, args.epoch, split, scores)
    except ValueError as err:  # a metric the file does not hold, an epoch beyond its curves
        raise UserError(str(err)) from None
    if args.max_latency_ms is not None:
        space = constrain(space, LATENCY, args.max_latency_ms)
        feasible = space.constraint["feasible"]
        if args.budget > feasible:
            raise UserError(f"--budget {args.budget} exceeds the {feasible} networks within --max-latency-ms "
                            f"{args.max_latency_ms:g}")  # fmt: skip
    if args.cost is not None and args.cost not in space.scores:
        hint = "" if args.cost_file else f" ({LATENCY}: with --cost-file)"
        raise UserError(f"invalid --cost {args.cost!r}: expected one of {', '.join(space.scores)}{hint}")
    config = _config(args)
    trials = run_trials(space, args.algo, args.budget, range(args.seed, args.seed + args.trials), config)
    document = runs_document(space, args.algo, args.budget, trials, bench.sha256, config, args.cost)
    try:
        write_runs(args.out, document)
    except OSError as err:
        raise UserError(f"cannot write {args.out!r}: {err.strerror or err}") from None
    final = regrets(document)[:, -1].mean()
    limit = space.constraint
    within = "" if limit is None else f" within {limit['score']} <= {limit['max']:g} ({limit['feasible']} networks)"
    print(f"{args.algo}: {args.trials} trials of budget {args.budget} ({mode}, observed {split}): mean regret "
          f"{final:.3f} pp on {space.report}{within} -> {args.out}")  # fmt: skip
    if args.cost is not None:
        front = document["trials"][0]["pareto"]
        shown = ", ".join(f"{p['code']} {p['observed']:.2f} % {p[args.cost]:.4g}" for p in front[:SHOW_FRONT])
        more = f", ... ({len(front) - SHOW_FRONT} more in the runs file)" if len(front) > SHOW_FRONT else ""
        print(f"Pareto set of trial {args.seed} (observed accuracy up, {args.cost} down), {len(front)} networks: "
              f"{shown}{more}")  # fmt: skip
    return 0


def _latencies(bench: Benchmark, path: str) -> dict[str, float]:
    """code -> median batch-1 latency (ms) of every network of `bench` from a cost file (counts checked)."""
    return dict(zip(bench.codes, bench.costs(path, "latency_ms", 1).tolist()))


def _proxy_scores(bench: Benchmark, path: str) -> dict[str, dict[str, float]]:
    """proxy -> {code: its mean over seeds} of every proxy a proxies file holds (beyond FLOPs and params, which the
    benchmark holds): each must be defined for every network of `bench`."""
    from ..zerocost import proxyfile  # no torch: the format and its reader only

    held = proxyfile.load(path)
    absent = [code for code in bench.codes if code not in held.scores]
    if absent:
        raise UserError(f"{path} scores {len(bench.codes) - len(absent)} of the {len(bench.codes)} networks (e.g. not "
                        f"{absent[0]}): a proxy ranks every network, so score them all")  # fmt: skip
    scores = {}
    for proxy in (p for p in held.settings.proxies if p not in FILE_SCORES):
        column = held.column(proxy, list(bench.codes))
        undefined = [code for code, value in zip(bench.codes, column) if value is None]
        if undefined:
            raise UserError(f"{path}: proxy {proxy} is undefined (not finite) for {len(undefined)} networks, e.g. "
                            f"{undefined[0]}: it cannot rank them")  # fmt: skip
        scores[proxy] = dict(zip(bench.codes, column))
    return scores


def _config(args: argparse.Namespace) -> Any:
    """The algorithm's config with --by (ranked) or --cost (Optuna) applied; None: its default."""
    chosen = find_algorithm(args.algo)
    if args.by is not None and args.algo != "ranked":
        raise UserError(f"--by {args.by} applies to --algo ranked only")
    if args.by is not None:
        return dataclasses.replace(chosen.config, by=args.by)
    optuna = args.cost is not None and args.algo.startswith(PREFIX)  # the study's second objective
    return dataclasses.replace(chosen.config, cost=args.cost) if optuna else None


def _read_all(paths: Sequence[str]) -> list[dict]:
    """Runs files, all of one benchmark (the same content hash)."""
    files = [read_runs(path) for path in paths]
    hashes = {f["benchmark"]["sha256"] for f in files}
    if len(hashes) > 1:
        raise UserError(f"runs files of different benchmarks (sha256 {', '.join(sorted(h[:12] for h in hashes))})")
    return files


def _cmd_plot(args: argparse.Namespace) -> int:
    """`plot`: anytime curves of runs files in one PNG."""
    from .plots import plot_anytime

    files = _read_all(args.runs)
    try:
        print(plot_anytime(files, args.out))
    except OSError as err:
        raise UserError(f"cannot write {args.out!r}: {err.strerror or err}") from None
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    """`table`: regret and rank at fixed budgets."""
    print("\n".join(table_lines(_read_all(args.runs))))
    return 0


def _algo(name: str) -> str:
    """An algorithm name as argparse's type (an unknown one: exit status 2 naming those available)."""
    try:
        return find_algorithm(name).name
    except (ValueError, UserError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(text: str) -> float:
    """argparse type of a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive number (milliseconds)")
    return value


def _observe(text: str) -> tuple[str, str]:
    """argparse type of --observe: (split, mode)."""
    try:
        return observation(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> ArgParser:
    """The search command line: run, plot, table."""
    parser = ArgParser(prog=PROG, description="Search baselines on the NAS-Bench-Macro benchmark.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,plot,table}")
    run = sub.add_parser("run", help="trials of one search algorithm -> a runs file (JSON)")
    run.add_argument("--algo", required=True, type=_algo, help=f"{', '.join(ALGORITHMS)} or {PREFIX}SAMPLER (Optuna's)")
    run.add_argument(
        "--by", help="ranked: the score ranked, descending: flops (default), params, or a proxy of --proxies-file",
    )  # fmt: skip
    run.add_argument("--proxies-file", help="a proxies file of every network (python -m nbm_lightning.proxies): "
                     "its proxies become scores --by and --cost can name")  # fmt: skip
    run.add_argument(
        "--cost", help=f"multi-objective: each trial's Pareto set of observed accuracy (up) and this score (down): "
        f"flops, params, or {LATENCY} (with --cost-file); {PREFIX}SAMPLER also minimises it as a second objective",
    )  # fmt: skip
    run.add_argument("--cost-file", help=f"a cost file of every network: its batch-1 latency is the score {LATENCY}")
    run.add_argument(
        "--max-latency-ms", type=_positive, metavar="MS",
        help="networks whose latency (--cost-file) exceeds MS are never queried; regret among those within",
    )  # fmt: skip
    run.add_argument("--budget", required=True, type=int_arg("budget", 1, len(unique_codes())), help="queries")
    run.add_argument("--trials", type=int_arg("trials", 1), default=100, help="independent runs (default 100)")
    run.add_argument("--seed", type=int_arg("seed", 0), default=0, help="trial i uses seed SEED + i (default 0)")
    run.add_argument(
        "--observe", type=_observe, default=("test", "seed"), metavar="[SPLIT,]MODE",
        help="MODE: one random seed (seed, default) or the mean (mean); SPLIT: the split observed, test (default) or "
        "val (model selection on validation; the incumbent is always reported on test), e.g. val or val,mean",
    )  # fmt: skip
    run.add_argument("--metric", choices=ACC_METRICS, help="accuracy observed and judged (default: the file's)")
    run.add_argument("--epoch", type=int_arg("epoch", 0), help="observe the accuracy after this epoch (curves)")
    run.add_argument("--out", required=True, help="runs file to write (JSON)")
    run.add_argument("--file", help=f"benchmark JSON (default: {GET_PUBLISHED})")
    plot = sub.add_parser("plot", help="anytime curves of runs files (one PNG)")
    plot.add_argument("runs", nargs="+", metavar="RUNS", help="runs files of one benchmark")
    plot.add_argument("--out", required=True, help="PNG file to write")
    table = sub.add_parser("table", help=f"regret and rank at budgets {', '.join(map(str, TABLE_BUDGETS))}")
    table.add_argument("runs", nargs="+", metavar="RUNS", help="runs files of one benchmark")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"run": _cmd_run, "plot": _cmd_plot, "table": _cmd_table}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one search subcommand."""
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
