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
set), `--metric final` the last epoch's. `--format extended` (nbm_lightning.bench.extended) keeps every
run, its curves and the provenance.

`--wandb-artifact ENTITY/PROJECT` then logs the written file as a versioned W&B artifact (type `benchmark`,
the provenance as metadata) with a W&B Table of the benchmark, one row per canonical code
(nbm_lightning.export.artifact); offline where there are no W&B credentials. `--log-only FILE` with
`--wandb-artifact` logs an existing export file instead, exporting nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..arch.codes import unique_codes
from ..cli import ArgParser, run_main, write_failed
from ..core.errors import UserError
from ..core.validate import shown
from ..records.recipe import SEEDS
from ..records.run_record import METRIC_FIELDS
from ..records.tracking import WandbPath, parse_wandb_path
from .artifact import log_benchmark
from .formats import FORMATS, incomplete_message, provenance, report, summary_line, write
from .rules import Selection, choose_recipe, complexity_pool, expected_complexity, select
from .sources import Source, parse_source, read_sources, unread_subfolders

PROG = "python -m nbm_lightning.export"
DEFAULT_METRIC = {"original": "best", "extended": "final"}  # per format, when --metric is not given
HASH_RE = re.compile(r"^[0-9a-f]{4,64}$")  # what --recipe-hash accepts


def build_parser() -> ArgParser:
    """The export CLI."""
    parser = ArgParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--from", dest="sources", action="append", metavar="SOURCE",
        help="a folder of run records, or wandb:ENTITY/PROJECT[/SWEEP_ID] (repeatable; required unless --log-only)",
    )  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, help="published layout or extended schema (required)")
    parser.add_argument("--out", help="file to write (atomically; required)")
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
    parser.add_argument(
        "--wandb-artifact", metavar="ENTITY/PROJECT", default=None,
        help="log the written file as a W&B artifact (type benchmark) with a Table of the benchmark",
    )  # fmt: skip
    parser.add_argument(
        "--log-only", metavar="FILE", default=None, help="with --wandb-artifact: log this existing export file only"
    )
    return parser


def _check_mode(parser: ArgParser, args: argparse.Namespace) -> None:
    """Export (--from, --format, --out) or log an existing file (--log-only with --wandb-artifact): one, complete."""
    values = {"--from": args.sources, "--format": args.format, "--out": args.out}
    given = [flag for flag, value in values.items() if value]
    if args.log_only is not None:
        if given or not args.wandb_artifact:
            parser.error("--log-only FILE needs --wandb-artifact ENTITY/PROJECT and takes no --from, --format or --out")
        return
    missing = [flag for flag in ("--from", "--format", "--out") if flag not in given]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def _hash_arg(text: str) -> str:
    if not HASH_RE.match(text):
        raise argparse.ArgumentTypeError(f"invalid recipe hash {text!r}: expected lowercase hex digits")
    return text


def export(
    sources: Sequence[str], fmt: str, out: str, metric: str, allow_partial: bool, recipe_hash: str | None
) -> Selection:
    """Read, select and write; UserError (one line, nothing written) on bad input or incomplete codes."""
    parsed = [parse_source(spec) for spec in sources]
    _check_out(out, parsed)
    unread = unread_subfolders(parsed)  # subfolders of --from folders without records: named in errors and notes
    try:
        selection = _select(parsed, fmt, metric, recipe_hash)
        _check_complete(selection, allow_partial)
    except UserError as err:
        raise UserError(f"{err}{unread}") from None
    try:
        write(selection, sources, fmt, out, metric)
    except OSError as err:  # a full or read-only disk: the error alone, as for bad input
        raise write_failed("--out", out, err) from None
    left_out = [f"left out: {incomplete_message(selection)}"] if selection.incomplete else []
    for line in report(selection) + left_out + ([f"note: {unread.removeprefix('; ')}"] if unread else []):
        print(line, file=sys.stderr)
    return selection


def _select(sources: Sequence[Source], fmt: str, metric: str, recipe_hash: str | None) -> Selection:
    """Read the sources and apply the rules (the complexity table built on another core meanwhile)."""
    with complexity_pool() as pool:
        pending = pool.apply_async(expected_complexity, (unique_codes(),)) if pool is not None else None
        runs, pre_rejected = read_sources(sources, keep_curves=fmt == "extended")
        chosen = choose_recipe(runs, recipe_hash)
        expected = pending.get() if pending is not None else expected_complexity(unique_codes())
    return select(runs, pre_rejected, chosen, metric, expected)


def _check_out(out: str, sources: Sequence[Source]) -> None:
    """UserError where --out is a folder, or a file in a --from folder (the next export would read it as a record)."""
    try:
        if Path(out).is_dir():
            raise UserError(f"bad --out {shown(out)}: it is a folder")
        folder = Path(out).absolute().parent.resolve()
    except OSError as err:  # a name too long, a loop of links
        raise UserError(f"bad --out {shown(out)}: {err.strerror or type(err).__name__}") from None
    inside = next((s for s in sources if s.folder is not None and s.folder.resolve() == folder), None)
    if inside is not None:
        raise UserError(
            f"bad --out {shown(out)}: it is in the --from folder {shown(inside.spec)}, whose *.json files are read as "
            "run records (the next export would fail on it): write it elsewhere"
        )


def _check_complete(selection: Selection, allow_partial: bool) -> None:
    """UserError where codes lack seeds (unless allowed) or none is complete."""
    rejected = f" ({len(selection.rejected)} runs rejected: --allow-partial lists them)" if selection.rejected else ""
    if selection.incomplete and not allow_partial:
        raise UserError(
            f"{incomplete_message(selection)}{rejected}: "
            f"pass --allow-partial to export the {len(selection.groups)} complete codes"
        )
    if not selection.groups:
        raise UserError(f"no canonical code has all {len(SEEDS)} seeds: nothing to export ({summary_line(selection)})")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, export, print the summary line; log the file as a W&B artifact where asked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_mode(parser, args)
    target = parse_wandb_path(args.wandb_artifact, "--wandb-artifact") if args.wandb_artifact else None
    if args.log_only is not None:
        _log(args.log_only, target, None)
        return 0
    metric = args.metric or DEFAULT_METRIC[args.format]
    selection = export(args.sources, args.format, args.out, metric, args.allow_partial, args.recipe_hash)
    print(
        f"wrote {args.out} ({args.format}, metric {metric}, recipe {selection.recipe_hash}): {summary_line(selection)}"
    )
    if target is not None:
        _log(args.out, target, provenance(selection, args.sources, metric))
    return 0


def _log(path: str, target: WandbPath, known: dict | None) -> None:
    """Log an export file as the benchmark artifact and say where."""
    name = log_benchmark(path, target, known)
    print(f"logged {path} as W&B artifact {target}/{name} (type benchmark, with the Table 'benchmark')")


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
