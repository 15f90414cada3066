"""nbm_lightning.bench and .plots: the query API, rank statistics, compare, plots and the bench CLI.

Golden values come from the published file (via the conftest fixtures) or from first principles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from nbm_lightning.bench import (
    Benchmark,
    BenchmarkError,
    BenchmarkFormatError,
    Comparison,
    Record,
    compare,
    kendall_tau,
    seed_noise_tau,
    spearman_rho,
)
from nbm_lightning.errors import UserError
from nbm_lightning.search_space import canonical, unique_codes

FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")


@pytest.fixture(scope="module")
def bench(published_path: Path) -> Benchmark:
    return Benchmark.load(published_path)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _perturbed(published: dict, deltas: dict[str, float]) -> dict:
    """A copy whose canonical code c (and every key resolving to it) has mean_acc + deltas[c]."""
    data = {key: dict(value) for key, value in published.items()}
    for key in data:
        data[key]["mean_acc"] += deltas.get(canonical(key), 0.0)
    return data


# ---------------------------------------------------------------- query API


def test_query_resolves_non_canonical_code_to_published_record(bench, published):
    rec = bench.query("10201201")
    assert isinstance(rec, Record) and rec.code == "10210210"
    expected = published["10201201"]
    assert rec.test_acc == tuple(expected["test_acc"]) and rec.mean_acc == expected["mean_acc"]
    assert (rec.std, rec.params, rec.flops) == (expected["std"], expected["params"], expected["flops"])
    assert rec == bench.query("10210210")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.mean_acc = 0.0  # type: ignore[misc]


def test_every_published_key_queries_to_its_value(bench, published):
    for key, value in published.items():
        rec = bench.query(key)
        assert rec.code == canonical(key)
        assert [list(rec.test_acc), rec.mean_acc, rec.std, rec.params, rec.flops] == [value[f] for f in FIELDS]


@pytest.mark.parametrize("bad, error", [(10201201, TypeError), ("1020120", ValueError), ("10201203", ValueError)])
def test_query_rejects_bad_codes_with_the_search_space_message(bench, bad, error):
    with pytest.raises(error, match=r"invalid arch code") as info:
        bench.query(bad)
    assert "\n" not in str(info.value)


def test_archs_are_the_3969_unique_canonical_codes(bench):
    assert len(bench.archs()) == len(bench) == 3969
    assert bench.archs() == unique_codes()
    assert "10201201" in bench and "10201203" not in bench


def test_top1_is_22212220_with_mean_93_13(bench, published):
    (best,) = bench.top(1)
    assert best.code == "22212220" and round(best.mean_acc, 2) == 93.13
    assert best.mean_acc == max(v["mean_acc"] for v in published.values())


def test_top_orders_by_metric_then_code(bench):
    by_acc = bench.top(50)
    assert [(-r.mean_acc, r.code) for r in by_acc] == sorted((-r.mean_acc, r.code) for r in by_acc)
    by_params = bench.top(len(bench), by="params")
    assert [(r.params, r.code) for r in by_params] == sorted((r.params, r.code) for r in by_params)
    assert by_params[0].params == 387_882 and bench.top(1, by="flops")[0].flops == 7_713_280
    assert len(bench.top(10_000)) == len(bench)
    for bad_k, error in ((0, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error):
            bench.top(bad_k)
    with pytest.raises(ValueError, match="invalid metric 'acc': expected one of mean_acc, params, flops"):
        bench.top(3, by="acc")


@pytest.mark.parametrize("x", ["flops", "params"])
def test_pareto_front_is_non_dominated_complete_and_sorted(bench, x):
    front = bench.pareto(x=x)
    assert front
    cost, acc = bench.column(x), bench.mean_acc
    for rec in front:  # no architecture is at least as good on both and better on one
        value = getattr(rec, x)
        assert not np.any((cost <= value) & (acc >= rec.mean_acc) & ((cost < value) | (acc > rec.mean_acc)))
    front_cost, front_acc = np.array([getattr(r, x) for r in front]), np.array([r.mean_acc for r in front])
    covered = (front_cost[None, :] <= cost[:, None]) & (front_acc[None, :] >= acc[:, None])
    assert covered.any(axis=1).all()  # every architecture is on the front or dominated by it
    assert [getattr(r, x) for r in front] == sorted(getattr(r, x) for r in front)
    assert bench.top(1)[0] in front and front[0].code == bench.top(1, by=x)[0].code
    with pytest.raises(ValueError, match="pareto needs"):
        bench.pareto(x="mean_acc", y="flops")


def test_pareto_keeps_equal_points_and_drops_dominated_ones():
    rows = [
        ("00000000", 50.0, 10),
        ("10000000", 60.0, 20),
        ("20000000", 60.0, 20),
        ("01000000", 55.0, 30),
        ("02000000", 70.0, 30),
    ]
    small = Benchmark.from_records([Record(code, (acc,), acc, 0.0, 1, flops) for code, acc, flops in rows])
    assert [r.code for r in small.pareto()] == ["00000000", "10000000", "20000000", "02000000"]
    assert repr(small) == "Benchmark(5 archs, 1 seeds, source='<memory>')"
    assert math.isnan(seed_noise_tau(small.test_acc))


def test_sample_is_reproducible_distinct_and_canonical(bench):
    first = bench.sample(100, seed=7)
    assert first == bench.sample(100, seed=7) and first != bench.sample(100, seed=8)
    assert len(set(first)) == 100 and all(canonical(c) == c for c in first)
    assert sorted(bench.sample(len(bench), seed=1)) == list(bench.archs())
    assert bench.sample(5) == bench.sample(5)  # deterministic default seed
    with pytest.raises(ValueError, match="cannot sample 3970"):
        bench.sample(3970)


def test_to_frame(bench, published):
    frame = bench.to_frame()
    assert frame.shape == (3969, 7) and frame.index.name == "code"
    row = frame.loc["10210210"]
    assert (
        row["mean_acc"] == published["10201201"]["mean_acc"]
        and row["test_acc_2"] == published["10201201"]["test_acc"][2]
    )


def test_missing_optional_dependencies_name_the_extra(bench, tmp_path, monkeypatch):
    from nbm_lightning.bench.plots import plot_histograms

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'pip install "nbm_lightning\[pandas\]"') as info:
        bench.to_frame()
    assert isinstance(info.value, UserError)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "nbm_lightning\[plots\]"'):
        plot_histograms(bench, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_columns_are_read_only(bench):
    with pytest.raises(ValueError):
        bench.mean_acc[0] = 0.0


# ---------------------------------------------------------------- loading errors


def _published_copy(published: dict) -> dict:
    return {key: dict(value) for key, value in published.items()}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: [1, 2], "top level is a JSON list"),
        (lambda p: {"a": 1}, "unexpected key 'a'"),
        (lambda p: {k: v for k, v in p.items() if k != "00000000"}, "1 of 6561 arch codes missing, e.g. '00000000'"),
        (lambda p: {**p, "00000000": {**p["00000000"], "extra": 1}}, "record '00000000' has"),
        (lambda p: {**p, "00000000": {**p["00000000"], "params": 1.5}}, "record '00000000' has params 1.5"),
        (lambda p: {**p, "00000000": {**p["00000000"], "test_acc": []}}, "record '00000000' has test_acc"),
        (
            lambda p: {**p, "00000001": {**p["00000001"], "mean_acc": 1.0}},
            "breaks the published invariant: key '00000001' differs from its canonical code '00000010'",
        ),
        (
            lambda p: {"format": "nbm_lightning.extended", "version": 99, "archs": {}},
            "not a valid nbm_lightning.extended v1 file: version 99",
        ),
        (lambda p: {"format": "nbm_lightning.other"}, "not a valid nbm_lightning.extended v1 file"),
    ],
)
def test_load_rejects_wrong_shapes_in_one_line(tmp_path, published, make, match):
    path = _write(tmp_path / "bad.json", make(published))
    with pytest.raises(BenchmarkFormatError, match=match) as info:
        Benchmark.load(path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_load_rejects_missing_and_non_json_files(tmp_path):
    with pytest.raises(BenchmarkError, match="cannot read benchmark file .*nope.json"):
        Benchmark.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(BenchmarkFormatError, match="x.json' is not JSON"):
        Benchmark.load(tmp_path / "x.json")


# ---------------------------------------------------------------- rank statistics


@pytest.mark.parametrize("n, levels", [(2, 2), (3, 2), (17, 3), (200, 5), (1000, 40), (4001, 4000)])
def test_kendall_and_spearman_match_scipy_with_ties(n, levels):
    rng = np.random.default_rng(n)
    x, y = rng.integers(0, levels, n).astype(float), rng.integers(0, levels, n).astype(float)
    y[: n // 2] = x[: n // 2]  # correlated half
    expected_tau = scipy.stats.kendalltau(x, y).statistic
    expected_rho = scipy.stats.spearmanr(x, y).statistic
    if math.isnan(expected_tau):
        assert math.isnan(kendall_tau(x, y))
    else:
        assert kendall_tau(x, y) == pytest.approx(expected_tau, abs=1e-12)
        assert spearman_rho(x, y) == pytest.approx(expected_rho, abs=1e-12)


def test_rank_statistics_edge_cases():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1], [2]))
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2], [1, 2, 3])


def test_rank_statistics_match_scipy_on_published_seeds(bench):
    a, b = bench.test_acc[:, 0], bench.test_acc[:, 1]
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    assert spearman_rho(a, bench.mean_acc) == pytest.approx(
        scipy.stats.spearmanr(a, bench.mean_acc).statistic, abs=1e-12
    )
    taus = [
        scipy.stats.kendalltau(bench.test_acc[:, i], bench.test_acc[:, j]).statistic
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    assert seed_noise_tau(bench.test_acc) == pytest.approx(np.mean(taus), abs=1e-12)


# ---------------------------------------------------------------- compare


def test_compare_with_itself_is_perfect(bench):
    result = compare(bench, bench)
    assert isinstance(result, Comparison) and result.n_shared == 3969
    assert (result.kendall_tau, result.spearman_rho) == (1.0, 1.0)
    assert (result.mean_abs_diff, result.max_abs_diff) == (0.0, 0.0)
    assert result.top_k_overlap == {10: 1.0, 100: 1.0}
    assert result.noise_tau_a == result.noise_tau_b and 0.5 < result.noise_tau_a < 1 and result.within_noise


def test_compare_against_perturbed_copy(tmp_path, bench, published):
    deltas = {"22212220": -5.0, "00000000": 0.25, "12012012": 1.5}  # the best arch drops out of the top 10
    other = Benchmark.load(_write(tmp_path / "perturbed.json", _perturbed(published, deltas)))
    result = compare(bench, other)
    assert result.n_shared == 3969 and result.kendall_tau < 1 and result.spearman_rho < 1
    assert result.max_abs_diff == pytest.approx(5.0, abs=1e-9)
    assert result.mean_abs_diff == pytest.approx(6.75 / 3969, abs=1e-12)
    assert result.top_k_overlap[10] == pytest.approx(0.9)
    expected = scipy.stats.kendalltau(bench.mean_acc, other.mean_acc).statistic
    assert result.kendall_tau == pytest.approx(expected, abs=1e-12)


def test_compare_uses_shared_architectures_only(bench):
    subset = Benchmark.from_records([bench.query(code) for code in bench.sample(500, seed=3)], source="subset")
    result = compare(bench, subset, ks=(10, 1000))
    assert result.n_shared == 500 and result.kendall_tau == 1.0 and result.top_k_overlap == {10: 1.0, 1000: 1.0}
    with pytest.raises(KeyError, match="not in subset"):
        subset.query(next(code for code in bench.archs() if code not in subset))


# ---------------------------------------------------------------- plots


def _assert_png_not_blank(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert path.suffix == ".png" and pixels.ndim == 3 and pixels.shape[0] > 100 and pixels[..., :3].var() > 1e-3


def test_plot_compare_writes_a_png(tmp_path, bench, published):
    from nbm_lightning.bench.plots import plot_compare

    other = Benchmark.load(_write(tmp_path / "other.json", _perturbed(published, {"22212220": -5.0})))
    path = plot_compare(bench, other, tmp_path / "plots")
    assert path.parent == tmp_path / "plots" and [p.name for p in path.parent.iterdir()] == [path.name]
    _assert_png_not_blank(path)


# ---------------------------------------------------------------- command line


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NBM_BENCHMARK"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "nbm_lightning.bench", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def test_cli_query_top_and_compare_json(published_path):
    query = _cli("query", "10201201", "--json", env={"NBM_BENCHMARK": str(published_path)})
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)["code"] == "10210210"
    top = _cli("top", "3", "--file", str(published_path))
    assert top.returncode == 0 and top.stdout.splitlines()[1].split()[:3] == ["1", "22212220", "93.13"]
    comp = _cli("compare", str(published_path), str(published_path), "--json")
    assert comp.returncode == 0 and json.loads(comp.stdout)["kendall_tau"] == 1.0


def test_cli_plot_writes_pngs_that_open(tmp_path, published_path):
    out = tmp_path / "figs"
    result = _cli("plot", "--file", str(published_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert {p.name for p in paths} == {"histograms.png", "accuracy_vs_flops.png"} == {p.name for p in out.iterdir()}
    for path in paths:
        _assert_png_not_blank(path)


@pytest.mark.parametrize(
    "args, named",
    [
        (("query", "1020120x", "--file", "{pub}"), "'1020120x'"),
        (("query", "10201201", "--file", "{tmp}/missing.json"), "missing.json"),
        (("top", "5", "--file", "{tmp}/not.json"), "not.json"),
        (("compare", "{pub}", "{tmp}/shape.json"), "shape.json"),
        (("top", "5"), "NBM_BENCHMARK"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, published_path, args, named):
    (tmp_path / "not.json").write_text("{not json")
    _write(tmp_path / "shape.json", {"10201201": [1, 2, 3]})
    result = _cli(*(a.format(pub=published_path, tmp=tmp_path) for a in args))
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
