"""`python -m nbm_lightning.bench {query,top,compare,plot,cost}`: the benchmark from the shell."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..cli import ArgParser, arch_code, int_arg, run_main
from ..core.errors import UserError
from .compare import Comparison, compare
from .formats import GET_PUBLISHED
from .published import ArchResult
from .table import METRICS, SPLITS, Benchmark

PROG = "python -m nbm_lightning.bench"


def _jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, nan to None: plain, valid JSON."""
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _record_lines(code: str, rec: ArchResult) -> list[str]:
    """A record as `name value` lines."""
    seeds = "  ".join(f"{a:.2f}" for a in rec.test_acc)
    return [
        f"code       {code}",
        f"canonical  {rec.code}{'' if code == rec.code else '  (non-canonical input)'}",
        f"test_acc   {seeds}  (%, seeds 0..{len(rec.test_acc) - 1})",
        f"mean_acc   {rec.mean_acc:.2f} %",
        f"std        {rec.std:.3f} pp (ddof=0)",
        f"params     {rec.params:,}",
        f"flops      {rec.flops:,} MACs",
    ]


def _table_lines(records: Sequence[ArchResult]) -> list[str]:
    """Records as a ranked table (accuracy in %, params in M, FLOPs in M MACs)."""
    lines = [f"{'rank':>4}  {'code':<8}  {'mean_acc%':>9}  {'std':>5}  {'params_M':>8}  {'flops_M':>8}"]
    for rank, rec in enumerate(records, 1):
        lines.append(
            f"{rank:>4}  {rec.code:<8}  {rec.mean_acc:>9.2f}  {rec.std:>5.2f}  "
            f"{rec.params / 1e6:>8.3f}  {rec.flops / 1e6:>8.2f}"
        )
    return lines


def _comparison_lines(c: Comparison) -> list[str]:
    """A comparison as `name value` lines, a ranking verdict against the noise ceiling and a level verdict."""
    lines = [
        f"a                  {c.a}  ({c.seeds_a} seeds, {c.metric_a})",
        f"b                  {c.b}  ({c.seeds_b} seeds, {c.metric_b})",
        f"split              {c.split} in both files (like with like)",
        f"shared archs       {c.n_shared}",
        f"Kendall tau-b      {c.kendall_tau:.4f} +- {c.tau_se:.4f} (bootstrap se over architectures)",
        f"Spearman rho       {c.spearman_rho:.4f}",
        f"noise ceiling tau  {c.ceiling_tau:.4f} +- {c.ceiling_sd:.4f} (two independent benchmarks of "
        f"{c.seeds_a} and {c.seeds_b} seeds)",
        f"seed-to-seed tau   a {c.noise_tau_a:.4f}  b {c.noise_tau_b:.4f}  (single seeds within each file)",
        f"mean diff a-b      {c.mean_diff:+.4f} pp (seed-noise sd {c.level_sd:.4f} pp)",
        f"mean |diff|        {c.mean_abs_diff:.4f} pp",
        f"max |diff|         {c.max_abs_diff:.4f} pp",
    ]
    lines += [f"{f'top-{k} overlap':<18} {v:.3f}" for k, v in c.top_k_overlap.items()]
    rank = {None: "no verdict", True: "a and b rank within seed noise", False: "a and b rank apart beyond seed noise"}
    level = {None: "no verdict", True: "same level within seed noise", False: "levels differ beyond seed noise"}
    lines += [f"ranking verdict    {rank[c.within_noise]}", f"level verdict      {level[c.same_level]}"]
    return lines + [f"note               {note}" for note in c.notes]


def _emit(lines: list[str], payload: Any, as_json: bool) -> int:
    """Print a table, or JSON with --json."""
    print(json.dumps(_jsonable(payload), indent=1) if as_json else "\n".join(lines))
    return 0


def _load(path: str | None, notes: list[str]) -> Benchmark:
    """Benchmark.load, its notes kept for after the answer (an error is then the only line on stderr)."""
    bench = Benchmark.load(path, quiet=True)
    notes += bench.notes
    return bench


def _cmd_query(args: argparse.Namespace) -> int:
    """`query CODE`: one record."""
    rec = _load(args.file, args.notes).query(args.code)
    return _emit(_record_lines(args.code, rec), {"query": args.code, **dataclasses.asdict(rec)}, args.json)


def _cmd_top(args: argparse.Namespace) -> int:
    """`top K [--by METRIC]`: a ranked table."""
    records = _load(args.file, args.notes).top(args.k, by=args.by)
    return _emit(_table_lines(records), records, args.json)


def _cmd_compare(args: argparse.Namespace) -> int:
    """`compare A B`: agreement of two files (and their scatter with --out)."""
    a, b = _load(args.a, args.notes), _load(args.b, args.notes)
    try:
        result = compare(a, b, ks=args.k, split=args.split)
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.out:
        from .plots import plot_compare

        print(_writing(args.out, lambda: plot_compare(a, b, args.out, result)), file=sys.stderr)
    return _emit(_comparison_lines(result), result, args.json)


def _cmd_plot(args: argparse.Namespace) -> int:
    """`plot --out DIR [--cost-file F]`: histograms, accuracy vs FLOPs (and vs measured latency)."""
    bench = _load(args.file, args.notes)
    latency = None
    if args.cost_file is not None:
        from ..hwcost.query import open_cost_file

        cost_file = open_cost_file(args.cost_file)
        label = f"latency at batch {args.batch_size}, median (ms) on {cost_file.device.get('name')}"
        latency = (bench.costs(cost_file, "latency_ms", args.batch_size), label)
    from .plots import plot_all

    print("\n".join(map(str, _writing(args.out, lambda: plot_all(bench, args.out, latency)))))
    return 0


def _cmd_cost(args: argparse.Namespace) -> int:
    """`cost FILE`: a cost file's provenance, spread and rank correlation of latency with FLOPs and params."""
    from ..hwcost.query import open_cost_file
    from ..hwcost.report import rank_correlations, report_lines

    cost_file = open_cost_file(args.cost_file)
    s = cost_file.settings
    measures = [("latency_ms", b) for b in s.batch_sizes] + ([("train_step_ms", 1)] if s.train_step else [])
    payload = {
        "file": cost_file.source,
        "networks": len(cost_file.costs),
        "correlations": [rank_correlations(cost_file, m, b) for m, b in measures] if len(cost_file.costs) > 1 else [],
    }
    return _emit(report_lines(cost_file), payload, args.json)


def _writing(out: str, write: Callable[[], Any]) -> Any:
    """Run a plot writer; an OSError becomes a one-line UserError naming the folder."""
    try:
        return write()
    except OSError as err:
        raise UserError(f"cannot write plots to {out!r}: {err.strerror or err}") from None


def build_parser() -> ArgParser:
    """The bench command line: query, top, compare, plot, cost."""
    parser = ArgParser(prog=PROG, description="Query and compare NAS-Bench-Macro results files.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{query,top,compare,plot,cost}")
    source = ArgParser(add_help=False)
    source.add_argument("--file", help=f"benchmark JSON (default: {GET_PUBLISHED})")
    as_json = ArgParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a table")
    query = sub.add_parser("query", parents=[source, as_json], help="the record of one code (any form)")
    query.add_argument("code", type=arch_code, help="8 digits over {0,1,2}, e.g. 10201201")
    top = sub.add_parser("top", parents=[source, as_json], help="the best K architectures")
    top.add_argument("k", type=int_arg("K", 1), metavar="K")
    top.add_argument(
        "--by", choices=list(METRICS), default="mean_acc", help="mean_acc: highest first; params, flops: smallest first"
    )
    comp = sub.add_parser("compare", parents=[as_json], help="agreement of two files")
    comp.add_argument("a", metavar="A", help="first benchmark JSON")
    comp.add_argument("b", metavar="B", help="second benchmark JSON")
    comp.add_argument("--k", type=int_arg("K", 1), nargs="+", default=[10, 100], help="top-k overlaps to report")
    comp.add_argument("--out", help="also write the scatter of mean accuracies (PNG) into this folder")
    comp.add_argument(
        "--split", choices=SPLITS, default="test", help="the split compared in both files: test (default) or val"
    )
    plot = sub.add_parser("plot", parents=[source], help="histograms and accuracy vs FLOPs (PNG)")
    plot.add_argument("--out", required=True, help="folder for the PNG files")
    plot.add_argument("--cost-file", help="also accuracy vs measured latency (a cost file of every architecture)")
    plot.add_argument("--batch-size", type=int_arg("batch size", 1), default=1, help="the latency's batch (default 1)")
    cost = sub.add_parser("cost", parents=[as_json], help="rank correlation of measured latency with FLOPs, params")
    cost.add_argument("cost_file", metavar="COST_FILE", help="a cost file (python -m nbm_lightning.cost)")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "query": _cmd_query,
    "top": _cmd_top,
    "compare": _cmd_compare,
    "plot": _cmd_plot,
    "cost": _cmd_cost,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bench subcommand."""
    args = build_parser().parse_args(argv)
    args.notes = []
    status = _COMMANDS[args.command](args)
    for note in args.notes:
        print(f"note: {note}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
