"""The W&B keys of a run, in one place: its config (complete at `wandb.init`), summary, history, files and media.

A run's config carries the architecture in forms the W&B UI can chart: one key per searchable layer
(`layer_1` ... `layer_8`: the op's name from `search_space.OPS`, for the code AS GIVEN, i.e. the layout that
trained), the count of each op (`n_identity`, `n_mb_k3_e3`, `n_mb_k5_e6`), the digits that are not 0
(`n_nonzero`), beside the identity (code, canonical code, seed, recipe hash and a short recipe name), params,
FLOPs and every recipe and execution option. The run record (`nbm_lightning.records.run_record`) states the same values
(`layers`, `op_counts`, `n_nonzero`, `recipe_name`); `record_config` turns a record back into these keys.
The workspace (`nbm_lightning.runner.workspace`) and the benchmark Table (`nbm_lightning.export.artifact`) read
their keys from here. No torch here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from ..arch.codes import IDENTITY, NUM_LAYERS, OPS, canonical, validate
from .recipe import Execution, Recipe, field_names

# ---------------------------------------------------------------- config (set at wandb.init)
LAYER_KEYS: tuple[str, ...] = tuple(f"layer_{i}" for i in range(1, NUM_LAYERS + 1))  # op name per layer
COUNT_KEYS: dict[str, str] = {op.name: f"n_{op.name}" for op in OPS.values()}  # op name -> key of its count
NONZERO_KEY = "n_nonzero"  # digits that are not 0 (layers that are not the identity)
ARCH_KEYS: tuple[str, ...] = (*LAYER_KEYS, *COUNT_KEYS.values(), NONZERO_KEY)
IDENTITY_KEYS = ("arch", "canonical", "seed", "run_name", "recipe_hash", "recipe_name")
COMPLEXITY_KEYS = ("params", "flops")  # computed before wandb.init (nbm_lightning.arch.complexity)
MEASURED_KEYS = ("ptflops_macs", "device_name")  # added at fit start, measured on the built network
DATA_KEY = (
    "data"  # the data fingerprint (nbm_lightning.training.cifar10_files.fingerprint), as the run record's `data` field
)
PUBLISHED_RECIPE_NAME = "published"  # recipe_name of the built-in (published) recipe
RECIPE_NAME_FIELDS = 3  # differing recipe fields named in a custom recipe's name (the hash tells them apart)

# ---------------------------------------------------------------- summary, history, files, media
SUMMARY_KEYS = (
    "test_acc_final", "test_acc_best", "best_epoch", "train_time_s", "status", "epochs_completed", "finished_at",
    "error",
)  # fmt: skip  # RunRecord fields mirrored to the summary where not None
EPOCH_KEY = "epoch"  # history: the epoch number Lightning logs with every epoch's metrics
EVAL_ACC_KEY = "eval/acc"  # history: per-epoch evaluation accuracy
TRAIN_LOSS_KEY = "train/loss"  # history: per-epoch training loss
HISTORY_KEYS = {  # record curve name -> the metric logged once per epoch (nbm_lightning.training.module logs them)
    "lr": "lr", "train_loss": TRAIN_LOSS_KEY, "train_acc": "train/acc", "eval_loss": "eval/loss",
    "eval_acc": EVAL_ACC_KEY, "epoch_time_s": "time/epoch_s",
}  # fmt: skip
ARCH_IMAGE_KEY = "architecture"  # history: the picture of the network (nbm_lightning.arch.picture)
RECORD_FILE = "run_record.json"  # the run record, saved as a file of its W&B run

# ---------------------------------------------------------------- the benchmark artifact and its Table
BENCHMARK_TYPE = "benchmark"  # artifact type
EXPORT_JOB_TYPE = "export"  # job type of the run that logs the benchmark artifact
BENCHMARK_TABLE = "benchmark"  # the Table's name in the artifact and its key in the export run's summary
MEAN_KEY, STD_KEY = "mean_acc", "std"  # Table columns: mean and population std of the seeds' accuracies


def seed_key(seed: int) -> str:
    """The Table column of one seed's accuracy."""
    return f"acc_seed_{seed}"


def table_columns(seeds: Sequence[int]) -> list[str]:
    """The benchmark Table's columns: code, one per layer, params, FLOPs, each seed's accuracy, mean, std."""
    return ["code", *LAYER_KEYS, *COMPLEXITY_KEYS, *map(seed_key, seeds), MEAN_KEY, STD_KEY]


# ---------------------------------------------------------------- values


def layer_ops(code: str) -> list[str]:
    """The op name of each searchable layer of a code as given."""
    return [OPS[digit].name for digit in validate(code)]


def op_counts(code: str) -> dict[str, int]:
    """Op name -> number of layers of the code using it (every op, zeros included)."""
    return {op.name: validate(code).count(op.digit) for op in OPS.values()}


def n_nonzero(code: str) -> int:
    """Digits of the code that are not 0."""
    return sum(digit != IDENTITY for digit in validate(code))


def arch_config(code: str) -> dict[str, Any]:
    """The architecture keys of a code as given: layer_1..layer_8, the op counts and n_nonzero."""
    counts = op_counts(code)
    return {
        **dict(zip(LAYER_KEYS, layer_ops(code))),
        **{COUNT_KEYS[name]: n for name, n in counts.items()},
        NONZERO_KEY: n_nonzero(code),
    }


def recipe_name(recipe: Mapping[str, Any], recipe_hash: str) -> str:
    """'published' for the built-in recipe, else its first differing fields and its hash, e.g. 'epochs=2 (a1b2c3)'."""
    published = _published_recipe()
    differing = [f"{k}={v}" for k, v in recipe.items() if k not in published or published[k] != v]
    if not differing:
        return PUBLISHED_RECIPE_NAME
    more = len(differing) - RECIPE_NAME_FIELDS
    listed = ",".join(differing[:RECIPE_NAME_FIELDS]) + (f",+{more}" if more > 0 else "")
    return f"{listed} ({recipe_hash[:6]})"


@cache
def _published_recipe() -> dict[str, Any]:
    """The built-in recipe's fields (computed once)."""
    return dataclasses.asdict(Recipe())


def record_fields(arch: str, recipe: Mapping[str, Any], recipe_hash: str) -> dict[str, Any]:
    """The run record's fields that state the architecture keys and the recipe name
    (nbm_lightning.records.run_record)."""
    return {
        "layers": layer_ops(arch), "op_counts": op_counts(arch), "n_nonzero": n_nonzero(arch),
        "recipe_name": recipe_name(recipe, recipe_hash),
    }  # fmt: skip


def run_config(
    arch: str, seed: int, recipe: Recipe, execution: Execution, params: int, flops: int, run_name: str
) -> dict[str, Any]:
    """Everything a run's W&B config holds at `wandb.init` (MEASURED_KEYS follow at fit start)."""
    recipe_hash = recipe.hash()
    identity = {
        "arch": arch, "canonical": canonical(arch), "seed": seed, "run_name": run_name, "recipe_hash": recipe_hash,
        "recipe_name": recipe_name(dataclasses.asdict(recipe), recipe_hash),
    }  # fmt: skip
    complexity = {"params": params, "flops": flops}
    return {
        **identity,
        **arch_config(arch),
        **complexity,
        **dataclasses.asdict(recipe),
        **dataclasses.asdict(execution),
    }


def config_keys() -> tuple[str, ...]:
    """Every key `fit` logs to a run's W&B config: identity, architecture, complexity, recipe, execution, measured."""
    options = (*field_names(Recipe), *field_names(Execution))
    return (*IDENTITY_KEYS, *ARCH_KEYS, *COMPLEXITY_KEYS, *options, DATA_KEY, *MEASURED_KEYS)


def record_config(record: Any) -> dict[str, Any]:
    """The config values (identity, architecture, complexity) that a run record (RunRecord) states."""
    layers, counts = record.layers or [], record.op_counts or {}
    return {
        **{key: getattr(record, key) for key in IDENTITY_KEYS},
        **dict(zip(LAYER_KEYS, layers)),
        **{COUNT_KEYS[name]: n for name, n in counts.items() if name in COUNT_KEYS},
        NONZERO_KEY: record.n_nonzero,
        **{key: getattr(record, key) for key in COMPLEXITY_KEYS},
    }


def summary(record: Any) -> dict[str, Any]:
    """The summary keys of a run record (RunRecord) that are not None."""
    values = {key: getattr(record, key) for key in SUMMARY_KEYS}
    return {key: value for key, value in values.items() if value is not None}
