"""Query and compare NAS-Bench-Macro benchmark files (the published one, or this project's exports).

    from nbm_lightning.bench import Benchmark, compare
    bench = Benchmark.load("nas-bench-macro_cifar10.json")
    bench.query("10201201"); bench.top(5); bench.pareto(); compare(mine, bench)

Modules: `table` (the Benchmark and its file formats), `rankstats` (Kendall tau, Spearman rho, seed noise),
`compare` (agreement of two files), `plots` (PNG figures), `__main__` (the command line).
"""

from ..errors import MissingDependency, require
from .compare import Comparison, compare, shared_rows
from .rankstats import kendall_tau, seed_noise_tau, spearman_rho
from .table import (
    ENV_BENCHMARK,
    METRICS,
    PUBLISHED_NAME,
    Benchmark,
    BenchmarkError,
    BenchmarkFormatError,
    Metric,
    Record,
    benchmark_path,
    detect_format,
    pareto_rows,
)

__all__ = [
    "ENV_BENCHMARK", "METRICS", "PUBLISHED_NAME", "Benchmark", "BenchmarkError", "BenchmarkFormatError",
    "Comparison", "Metric", "MissingDependency", "Record", "benchmark_path", "compare", "detect_format",
    "kendall_tau", "pareto_rows", "require", "seed_noise_tau", "shared_rows", "spearman_rho",
]  # fmt: skip
