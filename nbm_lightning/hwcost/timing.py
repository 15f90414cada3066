"""Timing of calls: warm-up excluded, each timed call synchronised on CUDA, median and quartiles over repeats."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np
import torch

from .costfile import Timing


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What waits for a device's queued work: torch.cuda.synchronize on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_calls(fn: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None]) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times each timed alone (wall clock, synchronised before
    the clock stops); the median and quartiles in ms. Python's garbage collector is paused while timing."""
    for _ in range(warmup):
        fn()
    sync()
    samples = np.empty(repeats)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            samples[i] = time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()
    q1, median, q3 = np.percentile(samples * 1e3, [25, 50, 75])
    return Timing(float(median), float(q1), float(q3))
