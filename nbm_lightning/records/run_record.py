"""The run record: one typed, versioned JSON file per (canonical code, seed), the owner of its schema (with
`record_schema.py`: each stored field's check and the upgrade of version 1, which reading runs).

The trainer writes it (`nbm_lightning.training.callbacks.RunRecorder`), `fit` and `sweep make --missing` read it to
decide what is done, the exporter reads it (and turns W&B runs into it) to build the benchmark, and the
benchmarks and tests build theirs through it. "Complete for this recipe" is one test, `RunRecord.problem`:
the exporter accepts exactly the runs it passes, `fit` skips exactly those, `sweep make --missing` requeues
exactly the others.

Schema versions (`SCHEMA_VERSION`; readers accept every version in `READABLE`):
  1  the first release: `tf32` was an execution field, outside the recipe hash.
  2  `tf32` is a recipe field (it changes the arithmetic of every convolution), so every recipe hash changed.
     A version-1 record is upgraded on reading: its `tf32` moves into the recipe, its recipe hash is
     recomputed, and the old hash is kept in `upgraded_from`. New field `init_sha256` (the initial weights).
  3  New fields stating the run's W&B config keys (`nbm_lightning.records.runkeys`): `layers` (the op name of each
     layer of the code as given: `layer_1` ... `layer_8`), `op_counts` (op name -> layers: `n_<op>`),
     `n_nonzero` and `recipe_name`. Where a record lacks them (versions 1 and 2, or built without them) they
     are derived from `arch` and the recipe when the RunRecord is made (nothing else changes).
  4  A third status, `preempted`: the run was stopped by SIGTERM/SIGUSR1 after saving a checkpoint (mid-epoch
     where the signal came during training); a rerun resumes it. Exports and `sweep make --missing` count a
     preempted run as missing, not as failed. New field `data` (what the run trained on: see
     `training/cifar10_files.py`'s `fingerprint`), None where unknown.
A record of a newer version than SCHEMA_VERSION is refused (`NewerRecordError`): never read as if known, never
trained or written over.

Data fingerprints (`data`): `kind` WHOLE_FILES hashes every CIFAR-10 file whole. A fingerprint without `kind`
(written before it) hashed only the first 64 KiB of each file (HEAD_64K): the two kinds never compare equal,
so an export never takes an old fingerprint for proof that two runs saw the same data.
A new field is added here with a default, the version is bumped, and an upgrade step is added for the
versions before it.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..arch.codes import canonical as canonical_of
from ..arch.codes import is_canonical
from ..core.atomic import write_json
from ..core.jsonread import JSONReadError, loads, read_bytes
from ..core.validate import shown
from .outcome import RECORD_STATUSES, Outcome
from .recipe import SEED_MAX, Recipe
from .record_schema import MAX_COUNT, TYPES, checked_fields, upgrade_v1
from .runkeys import record_fields

SCHEMA = "nbm_lightning.run_record"  # the `schema` field of every record
SCHEMA_VERSION = 4  # what this code writes
READABLE = (1, 2, 3, 4)  # what this code reads
COMPLETE, FAILED, PREEMPTED = (s.value for s in RECORD_STATUSES)  # the values of `status` (records.outcome), as text
CURVES = ("epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "epoch_time_s")  # per-epoch series
METRIC_FIELDS = {"best": "test_acc_best", "final": "test_acc_final"}  # an export's --metric -> the record field
RULES = ("identity", "status", "recipe", "truncated", "accuracy", "data", "complexity", "values")  # in order
MAX_RECORD_BYTES = 64 * 2**20  # the largest record file read (a 50-epoch record is ~ 30 KB)
WHOLE_FILES = "sha256/whole-files"  # data['kind'] of a fingerprint over whole files (cifar10_files.fingerprint)
HEAD_64K = "sha256/first-64KiB"  # the kind of a fingerprint without `kind` (records before WHOLE_FILES)
DATA_KINDS = (WHOLE_FILES, HEAD_64K)  # fingerprint kinds a record may carry
_DEFAULT_EPOCHS = next(f.default for f in fields(Recipe) if f.name == "epochs")  # where a recipe leaves it out

Complexity = Callable[[str], tuple[int, int]]  # canonical code -> (params, flops)


class RecordError(ValueError):
    """A file or mapping that is not a valid run record (the message names where it came from)."""


class NewerRecordError(RecordError):
    """A run record of a schema version newer than this code's: refused, never trained or written over."""


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
    recipe: Mapping[str, Any]  # the Recipe fields (nbm_lightning.records.recipe.Recipe)
    recipe_hash: str  # Recipe(**recipe).hash()
    status: str  # one of RECORD_STATUSES: Outcome.COMPLETE, FAILED or PREEMPTED
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
    data: Mapping[str, Any] | None = (
        None  # what it trained on: cifar10_files.fingerprint() (files' sizes and hash, md5 check)
    )
    upgraded_from: Mapping[str, Any] | None = None  # an older record's version and recipe hash, where upgraded
    layers: Sequence[str] | None = None  # op name per layer of `arch` (W&B config layer_1..layer_8)
    op_counts: Mapping[str, int] | None = None  # op name -> layers of `arch` using it (W&B config n_<op>)
    n_nonzero: int | None = None  # digits of `arch` that are not 0 (W&B config n_nonzero)
    recipe_name: str | None = None  # short name of the recipe: 'published', else differing fields + hash
    # Not stored: where this record was read from, for the identity rule.
    file_name: str | None = field(default=None, compare=False, repr=False)  # its file's name (None: not a file)
    from_summary: bool = field(default=False, compare=False, repr=False)  # rebuilt from a W&B config and summary

    def __post_init__(self) -> None:
        """Derive the fields that state the W&B config keys (version 3) where they are None; hold `status` as text
        (an Outcome member as its value: W&B would write an enum by its name)."""
        if isinstance(self.status, Outcome):
            object.__setattr__(self, "status", self.status.value)
        missing = [name for name in _DERIVED if getattr(self, name) is None]
        for name, value in _derive(self.arch, self.recipe, self.recipe_hash).items() if missing else ():
            if name in missing:
                object.__setattr__(self, name, value)

    @property
    def run_name(self) -> str:
        """`<canonical>-s<seed>`."""
        return run_name(self.canonical, self.seed)

    @property
    def recipe_epochs(self) -> int:
        """The recipe's epochs (its default where the recipe fields leave it out)."""
        return self.recipe.get("epochs", _DEFAULT_EPOCHS)

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
            newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
            raise (NewerRecordError if newer else RecordError)(
                f"{source!r}: run record version {str(version)[:20]}, this reader knows {list(READABLE)}"
                + (": written by a newer nbm_lightning (update it to use this record)" if newer else "")
            )
        try:
            values = checked_fields(data)
            values = upgrade_v1(values) if version == 1 else values
        except (TypeError, ValueError) as err:
            raise RecordError(f"malformed run record {source!r}: {err}") from None
        record = cls(**values)
        if data.get("run_name", record.run_name) != record.run_name:
            raise RecordError(
                f"malformed run record {source!r}: run_name {shown(data['run_name'])} is not {record.run_name}"
            )
        return record

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<memory>") -> RunRecord:
        """A record from JSON text (bounded depth); RecordError naming `source` where it is not one."""
        try:
            data = loads(text, source)
        except JSONReadError as err:
            raise RecordError(f"corrupt run record: {err}") from None
        return cls.from_dict(data, source)

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read a record file (a regular file of bounded size only); RecordError naming it where it is unreadable
        or not a record. The record remembers its file's name (the identity rule checks it)."""
        try:
            text = read_bytes(path, MAX_RECORD_BYTES)
        except JSONReadError as err:
            raise RecordError(f"unreadable run record: {err}") from None
        return replace(cls.from_json(text, str(path)), file_name=Path(path).name)

    def without_curves(self) -> RunRecord:
        """The same record without its curves (small to hold); curves that do not span its epochs are kept, so that
        the truncated rule still sees them."""
        spans = self.epochs_completed is not None and all(
            len(values) == self.epochs_completed for values in (self.curves or {}).values()
        )
        return replace(self, curves=None) if spans else self

    def problems(self, recipe_hash: str, expected: Complexity | None = None) -> Iterator[tuple[str, str | None]]:
        """(rule, problem or None) for each of RULES in order, lazily: a rule runs once the ones before it pass.

        identity: a canonical code, seed and file name that agree, and a recipe hash that is the hash of the
        recipe fields held; status: complete; recipe: `recipe_hash`; truncated: every epoch of the recipe, by
        `epochs_completed` and every curve; accuracy: present, finite, in [0, 100], best >= final, best_epoch
        within the epochs; data: a data fingerprint; complexity: the code's params/flops; values: sane counts
        and times.
        """
        yield "identity", self._identity_problem()
        yield (
            "status",
            None if self.status == COMPLETE else f"status {self.status}" + (f": {self.error}" if self.error else ""),
        )
        yield "recipe", None if self.recipe_hash == recipe_hash else f"recipe {self.recipe_hash}, not {recipe_hash}"
        yield "truncated", self._truncation()
        yield "accuracy", self._accuracy_problem()
        yield "data", _data_problem(self.data)
        yield "complexity", self._complexity_problem(expected or _complexity)
        yield "values", self._values_problem()

    def problem(self, recipe_hash: str, expected: Complexity | None = None) -> tuple[str, str] | None:
        """The first (rule, problem) that keeps this record from being a complete run of the recipe, or None."""
        return next(((rule, why) for rule, why in self.problems(recipe_hash, expected) if why), None)

    def is_complete_for(self, recipe_hash: str, expected: Complexity | None = None) -> bool:
        """True when this is a complete, sound run of the recipe: what export accepts and fit skips."""
        return self.problem(recipe_hash, expected) is None

    def _identity_problem(self) -> str | None:
        """The code, seed, file name and recipe hash do not agree (the record is not what it says it is)."""
        if not is_canonical(self.canonical):
            return f"canonical {shown(self.canonical)} is not a canonical code"
        try:
            ok = canonical_of(self.arch) == self.canonical
        except (TypeError, ValueError) as err:
            return str(err)
        if not ok:
            return f"arch {shown(self.arch)} is not a form of {self.canonical}"
        if not 0 <= self.seed <= SEED_MAX:
            return f"seed {shown(self.seed)} is not in 0..{SEED_MAX}"
        if self.file_name is not None and self.file_name != f"{self.run_name}.json":
            return f"file name {shown(self.file_name)} does not match the run it holds, {self.run_name}"
        held = recipe_hash_of(self.recipe)
        if held.startswith("!"):
            return f"its recipe is not valid ({held[1:]})"
        if held != self.recipe_hash:
            return f"recipe_hash {shown(self.recipe_hash)} is not the hash of its recipe fields ({held})"
        return None

    def _truncation(self) -> str | None:
        """A run that stopped before its recipe's last epoch, by its epoch count or its curves.

        An unknown epoch count (None) passes only in a record rebuilt from a W&B summary (runs logged before the
        summary carried it): there the trainer's `complete` status is all there is to go on.
        """
        done, epochs = self.epochs_completed, self.recipe_epochs
        if done is None:
            return None if self.from_summary else f"truncated: epochs_completed unknown (null) of {epochs} epochs"
        if done != epochs:
            return f"truncated: {done} of {epochs} epochs"
        short = {name: len(values) for name, values in (self.curves or {}).items() if len(values) != epochs}
        return f"truncated: curves of {short} epochs, not {epochs}" if short else None

    def _accuracy_problem(self) -> str | None:
        """A missing final accuracy or (test split) best accuracy; any accuracy non-finite, outside [0, 100], a best
        below its final, or a best epoch outside the epochs trained."""
        needed = (["test_acc_best"] if self.eval_split == "test" else []) + ["test_acc_final"]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            return f"no {', '.join(missing)}"
        names = ("test_acc_best", "test_acc_final", "val_acc_best", "val_acc_final")
        values = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        bad = {name: value for name, value in values.items() if not math.isfinite(value)}
        if bad:
            return f"non-finite accuracy {bad}"
        outside = {name: value for name, value in values.items() if not 0 <= value <= 100}
        if outside:
            return f"accuracy outside [0, 100] percent: {outside}"
        for best, final in (("test_acc_best", "test_acc_final"), ("val_acc_best", "val_acc_final")):
            if best in values and final in values and values[best] < values[final]:
                return f"{best} {values[best]} is below {final} {values[final]}"
        epochs = self.epochs_completed if self.epochs_completed is not None else self.recipe_epochs
        if self.best_epoch is not None and not 0 <= self.best_epoch < epochs:
            return f"best_epoch {shown(self.best_epoch)} is not one of the {epochs} epochs (0..{epochs - 1})"
        return None

    def _values_problem(self) -> str | None:
        """A count or time that is negative, non-finite or past MAX_COUNT."""
        values = {"ptflops_macs": self.ptflops_macs, "train_time_s": self.train_time_s, "wall_time_s": self.wall_time_s}
        bad = {k: shown(v) for k, v in values.items() if v is not None and not (0 <= v <= MAX_COUNT)}  # NaN fails too
        return f"{bad} outside 0..{MAX_COUNT}" if bad else None

    def _complexity_problem(self, expected: Complexity) -> str | None:
        """Reported params/flops that differ from the counts of the canonical code."""
        want = expected(self.canonical)
        if (self.params, self.flops) == tuple(want):
            return None
        return f"params/flops {self.params}/{self.flops} differ from complexity({self.canonical}) = {want[0]}/{want[1]}"


def _data_problem(data: Mapping[str, Any] | None) -> str | None:
    """A data fingerprint that is missing or not one of DATA_KINDS."""
    if not data:
        return f"no data fingerprint (data is {json.dumps(data)}): records before schema version 4 lack one"
    kind = data.get("kind", HEAD_64K)
    digest, size, checked = data.get("files_sha256"), data.get("bytes"), data.get("md5_checked")
    if (
        kind not in DATA_KINDS
        or not (isinstance(digest, str) and _HEX.fullmatch(digest))
        or not (isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_COUNT)
        or not isinstance(checked, bool)
    ):
        return f"malformed data fingerprint {shown(data)}: expected kind, files_sha256 (hex), bytes and md5_checked"
    return None


_RECIPE_HASHES: dict[Any, str] = {}  # the recipe's (name, type, value)s -> its hash, or '!' and why it is no recipe
_HEX = re.compile(r"[0-9a-f]{1,128}")  # a hex digest


def recipe_hash_of(recipe: Mapping[str, Any]) -> str:
    """Recipe(**recipe).hash() (memoized: a folder holds one recipe or a few), '!' and why where it is no recipe."""
    try:  # value types in the key: 1, 1.0 and true are equal in Python, not in a recipe
        key = tuple(sorted((str(k), type(v).__name__, v) for k, v in recipe.items()))
        hash(key)
    except (TypeError, AttributeError):  # a list or mapping among the values: a recipe holds none
        return "!its fields are not all numbers, strings or booleans"
    if key not in _RECIPE_HASHES:
        try:
            _RECIPE_HASHES[key] = Recipe(**recipe).hash()
        except (TypeError, ValueError) as err:
            _RECIPE_HASHES[key] = f"!{shown(' '.join(str(err).split()))}"
    return _RECIPE_HASHES[key]


def record_files(folder: str | Path) -> tuple[list[Path], list[str]]:
    """The regular *.json files of a folder, sorted, and a line naming each other *.json entry (FIFO, folder...)."""
    files, others = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            others.append(f"skipped {path}: {err.strerror or err}")
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        else:
            others.append(f"skipped {path}: not a regular file")
    return files, others


def _complexity(code: str) -> tuple[int, int]:
    """(params, flops) of a canonical code (nbm_lightning.arch.complexity; imports torch on first use)."""
    from ..arch.complexity import complexity

    counts = complexity(code)
    return counts.params, counts.flops


def _derive(arch: Any, recipe: Any, recipe_hash: Any) -> dict[str, Any]:
    """The version-3 fields from `arch` and the recipe; none where arch is not a valid code (the identity rule says)."""
    try:
        return record_fields(arch, recipe, recipe_hash)
    except (TypeError, ValueError, AttributeError):
        return {}


_DERIVED = ("layers", "op_counts", "n_nonzero", "recipe_name")  # version 3 fields derived for older records
_FIELDS = tuple(f for f in fields(RunRecord) if f.name in TYPES)  # the stored fields (not file_name, from_summary)
