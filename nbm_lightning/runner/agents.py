"""Sweep agents on GPUs (`python -m nbm_lightning.sweep agents`): GPU ids checked against the machine, K agents
per GPU, each with its own CUDA_VISIBLE_DEVICES, started, logged and supervised (Ctrl-C and SIGTERM forwarded)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.validate import InvalidValue, fail
from ..records.outcome import Outcome

SWEEP_PATH_RE = re.compile(r"^[\w.-]+(/[\w.-]+){0,2}$")  # SWEEP_ID, PROJECT/SWEEP_ID or ENTITY/PROJECT/SWEEP_ID
INTERRUPTED = Outcome.STOPPED.exit_status  # exit status after Ctrl-C (130)
AGENT_MODES = ("inprocess", "subprocess")  # `agents --mode`
CUDA_ENV = "CUDA_VISIBLE_DEVICES"  # what each agent gets: its one GPU
GPU_UUID_RE = re.compile(r"(GPU|MIG)-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)*|MIG-GPU-[0-9A-Fa-f-]+/\d+/\d+")  # nvidia-smi -L forms
GPU_ID_FORMS = "an int >= 0 or a GPU-/MIG- UUID as `nvidia-smi -L` prints it (-1 would hide every GPU)"


@dataclass(frozen=True)
class Agent:
    """One agent process to start."""

    gpu: str  # its CUDA_VISIBLE_DEVICES (one GPU)
    slot: int  # its number on that GPU, 0..K-1
    argv: tuple[str, ...]  # the command
    env: tuple[tuple[str, str], ...]  # variables set on top of the inherited environment

    def shell(self) -> str:
        """The agent as one shell line (`$PATH` left for the shell to expand)."""
        assigns = " ".join(f"{k}={shlex.quote(v) if k != 'PATH' else v}" for k, v in self.env)
        return f"{assigns} {shlex.join(self.argv)}"

    def environ(self) -> dict[str, str]:
        """The full environment it runs with."""
        env = dict(os.environ)
        env.update({k: v.replace("$PATH", os.environ.get("PATH", "")) for k, v in self.env})
        return env


def visible_gpus(option: str | None) -> list[str]:
    """GPUs from --gpus, else $CUDA_VISIBLE_DEVICES, else every device torch sees (UserError on none or a bad id)."""
    given = requested_gpus(option)
    if given is not None:
        return given[1]
    import torch

    gpus = [str(i) for i in range(torch.cuda.device_count())]
    if not gpus:
        raise UserError(f"no GPU visible: pass --gpus 0,1,... (or set {CUDA_ENV})")
    return gpus


def requested_gpus(option: str | None) -> tuple[str, list[str]] | None:
    """(where they come from, the ids) of --gpus, else of a non-empty $CUDA_VISIBLE_DEVICES; None where neither."""
    if option is not None:
        return "--gpus", parse_gpu_ids("--gpus", option)
    text = os.environ.get(CUDA_ENV, "")
    return (CUDA_ENV, parse_gpu_ids(CUDA_ENV, text)) if text.strip() else None


def parse_gpu_ids(source: str, text: str) -> list[str]:
    """Distinct GPU ids separated by commas: ints >= 0 or GPU-/MIG- UUIDs (UserError naming `source`)."""
    try:
        ids = [_gpu_id(g.strip()) for g in text.split(",")]
        if len(set(ids)) != len(ids):
            raise fail("GPU ids", text, "distinct ids separated by commas, e.g. 0,1")
    except InvalidValue as err:
        raise UserError(f"bad {source}: {err}") from None
    return ids


def _gpu_id(gpu: str) -> str:
    """`gpu` as a CUDA device id (an int without leading zeros, or a GPU-/MIG- UUID); InvalidValue otherwise."""
    if re.fullmatch(r"[0-9]+", gpu):
        return str(int(gpu))
    if not GPU_UUID_RE.fullmatch(gpu):
        raise fail("GPU id", gpu, GPU_ID_FORMS)
    return gpu


def check_gpus_exist(source: str, gpus: Sequence[str]) -> None:
    """UserError naming the first id that is no GPU of this machine: ints against the GPUs torch counts without
    CUDA_VISIBLE_DEVICES, UUIDs (or their prefixes, as CUDA allows) against `nvidia-smi -L`, where it runs."""
    ints, uuids = [g for g in gpus if g.isdigit()], [g for g in gpus if not g.isdigit()]
    count = physical_gpu_count() if ints else 0
    absent = next((g for g in ints if int(g) >= count), None)
    if absent is not None:
        raise UserError(f"bad {source}: {fail('GPU id', absent, f'one of the {count} GPU(s) torch sees here')}")
    listed = gpu_uuids() if uuids else None
    absent = next((g for g in uuids if listed is not None and not any(u.startswith(g) for u in listed)), None)
    if absent is not None:
        known = f"the UUIDs `nvidia-smi -L` lists ({', '.join(listed or []) or 'none'})"
        raise UserError(f"bad {source}: {fail('GPU id', absent, known)}")


def physical_gpu_count() -> int:
    """The machine's GPUs as torch counts them without CUDA_VISIBLE_DEVICES (in a child process where it is set)."""
    if CUDA_ENV not in os.environ:
        import torch

        return torch.cuda.device_count()
    env = {k: v for k, v in os.environ.items() if k != CUDA_ENV}
    code = "import torch; print(torch.cuda.device_count())"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"cannot count the GPUs ({sys.executable} -c {code!r}): {last}")
    return int(proc.stdout)


def gpu_uuids() -> list[str] | None:
    """The GPU and MIG UUIDs `nvidia-smi -L` lists, or None where it is not available (UUIDs then go unchecked)."""
    found = shutil.which("nvidia-smi")
    try:
        proc = subprocess.run([found, "-L"], capture_output=True, text=True, timeout=60) if found else None
    except (OSError, subprocess.TimeoutExpired):
        proc = None
    if proc is None or proc.returncode != 0:
        print("GPU UUIDs not checked: `nvidia-smi -L` is not available", file=sys.stderr)
        return None
    return re.findall(r"UUID:\s*((?:GPU|MIG)-[^\s)]+)", proc.stdout)


def _python_path_env() -> tuple[tuple[str, str], ...]:
    """PATH with this interpreter's folder first, where plain `python` (what the agent runs) is another one."""
    here = Path(sys.executable).parent
    found = shutil.which("python")
    return () if found and Path(found).parent == here else (("PATH", f"{here}{os.pathsep}$PATH"),)


def plan(sweep_path: str, gpus: Sequence[str], per_gpu: int, mode: str = "inprocess") -> list[Agent]:
    """K agents per GPU, GPU-major: in-process workers (`python -m nbm_lightning.agent`) or W&B's CLI agent."""
    program = ("nbm_lightning.agent",) if mode == "inprocess" else ("wandb", "agent")
    argv = (sys.executable, "-m", *program, sweep_path)
    extra = _python_path_env() if mode == "subprocess" else ()
    return [Agent(gpu, k, argv, (("CUDA_VISIBLE_DEVICES", gpu),) + extra) for gpu in gpus for k in range(per_gpu)]


def launch(agents: Sequence[Agent], log_dir: Path | None) -> int:
    """Start the agents, print one line each, wait for all; forward Ctrl-C / SIGTERM to them."""
    procs, logs = [], []
    try:
        for number, agent in enumerate(agents):
            log = _log_file(log_dir, agent) if log_dir else None
            logs += [log] if log else []
            procs.append(
                subprocess.Popen(
                    agent.argv,
                    env=agent.environ(),
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                    start_new_session=True,
                )
            )  # the terminal's Ctrl-C reaches only us: forwarded once
            where = f", log {log.name}" if log else ""
            print(
                f"agent {number}: gpu {agent.gpu} slot {agent.slot} pid {procs[-1].pid}{where}: {agent.shell()}",
                flush=True,
            )
    except OSError as err:
        for proc in procs:
            proc.terminate()
        raise UserError(f"cannot start agent {len(procs)}: {err}") from None
    try:
        return supervise(procs)
    finally:
        for log in logs:
            log.close()


def _log_file(log_dir: Path, agent: Agent) -> Any:
    """An append-mode log file per agent, named by host, GPU and slot."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return open(log_dir / f"agent-{socket.gethostname()}-gpu{agent.gpu}-{agent.slot}.log", "a")


def supervise(procs: Sequence[subprocess.Popen]) -> int:
    """Wait for every process; the first SIGINT is forwarded as SIGINT, later ones and SIGTERM as SIGTERM."""
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        """Signal handler: pass the signal on to every agent still running."""
        received.append(signum)
        sig = signal.SIGINT if received == [signal.SIGINT] else signal.SIGTERM
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [proc.wait() for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return INTERRUPTED if received else int(any(codes))
