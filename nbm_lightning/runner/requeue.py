"""Runs that W&B requeues: its agent passes back every key of the run's config, not only the sweep's parameters.

A requeued sweep run (a preempted run W&B hands out again) is started with `--key=value` for every config key
the first attempt logged (wandb/wandb#9143, #4237), W&B's own `--_wandb=...` included. `fit` accepts exactly
those keys (`runkeys.config_keys()`): keys that restate the job or the recipe (`canonical`, `run_name`,
`recipe_hash`, `recipe_name`, the architecture keys) must agree with the job they resolve to; the execution
settings of the first machine (`data_dir`, `results_dir`, `ckpt_dir`, `accelerator`, ...) give way to this
machine's defaults and `--config`; W&B's own keys and the measured values (complexity, device) are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..core.validate import fail
from ..records.job import Job
from ..records.runkeys import ARCH_KEYS, COMPLEXITY_KEYS, DATA_KEY, MEASURED_KEYS, arch_config, recipe_name

RESTATED_KEYS = ("canonical", "run_name", "recipe_hash", "recipe_name", *ARCH_KEYS)  # must agree with the job
IGNORED_KEYS = (*COMPLEXITY_KEYS, *MEASURED_KEYS, DATA_KEY, "_wandb")  # measured, or W&B's own: never used
WANDB_KEY = "_wandb"  # present in every requeue argv


def is_requeue(given: Mapping[str, Any]) -> bool:
    """True when argv holds keys only a requeue passes (W&B's own, or restated ones)."""
    return any(key in given for key in (WANDB_KEY, *RESTATED_KEYS))


def restated(job: Job) -> dict[str, str]:
    """The values a requeue argv must restate for this job, as the strings W&B's agent passes."""
    recipe_hash = job.recipe.hash()
    values = {
        "canonical": job.canonical, "run_name": job.name, "recipe_hash": recipe_hash,
        "recipe_name": recipe_name(dataclasses.asdict(job.recipe), recipe_hash), **arch_config(job.arch),
    }  # fmt: skip
    return {key: str(value) for key, value in values.items()}


def check(job: Job, given: Mapping[str, Any]) -> None:
    """ValueError naming the first restated key whose value disagrees with the job's."""
    expected = restated(job)
    for key in RESTATED_KEYS:
        if key in given and str(given[key]) != expected[key]:
            raise fail(key, given[key], f"{expected[key]!r}, as {job.name} of recipe {job.recipe.hash()} has it")
