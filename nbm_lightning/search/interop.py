"""The search space for other libraries: a ConfigSpace `ConfigurationSpace` and Optuna samplers on our `Trial`.

Both optional (`pip install "nbm_lightning[configspace]"`, `"nbm_lightning[optuna]"`); this module imports them
only when called, so the package stays importable without them.

- ConfigSpace: 8 categorical hyperparameters `layer0` .. `layer7`, choices the op digits "0", "1", "2" (op names
  in each hyperparameter's meta); a configuration is one of the 6561 codes, `code_of` / `configuration` convert.
- Optuna: `objective(trial)` is an Optuna objective on the table (the same 8 categorical parameters) that queries
  our `Trial`, so a study is charged to the same budget counter as our own algorithms: a network already queried
  (by any of its codes) is free and returns the same observation. `optuna_search` runs a sampler by name
  (`optuna-tpe`, `optuna-random`, `optuna-nsga2`, ...: any class of `optuna.samplers` whose constructor needs no
  argument but `seed`, and the grid) with ask and tell until the budget is spent; with `cost` (the name of a free
  score of the oracle, e.g. "flops", or a latency table) the study is two-objective: accuracy up, cost down.
  Under a limit (`oracle.constrain`) a code of an infeasible network is a pruned trial, charged nothing.
  Optuna draws codes, not networks: its RandomSampler is uniform over the 6561 codes, so a network with several
  codes (identity layers) is drawn more often than by our random search (uniform over the 3969 networks).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from ..arch.codes import ALLOWED, NUM_LAYERS, OPS, validate
from ..core.errors import UserError, require
from ..core.validate import check_int
from .oracle import Trial

LAYERS = tuple(f"layer{i}" for i in range(NUM_LAYERS))  # parameter names, one per searchable layer, in code order
CHOICES = tuple(ALLOWED)  # each layer's choices: the op digits
PREFIX = "optuna-"  # algorithm names of Optuna samplers: PREFIX + sampler (e.g. optuna-tpe)
ALIASES = {"nsga2": "nsgaii", "nsga3": "nsgaiii"}  # short sampler names -> Optuna's class name, lower, no "Sampler"
NAME = re.compile(r"[a-z0-9]{1,40}")  # a sampler name's form (checked before Optuna is asked)


# ---------------------------------------------------------------- ConfigSpace


def configspace(seed: int | None = None) -> Any:
    """The search space as a ConfigSpace `ConfigurationSpace`: 8 categorical layers over the op digits."""
    cs = require("ConfigSpace", "configspace", "the ConfigSpace search space")
    space = cs.ConfigurationSpace(name="nas-bench-macro", seed=seed)
    space.add(
        [cs.Categorical(name, CHOICES, meta={"ops": {d: OPS[d].name for d in CHOICES}, "layer": i}) for i, name in
         enumerate(LAYERS)]
    )  # fmt: skip
    return space


def code_of(config: Any) -> str:
    """The code of a configuration (a ConfigSpace Configuration, or any mapping of layer names to digits)."""
    try:
        return validate("".join(str(config[name]) for name in LAYERS))
    except (KeyError, ValueError) as err:
        raise ValueError(f"not a configuration of the search space ({LAYERS[0]} .. {LAYERS[-1]}): {err}") from None


def configuration(code: str, space: Any = None) -> Any:
    """The ConfigSpace Configuration of a code (in `space`, default a new `configspace()`)."""
    cs = require("ConfigSpace", "configspace", "the ConfigSpace search space")
    code = validate(code)
    return cs.Configuration(configspace() if space is None else space, values=dict(zip(LAYERS, code)))


# ---------------------------------------------------------------- Optuna


def _optuna() -> ModuleType:
    """Optuna, quiet (its per-trial INFO lines would flood a run of thousands of trials), or MissingDependency."""
    optuna = require("optuna", "optuna", "Optuna search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def sampler_key(name: str) -> str:
    """The sampler part of an algorithm name, normalised (`optuna-TPESampler` -> `tpe`, `optuna-nsga2` -> `nsgaii`)."""
    key = name.removeprefix(PREFIX).lower().removesuffix("sampler")
    if not NAME.fullmatch(key):
        raise UserError(f"invalid algo {name!r}: expected {PREFIX}SAMPLER, e.g. {PREFIX}tpe or {PREFIX}random")
    return ALIASES.get(key, key)


@cache
def samplers() -> dict[str, type]:
    """Optuna's samplers by key (`tpe`, `random`, `nsgaii`, ...): the classes of optuna.samplers."""
    optuna = _optuna()
    classes = (
        getattr(optuna.samplers, n) for n in dir(optuna.samplers) if n.endswith("Sampler") and n != "BaseSampler"
    )
    return {c.__name__.lower().removesuffix("sampler"): c for c in classes if isinstance(c, type)}


def _needs(cls: type) -> list[str]:
    """Required constructor arguments of a sampler other than `seed` and the grid's search space (given here)."""
    required = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return [n for n in required if n not in ("seed", "search_space")]


def sampler_class(name: str) -> type:
    """The Optuna sampler class of an algorithm name; UserError naming those available otherwise."""
    key, found = sampler_key(name), samplers()
    usable = sorted(k for k, c in found.items() if not _needs(c))
    if key not in found:
        raise UserError(f"invalid algo {name!r}: Optuna has no sampler {key!r}; expected one of {_names(usable)}")
    if _needs(found[key]):
        needs = ", ".join(_needs(found[key]))
        raise UserError(f"invalid algo {name!r}: {found[key].__name__} needs {needs}; expected one of {_names(usable)}")
    return found[key]


def _names(keys: list[str]) -> str:
    """Algorithm names of sampler keys, for messages."""
    return ", ".join(PREFIX + key for key in keys)


def make_sampler(name: str, seed: int) -> Any:
    """A seeded Optuna sampler by algorithm name (the grid sampler over all 6561 codes)."""
    cls = sampler_class(name)
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"seed": seed} if "seed" in params else {}
    if "search_space" in params:
        kwargs["search_space"] = {layer: list(CHOICES) for layer in LAYERS}
    return cls(**kwargs)


def distributions() -> dict[str, Any]:
    """The 8 layers as Optuna categorical distributions."""
    optuna = _optuna()
    return {layer: optuna.distributions.CategoricalDistribution(CHOICES) for layer in LAYERS}


def objective(trial: Trial, cost: str | None = None) -> Any:
    """An Optuna objective on the table: suggests the 8 layers, queries `trial` (charged once per network).
    Returns the observed accuracy, or (accuracy, cost) with `cost` the name of a free score of the oracle.
    `study.optimize(objective(trial), callbacks=[stop_when_spent(trial)])` stops when the budget is spent."""
    table = _cost_table(trial, cost)

    def evaluate(optuna_trial: Any) -> Any:
        code = "".join(optuna_trial.suggest_categorical(layer, CHOICES) for layer in LAYERS)
        row = trial.oracle.index.row_of[code]
        if row in trial.oracle.excluded:  # outside the oracle's limit: never queried, the trial pruned
            raise _optuna().TrialPruned(f"{code} is outside {trial.oracle.constraint}")
        value = trial.query(row)
        return value if table is None else (value, float(table[row]))

    return evaluate


def stop_when_spent(trial: Trial) -> Any:
    """An Optuna callback that stops the study once `trial`'s budget is spent."""

    def callback(study: Any, _frozen: Any) -> None:
        if trial.done:
            study.stop()

    return callback


def _cost_table(trial: Trial, cost: str | None) -> Any:
    """The oracle's free score named `cost` (None: single-objective)."""
    if cost is None:
        return None
    if cost not in trial.oracle.scores:
        raise UserError(
            f"invalid cost {cost!r}: expected one of {', '.join(trial.oracle.scores)} (scores of this oracle)"
        )
    return trial.oracle.scores[cost]


@dataclass(frozen=True)
class OptunaConfig:
    """An Optuna sampler run through `objective` with ask and tell."""

    sampler: str = "tpe"  # the sampler's key (`sampler_key`): tpe, random, nsgaii, cmaes, gp, qmc, bruteforce, grid
    cost: str | None = None  # a free score of the oracle minimised as a second objective (None: accuracy alone)
    max_repeats: int = 100  # suggestions of already-queried networks in a row before an unqueried random one is
    # queried instead (told to the study as an added trial), so a converged sampler cannot stall a trial

    def __post_init__(self) -> None:
        sampler_key(self.sampler)
        check_int("max_repeats", self.max_repeats, 1)


def optuna_search(trial: Trial, config: OptunaConfig = OptunaConfig()) -> None:
    """Ask the sampler for codes and tell it each one's observation until the budget is spent; a network already
    queried is free (its observation told again); the sampler's seed is drawn from the trial's."""
    optuna = _optuna()
    table = _cost_table(trial, config.cost)
    directions = ["maximize"] if table is None else ["maximize", "minimize"]
    sampler = make_sampler(config.sampler, int(trial.rng.integers(2**31)))
    study = optuna.create_study(directions=directions, sampler=sampler)
    space, evaluate, repeats = distributions(), objective(trial, config.cost), 0
    while not trial.done:
        asked = study.ask(space)
        before = len(trial.rows)
        try:
            study.tell(asked, evaluate(asked))
        except optuna.TrialPruned:  # a network outside the limit: a pruned trial, nothing charged
            study.tell(asked, state=optuna.trial.TrialState.PRUNED)
        repeats = 0 if len(trial.rows) > before else repeats + 1
        if repeats >= config.max_repeats and not trial.done:
            row = trial.fresh()
            value = trial.query(row)
            values = [value] if table is None else [value, float(table[row])]
            params = dict(zip(LAYERS, trial.oracle.index.codes[row]))
            study.add_trial(optuna.trial.create_trial(params=params, distributions=space, values=values))
            repeats = 0


def known_sampler_name(name: str) -> bool:
    """Whether a name has the form of an Optuna algorithm name (Optuna itself is not asked)."""
    try:
        return name.startswith(PREFIX) and bool(sampler_key(name))
    except UserError:
        return False
