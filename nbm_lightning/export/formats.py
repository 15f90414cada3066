"""What an export writes: its records in the published layout or the extended document with its provenance (both
formats owned by their reader, `nbm_lightning.bench.published` and `.extended`), and the report lines."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..arch.codes import unique_codes
from ..bench import extended, published
from ..bench.published import ArchResult
from ..core.atomic import atomic_write_text
from ..records.job import GRID_SIZE
from ..records.recipe import ROUNDING_FIELDS, SEEDS
from ..records.run_record import METRIC_FIELDS
from .rules import Selection
from .sources import Run

FORMATS = ("original", "extended")
EXAMPLES = 5  # examples named in a one-line error
LIST_LIMIT = 50  # report lines per list before "... and N more"
NUMERICS_KEYS = ("pipeline", *ROUNDING_FIELDS)  # execution fields whose combination the provenance counts


def original(selection: Selection, metric: str) -> dict[str, dict[str, Any]]:
    """The published layout: every code -> the record of its canonical code (complete codes only)."""
    field_name = METRIC_FIELDS[metric]
    return published.to_dict(
        ArchResult.of_seeds(code, [getattr(run.record, field_name) for run in runs], runs[0].record.params,
                            runs[0].record.flops)
        for code, runs in selection.groups.items()
    )  # fmt: skip


def provenance(selection: Selection, sources: Sequence[str], metric: str) -> dict[str, Any]:
    """The extended file's provenance block (see nbm_lightning.bench.extended)."""
    used = [run for runs in selection.groups.values() for run in runs]
    return {
        "recipe_hash": selection.recipe_hash, "recipe": selection.recipe, "metric": metric, "sources": list(sources),
        "versions": _distinct(run.record.versions for run in used), "devices": _devices(used),
        "numerics": numerics(used), "wandb_sweeps": sorted({s for r in used if (s := _sweep(r))}),
        "counts": counts(selection), "rejected": [vars(r) for r in selection.rejected],
        "superseded": [vars(r) for r in selection.superseded],
        "incomplete": {code: list(seeds) for code, seeds in selection.incomplete.items()},
    }  # fmt: skip


def numerics(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """Runs per combination of input pipeline, rounding-only options and device, most runs first.

    The recipe (precision and TF32 included) is one for the whole export; these settings change only the
    float rounding (or, for the pipeline, the random stream of the augmentation), so they may be mixed,
    and the provenance says in what proportions. A setting a source does not record counts as None.
    """
    combos = collections.Counter(_numerics_key(run) for run in runs)
    rows = [{**dict(key), "runs": n} for key, n in combos.items()]
    return sorted(rows, key=lambda row: (-row["runs"], json.dumps(row, sort_keys=True)))


def _numerics_key(run: Run) -> tuple[tuple[str, Any], ...]:
    execution, device = run.record.execution or {}, run.record.device or {}
    return (*((k, execution.get(k)) for k in NUMERICS_KEYS), ("device", device.get("name")))


def _sweep(run: Run) -> str | None:
    return (run.record.wandb or {}).get("sweep_id")


def _distinct(dicts: Iterable[Mapping[str, Any] | None]) -> dict[str, list]:
    """Key -> the distinct values it takes across dicts (ordered by their JSON text)."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for item in dicts:
        for key, value in (item or {}).items():
            seen[key].add(json.dumps(value, sort_keys=True))
    return {key: [json.loads(v) for v in sorted(values)] for key, values in sorted(seen.items())}


def _devices(runs: Iterable[Run]) -> dict[str, int]:
    """Device name -> number of runs trained on it (runs without device info are not counted)."""
    names = collections.Counter(str(r.record.device.get("name")) for r in runs if r.record.device)
    return dict(sorted(names.items()))


def counts(selection: Selection) -> dict[str, int]:
    """The headline counts of an export."""
    return {
        "runs_read": selection.read, "runs_used": selection.used, "runs_rejected": len(selection.rejected),
        "runs_superseded": len(selection.superseded), "runs_missing": selection.missing,
        "runs_unused": selection.unused, "codes": len(selection.groups), "codes_incomplete": len(selection.incomplete),
    }  # fmt: skip


def summary_line(selection: Selection) -> str:
    """The last line of an export."""
    c = counts(selection)
    line = (
        f"read {c['runs_read']} runs: used {c['runs_used']} ({c['codes']} codes x {len(SEEDS)} seeds), "
        f"rejected {c['runs_rejected']}, superseded {c['runs_superseded']} duplicates, "
        f"missing {c['runs_missing']} of {GRID_SIZE}"
    )
    if selection.preempted:
        line += f" ({selection.preempted} preempted: a rerun resumes them)"
    if not c["codes_incomplete"]:
        return line
    return line + f"; left out {c['codes_incomplete']} incomplete codes ({c['runs_unused']} of their runs read)"


def incomplete_message(selection: Selection) -> str:
    """One line on the codes lacking seeds, with a few examples (partial codes first)."""
    partial = sorted(selection.incomplete, key=lambda code: (len(selection.incomplete[code]), code))
    examples = ", ".join(
        f"{code} (seeds {', '.join(map(str, selection.incomplete[code]))} missing)" for code in partial[:EXAMPLES]
    )
    return (
        f"{len(selection.incomplete)} of {len(unique_codes())} canonical codes lack seeds "
        f"({selection.missing} of {GRID_SIZE} runs missing), e.g. {examples}"
    )


def report(selection: Selection) -> list[str]:
    """Report lines: rejected runs (other recipes summed up), superseded duplicates."""
    other = collections.Counter(r.reason for r in selection.rejected if r.rule == "recipe")
    listed = [r for r in selection.rejected if r.rule != "recipe"]
    lines = [f"rejected {n} runs of {reason}: not mixed" for reason, n in sorted(other.items())]
    lines += _capped([f"rejected {r.source}: {r.reason}" for r in listed])
    return lines + _capped([f"superseded {r.source}: {r.reason}" for r in selection.superseded])


def _capped(lines: list[str]) -> list[str]:
    """At most LIST_LIMIT lines, then one saying how many more."""
    extra = len(lines) - LIST_LIMIT
    more = [f"... and {extra} more (all listed in an extended export's provenance)"] if extra > 0 else []
    return lines[:LIST_LIMIT] + more


def write(selection: Selection, sources: Sequence[str], fmt: str, out: str | Path, metric: str) -> None:
    """Write the chosen format atomically."""
    if fmt == "original":
        atomic_write_text(out, json.dumps(original(selection, metric)) + "\n")
        return
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    extended.write(out, extended.build(selection.groups, provenance(selection, sources, metric), created))
