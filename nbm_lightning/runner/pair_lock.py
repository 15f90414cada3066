"""One trainer per record: lock files beside the run record and its checkpoint folder, safe on a shared filesystem.

The lock is a file created with O_CREAT | O_EXCL (atomic on local filesystems and on NFS v3 and later, unlike
fcntl/flock locks, which many cluster filesystems do not share between hosts). It holds the owner's identity as
JSON: host, boot id, pid and the process's start time (so a reused pid, a restarted container whose Python is
pid 1 again, or a rebooted host is not taken for the owner), a random token, and the recipe it trains. The
owner touches it every `heartbeat_s` seconds from a daemon thread, so its modification time is the heartbeat.
A lock is stale when its owner's process is gone (same host) or its heartbeat is older than `stale_s` seconds
(any host). Taking over a stale lock is serialised by a second exclusive file (`<lock>.takeover`), so two
processes that find the same stale lock never both take it. An owner frozen past `stale_s` (SIGSTOP, a
suspended VM) may lose its lock so: `PairLock.check` (before every checkpoint and record write) finds another
token in the file and raises LockLost, and the owner writes nothing more. Host names are taken to be unique
among the machines that share a folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LockLost
from ..core.jsonread import JSONReadError, read_json

HEARTBEAT_S = 30.0  # seconds between the owner's touches of its lock file
STALE_S = 600.0  # a lock whose heartbeat is older than this is stale, whoever holds it
TAKEOVER_STALE_S = 60.0  # a takeover file older than this was left by a crash: removed
UNWRITTEN_S = 10.0  # a lock file still without its owner's identity after this long was left by a crash
MAX_LOCK_BYTES = 4096  # a lock file is ~250 bytes: a larger one is not ours (read as an unknown holder)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # changes at every boot of the host (Linux)

_HELD: set[str] = set()  # tokens of the locks this process holds now: a lock naming our pid is alive iff listed


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file says (fields a lock file of an older version lacks are None)."""

    host: str  # hostname of the owner
    pid: int  # its process id (-1: unknown)
    started: float  # when it took the lock (Unix time)
    heartbeat: float  # the file's modification time (Unix time)
    boot_id: str | None = None  # the owner host's boot id
    pid_start: int | None = None  # the owner process's start time (clock ticks since boot, /proc/<pid>/stat)
    token: str | None = None  # random, unique to one taking of the lock
    recipe_hash: str | None = None  # the recipe the owner trains

    def describe(self) -> str:
        """One line: who, which recipe, since when, last heartbeat."""
        age = time.time() - self.heartbeat
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        recipe = f", recipe {self.recipe_hash}" if self.recipe_hash else ""
        return f"pid {self.pid} on {self.host}{recipe} (since {since}, heartbeat {age:.0f} s ago)"


class PairLock:
    """An exclusive lock on one record's training, held while a process trains it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        heartbeat_s: float | None = None,
        stale_s: float | None = None,
        recipe_hash: str | None = None,
    ):
        """`heartbeat_s`, `stale_s`: None reads HEARTBEAT_S and STALE_S now; `recipe_hash`: written for others."""
        self.path, self.recipe_hash = Path(path), recipe_hash
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.stale_s = STALE_S if stale_s is None else stale_s
        self.token: str | None = None  # the token written in our lock file while we hold it
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
        if self.token is not None and self.owned():
            self.path.unlink(missing_ok=True)
        _HELD.discard(self.token or "")
        self.token = None
        if self._made_parent:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only if empty

    def owned(self) -> bool:
        """True while the lock file still carries our token."""
        holder = read_holder(self.path)
        return self.token is not None and holder is not None and holder.token == self.token

    def check(self) -> None:
        """Raise LockLost (one line) unless we still hold the lock: called before anything is written."""
        if self.owned():
            return
        holder = read_holder(self.path)
        now = f"now held by {holder.describe()}" if holder is not None else "its file is gone"
        raise LockLost(f"lost the lock {self.path} (taken over while this process stalled): {now}; writing nothing")

    def is_stale(self, holder: Holder) -> bool:
        """True when the holder is gone: its process on this host, or its heartbeat anywhere."""
        age = time.time() - holder.heartbeat
        if age > self.stale_s or (holder.pid == -1 and age > UNWRITTEN_S):
            return True
        return holder.host == socket.gethostname() and holder.pid != -1 and not _running(holder)

    def _create(self) -> bool:
        """Create the lock file exclusively, with our identity, and start the heartbeat; False if it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self.token = secrets.token_hex(16)
        _HELD.add(self.token)  # before the file says so: a reader in this process sees a live holder
        pid = os.getpid()
        identity = {"host": socket.gethostname(), "pid": pid, "started": time.time(), "boot_id": boot_id(),
                    "pid_start": process_start(pid), "token": self.token, "recipe_hash": self.recipe_hash}  # fmt: skip
        with os.fdopen(fd, "w") as handle:
            json.dump(identity, handle)
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
        """Touch the lock file every heartbeat_s seconds until released, or until it is no longer ours."""
        while not self._stop.wait(self.heartbeat_s):
            if not self.owned():
                return  # taken over while we were frozen: never keep another's lock alive
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
    except OSError:
        mtime = time.time()
    try:
        data = read_json(path, max_bytes=MAX_LOCK_BYTES)
        if not isinstance(data, dict):
            raise TypeError
        host, pid, started = str(data["host"]), data["pid"], float(data["started"])
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise TypeError
        return Holder(host, pid, started, mtime, _text(data.get("boot_id")), _count(data.get("pid_start")),
                      _text(data.get("token")), _text(data.get("recipe_hash")))  # fmt: skip
    except (JSONReadError, ValueError, KeyError, TypeError, OverflowError):
        return Holder("?", -1, mtime, mtime)


def boot_id() -> str | None:
    """This host's boot id (Linux), None where unknown."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])  # fields after the command name start at field 3
    except (OSError, ValueError, IndexError):
        return None


def _running(holder: Holder) -> bool:
    """True when the holder's process (on this host) still runs: same boot, same pid and same start time."""
    ours = boot_id()
    if holder.boot_id and ours and holder.boot_id != ours:
        return False  # written before this host's last boot
    if holder.pid == os.getpid():
        return holder.token in _HELD  # ourselves only through a lock this process holds now
    if not _alive(holder.pid):
        return False
    start = process_start(holder.pid)
    return holder.pid_start is None or start is None or start == holder.pid_start


def _text(value: object) -> str | None:
    """A short string field of a lock file, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def _count(value: object) -> int | None:
    """A non-negative integer field of a lock file, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    if pid <= 0:
        return False  # 0 and negatives name process groups to os.kill, never one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OverflowError:
        return False
    return True


def _remove_if_older(path: Path, seconds: float) -> None:
    """Remove a file whose modification time is more than `seconds` old."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > seconds:
            path.unlink()
