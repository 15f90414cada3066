"""The cost file: hardware cost of canonical networks on one device, its settings and provenance (no torch here).

One JSON object, written by `python -m nbm_lightning.cost` (atomically, as it goes) and read by `load`:

    {
      "format": "nbm_lightning.cost", "version": 1,          # FORMAT, VERSION; a reader refuses others
      "settings": {"device": "cpu", "batch_sizes": [1, 1024], "repeats": 10, "warmup": 3, "train_step": true,
                   "train_batch_size": 256, "threads": 2, "channels_last": false, "cudnn_benchmark": true,
                   "tf32": false, "dtype": "float32", "num_classes": 10},    # how every entry was measured (Settings)
      "device": {"type": "cpu", "name": "x86_64", "count": 2, "host": "node1"},
      "versions": {"python": "3.12.1", "torch": "2.4.1", ...},  # core.provenance.library_versions()
      "runs": [{"command": ["python", "-m", ...], "started": "2026-...", "host": "node1"}],  # one per invocation
      "costs": {                                              # keyed by CANONICAL code
        "01210210": {"params": 1234567, "flops": 12345678, "weights_bytes": 4987654,
                     "latency_ms": {"1": {"median": 3.1, "q1": 3.0, "q3": 3.3}, "1024": {...}},
                     "train_step_ms": {"median": 81.0, "q1": 80.2, "q3": 82.5},   # null without a train step
                     "peak_memory_bytes": {"1": 12345678, "1024": ...},           # CUDA only, else null
                     "train_peak_memory_bytes": 987654321}                        # CUDA with a train step, else null
      }
    }

Times are milliseconds of wall-clock time per call (a synchronised call on CUDA): the median and quartiles over
`repeats` timed calls after `warmup` untimed ones. Peak memory is torch's max_memory_allocated during one
measurement (the network, its inputs and what the calls allocate). `weights_bytes` is the size of the state_dict's
tensors (parameters and BatchNorm buffers). `load` refuses, in one line naming the file and the value, anything that
breaks these rules: a wrong format or version, unknown or missing keys, a code that is not canonical, times that are
not positive with q1 <= median <= q3, batch sizes other than the settings', memory where the device has none.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..arch.codes import unique_codes
from ..core.errors import UserError
from ..core.jsonread import JSONReadError, read_json
from ..core.keyedfile import check_envelope, check_provenance, dumps_keyed, read_entries
from ..core.validate import check_bool, check_choice, check_int, check_str, shown

FORMAT = "nbm_lightning.cost"  # the "format" field
VERSION = 1  # the "version" field; bump on any incompatible change
DEVICES = ("cpu", "cuda")
DTYPES = ("float32",)
MAX_BATCH = 65_536  # the largest batch size measured
MAX_REPEATS = 100_000  # the most timed calls per measurement
MAX_COUNT = 10**12  # the largest params, flops or byte count a file may hold
MAX_MS = 3.6e6  # the longest call a file may hold (one hour)
TOP_KEYS = ("format", "version", "settings", "device", "versions", "runs", "costs")
TIMING_KEYS = ("median", "q1", "q3")
ENTRY_KEYS = (
    "params", "flops", "weights_bytes", "latency_ms", "train_step_ms", "peak_memory_bytes", "train_peak_memory_bytes"
)  # fmt: skip


class CostFileError(UserError, ValueError):
    """A cost file that cannot be read or breaks its format (one line, exit status 2 on the command line)."""


@dataclass(frozen=True)
class Settings:
    """How every network of a file is measured; a file is resumed only with equal settings."""

    device: str  # "cpu" or "cuda"
    batch_sizes: tuple[int, ...]  # inference batch sizes, ascending and distinct
    repeats: int  # timed calls per measurement (median and quartiles over them)
    warmup: int  # untimed calls before them (at least 1: warm-up is excluded)
    train_step: bool  # whether a training step (forward, loss, backward, SGD step) is timed
    train_batch_size: int  # images per training step (the recipe's batch_size)
    threads: int  # torch intra-op threads (torch.get_num_threads())
    channels_last: bool  # network and inputs in channels_last memory format
    cudnn_benchmark: bool  # torch.backends.cudnn.benchmark (cuDNN's algorithm search; CUDA only)
    tf32: bool  # TF32 in cuDNN convolutions and matmuls (CUDA only; the recipe's False: strict float32)
    dtype: str = "float32"  # parameter and input dtype
    num_classes: int = 10  # classifier outputs (CIFAR-10)

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        sizes = self.batch_sizes
        for size in sizes if isinstance(sizes, tuple) else ():
            check_int("batch size", size, 1, MAX_BATCH)
        if not isinstance(sizes, tuple) or not sizes or list(sizes) != sorted(set(sizes)):
            raise CostFileError(f"invalid batch_sizes {shown(sizes)}: expected ascending distinct batch sizes")
        check_int("repeats", self.repeats, 3, MAX_REPEATS)
        check_int("warmup", self.warmup, 1, MAX_REPEATS)
        check_bool("train_step", self.train_step)
        check_int("train_batch_size", self.train_batch_size, 1, MAX_BATCH)
        check_int("threads", self.threads, 1, 4096)
        check_bool("channels_last", self.channels_last)
        check_bool("cudnn_benchmark", self.cudnn_benchmark)
        check_bool("tf32", self.tf32)
        check_choice("dtype", self.dtype, DTYPES)
        check_int("num_classes", self.num_classes, 2, 100_000)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain JSON."""
        return {**dataclasses.asdict(self), "batch_sizes": list(self.batch_sizes)}

    @classmethod
    def from_json(cls, value: Any) -> Settings:
        """Settings from parsed JSON (every field present, none unknown, each checked)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"settings {shown(keys)}: expected an object with keys {names}")
        sizes = value["batch_sizes"]
        return cls(**{**value, "batch_sizes": tuple(sizes) if isinstance(sizes, list) else sizes})


@dataclass(frozen=True)
class Timing:
    """One measurement's spread over its timed calls, milliseconds."""

    median: float  # median call time, ms
    q1: float  # first quartile, ms
    q3: float  # third quartile, ms

    def __post_init__(self) -> None:
        for name in TIMING_KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_MS:
                raise ValueError(f"{name} {shown(value)}: expected milliseconds in (0, {MAX_MS:g}]")  # nan too
        if not self.q1 <= self.median <= self.q3:
            raise ValueError(f"quartiles {self.q1!r} <= median {self.median!r} <= {self.q3!r} do not hold")

    @property
    def iqr(self) -> float:
        """Interquartile range, ms."""
        return self.q3 - self.q1

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3}

    @classmethod
    def from_json(cls, value: Any) -> Timing:
        if not isinstance(value, dict) or sorted(value) != sorted(TIMING_KEYS):
            raise ValueError(f"{shown(value)}: expected an object with keys {list(TIMING_KEYS)}")
        return cls(value["median"], value["q1"], value["q3"])


@dataclass(frozen=True)
class Entry:
    """The cost of one canonical network on the file's device."""

    params: int  # number of parameters
    flops: int  # conv + linear weight MACs per 3x32x32 image (the published `flops`)
    weights_bytes: int  # bytes of the state_dict's tensors (parameters and BatchNorm buffers)
    latency: Mapping[int, Timing]  # inference batch size -> time per call (eval mode, inference mode)
    train_step: Timing | None  # one SGD step at the settings' train_batch_size; None when not measured
    peak_memory: Mapping[int, int] | None  # inference batch size -> peak bytes allocated (CUDA only)
    train_peak_memory: int | None  # peak bytes allocated during the training steps (CUDA with a train step)

    def to_json(self) -> dict[str, Any]:
        peak = self.peak_memory
        return {
            "params": self.params,
            "flops": self.flops,
            "weights_bytes": self.weights_bytes,
            "latency_ms": {str(b): t.to_json() for b, t in self.latency.items()},
            "train_step_ms": None if self.train_step is None else self.train_step.to_json(),
            "peak_memory_bytes": None if peak is None else {str(b): v for b, v in peak.items()},
            "train_peak_memory_bytes": self.train_peak_memory,
        }


def check_entry(entry: Entry, settings: Settings) -> Entry:
    """`entry` if it fits `settings` (its batch sizes, train step, memory on CUDA only), else ValueError."""
    for name in ("params", "flops", "weights_bytes"):
        check_int(name, getattr(entry, name), 1, MAX_COUNT)
    if not 4 * entry.params <= entry.weights_bytes <= 8 * entry.params + 2**20:  # float32 params + BN buffers
        raise ValueError(f"weights_bytes {entry.weights_bytes} does not fit {entry.params} float32 parameters")
    if sorted(entry.latency) != list(settings.batch_sizes):
        raise ValueError(f"latency_ms at batch sizes {sorted(entry.latency)}, expected {list(settings.batch_sizes)}")
    if (entry.train_step is None) == settings.train_step:
        raise ValueError(f"train_step_ms {'missing' if settings.train_step else 'present'} (train_step "
                         f"{str(settings.train_step).lower()} in the settings)")  # fmt: skip
    cuda = settings.device == "cuda"
    train_peak = cuda and settings.train_step
    if (entry.peak_memory is not None) != cuda or (entry.train_peak_memory is not None) != train_peak:
        raise ValueError(f"peak memory must be recorded on cuda only (and train_peak_memory_bytes only with a train "
                         f"step), the device is {settings.device}")  # fmt: skip
    if entry.peak_memory is not None:
        if sorted(entry.peak_memory) != list(settings.batch_sizes):
            raise ValueError(f"peak_memory_bytes at batch sizes {sorted(entry.peak_memory)}, expected the settings'")
        for size, value in entry.peak_memory.items():
            check_int(f"peak_memory_bytes[{size}]", value, 1, MAX_COUNT)
    if entry.train_peak_memory is not None:
        check_int("train_peak_memory_bytes", entry.train_peak_memory, 1, MAX_COUNT)
    return entry


def _batch_keys(value: Any, name: str) -> dict[int, Any]:
    """A JSON object keyed by batch sizes written as decimal strings ("1", "1024") -> int keys."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} {shown(value)}: expected an object keyed by batch size")
    out = {}
    for key, item in value.items():
        if not (key.isascii() and key.isdigit() and str(int(key)) == key):
            raise ValueError(f"{name} key {shown(key)}: expected a batch size such as '1'")
        out[int(key)] = item
    return out


def entry_from_json(value: Any, settings: Settings) -> Entry:
    """An Entry from parsed JSON, checked against `settings`; ValueError naming the first problem."""
    if not isinstance(value, dict) or sorted(value) != sorted(ENTRY_KEYS):
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise ValueError(f"has {shown(keys)}, expected an object with keys {list(ENTRY_KEYS)}")
    latency = {b: Timing.from_json(t) for b, t in _batch_keys(value["latency_ms"], "latency_ms").items()}
    train = None if value["train_step_ms"] is None else Timing.from_json(value["train_step_ms"])
    peak = value["peak_memory_bytes"]
    peak = None if peak is None else _batch_keys(peak, "peak_memory_bytes")
    entry = Entry(
        value["params"], value["flops"], value["weights_bytes"], MappingProxyType(dict(sorted(latency.items()))),
        train, None if peak is None else MappingProxyType(peak), value["train_peak_memory_bytes"],
    )  # fmt: skip
    return check_entry(entry, settings)


@dataclass(frozen=True, eq=False)
class CostFile:
    """A cost file: the settings, the device and versions it was measured with, and one Entry per canonical code."""

    settings: Settings  # how every entry was measured
    device: Mapping[str, Any]  # type, name, count, host (core.provenance.device_info)
    versions: Mapping[str, Any]  # python, torch, ... (core.provenance.library_versions)
    runs: tuple[Mapping[str, Any], ...]  # one per invocation that measured into the file: command, started, host
    costs: Mapping[str, Entry]  # canonical code -> its cost, sorted by code
    source: str = "<memory>"  # where it was read from (error messages)

    def identity(self) -> dict[str, Any]:
        """What must be equal for measurements to be comparable (and a file resumed): settings, device, torch."""
        return {
            **self.settings.to_json(),
            "device type": self.device.get("type"),
            "device name": self.device.get("name"),
            "torch": self.versions.get("torch"),
        }

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "settings": self.settings.to_json(),
            "device": dict(self.device),
            "versions": dict(self.versions),
            "runs": [dict(r) for r in self.runs],
            "costs": {code: entry.to_json() for code, entry in sorted(self.costs.items())},
        }


def _check_header(data: dict[str, Any]) -> None:
    """ValueError unless the device, versions and runs blocks have the expected shape."""
    device = data["device"]
    if not isinstance(device, dict) or not {"type", "name"} <= set(device):
        raise ValueError(f"device {shown(device)}: expected an object with 'type' and 'name'")
    check_str("device name", device["name"], allow_empty=False)
    if device["type"] != data["settings"]["device"]:
        raise ValueError(f"device type {shown(device['type'])} differs from the settings' {data['settings']['device']}")
    check_provenance(data)


def from_json(data: Any, source: str = "<memory>") -> CostFile:
    """A CostFile from a parsed document; CostFileError naming `source` and the first problem."""
    try:
        check_envelope(data, source, FORMAT, VERSION, TOP_KEYS, "cost file")
    except ValueError as err:
        raise CostFileError(str(err)) from None
    try:
        settings = Settings.from_json(data["settings"])
        _check_header(data)
    except ValueError as err:
        raise CostFileError(f"{source!r}: {err}") from None
    try:
        costs = read_entries(data["costs"], "cost", source, set(unique_codes()),
                             lambda value: entry_from_json(value, settings))  # fmt: skip
    except ValueError as err:
        raise CostFileError(str(err)) from None
    return CostFile(
        settings, MappingProxyType(dict(data["device"])), MappingProxyType(dict(data["versions"])),
        tuple(MappingProxyType(dict(r)) for r in data["runs"]), MappingProxyType(costs), source,
    )  # fmt: skip


def load(path: str | os.PathLike[str]) -> CostFile:
    """Read and check a cost file (bounded JSON: core.jsonread); CostFileError in one line otherwise."""
    try:
        data = read_json(path)
    except JSONReadError as err:
        raise CostFileError(f"cost file: {err}") from None
    return from_json(data, str(path))


def dumps(cost_file: CostFile) -> str:
    """The file's text (one entry per line: readable, diffable, and quick to write)."""
    return dumps_keyed(cost_file.to_json(), "costs")
