"""The proxies file: zero-cost proxy scores of canonical networks, their settings and provenance (no torch here).

One JSON object, written by `python -m nbm_lightning.proxies` (atomically, as it goes) and read by `load`:

    {
      "format": "nbm_lightning.proxies", "version": 1,       # FORMAT, VERSION; a reader refuses others
      "settings": {"proxies": ["synflow", "zen", "params", "flops"], "batch_size": 64, "seeds": [0, 1, 2],
                   "threads": 1, "num_classes": 10, "dtype": "float32", "data": null},   # Settings
      "definitions": {"synflow": "SynFlow (Tanaka et al., NeurIPS 2020) ...", ...},  # DEFINITIONS of the proxies
      "device": {"type": "cpu", "name": "...", "count": 2, "host": "node1"},
      "versions": {"python": "3.12.1", "torch": "2.4.1", ...},
      "runs": [{"command": [...], "started": "2026-...", "host": "node1"}],     # one per invocation
      "scores": {"01210210": {"synflow": {"values": [1.2e17, 1.3e17, 1.1e17], "seconds": [0.4, 0.4, 0.5]}, ...}}
    }

A seeded proxy has one value per seed of `seeds` (the seed of the network's initialisation and of its batch: the
DataModule's seeded first training batch for data-based proxies, the Gaussian input for Zen-score); params and FLOPs
one value (arch/complexity.py). `seconds` is the wall-clock time of computing each value (the network's building
excluded). A value is null where the proxy is undefined for the network (e.g. a singular NASWOT kernel). `data` is
the CIFAR-10 fingerprint the data-based proxies read (null without them). `load` refuses, in one line naming the file
and the value, a wrong format or version, unknown or missing keys, a code that is not canonical, a proxy the settings
do not name, a count of values other than the seeds', and times that are not finite and >= 0.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..arch.codes import unique_codes
from ..core.errors import UserError
from ..core.jsonread import JSONReadError, read_json
from ..core.keyedfile import check_envelope, check_provenance, dumps_keyed, read_entries
from ..core.validate import check_choice, check_int, shown

FORMAT = "nbm_lightning.proxies"  # the "format" field
VERSION = 1  # the "version" field; bump on any incompatible change
TOP_KEYS = ("format", "version", "settings", "definitions", "device", "versions", "runs", "scores")
DATA_FREE = ("synflow", "zen")  # seeded proxies that read no data
DATA_BASED = ("snip", "grad_norm", "grasp", "jacov", "naswot")  # seeded proxies that read a batch of CIFAR-10
COUNTS = ("params", "flops")  # one value, from arch/complexity.py
PROXIES = DATA_FREE + DATA_BASED + COUNTS
DEFINITIONS = {  # the definition of each proxy, as written into every file (the code: zerocost/scores.py)
    "synflow": "SynFlow (Tanaka et al., NeurIPS 2020): sum |w * dR/dw| over conv/linear weights, R the output sum of "
    "the |parameter| network without BatchNorm on an all-ones image, float64",
    "zen": "Zen-score (Lin et al., ICCV 2021): log E||f(x)-f(x+0.01 eps)||_F + sum_BN log sqrt(mean batch variance), "
    "weights N(0,1), x, eps ~ N(0,1) of batch_size images, f the pre-pooling features",
    "snip": "SNIP (Lee et al., ICLR 2019): sum |w * dL/dw| over conv/linear weights, L the cross-entropy of the batch",
    "grad_norm": "grad_norm (Abdelfattah et al., ICLR 2021): sum over conv/linear layers of ||dL/dW||_2",
    "grasp": "GraSP (Wang et al., ICLR 2020): sum of -w * (H dL/dw) over conv/linear weights, H the Hessian of L",
    "jacov": "jacov (Mellor et al., arXiv:2006.04647 v1): -sum(log(l+k)+1/(l+k)) over the eigenvalues l of the "
    "correlation of the input Jacobians of the batch, k=1e-5",
    "naswot": "NASWOT (Mellor et al., ICML 2021): log|det K_H|, K_H[i,j] the ReLUs on which images i and j agree",
    "params": "number of parameters (arch/complexity.py, the published definition)",
    "flops": "conv + linear weight MACs per 3x32x32 image (arch/complexity.py, the published definition)",
}
DTYPES = ("float32",)
MAX_BATCH = 4096  # the largest batch a proxy reads
MAX_SECONDS = 86_400.0  # the longest time one value may have taken


class ProxyFileError(UserError, ValueError):
    """A proxies file that cannot be read or breaks its format (one line, exit status 2 on the command line)."""


@dataclass(frozen=True)
class Settings:
    """How every score of a file is computed; a file is resumed only with equal settings."""

    proxies: tuple[str, ...]  # the proxies computed, in PROXIES order
    batch_size: int  # images per batch (data-based proxies, Zen-score's Gaussian input)
    seeds: tuple[int, ...]  # seeds of the initialisation and the batch, ascending and distinct
    threads: int  # torch intra-op threads
    num_classes: int = 10  # classifier outputs (CIFAR-10)
    dtype: str = "float32"  # parameter and input dtype (SynFlow computes in float64)
    data: Mapping[str, Any] | None = None  # the CIFAR-10 fingerprint the data-based proxies read; None without them

    def __post_init__(self) -> None:
        names = self.proxies
        if not isinstance(names, tuple) or not names or list(names) != [p for p in PROXIES if p in names]:
            raise ProxyFileError(f"invalid proxies {shown(names)}: expected distinct names of {list(PROXIES)}, in "
                                 "that order")  # fmt: skip
        check_int("batch_size", self.batch_size, 2, MAX_BATCH)
        seeds = self.seeds
        for seed in seeds if isinstance(seeds, tuple) else ():
            check_int("seed", seed, 0, 2**31 - 1)
        if not isinstance(seeds, tuple) or not seeds or list(seeds) != sorted(set(seeds)):
            raise ProxyFileError(f"invalid seeds {shown(seeds)}: expected ascending distinct seeds")
        check_int("threads", self.threads, 1, 4096)
        check_int("num_classes", self.num_classes, 2, 100_000)
        check_choice("dtype", self.dtype, DTYPES)
        if (self.data is not None) != any(p in DATA_BASED for p in names) or not isinstance(self.data, dict | None):
            raise ProxyFileError(f"data {shown(self.data)}: expected the data fingerprint exactly where data-based "
                                 f"proxies ({', '.join(DATA_BASED)}) are computed")  # fmt: skip

    def count(self, proxy: str) -> int:
        """The number of values of `proxy` per network: one per seed, one for a count."""
        return 1 if proxy in COUNTS else len(self.seeds)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain JSON."""
        data = None if self.data is None else dict(self.data)
        return {**dataclasses.asdict(self), "proxies": list(self.proxies), "seeds": list(self.seeds), "data": data}

    @classmethod
    def from_json(cls, value: Any) -> Settings:
        """Settings from parsed JSON (every field present, none unknown, each checked)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"settings {shown(keys)}: expected an object with keys {names}")
        tuples = {k: tuple(value[k]) if isinstance(value[k], list) else value[k] for k in ("proxies", "seeds")}
        return cls(**{**value, **tuples})


@dataclass(frozen=True)
class Score:
    """One proxy's values for one network: one per seed (one for a count) and the seconds each took."""

    values: tuple[float | None, ...]  # the proxy's value per seed; None where undefined (not finite)
    seconds: tuple[float, ...]  # wall-clock seconds of each value

    def __post_init__(self) -> None:
        for v in self.values:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise ValueError(f"value {shown(v)}: expected a finite number or null")
        for s in self.seconds:
            if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= MAX_SECONDS:
                raise ValueError(f"seconds {shown(s)}: expected seconds in [0, {MAX_SECONDS:g}]")
        if len(self.values) != len(self.seconds):
            raise ValueError(f"{len(self.values)} values but {len(self.seconds)} seconds")

    def mean(self) -> float | None:
        """The mean over seeds; None where any value is undefined."""
        return None if None in self.values else sum(self.values) / len(self.values)

    def to_json(self) -> dict[str, list]:
        return {"values": list(self.values), "seconds": list(self.seconds)}

    @classmethod
    def from_json(cls, value: Any) -> Score:
        if not isinstance(value, dict) or sorted(value) != ["seconds", "values"]:
            raise ValueError(f"{shown(value)}: expected an object with keys ['seconds', 'values']")
        if not isinstance(value["values"], list) or not isinstance(value["seconds"], list):
            raise ValueError(f"{shown(value)}: expected lists of values and seconds")
        return cls(tuple(value["values"]), tuple(value["seconds"]))


def finite_or_none(value: float) -> float | None:
    """A proxy's value as stored: None where it is not finite."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True, eq=False)
class ProxyFile:
    """A proxies file: the settings, device and versions, and each canonical code's scores (proxy -> Score)."""

    settings: Settings  # how every score was computed
    device: Mapping[str, Any]  # type, name, count, host (core.provenance.device_info)
    versions: Mapping[str, Any]  # python, torch, ... (core.provenance.library_versions)
    runs: tuple[Mapping[str, Any], ...]  # one per invocation that wrote into the file: command, started, host
    scores: Mapping[str, Mapping[str, Score]]  # canonical code -> proxy -> its Score
    source: str = "<memory>"  # where it was read from (error messages)

    def identity(self) -> dict[str, Any]:
        """What must be equal for scores to be comparable (and a file resumed): settings, definitions, device, torch."""
        return {
            **self.settings.to_json(),
            "definitions": {p: DEFINITIONS[p] for p in self.settings.proxies},
            "device type": self.device.get("type"),
            "torch": self.versions.get("torch"),
        }

    def column(self, proxy: str, codes: list[str]) -> list[float | None]:
        """The mean over seeds of `proxy` for each of `codes` (None where undefined)."""
        return [self.scores[code][proxy].mean() for code in codes]

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "settings": self.settings.to_json(),
            "definitions": {p: DEFINITIONS[p] for p in self.settings.proxies},
            "device": dict(self.device),
            "versions": dict(self.versions),
            "runs": [dict(r) for r in self.runs],
            "scores": {c: {p: s.to_json() for p, s in e.items()} for c, e in sorted(self.scores.items())},
        }


def _check_header(data: dict[str, Any], settings: Settings) -> None:
    """ValueError unless definitions, device, versions and runs have the expected shape and content."""
    expected = {p: DEFINITIONS[p] for p in settings.proxies}
    if data["definitions"] != expected:
        raise ValueError(f"definitions {shown(data['definitions'])}: expected this version's {expected}")
    device = data["device"]
    if not isinstance(device, dict) or not isinstance(device.get("type"), str):
        raise ValueError(f"device {shown(device)}: expected an object with a 'type'")
    check_provenance(data)


def entry_from_json(value: Any, settings: Settings) -> dict[str, Score]:
    """One network's scores from parsed JSON: exactly the settings' proxies, each with its count of values."""
    if not isinstance(value, dict) or sorted(value) != sorted(settings.proxies):
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise ValueError(f"proxies {shown(keys)}, expected {sorted(settings.proxies)}")
    entry = {}
    for proxy in settings.proxies:
        score = Score.from_json(value[proxy])
        if len(score.values) != settings.count(proxy):
            raise ValueError(f"{proxy} has {len(score.values)} values, expected {settings.count(proxy)}")
        entry[proxy] = score
    return entry


def from_json(data: Any, source: str = "<memory>") -> ProxyFile:
    """A ProxyFile from a parsed document; ProxyFileError naming `source` and the first problem."""
    try:
        check_envelope(data, source, FORMAT, VERSION, TOP_KEYS, "proxies file")
    except ValueError as err:
        raise ProxyFileError(str(err)) from None
    try:
        settings = Settings.from_json(data["settings"])
        _check_header(data, settings)
    except ValueError as err:
        raise ProxyFileError(f"{source!r}: {err}") from None
    try:
        scores = read_entries(data["scores"], "scores", source, set(unique_codes()),
                              lambda value: MappingProxyType(entry_from_json(value, settings)))  # fmt: skip
    except ValueError as err:
        raise ProxyFileError(str(err)) from None
    return ProxyFile(
        settings, MappingProxyType(dict(data["device"])), MappingProxyType(dict(data["versions"])),
        tuple(MappingProxyType(dict(r)) for r in data["runs"]), MappingProxyType(scores), source,
    )  # fmt: skip


def load(path: str | os.PathLike[str]) -> ProxyFile:
    """Read and check a proxies file (bounded JSON: core.jsonread); ProxyFileError in one line otherwise."""
    try:
        data = read_json(path)
    except JSONReadError as err:
        raise ProxyFileError(f"proxies file: {err}") from None
    return from_json(data, str(path))


def dumps(proxy_file: ProxyFile) -> str:
    """The file's text (one network per line: readable, diffable, and quick to write)."""
    return dumps_keyed(proxy_file.to_json(), "scores")
