"""Proxy-ranked search, free scores, the ConfigSpace search space and Optuna samplers (nbm_lightning.search).

Expected values come from the published file (its FLOPs and params orders, its accuracies) or first principles:
the best of N draws when codes (not networks) are drawn uniformly, simulated by an exponential race.
Optuna and ConfigSpace are in the [dev] extra; their tests skip where they are absent.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from nbm_lightning.arch.codes import all_codes, canonical, unique_codes
from nbm_lightning.bench import Benchmark
from nbm_lightning.cli import run_main
from nbm_lightning.core.errors import UserError
from nbm_lightning.search import RankedConfig, Trial, oracle, read_runs, run_trials, search, space_index
from nbm_lightning.search.__main__ import main
from nbm_lightning.search.runs import label

OPTUNA_RS_TRIALS = 40  # Optuna RandomSampler trials of budget 50 (~2.5 ms per ask: ~6 s)
TPE_TRIALS = 8  # TPE trials of budget 100 against 300 of random search (~1.5 s each)


# ---------------------------------------------------------------- proxy-ranked search


@pytest.mark.parametrize("by", ["flops", "params"])
def test_ranked_queries_follow_the_published_order(bench, published, by):
    """The first queries are the canonical codes in descending order of the published FLOPs (params); ties in an
    order drawn by the trial's seed: the same for the same seed, another for another."""
    scores = sorted((published[code][by] for code in unique_codes()), reverse=True)
    space = oracle(bench, "mean")
    runs = {seed: search(space, "ranked", 60, seed, RankedConfig(by)) for seed in (0, 0, 1, 2)}
    for t in runs.values():
        codes = [space.index.codes[row] for row in t.rows]
        assert [published[c][by] for c in codes] == scores[:60]
        assert t.incumbent_mean_acc[-1] == max(np.mean(published[c]["test_acc"]) for c in codes)
    assert runs[1].rows != runs[2].rows and set(runs[1].rows[:50]) != set() and len(set(runs[1].rows)) == 60
    if by == "flops":
        assert space.index.codes[runs[0].rows[0]] == "22222222"  # the one network of most FLOPs
        assert search(space, "ranked", 60, 0).rows == runs[0].rows  # FLOPs is the default


def test_ranked_by_flops_beats_random_search_at_10(bench):
    """The free baseline: 100 trials at N = 10 (seed observation) against 300 of random search."""
    space = oracle(bench, "seed")
    final = {
        algo: space.best - np.array([t.incumbent_mean_acc[9] for t in run_trials(space, algo, 10, seeds)])
        for algo, seeds in (("ranked", range(100)), ("rs", range(1000, 1300)))
    }
    assert scipy.stats.mannwhitneyu(final["ranked"], final["rs"], alternative="less").pvalue < 1e-6


def test_a_score_table_plugs_in_and_is_checked(bench, published):
    index = space_index()
    table = {code: -float(published[canonical(code)]["flops"]) for code in all_codes()}  # every code of a network
    space = oracle(bench, "mean", scores={"small": table})
    rows = search(space, "ranked", 20, 3, RankedConfig("small")).rows
    smallest = sorted(published[c]["flops"] for c in unique_codes())[:20]
    assert [published[index.codes[r]]["flops"] for r in rows] == smallest
    bad = (
        ({**table, "12012012": math.nan}, "score 'small' of 12012012: nan is not a finite number"),
        ({c: v for c, v in table.items() if canonical(c) != "22222222"}, "lacks 1 of 3969 networks, e.g. 22222222"),
        ({**table, "1201201": 0.0}, "'1201201' is not an architecture code"),
        ({**table, "10201201": 5.0}, "codes 10201201 and 10201210 of network 10210210 differ"),
    )
    for scores, message in bad:
        with pytest.raises(ValueError, match=message):
            oracle(bench, scores={"small": scores})
    with pytest.raises(ValueError, match="score 'flops' is the file's own"):
        oracle(bench, scores={"flops": table})
    with pytest.raises(UserError, match="invalid by 'synflow': expected one of flops, params, small"):
        search(space, "ranked", 5, 0, RankedConfig("synflow"))


def test_cli_ranked_and_the_baseline_note(tmp_path, published_path, capsys):
    out = tmp_path / "ranked.json"
    argv = ["run", "--algo", "ranked", "--by", "params", "--budget", "12", "--trials", "3", "--out", str(out)]
    assert run_main(main, [*argv, "--file", str(published_path)]) == 0
    data = read_runs(out)
    assert data["algo"] == "ranked" and data["config"] == {"by": "params"}
    assert run_main(main, ["table", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("| ranked by params (seed) | 3 | ") and "free baseline" in lines[-5]
    refused = ["run", "--algo", "re", "--by", "flops", "--budget", "5", "--out", str(tmp_path / "x.json")]
    assert run_main(main, [*refused, "--file", str(published_path)], prog="search") == 2
    assert "--by flops applies to --algo ranked only" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_ranked_by_a_proxy_of_a_proxies_file(tmp_path, published_path, capsys):
    """`--proxies-file F --by synflow`: the queries follow the file's proxy (here: minus the params, so the smallest
    network first); a file missing a network or undefined for one is refused in one line."""
    from nbm_lightning.zerocost import proxyfile

    codes = list(unique_codes())
    loaded = Benchmark.load(published_path)
    params = {code: loaded.query(code).params for code in codes}
    settings = proxyfile.Settings(proxies=("synflow",), batch_size=16, seeds=(0,), threads=1)

    def write(name: str, scores: dict) -> str:
        made = proxyfile.ProxyFile(settings, {"type": "cpu"}, {"torch": "x"}, ({"command": ["made by hand"]},), scores)
        (tmp_path / name).write_text(proxyfile.dumps(made))
        return str(tmp_path / name)

    whole = {c: {"synflow": proxyfile.Score((-float(params[c]),), (0.0,))} for c in codes}
    out = tmp_path / "runs.json"
    argv = ["run", "--algo", "ranked", "--by", "synflow", "--budget", "5", "--trials", "1", "--file",
            str(published_path), "--out", str(out)]  # fmt: skip
    assert run_main(main, [*argv, "--proxies-file", write("whole.json", whole)]) == 0
    queried = read_runs(out)["trials"][0]["incumbent"]  # the incumbent after each query: the first is the first query
    smallest = min(codes, key=lambda c: (params[c], c))
    assert queried[0] == smallest and read_runs(out)["config"] == {"by": "synflow"}
    capsys.readouterr()
    partial = dict(list(whole.items())[:-1])
    undefined = {**whole, codes[0]: {"synflow": proxyfile.Score((None,), (0.0,))}}
    cases = [("partial.json", partial, "3968 of the 3969 networks"),
             ("undefined.json", undefined, f"undefined (not finite) for 1 networks, e.g. {codes[0]}")]  # fmt: skip
    for name, scores, fragment in cases:
        assert run_main(main, [*argv, "--proxies-file", write(name, scores)], prog="search") == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- the core without the optional packages


def test_search_runs_without_optuna_and_configspace(published_path):
    """Hidden packages: the core imports and runs; an Optuna algorithm and the ConfigSpace space fail in one line."""
    code = f"""
import sys
sys.modules["optuna"] = sys.modules["ConfigSpace"] = None
from nbm_lightning.bench import Benchmark
from nbm_lightning.core.errors import MissingDependency
from nbm_lightning.search import oracle, search
from nbm_lightning.search.interop import configspace
space = oracle(Benchmark.load({str(published_path)!r}))
print(len(search(space, "ranked", 5, 0).rows))
for call in (lambda: search(space, "optuna-tpe", 5, 0), configspace):
    try:
        call()
    except MissingDependency as err:
        print(err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "5"
    assert out[1].startswith("Optuna search needs optuna") and out[1].endswith('pip install "nbm_lightning[optuna]"')
    assert 'pip install "nbm_lightning[configspace]"' in out[2] and len(out) == 3


# ---------------------------------------------------------------- ConfigSpace


def test_configspace_round_trip_of_all_6561_codes():
    pytest.importorskip("ConfigSpace")
    from nbm_lightning.search.interop import LAYERS, code_of, configspace, configuration

    space = configspace(seed=0)
    assert list(space.keys()) == list(LAYERS) and all(tuple(space[n].choices) == ("0", "1", "2") for n in LAYERS)
    assert space.estimate_size() == 6561
    assert [code_of(configuration(code, space)) for code in all_codes()] == list(all_codes())
    sampled = {code_of(c) for c in space.sample_configuration(300)}
    assert len(sampled) > 250 and sampled <= set(all_codes())
    with pytest.raises(ValueError, match="invalid arch code"):
        configuration("1201201")


# ---------------------------------------------------------------- Optuna


def _best_of_n_codes(truth: np.ndarray, ns: tuple[int, ...], sims: int = 10_000) -> dict[int, tuple[float, float]]:
    """Mean and sd of the best true accuracy among the first n distinct networks when codes are drawn uniformly
    (a network with k codes k times as likely): weighted sampling without replacement as an exponential race."""
    weights = np.bincount([space_index().row_of[c] for c in all_codes()], minlength=len(truth))
    rng, found = np.random.default_rng(2024), {n: [] for n in ns}
    for _ in range(sims // 1000):
        keys = rng.exponential(size=(1000, len(truth))) / weights
        first = np.argpartition(keys, max(ns), axis=1)[:, : max(ns)]  # the max(ns) first networks, then in order
        order = np.take_along_axis(first, np.argsort(np.take_along_axis(keys, first, axis=1), axis=1), axis=1)
        for n in ns:
            found[n].append(truth[order[:, :n]].max(axis=1))
    return {n: (float(np.concatenate(v).mean()), float(np.concatenate(v).std())) for n, v in found.items()}


@pytest.mark.slow
def test_optuna_random_sampler_matches_the_order_statistics(bench, truth):
    """Optuna's RandomSampler through our objective (mean observation): the mean best after N = 10 and 50
    networks is the expected best of N when codes are drawn uniformly, within 3 standard errors."""
    pytest.importorskip("optuna")
    space = oracle(bench, "mean")
    trials = run_trials(space, "optuna-random", 50, range(OPTUNA_RS_TRIALS))
    assert all(len(set(t.rows)) == 50 for t in trials)
    for n, (expected, sd) in _best_of_n_codes(truth, (10, 50)).items():
        found = np.array([t.incumbent_mean_acc[n - 1] for t in trials])
        se = sd / math.sqrt(OPTUNA_RS_TRIALS)
        assert abs(found.mean() - expected) < 3 * se, (n, found.mean(), expected, se)


@pytest.mark.slow
def test_optuna_tpe_beats_random_search_at_100(bench):
    """One-sided Mann-Whitney U test on the regret at budget 100, seed observation, independent seeds; Optuna's
    default TPE settings."""
    pytest.importorskip("optuna")
    space = oracle(bench, "seed")
    regret = {
        name: space.best - np.array([t.incumbent_mean_acc[-1] for t in run_trials(space, name, 100, seeds)])
        for name, seeds in (("rs", range(300)), ("optuna-tpe", range(10_000, 10_000 + TPE_TRIALS)))
    }
    test = scipy.stats.mannwhitneyu(regret["optuna-tpe"], regret["rs"], alternative="less")
    assert test.pvalue < 0.01 and regret["optuna-tpe"].mean() < regret["rs"].mean()


def test_optuna_objective_charges_our_budget(bench, published):
    """study.optimize on our objective: each network charged once (a repeated code is free), the study stopped
    when the budget is spent; with a cost, two objectives (accuracy, FLOPs) from the published file."""
    optuna = pytest.importorskip("optuna")
    from nbm_lightning.search.interop import code_of, objective, stop_when_spent

    trial = Trial(oracle(bench, "mean"), 15, seed=4)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial(dict(zip([f"layer{i}" for i in range(8)], "10201201")))
    study.enqueue_trial(dict(zip([f"layer{i}" for i in range(8)], "10210210")))  # the same network: free
    study.optimize(objective(trial), n_trials=100, callbacks=[stop_when_spent(trial)])
    assert trial.spent.queries == len(trial.rows) == 15 and len(study.trials) >= 16
    assert study.trials[0].value == study.trials[1].value == np.mean(published["10210210"]["test_acc"])
    networks = {canonical(code_of(t.params)) for t in study.trials}
    assert networks == {trial.oracle.index.codes[r] for r in trial.rows}
    two = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=0))
    cost_trial = Trial(oracle(bench, "mean"), 5, seed=0)
    two.optimize(objective(cost_trial, cost="flops"), n_trials=5)
    for t in two.trials:
        code = canonical(code_of(t.params))
        assert t.values == [np.mean(published[code]["test_acc"]), published[code]["flops"]]


@pytest.mark.filterwarnings("ignore:QMCSampler is experimental")
def test_optuna_samplers_by_name(bench, tmp_path, published_path, capsys):
    pytest.importorskip("optuna")
    space = oracle(bench, "seed")
    for name in ("optuna-nsga2", "optuna-qmc", "optuna-TPESampler"):
        first, again = search(space, name, 12, 7), search(space, name, 12, 7)
        assert first == again and len(set(first.rows)) == 12, name
    out = tmp_path / "nsga.json"
    argv = ["run", "--algo", "optuna-nsga2", "--cost", "flops", "--budget", "8", "--trials", "2", "--out", str(out)]
    assert run_main(main, [*argv, "--file", str(published_path)]) == 0
    assert read_runs(out)["config"] == {"sampler": "nsgaii", "cost": "flops", "max_repeats": 100}
    assert label(read_runs(out)) == "Optuna nsga2 (cost flops) (seed)"
    assert run_main(main, ["plot", str(out), "--out", str(tmp_path / "any.png")]) == 0  # its anytime curve
    assert (tmp_path / "any.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad, message in (("optuna-foo", "Optuna has no sampler 'foo'"), ("optuna-partialfixed", "needs")):
        with pytest.raises(SystemExit):
            main(["run", "--algo", bad, "--budget", "5", "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert message in err and "optuna-tpe" in err and len(err.splitlines()) == 1


def test_ranked_baseline_benchmark_script(published_path, published, monkeypatch):
    """benchmarks/ranked_baseline.py: by N = 6 every trial has queried the 6 networks of most FLOPs (5th and 6th
    tied), so its mean-mode incumbent is 22222221 (rank 2 of 3969) in every trial; N = 1 is 22222222."""
    from benchmarks import ranked_baseline

    monkeypatch.setenv("NBM_BENCHMARK", str(published_path))
    result = ranked_baseline.curves(trials=4, budget=6)
    ranked = result["modes"]["mean"]["ranked by flops"]
    assert ranked["mean_acc"][0] == pytest.approx(np.mean(published["22222222"]["test_acc"]))
    assert ranked["mean_acc"][5] == pytest.approx(np.mean(published["22222221"]["test_acc"]))
    assert ranked["median_rank"][5] == 2 and set(result["modes"]["seed"]) == {"ranked by flops", "random search"}
    lines = ranked_baseline.table(result, "mean")
    assert len(lines) == 2 + 6 and lines[-1].startswith("| 6 | 93.11 / 0.020 / 2 |")


@pytest.mark.filterwarnings("ignore:PartialFixedSampler is experimental")
def test_a_stalled_sampler_falls_back_to_unqueried_networks(bench, monkeypatch):
    """A sampler that always suggests one code: after max_repeats free repeats, an unqueried random network."""
    optuna = pytest.importorskip("optuna")
    from nbm_lightning.search import interop

    fixed = dict(zip(interop.LAYERS, "12012012"))
    stuck = optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.RandomSampler(seed=0))
    monkeypatch.setattr(interop, "make_sampler", lambda name, seed: stuck)
    trial = Trial(oracle(bench, "mean"), 5, seed=0)
    interop.optuna_search(trial, interop.OptunaConfig("random", max_repeats=3))
    assert trial.rows[0] == space_index().row_of["12012012"] and len(set(trial.rows)) == trial.spent.queries == 5
