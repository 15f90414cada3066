"""Rank statistics for comparing benchmarks: Kendall tau-b, Spearman rho, and the seed-to-seed noise ceiling."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D float arrays of equal length."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"samples differ in length: {len(x)} != {len(y)}")
    return x, y


def _tied_pairs(values: np.ndarray) -> int:
    """Number of pairs with equal values."""
    counts = np.unique(values, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _inversions(y: np.ndarray) -> int:
    """Pairs i < j with y[i] > y[j] (non-negative ints): a bottom-up merge count, one numpy pass a level."""
    n = len(y)
    pos, span = np.arange(n), int(y.max()) + 1 if n else 1
    runs, width, total = y.astype(np.int64), 1, 0
    while width < n:  # invariant: runs is sorted inside each block of `width`
        block = pos // (2 * width)
        keys = block * span + runs  # sorted left halves, concatenated, are globally sorted
        right = (pos // width) % 2 == 1
        not_greater = np.searchsorted(keys[~right], keys[right], side="right") - block[right] * width
        total += int((width - not_greater).sum())
        runs, width = np.sort(keys) - block * span, width * 2
    return total


def kendall_tau(x: Any, y: Any) -> float:
    """Kendall's tau-b (ties in x or y handled as scipy.stats.kendalltau does); nan if undefined."""
    x, y = _pair(x, y)
    rx, ry = np.unique(x, return_inverse=True)[1], np.unique(y, return_inverse=True)[1]
    n = len(x)
    pairs = n * (n - 1) // 2
    x_ties, y_ties = _tied_pairs(rx), _tied_pairs(ry)
    if pairs == x_ties or pairs == y_ties:
        return math.nan
    both_ties = _tied_pairs(rx.astype(np.int64) * n + ry)
    discordant = _inversions(ry[np.lexsort((ry, rx))])
    concordant_minus_discordant = pairs - x_ties - y_ties + both_ties - 2 * discordant
    return concordant_minus_discordant / math.sqrt((pairs - x_ties) * (pairs - y_ties))  # exact int product


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def spearman_rho(x: Any, y: Any) -> float:
    """Spearman's rho: Pearson correlation of average ranks; nan if either sample is constant."""
    x, y = _pair(x, y)
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denominator if denominator else math.nan


def seed_noise_tau(test_acc: np.ndarray) -> float:
    """Mean Kendall tau-b between single seeds over all seed pairs; nan with fewer than two seeds."""
    taus = [kendall_tau(test_acc[:, i], test_acc[:, j]) for i, j in combinations(range(test_acc.shape[1]), 2)]
    return float(np.mean(taus)) if taus else math.nan


def ranked(values: np.ndarray, descending: bool) -> np.ndarray:
    """Row indices best first; rows are in code order, so a stable sort breaks ties by code."""
    return np.argsort(-values if descending else values, kind="stable")


def pareto_rows(cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Rows not dominated (lower cost and higher gain, one strictly), sorted by cost, then row."""
    order = np.lexsort((np.arange(len(cost)), -gain, cost))  # cost ascending, gain descending, row
    keep, best_gain, best_cost = [], -math.inf, None
    for i, c, g in zip(order.tolist(), cost[order].tolist(), gain[order].tolist()):
        if g > best_gain or (g == best_gain and c == best_cost):
            keep.append(i)  # equal (cost, gain) points do not dominate each other: all are kept
            best_gain, best_cost = g, c
    return np.array(keep, dtype=np.int64)
