"""Search-space operations for searchers (no torch): random codes, one-layer mutations, neighbours, crossover.

What each acts on:

- `random_code` draws uniformly from the 6561 codes (a network with k codes is k times as likely);
  `random_arch` draws uniformly from the 3969 canonical codes (every network equally likely: the scheme of
  random search here, there without replacement).
- `one_op_changes`, `mutate` and `crossover` take any of the 6561 codes and return codes (not canonicalized):
  a mutation changes one layer's op, layer and new op uniform (16 equally likely results); crossover takes each
  layer's op from either parent with probability 1/2.
- `neighbours` returns the distinct canonical codes (networks) one op change away: never the code's own network
  (a one-digit change always changes a stage's sequence of non-identity ops), at most 16 and often fewer.

`SpaceIndex` holds the same facts as integer tables over the 3969 canonical codes (row i is `unique_codes()[i]`),
built from these functions, for searchers that run thousands of trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..arch.codes import ALLOWED, NUM_LAYERS, all_codes, canonical, unique_codes, validate

CHANGES = NUM_LAYERS * (len(ALLOWED) - 1)  # one-op changes of a code: 8 layers x 2 other ops = 16


def random_code(rng: np.random.Generator) -> str:
    """A code drawn uniformly from the 6561 codes."""
    return all_codes()[int(rng.integers(len(all_codes())))]


def random_arch(rng: np.random.Generator) -> str:
    """A canonical code drawn uniformly from the 3969 (every network equally likely)."""
    return unique_codes()[int(rng.integers(len(unique_codes())))]


def one_op_changes(code: str) -> tuple[str, ...]:
    """The 16 codes that differ from `code` in exactly one layer's op, by layer, then by op."""
    code = validate(code)
    return tuple(code[:i] + op + code[i + 1 :] for i in range(NUM_LAYERS) for op in ALLOWED if op != code[i])


def mutate(code: str, rng: np.random.Generator) -> str:
    """`code` with one layer's op changed: the layer and its new op drawn uniformly (a code, not canonicalized)."""
    return one_op_changes(code)[int(rng.integers(CHANGES))]


def neighbours(code: str) -> tuple[str, ...]:
    """The distinct canonical codes one op change away from `code`, sorted."""
    return tuple(sorted({canonical(c) for c in one_op_changes(code)}))


def crossover(a: str, b: str, rng: np.random.Generator) -> str:
    """Uniform crossover: each layer's op from `a` or `b` with probability 1/2 (a code, not canonicalized)."""
    a, b = validate(a), validate(b)
    take_b = rng.random(NUM_LAYERS) < 0.5
    return "".join(y if pick else x for x, y, pick in zip(a, b, take_b.tolist()))


@dataclass(frozen=True, eq=False)
class SpaceIndex:
    """The search space as integer tables over the canonical codes (row i = unique_codes()[i])."""

    codes: tuple[str, ...]  # the 3969 canonical codes, sorted
    row_of: dict[str, int]  # every one of the 6561 codes -> the row of its canonical code
    changes: tuple[tuple[int, ...], ...]  # per row: the row of the canonical form of each one_op_changes(), in order
    neighbours: tuple[tuple[int, ...], ...]  # per row: the distinct rows of `changes`, sorted


@cache
def space_index() -> SpaceIndex:
    """The space's integer tables, built once from the functions above."""
    codes = unique_codes()
    rows = {code: i for i, code in enumerate(codes)}
    row_of = {code: rows[canonical(code)] for code in all_codes()}
    changes = tuple(tuple(row_of[c] for c in one_op_changes(code)) for code in codes)
    return SpaceIndex(codes, row_of, changes, tuple(tuple(sorted(set(row))) for row in changes))
