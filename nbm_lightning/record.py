"""The run record: one typed, versioned JSON file per (canonical code, seed), the only owner of its schema.

The trainer writes it (`nbm_lightning.callbacks.RunRecorder`), `fit` and `sweep make --missing` read it to
decide what is done, the exporter reads it (and turns W&B runs into it) to build the benchmark, and the
benchmarks and tests build theirs through it. "Complete for this recipe" is one test, `RunRecord.problem`:
the exporter accepts exactly the runs it passes, `fit` skips exactly those, `sweep make --missing` requeues
exactly the others.

Schema versions (`SCHEMA_VERSION`; readers accept every version in `READABLE`):
  1  the first release: `tf32` was an execution field, outside the recipe hash.
  2  `tf32` is a recipe field (it changes the arithmetic of every convolution), so every recipe hash changed.
     A version-1 record is upgraded on reading: its `tf32` moves into the recipe, its recipe hash is
     recomputed, and the old hash is kept in `upgraded_from`. New field `init_sha256` (the initial weights).
  3  New fields stating the run's W&B config keys (`nbm_lightning.runkeys`): `layers` (the op name of each
     layer of the code as given: `layer_1` ... `layer_8`), `op_counts` (op name -> layers: `n_<op>`),
     `n_nonzero` and `recipe_name`. Where a record lacks them (versions 1 and 2, or built without them) they
     are derived from `arch` and the recipe when the RunRecord is made (nothing else changes).
  4  A third status, `preempted`: the run was stopped by SIGTERM/SIGUSR1 after saving a checkpoint (mid-epoch
     where the signal came during training); a rerun resumes it. Exports and `sweep make --missing` count a
     preempted run as missing, not as failed. New field `data` (what the run trained on: see `data.py`'s
     `fingerprint`), None where unknown.
A new field is added here with a default, the version is bumped, and an upgrade step is added for the
versions before it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .atomic import write_json
from .runkeys import record_fields
from .search_space import canonical as canonical_of
from .search_space import is_canonical

SCHEMA = "nbm_lightning.run_record"  # the `schema` field of every record
SCHEMA_VERSION = 4  # what this code writes
READABLE = (1, 2, 3, 4)  # what this code reads
COMPLETE, FAILED, PREEMPTED = "complete", "failed", "preempted"  # values of `status`
STATUSES = (COMPLETE, FAILED, PREEMPTED)
EVAL_SPLITS = ("test", "val")  # per-epoch evaluation on the test set (published) or a held-out validation split
CURVES = ("epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "epoch_time_s")  # per-epoch series
METRIC_FIELDS = {"best": "test_acc_best", "final": "test_acc_final"}  # an export's --metric -> the record field
RULES = ("identity", "status", "recipe", "truncated", "accuracy", "complexity")  # RunRecord.problem's rules, in order

Complexity = Callable[[str], tuple[int, int]]  # canonical code -> (params, flops)


class RecordError(ValueError):
    """A file or mapping that is not a valid run record (the message names where it came from)."""


def run_name(canonical: str, seed: int) -> str:
    """The primary key of a run: `<canonical>-s<seed>` (W&B run name and record file stem)."""
    return f"{canonical}-s{seed}"


def record_path(results_dir: str | Path, canonical: str, seed: int) -> Path:
    """Where the record of (canonical, seed) lives."""
    return Path(results_dir) / f"{run_name(canonical, seed)}.json"


@dataclass(frozen=True)
class RunRecord:
    """One training run of (canonical code, seed) under one recipe; accuracies in percent."""

    canonical: str  # canonical form of `arch`: the primary key of results
    seed: int  # seed of every generator of the run
    arch: str  # the code as given to the trainer (its layout is what trained)
    recipe: Mapping[str, Any]  # the Recipe fields (nbm_lightning.config.Recipe)
    recipe_hash: str  # Recipe(**recipe).hash()
    status: str  # COMPLETE, FAILED or PREEMPTED
    error: str | None = None  # why it failed (one line), None when complete
    eval_split: str = "test"  # per-epoch evaluation split: "test" (published) or "val"
    epochs_completed: int | None = None  # epochs trained (None where the source does not say: W&B)
    test_acc_final: float | None = None  # test accuracy after the last epoch
    test_acc_best: float | None = None  # best per-epoch test accuracy (None with a validation split)
    best_epoch: int | None = None  # 0-based epoch of the best per-epoch evaluation accuracy
    val_acc_final: float | None = None  # validation accuracy after the last epoch (validation split only)
    val_acc_best: float | None = None  # best per-epoch validation accuracy (validation split only)
    params: int | None = None  # parameters of the trained network
    flops: int | None = None  # conv + linear weight MACs per 3x32x32 image (published definition)
    ptflops_macs: int | None = None  # ptflops 'aten' MACs (flops + 10)
    curves: Mapping[str, Sequence[float]] | None = None  # CURVES name -> one value per epoch
    train_time_s: float | None = None  # summed epoch times, seconds
    wall_time_s: float | None = None  # process time from the recorder's creation to the record, seconds
    execution: Mapping[str, Any] | None = None  # the Execution fields (not hashed)
    versions: Mapping[str, Any] | None = None  # library versions and the package's git commit
    device: Mapping[str, Any] | None = None  # type, name, count, host
    wandb: Mapping[str, Any] | None = None  # id, url, project, mode, sweep_id (None: W&B disabled)
    started_at: str | None = None  # ISO UTC time the run started (this process)
    finished_at: str | None = None  # ISO UTC time the record was written
    resumed: bool | None = None  # True where the run resumed from a checkpoint
    val_indices: Sequence[int] | None = None  # training-set indices held out (validation split only)
    init_sha256: str | None = None  # sha256 of the initial weights (float32 LE bytes in parameters() order)
    data: Mapping[str, Any] | None = None  # what it trained on: data.fingerprint() (files' sizes and hash, md5 check)
    upgraded_from: Mapping[str, Any] | None = None  # an older record's version and recipe hash, where upgraded
    layers: Sequence[str] | None = None  # op name per layer of `arch` (W&B config layer_1..layer_8)
    op_counts: Mapping[str, int] | None = None  # op name -> layers of `arch` using it (W&B config n_<op>)
    n_nonzero: int | None = None  # digits of `arch` that are not 0 (W&B config n_nonzero)
    recipe_name: str | None = None  # short name of the recipe: 'published', else differing fields + hash

    def __post_init__(self) -> None:
        """Derive the fields that state the W&B config keys (version 3) where they are None."""
        missing = [name for name in _DERIVED if getattr(self, name) is None]
        for name, value in _derive(self.arch, self.recipe, self.recipe_hash).items() if missing else ():
            if name in missing:
                object.__setattr__(self, name, value)

    @property
    def run_name(self) -> str:
        """`<canonical>-s<seed>`."""
        return run_name(self.canonical, self.seed)

    @property
    def pair(self) -> tuple[str, int]:
        """(canonical, seed): the key of a run within one recipe."""
        return self.canonical, self.seed

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON object stored on disk (schema, version and run name first; nested values shared)."""
        head = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_name": self.run_name}
        return {**head, **{f.name: getattr(self, f.name) for f in _FIELDS}}

    def to_json(self) -> str:
        """The record as JSON text (NaN/inf of a failed run are kept, as Python's json writes them)."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the record atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>") -> RunRecord:
        """A record from its JSON object (any READABLE version, upgraded); RecordError naming `source`.

        A record without `schema_version` is read as version 1 (the first release always wrote it).
        """
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RecordError(f"{source!r} is not a run record (no schema {SCHEMA!r})")
        version = data.get("schema_version", 1)
        if version not in READABLE:
            raise RecordError(f"{source!r}: run record version {version!r}, this reader knows {list(READABLE)}")
        try:
            values = _checked_fields(data)
        except (TypeError, ValueError) as err:
            raise RecordError(f"malformed run record {source!r}: {err}") from None
        record = cls(**(_upgrade_v1(values, source) if version == 1 else values))
        if data.get("run_name", record.run_name) != record.run_name:
            raise RecordError(
                f"malformed run record {source!r}: run_name {data['run_name']!r} is not {record.run_name}"
            )
        return record

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<memory>") -> RunRecord:
        """A record from JSON text; RecordError naming `source` where it is not one."""
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecordError(f"corrupt run record {source!r}: {err}") from None
        return cls.from_dict(data, source)

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read a record file; RecordError naming it where it is unreadable or not a record."""
        try:
            text = Path(path).read_bytes()
        except OSError as err:
            raise RecordError(f"cannot read run record {str(path)!r}: {err.strerror or err}") from None
        return cls.from_json(text, str(path))

    def without_curves(self) -> RunRecord:
        """The same record without its curves (small to hold)."""
        return replace(self, curves=None)

    def problems(self, recipe_hash: str, expected: Complexity | None = None) -> Iterator[tuple[str, str | None]]:
        """(rule, problem or None) for each of RULES in order, lazily: a rule runs once the ones before it pass."""
        yield "identity", self._identity_problem()
        yield (
            "status",
            None if self.status == COMPLETE else f"status {self.status}" + (f": {self.error}" if self.error else ""),
        )
        yield "recipe", None if self.recipe_hash == recipe_hash else f"recipe {self.recipe_hash}, not {recipe_hash}"
        yield "truncated", self._truncation()
        yield "accuracy", self._accuracy_problem()
        yield "complexity", self._complexity_problem(expected or _complexity)

    def problem(self, recipe_hash: str, expected: Complexity | None = None) -> tuple[str, str] | None:
        """The first (rule, problem) that keeps this record from being a complete run of the recipe, or None."""
        return next(((rule, why) for rule, why in self.problems(recipe_hash, expected) if why), None)

    def is_complete_for(self, recipe_hash: str, expected: Complexity | None = None) -> bool:
        """True when this is a complete, sound run of the recipe: what export accepts and fit skips."""
        return self.problem(recipe_hash, expected) is None

    def _identity_problem(self) -> str | None:
        if not is_canonical(self.canonical):
            return f"canonical {self.canonical!r} is not a canonical code"
        try:
            ok = canonical_of(self.arch) == self.canonical
        except (TypeError, ValueError) as err:
            return str(err)
        return None if ok else f"arch {self.arch} is not a form of {self.canonical}"

    def _truncation(self) -> str | None:
        """A run that stopped before its recipe's last epoch (an unknown epoch count passes: W&B)."""
        done, epochs = self.epochs_completed, self.recipe.get("epochs")
        return None if done is None or done == epochs else f"truncated: {done} of {epochs} epochs"

    def _accuracy_problem(self) -> str | None:
        """A missing or non-finite final accuracy, or (test split) best accuracy."""
        needed = (["test_acc_best"] if self.eval_split == "test" else []) + ["test_acc_final"]
        values = {name: getattr(self, name) for name in needed}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            return f"no {', '.join(missing)}"
        bad = {name: value for name, value in values.items() if not math.isfinite(value)}
        return f"non-finite accuracy {bad}" if bad else None

    def _complexity_problem(self, expected: Complexity) -> str | None:
        """Reported params/flops that differ from the counts of the canonical code."""
        want = expected(self.canonical)
        if (self.params, self.flops) == tuple(want):
            return None
        return f"params/flops {self.params}/{self.flops} differ from complexity({self.canonical}) = {want[0]}/{want[1]}"


def _complexity(code: str) -> tuple[int, int]:
    """(params, flops) of a canonical code (nbm_lightning.complexity; imports torch on first use)."""
    from .complexity import complexity

    counts = complexity(code)
    return counts.params, counts.flops


def _checked_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The record fields present in `data`, type-checked in field order; TypeError naming the first bad one."""
    values = {}
    for f in _FIELDS:
        if f.name in data:
            values[f.name] = _CHECKS[f.name](data[f.name])
        elif f.name in _REQUIRED:
            raise TypeError(f"field {f.name!r} missing")
    return values


def _upgrade_v1(data: dict[str, Any], source: str) -> dict[str, Any]:
    """v1 -> v2: `tf32` moves from the execution settings into the recipe, and the recipe hash is recomputed."""
    from .config import Recipe

    execution = data.get("execution") or {}
    try:
        upgraded = Recipe(**{**data["recipe"], "tf32": execution.get("tf32", False)})
    except (TypeError, ValueError) as err:
        raise RecordError(f"malformed run record {source!r}: its recipe is not valid ({err})") from None
    old = {"schema_version": 1, "recipe_hash": data["recipe_hash"]}
    execution = {k: v for k, v in execution.items() if k != "tf32"} if "execution" in data else None
    upgraded_values = {"recipe": asdict(upgraded), "recipe_hash": upgraded.hash(), "upgraded_from": old}
    return {**data, **upgraded_values, **({"execution": execution} if execution is not None else {})}


def _derive(arch: Any, recipe: Any, recipe_hash: Any) -> dict[str, Any]:
    """The version-3 fields from `arch` and the recipe; none where arch is not a valid code (the identity rule says)."""
    try:
        return record_fields(arch, recipe, recipe_hash)
    except (TypeError, ValueError, AttributeError):
        return {}


# ---------------------------------------------------------------- field checks: value -> value, or TypeError


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a str, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value


def _num(value: Any) -> float:
    """A JSON number (NaN/inf kept, for the rules to reject)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {value!r}")
    return value


def _choice(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise TypeError(f"expected one of {', '.join(choices)}, got {value!r}")
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
        raise TypeError(f"expected true or false, got {value!r}")
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


_REQUIRED = ("canonical", "seed", "arch", "recipe", "recipe_hash", "status")  # no default: a record must have them
_TYPES: dict[str, Callable[[Any], Any]] = {
    "canonical": _str, "seed": _int, "arch": _str, "recipe": _dict, "recipe_hash": _str, "status": _choice(STATUSES),
    "error": _optional(_str), "eval_split": _choice(EVAL_SPLITS), "epochs_completed": _optional(_int),
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
_DERIVED = ("layers", "op_counts", "n_nonzero", "recipe_name")  # version 3 fields derived for older records
_CHECKS = {name: _named(name, check) for name, check in _TYPES.items()}
_FIELDS = fields(RunRecord)
