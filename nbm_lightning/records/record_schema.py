"""A run record's stored fields as read: one check per field (type, allowed values) and the upgrade of version 1.

`nbm_lightning.records.run_record.RunRecord.from_dict` runs these on a record's JSON object before it makes the
RunRecord; a check raises TypeError (or ValueError) naming the field, which the reader reports as a malformed record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from ..core.validate import shown
from .outcome import RECORD_STATUSES
from .recipe import Recipe

EVAL_SPLITS = ("test", "val")  # per-epoch evaluation on the test set (published) or a held-out validation split
MAX_COUNT = 2**53  # the largest integer count (MACs, seconds) taken as sane: exact in a float64


def checked_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The record fields present in `data`, type-checked in field order; TypeError naming the first bad one."""
    values = {}
    for name, check in _CHECKS.items():
        if name in data:
            values[name] = check(data[name])
        elif name in REQUIRED:
            raise TypeError(f"field {name!r} missing")
    return values


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: `tf32` moves from the execution settings into the recipe, and the recipe hash is recomputed;
    ValueError where the recipe is not valid."""
    execution = data.get("execution") or {}
    try:
        upgraded = Recipe(**{**data["recipe"], "tf32": execution.get("tf32", False)})
    except (TypeError, ValueError) as err:
        raise ValueError(f"its recipe is not valid ({err})") from None
    old = {"schema_version": 1, "recipe_hash": data["recipe_hash"]}
    execution = {k: v for k, v in execution.items() if k != "tf32"} if "execution" in data else None
    upgraded_values = {"recipe": asdict(upgraded), "recipe_hash": upgraded.hash(), "upgraded_from": old}
    return {**data, **upgraded_values, **({"execution": execution} if execution is not None else {})}


# ---------------------------------------------------------------- field checks: value -> value, or TypeError


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {shown(value)}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {shown(value)}")
    return value


def _num(value: Any) -> float:
    """A JSON number (NaN/inf kept, for the rules to reject; an integer past float's range refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {shown(value)}")
    if isinstance(value, int) and abs(value) > MAX_COUNT:
        raise TypeError(f"expected a number of at most {MAX_COUNT}, got {shown(value)}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {shown(value)}")
    return value


def _choice(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise TypeError(f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value

    return check


def _curves(value: Any) -> dict[str, list[float]]:
    """A mapping of curve name -> list of numbers, all of one length."""
    curves = _dict(value)
    lengths = {len(v) if isinstance(v, list) else -1 for v in curves.values()}
    if -1 in lengths or len(lengths) > 1:
        raise TypeError("expected lists of one length per curve")
    return curves


def _ints(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError("expected a list of ints")
    return value


def _strs(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strs")
    return value


def _counts(value: Any) -> dict[str, int]:
    counts = _dict(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        raise TypeError("expected a mapping of ints")
    return counts


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {shown(value)}")
    return value


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _named(name: str, check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`check`, with the field's name in its error."""

    def checked(value: Any) -> Any:
        try:
            return check(value)
        except TypeError as err:
            raise TypeError(f"field {name!r} bad ({err})") from None

    return checked


REQUIRED = ("canonical", "seed", "arch", "recipe", "recipe_hash", "status")  # no default: a record must have them
TYPES: dict[str, Callable[[Any], Any]] = {
    "canonical": _str, "seed": _int, "arch": _str, "recipe": _dict, "recipe_hash": _str,
    "status": _choice(RECORD_STATUSES), "error": _optional(_str), "eval_split": _choice(EVAL_SPLITS),
    "epochs_completed": _optional(_int),
    "test_acc_final": _optional(_num), "test_acc_best": _optional(_num), "best_epoch": _optional(_int),
    "val_acc_final": _optional(_num), "val_acc_best": _optional(_num), "params": _optional(_int),
    "flops": _optional(_int), "ptflops_macs": _optional(_int), "curves": _optional(_curves),
    "train_time_s": _optional(_num), "wall_time_s": _optional(_num), "execution": _optional(_dict),
    "versions": _optional(_dict), "device": _optional(_dict), "wandb": _optional(_dict),
    "started_at": _optional(_str), "finished_at": _optional(_str), "resumed": _optional(_bool),
    "val_indices": _optional(_ints), "init_sha256": _optional(_str), "data": _optional(_dict),
    "upgraded_from": _optional(_dict),
    "layers": _optional(_strs), "op_counts": _optional(_counts), "n_nonzero": _optional(_int),
    "recipe_name": _optional(_str),
}  # fmt: skip
_CHECKS = {name: _named(name, check) for name, check in TYPES.items()}
