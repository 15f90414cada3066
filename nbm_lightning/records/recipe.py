"""Typed, validated configuration: the hashed training recipe and the (unhashed) execution settings.

`Recipe` is what defines an experiment: its fields go into every run record and its hash keys results.
The defaults are the published recipe (PUBLISHED.md, "Training recipe"). Everything that changes the
arithmetic of training is in the recipe, TF32 and precision included. `Execution` is how a run is carried
out (data pipeline, hardware, logging, paths, and the options that change only float rounding): it is
recorded but does not key results.

Every field declares its type, its help text and its valid range (`Field`); one function,
`validate_fields`, enforces them all with the checks of `nbm_lightning.core.validate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from ..core.validate import (
    InvalidType,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_path,
    check_str,
    cut,
    fail,
    shown,
    span,
)

CIFAR10_TRAIN_SIZE = 50_000  # images in the CIFAR-10 training set
CIFAR10_TEST_SIZE = 10_000  # images in the CIFAR-10 test set
SCHEDULES = ("published", "standard")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PIPELINES = ("tensor", "torchvision")
WANDB_MODES = ("auto", "online", "offline", "disabled")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
SGD_IMPLS = ("auto", "foreach", "fused")
SEEDS = (0, 1, 2)  # the published benchmark's seeds
SEED_MAX = 2**32 - 1  # the largest seed every generator accepts (Lightning's seed_everything bound)
CONFIG_MAX_BYTES = 64 * 1024  # the largest YAML config read: a flat file of the ~30 fields takes about 1 KiB
CONFIG_MAX_BRACKETS = 100  # '[' and '{' a config may hold: PyYAML scans deeply nested ones in quadratic time


def _opt(
    default: Any,
    help: str,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    path: bool = False,
) -> Any:
    """A dataclass field with its CLI help and valid range (choices, or low..high; `path`: a non-empty path)."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "low_open": low_open, "path": path}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Recipe:
    """The training recipe; defaults are the published one. Hashed into every run record."""

    epochs: int = _opt(50, "training epochs", low=1, high=10_000)
    batch_size: int = _opt(
        256, "training images per SGD step; the last partial batch is kept", low=1, high=CIFAR10_TRAIN_SIZE
    )
    lr: float = _opt(0.1, "peak learning rate of SGD", low=0, low_open=True)
    momentum: float = _opt(0.9, "SGD momentum", low=0, high=1)
    weight_decay: float = _opt(5e-4, "L2 weight decay, applied to all parameters", low=0, high=1)
    nesterov: bool = _opt(False, "Nesterov momentum (needs momentum > 0)")
    schedule: str = _opt(
        "published",
        "cosine schedule: 'published' = epoch e trains at lr/2*(1+cos(pi*(e+1)/epochs)) (old PyTorch order, "
        "last epoch at 0); 'standard' = lr/2*(1+cos(pi*e/epochs))",
        SCHEDULES,
    )
    precision: str = _opt("32-true", "Lightning precision: '32-true' (published fp32) or a mixed mode", PRECISIONS)
    tf32: bool = _opt(
        False, "allow TF32 in cuDNN convolutions and matmuls (Ampere+ GPUs): faster, not strict fp32 arithmetic"
    )
    val_size: int = _opt(
        0,
        "training images held out for per-epoch validation (0: evaluate on the test set, as published)",
        low=0,
        high=CIFAR10_TRAIN_SIZE - 1,
    )
    split_seed: int = _opt(0, "seed of the validation split's indices", low=0, high=SEED_MAX)
    train_limit: int = _opt(
        0, "use only the first N training images (0: all; smoke runs)", low=0, high=CIFAR10_TRAIN_SIZE
    )
    eval_limit: int = _opt(
        0, "use only the first N evaluation images (0: all; smoke runs)", low=0, high=CIFAR10_TRAIN_SIZE
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.nesterov and self.momentum == 0:
            raise fail("nesterov", True, "false when momentum is 0 (Nesterov momentum needs momentum > 0)")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based epoch `epoch` under this recipe's schedule."""
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch!r} outside 0..{self.epochs - 1}")
        t = epoch + 1 if self.schedule == "published" else epoch
        return 0.5 * self.lr * (1 + math.cos(math.pi * t / self.epochs))

    def zero_lr_epochs(self) -> list[int]:
        """0-based epochs trained at learning rate 0, but for the published schedule's last epoch of several
        (the published quirk: its cosine is stepped before each epoch, so the last one trains at 0)."""
        quirk = {self.epochs - 1} if self.schedule == "published" and self.epochs > 1 else set()
        return [e for e in range(self.epochs) if self.lr_at(e) == 0 and e not in quirk]

    def hash(self) -> str:
        """A short stable hash of the recipe: runs with the same hash are comparable."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]


@dataclass(frozen=True)
class Execution:
    """How a run is carried out; recorded with the run but not part of the recipe hash."""

    data_dir: str = _opt("./data", "folder holding (or receiving) cifar-10-batches-py/", path=True)
    download: bool = _opt(True, "download CIFAR-10 into data_dir when it is missing")
    pipeline: str = _opt(
        "tensor",
        "input pipeline: 'tensor' (dataset on the device, batched augmentation) or 'torchvision' "
        "(the reference DataLoader)",
        PIPELINES,
    )
    num_workers: int = _opt(2, "DataLoader worker processes of the torchvision pipeline", low=0, high=256)
    eval_batch_size: int = _opt(
        1024, "images per evaluation batch (no effect on results beyond float rounding)", low=1, high=CIFAR10_TRAIN_SIZE
    )
    accelerator: str = _opt("auto", "Lightning accelerator", ACCELERATORS)
    cudnn_benchmark: bool = _opt(True, "cudnn.benchmark (on in the published trainer)")
    channels_last: bool = _opt(False, "channels_last memory format for the network and inputs (other float rounding)")
    compile: bool = _opt(False, "torch.compile the network (one compile per run; other float rounding)")
    sgd_impl: str = _opt(
        "auto", "SGD implementation: 'auto' (PyTorch's choice), 'foreach' or 'fused' (the same update)", SGD_IMPLS
    )
    results_dir: str = _opt("results", "where run records <canonical>-s<seed>.json are written", path=True)
    ckpt_dir: str = _opt("checkpoints", "where per-run checkpoints for resuming live", path=True)
    keep_checkpoint: bool = _opt(False, "keep the last checkpoint after a complete run (deleted by default)")
    wandb_mode: str = _opt("auto", "W&B: 'auto' = online with credentials, else offline", WANDB_MODES)
    wandb_project: str = _opt("nas-bench-macro", "W&B project")
    wandb_entity: str = _opt("", "W&B entity (team or user); empty: your default")
    progress: bool = _opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        validate_fields(self)
        check_str("wandb_project", self.wandb_project, allow_empty=False)


ROUNDING_FIELDS = ("channels_last", "compile", "sgd_impl")  # execution fields that change only float rounding


def validate_fields(obj: Any) -> None:
    """Check every field of a frozen config dataclass against its type and range; store numbers as their type."""
    for f in dataclasses.fields(obj):
        object.__setattr__(obj, f.name, check_field(type(obj), f.name, getattr(obj, f.name)))


def check_field(cls: type, name: str, value: Any) -> Any:
    """`value` if it is valid for field `name` of `cls` (its type and range), else InvalidValue naming both."""
    kind, meta = field_type(cls, name), _meta(cls, name)
    if meta["choices"]:
        return check_choice(name, value, meta["choices"])
    if kind is bool:
        return check_bool(name, value)
    if kind is int:
        return check_int(name, value, meta["low"], meta["high"])
    if kind is float:
        return check_number(name, value, meta["low"], meta["high"], meta["low_open"])
    return check_path(name, value) if meta["path"] else check_str(name, value)


def valid_range(cls: type, name: str) -> str:
    """The documented valid range of a field, in words (shown by --help)."""
    kind, meta = field_type(cls, name), _meta(cls, name)
    if meta["choices"]:
        return "one of " + ", ".join(meta["choices"])
    if kind is bool:
        return "true or false"
    if kind in (int, float):
        return f"{'an int' if kind is int else 'a finite number'}{span(meta['low'], meta['high'], meta['low_open'])}"
    return "a non-empty path" if meta["path"] else "a string"


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def field_type(cls: type, name: str) -> type:
    """The declared type of field `name` of a config dataclass (resolved with typing.get_type_hints)."""
    return _hints(cls)[name]


def _meta(cls: type, name: str) -> Any:
    """The metadata (help, range) of field `name`."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def field_names(cls: type) -> list[str]:
    """The configurable field names of a config dataclass."""
    return [f.name for f in dataclasses.fields(cls)]


def split_overrides(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat mapping of fields into (recipe fields, execution fields); unknown keys are an error."""
    recipe_keys, exec_keys = set(field_names(Recipe)), set(field_names(Execution))
    unknown = [k for k in values if k not in recipe_keys | exec_keys]
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(map(shown, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}: "
            f"allowed are {sorted(recipe_keys | exec_keys)}"
        )

    def pick(keys: set[str]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in keys}

    return pick(recipe_keys), pick(exec_keys)


def build_configs(values: dict[str, Any]) -> tuple[Recipe, Execution]:
    """A Recipe and an Execution from a flat mapping of CLI/YAML values (coerced; ValueError on bad input)."""
    recipe_values, exec_values = split_overrides(values)
    recipe = Recipe(**{k: coerce(Recipe, k, v) for k, v in recipe_values.items()})
    return recipe, Execution(**{k: coerce(Execution, k, v) for k, v in exec_values.items()})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML config file of recipe/execution fields (ValueError, one line, for anything else).

    Anchors and aliases are refused before any value is built (an alias bomb expands exponentially), and so is a
    file over CONFIG_MAX_BYTES or with over CONFIG_MAX_BRACKETS brackets (deep nesting takes quadratic time).
    """
    import yaml

    name = shown(str(path))
    text = _config_text(Path(path), name)
    brackets = text.count("[") + text.count("{")
    if brackets > CONFIG_MAX_BRACKETS:
        raise ValueError(
            f"config file {name} holds {brackets} '[' and '{{' (at most {CONFIG_MAX_BRACKETS} read): "
            "expected a flat mapping of field: value"
        )
    try:
        data = yaml.load(text, Loader=_flat_loader()) or {}  # noqa: S506 (a SafeLoader, without aliases)
    except yaml.YAMLError as err:
        raise ValueError(f"config file {name} is not valid YAML: {_yaml_problem(err)}") from None
    except ValueError as err:  # PyYAML's own int(): a number of over 4300 digits
        why = cut(" ".join(str(err).split()))
        raise ValueError(f"config file {name} holds a value YAML cannot read: {why}") from None
    except RecursionError:
        raise ValueError(f"config file {name} is nested too deeply: expected a flat mapping of field: value") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {name} must be a mapping of field: value, got {type(data).__name__}")
    split_overrides(data)
    return data


def _yaml_problem(err: Exception) -> str:
    """A YAML error in one line: its problem and where (PyYAML's own text spans several lines)."""
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return cut(" ".join(str(problem).split())) + where


def _config_text(path: Path, name: str) -> str:
    """The text of a config file: a regular UTF-8 file of at most CONFIG_MAX_BYTES (ValueError otherwise)."""
    try:
        if not path.is_file():
            raise ValueError(f"config file {name} not found (expected a YAML file)")
        with open(path, "rb") as handle:
            data = handle.read(CONFIG_MAX_BYTES + 1)
    except OSError as err:
        raise ValueError(f"config file {name} cannot be read ({err.strerror or type(err).__name__})") from None
    if len(data) > CONFIG_MAX_BYTES:
        raise ValueError(f"config file {name} is over {CONFIG_MAX_BYTES:,} bytes: expected a flat mapping of fields")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {name} is not UTF-8 text (byte {err.start}): expected YAML") from None


@cache
def _flat_loader() -> type:
    """A yaml.SafeLoader that refuses anchors (&a) and aliases (*a), before the node they mark is built."""
    import yaml

    class FlatLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                problem = "anchors and aliases (&, *) are not allowed: write each value out"
                raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
            return super().compose_node(parent, index)

    return FlatLoader


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert a CLI/YAML value to the declared type of field `name` of `cls` (range checked by the dataclass)."""
    kind = field_type(cls, name)
    if kind is bool:
        return parse_bool(value, name)
    if kind in (int, float) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return _to(cls, kind, name, value)
    if isinstance(value, str):
        return value
    raise fail(name, value, f"{valid_range(cls, name)}, found {_kind_of(value)}", InvalidType)


def _kind_of(value: Any) -> str:
    """What a YAML value is, in words."""
    if value is None:
        return "null"
    kinds = {bool: "a bool", int: "an int", float: "a float", str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def parse_bool(value: Any, name: str = "boolean") -> bool:
    """'true/false/1/0/yes/no/on/off' (any case) or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise fail(name, value, "true or false")


def _to(cls: type, kind: type, name: str, value: Any) -> Any:
    """Convert `value` with `kind`, raising a one-line error naming the field and its valid range.

    A string must be ASCII (int() and float() would read other scripts' digits, which no code or index takes)."""
    try:
        if isinstance(value, str) and not value.isascii():
            raise ValueError
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise fail(name, value, valid_range(cls, name)) from None
