"""Hardware cost of every network, measured: the cost file and its queries (no torch), and the measuring (torch).

    from nbm_lightning.hwcost import cost, join, rank_correlations, load
    cost("12012012", "latency_ms", file="results/cost_cpu.json")  # median ms at batch 1
    join(bench.archs(), "latency_ms", file="results/cost_cpu.json")  # code -> latency, for a benchmark's codes

Modules: `costfile` (the format: settings, entries, reader, writer), `query` (`cost`, `join`), `report` (rank
correlation of latency with FLOPs and params) load no torch; `timing`, `measure` (one network) and `session`
(many, saved as it goes, resumed) do, and are imported by `python -m nbm_lightning.cost` only.
"""

from .costfile import FORMAT, VERSION, CostFile, CostFileError, Entry, Settings, Timing, load
from .query import MEASURES, STATS, CostNotFound, cost, join, open_cost_file
from .report import Correlations, rank_correlations, spearman

__all__ = [
    "FORMAT", "MEASURES", "STATS", "VERSION", "Correlations", "CostFile", "CostFileError", "CostNotFound", "Entry",
    "Settings", "Timing", "cost", "join", "load", "open_cost_file", "rank_correlations", "spearman",
]  # fmt: skip
