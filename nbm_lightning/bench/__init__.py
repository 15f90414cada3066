"""Query and compare NAS-Bench-Macro benchmark files (the published one, or this project's exports).

    from nbm_lightning.bench import Benchmark, compare
    bench = Benchmark.load("nas-bench-macro_cifar10.json")
    bench.query("10201201"); bench.top(5); bench.pareto(); compare(mine, bench)
    Benchmark.load()  # no path: $NBM_BENCHMARK, else the published file, downloaded once into a cache

Modules: `table` (the Benchmark and its queries), `formats` (which file, which format), `published` and
`extended` (the two file formats, read and written), `budget` (the query budget counter), `fetch` (the
published file's download cache), `rankstats` (Kendall tau, Spearman rho, seed noise), `compare` (agreement of
two files), `plots` (PNG figures), `__main__` (the command line).
"""

from ..core.errors import MissingDependency, require
from .budget import Budget
from .compare import Comparison, compare, shared_rows
from .fetch import ENV_BENCHMARK, PUBLISHED_NAME, PUBLISHED_SHA256, PUBLISHED_URL, cache_dir, published_file
from .formats import BenchmarkError, BenchmarkFormatError, benchmark_path, detect_format
from .published import ArchResult
from .rankstats import kendall_tau, pareto_rows, seed_noise_tau, spearman_rho
from .table import ACC_METRICS, METRICS, PROXY_SECONDS_PER_MAC, ArchNotFound, Benchmark, Metric

__all__ = [
    "ACC_METRICS", "ENV_BENCHMARK", "METRICS", "PROXY_SECONDS_PER_MAC", "PUBLISHED_NAME", "PUBLISHED_SHA256",
    "PUBLISHED_URL", "ArchNotFound", "Benchmark", "BenchmarkError", "BenchmarkFormatError", "Budget", "Comparison",
    "Metric", "MissingDependency", "ArchResult", "benchmark_path", "cache_dir", "compare", "detect_format",
    "kendall_tau",
    "pareto_rows", "published_file", "require", "seed_noise_tau", "shared_rows", "spearman_rho",
]  # fmt: skip
