"""One trainer per (canonical code, seed, recipe): a lock file beside the checkpoint, safe on a shared filesystem.

The lock is a file created with O_CREAT | O_EXCL (atomic on local filesystems and on NFS v3 and later, unlike
fcntl/flock locks, which many cluster filesystems do not share between hosts). It holds the owner's host,
pid and start time as JSON; the owner touches it every HEARTBEAT_S seconds from a daemon thread, so its
modification time is the heartbeat. A lock is stale when its owner's process is gone (same host) or its
heartbeat is older than STALE_S seconds (any host). Taking over a stale lock is serialised by a second
exclusive file (`<lock>.takeover`), so two processes that find the same stale lock never both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEARTBEAT_S = 30.0  # seconds between the owner's touches of its lock file
STALE_S = 600.0  # a lock whose heartbeat is older than this is stale, whoever holds it
TAKEOVER_STALE_S = 60.0  # a takeover file older than this was left by a crash: removed
UNWRITTEN_S = 10.0  # a lock file still without its owner's identity after this long was left by a crash


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file says."""

    host: str  # hostname of the owner
    pid: int  # its process id
    started: float  # when it took the lock (Unix time)
    heartbeat: float  # the file's modification time (Unix time)

    def describe(self) -> str:
        """One line: who, since when, last heartbeat."""
        age = time.time() - self.heartbeat
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host} (since {since}, heartbeat {age:.0f} s ago)"


class PairLock:
    """An exclusive lock on one pair's training, held while a process trains it."""

    def __init__(self, path: str | os.PathLike[str], heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.path, self.heartbeat_s, self.stale_s = Path(path), heartbeat_s, stale_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: Holder | None = None  # the stale holder this lock replaced, if any
        self._made_parent = False  # acquire() created the lock's folder (removed again if left empty)

    def acquire(self) -> Holder | None:
        """Take the lock; None when taken, else the live holder (nothing changed)."""
        self._made_parent = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lock released, or taken over, between our steps: look again
            if self._create():
                return None
            holder = read_holder(self.path)
            if holder is None:
                continue
            if not self.is_stale(holder):
                return holder
            if self._take_over(holder):
                return None
        now = time.time()
        return read_holder(self.path) or Holder("?", -1, now, now)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        mine = read_holder(self.path)
        if mine is not None and (mine.host, mine.pid) == (socket.gethostname(), os.getpid()):
            self.path.unlink(missing_ok=True)
        if self._made_parent:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only if empty: a run's checkpoints live there

    def is_stale(self, holder: Holder) -> bool:
        """True when the holder is gone: its process on this host, or its heartbeat anywhere."""
        age = time.time() - holder.heartbeat
        if age > self.stale_s or (holder.pid == -1 and age > UNWRITTEN_S):
            return True
        return holder.host == socket.gethostname() and holder.pid != -1 and not _alive(holder.pid)

    def _create(self) -> bool:
        """Create the lock file exclusively, with our identity, and start the heartbeat; False if it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}, handle)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="pair-lock-heartbeat", daemon=True)
        self._thread.start()
        return True

    def _take_over(self, stale: Holder | None) -> bool:
        """Replace a stale (or unreadable) lock, one process at a time; True when the lock is now ours."""
        guard = self.path.with_name(self.path.name + ".takeover")
        _remove_if_older(guard, TAKEOVER_STALE_S)
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False  # another process is taking it over right now
        os.close(fd)
        try:
            current = read_holder(self.path)
            if current is not None and current != stale and not self.is_stale(current):
                return False  # someone else replaced it meanwhile
            self.path.unlink(missing_ok=True)
            self.took_over = stale
            return self._create()
        finally:
            guard.unlink(missing_ok=True)

    def _beat(self) -> None:
        """Touch the lock file every heartbeat_s seconds until released."""
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):
                os.utime(self.path)


def read_holder(path: Path) -> Holder | None:
    """The holder written in a lock file; None where there is no lock file.

    A lock file without a readable identity (its owner is writing it right now, or crashed while writing)
    has an unknown holder (host "?", pid -1): stale once older than UNWRITTEN_S.
    """
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return Holder(str(data["host"]), int(data["pid"]), float(data["started"]), mtime)
    except (OSError, ValueError, KeyError, TypeError):
        return Holder("?", -1, mtime, mtime)


def _alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _remove_if_older(path: Path, seconds: float) -> None:
    """Remove a file whose modification time is more than `seconds` old."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > seconds:
            path.unlink()
