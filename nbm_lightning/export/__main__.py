"""`python -m nbm_lightning.export`: collect run records into the published or the extended benchmark file.

Sources (`--from`, repeatable, read in order): a folder of run records (its *.json files, not its
subfolders; a corrupt or foreign JSON file fails the export, naming it), or `wandb:ENTITY/PROJECT[/SWEEP_ID]`
(finished runs through the W&B public API: their config and summary, one paged query, no history).

Rules: only complete runs of ONE recipe are used (the majority recipe of the complete runs, or
`--recipe-hash`); failed, truncated, non-finite or mis-measured (params/flops differ from
`complexity(canonical)`) runs are rejected and listed; of two runs of the same (code, seed) the latest
finished is kept; a canonical code needs all three seeds (else the export fails, or leaves the code out
with `--allow-partial`). A last line says how many runs were read, used, rejected and missing.

`--format original` writes the published layout (all 6561 codes, each the record of its canonical code);
`--metric best` is the published semantics (best test accuracy over the epochs: selection on the test
set), `--metric final` the last epoch's. `--format extended` (nbm_lightning.export.extended) keeps every
run, its curves and the provenance.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli import ArgParser, run_main
from ..config import SEEDS
from ..errors import UserError
from ..record import METRIC_FIELDS
from ..search_space import unique_codes
from .formats import FORMATS, incomplete_message, report, summary_line, write
from .rules import Selection, choose_recipe, complexity_pool, expected_complexity, select
from .sources import parse_source, read_sources

PROG = "python -m nbm_lightning.export"
DEFAULT_METRIC = {"original": "best", "extended": "final"}  # per format, when --metric is not given
HASH_RE = re.compile(r"^[0-9a-f]{4,64}$")  # what --recipe-hash accepts


def build_parser() -> ArgParser:
    """The export CLI."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--from", dest="sources", action="append", required=True, metavar="SOURCE",
        help="a folder of run records, or wandb:ENTITY/PROJECT[/SWEEP_ID] (repeatable)",
    )  # fmt: skip
    parser.add_argument("--format", required=True, choices=FORMATS, help="published layout or extended schema")
    parser.add_argument("--out", required=True, help="file to write (atomically)")
    parser.add_argument(
        "--metric", choices=tuple(METRIC_FIELDS), default=None,
        help="accuracy of the original format's test_acc: best (published; default there) or final "
        "(default for extended, which stores both)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-partial", action="store_true", help="leave out canonical codes lacking seeds instead of failing"
    )
    parser.add_argument(
        "--recipe-hash", type=_hash_arg, default=None, help="export this recipe (default: the majority's)"
    )
    return parser


def _hash_arg(text: str) -> str:
    if not HASH_RE.match(text):
        raise argparse.ArgumentTypeError(f"invalid recipe hash {text!r}: expected lowercase hex digits")
    return text


def export(
    sources: Sequence[str], fmt: str, out: str, metric: str, allow_partial: bool, recipe_hash: str | None
) -> Selection:
    """Read, select and write; UserError on bad input or (without allow_partial) incomplete codes."""
    parsed = [parse_source(spec) for spec in sources]
    if Path(out).is_dir():
        raise UserError(f"bad --out {out!r}: it is a folder")
    with complexity_pool() as pool:
        pending = pool.apply_async(expected_complexity, (unique_codes(),)) if pool is not None else None
        runs, pre_rejected = read_sources(parsed, keep_curves=fmt == "extended")
        chosen = choose_recipe(runs, recipe_hash)
        expected = pending.get() if pending is not None else expected_complexity(unique_codes())
    selection = select(runs, pre_rejected, chosen, metric, expected)
    for line in report(selection):
        print(line, file=sys.stderr)
    _check_complete(selection, allow_partial)
    write(selection, sources, fmt, out, metric)
    return selection


def _check_complete(selection: Selection, allow_partial: bool) -> None:
    """UserError where codes lack seeds (unless allowed) or none is complete; else report the codes left out."""
    if selection.incomplete and not allow_partial:
        print(summary_line(selection), file=sys.stderr)
        raise UserError(
            f"{incomplete_message(selection)}: "
            f"pass --allow-partial to export the {len(selection.groups)} complete codes"
        )
    if not selection.groups:
        raise UserError(f"no canonical code has all {len(SEEDS)} seeds: nothing to export ({summary_line(selection)})")
    if selection.incomplete:
        print(f"left out: {incomplete_message(selection)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, export, print the summary line."""
    args = build_parser().parse_args(argv)
    metric = args.metric or DEFAULT_METRIC[args.format]
    selection = export(args.sources, args.format, args.out, metric, args.allow_partial, args.recipe_hash)
    print(
        f"wrote {args.out} ({args.format}, metric {metric}, recipe {selection.recipe_hash}): {summary_line(selection)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
