"""How two benchmark files agree: rank correlation with its uncertainty against a like-for-like noise ceiling,
the level (mean difference) against the seed-to-seed spread, and top-k overlap where k is small enough to mean
something.

The ceiling is what two independent benchmarks of one recipe would reach with the seed counts of a and b: each
architecture's true mean accuracy is taken as the pooled mean of both files, its seed variance as the pooled
per-architecture variance (ddof 1) of the files with at least two seeds, smoothed over bins of NOISE_BIN
architectures of similar accuracy (per-architecture variances from 2 or 3 seeds are so noisy that they overstate
the ceiling; the smoothed ones reproduce the published file's own seed-to-seed taus to 0.001), and
CEILING_DRAWS pairs of benchmarks are drawn from that model. Tau's uncertainty is a bootstrap over the shared
architectures. Below MIN_SHARED shared architectures there is no ranking verdict.

Like is compared with like: one split of both files (`split`: "test", every file's, by default; "val" where both
hold a validation split), of each file's primary metric (a note warns where the metrics differ); the Comparison
and its lines name the split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.validate import check_int
from .rankstats import kendall_tau, ranked, seed_noise_tau, spearman_rho
from .table import Benchmark

MIN_SHARED = 50  # fewest shared architectures for a ranking verdict (at 50 tau's 95 % interval is +-0.05 wide)
TOP_K_SHARE = 10  # a top-k overlap is reported only for k <= n_shared / TOP_K_SHARE (else it is near 1 by chance)
BOOTSTRAP = 100  # bootstrap resamples of the shared architectures (tau's standard error)
CEILING_DRAWS = 40  # simulated pairs of independent benchmarks (the ceiling's mean and spread)
NOISE_BIN = 100  # architectures per bin of similar mean accuracy over which the seed variance is pooled
RANK_Z = 2.0  # within noise unless tau lies more than RANK_Z combined standard errors below the ceiling
LEVEL_Z = 3.0  # the levels differ when |mean difference| exceeds LEVEL_Z standard deviations of seed noise
WORDS = {"best": "best-over-epochs (test-set selection)", "final": "final-epoch"}  # metric -> words in notes


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
    top_k_overlap: dict[int, float]  # k -> fraction of a's top-k also in b's top-k, only k <= n_shared/TOP_K_SHARE
    noise_tau_a: float  # mean Kendall tau-b between single seeds of a (pairs of seeds), nan if < 2 seeds
    noise_tau_b: float  # the same within b
    seeds_a: int  # seeds per architecture in a
    seeds_b: int  # seeds per architecture in b
    metric_a: str  # what a's accuracies are: "best" (max over epochs) or "final"
    metric_b: str  # the same for b
    split: str  # the split compared, in both files: "test" or "val" (like with like)
    tau_se: float  # bootstrap standard error of kendall_tau over the shared architectures
    ceiling_tau: float  # mean tau of two simulated independent benchmarks with seeds_a and seeds_b seeds; nan: no model
    ceiling_sd: float  # standard deviation of that simulated tau
    mean_diff: float  # mean of mean_acc_a - mean_acc_b, percentage points
    level_sd: float  # standard deviation of mean_diff from seed noise alone (per-seed means), pp; nan: no model
    within_noise: bool | None  # ranking verdict: tau not significantly below the ceiling; None: no verdict
    same_level: bool | None  # level verdict: |mean_diff| <= LEVEL_Z level_sd; None: no verdict
    notes: tuple[str, ...]  # why a verdict or an overlap is missing, and warnings (metrics that differ)


def shared_rows(a: Benchmark, b: Benchmark) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into a and into b of their shared canonical codes, in code order."""
    shared = sorted(set(a.codes).intersection(b.codes))
    return (
        np.array([a._rows[c] for c in shared], dtype=np.int64),
        np.array([b._rows[c] for c in shared], dtype=np.int64),
    )


def _top_overlap(mean_a: np.ndarray, mean_b: np.ndarray, k: int) -> float:
    """Fraction of a's top-k also in b's top-k; ties by code."""
    top_a, top_b = ranked(mean_a, True)[:k], ranked(mean_b, True)[:k]
    return len(np.intersect1d(top_a, top_b)) / k


def _bootstrap_se(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """Standard error of Kendall's tau-b from resampling the architectures with replacement."""
    taus = [kendall_tau(x[i], y[i]) for i in rng.integers(len(x), size=(BOOTSTRAP, len(x)))]
    finite = np.array([t for t in taus if not math.isnan(t)])
    return float(finite.std(ddof=1)) if len(finite) > 1 else math.nan


def seed_variance(accs: Sequence[np.ndarray], mu: np.ndarray) -> np.ndarray | None:
    """Per-architecture seed variance, pooled over files of >= 2 seeds and over bins of similar `mu`; None if none."""
    parts = [(acc.var(axis=1, ddof=1), acc.shape[1] - 1) for acc in accs if acc.shape[1] >= 2]
    if not parts:
        return None
    pooled = sum(var * df for var, df in parts) / sum(df for _, df in parts)
    order, smooth = np.argsort(mu, kind="stable"), np.empty_like(pooled)
    for chunk in np.array_split(order, max(1, len(order) // NOISE_BIN)):
        smooth[chunk] = pooled[chunk].mean()
    return smooth


def noise_ceiling(
    mu: np.ndarray, var: np.ndarray, seeds_a: int, seeds_b: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Mean and sd of tau between two simulated independent benchmarks of `seeds_a` and `seeds_b` seeds."""
    sd_a, sd_b = np.sqrt(var / seeds_a), np.sqrt(var / seeds_b)
    taus = [
        kendall_tau(mu + sd_a * rng.standard_normal(len(mu)), mu + sd_b * rng.standard_normal(len(mu)))
        for _ in range(CEILING_DRAWS)
    ]
    return float(np.mean(taus)), float(np.std(taus, ddof=1))


def level_sd(accs: Sequence[np.ndarray], var: np.ndarray, seeds_a: int, seeds_b: int) -> float:
    """Sd of the mean difference from seed noise: the spread of per-seed file means (at least the iid part)."""
    parts = [(acc.mean(axis=0).var(ddof=1), acc.shape[1] - 1) for acc in accs if acc.shape[1] >= 2]
    per_seed = sum(v * df for v, df in parts) / sum(df for _, df in parts)
    per_seed = max(per_seed, float(var.mean()) / len(var))  # a spread estimated from few seeds may come out ~0
    return math.sqrt(per_seed * (1 / seeds_a + 1 / seeds_b))


def _metric_note(a: Benchmark, b: Benchmark) -> list[str]:
    """A warning where the two files hold different accuracies (final against best)."""
    if a.metric == b.metric:
        return []
    return [
        f"warning: a holds {WORDS[a.metric]} accuracies and b {WORDS[b.metric]} ones: the level differs by "
        "construction and the ranks may too; compare like with like (export --metric)"
    ]


def split_accs(bench: Benchmark, split: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean over seeds, per-seed accuracies) of `rows` on one split, the file's primary metric (test: its stored
    mean_acc and test_acc)."""
    if split == "test":
        bench.acc_table(split=split)  # InvalidValue for a name that is no split
        return bench.mean_acc[rows], bench.test_acc[rows]
    acc = bench.acc_table(split=split)[rows]
    return acc.mean(axis=1), acc


def compare(
    a: Benchmark, b: Benchmark, ks: Sequence[int] = (10, 100), seed: int = 0, split: str = "test"
) -> Comparison:
    """Rank agreement (uncertainty, like-for-like ceiling), level and top-k overlap of a vs b on one split of both;
    `seed` for resampling."""
    rows_a, rows_b = shared_rows(a, b)
    if len(rows_a) < 2:
        raise ValueError(f"{a.source} and {b.source} share {len(rows_a)} architectures; compare needs 2")
    (mean_a, acc_a), (mean_b, acc_b) = split_accs(a, split, rows_a), split_accs(b, split, rows_b)
    accs = (acc_a, acc_b)
    mu = (a.seeds * mean_a + b.seeds * mean_b) / (a.seeds + b.seeds)
    var, notes = seed_variance(accs, mu), []
    fields = {
        **_ranking(mean_a, mean_b, mu, var, (a.seeds, b.seeds), np.random.default_rng(seed), notes),
        **_level(mean_a - mean_b, accs, var, notes),
        "top_k_overlap": _overlaps(mean_a, mean_b, ks, notes),
    }
    return Comparison(
        a=a.source,
        b=b.source,
        n_shared=len(rows_a),
        spearman_rho=spearman_rho(mean_a, mean_b),
        noise_tau_a=seed_noise_tau(accs[0]),
        noise_tau_b=seed_noise_tau(accs[1]),
        seeds_a=a.seeds,
        seeds_b=b.seeds,
        metric_a=a.metric,
        metric_b=b.metric,
        split=split,
        notes=tuple(notes + _metric_note(a, b)),
        **fields,
    )


def _ranking(
    mean_a: np.ndarray,
    mean_b: np.ndarray,
    mu: np.ndarray,
    var: np.ndarray | None,
    seeds: tuple[int, int],
    rng: np.random.Generator,
    notes: list[str],
) -> dict[str, Any]:
    """Tau, its bootstrap se, the ceiling and the ranking verdict (a reason appended to `notes` where none)."""
    tau, se = kendall_tau(mean_a, mean_b), _bootstrap_se(mean_a, mean_b, rng)
    ceiling, ceiling_sd = (math.nan, math.nan) if var is None else noise_ceiling(mu, var, *seeds, rng)
    reason = None
    if len(mu) < MIN_SHARED:
        reason = f"no ranking verdict: {len(mu)} shared architectures, at least {MIN_SHARED} needed"
    elif var is None:
        reason = "no ranking verdict: neither file has two seeds, so there is no seed noise to compare with"
    elif math.isnan(tau):
        reason = "no ranking verdict: the mean accuracies of a or b are all equal"
    notes += [reason] if reason else []
    within = None if reason else bool(tau >= ceiling - RANK_Z * math.hypot(se, ceiling_sd))
    return {"kendall_tau": tau, "tau_se": se, "ceiling_tau": ceiling, "ceiling_sd": ceiling_sd, "within_noise": within}


def _level(diff: np.ndarray, accs: Sequence[np.ndarray], var: np.ndarray | None, notes: list[str]) -> dict[str, Any]:
    """Mean differences, the seed-noise sd of the mean difference and the level verdict."""
    spread = math.nan if var is None else level_sd(accs, var, accs[0].shape[1], accs[1].shape[1])
    if var is None:
        notes.append("no level verdict: neither file has two seeds, so there is no seed spread to compare with")
    return {
        "mean_diff": float(diff.mean()),
        "mean_abs_diff": float(np.abs(diff).mean()),
        "max_abs_diff": float(np.abs(diff).max()),
        "level_sd": spread,
        "same_level": None if var is None else bool(abs(diff.mean()) <= LEVEL_Z * spread),
    }


def _overlaps(mean_a: np.ndarray, mean_b: np.ndarray, ks: Sequence[int], notes: list[str]) -> dict[int, float]:
    """Top-k overlaps for k <= n/TOP_K_SHARE (a note names the k left out)."""
    ks = [check_int("k", k, 1) for k in ks]
    kept, limit = [k for k in ks if k * TOP_K_SHARE <= len(mean_a)], len(mean_a) // TOP_K_SHARE
    if len(kept) < len(ks):
        omitted = sorted(set(ks) - set(kept))
        notes.append(f"top-k overlap omitted for k = {omitted}: k must be at most n_shared/{TOP_K_SHARE} = {limit}")
    return {k: _top_overlap(mean_a, mean_b, k) for k in kept}
