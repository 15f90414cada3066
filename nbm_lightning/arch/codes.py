"""NAS-Bench-Macro search space: the op table, stage layout and architecture codes (no torch here).

A code is a str of exactly 8 digits over {0, 1, 2}, one digit per searchable layer. This module owns
codes: it validates, canonicalizes, enumerates and parses them into an immutable, typed spec that
`nbm_lightning.arch.network` turns into modules.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Op:
    """One searchable operation."""

    digit: str  # the code digit that selects it
    name: str  # short, stable name used in tables and logs
    kernel: int | None  # depthwise kernel size (None for identity)
    expansion: int | None  # inverted-residual expansion ratio t (None for identity)


# The one table of ops (PUBLISHED.md, "Search space").
OPS: dict[str, Op] = {
    "0": Op("0", "identity", None, None),
    "1": Op("1", "mb_k3_e3", 3, 3),
    "2": Op("2", "mb_k5_e6", 5, 6),
}
STAGE_DEPTHS: tuple[int, ...] = (2, 3, 3)  # searchable layers per stage
NUM_LAYERS: int = sum(STAGE_DEPTHS)  # digits in a code
STEM_CHANNELS: int = 32  # output channels of the 3x3 stem conv
HEAD_CHANNELS: int = 1280  # output channels of the 1x1 head conv
INPUT_SIZE: int = 32  # CIFAR-10 images are INPUT_SIZE x INPUT_SIZE
INPUT_CHANNELS: int = 3  # RGB
IDENTITY: str = "0"  # the digit that canonicalization moves to the end of a stage
ALLOWED = "".join(OPS)  # the digits a code may use

_RULE = f"a str of exactly {NUM_LAYERS} digits from {{{', '.join(ALLOWED)}}}, e.g. '12012012'"


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer, fully resolved."""

    index: int  # 0-based position in the code
    stage: int  # 0-based stage
    op: Op  # what the layer computes
    in_channels: int  # channels in
    out_channels: int  # channels out
    stride: int  # 2 on each stage's first layer, else 1
    in_size: int  # input height = width, pixels
    out_size: int  # output height = width, pixels

    @property
    def is_identity(self) -> bool:
        """True for the identity op (a downsampling 1x1 conv where the shape changes)."""
        return self.op.digit == IDENTITY

    @property
    def residual(self) -> bool:
        """True where an inverted residual adds its input (stride 1 and equal channels)."""
        return not self.is_identity and self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class ArchSpec:
    """A parsed code: the whole network's searchable part, plus the fixed stem and head widths."""

    code: str  # the code as given (validated)
    canonical: str  # its canonical form, the primary key of results
    layers: tuple[LayerSpec, ...]  # the NUM_LAYERS searchable layers
    stem_channels: int = STEM_CHANNELS
    head_channels: int = HEAD_CHANNELS
    input_size: int = INPUT_SIZE

    @property
    def final_channels(self) -> int:
        """Channels entering the head."""
        return self.layers[-1].out_channels


def validate(code: object) -> str:
    """Return `code` if it is a valid code, else raise TypeError/ValueError naming it and the rule."""
    if not isinstance(code, str):
        hint = " (ints lose leading zeros: pass it quoted)" if isinstance(code, int) else ""
        raise TypeError(f"invalid arch code {code!r} of type {type(code).__name__}: expected {_RULE}{hint}")
    if len(code) != NUM_LAYERS or any(ch not in ALLOWED for ch in code):
        raise ValueError(f"invalid arch code {code!r}: expected {_RULE}")
    return code


def stages(code: str) -> list[str]:
    """Split a valid code into its per-stage substrings."""
    bounds = list(itertools.accumulate(STAGE_DEPTHS, initial=0))
    return [code[a:b] for a, b in zip(bounds, bounds[1:])]


def _canonical_stage(stage: str) -> str:
    """Keep the first layer; move identities among the rest to the end, order of the others kept."""
    rest = stage[1:]
    moved = rest.replace(IDENTITY, "")
    return stage[0] + moved + IDENTITY * (len(rest) - len(moved))


def canonical(code: object) -> str:
    """The canonical form of a code (the key the published benchmark was trained on)."""
    return "".join(_canonical_stage(s) for s in stages(validate(code)))


def is_canonical(code: object) -> bool:
    """True if `code` is valid and already canonical."""
    return canonical(code) == code


@cache
def all_codes() -> tuple[str, ...]:
    """All 3**8 = 6561 codes, sorted."""
    return tuple("".join(p) for p in itertools.product(ALLOWED, repeat=NUM_LAYERS))


@cache
def unique_codes() -> tuple[str, ...]:
    """The 3969 canonical codes, sorted."""
    return tuple(sorted({canonical(c) for c in all_codes()}))


def parse(code: object) -> ArchSpec:
    """Parse a code into an immutable ArchSpec of resolved layers."""
    code = validate(code)
    layers, channels, size, index = [], STEM_CHANNELS, INPUT_SIZE, 0
    for stage, depth in enumerate(STAGE_DEPTHS):
        for position in range(depth):
            stride = 2 if position == 0 else 1
            out_channels = channels * 2 if position == 0 else channels
            out_size = (size + stride - 1) // stride
            layers.append(LayerSpec(index, stage, OPS[code[index]], channels, out_channels, stride, size, out_size))
            channels, size, index = out_channels, out_size, index + 1
    return ArchSpec(code=code, canonical=canonical(code), layers=tuple(layers))
