"""Chaos check: a worker training many tiny runs is killed again and again (SIGKILL and SIGTERM), restarted each
time with the same command, then run to its end; every phase of a run must have been hit, nothing may be lost or
trained twice, and every record must equal that of an uninterrupted run.

    python -m benchmarks.chaos [--runs 6] [--random-kills 2] [--each-signal] [--seed 0] [--out FILE.json]

Runs: grid pairs 0..runs-1, 3 epochs of 128 synthetic learnable images each (4 steps an epoch), W&B disabled,
one compute thread, through one `fit --index 0-(runs-1)` worker process at a time, with the phase trace on
(`nbm_lightning/core/trace.py`: each process appends `time pid phase step detail` lines to one file).

1. Measure: the command runs uninterrupted in a folder of its own; its trace gives the start-up time (process
   start to the first job's setup), the time per run and each phase's mean duration.
2. Kill: in another folder the command is started again and again, and each attempt is killed once. First one
   kill is aimed at each phase of PHASES, the signals alternating (--each-signal: one per phase and signal):
   start-up (20-70 % of the start-up time, measured first by the uninterrupted run, then by the latest attempt:
   the machine's load changes), training (a delay into a training phase seen in the trace), evaluation,
   checkpoint write (its temporary file complete, not yet renamed) and record write (the process holds there:
   NBM_TRACE_HOLD). Where each kill landed is read from the trace: the phase the process was in when the
   signal was sent. An aimed kill that landed elsewhere is retried (at most --retries times). Then
   --random-kills kills, random signals, at a random delay after the process's first job began (up to 1.5
   times the measured time of a run): they land wherever the run happens to be.
3. Finish: the command runs to its end. Completions are counted from the records, not from log lines: the results
   folder is read after every attempt, and each distinct complete record of a pair is one completion. A pair is
   "completed twice" when it had two complete records, when the trace shows two complete-record writes, or when it
   was set up or trained again after its complete record was written.

It fails (exit 1) when a phase was never hit (--each-signal: by each signal), a kill did not end the process as
it should (SIGKILL: -9; SIGTERM: the preempted status 143, or -15 before the worker's handlers exist), a run was
lost, completed twice, or its record differs from the uninterrupted run's (times excepted), or a worker failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbm_lightning.core import trace
from nbm_lightning.records.job import index_to_pair
from nbm_lightning.records.run_record import COMPLETE, RecordError, RunRecord, run_name

TINY = ["--download=false", "--epochs=3", "--batch-size=32", "--eval-batch-size=64", "--progress=false",
        "--accelerator=cpu", "--num-workers=0", "--wandb-mode=disabled"]  # fmt: skip
PHASES = ("startup", "train", "eval", "checkpoint", "record")  # each must be hit
SIGNALS = ("SIGKILL", "SIGTERM")
EXPECTED_STATUS = {"SIGKILL": {-signal.SIGKILL}, "SIGTERM": {143, -signal.SIGTERM}}  # -15: before the handlers
HOLDS = {"eval": "eval:start", "checkpoint": "checkpoint:written", "record": "record:start"}  # short phases
HOLD_S = 3.0  # how long a process holds at a HOLDS point (a SIGTERM lets it go on afterwards)
TIME_FIELDS = {"wall_time_s", "train_time_s", "started_at", "finished_at", "resumed"}  # differ run to run
POLL_S = 0.01  # how often the trace is read while waiting for a process to reach a phase
ATTEMPT_TIMEOUT_S = 900  # one attempt longer than this is a hang: the check fails


# ---------------------------------------------------------------- the trace


@dataclass(frozen=True)
class Event:
    """One line of the phase trace."""

    t: float  # unix time, seconds
    pid: int  # the process that wrote it
    name: str  # the phase: setup, train, eval, checkpoint, record
    step: str  # start, end (checkpoint: also written)
    detail: str  # setup: the run name; record: its status; else '-'


def parse_trace(text: str) -> list[Event]:
    """The trace's events in time order (a line that is not an event, e.g. cut by a kill, is skipped)."""
    events = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        try:
            events.append(Event(float(parts[0]), int(parts[1]), *parts[2:]))
        except ValueError:
            continue
    return sorted(events, key=lambda e: e.t)


def read_trace(path: Path) -> list[Event]:
    """The events of a trace file (none where it does not exist)."""
    return parse_trace(path.read_text()) if path.exists() else []


def landed(events: Sequence[Event], pid: int, at: float) -> tuple[str, str | None]:
    """(phase, run) that process `pid` was in at unix time `at`: `startup` before its first event, `between`
    after a phase's end and before the next phase (cleanup, skip checks, Lightning's bookkeeping)."""
    mine = [e for e in events if e.pid == pid and e.t <= at]
    runs = [e.detail for e in mine if e.name == "setup"]
    if not mine:
        return "startup", None
    last = mine[-1]
    return ("between" if last.step == "end" else last.name), (runs[-1] if runs else None)


def retrained(events: Iterable[Event]) -> set[str]:
    """Runs that the trace shows completed twice, or set up or trained again after their complete record."""
    current: dict[int, str] = {}  # pid -> the run it works on
    done: set[str] = set()
    twice: set[str] = set()
    for e in sorted(events, key=lambda e: e.t):
        if e.name == "setup":
            if e.detail in done:
                twice.add(e.detail)
            current[e.pid] = e.detail
            continue
        run = current.get(e.pid)
        if run is None:
            continue
        if e.name == "train" and run in done:
            twice.add(run)
        if e.name == "record" and e.step == "end" and e.detail == COMPLETE:
            if run in done:
                twice.add(run)
            done.add(run)
    return twice


def measure(events: Sequence[Event], started_at: float) -> dict[str, float]:
    """From an uninterrupted run's trace (one process): start-up seconds, seconds per run, and each phase's mean
    seconds (a phase lasts from its first event to the next event of another phase, or its end)."""
    setups = [e.t for e in events if e.name == "setup"]
    ends = [e.t for e in events if e.name == "record" and e.step == "end"]
    if not setups or not ends:
        raise RuntimeError("the uninterrupted run traced no whole run: is nbm_lightning.core.trace hooked in?")
    spans: dict[str, list[float]] = defaultdict(list)
    previous = None
    for e, following in zip(events, events[1:]):
        if e.step == "end":
            previous = None
            continue
        if e.name == previous:
            spans[e.name][-1] += following.t - e.t
        else:
            spans[e.name].append(following.t - e.t)
        previous = e.name
    return {
        "startup_s": setups[0] - started_at,
        "run_s": (ends[-1] - setups[0]) / len(setups),
        **{f"{name}_s": statistics.fmean(values) for name, values in sorted(spans.items())},
    }


# ---------------------------------------------------------------- records


def snapshot(results: Path) -> dict[str, str]:
    """Run name -> sha256 of its complete record, for every valid complete record in the folder (file name =
    the record's own run name)."""
    complete = {}
    for path in sorted(results.glob("*.json")) if results.is_dir() else ():
        try:
            data = path.read_bytes()
            record = RunRecord.from_json(data, str(path))
        except (OSError, RecordError):
            continue
        if record.status == COMPLETE and record.run_name == path.stem:
            complete[path.stem] = hashlib.sha256(data).hexdigest()
    return complete


def completions(snapshots: Iterable[dict[str, str]]) -> Counter:
    """Run name -> completions: distinct complete records seen across the snapshots (one per attempt)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for snap in snapshots:
        for name, digest in snap.items():
            seen[name].add(digest)
    return Counter({name: len(digests) for name, digests in seen.items()})


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs run to run (times, the resumed flag, epoch times)."""
    curves = {k: v for k, v in (record.get("curves") or {}).items() if k != "epoch_time_s"}
    return {**{k: v for k, v in record.items() if k not in TIME_FIELDS}, "curves": curves}


def differing(chaos_results: Path, clean_results: Path, names: Iterable[str]) -> list[str]:
    """Runs whose record in `chaos_results` differs from the uninterrupted run's (both must exist)."""
    out = []
    for name in names:
        mine, clean = chaos_results / f"{name}.json", clean_results / f"{name}.json"
        if mine.exists() and clean.exists():
            if comparable(json.loads(mine.read_text())) != comparable(json.loads(clean.read_text())):
                out.append(name)
    return out


# ---------------------------------------------------------------- kills


@dataclass
class Kill:
    """One attempt and the kill aimed at it."""

    aim: str  # the phase aimed at (PHASES), or "random"
    signal: str  # SIGNALS
    pid: int = 0  # the killed process
    started_at: float = 0.0  # unix time the process was started
    sent_s: float | None = None  # seconds from the process's start to the signal (None: it ended first)
    sent_at: float | None = None  # unix time the signal was sent
    startup_s: float | None = None  # seconds from the start to the process's first traced event (None: none)
    status: int | None = None  # the process's exit status
    phase: str = ""  # where it landed (the trace's phase at sent_at); "" when not sent
    run: str | None = None  # the run it was working on


@dataclass(frozen=True)
class Aim:
    """How to kill one attempt: after a delay from the start, or a delay after a trace event (held there)."""

    delay: float  # seconds (after the start, or after the event)
    event: str | None = None  # `<phase>:<step>` to wait for first
    hold: bool = False  # hold the process at `event` (NBM_TRACE_HOLD)


def aim_for(phase: str, timing: dict[str, float], rng: random.Random) -> Aim:
    """How to land a kill in `phase` ("random": anywhere in the first runs after start-up), from `timing` (the
    uninterrupted run's measures, start-up updated by the latest attempt)."""
    if phase == "startup":
        return Aim(rng.uniform(0.2, 0.7) * timing["startup_s"])
    if phase == "train":
        return Aim(rng.uniform(0.1, 0.7) * timing["train_s"], "train:start")
    if phase in HOLDS:
        return Aim(0.0, HOLDS[phase], hold=True)
    return Aim(rng.uniform(0.0, 1.5 * timing["run_s"]), "setup:start")


def startup_of(events: Sequence[Event], pid: int, started_at: float) -> float | None:
    """Seconds from a process's start to its first traced event (None: it traced nothing)."""
    first = next((e.t for e in events if e.pid == pid), None)
    return None if first is None else first - started_at


def attempt(argv: list[str], folder: Path, env: dict[str, str], kill: Kill, aim: Aim | None) -> Kill:
    """Run the command once in `folder`, killed as `aim` says (None: to its end); the Kill filled in."""
    tracefile = Path(env[trace.TRACE_ENV])
    hold = {trace.HOLD_ENV: aim.event, trace.HOLD_S_ENV: str(HOLD_S)} if aim is not None and aim.hold else {}
    log = folder / f"attempt-{len(list(folder.glob('attempt-*.log'))):03d}.log"
    offset = tracefile.stat().st_size if tracefile.exists() else 0
    with open(log, "w") as out:
        kill.started_at = start = time.time()
        proc = subprocess.Popen(argv, cwd=folder, env={**env, **hold}, stdout=out, stderr=subprocess.STDOUT)
        kill.pid = proc.pid
        if aim is not None and _wait(proc, tracefile, offset, aim, start):
            kill.sent_at = time.time()
            proc.send_signal(getattr(signal, kill.signal))
            kill.sent_s = kill.sent_at - start
        try:
            kill.status = proc.wait(timeout=ATTEMPT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            kill.status = proc.wait()
            raise RuntimeError(f"an attempt ran past {ATTEMPT_TIMEOUT_S} s (log: {log})") from None
    events = read_trace(tracefile)
    kill.startup_s = startup_of(events, proc.pid, start)
    if kill.sent_at is not None:
        kill.phase, kill.run = landed(events, proc.pid, kill.sent_at)
    return kill


def _wait(proc: subprocess.Popen, tracefile: Path, offset: int, aim: Aim, start: float) -> bool:
    """Wait until the moment `aim` names; False when the process ended first."""
    if aim.event is not None:
        name, step = aim.event.split(":")
        seen = ""
        while not any(e.pid == proc.pid and (e.name, e.step) == (name, step) for e in parse_trace(seen)):
            if proc.poll() is not None:
                return False
            time.sleep(POLL_S)
            if tracefile.exists():
                with open(tracefile, "rb") as handle:
                    handle.seek(offset)
                    seen = handle.read().decode(errors="replace")
        start = time.time()
    try:
        proc.wait(timeout=max(aim.delay - (time.time() - start), 0.0) or 1e-3)
    except subprocess.TimeoutExpired:
        return proc.poll() is None
    return False


def plan(
    random_kills: int, each_signal: bool, rng: random.Random
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(aim, signal) of the aimed kills, shuffled: each phase once, the signals alternating (`each_signal`: each
    phase with each signal); and of the random kills (a random signal each)."""
    if each_signal:
        aimed = [(phase, sig) for phase in PHASES for sig in SIGNALS]
    else:
        first = rng.randrange(len(SIGNALS))
        aimed = [(phase, SIGNALS[(first + i) % len(SIGNALS)]) for i, phase in enumerate(PHASES)]
    rng.shuffle(aimed)
    return aimed, [("random", rng.choice(SIGNALS)) for _ in range(random_kills)]


@dataclass(frozen=True)
class Settings:
    """What the check does (the command line's options)."""

    runs: int = 6  # grid pairs 0..runs-1, 3 tiny epochs each
    random_kills: int = 2  # kills at random delays, after the aimed ones
    each_signal: bool = False  # aim at (and require) each phase with each signal, not each phase once
    retries: int = 3  # retries of an aimed kill that landed in another phase
    seed: int = 0  # of the plan's order, signals and delays

    def __post_init__(self) -> None:
        if self.runs < 1 or self.random_kills < 0 or self.retries < 0:
            raise ValueError(f"need runs >= 1, random kills >= 0, retries >= 0: got {self}")


def chaos(argv: list[str], folder: Path, env: dict[str, str], timing: dict[str, float], settings: Settings,
          rng: random.Random) -> tuple[list[Kill], list[dict[str, str]], int]:  # fmt: skip
    """Kill and restart as planned (the aimed kills first, one that missed its phase retried), then run to the
    end; the kills, the results folder's snapshot after every attempt, and the last attempt's exit status."""
    queue, chance = plan(settings.random_kills, settings.each_signal, rng)
    tries, kills, snapshots = Counter(), [], []
    while queue or chance:
        aim, sig = queue.pop(0) if queue else chance.pop(0)
        kill = attempt(argv, folder, env, Kill(aim, sig), aim_for(aim, timing, rng))
        kills.append(kill)
        snapshots.append(snapshot(folder / "results"))
        if kill.startup_s is not None:  # the machine's load changes: start-up as it is now
            timing = {**timing, "startup_s": kill.startup_s}
        tries[aim, sig] += 1
        if kill.sent_at is None and kill.status == 0:
            break  # every run done: nothing left to kill (the coverage check says what was missed)
        if aim != "random" and kill.phase != aim and tries[aim, sig] <= settings.retries:
            queue.append((aim, sig))
    final = attempt(argv, folder, env, Kill("none", ""), None)
    snapshots.append(snapshot(folder / "results"))
    return kills, snapshots, final.status if final.status is not None else -1


# ---------------------------------------------------------------- the verdict


def coverage(kills: Iterable[Kill]) -> dict[str, dict[str, int]]:
    """Phase -> signal -> kills that landed there (PHASES first, then any other phase hit)."""
    table: dict[str, dict[str, int]] = {p: dict.fromkeys(SIGNALS, 0) for p in PHASES}
    for k in kills:
        if k.sent_at is not None:
            table.setdefault(k.phase, dict.fromkeys(SIGNALS, 0))[k.signal] += 1
    return table


def unhit(table: dict[str, dict[str, int]], each_signal: bool = False) -> list[str]:
    """PHASES that no kill landed in (`each_signal`: `phase/signal` cells of PHASES x SIGNALS)."""
    if each_signal:
        return [f"{p}/{s}" for p in PHASES for s in SIGNALS if table.get(p, {}).get(s, 0) == 0]
    return [p for p in PHASES if sum(table.get(p, {}).values()) == 0]


def mis_ended(kills: Iterable[Kill]) -> list[str]:
    """Kills that did not end the process as they should (EXPECTED_STATUS), described."""
    return [f"{k.signal} in {k.phase}: exit {k.status}" for k in kills
            if k.sent_at is not None and k.status not in EXPECTED_STATUS[k.signal]]  # fmt: skip


def judge(
    names: Sequence[str], kills: Sequence[Kill], snapshots: Sequence[dict[str, str]], events: Sequence[Event],
    differ: Sequence[str], final_status: int, clean_status: int, each_signal: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The check's figures and its problems (empty: passed)."""
    table, counts = coverage(kills), completions(snapshots)
    final = snapshots[-1] if snapshots else {}
    lost = [n for n in names if n not in final]
    twice = sorted({n for n, c in counts.items() if c > 1} | retrained(events))
    sent = [k for k in kills if k.sent_at is not None]
    figures = {
        "kills_sent": dict(Counter(k.signal for k in sent)), "kills_per_phase": table,
        "kills_missed": sum(k.sent_at is None for k in kills), "kills_mis_ended": mis_ended(kills),
        "runs_completed": len(names) - len(lost), "runs_lost": lost, "runs_completed_twice": twice,
        "records_differing_from_uninterrupted": list(differ), "final_status": final_status,
        "clean_status": clean_status,
    }  # fmt: skip
    problems = [f"phase never hit: {cell}" for cell in unhit(table, each_signal)]
    problems += [f"kill not survived: {line}" for line in figures["kills_mis_ended"]]
    problems += [f"an attempt aimed at {k.aim} exited {k.status} before its kill" for k in kills
                 if k.sent_at is None and k.status != 0]  # fmt: skip
    problems += [f"run lost: {n}" for n in lost] + [f"run completed twice: {n}" for n in twice]
    problems += [f"record differs from the uninterrupted run's: {n}" for n in differ]
    problems += [f"{what} run exited {s}" for what, s in (("final", final_status), ("clean", clean_status)) if s]
    return {**figures, "problems": problems}


# ---------------------------------------------------------------- main


def command(data: Path, runs: int) -> list[str]:
    """The worker command every attempt runs."""
    return [sys.executable, "-m", "nbm_lightning.fit", f"--index=0-{runs - 1}", f"--data-dir={data}", *TINY]


def _env(tracefile: Path) -> dict[str, str]:
    """Every attempt's environment: the trace on, one compute thread a process (less thrashing on a busy machine;
    the uninterrupted run is the same)."""
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_SILENT="true", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    for key in (trace.HOLD_ENV, trace.HOLD_S_ENV, "WANDB_MODE"):
        env.pop(key, None)
    return {**env, trace.TRACE_ENV: str(tracefile)}


def run_check(work: Path, settings: Settings) -> dict[str, Any]:
    """Measure, kill, finish and judge in `work`; the report."""
    from nbm_lightning.synthetic.cifar10 import write_cifar10

    data = write_cifar10(work / "data", n_train=128, n_test=64, learnable=True, seed=0).parent
    argv, names = command(data, settings.runs), [run_name(*index_to_pair(i)) for i in range(settings.runs)]
    (clean := work / "clean").mkdir()
    (mess := work / "chaos").mkdir()
    clean_env = _env(work / "clean-trace.txt")
    started = time.time()
    clean_status = attempt(argv, clean, clean_env, Kill("none", ""), None).status
    if clean_status != 0:
        last = (clean / "attempt-000.log").read_text().strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"the uninterrupted run exited {clean_status}; its last line: {last[0][:200]}")
    timing = measure(read_trace(work / "clean-trace.txt"), started)
    rng = random.Random(settings.seed)
    kills, snapshots, final = chaos(argv, mess, _env(work / "chaos-trace.txt"), timing, settings, rng)
    events = read_trace(work / "chaos-trace.txt")
    differ = differing(mess / "results", clean / "results", names)
    verdict = judge(names, kills, snapshots, events, differ, final, clean_status, settings.each_signal)
    resumed = sum(bool(json.loads((mess / "results" / f"{n}.json").read_text()).get("resumed"))
                  for n in names if n in snapshots[-1])  # fmt: skip
    return {"timing_uninterrupted_s": {k: round(v, 3) for k, v in timing.items()}, "attempts": len(kills) + 1,
            "records_resumed": resumed, **verdict, "kills": [asdict(k) for k in kills]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the chaos check and print its report (exit 1 when any problem was found)."""
    from benchmarks.run import _cpu_model

    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    defaults = Settings()
    parser.add_argument("--runs", type=int, default=defaults.runs, help=f"grid pairs 0..runs-1 ({defaults.runs})")
    parser.add_argument("--random-kills", type=int, default=defaults.random_kills, help="kills at random delays")
    parser.add_argument("--each-signal", action="store_true", help="aim at each phase with each signal; require it")
    parser.add_argument("--retries", type=int, default=defaults.retries, help="retries of an aimed kill that missed")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=None, help="also write the report (JSON) here")
    parser.add_argument("--work", default=None, help="keep the runs' folders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        settings = Settings(args.runs, args.random_kills, args.each_signal, args.retries, args.seed)
    except ValueError as err:
        parser.error(str(err))
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = run_check(work, settings)
        except RuntimeError as err:  # the uninterrupted run failed, or an attempt hung
            print(f"chaos: FAIL: {err}", file=sys.stderr)
            return 1
    report = {
        "command": " ".join(["python -m benchmarks.chaos", *(argv if argv is not None else sys.argv[1:])]),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - start, 1), "runs": args.runs, **result,
    }  # fmt: skip
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    for problem in report["problems"]:
        print(f"chaos: FAIL: {problem}", file=sys.stderr)
    if not report["problems"]:
        print("chaos: PASS: every phase hit; 0 lost, 0 completed twice, 0 differing", file=sys.stderr)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
