"""A Monte-Carlo tree search sampler in the spirit of Su et al. 2021 (the seed paper), tabular: no supernet.

The tree: the root is the empty code; a node at depth d is the first d digits of at least one canonical code
and its children are the ops of layer d that keep it so; the leaves are the 3969 canonical codes, so every
path is a distinct network and nothing is ever drawn twice. A query walks down from the root, at each node to
the child of highest UCT score `q + exploration * sqrt(ln(N + 1) / (n + 1))` (N, n: rewards received by the
node and the child; ties drawn in proportion to the unqueried networks below, so a first walk is uniform
over the networks) among the children with an unqueried leaf below. `q` blends the child's
mean reward with the mean reward of every queried network sharing the child's (layer, op) (the paper's "node
communication"; a child not visited yet gets the shared mean alone, an op never seen at that layer scores
infinity, so it is tried first), scaled to [0, 1] by the lowest and highest observation so far. The reward is
the queried network's observed accuracy; it is added to every node on its path and to its (layer, op) pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..arch.codes import NUM_LAYERS, unique_codes
from ..core.validate import check_number
from .oracle import Trial


@dataclass(frozen=True)
class MCTSConfig:
    """UCT constants of the sampler."""

    exploration: float = 0.5  # c of the UCT score, on rewards scaled to [0, 1]
    communication: float = 0.5  # weight of the (layer, op) mean reward in q; 1 - it on the node's own mean

    def __post_init__(self) -> None:
        check_number("exploration", self.exploration, 0)
        check_number("communication", self.communication, 0, 1)


@cache
def tree() -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """The prefix tree of the canonical codes: node -> its children, and node -> canonical codes below it."""
    children: dict[str, set[str]] = {}
    below: dict[str, int] = {}
    for code in unique_codes():
        for depth in range(NUM_LAYERS + 1):
            below[code[:depth]] = below.get(code[:depth], 0) + 1
            if depth < NUM_LAYERS:
                children.setdefault(code[:depth], set()).add(code[: depth + 1])
    return {node: tuple(sorted(kids)) for node, kids in children.items()}, below


class _Search:
    """The statistics of one MCTS run."""

    def __init__(self, trial: Trial, config: MCTSConfig) -> None:
        self.trial, self.config = trial, config
        self.children, below = tree()
        self.left = dict(below)  # node -> unqueried (feasible) leaves below it
        for row in trial.oracle.excluded:  # networks outside a limit are never walked to
            code = trial.oracle.index.codes[row]
            for depth in range(NUM_LAYERS + 1):
                self.left[code[:depth]] -= 1
        self.visits: dict[str, int] = {}  # node -> rewards received
        self.total: dict[str, float] = {}  # node -> sum of rewards received
        self.shared: dict[tuple[int, str], list[float]] = {}  # (layer, op) -> [sum, count] of rewards
        self.low, self.high = math.inf, -math.inf  # observations so far (reward scale)

    def _q(self, node: str) -> float:
        """The node's mean reward blended with its (layer, op) mean, scaled to [0, 1]; inf where neither exists."""
        stat = self.shared.get((len(node) - 1, node[-1]))
        if stat is None:
            return math.inf
        shared = stat[0] / stat[1]
        visits = self.visits.get(node, 0)
        own = self.total[node] / visits if visits else shared
        mixed = (1 - self.config.communication) * own + self.config.communication * shared
        return (mixed - self.low) / (self.high - self.low) if self.high > self.low else 0.0

    def _pick(self, node: str) -> str:
        """The child of highest UCT score (unexplored ops first; ties drawn in proportion to unqueried networks)."""
        kids = [kid for kid in self.children[node] if self.left[kid]]
        log_n, c = math.log(self.visits.get(node, 0) + 1), self.config.exploration
        scores = [self._q(kid) + c * math.sqrt(log_n / (self.visits.get(kid, 0) + 1)) for kid in kids]
        top = max(scores)
        best = [kid for kid, score in zip(kids, scores) if score == top]
        if len(best) == 1:
            return best[0]
        weights = np.array([self.left[kid] for kid in best], dtype=np.float64)  # uniform over the networks below
        return best[int(self.trial.rng.choice(len(best), p=weights / weights.sum()))]

    def step(self) -> None:
        """One query: walk down to a leaf, query its network, back the reward up the path."""
        node = ""
        while len(node) < NUM_LAYERS:
            node = self._pick(node)
        reward = self.trial.query(self.trial.oracle.index.row_of[node])
        self.low, self.high = min(self.low, reward), max(self.high, reward)
        for depth in range(NUM_LAYERS + 1):
            prefix = node[:depth]
            self.visits[prefix] = self.visits.get(prefix, 0) + 1
            self.total[prefix] = self.total.get(prefix, 0.0) + reward
            self.left[prefix] -= 1
        for layer, op in enumerate(node):
            stat = self.shared.setdefault((layer, op), [0.0, 0])
            stat[0] += reward
            stat[1] += 1


def mcts(trial: Trial, config: MCTSConfig = MCTSConfig()) -> None:
    """Sample networks by UCT over the layer tree until the budget is spent."""
    search = _Search(trial, config)
    while not trial.done:
        search.step()
