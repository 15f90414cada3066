"""Weights & Biases set-up: pick the mode without ever prompting, and build the Lightning logger."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEFAULT_BASE_URL = "https://api.wandb.ai"


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
        **kwargs,
    )
    run = logger.experiment
    if mode != "disabled":
        run.define_metric("eval/acc", summary="max,last")
        run.define_metric("train/loss", summary="min,last")
    return logger
