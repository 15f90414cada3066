"""MacroNet: turn a parsed NAS-Bench-Macro spec into modules (PUBLISHED.md, "Network")."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from .codes import INPUT_CHANNELS, ArchSpec, LayerSpec, parse


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm, with an optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, kxk depthwise, 1x1 project; residual add where the shape allows."""

    def __init__(self, layer: LayerSpec):
        super().__init__()
        hidden = layer.in_channels * layer.op.expansion
        self.residual = layer.residual
        self.body = nn.Sequential(
            conv_bn(layer.in_channels, hidden, 1),
            conv_bn(hidden, hidden, layer.op.kernel, layer.stride, groups=hidden),
            conv_bn(hidden, layer.out_channels, 1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def build_layer(layer: LayerSpec) -> nn.Module:
    """One searchable layer: identity (1x1 conv + BN where the shape changes) or an inverted residual."""
    if not layer.is_identity:
        return InvertedResidual(layer)
    if layer.stride != 1 or layer.in_channels != layer.out_channels:
        return conv_bn(layer.in_channels, layer.out_channels, 1, layer.stride, relu=False)
    return nn.Identity()


def build_stem(channels: int) -> nn.Module:
    """3x3 conv RGB -> `channels`, BN, ReLU."""
    return conv_bn(INPUT_CHANNELS, channels, 3)


def build_head(in_channels: int, head_channels: int) -> nn.Module:
    """1x1 conv to the head width, BN, ReLU."""
    return conv_bn(in_channels, head_channels, 1)


def build_classifier(head_channels: int, num_classes: int) -> nn.Module:
    """Linear head width -> classes (with bias); applied after global average pooling."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return nn.Linear(head_channels, num_classes)


class MacroNet(nn.Module):
    """A NAS-Bench-Macro network for a code (or an already parsed spec): stem, layers, head, pool, classifier."""

    def __init__(self, code: str | ArchSpec, num_classes: int = 10):
        super().__init__()
        self.spec = code if isinstance(code, ArchSpec) else parse(code)
        self.stem = build_stem(self.spec.stem_channels)
        self.layers = nn.Sequential(*(build_layer(layer) for layer in self.spec.layers))
        self.head = build_head(self.spec.final_channels, self.spec.head_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = build_classifier(self.spec.head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def weights_sha256(net: nn.Module) -> str:
    """sha256 of a network's parameters as float32 little-endian bytes in parameters() order (any memory format)."""
    digest = hashlib.sha256()
    for p in net.parameters():
        digest.update(p.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False).tobytes())
    return digest.hexdigest()
