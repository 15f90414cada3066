"""Does a proxy predict measured cost? Spearman rank correlation of a file's latency with FLOPs and params (no torch).

HW-NAS-Bench's point: FLOPs and params rank networks differently from their measured latency, so measure. The rank
correlation is computed here (average ranks for ties) rather than taken from bench/, which sits above this package.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .costfile import CostFile
from .query import value

PROXIES = ("flops", "params")  # the counts a latency is compared with


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the average of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho with ties (Pearson correlation of average ranks); nan if either side is constant or n < 2."""
    if len(x) != len(y):
        raise ValueError(f"samples differ in length: {len(x)} != {len(y)}")
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx) if rx else 0.0, sum(ry) / len(ry) if ry else 0.0
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


@dataclass(frozen=True)
class Correlations:
    """Rank correlation of one measured cost with the counts, over a file's networks."""

    measure: str  # e.g. "latency_ms"
    batch_size: int  # the batch size of the measure (latency_ms); 1 otherwise
    n: int  # networks compared
    rho: dict[str, float]  # proxy ("flops", "params") -> Spearman rho with the measure's median


def rank_correlations(cost_file: CostFile, measure: str = "latency_ms", batch_size: int = 1) -> Correlations:
    """Spearman rho of `measure` (median) with FLOPs and with params over every network of the file."""
    codes = sorted(cost_file.costs)
    measured = [float(value(cost_file, code, measure, batch_size)) for code in codes]
    rho = {p: spearman(measured, [float(value(cost_file, code, p)) for code in codes]) for p in PROXIES}
    return Correlations(measure, batch_size, len(codes), rho)


def report_lines(cost_file: CostFile) -> list[str]:
    """The file's provenance, the spread of its latencies and their rank correlation with FLOPs and params."""
    s, device = cost_file.settings, cost_file.device
    lines = [
        f"file        {cost_file.source}",
        f"device      {device.get('type')} {device.get('name')} ({device.get('count')} devices/cores) on "
        f"{device.get('host')}",
        f"versions    torch {cost_file.versions.get('torch')}, python {cost_file.versions.get('python')}",
        f"settings    threads {s.threads}, channels_last {s.channels_last}, cudnn_benchmark {s.cudnn_benchmark}, "
        f"{s.warmup} warm-up + {s.repeats} timed calls per measurement",
        f"networks    {len(cost_file.costs)}",
    ]
    if len(cost_file.costs) < 2:
        return lines + ["(fewer than 2 networks: no correlation)"]
    measures = [("latency_ms", b) for b in s.batch_sizes] + ([("train_step_ms", 1)] if s.train_step else [])
    for measure, batch in measures:
        name = f"{measure} batch {batch}" if measure == "latency_ms" else f"{measure} batch {s.train_batch_size}"
        medians = sorted(value(cost_file, c, measure, batch) for c in cost_file.costs)
        iqr = sorted(value(cost_file, c, measure, batch, "iqr") / value(cost_file, c, measure, batch)
                     for c in cost_file.costs)  # fmt: skip
        corr = rank_correlations(cost_file, measure, batch)
        lines += [
            f"{name}: median {statistics.median(medians):.3f} ms (range {medians[0]:.3f}..{medians[-1]:.3f}), "
            f"IQR/median median {statistics.median(iqr):.1%} (max {iqr[-1]:.1%})",
            f"  Spearman rho with flops {corr.rho['flops']:.4f}, with params {corr.rho['params']:.4f} (n = {corr.n})",
        ]
    return lines
