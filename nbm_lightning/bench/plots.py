"""PNG plots of a benchmark: histograms (paper Figure 7), accuracy vs cost with the Pareto front, and
the scatter of two files' mean accuracies. Matplotlib (Agg, no pyplot state) is imported on first use."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_bytes
from ..core.errors import require
from .compare import Comparison, compare, shared_rows, split_accs
from .rankstats import pareto_rows
from .table import METRICS, Benchmark

DPI = 120  # resolution of every PNG


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn by the Agg canvas (no pyplot, no global backend state)."""
    require("matplotlib", "plots", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write a figure as PNG atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _display(bench: Benchmark, metric: str) -> np.ndarray:
    """A metric's values in display units (M params, M MACs, %)."""
    return bench.column(metric) * METRICS[metric].scale


def plot_histograms(bench: Benchmark, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Histograms of params, FLOPs and mean accuracy over the unique architectures (three panels)."""
    figure = new_figure(12, 3.6)
    for axes, metric in zip(figure.subplots(1, 3), ("params", "flops", "mean_acc")):
        axes.hist(_display(bench, metric), bins=40, color="tab:blue", edgecolor="white", linewidth=0.3)
        axes.set_xlabel(METRICS[metric].label)
        axes.set_ylabel("architectures")
    figure.suptitle(f"{len(bench)} unique architectures of {Path(bench.source).name}")
    return [save_png(figure, Path(out_dir) / "histograms.png")]


def plot_pareto(bench: Benchmark, out_dir: str | os.PathLike[str], x: str = "flops") -> Path:
    """Mean accuracy against a cost (flops or params), the Pareto front marked."""
    front = [bench.row(r.code) for r in bench.pareto(x=x)]
    return _front_figure(bench, _display(bench, x), front, METRICS[x].label, Path(out_dir) / f"accuracy_vs_{x}.png")


def plot_latency(bench: Benchmark, out_dir: str | os.PathLike[str], latency: np.ndarray, label: str) -> Path:
    """Mean accuracy against measured latency (`Benchmark.costs`, ms), the Pareto front (fast and accurate) marked."""
    front = pareto_rows(latency, bench.mean_acc).tolist()
    return _front_figure(bench, latency, front, label, Path(out_dir) / "accuracy_vs_latency.png")


def _front_figure(bench: Benchmark, cost: np.ndarray, front: list[int], label: str, path: Path) -> Path:
    """Scatter of mean accuracy against `cost` (display units), the rows `front` joined in red."""
    acc = _display(bench, "mean_acc")
    figure = new_figure(7, 5)
    axes = figure.subplots()
    axes.scatter(cost, acc, s=4, color="0.6", alpha=0.6, label=f"all {len(bench)} architectures")
    axes.plot(cost[front], acc[front], "o-", color="tab:red", markersize=4, label=f"Pareto front ({len(front)})")
    axes.set(
        xlabel=label,
        ylabel=METRICS["mean_acc"].label,
        title=f"{len(front)} Pareto-optimal of {len(bench)} architectures",
    )
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return save_png(figure, path)


def plot_all(
    bench: Benchmark, out_dir: str | os.PathLike[str], latency: tuple[np.ndarray, str] | None = None
) -> list[Path]:
    """The histograms and accuracy vs FLOPs with its Pareto front; with `latency` (values, axis label) accuracy vs
    latency with its own."""
    paths = plot_histograms(bench, out_dir) + [plot_pareto(bench, out_dir, "flops")]
    return paths + ([] if latency is None else [plot_latency(bench, out_dir, *latency)])


def plot_compare(a: Benchmark, b: Benchmark, out_dir: str | os.PathLike[str], result: Comparison | None = None) -> Path:
    """Scatter of b's against a's mean accuracy (of the split compared) on shared architectures, the line y = x, tau
    in the title."""
    result = result or compare(a, b)
    rows_a, rows_b = shared_rows(a, b)
    (x, _), (y, _) = split_accs(a, result.split, rows_a), split_accs(b, result.split, rows_b)
    words = {"test": "test", "val": "validation"}[result.split]
    figure = new_figure(6, 6)
    axes = figure.subplots()
    axes.scatter(x, y, s=4, alpha=0.5, color="tab:blue")
    low, high = math.floor(min(x.min(), y.min())), math.ceil(max(x.max(), y.max()))
    axes.plot([low, high], [low, high], "--", color="tab:red", linewidth=1, label="y = x")
    axes.set(
        xlabel=f"{Path(a.source).name}: mean {words} accuracy (%)",
        ylabel=f"{Path(b.source).name}: mean {words} accuracy (%)",
    )
    axes.set_title(
        f"Kendall tau-b = {result.kendall_tau:.4f}, Spearman rho = {result.spearman_rho:.4f}, n = {result.n_shared}"
    )
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return save_png(figure, Path(out_dir) / "compare_mean_acc.png")
