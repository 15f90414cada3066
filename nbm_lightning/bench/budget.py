"""A budget counter for benchmark queries (as NAS-Bench-101's): queries and simulated training seconds, with reset.

Charging is per training run, keyed by (canonical code, seed): two codes of one network are one network, and a
run is never paid twice. A query pays for the part of each run it reads that is not paid yet (all epochs, or up
to the epoch asked for), so asking again for a network already paid for is free, and a query that reads a
random seed of a network already paid for reads the first seed paid (the same training, never a fresh draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Budget:
    """Queries and simulated training seconds spent on a benchmark; `reset()` starts again from zero."""

    queries: int = 0  # distinct canonical architectures charged so far
    seconds: float = 0.0  # simulated training seconds charged so far (recorded train time, or the FLOPs proxy)
    paid: dict[str, dict[int, float]] = field(default_factory=dict)  # canonical code -> seed -> fraction paid (0..1]

    def charge(self, code: str, seeds: Sequence[int], fraction: float, seconds: Sequence[float]) -> float:
        """Pay `fraction` of the training of (code, seed) for each seed (full time `seconds[i]`); the seconds added."""
        runs = self.paid.get(code)
        if runs is None:
            runs = self.paid[code] = {}
            self.queries += 1
        added = 0.0
        for seed, full in zip(seeds, seconds):
            before = runs.get(seed, 0.0)
            if fraction > before:
                added += (fraction - before) * full
                runs[seed] = fraction
        self.seconds += added
        return added

    def first_seed(self, code: str) -> int | None:
        """The first seed paid for a canonical code (what a repeated random-seed query reads), else None."""
        runs = self.paid.get(code)
        return next(iter(runs)) if runs else None

    def reset(self) -> None:
        """Forget everything charged."""
        self.queries, self.seconds = 0, 0.0
        self.paid.clear()
