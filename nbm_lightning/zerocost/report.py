"""Do the proxies predict accuracy? Each proxy's Spearman and Kendall rank correlation with the benchmark's mean
accuracy, with bootstrap intervals, beside the benchmark's own seed-noise ceiling; overall and in the top 10 % (no
torch). The rank statistics are bench.rankstats' (tau-b and rho with ties)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from ..bench.rankstats import kendall_tau, spearman_rho
from ..bench.table import Benchmark
from ..core.errors import UserError
from .proxyfile import ProxyFile

TOP_FRACTION = 0.1  # "within the top 10 %": the networks of the highest mean accuracy
LEVEL = 0.95  # the bootstrap intervals' coverage


@dataclass(frozen=True)
class Estimate:
    """A statistic on the sample and its bootstrap percentile interval."""

    value: float  # on the networks compared
    low: float  # the interval's lower end (LEVEL coverage, percentile bootstrap over networks)
    high: float  # its upper end

    def __str__(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


@dataclass(frozen=True)
class Row:
    """One proxy (or the seed-noise ceiling) against mean accuracy, on one set of networks."""

    name: str  # a proxy, or "seed noise" (one seed's accuracy against another's, averaged over seed pairs)
    n: int  # networks compared (those where the proxy is defined)
    spearman: Estimate  # Spearman rho with mean accuracy
    kendall: Estimate  # Kendall tau-b with mean accuracy


def bootstrap(
    stat: Callable[[np.ndarray], float], n: int, resamples: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(stat on all rows, lower, upper percentile bound over `resamples` resamples of the n rows with replacement)."""
    draws = [stat(rng.integers(0, n, n)) for _ in range(resamples)]
    draws = [d for d in draws if not math.isnan(d)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail]) if draws else (math.nan, math.nan)
    return stat(np.arange(n)), float(low), float(high)


def _row(name: str, x: np.ndarray | None, acc: np.ndarray, resamples: int, seed: int) -> Row:
    """The proxy values `x` against `acc` (x None: the seed-noise ceiling of the per-seed accuracies `acc`)."""
    mean = acc.mean(axis=1)
    pairs = list(combinations(range(acc.shape[1]), 2))

    def of(corr: Callable[[Any, Any], float]) -> Callable[[np.ndarray], float]:
        if x is not None:
            return lambda rows: corr(x[rows], mean[rows])
        return lambda rows: float(np.mean([corr(acc[rows, i], acc[rows, j]) for i, j in pairs])) if pairs else math.nan

    estimates = [Estimate(*bootstrap(of(c), len(mean), resamples, np.random.default_rng(seed))) for c in
                 (spearman_rho, kendall_tau)]  # fmt: skip
    return Row(name, len(mean), *estimates)


def correlations(proxy_file: ProxyFile, bench: Benchmark, resamples: int = 1000, seed: int = 0) -> dict[str, list[Row]]:
    """ "all" and "top 10 %" -> one Row per proxy of the file, then the benchmark's seed-noise ceiling, over the
    file's networks (the top 10 %: those of highest mean accuracy among them)."""
    codes = sorted(proxy_file.scores)
    missing = [c for c in codes if c not in bench]
    if missing:
        raise UserError(f"{proxy_file.source}: {len(missing)} of its {len(codes)} networks are not in the benchmark "
                        f"{bench.source}, e.g. {', '.join(missing[:3])}: pass their benchmark")  # fmt: skip
    if len(codes) < 3:
        raise UserError(f"{proxy_file.source}: {len(codes)} networks: a rank correlation needs at least 3")
    acc = np.asarray(bench.test_acc)[[bench.row(c) for c in codes]]
    order = np.argsort(-acc.mean(axis=1), kind="stable")
    top = np.sort(order[: max(3, math.ceil(TOP_FRACTION * len(codes)))])
    out = {}
    for label, rows in (("all", np.arange(len(codes))), (f"top {TOP_FRACTION:.0%}", top)):
        table = []
        for proxy in proxy_file.settings.proxies:
            column = proxy_file.column(proxy, [codes[i] for i in rows])
            defined = np.array([v is not None for v in column])
            x = np.array([v for v in column if v is not None], dtype=np.float64)
            table.append(_row(proxy, x, acc[rows][defined], resamples, seed))
        table.append(_row("seed noise", None, acc[rows], resamples, seed))
        out[label] = table
    return out


def seed_stability(proxy_file: ProxyFile, proxy: str) -> float:
    """The mean Spearman rho between the proxy's values under two seeds, over seed pairs; nan with one seed."""
    codes = [c for c in sorted(proxy_file.scores) if None not in proxy_file.scores[c][proxy].values]
    values = np.array([proxy_file.scores[c][proxy].values for c in codes], dtype=np.float64)
    pairs = list(combinations(range(values.shape[1]), 2)) if len(codes) > 2 else []
    return float(np.mean([spearman_rho(values[:, i], values[:, j]) for i, j in pairs])) if pairs else math.nan


def report_lines(proxy_file: ProxyFile, bench: Benchmark, resamples: int = 1000, seed: int = 0) -> list[str]:
    """The file's provenance, then per set of networks a table: each proxy's rank correlations with mean accuracy,
    its median seconds per value and its seed-to-seed rho, and the benchmark's seed-noise ceiling."""
    s, device = proxy_file.settings, proxy_file.device
    lines = [
        f"file        {proxy_file.source}: {len(proxy_file.scores)} networks, seeds {list(s.seeds)}, batch "
        f"{s.batch_size}, {s.threads} threads on {device.get('type')} {device.get('name')}, torch "
        f"{proxy_file.versions.get('torch')}",
        f"benchmark   {bench.source}: mean test accuracy over {bench.seeds} seeds",
        f"intervals   {LEVEL:.0%} percentile bootstrap over networks, {resamples} resamples (seed {seed})",
    ]
    for label, rows in correlations(proxy_file, bench, resamples, seed).items():
        lines += ["", f"{label} (n = {rows[-1].n})", "| proxy | n | Spearman rho [95 % CI] | Kendall tau [95 % CI] | "
                  "s per value (median) | seed-to-seed rho |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for row in rows:
            if row.name == "seed noise":
                cells = ["seed noise (seed vs seed)", "-", "-"]
            else:
                seconds = [t for e in proxy_file.scores.values() for t in e[row.name].seconds]
                stable = seed_stability(proxy_file, row.name)
                cells = [row.name, f"{statistics.median(seconds):.4f}", "-" if math.isnan(stable) else f"{stable:.3f}"]
            lines.append(f"| {cells[0]} | {row.n} | {row.spearman} | {row.kendall} | {cells[1]} | {cells[2]} |")
    return lines
