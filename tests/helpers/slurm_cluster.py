"""A throw-away one-node SLURM cluster for the tests: Debian's munged, slurmctld and slurmd, started as root with
their own configuration, key, ports, state, spool and log folders under one temporary folder, stopped at the end.

Install the packages with `apt-get install -y slurmctld slurmd slurm-client munge` (.ci/run does it).
`unavailable()` says why a cluster cannot be started here (not root, not Debian, packages missing).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "squeue", "sinfo")
SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"  # where Debian puts the daemons (/usr/sbin is not on every PATH)
START_TIMEOUT_S = 60  # daemons up and the node idle
STOP_TIMEOUT_S = 30  # jobs ended and daemons gone


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def unavailable() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    if os.geteuid() != 0:
        return "not root: the SLURM daemons of the test cluster run as root"
    if not Path("/etc/debian_version").is_file():
        return "not Debian: the test cluster uses Debian's SLURM packages"
    missing = [name for name in PROGRAMS if _which(name) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install -y {' '.join(PACKAGES)}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    """MemTotal of /proc/meminfo, in MB."""
    match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return int(match.group(1)) // 1024 if match else 1024


class Cluster:
    """One node (this machine, sized from nproc and its memory), one partition `test`, requeue allowed."""

    def __init__(self, root: Path, min_cpus: int = 1):
        self.root = Path(root)
        self.node = socket.gethostname().split(".")[0]
        self.cpus = max(len(os.sched_getaffinity(0)), min_cpus)  # nproc, or more where jobs must run at once
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{os.environ.get('PATH', '')}:{SBIN_PATH}"}
        self.daemons: list[subprocess.Popen] = []

    # ------------------------------------------------------------ start and stop

    def start(self) -> None:
        """munged, slurmctld and slurmd in the foreground (our children); returns once the node is idle."""
        for name in ("munge", "state", "spool", "log"):
            (self.root / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = self.root / "munge" / "munge.socket"
        munge = self.root / "munge"
        self._spawn("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
                    f"--pid-file={munge / 'munged.pid'}", f"--log-file={self.root / 'log' / 'munged.log'}",
                    f"--seed-file={munge / 'munged.seed'}")  # fmt: skip
        self._wait(socket_path.exists, "munged's socket")
        self.conf.write_text(self._config(socket_path))
        self._spawn("slurmctld", "-D", "-c", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf), "-N", self.node)
        self._wait(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", "an idle node")

    def _config(self, munge_socket: Path) -> str:
        r = self.root
        return "\n".join([
            "ClusterName=nbmtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket},cred_expire=5",  # cred_expire: also how long a requeued job waits
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            "ProctrackType=proctrack/linuxproc",  # no cgroups needed
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",  # tasks share the node, one CPU each
            "SlurmdParameters=config_overrides",
            "JobRequeue=1",
            "ReturnToService=2",
            "KillWait=30",  # SIGTERM to SIGKILL on scancel (the default): time to save a checkpoint
            "MinJobAge=600",  # finished jobs stay visible to `scontrol show job` (Restarts=...)
            "SchedulerParameters=sched_interval=1,bf_interval=1",  # a requeued task starts when its BeginTime comes
            "DefMemPerCPU=256",  # MB, for jobs that ask none (the default is the whole node)
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={_memory_mb()} State=UNKNOWN",
            "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ])  # fmt: skip

    def _spawn(self, program: str, *argv: str) -> None:
        log = open(self.root / "log" / f"{program}.log", "ab")  # noqa: SIM115 (the daemon holds it)
        self.daemons.append(
            subprocess.Popen([_which(program) or program, *argv], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        )
        log.close()

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            dead = [p.args[0] for p in self.daemons if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                why = f"exited: {', '.join(dead)}" if dead else f"none after {START_TIMEOUT_S} s"
                raise RuntimeError(
                    f"SLURM test cluster: no {what} ({why}); logs in {self.root / 'log'}:\n{self.logs()}"
                )
            time.sleep(0.1)

    def steps(self) -> list[Path]:
        """The sockets of the job steps still alive (each slurmstepd holds one in the spool folder)."""
        return list((self.root / "spool").glob(f"{self.node}_*"))

    def logs(self) -> str:
        """The tail of every daemon's log."""
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted((self.root / "log").iterdir())
        )

    def stop(self) -> None:
        """Cancel every job, wait until none is left, then stop the daemons (SIGTERM, then SIGKILL)."""
        if self.daemons and all(p.poll() is None for p in self.daemons):
            self.run("scancel", "--signal=KILL", "--full", "--quiet", "--user=root", check=False)  # the running
            self.run("scancel", "--quiet", "--user=root", check=False)  # and the pending
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while (self.run("squeue", "-h", check=False).stdout.strip() or self.steps()) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.2)  # until every job has ended and its slurmstepd is gone
        for proc in reversed(self.daemons):  # slurmd, slurmctld, munged
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.daemons.clear()

    # ------------------------------------------------------------ commands

    def run(self, *argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        kwargs.setdefault("env", self.env)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def sbatch(self, *argv: str, **kwargs) -> str:
        """Submit; the job id."""
        return self.run("sbatch", "--parsable", *argv, **kwargs).stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o` of one job (or array task, `JOB_TASK`), as key=value pairs."""
        text = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def jobs(self) -> list[str]:
        """The ids (`JOB_TASK` for array tasks) of every job still pending or running."""
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def wait_idle(self, timeout_s: float) -> None:
        """Until no job is pending or running."""
        deadline = time.monotonic() + timeout_s
        while self.jobs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout_s} s: {self.run('squeue').stdout}")
            time.sleep(0.2)
