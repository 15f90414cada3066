"""Weights & Biases set-up: pick the mode without ever prompting, build the Lightning logger, start other runs."""

from __future__ import annotations

import netrc
import os
import re
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
    """A WandbLogger for one run; resumes `run_id` where given (unless a sweep agent chose the id)."""
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    os.environ.setdefault("WANDB_CONSOLE", "off")  # keep the terminal's progress bar intact
    in_sweep = bool(os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"))
    kwargs: dict[str, Any] = {} if in_sweep or run_id is None else {"id": run_id, "resume": "allow"}
    save_dir.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
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
    logger._wandb_init.pop("anonymous", None)  # Lightning passes anonymous=None: W&B warns that it has no effect
    run = logger.experiment
    if mode != "disabled":
        run.define_metric(EVAL_ACC_KEY, summary="max,last")
        run.define_metric(TRAIN_LOSS_KEY, summary="min,last")
    return logger


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
