"""Hardware cost joined into the query API, `bench plot` and `bench cost`, and search (issue 20 point 2, query side;
issue 21 point 5, NSGA-II with latency): a synthetic cost file of all 3969 networks (made-up but valid latencies,
the published params and FLOPs, written with costfile's writer; nothing measured) joined to the published file.

About 10 s on 2 cores (the published file is read once; the searches are short).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from nbm_lightning.arch.codes import canonical, unique_codes
from nbm_lightning.bench import Benchmark
from nbm_lightning.bench import __main__ as bench_cli
from nbm_lightning.bench.rankstats import spearman_rho
from nbm_lightning.cli import run_main
from nbm_lightning.core.atomic import atomic_write_text
from nbm_lightning.hwcost import CostFile, CostFileError, CostNotFound, Entry, Settings, Timing, costfile
from nbm_lightning.search import __main__ as search_cli
from nbm_lightning.search.oracle import constrain, oracle, pareto_front
from nbm_lightning.search.runs import RunsFileError, read_runs, search

SETTINGS = Settings(device="cpu", batch_sizes=(1,), repeats=5, warmup=1, train_step=False, train_batch_size=256,
                    threads=1, channels_last=False, cudnn_benchmark=False, tf32=False)  # fmt: skip


def made_up_latency(code: str, flops: int) -> float:
    """A latency (ms) that grows with FLOPs and with the number of non-identity layers, not a function of FLOPs."""
    return round(0.5 + flops / 2e8 + 0.3 * sum(d != "0" for d in code), 6)


def cost_file_of(bench: Benchmark, codes=None, change=None) -> CostFile:
    """A valid cost file of `codes` (default all) with the benchmark's params and FLOPs; `change`: code -> params."""
    costs = {}
    for code in bench.codes if codes is None else codes:
        row = bench.row(code)
        params, flops = int(bench.params[row]), int(bench.flops[row])
        params = (change or {}).get(code, params)
        ms = made_up_latency(code, flops)
        timing = Timing(ms, ms * 0.95, ms * 1.05)
        costs[code] = Entry(params, flops, 4 * params + 4096, MappingProxyType({1: timing}), None, None, None)
    return CostFile(SETTINGS, {"type": "cpu", "name": "made-up", "count": 2, "host": "test"}, {"torch": "none"},
                    ({"command": ["test"], "started": "2026-01-01T00:00:00Z", "host": "test"},),
                    MappingProxyType(costs), "made-up")  # fmt: skip


@pytest.fixture(scope="module")
def bench(published_path: Path) -> Benchmark:
    return Benchmark.load(published_path)


@pytest.fixture(scope="module")
def cost_path(bench, tmp_path_factory) -> Path:
    """The synthetic cost file of all 3969 networks, written by costfile's writer and read back by its reader."""
    path = tmp_path_factory.mktemp("cost") / "cost_made_up.json"
    atomic_write_text(path, costfile.dumps(cost_file_of(bench)))
    assert len(costfile.load(path).costs) == len(unique_codes())
    return path


@pytest.fixture(scope="module")
def latency(bench) -> np.ndarray:
    """The made-up latency of each row of the benchmark (unique_codes() order)."""
    return np.array([made_up_latency(c, int(f)) for c, f in zip(bench.codes, bench.flops)])


def test_the_query_api_joins_a_cost_file(bench, cost_path, latency, published):
    assert bench.codes == unique_codes()
    assert np.array_equal(bench.costs(cost_path), latency)
    assert bench.cost("12012012", "latency_ms", file=cost_path) == made_up_latency(
        canonical("12012012"), published[canonical("12012012")]["flops"]
    )
    assert bench.cost("02222222", "params", file=cost_path) == published[canonical("02222222")]["params"]
    assert bench.cost("22222222", file=cost_path, stat="iqr") == pytest.approx(0.1 * latency[bench.row("22222222")])
    with pytest.raises(CostFileError, match="not the same network"):  # another network definition
        bench.costs(cost_file_of(bench, change={"22222222": 12345}))
    with pytest.raises(CostNotFound, match=f"no cost of {bench.codes[10]}"):  # a file of 10 networks
        bench.costs(cost_file_of(bench, codes=bench.codes[:10]))


def test_bench_plot_draws_accuracy_against_latency(bench, cost_path, tmp_path, capsys, published_path):
    image = pytest.importorskip("matplotlib.image")
    argv = ["plot", "--file", str(published_path), "--out", str(tmp_path), "--cost-file", str(cost_path)]
    assert run_main(bench_cli.main, argv) == 0
    out = capsys.readouterr().out.split()
    png = tmp_path / "accuracy_vs_latency.png"
    assert str(png) in out
    pixels = image.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.std() > 0


def test_bench_cost_reports_rank_correlations(bench, cost_path, latency, capsys):
    assert run_main(bench_cli.main, ["cost", str(cost_path), "--json"]) == 0
    (corr,) = json.loads(capsys.readouterr().out)["correlations"]
    assert corr["n"] == 3969 and corr["measure"] == "latency_ms"
    assert corr["rho"]["flops"] == pytest.approx(spearman_rho(latency, bench.flops), abs=1e-9)
    assert corr["rho"]["params"] == pytest.approx(spearman_rho(latency, bench.params), abs=1e-9)
    assert 0.5 < corr["rho"]["flops"] < 0.999  # made up to follow FLOPs, but not as a function of them


ALGOS = ["rs", "re", "ls", "mcts", "ranked", "optuna-nsga2", "optuna-random"]


@pytest.mark.parametrize("algo", ALGOS)
def test_no_algorithm_queries_a_network_over_the_latency_limit(bench, latency, algo):
    if algo.startswith("optuna"):
        pytest.importorskip("optuna")
    limit = float(np.quantile(latency, 0.3))  # 70 % of the networks are over it, the best network among them
    space = constrain(oracle(bench, "seed", scores={"latency": dict(zip(bench.codes, latency))}), "latency", limit)
    feasible = latency <= limit
    assert space.constraint["feasible"] == feasible.sum() and space.best == bench.mean_acc[feasible].max()
    assert space.best < bench.mean_acc.max()  # regret is measured among the feasible networks
    config = None
    if algo == "optuna-nsga2":
        from nbm_lightning.search.interop import OptunaConfig

        config = OptunaConfig("nsgaii", cost="latency")
    for seed in (0, 1):
        t = search(space, algo, 80, seed, config)
        assert len(t.rows) == 80 and len(set(t.rows)) == 80  # the whole budget spent, on feasible networks only
        assert all(latency[r] <= limit for r in t.rows), algo
        assert all(latency[r] <= limit for r in t.incumbent)
        assert max(t.incumbent_mean_acc) <= space.best
    if algo == "ranked":  # the FLOPs order, the networks over the limit skipped
        order = np.lexsort((np.arange(len(latency)), -bench.flops))
        assert sorted(bench.flops[list(t.rows)]) == sorted(bench.flops[[r for r in order if feasible[r]][:80]])


def test_the_pareto_set_is_non_dominated_and_complete(bench, latency):
    planted = {code: float(i % 7) for i, code in enumerate(bench.codes)}  # a planted cost: rows 0..6 cost 0..6
    space = oracle(bench, "mean", scores={"latency": planted})
    rows, observed = [0, 1, 2, 3, 4, 5], [90.0, 91.0, 89.0, 91.0, 92.0, 88.0]  # costs 0, 1, 2, 3, 4, 5
    assert pareto_front(space, rows, observed, "latency") == [0, 1, 4]  # 2, 3, 5 each beaten by a cheaper one
    space = oracle(bench, "mean", scores={"latency": dict(zip(bench.codes, latency))})
    t = search(space, "rs", len(bench), 0)  # every network queried: the front is the whole space's
    front = pareto_front(space, t.rows, t.observed, "latency")
    acc = bench.mean_acc
    for r in range(len(bench)):  # brute force: a front row is beaten by none; any other row by some front row
        beaten = (latency <= latency[r]) & (acc >= acc[r]) & ((latency < latency[r]) | (acc > acc[r]))
        assert beaten.any() != (r in front), r
    assert front == sorted(front, key=lambda r: (latency[r], r)) and len(front) > 3


def test_search_run_limit_and_pareto_from_the_command_line(bench, cost_path, latency, tmp_path, capsys, published_path):
    pytest.importorskip("optuna")
    limit = float(np.quantile(latency, 0.5))
    out = tmp_path / "nsga.json"
    argv = ["run", "--algo", "optuna-nsga2", "--cost", "latency", "--cost-file", str(cost_path), "--max-latency-ms",
            str(limit), "--budget", "40", "--trials", "2", "--file", str(published_path),
            "--out", str(out)]  # fmt: skip
    assert run_main(search_cli.main, argv) == 0
    assert "Pareto set of trial 0" in capsys.readouterr().out
    runs = read_runs(out)
    assert runs["config"]["cost"] == "latency" and runs["constraint"]["max"] == limit
    assert runs["benchmark"]["best_mean_acc"] == bench.mean_acc[latency <= limit].max()
    for trial in runs["trials"]:
        front = trial["pareto"]
        assert front and all(p["latency"] == latency[bench.row(p["code"])] <= limit for p in front)
        assert [p["latency"] for p in front] == sorted(p["latency"] for p in front)
        assert all(a["observed"] < b["observed"] for a, b in zip(front, front[1:]))  # costlier only if better
    out_rs = tmp_path / "rs.json"
    argv = ["run", "--algo", "rs", "--cost", "flops", "--budget", "30", "--trials", "1", "--file",
            str(published_path), "--out", str(out_rs)]  # fmt: skip
    assert run_main(search_cli.main, argv) == 0  # the multi-objective mode of any algorithm, on a file's score
    assert read_runs(out_rs)["trials"][0]["pareto"]
    document = json.loads(out.read_text())
    for key, edit, fragment in [
        ("constraint", lambda d: d["constraint"].update(feasible=3), "constraint"),  # fewer networks than queried
        ("pareto", lambda d: d["trials"][1]["pareto"][0].update(code=["x"]), "trial 1: pareto member"),
        ("cost", lambda d: d["trials"][0].pop("pareto"), "trial 0: pareto None"),
    ]:
        tampered = json.loads(json.dumps(document))
        edit(tampered)
        path = tmp_path / f"tampered_{key}.json"
        path.write_text(json.dumps(tampered))
        with pytest.raises(RunsFileError, match=fragment):
            read_runs(path)


@pytest.fixture(scope="module")
def bad_files(bench, tmp_path_factory) -> dict[str, Path]:
    """Cost files the join refuses: one of 5 networks, one whose params differ from the benchmark's."""
    folder = tmp_path_factory.mktemp("bad")
    partial, other = folder / "partial.json", folder / "other.json"
    atomic_write_text(partial, costfile.dumps(cost_file_of(bench, codes=bench.codes[:5])))
    atomic_write_text(other, costfile.dumps(cost_file_of(bench, change={bench.codes[7]: 999})))
    return {"partial": partial, "other": other}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["search", "--max-latency-ms", "5"], "needs --cost-file"),
        (["search", "--max-latency-ms", "-1"], "expected a positive number"),
        (["search", "--cost-file", "{cost}", "--max-latency-ms", "0.0001"], "no network has latency <= 0.0001"),
        (["search", "--cost", "latency"], "invalid --cost 'latency'"),
        (["search", "--cost-file", "{tmp}/missing.json"], "cannot read cost file"),
        (["search", "--cost-file", "{cost}", "--max-latency-ms", "{low}", "--budget", "3000"], "exceeds the"),
        (["plot", "--cost-file", "{partial}"], "no cost of"),
        (["plot", "--cost-file", "{other}"], "not the same network"),
        (["cost", "{tmp}/missing.json"], "cannot read cost file"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, fragment, bad_files, cost_path, latency, tmp_path, capsys, published_path):
    names = dict(cost=cost_path, tmp=tmp_path, low=np.quantile(latency, 0.01), **bad_files)
    argv = [a.format(**names) for a in argv]
    if argv[0] == "search":
        main = search_cli.main
        argv = ["run", "--algo", "rs", "--budget", "10", "--out", str(tmp_path / "r.json"), *argv[1:]]
    else:
        main = bench_cli.main
    argv += ["--file", str(published_path)] if argv[0] != "cost" else []
    argv += ["--out", str(tmp_path)] if argv[0] == "plot" else []
    try:
        status = run_main(main, argv, prog="x")
    except SystemExit as err:  # argparse's own refusal
        status = err.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) in (1, 2) and fragment in err.splitlines()[-1], err
    assert "Traceback" not in err and not (tmp_path / "r.json").exists()


def test_a_constrained_oracle_replaces_only_what_it_must(bench, latency):
    space = oracle(bench, "mean", scores={"latency": dict(zip(bench.codes, latency))})
    limited = constrain(space, "latency", float(np.median(latency)))
    same = [f.name for f in dataclasses.fields(space) if f.name not in ("rank", "feasible", "constraint")]
    assert all(getattr(space, n) is getattr(limited, n) for n in same)
    feasible = np.flatnonzero(limited.feasible)
    best = feasible[np.argmax(bench.mean_acc[feasible])]
    assert limited.rank[best] == 1 and sorted(limited.rank[feasible])[:1] == [1]
