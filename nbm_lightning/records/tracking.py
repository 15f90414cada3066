"""Weights & Biases set-up: pick the mode without ever prompting, build the Lightning logger, start other runs."""

from __future__ import annotations

import atexit
import contextlib
import functools
import netrc
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..core.errors import UserError
from ..core.validate import shown
from .runkeys import EVAL_ACC_KEY, TRAIN_LOSS_KEY

DEFAULT_BASE_URL = "https://api.wandb.ai"
_NAME = r"[\w.-]+"  # an entity, project or sweep id
WANDB_PATH_RE = re.compile(rf"^({_NAME})/({_NAME})(?:/({_NAME}))?$")  # ENTITY/PROJECT[/SWEEP_ID]
_FALLBACK: dict[str, str] = {}  # "reason": why this process switched `auto` to offline (set_offline)


@dataclass(frozen=True)
class WandbPath:
    """A W&B project, or one sweep of it."""

    entity: str
    project: str
    sweep_id: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.entity, self.project, self.sweep_id) if p)


def parse_wandb_path(text: str, name: str, sweep: bool = False) -> WandbPath:
    """ENTITY/PROJECT (or ENTITY/PROJECT/SWEEP_ID where `sweep`), else a one-line UserError naming `name`."""
    match = WANDB_PATH_RE.match(text)
    if not match or (match[3] and not sweep):
        expected = "ENTITY/PROJECT" + ("[/SWEEP_ID]" if sweep else "")
        raise UserError(f"invalid {name} {shown(text)}: expected {expected}, e.g. my-team/nas-bench-macro")
    return WandbPath(match[1], match[2], match[3])


def has_credentials() -> bool:
    """True if a W&B API key is available without asking (env var or ~/.netrc entry for the server)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(requested: str) -> str:
    """'auto' -> $WANDB_MODE if set, else 'online' with credentials, else 'offline'; explicit modes stay."""
    if requested != "auto":
        return requested
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_credentials() else "offline"


def make_logger(
    mode: str,
    project: str,
    entity: str,
    name: str,
    group: str,
    tags: list[str],
    config: dict[str, Any],
    run_id: str | None,
    save_dir: Path,
) -> Any:
    """A WandbLogger for one run, as a mirror (WandbMirror: its calls stop, with one line, once W&B's service is
    gone); resumes `run_id` where given (unless a sweep agent chose the id)."""
    import wandb

    os.environ.setdefault("WANDB_CONSOLE", "off")  # keep the terminal's progress bar intact
    in_sweep = bool(os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"))
    kwargs: dict[str, Any] = {} if in_sweep or run_id is None else {"id": run_id, "resume": "allow"}
    save_dir.mkdir(parents=True, exist_ok=True)
    logger = _mirror_logger_class()(
        project=project,
        entity=entity or None,
        name=name,
        group=group,
        tags=tags,
        config=config,
        mode=mode,
        save_dir=str(save_dir),
        job_type="train",
        log_model=False,
        settings=_console_settings(wandb, mode),
        **kwargs,
    )
    logger.mirror = WandbMirror(name)
    logger._wandb_init.pop("anonymous", None)  # Lightning passes anonymous=None: W&B warns that it has no effect
    run = logger.experiment
    atexit.unregister(_teardown_at_exit)  # registered after W&B's own hook (wandb.init), so that it runs first
    atexit.register(_teardown_at_exit)
    if mode != "disabled":
        with logger.mirror.calls():
            run.define_metric(EVAL_ACC_KEY, summary="max,last")
            run.define_metric(TRAIN_LOSS_KEY, summary="min,last")
    return logger


# ---------------------------------------------------------------- W&B as a mirror: its service may go away
# SLURM sends SIGTERM to every process of a job (scancel, preemption), W&B's service process (wandb-core, which runs
# in a session of its own) too. The record and the checkpoint are the truth, W&B only mirrors them: a run that finds
# the service gone says so in one line and carries on (preempted, complete) without W&B.


def service_lost_errors() -> tuple[type[BaseException], ...]:
    """What W&B's calls raise once its service is gone (wandb 0.31): the socket's errors (ConnectionResetError
    'Connection lost', BrokenPipeError) and its mailbox's (a request on, or a wait for a reply from, a closed one)."""
    from wandb.sdk.mailbox import HandleAbandonedError, MailboxClosedError

    return (ConnectionError, MailboxClosedError, HandleAbandonedError)


class WandbMirror:
    """One run's W&B mirror: live until a W&B call finds the service gone, then off for the rest of the run."""

    def __init__(self, run_name: str):
        self.run_name = run_name  # the run the one line names
        self.lost: str | None = None  # why the service is gone (the error a call raised), once found

    @contextlib.contextmanager
    def calls(self) -> Iterator[None]:
        """Around W&B calls: a call that finds the service gone ends the mirror (one line), never the run."""
        try:
            yield
        except service_lost_errors() as err:
            self.lose(err)

    def lose(self, err: BaseException) -> None:
        """Say once that the service is gone, and let go of it (the next run of this process starts its own)."""
        if self.lost is not None:
            return
        self.lost = " ".join(f"{type(err).__name__}: {err}".split())
        print(f"{self.run_name}: W&B service lost ({self.lost}); this run's W&B data stops here; its record and "
              "checkpoint are unaffected", file=sys.stderr, flush=True)  # fmt: skip
        from wandb.sdk.lib import module

        _teardown_at_exit()
        module.unset_globals()  # wandb.run: never finished, it would be the next WandbLogger's run (Lightning's reuse)


def _teardown_at_exit() -> None:
    """W&B's teardown (what its own atexit hook does, which it unregisters), where a service found gone only
    raises: W&B's hook would print a traceback at exit; an exit status from it is not this process's."""
    import wandb

    try:
        wandb.teardown()
    except (*service_lost_errors(), SystemExit):
        pass


@functools.cache
def _mirror_logger_class() -> type:
    """Lightning's WandbLogger whose calls (those Lightning makes) stop once its `mirror` is lost (built on first use:
    Lightning loads only with a run)."""
    from pytorch_lightning.loggers import WandbLogger

    def mirrored(method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> None:
            if self.mirror.lost is None:
                with self.mirror.calls():
                    method(self, *args, **kwargs)

        return call

    names = ("log_hyperparams", "log_metrics", "log_table", "log_text", "log_image", "log_audio", "log_video",
             "after_save_checkpoint", "finalize")  # fmt: skip
    return type("WandbMirrorLogger", (WandbLogger,), {name: mirrored(getattr(WandbLogger, name)) for name in names})


def _console_settings(wandb: Any, mode: str) -> Any:
    """What W&B prints: online, its warnings but not its banner and run summary (quiet); offline, nothing (silent):
    its three-line offline banner is replaced by the project's one line on `wandb sync` (offline_note)."""
    return wandb.Settings(silent=True) if mode == "offline" else wandb.Settings(quiet=True)


def set_offline(reason: str) -> None:
    """Log offline from now on in this process (`auto` resolves through $WANDB_MODE), and remember why."""
    os.environ["WANDB_MODE"] = "offline"
    _FALLBACK["reason"] = reason


def offline_reason(requested: str = "auto") -> str:
    """Why a run logs offline: the fallback of this process (set_offline), the mode asked for, or no credentials."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if requested == "offline":
        return "--wandb-mode offline"
    if "reason" in _FALLBACK and env == "offline":
        return _FALLBACK["reason"]
    if env in ("offline", "dryrun"):
        return f"WANDB_MODE={env}"
    return "no credentials found" if not has_credentials() else "offline asked for"


def offline_note(run: Any, requested: str = "auto") -> str:
    """The line that says why a run logs offline (`requested`: its --wandb-mode) and how to upload it."""
    return f"W&B offline ({offline_reason(requested)}): upload later with `wandb sync {Path(run.dir).parent}`"


def start_run(path: WandbPath, job_type: str, name: str, config: dict[str, Any]) -> Any:
    """A W&B run outside training (mode resolved as for `fit`: online with credentials, else offline)."""
    import wandb

    mode = resolve_mode("auto")
    if mode == "disabled":
        raise UserError(f"W&B is disabled (WANDB_MODE=disabled): nothing logged to {path}")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    run = wandb.init(entity=path.entity, project=path.project, job_type=job_type, name=name, config=config, mode=mode)
    if mode == "offline":
        print(offline_note(run))
    return run
