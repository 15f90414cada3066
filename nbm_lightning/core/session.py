"""A save-as-you-go session: keys computed one after another, the results saved as it goes, resumed after a kill.

Generic (no NAS here): the cost command (hwcost.session) and the proxies command (zerocost.session) run their codes
through `run_saving`. The caller owns the file: it reads what an earlier run saved, checks that it was made with the
same settings (`check_resumable`), passes the keys still to do, and a `save` that writes the file atomically. The
loop saves at the start, then at most every `save_every_s` seconds (0: after every key), at the end, and when
interrupted (Ctrl-C, SIGTERM turned into KeyboardInterrupt by the caller), so a kill loses at most the results of the
last `save_every_s` seconds; nothing is computed twice nor dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

from .errors import UserError
from .validate import shown

T = TypeVar("T")


def eta(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def check_resumable(old: Mapping[str, Any], new: Mapping[str, Any], out: object, verb: str = "measured") -> None:
    """UserError naming the first key where an existing file's identity `old` differs from this session's `new`."""
    for key in new:
        if old.get(key) != new[key]:
            raise UserError(
                f"cannot resume {shown(str(out))}: it was {verb} with {key} {shown(old.get(key))}, this run "
                f"uses {shown(new[key])}: pass the same settings on the same device, or another --out"
            )


def run_saving(
    todo: Sequence[str],
    compute: Callable[[str], T],
    results: MutableMapping[str, T],
    save: Callable[[], object],
    line: Callable[[str, T], str],
    name: str,
    out: object,
    save_every_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> None:
    """Compute `results[key] = compute(key)` for every key of `todo`, logging `name: [i/n] key line | rate, eta`;
    `save()` after at most `save_every_s` seconds, at the end and on KeyboardInterrupt (then re-raised)."""
    save()
    last_save = start = time.monotonic()
    done = 0
    try:
        for i, key in enumerate(todo, 1):
            results[key] = compute(key)
            done = i
            note = ""
            if time.monotonic() - last_save >= save_every_s:
                save()
                last_save, note = time.monotonic(), ", saved"
            rate = i / max(time.monotonic() - start, 1e-9)
            log(f"{name}: [{i}/{len(todo)}] {key} {line(key, results[key])} | {rate:.2f} codes/s, "
                f"eta {eta((len(todo) - i) / rate)}{note}")  # fmt: skip
    except KeyboardInterrupt:
        save()
        log(f"{name}: interrupted after {done} of {len(todo)} codes: {len(results)} codes saved in {out}; the same "
            "command resumes")  # fmt: skip
        raise
    save()
    log(f"{name}: done: {len(results)} codes in {out}")
