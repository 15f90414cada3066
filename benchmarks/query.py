"""Time loading the published file and 10,000 `Benchmark.query` calls (valid codes, canonical or not)."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from nbm_lightning.arch.codes import all_codes
from nbm_lightning.bench import Benchmark, benchmark_path
from nbm_lightning.core.errors import UserError

QUERIES = 10_000  # query calls timed


def run(seed: int = 0) -> dict:
    """Seconds to load the benchmark file ($NBM_BENCHMARK), to answer QUERIES queries, and both together."""
    path = benchmark_path()  # UserError naming NBM_BENCHMARK where it is not set
    codes = [all_codes()[i] for i in np.random.default_rng(seed).integers(0, len(all_codes()), QUERIES)]
    start = time.perf_counter()
    bench = Benchmark.load(path)
    loaded = time.perf_counter()
    for code in codes:
        bench.query(code)
    done = time.perf_counter()
    return {"load_s": loaded - start, "query_10k_s": done - loaded, "total_s": done - start}


if __name__ == "__main__":
    try:
        print(json.dumps(run(), indent=1))
    except UserError as err:
        sys.exit(f"benchmarks/query.py: error: {err}")
