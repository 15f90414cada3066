"""`python -m nbm_lightning.cost [measure] ...` / `report FILE`: measure every network's hardware cost on a device.

    python -m nbm_lightning.cost --device cpu --batch-sizes 1 --no-train-step --repeats 5 --warmup 2
    python -m nbm_lightning.cost report results/cost_cpu.json

The measuring is in nbm_lightning.hwcost (docs/cost.md); this module is only the command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from .arch.codes import canonical, unique_codes
from .cli import ArgParser, arch_code, bool_arg, int_arg, run_main, write_failed
from .core.errors import UserError
from .core.validate import InvalidValue
from .hwcost.costfile import DEVICES, MAX_BATCH, MAX_REPEATS, Settings
from .records.recipe import Execution, Recipe

PROG = "python -m nbm_lightning.cost"
COMMANDS = ("measure", "report")


def code_list(text: str) -> list[str]:
    """argparse type: comma-separated codes -> their canonical forms, each once, sorted."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(parts):
        raise argparse.ArgumentTypeError(f"invalid --codes {text[:200]!r}: expected codes separated by commas")
    return sorted({canonical(arch_code(p)) for p in parts})


def batch_sizes(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated batch sizes -> ascending distinct ints."""
    size = int_arg("batch size", 1, MAX_BATCH)
    return tuple(sorted({size(p.strip()) for p in text.split(",")}))


def seconds(text: str) -> float:
    """argparse type: seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid --save-every-s {text[:200]!r}: expected seconds >= 0")
    return value


def parser() -> ArgParser:
    """The command line: `measure` (the default) and `report`."""
    execution, recipe = Execution(), Recipe()
    top = ArgParser(prog=PROG, description="Measure every network's hardware cost on a device (docs/cost.md).")
    sub = top.add_subparsers(dest="command", parser_class=ArgParser)
    m = sub.add_parser("measure", help="measure networks into a cost file (the default command)")
    m.add_argument("--device", choices=DEVICES, default="cpu", help="where to measure (default: cpu)")
    m.add_argument("--codes", type=code_list, default=None, help="comma-separated codes (canonicalized; default: "
                   "all 3969 canonical codes)")  # fmt: skip
    m.add_argument("--limit", type=int_arg("--limit", 1), default=None, help="only the first N codes of the "
                   "selection, sorted (a rerun with the same --limit resumes the same set)")  # fmt: skip
    m.add_argument(
        "--batch-sizes",
        type=batch_sizes,
        default=(1, execution.eval_batch_size),
        help=f"inference batch sizes (default: 1,{execution.eval_batch_size}, the evaluation batch)",
    )
    m.add_argument(
        "--repeats",
        type=int_arg("--repeats", 3, MAX_REPEATS),
        default=10,
        help="timed calls per measurement: median and interquartile range over them (default: 10)",
    )
    m.add_argument(
        "--warmup", type=int_arg("--warmup", 1, MAX_REPEATS), default=3, help="untimed calls before them (default: 3)"
    )
    m.add_argument(
        "--no-train-step",
        dest="train_step",
        action="store_false",
        help=f"do not time a training step (batch {recipe.batch_size}, the recipe's)",
    )
    m.add_argument(
        "--threads",
        type=int_arg("--threads", 1, 4096),
        default=None,
        help="torch intra-op threads (default: torch's, one per core)",
    )
    m.add_argument(
        "--channels-last",
        type=bool_arg,
        default=execution.channels_last,
        help=f"channels_last memory format (default: {str(execution.channels_last).lower()}, as training)",
    )
    m.add_argument(
        "--cudnn-benchmark",
        type=bool_arg,
        default=execution.cudnn_benchmark,
        help=f"cuDNN algorithm search on CUDA (default: {str(execution.cudnn_benchmark).lower()}, as training)",
    )
    m.add_argument("--out", default=None, help="the cost file (default: results/cost_DEVICE.json); an existing "
                   "one is resumed: its codes are not measured again")  # fmt: skip
    m.add_argument(
        "--save-every-s",
        type=seconds,
        default=10.0,
        help="write the file at most this often while measuring (default: 10; 0: after every code)",
    )
    r = sub.add_parser("report", help="a cost file's provenance, spread, and rank correlation with FLOPs and params")
    r.add_argument("file", help="a cost file")
    return top


def settings_of(args: argparse.Namespace) -> Settings:
    """The measurement settings of a parsed `measure` command line."""
    import torch

    cuda = args.device == "cuda"
    try:
        return Settings(
            device=args.device, batch_sizes=args.batch_sizes, repeats=args.repeats, warmup=args.warmup,
            train_step=args.train_step, train_batch_size=Recipe().batch_size,
            threads=args.threads or torch.get_num_threads(), channels_last=args.channels_last,
            cudnn_benchmark=args.cudnn_benchmark and cuda, tf32=Recipe().tf32 and cuda,
        )  # fmt: skip
    except InvalidValue as err:
        raise UserError(str(err)) from None


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM (a timeout, a scheduler) as Ctrl-C: the session saves what it measured."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def measure_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .hwcost import session

    settings = settings_of(args)
    codes = args.codes if args.codes is not None else list(unique_codes())
    codes = codes[: args.limit] if args.limit else codes
    out = args.out or f"results/cost_{args.device}.json"
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        session.run(codes, settings, out, [sys.executable, "-m", "nbm_lightning.cost", *argv],
                    args.save_every_s, lambda line: print(line, flush=True))  # fmt: skip
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        raise write_failed("--out", out, err) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def report_command(args: argparse.Namespace) -> int:
    from .hwcost.costfile import load
    from .hwcost.measure import check_counts
    from .hwcost.report import report_lines

    cost_file = load(args.file)
    check_counts(cost_file)
    print("\n".join(report_lines(cost_file)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    argv = given if given and given[0] in (*COMMANDS, "-h", "--help") else ["measure", *given]
    args = parser().parse_args(argv)
    if args.command == "report":
        return report_command(args)
    return measure_command(args, given)


if __name__ == "__main__":
    try:
        sys.exit(run_main(main, prog=PROG))
    except BrokenPipeError:  # `... | head`
        sys.exit(0)
