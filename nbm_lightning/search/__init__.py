"""Search on the benchmark (no torch): search-space operations, the oracle, search algorithms, runs files.

    from nbm_lightning.bench import Benchmark
    from nbm_lightning.search import oracle, search
    trajectory = search(oracle(Benchmark.load(), observe="seed"), "re", budget=100, seed=0)

Modules: `space` (random codes, mutation, neighbours, crossover; integer tables), `oracle` (observation modes,
free scores, a limit on one (`constrain`), Pareto sets, `Trial`, `Trajectory`), `algorithms` (random search,
regularized evolution, local search, proxy-ranked search), `mcts` (the MCTS sampler), `interop` (ConfigSpace
space, Optuna samplers; optional), `runs` (algorithms by name, trials, the runs file, its table), `plots`
(anytime curves), `__main__` (the command line).
"""

from .algorithms import EvolutionConfig, LocalSearchConfig, RandomSearchConfig, RankedConfig
from .mcts import MCTSConfig
from .oracle import OBSERVATIONS, Oracle, Trajectory, Trial, constrain, oracle, pareto_front
from .runs import ALGORITHMS, Algorithm, algorithm, read_runs, run_trials, runs_document, search, write_runs
from .space import SpaceIndex, crossover, mutate, neighbours, one_op_changes, random_arch, random_code, space_index

__all__ = [
    "ALGORITHMS", "OBSERVATIONS", "Algorithm", "EvolutionConfig", "LocalSearchConfig", "MCTSConfig", "Oracle",
    "RandomSearchConfig", "RankedConfig", "SpaceIndex", "Trajectory", "Trial", "algorithm", "constrain", "crossover",
    "mutate", "neighbours", "one_op_changes", "oracle", "pareto_front", "random_arch", "random_code", "read_runs",
    "run_trials", "runs_document", "search", "space_index", "write_runs",
]  # fmt: skip
