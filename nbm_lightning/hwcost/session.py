"""A measuring session: codes measured one after another into a cost file, saved atomically as it goes, resumed.

A session first reads the output file where it exists (checked: `costfile.load`) and refuses it in one line where
it was measured with other settings, on another device or with another torch; codes it holds are not measured
again. The file is written (temporary file, rename: core.atomic) at the start, then at most every `save_every_s`
seconds (0: after every code) and at the end, also when interrupted (Ctrl-C, SIGTERM: the caller turns it into
KeyboardInterrupt), so a kill loses at most the codes of the last `save_every_s` seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType

from ..arch.codes import canonical
from ..core.atomic import atomic_write_text
from ..core.session import check_resumable, run_saving
from .costfile import CostFile, Entry, Settings, dumps, load
from .measure import configure, header, measure, resolve_device


def entry_line(entry: Entry, settings: Settings) -> str:
    """One network's figures in a progress line."""
    parts = [f"b{b} {t.median:.3f} ms (IQR {t.iqr:.3f})" for b, t in entry.latency.items()]
    if entry.train_step is not None:
        parts.append(f"train b{settings.train_batch_size} {entry.train_step.median:.2f} ms")
    if entry.peak_memory is not None:
        peak = max([*entry.peak_memory.values(), entry.train_peak_memory or 0])
        parts.append(f"peak {peak / 2**20:.0f} MiB")
    return ", ".join(parts)


def run(
    codes: Sequence[str],
    settings: Settings,
    out: str | os.PathLike[str],
    command: Sequence[str],
    save_every_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> CostFile:
    """Measure the canonical network of every code of `codes` that the file `out` lacks; return the file as saved."""
    out = Path(out)
    codes = list(dict.fromkeys(canonical(code) for code in codes))  # the file's keys: canonical, each once
    device = resolve_device(settings.device)
    configure(settings)
    info = header(settings, device, command)
    fresh = CostFile(settings, info["device"], info["versions"], (info["run"],), MappingProxyType({}), str(out))
    existing = load(out) if os.path.lexists(out) else None
    if existing is not None:
        check_resumable(existing.identity(), fresh.identity(), out)
    base = existing or fresh
    runs = (*existing.runs, info["run"]) if existing else fresh.runs
    costs: dict[str, Entry] = dict(base.costs)
    todo = [code for code in codes if code not in costs]

    def current() -> CostFile:
        return CostFile(settings, base.device, base.versions, runs, MappingProxyType(dict(costs)), str(out))

    log(
        f"cost: {len(codes)} codes selected, {len(codes) - len(todo)} already in {out}, {len(todo)} to measure on "
        f"{settings.device} ({base.device.get('name')}), {settings.threads} threads, batch sizes "
        f"{', '.join(map(str, settings.batch_sizes))}, train step {'on' if settings.train_step else 'off'}"
    )
    save = lambda: atomic_write_text(out, dumps(current()))  # noqa: E731
    run_saving(todo, lambda code: measure(code, settings, device), costs, save,
               lambda _code, entry: entry_line(entry, settings), "cost", out, save_every_s, log)  # fmt: skip
    return current()
