"""Model complexity with the published definitions (PUBLISHED.md, "Params and FLOPs"): params, FLOPs, ptflops."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from .codes import INPUT_CHANNELS, INPUT_SIZE, LayerSpec, parse
from .network import MacroNet, build_classifier, build_head, build_layer, build_stem

INPUT_SHAPE = (1, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)  # one CIFAR-10 image


def count_params(model: nn.Module) -> int:
    """Number of all parameters (conv weights, BN weight and bias, linear weight and bias)."""
    return sum(p.numel() for p in model.parameters())


def _weight_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Weight multiply-accumulates of one conv or linear call (bias, BN, activations excluded)."""
    if isinstance(module, nn.Conv2d):
        per_pixel = module.in_channels // module.groups * module.out_channels * math.prod(module.kernel_size)
        return per_pixel * math.prod(output.shape[2:])
    return module.in_features * module.out_features * math.prod(output.shape[1:-1])


def count_flops(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> int:
    """Conv and linear weight MACs for one 3x32x32 image, from the modules' real shapes (published `flops`).

    Runs one forward on the meta device (a meta copy where the model is not on it already), so it
    allocates nothing and leaves the model untouched.
    """
    meta = model if _on_meta(model) else copy.deepcopy(model).to("meta")
    total = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += _weight_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in meta.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:  # shape-preserving and MAC-free; torch's meta batch_norm is slow Python (imports dynamo)
        norm.forward = _passthrough
    try:
        with torch.no_grad():
            meta.eval()(torch.empty(input_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
        for norm in norms:
            del norm.forward
    return total


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    """Stand-in forward of a BatchNorm while counting MACs on the meta device."""
    return x


def ptflops_macs(model: nn.Module) -> int:
    """MACs by ptflops (backend 'aten', as in PUBLISHED.md: equals `count_flops + 10`, the linear bias).

    Runs on a deep copy in eval mode, so the caller's model (mode, BN statistics, hooks) is unchanged.
    """
    from ptflops import get_model_complexity_info

    probe = copy.deepcopy(model).cpu().eval()
    macs, _ = get_model_complexity_info(
        probe, INPUT_SHAPE[1:], as_strings=False, backend="aten", print_per_layer_stat=False, verbose=False
    )
    return int(macs)


@dataclass(frozen=True)
class Complexity:
    """The three counts of one architecture."""

    params: int  # number of parameters
    flops: int  # conv + linear weight MACs per 3x32x32 image (published `flops`)
    ptflops_macs: int | None = None  # ptflops 'aten' MACs (flops + 10), None where not computed


def complexity(code: str, num_classes: int = 10, with_ptflops: bool = False) -> Complexity:
    """Params and FLOPs of a code, summed over MacroNet's parts, each built by model.py on the meta device.

    MacroNet is the sequence stem -> layers -> head -> pool -> classifier, so its counts are the sums of
    its parts'. Parts are memoized by their (frozen) spec: there are only 3 ops x 8 positions, which makes
    the whole 6561-code space cost well under a second instead of building 6561 networks.
    """
    spec = parse(code)
    size = spec.layers[-1].out_size
    parts = [_stem_counts(spec.stem_channels), *map(_layer_counts, spec.layers)]
    parts.append(_head_counts(spec.final_channels, spec.head_channels, size, num_classes))
    macs = ptflops_macs(MacroNet(spec, num_classes)) if with_ptflops else None
    return Complexity(sum(p for p, _ in parts), sum(f for _, f in parts), macs)


def _meta_counts(build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(params, flops) of a module built on the meta device and run on an input of `input_shape`."""
    with torch.device("meta"):
        module = build()
    return count_params(module), count_flops(module, input_shape)


@cache
def _stem_counts(channels: int) -> tuple[int, int]:
    return _meta_counts(lambda: build_stem(channels), INPUT_SHAPE)


@cache
def _layer_counts(layer: LayerSpec) -> tuple[int, int]:
    return _meta_counts(lambda: build_layer(layer), (1, layer.in_channels, layer.in_size, layer.in_size))


@cache
def _head_counts(in_channels: int, head_channels: int, size: int, num_classes: int) -> tuple[int, int]:
    def build() -> nn.Module:
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return nn.Sequential(build_head(in_channels, head_channels), pool, build_classifier(head_channels, num_classes))

    return _meta_counts(build, (1, in_channels, size, size))


def _on_meta(model: nn.Module) -> bool:
    """True if the model's parameters live on the meta device."""
    return all(p.is_meta for p in model.parameters())


def complexity_table(codes: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(params, flops) of each code, from `complexity` (the whole space in about a second)."""
    table = {}
    for code in codes:
        counts = complexity(code)
        table[code] = (counts.params, counts.flops)
    return table
