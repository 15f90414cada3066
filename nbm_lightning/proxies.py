"""`python -m nbm_lightning.proxies [score] ...` / `report FILE`: zero-cost proxies of every network, and their report.

    python -m nbm_lightning.proxies --proxies synflow,zen,params,flops --seeds 0 --threads 1
    python -m nbm_lightning.proxies --proxies snip,naswot --data-dir ./data --seeds 0,1,2
    python -m nbm_lightning.proxies report results/proxies.json

The proxies are in nbm_lightning.zerocost (docs/proxies.md); this module is only the command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from .arch.codes import unique_codes
from .cli import ArgParser, int_arg, run_main, write_failed
from .core.errors import UserError
from .core.validate import InvalidValue
from .cost import code_list, seconds
from .zerocost.proxyfile import DATA_BASED, MAX_BATCH, PROXIES, Settings

PROG = "python -m nbm_lightning.proxies"
COMMANDS = ("score", "report")
DATA_FREE_DEFAULT = "synflow,zen,params,flops"


def proxy_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated proxy names -> in PROXIES order, each once."""
    names = {p.strip() for p in text.split(",")}
    bad = sorted(names - set(PROXIES))
    if bad or not text.strip():
        raise argparse.ArgumentTypeError(f"invalid --proxies {text[:200]!r}: expected names from {', '.join(PROXIES)}"
                                          " separated by commas")  # fmt: skip
    return tuple(p for p in PROXIES if p in names)


def seed_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated seeds -> ascending distinct ints."""
    seed = int_arg("seed", 0, 2**31 - 1)
    return tuple(sorted({seed(p.strip()) for p in text.split(",")}))


def parser() -> ArgParser:
    """The command line: `score` (the default) and `report`."""
    top = ArgParser(prog=PROG, description="Zero-cost proxies of every network, and their report (docs/proxies.md).")
    sub = top.add_subparsers(dest="command", parser_class=ArgParser)
    s = sub.add_parser("score", help="score networks into a proxies file (the default command)")
    s.add_argument("--proxies", type=proxy_list, default=proxy_list(DATA_FREE_DEFAULT),
                   help=f"comma-separated proxies of {', '.join(PROXIES)} (default: the data-free ones, "
                   f"{DATA_FREE_DEFAULT}); {', '.join(DATA_BASED)} need --data-dir")  # fmt: skip
    s.add_argument("--codes", type=code_list, default=None, help="comma-separated codes (canonicalized; default: "
                   "all 3969 canonical codes)")  # fmt: skip
    s.add_argument("--sample", type=int_arg("--sample", 1, 3969), default=None, help="a random sample of N codes of "
                   "the selection, drawn by --sample-seed (a rerun with the same values resumes the same "
                   "set)")  # fmt: skip
    s.add_argument("--sample-seed", type=int_arg("--sample-seed", 0), default=0, help="seed of --sample (default 0)")
    s.add_argument("--seeds", type=seed_list, default=(0, 1, 2), help="seeds of the initialisation and the batch "
                   "(default: 0,1,2)")  # fmt: skip
    s.add_argument("--batch-size", type=int_arg("--batch-size", 2, MAX_BATCH), default=64,
                   help="images per batch (data-based proxies, Zen-score's Gaussian input; default: 64)")  # fmt: skip
    s.add_argument("--data-dir", default=None, help="CIFAR-10's folder (data-based proxies only)")
    s.add_argument("--threads", type=int_arg("--threads", 1, 4096), default=None,
                   help="torch intra-op threads (default: torch's, one per core)")  # fmt: skip
    s.add_argument("--out", default="results/proxies.json", help="the proxies file (default: results/proxies.json); "
                   "an existing one is resumed: its codes are not scored again")  # fmt: skip
    s.add_argument("--save-every-s", type=seconds, default=10.0,
                   help="write the file at most this often (default: 10; 0: after every code)")  # fmt: skip
    r = sub.add_parser("report", help="each proxy's rank correlation with the benchmark's mean accuracy")
    r.add_argument("file", help="a proxies file")
    r.add_argument("--benchmark", default=None, help="the benchmark file (default: the published one, "
                   "NBM_BENCHMARK or its download cache)")  # fmt: skip
    r.add_argument("--bootstrap", type=int_arg("--bootstrap", 10, 100_000), default=1000,
                   help="bootstrap resamples of the networks for the 95 %% intervals (default: 1000)")  # fmt: skip
    r.add_argument("--seed", type=int_arg("--seed", 0), default=0, help="seed of the bootstrap (default: 0)")
    return top


def settings_of(args: argparse.Namespace) -> Settings:
    """The scoring settings of a parsed `score` command line (the data's fingerprint where data-based proxies run)."""
    import torch

    data = None
    if any(p in DATA_BASED for p in args.proxies):
        if args.data_dir is None:
            raise UserError(f"--proxies {','.join(args.proxies)} needs --data-dir (CIFAR-10's folder): "
                            f"{', '.join(p for p in args.proxies if p in DATA_BASED)} read a batch of it")  # fmt: skip
        from .training.cifar10_files import fingerprint, require_cifar10

        require_cifar10(args.data_dir)
        data = fingerprint(args.data_dir)
    try:
        return Settings(args.proxies, args.batch_size, args.seeds, args.threads or torch.get_num_threads(), data=data)
    except InvalidValue as err:
        raise UserError(str(err)) from None


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM (a timeout, a scheduler) as Ctrl-C: the session saves what it scored."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def selection(args: argparse.Namespace) -> list[str]:
    """The codes to score: --codes or all canonical codes, then a seeded --sample of them."""
    import random

    codes = args.codes if args.codes is not None else sorted(unique_codes())
    if args.sample is not None and args.sample < len(codes):
        codes = sorted(random.Random(args.sample_seed).sample(codes, args.sample))
    return codes


def score_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .zerocost import session

    settings = settings_of(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        session.run(selection(args), settings, args.out, [sys.executable, "-m", "nbm_lightning.proxies", *argv],
                    args.data_dir, args.save_every_s, lambda line: print(line, flush=True))  # fmt: skip
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        raise write_failed("--out", args.out, err) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def report_command(args: argparse.Namespace) -> int:
    from .bench import Benchmark
    from .zerocost.proxyfile import load
    from .zerocost.report import report_lines

    proxy_file = load(args.file)
    print("\n".join(report_lines(proxy_file, Benchmark.load(args.benchmark, quiet=True), args.bootstrap, args.seed)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    argv = given if given and given[0] in (*COMMANDS, "-h", "--help") else ["score", *given]
    args = parser().parse_args(argv)
    if args.command == "report":
        return report_command(args)
    return score_command(args, given)


if __name__ == "__main__":
    try:
        sys.exit(run_main(main, prog=PROG))
    except BrokenPipeError:  # `... | head`
        sys.exit(0)
