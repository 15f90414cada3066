"""Measuring one network's cost on a device: inference latency per batch size, a training step, memory, weights."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

from ..arch.complexity import complexity
from ..arch.network import MacroNet
from ..core.errors import UserError
from ..core.provenance import device_info, library_versions
from ..records.recipe import Recipe
from .costfile import CostFile, CostFileError, Entry, Settings, check_entry
from .timing import synchronizer, time_calls

INPUT_SHAPE = (3, 32, 32)  # one CIFAR-10 image


def resolve_device(name: str) -> torch.device:
    """The torch device of a settings' device name; UserError where CUDA is asked for and missing."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("invalid --device 'cuda': no CUDA device is available here (torch.cuda.is_available() "
                        "is False): expected cpu")  # fmt: skip
    return torch.device(name)


def configure(settings: Settings) -> None:
    """Set the process-wide switches the settings name: threads, cuDNN's algorithm search, strict float32."""
    torch.set_num_threads(settings.threads)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.backends.cuda.matmul.allow_tf32 = settings.tf32


def header(settings: Settings, device: torch.device, command: Sequence[str]) -> dict[str, Any]:
    """The provenance of a new run of measurements: device, versions, and this invocation."""
    info = device_info(device)
    if device.type == "cpu":
        info["name"] = cpu_name()
    run = {"command": list(command), "started": now(), "host": info["host"]}
    return {"device": info, "versions": library_versions(), "run": run}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform's processor or machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _peak(device: torch.device) -> int | None:
    """Bytes allocated at peak since the last reset (CUDA), else None."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def measure(code: str, settings: Settings, device: torch.device) -> Entry:
    """The cost of one network: built on `device` (seeded), timed in eval + inference mode at each batch size,
    then (with a train step) timed in train mode through forward, cross-entropy, backward and the recipe's SGD."""
    counts = complexity(code, settings.num_classes)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    sync = synchronizer(device)
    torch.manual_seed(0)
    with device:
        net = MacroNet(code, settings.num_classes).to(memory_format=memory_format)
    weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    latency, peak = {}, {}
    net.eval()
    for size in settings.batch_sizes:
        x = torch.randn(size, *INPUT_SHAPE, device=device).contiguous(memory_format=memory_format)
        _reset_peak(device)
        with torch.inference_mode():
            latency[size] = time_calls(lambda x=x: net(x), settings.warmup, settings.repeats, sync)
        peak[size] = _peak(device)
        del x
    train, train_peak = None, None
    if settings.train_step:
        train, train_peak = _train_step(net, settings, device, memory_format)
    entry = Entry(
        counts.params, counts.flops, weights, MappingProxyType(latency), train,
        MappingProxyType(peak) if device.type == "cuda" else None, train_peak,
    )  # fmt: skip
    return check_entry(entry, settings)


def _train_step(net: torch.nn.Module, settings: Settings, device: torch.device, memory_format: torch.memory_format):
    """(Timing, peak bytes or None) of training steps at the settings' batch size with the recipe's SGD."""
    recipe = Recipe()
    net.train()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
        nesterov=recipe.nesterov,
    )  # fmt: skip
    x = torch.randn(settings.train_batch_size, *INPUT_SHAPE, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, settings.num_classes, (settings.train_batch_size,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    _reset_peak(device)
    timing = time_calls(step, settings.warmup, settings.repeats, synchronizer(device))
    return timing, _peak(device)


def check_counts(cost_file: CostFile) -> None:
    """CostFileError unless every entry's params and FLOPs are those of this package's network for its code."""
    for code, entry in cost_file.costs.items():
        counts = complexity(code, cost_file.settings.num_classes)
        if (entry.params, entry.flops) != (counts.params, counts.flops):
            raise CostFileError(
                f"{cost_file.source}: {code} has params, flops {entry.params}, {entry.flops}; its network has "
                f"{counts.params}, {counts.flops}: not this package's network"
            )
