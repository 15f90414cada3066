"""Everything about a job that can be checked before training, checked before training (UserError: one line).

Folders writable (results, checkpoints) and their paths valid; the accelerator present; a precision the device
runs as asked; W&B reachable where online is asked for (in `auto` mode, an unreachable server falls back to
offline with a notice after REACH_TIMEOUT_S seconds instead of failing the run after training).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

from ..core.errors import UserError
from ..records.job import Job
from ..records.tracking import DEFAULT_BASE_URL, has_credentials, resolve_mode, set_offline

REACH_TIMEOUT_S = 5.0  # seconds to wait for the W&B server before calling it unreachable


def check(job: Job) -> None:
    """Raise UserError (one line) for anything that would fail this job later; may switch W&B `auto` to offline.

    Also prints a one-line warning for settings that run but mislead (see `warnings_for`). Leaves nothing behind.
    """
    for name, folder in (("--results-dir", job.execution.results_dir), ("--ckpt-dir", job.execution.ckpt_dir)):
        writable(name, Path(folder))
    device_supports(job)
    wandb_usable(job.execution.wandb_mode)
    for line in warnings_for(job):
        print(f"warning: {line}", file=sys.stderr)


def writable(option: str, folder: Path) -> None:
    """UserError unless `folder` exists (or can be made) and a file can be written in it; folders it had to make
    for the test are removed again (the run makes them when it writes)."""
    created = _first_missing(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nbm-write-test-"):
            pass
    except OSError as err:
        raise UserError(f"bad {option} {str(folder)!r}: cannot write there ({err.strerror or err})") from None
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of `folder`'s path that does not exist yet (None if it exists)."""
    missing = None
    for candidate in (folder, *folder.parents):
        try:
            if candidate.exists():
                break
        except OSError:  # a name too long, say: it cannot exist (mkdir will say why)
            pass
        missing = candidate
    return missing


def warnings_for(job: Job) -> list[str]:
    """Settings that run but mislead: epochs trained at learning rate 0, channels_last on a CPU."""
    lines = []
    idle = job.recipe.zero_lr_epochs()
    if idle:
        epochs = ", ".join(str(e + 1) for e in idle)
        lines.append(
            f"epoch(s) {epochs} of {job.recipe.epochs} train at learning rate 0 ({job.recipe.schedule} schedule): "
            "nothing is learned there; with few epochs use --schedule standard"
        )
    if job.execution.channels_last and _on_cpu(job):
        lines.append(
            "--channels-last on a CPU: its channels_last BatchNorm kernel is far less accurate (README, Speed)"
        )
    return lines


def _on_cpu(job: Job) -> bool:
    import torch

    accelerator = job.execution.accelerator
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def device_supports(job: Job) -> None:
    """UserError for an accelerator that is absent, or a precision the device would silently replace."""
    import torch

    accelerator, precision = job.execution.accelerator, job.recipe.precision
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"bad --accelerator {accelerator!r}: no CUDA GPU is visible here (use cpu or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise UserError("bad --accelerator 'mps': MPS is not available here (use cpu or auto)")
    if _on_cpu(job) and precision == "16-mixed":
        raise UserError("bad --precision '16-mixed' on a CPU: Lightning would run bf16-mixed instead; ask for that")


def wandb_usable(requested: str) -> None:
    """Online asked for: credentials and a reachable server, else UserError; `auto`: offline where unreachable."""
    mode = resolve_mode(requested)
    if mode != "online":
        return
    if not has_credentials():
        raise UserError("bad --wandb-mode 'online': no W&B credentials (run `wandb login` or set WANDB_API_KEY)")
    if _reachable(os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)):
        return
    if requested == "online":
        raise UserError(f"bad --wandb-mode 'online': the W&B server {_base()} is unreachable (try offline)")
    set_offline(f"W&B server {_base()} unreachable, credentials found")  # for every run of this process
    print(f"W&B server {_base()} unreachable within {REACH_TIMEOUT_S:.0f} s: logging offline", file=sys.stderr)


def _base() -> str:
    return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)


@cache
def _reachable(url: str) -> bool:
    """True if the server answers at all (any HTTP status) within REACH_TIMEOUT_S (asked once per process)."""
    try:
        urllib.request.urlopen(url, timeout=REACH_TIMEOUT_S).close()  # noqa: S310 (the configured W&B server)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True
