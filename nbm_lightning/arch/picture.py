"""The picture of one network: stem, the eight searchable layers coloured by op, stage boundaries, the head.

`draw(spec)` returns a matplotlib Figure (Agg canvas, no pyplot state) whose artists carry ids (`gid`):
`stem`, `layer_1` ... `layer_8`, `head` for the blocks (their labels: the same id plus `_label`) and
`stage_boundary` for the dashed lines between stages, so the drawing can be checked before it is rendered.
A block shows the layout as given (the code as trained, not its canonical form): op (kernel, expansion),
output channels and resolution, `s2` where the layer downsamples and `+x` where it adds its input.
`cached_png` renders a code once into a cache folder; `fit` logs that file to the run's W&B page.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes
from ..core.errors import require
from .codes import OPS, ArchSpec, LayerSpec, parse

DPI = 100  # resolution of the PNG
OP_COLORS: dict[str, str] = dict(zip(OPS, ("#d9d9d9", "#6baed6", "#fd8d3c")))  # op digit -> block colour
FIXED_COLOR = "#f7f7f7"  # stem and head
BLOCK_W, BLOCK_H, STEP = 1.0, 1.3, 1.35  # block width and height, distance between block origins
NUM_CLASSES = 10  # CIFAR-10


@dataclass(frozen=True)
class Block:
    """One drawn block: its id, position (0-based slot from the left), text and colour."""

    gid: str  # stem, layer_1 ... layer_8, head
    slot: int  # position from the left
    label: str  # the text drawn inside
    color: str  # face colour


def op_text(layer: LayerSpec) -> str:
    """The op of a layer in words: 'identity' (a 1x1 conv where it downsamples) or 'MB k<kernel> e<expansion>'."""
    if layer.is_identity:
        return "identity" + ("\n(1x1 conv)" if layer.stride == 2 else "")
    return f"MB k{layer.op.kernel} e{layer.op.expansion}"


def layer_label(layer: LayerSpec) -> str:
    """The text of a layer's block: number, op, output channels and resolution, stride 2 and residual marks."""
    marks = " ".join(m for m, on in (("s2", layer.stride == 2), ("+x", layer.residual)) if on)
    size = f"{layer.out_size}x{layer.out_size}"
    return f"layer {layer.index + 1} {marks}".rstrip() + f"\n{op_text(layer)}\n{layer.out_channels} ch\n{size}"


def blocks(spec: ArchSpec) -> list[Block]:
    """The blocks of a network, left to right: stem, one per searchable layer, head."""
    size = spec.input_size
    stem = Block("stem", 0, f"stem\n3x3 conv\n{spec.stem_channels} ch\n{size}x{size}", FIXED_COLOR)
    layers = [
        Block(f"layer_{layer.index + 1}", layer.index + 1, layer_label(layer), OP_COLORS[layer.op.digit])
        for layer in spec.layers
    ]
    head = f"head\n1x1 conv\n{spec.head_channels} ch\npool, fc {NUM_CLASSES}"
    return [stem, *layers, Block("head", len(spec.layers) + 1, head, FIXED_COLOR)]


def stage_boundaries(spec: ArchSpec) -> list[float]:
    """x of the dashed line between the last layer of each stage and the first of the next."""
    firsts = [layer.index + 1 for layer in spec.layers if layer.stride == 2][1:]
    return [slot * STEP - (STEP - BLOCK_W) / 2 for slot in firsts]


def title(spec: ArchSpec, params: int | None = None, flops: int | None = None) -> str:
    """The figure's title: the code (and its canonical form where different), params and FLOPs where known."""
    text = spec.code + ("" if spec.code == spec.canonical else f" (canonical {spec.canonical})")
    if params is not None and flops is not None:
        text += f"   params {params / 1e6:.2f} M   FLOPs {flops / 1e6:.1f} M"
    return text


def draw(spec: ArchSpec, params: int | None = None, flops: int | None = None) -> Any:
    """The network as a matplotlib Figure (nothing rendered yet)."""
    figure = _figure((len(spec.layers) + 2) * STEP * 0.95 + 0.5, 3.0)
    axes = figure.add_axes((0.01, 0.02, 0.98, 0.8))
    drawn = blocks(spec)
    for block in drawn:
        _draw_block(axes, block)
    for left, right in zip(drawn, drawn[1:]):
        axes.annotate("", (right.slot * STEP, BLOCK_H / 2), (left.slot * STEP + BLOCK_W, BLOCK_H / 2),
                      arrowprops={"arrowstyle": "->", "color": "0.4"})  # fmt: skip
    _draw_stages(axes, spec)
    axes.set_xlim(-0.15, (len(drawn) - 1) * STEP + BLOCK_W + 0.15)
    axes.set_ylim(-0.2, BLOCK_H + 0.55)
    axes.set_axis_off()
    figure.suptitle(title(spec, params, flops), fontsize=11)
    _legend(figure)
    return figure


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn by the Agg canvas (no pyplot, no global backend state)."""
    require("matplotlib", "plots", "drawing an architecture")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _draw_block(axes: Any, block: Block) -> None:
    """One rounded box with its label."""
    from matplotlib.patches import FancyBboxPatch

    x = block.slot * STEP
    box = FancyBboxPatch((x, 0), BLOCK_W, BLOCK_H, boxstyle="round,pad=0,rounding_size=0.08",
                         facecolor=block.color, edgecolor="0.3", gid=block.gid)  # fmt: skip
    axes.add_patch(box)
    axes.text(x + BLOCK_W / 2, BLOCK_H / 2, block.label, ha="center", va="center", fontsize=8,
              gid=f"{block.gid}_label")  # fmt: skip


def _draw_stages(axes: Any, spec: ArchSpec) -> None:
    """Dashed lines between stages; above each stage its number, channels and resolution."""
    for x in stage_boundaries(spec):
        axes.axvline(x, color="0.5", linestyle="--", linewidth=1, gid="stage_boundary")
    for stage in sorted({layer.stage for layer in spec.layers}):
        layers = [layer for layer in spec.layers if layer.stage == stage]
        middle = (layers[0].index + 1 + layers[-1].index + 1) / 2 * STEP + BLOCK_W / 2
        last = layers[-1]
        text = f"stage {stage + 1}: {last.out_channels} ch, {last.out_size}x{last.out_size}"
        axes.text(middle, BLOCK_H + 0.3, text, ha="center", va="center", fontsize=8.5, gid=f"stage_{stage + 1}")


def _legend(figure: Any) -> None:
    """One coloured swatch per op."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=OP_COLORS[digit], edgecolor="0.3", label=op.name) for digit, op in OPS.items()]
    figure.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8, frameon=False)


def png_bytes(figure: Any) -> bytes:
    """A figure rendered as PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def save_png(code: str, path: str | os.PathLike[str], params: int | None = None, flops: int | None = None) -> Path:
    """Draw a code and write the PNG atomically."""
    return atomic_write_bytes(path, png_bytes(draw(parse(code), params, flops)))


def cached_png(code: str, folder: str | os.PathLike[str], params: int | None = None, flops: int | None = None) -> Path:
    """The PNG of a code in `folder` (`<code>.png`), drawn only where it is not there yet."""
    path = Path(folder) / f"{parse(code).code}.png"
    return path if path.exists() else save_png(code, path, params, flops)
