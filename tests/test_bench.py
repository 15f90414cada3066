"""nbm_lightning.bench and .plots: the query API, rank statistics, compare, plots and the bench CLI.

Golden values come from the published file (via the conftest fixtures) or from first principles.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from nbm_lightning.arch.codes import canonical, unique_codes
from nbm_lightning.bench import (
    PROXY_SECONDS_PER_MAC,
    PUBLISHED_SHA256,
    ArchNotFound,
    ArchResult,
    Benchmark,
    BenchmarkError,
    BenchmarkFormatError,
    Budget,
    Comparison,
    benchmark_path,
    compare,
    extended,
    kendall_tau,
    published_file,
    seed_noise_tau,
    spearman_rho,
)
from nbm_lightning.bench import __main__ as bench_cli
from nbm_lightning.bench.compare import MIN_SHARED
from nbm_lightning.cli import run_main
from nbm_lightning.core.errors import UserError

FIELDS = ("test_acc", "mean_acc", "std", "params", "flops")


@pytest.fixture(scope="module")
def bench(published_path: Path) -> Benchmark:
    return Benchmark.load(published_path)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _perturbed(published: dict, deltas: dict[str, float]) -> dict:
    """A copy whose canonical code c (and every key resolving to it) has each seed's accuracy, so its mean_acc,
    + deltas[c] (its std unchanged)."""
    data = {key: dict(value) for key, value in published.items()}
    for key in data:
        delta = deltas.get(canonical(key), 0.0)
        data[key]["test_acc"] = [acc + delta for acc in data[key]["test_acc"]]
        data[key]["mean_acc"] += delta
    return data


# ---------------------------------------------------------------- query API


def test_query_resolves_non_canonical_code_to_published_record(bench, published):
    rec = bench.query("10201201")
    assert isinstance(rec, ArchResult) and rec.code == "10210210"
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
    small = Benchmark.from_records([ArchResult(code, (acc,), acc, 0.0, 1, flops) for code, acc, flops in rows])
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


# ---------------------------------------------------------------- search queries and the budget


def test_accuracy_of_a_seed_the_mean_and_a_random_seed(bench, published):
    value = published["10201201"]
    assert bench.accuracy("10201201", seed=1) == value["test_acc"][1]
    assert bench.accuracy("10201201") == pytest.approx(value["mean_acc"], abs=1e-5)
    drawn = {bench.accuracy("10201201", seed="random", rng=seed) for seed in range(40)}
    assert drawn == set(value["test_acc"])  # every seed can be drawn, nothing else
    rng = np.random.default_rng(5)
    again = np.random.default_rng(5)
    assert bench.accuracy("10201201", seed="random", rng=rng) == bench.accuracy("10201201", seed="random", rng=again)
    with pytest.raises(ValueError, match="invalid rng None"):
        bench.accuracy("10201201", seed="random")
    for bad in (3, -1, "first", True, 1.0):
        with pytest.raises(ValueError, match=f"invalid seed {bad!r}: expected None .*, 'random' or an int in 0..2"):
            bench.accuracy("10201201", seed=bad)


def test_published_file_has_no_curves_no_final_metric_and_no_training_time(bench):
    assert bench.metric == "best" and bench.metrics() == ("best",) and bench.eval_acc is None
    with pytest.raises(BenchmarkError, match="has no learning curves .*epoch 10") as info:
        bench.accuracy("12012012", epoch=10)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="invalid metric 'final': expected one of best"):
        bench.accuracy("12012012", metric="final")
    assert bench.splits() == ("test",) and bench.metrics("test") == ("best",)
    with pytest.raises(BenchmarkError) as info:  # test accuracies only: one line naming the split and those held
        bench.accuracy("12012012", split="val")
    assert "\n" not in str(info.value) and "holds no 'val' split (it holds: test; a validation split" in str(info.value)
    with pytest.raises(ValueError, match="invalid split 'train': expected one of test, val"):
        bench.accuracy("12012012", split="train")
    with pytest.raises(BenchmarkError, match="records no training time .*FLOPs proxy"):
        bench.train_time("12012012")


def test_best_under_constraints_is_the_brute_force_answer(bench, published):
    canonical_values = {canonical(k): v for k, v in published.items()}
    for max_flops, max_params in ((None, None), (50e6, None), (None, 1e6), (100e6, 2e6), (7_713_280, None)):
        fits = [
            (v["mean_acc"], code)
            for code, v in canonical_values.items()
            if (max_flops is None or v["flops"] <= max_flops) and (max_params is None or v["params"] <= max_params)
        ]
        top_acc = max(acc for acc, _ in fits)
        expected = min(code for acc, code in fits if acc == top_acc)  # ties by code
        assert bench.best(max_flops=max_flops, max_params=max_params).code == expected
    assert bench.best() == bench.top(1)[0]
    with pytest.raises(ValueError, match="no architecture .* flops <= 1000"):
        bench.best(max_flops=1000)
    with pytest.raises(ValueError, match="invalid max_params -1"):
        bench.best(max_params=-1)


def test_budget_charges_each_network_once_with_the_flops_proxy(bench):
    budget = Budget()
    flops = bench.query("10210210").flops
    first = bench.accuracy("10201201", seed="random", rng=0, budget=budget)
    assert (budget.queries, budget.seconds) == (1, pytest.approx(flops * PROXY_SECONDS_PER_MAC))
    for code in ("10210210", "10201201", "10210201"):  # one network, three codes: a random seed is the paid one
        assert bench.accuracy(code, seed="random", rng=99, budget=budget) == first
    assert (budget.queries, budget.seconds) == (1, pytest.approx(flops * PROXY_SECONDS_PER_MAC))
    bench.query("10201201", budget=budget)  # all seeds: the two not paid yet are charged
    assert (budget.queries, budget.seconds) == (1, pytest.approx(3 * flops * PROXY_SECONDS_PER_MAC))
    bench.accuracy("00000000", budget=budget)
    assert budget.queries == 2 and set(budget.paid) == {"10210210", "00000000"}
    budget.reset()
    assert (budget.queries, budget.seconds, budget.paid) == (0, 0.0, {})
    assert "FLOPs proxy" in bench.time_source


def _extended_doc(codes, metric: str = "final", epochs: int = 4) -> dict:
    """A valid extended export of `codes`: seed s of code i has best 60 + i + s, final 1 point lower, a linear curve
    to the final value, and a recorded training time of 100 + 10 s seconds."""
    archs = {}
    for i, code in enumerate(sorted(codes)):
        runs = []
        for seed in range(3):
            best, final = 60.0 + i + seed, 59.0 + i + seed
            curve = np.linspace(final - epochs + 1, final, epochs)
            runs.append({
                "seed": seed, "test_acc_best": best, "test_acc_final": final, "best_epoch": epochs - 1,
                "val_acc_best": None, "val_acc_final": None,
                "epochs": epochs, "train_time_s": 100.0 + 10 * seed, "run_name": f"{code}-s{seed}", "wandb_id": None,
                "wandb_url": None, "finished_at": None, "curves": {"eval_acc": extended.encode_curve(curve.tolist())},
            })  # fmt: skip
        archs[code] = {"params": 1000 + i, "flops": 10_000 + i, "ptflops_macs": None, "runs": runs}
    provenance = {key: {} for key in extended.PROVENANCE_KEYS} | {"metric": metric, "sources": []}
    provenance |= {"curves": extended.CURVE_ENCODING, "eval_split": "test"}
    return {"format": extended.FORMAT, "version": extended.VERSION, "created_at": "", "provenance": provenance,
            "archs": archs}  # fmt: skip


def test_version_1_extended_files_are_still_read(tmp_path):
    """v1 (no eval_split, no val_acc fields): curves of the split its recipe evaluated on, no validation accuracy."""
    doc = _extended_doc(["00000000", "12012012"])
    doc["version"] = 1
    del doc["provenance"]["eval_split"]
    for run in (run for arch in doc["archs"].values() for run in arch["runs"]):
        del run["val_acc_best"], run["val_acc_final"]
    bench = Benchmark.load(_write(tmp_path / "v1.json", doc))
    assert bench.splits() == ("test",) and bench.eval_split == "test" and bench.val_accs == {}
    assert bench.accuracy("12012012", seed=2) == 62.0 and bench.accuracy("12012012", seed=1, epoch=0) == 58.0
    doc["provenance"]["recipe"] = {"val_size": 5000}  # a validation-split recipe: its curves were validation ones
    for run in (run for arch in doc["archs"].values() for run in arch["runs"]):
        run["test_acc_best"] = None
    bench = Benchmark.load(_write(tmp_path / "v1val.json", doc))
    assert bench.splits() == ("test", "val") and bench.metrics("val") == () and bench.metrics("test") == ("final",)
    assert bench.accuracy("12012012", seed=1, split="val", epoch=0) == 58.0
    with pytest.raises(BenchmarkError, match="holds per-epoch val curves only .*v1 extended export dropped them"):
        bench.accuracy("12012012", split="val")
    with pytest.raises(BenchmarkError, match="curves of the val split only"):
        bench.accuracy("12012012", epoch=0)


def test_extended_file_answers_both_metrics_epochs_and_training_time(tmp_path):
    codes = ["00000000", "12012012", "22212220"]
    bench = Benchmark.load(_write(tmp_path / "ext.json", _extended_doc(codes, metric="final")))
    assert bench.metric == "final" and bench.metrics() == ("final", "best")
    assert bench.accuracy("12012012", seed=2) == 62.0 and bench.accuracy("12012012", seed=2, metric="best") == 63.0
    assert bench.accuracy("22212220", metric="best") == pytest.approx(63.0)
    assert bench.accuracy("12012012", seed=1, epoch=3) == pytest.approx(61.0)  # the last epoch is the final value
    assert bench.accuracy("12012012", seed=1, epoch=0) == pytest.approx(58.0)
    assert bench.train_time("12012012", seed=2) == 120.0 and bench.train_time("12012012") == 110.0
    assert bench.time_source == "recorded train_time_s"
    with pytest.raises(ValueError, match="invalid epoch 4: expected an int in 0..3"):
        bench.accuracy("12012012", epoch=4)
    with pytest.raises(ValueError, match="pass metric or epoch, not both"):
        bench.accuracy("12012012", metric="best", epoch=1)
    budget = Budget()
    bench.accuracy("12012012", seed=0, epoch=1, budget=budget)  # half of a 100 s run
    assert budget.seconds == pytest.approx(50.0)
    bench.accuracy("12012012", seed=0, budget=budget)  # the rest of that run
    assert (budget.queries, budget.seconds) == (1, pytest.approx(100.0))
    assert (
        len(bench.sha256) == 64
        and bench.sha256 != Benchmark.load(_write(tmp_path / "b.json", _extended_doc(codes[:2]))).sha256
    )


# ---------------------------------------------------------------- the download cache


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging requests to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class _Server:
    """A static file server on 127.0.0.1 (a daemon thread) for one folder."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache_env(tmp_path, monkeypatch) -> Path:
    """An empty cache folder in tmp_path, NBM_BENCHMARK unset: nothing touches the real home cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NBM_CACHE_DIR", str(cache))
    monkeypatch.delenv("NBM_BENCHMARK", raising=False)
    monkeypatch.setenv("NBM_BENCHMARK_URL", (tmp_path / "nowhere.json").as_uri())
    return cache


def test_load_without_a_path_downloads_once_from_a_file_url(cache_env, published_path, monkeypatch):
    with pytest.raises(UserError, match="no benchmark file: .*NBM_BENCHMARK"):
        benchmark_path()  # without download: only the cache, which is empty
    monkeypatch.setenv("NBM_BENCHMARK_URL", published_path.resolve().as_uri())
    bench = Benchmark.load()
    cached = cache_env / "nas-bench-macro_cifar10.json"
    assert len(bench) == 3969 and bench.source == str(cached) and bench.sha256 == PUBLISHED_SHA256
    assert cached.read_bytes() == published_path.read_bytes() and [p.name for p in cache_env.iterdir()] == [cached.name]
    monkeypatch.setenv("NBM_BENCHMARK_URL", "file:///nonexistent/nas-bench-macro_cifar10.json")
    assert Benchmark.load().sha256 == PUBLISHED_SHA256 and benchmark_path() == cached  # from the cache, no download
    monkeypatch.setenv("NBM_BENCHMARK", str(published_path))
    assert benchmark_path() == published_path  # the variable comes before the cache


def test_download_over_http_and_a_sha256_mismatch_leaves_nothing(cache_env, published_path, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "good.json").write_bytes(published_path.read_bytes())
    (served / "bad.json").write_bytes(published_path.read_bytes().replace(b"93.13", b"93.14", 1))
    server = _Server(served)
    try:
        with pytest.raises(UserError, match=f"has sha256 [0-9a-f]{{64}}, expected {PUBLISHED_SHA256}") as info:
            published_file(url=f"{server.url}/bad.json")
        assert "\n" not in str(info.value) and "NBM_BENCHMARK" in str(info.value)
        assert not cache_env.exists() or list(cache_env.iterdir()) == []
        path = published_file(url=f"{server.url}/good.json")
    finally:
        server.close()
    assert path.read_bytes() == published_path.read_bytes() and list(cache_env.iterdir()) == [path]


def test_offline_download_is_one_line_naming_url_cache_and_variable(cache_env):
    url = "http://127.0.0.1:9/nas-bench-macro_cifar10.json"  # the discard port: nothing listens
    with pytest.raises(UserError) as info:
        published_file(url=url)
    message = str(info.value)
    assert "\n" not in message and url in message and str(cache_env) in message and "NBM_BENCHMARK" in message


def test_default_url_is_the_published_file_in_the_seed_repository():
    from urllib.parse import urlsplit

    from nbm_lightning.bench.fetch import PUBLISHED_URL

    url = urlsplit(PUBLISHED_URL)
    assert (url.scheme, url.netloc) == ("https", "raw.githubusercontent.com")
    owner, repo, branch, *path = url.path.strip("/").split("/")
    assert (owner, repo, branch, path) == (
        "xiusu",
        "NAS-Bench-Macro",
        "master",
        ["data", "nas-bench-macro_cifar10.json"],
    )


def test_download_is_capped_in_size_and_leaves_nothing(cache_env, tmp_path, monkeypatch):
    from nbm_lightning.bench import fetch

    with pytest.raises(UserError, match=r"from file:///dev/zero \(more than the 4194304 bytes allowed\)") as info:
        published_file(url="file:///dev/zero")  # endless: refused after MAX_DOWNLOAD_BYTES, not a MemoryError
    assert "\n" not in str(info.value) and not cache_env.exists()
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.json").write_bytes(b"x" * 2000)
    monkeypatch.setattr(fetch, "MAX_DOWNLOAD_BYTES", 1000)
    server = _Server(served)
    try:
        with pytest.raises(UserError, match=r"\(2000 bytes announced, more than the 1000 allowed\)"):
            published_file(url=f"{server.url}/big.json")
    finally:
        server.close()
    assert not cache_env.exists()


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Announces the published file's size, then sends one byte every 0.1 s: at most 100 bytes, ending by itself
    (or when the client goes)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1178821")
        self.end_headers()
        for _ in range(100):
            try:
                self.wfile.write(b"{")
                self.wfile.flush()
            except OSError:
                return
            threading.Event().wait(0.1)

    def log_message(self, *args: object) -> None:
        pass


def test_download_has_an_overall_deadline_not_only_a_read_timeout(cache_env, monkeypatch):
    import time

    from nbm_lightning.bench import fetch

    monkeypatch.setattr(fetch, "DEADLINE_S", 1.0)  # every read gets a byte within STALL_S: only the deadline ends it
    monkeypatch.setattr(fetch, "STALL_S", 0.5)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/nas-bench-macro_cifar10.json"
    start = time.monotonic()
    try:
        with pytest.raises(UserError, match=r"\(not complete within the 1 s allowed\)") as info:
            published_file(url=url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert time.monotonic() - start < 2.5 and "\n" not in str(info.value) and url in str(info.value)
    assert not cache_env.exists()


# ---------------------------------------------------------------- loading errors


def _published_copy(published: dict) -> dict:
    return {key: dict(value) for key, value in published.items()}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: [1, 2], "top level is a JSON list"),
        (lambda p: {"a": 1}, "unexpected key 'a'"),
        (
            lambda p: {k: v for k, v in p.items() if k != "00000010"},
            "breaks the published invariant: key '00000001' is present, its canonical code '00000010' not",
        ),
        (lambda p: {}, "holds no architectures"),
        (lambda p: {**p, "00000000": {**p["00000000"], "extra": 1}}, "record '00000000' has"),
        (lambda p: {**p, "00000000": {**p["00000000"], "params": 1.5}}, "record '00000000' has params 1.5"),
        (lambda p: {**p, "00000000": {**p["00000000"], "test_acc": []}}, "record '00000000' has test_acc"),
        (
            lambda p: {**p, "00000001": {**p["00000001"], "mean_acc": 1.0}},
            "breaks the published invariant: key '00000001' differs from its canonical code '00000010'",
        ),
        (
            lambda p: {"format": "nbm_lightning.extended", "version": 99, "archs": {}},
            "not a valid nbm_lightning.extended v2 file: version 99",
        ),
        (lambda p: {"format": "nbm_lightning.other"}, "not a valid nbm_lightning.extended v2 file"),
    ],
)
def test_load_rejects_wrong_shapes_in_one_line(tmp_path, published, make, match):
    path = _write(tmp_path / "bad.json", make(published))
    with pytest.raises(BenchmarkFormatError, match=match) as info:
        Benchmark.load(path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_a_partial_original_file_loads_with_a_notice(tmp_path, published, bench, capsys):
    kept = {"10210210", "00000000"}  # what an --allow-partial export writes: every key of the complete codes
    data = {k: v for k, v in published.items() if canonical(k) in kept}
    path = _write(tmp_path / "partial.json", data)
    partial = Benchmark.load(path)
    assert partial.archs() == ("00000000", "10210210") and partial.query("10201201") == bench.query("10201201")
    err = capsys.readouterr().err
    missing = f"({6561 - len(data)} of 6561 arch codes missing, e.g. '00000001')"
    assert err.count("\n") == 1 and f"partial: 2 of 3969 canonical codes {missing}" in err
    assert compare(partial, bench).n_shared == 2
    with pytest.raises(KeyError, match="arch '22212220' .* is not in .*partial.json") as info:
        partial.accuracy("22212220")
    assert isinstance(info.value, ArchNotFound) and isinstance(info.value, UserError)
    assert run_main(bench_cli.main, ["query", "22212220", "--file", str(path)], prog=bench_cli.PROG) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"{bench_cli.PROG}: error: arch '22212220' (canonical of '22212220') is not in")
    assert "(it holds 2 of 3969 canonical codes)" in captured.err
    assert bench_cli.main(["query", "10201201", "--file", str(path)]) == 0  # the notice follows the answer
    assert "partial: 2 of 3969" in capsys.readouterr().err


def test_load_rejects_missing_and_non_json_files(tmp_path):
    with pytest.raises(BenchmarkError, match="cannot read benchmark file .*nope.json"):
        Benchmark.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(BenchmarkFormatError, match="x.json' is not valid JSON"):
        Benchmark.load(tmp_path / "x.json")


def _with_record(published: dict, code: str, **fields: object) -> dict:
    """A copy in which `code` (a canonical code) and every key resolving to it hold `fields`."""
    return {key: {**value, **fields} if canonical(key) == code else value for key, value in published.items()}


def test_compare_and_queries_refuse_an_inconsistent_file(tmp_path, bench, published, published_path, capsys):
    inconsistent = _write(tmp_path / "inconsistent.json", _with_record(published, "00000000", mean_acc=99.9))
    with pytest.raises(BenchmarkFormatError, match=r"00000000 has mean_acc 99.9, expected 45.36333211263021, the mean"):
        Benchmark.load(inconsistent)  # loaded, top(1) and best() would name 00000000 (test_acc average 45.4)
    huge = {key: {**value, "test_acc": [1e308] * 3, "mean_acc": 1e308, "std": 0.0} for key, value in published.items()}
    for path, named in (
        (inconsistent, "has mean_acc 99.9, expected 45.36333211263021"),
        (_write(tmp_path / "huge.json", huge), "has test_acc[0] 1e+308: expected a finite number in 0..100"),
    ):  # not "same level within seed noise"
        assert run_main(bench_cli.main, ["compare", str(published_path), str(path)], prog=bench_cli.PROG) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and named in err and "Traceback" not in err
    with pytest.raises(BenchmarkFormatError, match="has mean_acc 99.9, expected 45.5, the mean of its test_acc"):
        Benchmark.from_records([ArchResult("00000000", (45.0, 46.0), 99.9, 0.5, 1, 1)], "memory")  # built, not read
    with pytest.raises(BenchmarkFormatError, match=r"has test_acc_best \[1e\+308, 1e\+308, 1e\+308\], expected finite"):
        dataclasses.replace(bench, test_acc=np.full_like(bench.test_acc, 1e308))


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
    assert (result.mean_abs_diff, result.max_abs_diff, result.mean_diff, result.tau_se) == (0.0, 0.0, 0.0, 0.0)
    assert result.top_k_overlap == {10: 1.0, 100: 1.0}
    assert result.noise_tau_a == result.noise_tau_b and 0.5 < result.noise_tau_a < 1
    assert result.within_noise is True and result.same_level is True and result.notes == ()
    assert result.noise_tau_a < result.ceiling_tau < 1  # 3-seed means are less noisy than single seeds


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
    assert result.n_shared == 500 and result.kendall_tau == 1.0 and result.top_k_overlap == {10: 1.0}
    assert "top-k overlap omitted for k = [1000]: k must be at most n_shared/10 = 50" in result.notes
    with pytest.raises(KeyError, match="not in subset"):
        subset.query(next(code for code in bench.archs() if code not in subset))


def _with_seeds(bench: Benchmark, test_acc: np.ndarray, source: str, metric: str = "best") -> Benchmark:
    """bench's architectures with other per-seed accuracies (mean and std recomputed from them)."""
    records = [
        ArchResult(code, tuple(acc.tolist()), float(acc.mean()), float(acc.std()), int(p), int(f))
        for code, acc, p, f in zip(bench.codes, test_acc, bench.params, bench.flops)
    ]
    return Benchmark.from_records(records, source, metric=metric)


def test_three_shared_architectures_give_no_ranking_verdict(bench):
    from nbm_lightning.bench.__main__ import _comparison_lines

    codes = ["00000000", "12012012", "22212220"]  # a new user's export of three 1-epoch runs
    tiny = Benchmark.from_records([bench.query(c) for c in codes], "tiny")
    tiny = _with_seeds(tiny, np.array([[24.0, 26.0, 25.0], [26.5, 25.0, 27.0], [23.0, 24.5, 26.0]]), "tiny")
    result = compare(tiny, bench)
    assert result.n_shared == 3 and result.within_noise is None and result.top_k_overlap == {}
    assert f"no ranking verdict: 3 shared architectures, at least {MIN_SHARED} needed" in result.notes
    assert result.same_level is False and result.mean_diff < -50  # 1-epoch runs: a level apart, and said so
    text = "\n".join(_comparison_lines(result))
    assert "ranking verdict    no verdict" in text and "within seed noise" not in text and "top-10" not in text
    assert "levels differ beyond seed noise" in text
    few = Benchmark.from_records([bench.query(c) for c in bench.archs()[: MIN_SHARED - 1]], "few")
    enough = Benchmark.from_records([bench.query(c) for c in bench.archs()[:MIN_SHARED]], "enough")
    assert compare(few, bench).within_noise is None and compare(enough, bench).within_noise is True


def test_the_ceiling_model_reproduces_the_published_seed_to_seed_tau(bench):
    from nbm_lightning.bench.compare import noise_ceiling, seed_variance

    mu = bench.test_acc.mean(axis=1)
    ceiling, spread = noise_ceiling(mu, seed_variance([bench.test_acc], mu), 1, 1, np.random.default_rng(0))
    assert ceiling == pytest.approx(seed_noise_tau(bench.test_acc), abs=0.003) and 0 < spread < 0.005


def test_disjoint_seeds_of_the_published_file_rank_within_noise(bench):
    seed0 = _with_seeds(bench, bench.test_acc[:, :1], "seed 0")
    seeds12 = _with_seeds(bench, bench.test_acc[:, 1:], "seeds 1 and 2")
    result = compare(seed0, seeds12)
    assert (result.seeds_a, result.seeds_b) == (1, 2) and result.within_noise is True and result.same_level is True
    assert abs(result.kendall_tau - result.ceiling_tau) < 0.01  # the like-for-like ceiling is where the tau lands
    assert result.ceiling_tau > seed_noise_tau(bench.test_acc) + 0.01  # above the old, lenient single-seed bar
    assert 0 < result.tau_se < 0.01 and result.noise_tau_b == pytest.approx(0.879, abs=0.001)


def test_shuffled_accuracies_rank_beyond_noise(bench):
    shuffled = _with_seeds(bench, bench.test_acc[np.random.default_rng(0).permutation(len(bench))], "shuffled")
    result = compare(bench, shuffled)
    assert abs(result.kendall_tau) < 0.1 and result.ceiling_tau > 0.9 and result.within_noise is False
    assert result.same_level is True  # the same accuracies, only on other architectures


def test_a_constant_offset_is_a_level_difference_not_a_ranking_one(bench):
    result = compare(bench, _with_seeds(bench, bench.test_acc + 5.0, "shifted"))
    assert result.mean_diff == pytest.approx(-5.0, abs=1e-4) and result.same_level is False
    assert result.within_noise is True and result.kendall_tau > 0.999 and 0 < result.level_sd < 0.1


def test_compare_warns_when_the_metrics_differ(bench):
    subset = Benchmark.from_records([bench.query(c) for c in bench.archs()[:300]], "best")
    final = _with_seeds(subset, subset.test_acc - 1.0, "final", metric="final")
    result = compare(final, subset)
    assert (result.metric_a, result.metric_b) == ("final", "best")
    assert any(n.startswith("warning: a holds final-epoch accuracies and b best-over-epochs") for n in result.notes)
    assert not any(n.startswith("warning") for n in compare(subset, subset).notes)


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


OFFLINE = {  # no NBM_BENCHMARK, an empty cache, and a download URL that does not exist: never the network
    "NBM_CACHE_DIR": "/nonexistent/nbm_lightning-cache",
    "NBM_BENCHMARK_URL": "file:///nonexistent/nas-bench-macro_cifar10.json",
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NBM_BENCHMARK"} | OFFLINE | (env or {})
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
    assert json.loads(comp.stdout)["within_noise"] is True and json.loads(comp.stdout)["same_level"] is True


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
