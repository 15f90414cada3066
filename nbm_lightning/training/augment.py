"""The published augmentation as batched tensor ops (PUBLISHED.md, "Training recipe"): zero-pad, random crop,
horizontal flip and normalization of uint8 images, drawn per epoch from a generator seeded by (seed, epoch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)  # the published Normalize values
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CROP_SIZE = 32
CROP_PADDING = 4

ChannelStats = Sequence[float] | Tensor


def normalize(images: Tensor, mean: ChannelStats, std: ChannelStats) -> Tensor:
    """uint8 [B, C, H, W] -> float32, exactly as ToTensor (/255) then Normalize(mean, std)."""
    return images.float().div_(255).sub_(per_channel(mean, images.device)).div_(per_channel(std, images.device))


def augment(
    images: Tensor, offsets: Tensor, flips: Tensor, mean: ChannelStats, std: ChannelStats, padding: int = CROP_PADDING
) -> Tensor:
    """Zero-pad by `padding`, crop at `offsets` (y, x), flip where `flips`, normalize: [B,3,H,W] uint8 -> float32."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4).flatten(2)
    index = _crop_index(offsets.long(), flips.bool(), h, w, w + 2 * padding)
    crops = padded.gather(2, index[:, None, :].expand(b, c, h * w))
    return normalize(crops.view(b, c, h, w), mean, std)


def sample_augment_params(
    n: int, generator: torch.Generator, device: torch.device | str, padding: int = CROP_PADDING
) -> tuple[Tensor, Tensor]:
    """Offsets [n, 2] uniform in 0..2*padding per image and axis, and flips [n] bool with p = 0.5."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    return offsets, flips


def epoch_generator(seed: int, epoch: int, device: torch.device | str) -> torch.Generator:
    """A generator on `device` seeded from (seed, epoch) alone: the same stream for the same pair."""
    high, low = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(high) << 32 | int(low))


def per_channel(values: ChannelStats, device: torch.device) -> Tensor:
    """Per-channel values as float32 [1, C, 1, 1] on `device`."""
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def _crop_index(offsets: Tensor, flips: Tensor, height: int, width: int, padded_width: int) -> Tensor:
    """For each output pixel, its flat index [B, H*W] in the padded image (crop at offsets, then flip)."""
    rows = offsets[:, :1] + torch.arange(height, device=offsets.device)
    cols = offsets[:, 1:] + torch.arange(width, device=offsets.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    return (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)
