"""Time `python -m nbm_lightning.export` on the full grid: 11,907 synthetic complete records with 50-epoch curves.

Targets (two CPU cores): each export under 10 s (the CLI's wall time, interpreter start included), loading the
extended file under 1 s. CPU seconds (the export's worker included) and the load average are reported too:
wall times are only comparable on an otherwise idle machine. The records come from nbm_lightning.synthetic.records
(`grid_records` / `write_records`, built through `RunRecord`; tests/test_export.py uses them too).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nbm_lightning.arch.codes import unique_codes
from nbm_lightning.bench import extended
from nbm_lightning.synthetic.records import grid_records, write_records


def _timed_cli(*args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m nbm_lightning.export` call, its worker process included (fails loudly)."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbm_lightning.export", *args], check=True, capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(n_archs: int = len(unique_codes())) -> dict[str, Any]:
    """Write n_archs x 3 records, then time both exports (wall and CPU) and the extended load."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "results", Path(tmp)
        start = time.perf_counter()
        n = write_records(folder, grid_records(unique_codes()[:n_archs]))
        result: dict[str, Any] = {
            "runs": n,
            "write_records_s": round(time.perf_counter() - start, 2),
            "load_average": os.getloadavg()[0],
        }
        partial = [] if n_archs == len(unique_codes()) else ["--allow-partial"]
        for fmt in ("original", "extended"):
            wall, cpu = _timed_cli("--from", str(folder), "--format", fmt, "--out", str(out / f"{fmt}.json"), *partial)
            result.update(
                {
                    f"export_{fmt}_s": round(wall, 2),
                    f"export_{fmt}_cpu_s": round(cpu, 2),
                    f"{fmt}_bytes": (out / f"{fmt}.json").stat().st_size,
                }
            )
        start = time.perf_counter()
        extended.load(out / "extended.json")
        result["load_extended_s"] = round(time.perf_counter() - start, 3)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
