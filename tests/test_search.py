"""nbm_lightning.search: search-space operations, the oracle, the four algorithms, runs files and the CLI.

Expected values come from the published file (via the conftest fixtures) or from first principles: the best of
N draws without replacement (order statistics), a simulation of the random-seed observation, planted spaces.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from nbm_lightning.arch.codes import all_codes, canonical, is_canonical, unique_codes
from nbm_lightning.bench import ArchResult, Benchmark, extended
from nbm_lightning.cli import run_main
from nbm_lightning.core.errors import UserError
from nbm_lightning.search import (
    ALGORITHMS,
    EvolutionConfig,
    Trial,
    crossover,
    mutate,
    neighbours,
    one_op_changes,
    oracle,
    random_arch,
    random_code,
    read_runs,
    run_trials,
    search,
    space_index,
)
from nbm_lightning.search.__main__ import main

RS_TRIALS = 2000  # random-search trials for the order-statistics check (the acceptance's minimum)
RS_SEEDS = range(2000, 2000 + RS_TRIALS)  # their seeds: the block 0..1999 lies 3.5 SE below the exact mean at
# N = 200 in mean mode, a 1-in-2000 fluctuation (40,000 trials, seeds 0..39999, agree with it to 1.0 SE)
SIM_TRIALS = 20_000  # simulated trials of the random-seed observation (its own standard error is small)
VS_TRIALS = 300  # trials per algorithm for RE / LS against RS (independent seeds: the Mann-Whitney U test)


@pytest.fixture(scope="module")
def seed_acc(published: dict) -> np.ndarray:
    """(3969, 3) per-seed accuracies, from the published JSON itself."""
    return np.array([published[code]["test_acc"] for code in unique_codes()])


# ---------------------------------------------------------------- search-space operations


def test_search_package_imports_no_torch():
    modules = "nbm_lightning.search, nbm_lightning.search.__main__, nbm_lightning.search.plots"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_one_op_changes_mutation_and_neighbours():
    changes = one_op_changes("10201201")
    assert len(changes) == len(set(changes)) == 16
    assert all(sum(x != y for x, y in zip(c, "10201201")) == 1 for c in changes)
    rng = np.random.default_rng(0)
    drawn = Counter(mutate("10201201", rng) for _ in range(3200))
    assert set(drawn) == set(changes) and min(drawn.values()) > 120  # 16 outcomes, ~200 each
    # 00000000: in each stage the first layer gives 2 networks, the others 2 together (identities move last)
    assert len(neighbours("00000000")) == 3 * 4 and all(is_canonical(c) for c in neighbours("00000000"))
    for code in ("10201201", "22212220", "00000000", "12012012"):
        assert canonical(code) not in neighbours(code)  # a one-digit change is always another network
        assert set(neighbours(code)) == {canonical(c) for c in one_op_changes(code)}
    with pytest.raises(ValueError, match="invalid arch code"):
        neighbours("1020120")


def test_random_code_random_arch_and_crossover():
    rng = np.random.default_rng(1)
    codes = [random_code(rng) for _ in range(3000)]
    assert not all(is_canonical(c) for c in codes) and set(codes) <= set(all_codes())
    assert all(is_canonical(random_arch(rng)) for _ in range(300))
    a, b = "00000000", "22222222"
    children = [crossover(a, b, rng) for _ in range(400)]
    assert all(set(c) <= {"0", "2"} for c in children)
    assert 0.4 < np.mean([c[i] == "2" for c in children for i in range(8)]) < 0.6  # each layer from b w.p. 1/2
    assert crossover(a, a, rng) == a
    assert crossover(a, b, np.random.default_rng(7)) == crossover(a, b, np.random.default_rng(7))


def test_space_index_tables_follow_the_functions():
    index = space_index()
    assert index.codes == unique_codes() and len(index.row_of) == 6561
    assert len(index.changes) == 3969 and {len(row) for row in index.changes} == {16}
    for row in (0, 1234, 3968):
        code = index.codes[row]
        assert [index.codes[r] for r in index.changes[row]] == [canonical(c) for c in one_op_changes(code)]
        assert [index.codes[r] for r in index.neighbours[row]] == list(neighbours(code))
    assert index.row_of["10201201"] == index.codes.index("10210210")


# ---------------------------------------------------------------- the oracle and trials


def test_trials_are_deterministic_and_never_query_a_network_twice(bench):
    space = oracle(bench, "seed")
    for algo in ALGORITHMS:
        first, again, other = (search(space, algo, 60, seed) for seed in (3, 3, 4))
        assert first == again and first.rows != other.rows, algo
        assert len(first.rows) == len(set(first.rows)) == 60, algo
        for k in range(60):  # the incumbent: the first best observation so far, judged by its true mean
            best = max(range(k + 1), key=lambda i: (first.observed[i], -i))
            assert first.incumbent[k] == first.rows[best]
            assert first.incumbent_mean_acc[k] == space.truth[first.incumbent[k]]
    tiny = search(space, "re", 5, 0)  # a budget below the population: only random networks
    assert len(tiny.rows) == 5 and tiny.rows == search(space, "rs", 5, 0).rows


def test_seed_observations_are_one_seed_and_charged_once(bench, published):
    space = oracle(bench, "seed")
    trial = Trial(space, 50, seed=11)
    ALGORITHMS["ls"].run(trial, ALGORITHMS["ls"].config)
    for row in trial.rows:
        assert trial.observed[row] in published[space.index.codes[row]]["test_acc"]
    assert trial.query(trial.rows[0]) == trial.observed[trial.rows[0]]  # free once paid: same value
    with pytest.raises(RuntimeError, match="budget of 50 queries spent"):
        trial.query(next(r for r in range(len(space)) if r not in trial.observed))
    flops = bench.flops[list(trial.rows)]
    assert trial.spent.queries == 50 and trial.seconds[-1] == pytest.approx(flops.sum() * 8e-6)
    mean_space = oracle(bench, "mean")
    assert mean_space.means.tolist() == mean_space.truth.tolist() and mean_space.rank.min() == 1
    assert mean_space.index.codes[int(np.argmax(mean_space.truth))] == "22212220"


def test_oracle_refuses_incomplete_files_and_unknown_modes(bench):
    subset = Benchmark.from_records([bench.query(c) for c in bench.archs()[:10]], "subset")
    with pytest.raises(UserError, match="search needs all 3969 architectures; subset holds 10"):
        oracle(subset)
    with pytest.raises(ValueError, match="invalid observe 'noisy': expected one of seed, mean"):
        oracle(bench, "noisy")
    with pytest.raises(ValueError, match="invalid budget 0: expected an int in 1..3969"):
        Trial(oracle(bench), 0, 0)


# ---------------------------------------------------------------- random search against first principles


def _best_of_n_without_replacement(values: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and sd of the largest of n values drawn without replacement (order statistics of the sorted values)."""
    v, m = np.sort(values), len(values)
    k = np.arange(1, m + 1)
    log_p = np.full(m, -np.inf)  # P(max is the k-th smallest) = C(k-1, n-1) / C(m, n)
    ok = k >= n
    lg = scipy.special.gammaln
    log_p[ok] = lg(k[ok]) - lg(n) - lg(k[ok] - n + 1) - (lg(m + 1) - lg(n + 1) - lg(m - n + 1))
    p = np.exp(log_p)
    mean = float(p @ v)
    return mean, math.sqrt(float(p @ v**2) - mean**2)


def _simulated_seed_mode(truth: np.ndarray, seed_acc: np.ndarray, ns: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Simulated random search, random-seed observation: true mean of the first best single-seed observation."""
    rng = np.random.default_rng(12345)
    rows = np.stack([rng.choice(len(truth), max(ns), replace=False) for _ in range(SIM_TRIALS)])
    observed = seed_acc[rows, rng.integers(seed_acc.shape[1], size=rows.shape)]
    return {n: truth[rows[np.arange(SIM_TRIALS), np.argmax(observed[:, :n], axis=1)]] for n in ns}


@pytest.mark.slow
@pytest.mark.parametrize("observe", ["mean", "seed"])
def test_random_search_matches_the_best_of_n_draws(bench, truth, seed_acc, observe):
    ns = (10, 50, 200)
    trials = run_trials(oracle(bench, observe), "rs", max(ns), RS_SEEDS)
    found = np.array([t.incumbent_mean_acc for t in trials])
    simulated = _simulated_seed_mode(truth, seed_acc, ns) if observe == "seed" else None
    for n in ns:
        if observe == "mean":
            expected, sd = _best_of_n_without_replacement(truth, n)
            se = sd / math.sqrt(RS_TRIALS)
        else:
            expected = simulated[n].mean()
            se = math.hypot(simulated[n].std() / math.sqrt(SIM_TRIALS), found[:, n - 1].std() / math.sqrt(RS_TRIALS))
        assert abs(found[:, n - 1].mean() - expected) < 3 * se, (observe, n, found[:, n - 1].mean(), expected, se)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["re", "ls"])
def test_evolution_and_local_search_beat_random_search_at_100(bench, algo):
    """One-sided Mann-Whitney U test on the regret at budget 100, random-seed observation, independent seeds;
    hyperparameters: the configs' defaults (RE: population 30, tournament 10; LS: 1 random start)."""
    space = oracle(bench, "seed")
    regret = {
        name: space.best - np.array([t.incumbent_mean_acc[-1] for t in run_trials(space, name, 100, seeds)])
        for name, seeds in (("rs", range(VS_TRIALS)), (algo, range(10_000, 10_000 + VS_TRIALS)))
    }
    test = scipy.stats.mannwhitneyu(regret[algo], regret["rs"], alternative="less")
    assert test.pvalue < 0.01 and regret[algo].mean() < regret["rs"].mean()


def _planted(layer: int, levels: dict[str, float]) -> Benchmark:
    """A synthetic benchmark in which the op of one layer (of the canonical code) decides the accuracy."""
    records = [ArchResult(c, (levels[c[layer]],), levels[c[layer]], 0.0, 1, 1) for c in unique_codes()]
    return Benchmark.from_records(records, f"planted layer {layer}")


@pytest.mark.parametrize("layer, op", [(0, "2"), (3, "1"), (6, "2")])
def test_mcts_finds_the_planted_best_and_learns_the_layer(layer, op):
    levels = {d: 90.0 if d == op else 50.0 + 10 * int(d) for d in "012"}
    space = oracle(_planted(layer, levels), "mean")
    base = float(np.mean(space.truth == space.best))  # the share of best networks: what a blind sampler hits
    runs = [search(space, "mcts", 100, seed) for seed in range(50)]
    assert np.mean([max(t.incumbent_mean_acc) == space.best for t in runs]) >= 0.9
    share = np.mean([np.mean(space.truth[list(t.rows[50:])] == space.best) for t in runs])
    assert share > base + 0.1, (share, base)  # it learns: a reward-blind sampler's share is base +- 0.01


# ---------------------------------------------------------------- an extended file: epochs, final, recorded time


@pytest.fixture(scope="module")
def extended_path(tmp_path_factory, published) -> Path:
    """A complete extended export made from the published seeds: best = published, final = best - 1, 2-epoch
    curves (epoch 0 at final - 10), training time 600 + seed seconds."""
    archs = {}
    for code in unique_codes():
        value = published[code]
        runs = [
            {"seed": s, "test_acc_best": a, "test_acc_final": a - 1, "best_epoch": 1, "epochs": 2,
             "val_acc_best": None, "val_acc_final": None,
             "train_time_s": 600.0 + s, "run_name": f"{code}-s{s}", "wandb_id": None, "wandb_url": None,
             "finished_at": None, "curves": {"eval_acc": extended.encode_curve([a - 11, a - 1])}}
            for s, a in enumerate(value["test_acc"])
        ]  # fmt: skip
        archs[code] = {"params": value["params"], "flops": value["flops"], "ptflops_macs": None, "runs": runs}
    provenance = {key: {} for key in extended.PROVENANCE_KEYS} | {"metric": "final", "sources": []}
    provenance |= {"curves": extended.CURVE_ENCODING, "eval_split": "test"}
    path = tmp_path_factory.mktemp("ext") / "extended.json"
    path.write_text(json.dumps({"format": extended.FORMAT, "version": extended.VERSION, "created_at": "",
                                "provenance": provenance, "archs": archs}))  # fmt: skip
    return path


def test_search_on_an_extended_file_at_an_epoch(extended_path, published):
    bench = Benchmark.load(extended_path)
    space = oracle(bench, "seed", epoch=0)
    trial = Trial(space, 20, seed=0)
    ALGORITHMS["rs"].run(trial, ALGORITHMS["rs"].config)
    for row in trial.rows:  # epoch 0 of a run: its final accuracy - 10 (float32 curves)
        assert min(abs(trial.observed[row] + 11 - a) for a in published[space.index.codes[row]]["test_acc"]) < 1e-4
    assert space.fraction == 0.5 and trial.spent.seconds == pytest.approx(20 * 300, abs=20)  # half of ~600 s runs
    final = oracle(bench, "mean")
    assert final.metric == "final" and final.truth == pytest.approx(oracle(bench, "mean", "best").truth - 1)


# ---------------------------------------------------------------- observed on validation, reported on test


@pytest.fixture(scope="module")
def val_path(tmp_path_factory, published) -> Path:
    """A complete validation-split export (no curves) where validation and test disagree: test final = the published
    seeds, val final = a scramble of the codes unrelated to them (row x 7919 mod 3969 scaled to 50..90 %, + seed/10),
    val best 1 point higher."""
    archs = {}
    for i, code in enumerate(unique_codes()):
        value, val = published[code], 50.0 + 40.0 * (i * 7919 % 3969) / 3969
        runs = [
            {"seed": s, "test_acc_best": None, "test_acc_final": a, "val_acc_best": val + s / 10 + 1,
             "val_acc_final": val + s / 10, "best_epoch": None, "epochs": 50, "train_time_s": 600.0,
             "run_name": f"{code}-s{s}", "wandb_id": None, "wandb_url": None, "finished_at": None, "curves": None}
            for s, a in enumerate(value["test_acc"])
        ]  # fmt: skip
        archs[code] = {"params": value["params"], "flops": value["flops"], "ptflops_macs": None, "runs": runs}
    provenance = {key: {} for key in extended.PROVENANCE_KEYS} | {"metric": "final", "sources": []}
    provenance |= {"curves": extended.CURVE_ENCODING, "eval_split": "val"}
    path = tmp_path_factory.mktemp("val") / "val.json"
    extended.write(path, {"format": extended.FORMAT, "version": extended.VERSION, "created_at": "",
                          "provenance": provenance, "archs": archs})  # fmt: skip
    return path


def test_search_observes_validation_and_reports_test(val_path, published_path, tmp_path, capsys):
    out = tmp_path / "val-runs.json"
    argv = ["run", "--algo", "re", "--budget", "40", "--trials", "4", "--observe", "val,mean", "--out", str(out)]
    assert run_main(main, [*argv, "--file", str(val_path)]) == 0
    runs, bench = read_runs(out), Benchmark.load(val_path)
    assert (runs["observe"], runs["observed_split"], runs["reported_split"], runs["metric"]) == (
        "mean", "val", "test", "final")  # fmt: skip
    val, test = bench.acc_table(split="val").mean(axis=1), bench.acc_table(split="test").mean(axis=1)
    assert runs["benchmark"]["best_mean_acc"] == pytest.approx(test.max())  # regret is measured on test
    space = oracle(bench, "mean", split="val")
    for trial in runs["trials"]:  # replayed: the incumbent is the best VALIDATION mean so far, judged by its TEST mean
        rows = search(space, "re", 40, trial["seed"]).rows
        chosen = [rows[int(np.argmax(val[list(rows[: q + 1])]))] for q in range(40)]
        assert trial["incumbent"] == [space.index.codes[row] for row in chosen]
        assert trial["incumbent_mean_acc"] == pytest.approx(test[chosen].tolist())
    drops = [b < a for t in runs["trials"] for a, b in zip(t["incumbent_mean_acc"], t["incumbent_mean_acc"][1:])]
    assert any(
        drops
    )  # val and test disagree: a better validation pick can be worse on test (never when judged on test)
    assert run_main(main, ["table", str(out)]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("| regularized evolution (mean, observed val -> reported test) | 4 |")
    )
    assert run_main(main, ["plot", str(out), "--out", str(tmp_path / "val.png")]) == 0
    bad = [*argv[:-4], "--observe", "val", "--file", str(published_path), "--out", str(tmp_path / "no.json")]
    assert run_main(main, bad, prog="search") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "holds no 'val' split (it holds: test;" in err
    with pytest.raises(UserError, match="holds no test 'best' accuracy to judge the incumbent on .*: final\\)"):
        oracle(bench, "seed", "best", split="val")  # the val split holds best, the test split final only
    with pytest.raises(SystemExit) as info:
        main([*argv[:-4], "--observe", "val,test", "--out", str(tmp_path / "no.json")])
    assert (
        info.value.code == 2 and "invalid observe 'val,test': expected seed, mean (a mode)" in capsys.readouterr().err
    )
    assert not (tmp_path / "no.json").exists()


# ---------------------------------------------------------------- the command line


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NBM_BENCHMARK"} | (env or {})
    environ |= {"NBM_CACHE_DIR": "/nonexistent/nbm_lightning-cache", "NBM_BENCHMARK_URL": "file:///nonexistent.json"}
    return subprocess.run(
        [sys.executable, "-m", "nbm_lightning.search", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def test_cli_run_table_and_plot(tmp_path, published_path, capsys):
    import hashlib

    runs = {}
    for algo in ("re", "rs"):
        runs[algo] = tmp_path / f"{algo}.json"
        argv = ["run", "--algo", algo, "--budget", "25", "--trials", "12", "--seed", "5", "--out", str(runs[algo])]
        assert run_main(main, [*argv, "--file", str(published_path)]) == 0
    data = read_runs(runs["re"])
    assert (data["algo"], data["budget"], data["observe"]) == ("re", 25, "seed")
    assert data["benchmark"]["path"] == str(published_path) and data["config"] == {"population": 30, "sample": 10}
    assert data["benchmark"]["sha256"] == hashlib.sha256(published_path.read_bytes()).hexdigest()
    assert [t["seed"] for t in data["trials"]] == list(range(5, 17))
    assert all(len(t["incumbent_mean_acc"]) == 25 and t["incumbent_rank"][-1] >= 1 for t in data["trials"])
    assert run_main(main, ["table", str(runs["re"]), str(runs["rs"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].startswith("| algorithm | trials | N = 10 | N = 20 | N = 50 |")
    assert lines[-1].startswith("| random search (seed) | 12 |") and "| - |" in lines[-1]
    assert run_main(main, ["plot", str(runs["re"]), str(runs["rs"]), "--out", str(tmp_path / "any.png")]) == 0
    assert (tmp_path / "any.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input_is_one_line_exit_2(tmp_path, published_path, capsys):
    for argv, named in (
        (["run", "--algo", "ga", "--budget", "10", "--out", "x.json"], "invalid algo 'ga': expected one of rs,"),
        (["run", "--algo", "re", "--budget", "0", "--out", "x.json"], "invalid budget 0"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and named in capsys.readouterr().err
    for junk in ({}, {"format": "nbm_lightning.search-runs", "version": 1, "algo": "re", "budget": 3, "observe": "seed",
                      "benchmark": {}, "trials": [{"incumbent_mean_acc": [1.0], "incumbent_rank": [1]}]}):  # fmt: skip
        (tmp_path / "junk.json").write_text(json.dumps(junk))
        assert run_main(main, ["table", str(tmp_path / "junk.json")], prog="search") == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "is not a nbm_lightning.search-runs v2 file" in err
    epoch = _cli("run", "--algo", "rs", "--budget", "10", "--epoch", "3", "--out", str(tmp_path / "e.json"),
                 "--file", str(published_path))  # fmt: skip
    assert epoch.returncode == 2 and epoch.stdout == "" and "Traceback" not in epoch.stderr
    assert len(epoch.stderr.splitlines()) == 1 and "has no learning curves" in epoch.stderr
    offline = _cli("run", "--algo", "rs", "--budget", "10", "--out", str(tmp_path / "o.json"))
    assert offline.returncode == 2 and len(offline.stderr.splitlines()) == 1 and "NBM_BENCHMARK" in offline.stderr
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "o.json").exists()


def test_evolution_config_is_checked():
    with pytest.raises(ValueError, match="invalid population 0: expected an int >= 1"):
        EvolutionConfig(population=0)


def test_speed_benchmark_script_runs(published_path, monkeypatch):
    from benchmarks import search_speed

    monkeypatch.setenv("NBM_BENCHMARK", str(published_path))
    result = search_speed.run(trials=3, budget=20)
    assert set(result["seconds"]) == {"rs", "re", "ls"} and result["total_s"] > 0
    assert result["hardware"]["cores"] >= 1 and result["command"].startswith("python -m benchmarks.search_speed")
