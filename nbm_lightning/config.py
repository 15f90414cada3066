"""Typed, validated configuration: the hashed training recipe and the (unhashed) execution settings.

`Recipe` is what defines an experiment: its fields go into every run record and its hash keys results.
The defaults are the published recipe (ORIGINAL.md, "Training recipe"). `Execution` is how a run is
carried out (data pipeline, hardware, logging, paths): it is recorded but does not key results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEDULES = ("published", "standard")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PIPELINES = ("tensor", "torchvision")
WANDB_MODES = ("auto", "online", "offline", "disabled")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
SEEDS = (0, 1, 2)  # the published benchmark's seeds


def _opt(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A dataclass field with CLI help (and allowed values)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Recipe:
    """The training recipe; defaults are the published one. Hashed into every run record."""

    epochs: int = _opt(50, "training epochs")
    batch_size: int = _opt(256, "training images per SGD step; the last partial batch is kept")
    lr: float = _opt(0.1, "peak learning rate of SGD")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(5e-4, "L2 weight decay, applied to all parameters")
    nesterov: bool = _opt(False, "Nesterov momentum")
    schedule: str = _opt(
        "published",
        "cosine schedule: 'published' = epoch e trains at lr/2*(1+cos(pi*(e+1)/epochs)) (old PyTorch order, "
        "last epoch at 0); 'standard' = lr/2*(1+cos(pi*e/epochs))",
        SCHEDULES,
    )
    precision: str = _opt("32-true", "Lightning precision: '32-true' (published fp32) or a mixed mode", PRECISIONS)
    val_size: int = _opt(
        0, "training images held out for per-epoch validation (0: evaluate on the test set, as published)"
    )
    split_seed: int = _opt(0, "seed of the validation split's indices")
    train_limit: int = _opt(0, "use only the first N training images (0: all; smoke runs)")
    eval_limit: int = _opt(0, "use only the first N evaluation images (0: all; smoke runs)")

    def __post_init__(self) -> None:
        _check_int(self, "epochs", 1)
        _check_int(self, "batch_size", 1)
        _check_int(self, "val_size", 0, 49_999)
        for name in ("split_seed", "train_limit", "eval_limit"):
            _check_int(self, name, 0)
        for name in ("lr", "momentum", "weight_decay"):
            _check_float(self, name)
        _check_choice(self, "schedule")
        _check_choice(self, "precision")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based epoch `epoch` under this recipe's schedule."""
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch!r} outside 0..{self.epochs - 1}")
        t = epoch + 1 if self.schedule == "published" else epoch
        return 0.5 * self.lr * (1 + math.cos(math.pi * t / self.epochs))

    def hash(self) -> str:
        """A short stable hash of the recipe: runs with the same hash are comparable."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


@dataclass(frozen=True)
class Execution:
    """How a run is carried out; recorded with the run but not part of the recipe hash."""

    data_dir: str = _opt("./data", "folder holding (or receiving) cifar-10-batches-py/")
    download: bool = _opt(True, "download CIFAR-10 into data_dir when it is missing")
    pipeline: str = _opt(
        "tensor",
        "input pipeline: 'tensor' (dataset on the device, batched augmentation) or 'torchvision' (reference DataLoader)",
        PIPELINES,
    )
    num_workers: int = _opt(2, "DataLoader worker processes of the torchvision pipeline")
    eval_batch_size: int = _opt(1024, "images per evaluation batch (no effect on results)")
    accelerator: str = _opt("auto", "Lightning accelerator", ACCELERATORS)
    cudnn_benchmark: bool = _opt(True, "cudnn.benchmark (on in the published trainer)")
    channels_last: bool = _opt(False, "channels_last memory format for the network and inputs")
    tf32: bool = _opt(False, "allow TF32 in cuDNN convolutions and matmuls (Ampere+ GPUs): faster, not strict fp32")
    compile: bool = _opt(False, "torch.compile the network (one compile per run)")
    sgd_impl: str = _opt(
        "auto", "SGD implementation: 'auto' (PyTorch's choice), 'foreach' or 'fused'", ("auto", "foreach", "fused")
    )
    results_dir: str = _opt("results", "where run records <canonical>-s<seed>.json are written")
    ckpt_dir: str = _opt("checkpoints", "where per-run checkpoints for resuming live")
    keep_checkpoint: bool = _opt(False, "keep the last checkpoint after a complete run (deleted by default)")
    wandb_mode: str = _opt("auto", "W&B: 'auto' = online with credentials, else offline", WANDB_MODES)
    wandb_project: str = _opt("nas-bench-macro", "W&B project")
    wandb_entity: str = _opt("", "W&B entity (team or user); empty: your default")
    progress: bool = _opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        _check_int(self, "num_workers", 0)
        _check_int(self, "eval_batch_size", 1)
        for name in ("pipeline", "accelerator", "sgd_impl", "wandb_mode"):
            _check_choice(self, name)


def field_names(cls: type) -> list[str]:
    """The configurable field names of a config dataclass."""
    return [f.name for f in dataclasses.fields(cls)]


def split_overrides(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat mapping of fields into (recipe fields, execution fields); unknown keys are an error."""
    recipe_keys, exec_keys = set(field_names(Recipe)), set(field_names(Execution))
    unknown = sorted(set(values) - recipe_keys - exec_keys)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}: allowed are {sorted(recipe_keys | exec_keys)}")
    pick = lambda keys: {k: v for k, v in values.items() if k in keys}  # noqa: E731
    return pick(recipe_keys), pick(exec_keys)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML config file of recipe/execution fields."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must be a mapping of field: value, got {type(data).__name__}")
    split_overrides(data)
    return data


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a CLI/YAML value to the declared type of field `name` of `cls`."""
    kind = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    if kind in ("bool", bool):
        return parse_bool(value)
    if kind in ("int", int) and not isinstance(value, bool):
        return _to(int, name, value)
    if kind in ("float", float) and not isinstance(value, bool):
        return _to(float, name, value)
    return value if isinstance(value, str) else _bad(name, value, "a string")


def parse_bool(value: Any) -> bool:
    """'true/false/1/0/yes/no' (any case) or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"invalid boolean {value!r}: use true or false")


def _to(kind: type, name: str, value: Any) -> Any:
    """Convert `value` with `kind`, raising a one-line error naming the field."""
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        return _bad(name, value, f"an {kind.__name__}" if kind is int else f"a {kind.__name__}")


def _bad(name: str, value: Any, allowed: str) -> Any:
    raise ValueError(f"invalid {name} {value!r}: expected {allowed}")


def _check_int(obj: Any, name: str, low: int, high: int | None = None) -> None:
    value = getattr(obj, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"invalid {name} {value!r}: expected an int {span}")


def _check_float(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid {name} {value!r}: expected a finite number >= 0")


def _check_choice(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    choices = next(f.metadata["choices"] for f in dataclasses.fields(obj) if f.name == name)
    if value not in choices:
        raise ValueError(f"invalid {name} {value!r}: expected one of {', '.join(choices)}")
