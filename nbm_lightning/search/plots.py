"""Anytime curves of search runs: mean regret with a 95 % band against the number of queries (log-log), one PNG;
its title names the splits observed and reported, a legend entry the observed one where it differs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bench.plots import new_figure, save_png
from .runs import label, regrets

Z95 = 1.959964  # two-sided 95 % normal quantile: band = mean +- Z95 x standard error over trials


def band(regret: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: mean regret over trials and the 95 % band (mean -+ Z95 standard errors)."""
    mean = regret.mean(axis=0)
    se = regret.std(axis=0, ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else np.zeros_like(mean)
    return mean, mean - Z95 * se, mean + Z95 * se


def plot_anytime(files: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Mean regret (to the space's best mean accuracy) against budget, a 95 % band, one line per runs file."""
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    for runs in files:
        regret = regrets(runs)
        mean, low, high = band(regret)
        queries = np.arange(1, regret.shape[1] + 1)
        (line,) = axes.plot(queries, mean, label=f"{label(runs)}, {len(regret)} trials")
        axes.fill_between(queries, low, high, color=line.get_color(), alpha=0.25, linewidth=0)
    source, positive = Path(files[0]["benchmark"]["path"]).name, all(regrets(f).mean(axis=0).min() > 0 for f in files)
    reported = "/".join(sorted({f["reported_split"] for f in files}))  # one split: `search run` reports on test
    ylabel = f"regret of the incumbent's {reported} mean (pp)"
    axes.set(xscale="log", xlabel="queries (distinct architectures)", ylabel=ylabel)
    axes.set_yscale("log" if positive else "linear")  # log where every mean regret stays above 0
    observed = "/".join(sorted({f["observed_split"] for f in files}))
    axes.set_title(f"Anytime search on {source}: observed {observed}, reported {reported}; mean regret, 95 % band")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3, which="both")
    return save_png(figure, out)
