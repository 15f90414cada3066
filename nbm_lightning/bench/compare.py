"""How two benchmark files agree: rank correlation, accuracy differences, top-k overlap, seed-noise ceilings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..checks import check_int
from .rankstats import kendall_tau, seed_noise_tau, spearman_rho
from .table import Benchmark, ranked


@dataclass(frozen=True)
class Comparison:
    """How two benchmark files agree on their shared canonical architectures."""

    a: str  # source of the first file
    b: str  # source of the second file
    n_shared: int  # canonical architectures present in both
    kendall_tau: float  # Kendall tau-b of mean_acc, a vs b
    spearman_rho: float  # Spearman rho (average ranks) of mean_acc, a vs b
    mean_abs_diff: float  # mean |mean_acc_a - mean_acc_b|, percentage points
    max_abs_diff: float  # max |mean_acc_a - mean_acc_b|, percentage points
    top_k_overlap: dict[int, float]  # k -> fraction of a's top-k (by mean_acc) also in b's top-k
    noise_tau_a: float  # mean Kendall tau-b between single seeds of a (pairs of seeds), nan if < 2 seeds
    noise_tau_b: float  # the same within b

    @property
    def within_noise(self) -> bool:
        """True when a vs b rank at least as alike as two single seeds of the same file do."""
        return self.kendall_tau >= min(self.noise_tau_a, self.noise_tau_b)


def shared_rows(a: Benchmark, b: Benchmark) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into a and into b of their shared canonical codes, in code order."""
    shared = sorted(set(a.codes).intersection(b.codes))
    return (
        np.array([a._rows[c] for c in shared], dtype=np.int64),
        np.array([b._rows[c] for c in shared], dtype=np.int64),
    )


def _top_overlap(mean_a: np.ndarray, mean_b: np.ndarray, k: int) -> float:
    """Fraction of a's top-k also in b's top-k (k capped at the sample size); ties by code."""
    k = min(check_int("k", k, 1), len(mean_a))
    top_a, top_b = ranked(mean_a, True)[:k], ranked(mean_b, True)[:k]
    return len(np.intersect1d(top_a, top_b)) / k


def compare(a: Benchmark, b: Benchmark, ks: Sequence[int] = (10, 100)) -> Comparison:
    """Rank agreement, accuracy differences, top-k overlap and seed-noise ceilings of a vs b."""
    rows_a, rows_b = shared_rows(a, b)
    if len(rows_a) < 2:
        raise ValueError(f"{a.source} and {b.source} share {len(rows_a)} architectures; compare needs 2")
    mean_a, mean_b = a.mean_acc[rows_a], b.mean_acc[rows_b]
    diff = np.abs(mean_a - mean_b)
    return Comparison(
        a=a.source,
        b=b.source,
        n_shared=len(rows_a),
        kendall_tau=kendall_tau(mean_a, mean_b),
        spearman_rho=spearman_rho(mean_a, mean_b),
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        top_k_overlap={int(k): _top_overlap(mean_a, mean_b, k) for k in ks},
        noise_tau_a=seed_noise_tau(a.test_acc[rows_a]),
        noise_tau_b=seed_noise_tau(b.test_acc[rows_b]),
    )
