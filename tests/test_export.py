"""The exporter: the published layout from records, the extended format, the W&B source and every selection rule."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbm_lightning.arch.codes import all_codes, canonical, unique_codes
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.bench import extended, published
from nbm_lightning.bench.published import ArchResult
from nbm_lightning.cli import run_main
from nbm_lightning.export import __main__ as export
from nbm_lightning.export import artifact
from nbm_lightning.export.sources import record_from_wandb
from nbm_lightning.records import runkeys
from nbm_lightning.records.recipe import SEEDS, Recipe
from nbm_lightning.records.run_record import RunRecord
from nbm_lightning.synthetic.records import FINISHED_AT, make_record, make_val_record, write_records

ROOT = Path(__file__).resolve().parents[1]

CODES = unique_codes()
A, B, C = CODES[0], CODES[1000], CODES[-1]  # "00000000", ..., "22222222"
LATER, EARLIER = "2026-02-01T00:00:00+00:00", "2025-12-01T00:00:00+00:00"
CURVED = "12012012"  # the code of published_dir whose records carry curves


def counts(code: str) -> tuple[int, int]:
    c = complexity(code)
    return c.params, c.flops


def rec(code: str, seed: int, best: float = 90.0, recipe: Recipe = Recipe(), **fields) -> dict:
    """A complete record (curves of every epoch: pass curves=None for a small one) with the right complexity."""
    return make_record(code, seed, counts(code), best, best - 0.5, recipe=recipe, **fields)


def full(codes, **fields) -> list[dict]:
    return [rec(code, seed, **fields) for code in codes for seed in SEEDS]


def run_export(*argv: str) -> int:
    return run_main(export.main, list(argv), prog=export.PROG)


@pytest.fixture(scope="module")
def published_dir(tmp_path_factory, published) -> Path:
    """11,907 records whose best accuracies are the published ones (curves only for CURVED: small files)."""
    folder = tmp_path_factory.mktemp("published_records")
    write_records(
        folder,
        (
            rec(code, seed, published[code]["test_acc"][seed], **({} if code == CURVED else {"curves": None}))
            for code in CODES
            for seed in SEEDS
        ),
    )
    return folder


def test_original_export_reproduces_the_published_file(published_dir, published, tmp_path, capsys):
    out = tmp_path / "nbm.json"
    assert run_export("--from", str(published_dir), "--format", "original", "--metric", "best", "--out", str(out)) == 0
    ours = json.loads(out.read_text())
    assert list(ours) == list(all_codes()) and set(ours) == set(published)
    for code, theirs in published.items():
        mine = ours[code]
        assert (mine["params"], mine["flops"]) == (theirs["params"], theirs["flops"])
        for name in ("mean_acc", "std"):
            assert mine[name] == pytest.approx(theirs[name], abs=1e-9)
        assert mine["test_acc"] == pytest.approx(theirs["test_acc"], abs=1e-9)
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith(
            "read 11907 runs: used 11907 (3969 codes x 3 seeds), rejected 0, superseded 0 duplicates, "
            "missing 0 of 11907"
        )
    )


def test_every_rule_on_the_full_grid(published_dir, published, tmp_path, capsys):
    extra = tmp_path / "extra"
    write_records(
        extra,
        [
            dict(r, wandb=None)
            for r in [
                rec(CODES[1], 0, 99.0, finished_at=LATER),  # newer duplicate: kept
                rec(CODES[2], 1, 11.0, finished_at=EARLIER),  # older duplicate: dropped
                rec(CODES[3], 2, 12.0, status="failed", error="RuntimeError: boom", finished_at=LATER),
                rec(CODES[4], 0, math.nan, finished_at=LATER),
                rec(CODES[5], 0, 13.0, epochs_completed=10, finished_at=LATER),
                rec(CODES[6], 0, 14.0, recipe=Recipe(epochs=1), epochs_completed=1, finished_at=LATER),
                rec(CODES[7], 0, 15.0, params=counts(CODES[7])[0] + 1, finished_at=LATER),
            ]
        ],
    )
    out = tmp_path / "nbm.json"
    assert (
        run_export("--from", str(published_dir), "--from", str(extra), "--format", "original", "--out", str(out)) == 0
    )
    ours, captured = json.loads(out.read_text()), capsys.readouterr()
    assert ours[CODES[1]]["test_acc"][0] == 99.0
    for code, seed in [(CODES[i], s) for i, s in ((2, 1), (3, 2), (4, 0), (5, 0), (6, 0), (7, 0))]:
        assert ours[code]["test_acc"][seed] == published[code]["test_acc"][seed]
    err = captured.err
    assert (
        f"superseded {published_dir / CODES[1]}-s0.json: duplicate of {CODES[1]}-s0: "
        f"kept the later {extra / CODES[1]}-s0.json" in err
    )
    assert f"superseded {extra / CODES[2]}-s1.json: duplicate of" in err
    assert f"rejected {extra / CODES[3]}-s2.json: status failed: RuntimeError: boom" in err
    assert (
        f"rejected {extra / CODES[4]}-s0.json: non-finite accuracy {{'test_acc_best': nan, 'test_acc_final': nan}}"
        in err
    )
    assert f"rejected {extra / CODES[5]}-s0.json: truncated: 10 of 50 epochs" in err
    assert f"rejected 1 runs of recipe {Recipe(epochs=1).hash()} (exporting {Recipe().hash()}): not mixed" in err
    assert f"rejected {extra / CODES[7]}-s0.json: params/flops" in err
    assert captured.out.splitlines()[-1].endswith(
        "read 11914 runs: used 11907 (3969 codes x 3 seeds), rejected 5, superseded 2 duplicates, missing 0 of 11907"
    )


def test_final_metric(tmp_path):
    folder, out = tmp_path / "records", tmp_path / "final.json"
    write_records(folder, [rec(A, seed, 90.0 + seed) for seed in SEEDS])
    assert (
        run_export(
            "--from", str(folder), "--format", "original", "--metric", "final", "--out", str(out), "--allow-partial"
        )
        == 0
    )
    assert json.loads(out.read_text())[A]["test_acc"] == [89.5, 90.5, 91.5]


def test_extended_round_trip_with_provenance(published_dir, tmp_path):
    out = tmp_path / "ext.json"
    assert run_export("--from", str(published_dir), "--format", "extended", "--out", str(out)) == 0
    data = extended.load(out)
    assert data["format"] == extended.FORMAT and data["version"] == extended.VERSION and data["created_at"]
    prov = data["provenance"]
    assert prov["recipe_hash"] == Recipe().hash() and prov["recipe"]["epochs"] == 50 and prov["metric"] == "final"
    assert prov["sources"] == [str(published_dir)] and prov["versions"]["torch"] == ["2.4.1"]
    fields = {"test_acc_best", "test_acc_final", "val_acc_best", "val_acc_final"}
    assert prov["devices"] == {"NVIDIA H100": 11907} and set(prov["metrics"]) == fields
    assert prov["eval_split"] == "test"  # the published recipe evaluates on the test set after every epoch
    assert prov["counts"] == {
        "runs_read": 11907,
        "runs_used": 11907,
        "runs_rejected": 0,
        "runs_superseded": 0,
        "runs_missing": 0,
        "runs_unused": 0,
        "codes": 3969,
        "codes_incomplete": 0,
    }
    assert list(data["archs"]) == list(CODES)
    arch = data["archs"][CURVED]
    assert (arch["params"], arch["flops"]) == counts("12012012") and arch["ptflops_macs"] == arch["flops"] + 10
    assert [run["seed"] for run in arch["runs"]] == list(SEEDS)
    run = arch["runs"][1]
    assert run["run_name"] == "12012012-s1" and run["wandb_id"] == "12012012s1" and run["epochs"] == 50
    assert run["val_acc_best"] is None and run["val_acc_final"] is None  # no validation split held out
    curves = extended.decode_curves(run)
    assert len(curves["eval_acc"]) == 50 and curves["eval_acc"][-1] == pytest.approx(run["test_acc_final"], rel=1e-6)


@pytest.mark.parametrize("metric, shift", [("best", 0.0), ("final", -0.5)])
def test_benchmark_loads_the_extended_export(published_dir, published_path, tmp_path, metric, shift):
    from nbm_lightning.bench import Benchmark, compare

    out = tmp_path / "ext.json"
    assert run_export("--from", str(published_dir), "--format", "extended", "--metric", metric, "--out", str(out)) == 0
    ours, theirs = Benchmark.load(out), Benchmark.load(published_path)
    assert ours.archs() == theirs.archs()
    record, reference = ours.query("10201201"), theirs.query("10201201")
    assert record.code == "10210210" and (record.params, record.flops) == (reference.params, reference.flops)
    assert record.mean_acc == pytest.approx(reference.mean_acc + shift, abs=1e-9)
    result = compare(ours, theirs)
    assert result.kendall_tau == pytest.approx(1.0) and result.max_abs_diff == pytest.approx(abs(shift), abs=1e-9)


def test_validation_split_is_exported_queried_and_compared_like_with_like(tmp_path, published_path, capsys):
    """Records of a validation-split recipe (--val-size), exported and queried: the validation figures come back as
    recorded (final, best, best epoch, every epoch), the test one too (final only: evaluated once)."""
    from nbm_lightning.bench import Benchmark, BenchmarkError, compare
    from nbm_lightning.bench.__main__ import main as bench_main

    records = [
        make_val_record(code, s, counts(code), 80.0 + i + s / 10, 70.0 + i - s / 10, val_peak=81.5 + i + s)
        for i, code in enumerate((A, B, C))
        for s in SEEDS
    ]
    write_records(tmp_path / "runs", records)
    out = tmp_path / "val.json"
    assert (
        run_export("--from", str(tmp_path / "runs"), "--format", "extended", "--out", str(out), "--allow-partial") == 0
    )
    data, bench = extended.load(out), Benchmark.load(out, quiet=True)
    assert data["version"] == 2 and data["provenance"]["eval_split"] == "val"
    assert bench.splits() == ("test", "val") and bench.metrics("val") == ("final", "best")
    assert bench.metrics("test") == ("final",) and bench.eval_split == "val"
    for r in records:
        code, seed, val = r["canonical"], r["seed"], r["curves"]["eval_acc"]
        assert data["archs"][code]["runs"][seed]["best_epoch"] == r["best_epoch"] == 37  # the peak, not the last
        assert bench.accuracy(code, seed, split="val") == r["val_acc_final"] == val[-1]
        assert bench.accuracy(code, seed, split="val", metric="best") == r["val_acc_best"] > r["val_acc_final"]
        assert bench.accuracy(code, seed) == bench.accuracy(code, seed, split="test") == r["test_acc_final"]
        for epoch in range(50):
            assert bench.accuracy(code, seed, split="val", epoch=epoch) == pytest.approx(val[epoch], rel=1e-6)
    assert bench.accuracy(B, split="val", metric="best") == pytest.approx(81.5 + 1 + 1)  # the mean of seeds 0, 1, 2
    with pytest.raises(BenchmarkError, match="curves of the val split only .* the test accuracy at epoch 3"):
        bench.accuracy(A, split="test", epoch=3)
    with pytest.raises(ValueError, match="invalid metric 'best': expected one of final"):
        bench.accuracy(A, metric="best")  # no test-set selection in a validation-split run
    same = compare(bench, bench, split="val")
    assert same.split == "val" and same.kendall_tau == pytest.approx(1.0) and same.max_abs_diff == 0.0
    assert compare(bench, bench).mean_diff == 0.0 and compare(bench, bench).split == "test"
    assert run_main(bench_main, ["compare", str(out), str(out), "--split", "val"]) == 0
    assert "split              val in both files (like with like)" in capsys.readouterr().out.splitlines()
    assert run_main(bench_main, ["compare", str(out), str(published_path), "--split", "val"], prog="bench") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{published_path} holds no 'val' split (it holds: test;" in err


def test_extended_load_refuses_other_files(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"format": extended.FORMAT, "version": 99}))
    with pytest.raises(ValueError, match="bad.json.*version 99"):
        extended.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        extended.load(tmp_path / "broken.json")


def partial_dir(tmp_path: Path) -> Path:
    """A complete code A, and B with seeds 0 and 1 only."""
    folder = tmp_path / "partial"
    write_records(folder, full([A]) + [rec(B, 0), rec(B, 1)])
    return folder


def test_missing_seeds_fail_without_allow_partial(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert run_export("--from", str(partial_dir(tmp_path)), "--format", "original", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "used" not in err  # the error alone: no summary line before it
    last = err.splitlines()[-1]
    assert last.startswith(
        "python -m nbm_lightning.export: error: 3968 of 3969 canonical codes lack seeds (11902 of 11907 runs missing)"
    )
    assert f"e.g. {B} (seeds 2 missing)" in last and "--allow-partial" in last and not out.exists()


def test_allow_partial_leaves_incomplete_codes_out(tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = ["--from", str(partial_dir(tmp_path)), "--format", "original", "--out", str(out), "--allow-partial"]
    assert run_export(*argv) == 0
    assert set(json.loads(out.read_text())) == {code for code in all_codes() if canonical(code) == A}
    captured = capsys.readouterr()
    assert (
        f"left out: 3968 of 3969 canonical codes lack seeds (11902 of 11907 runs missing), e.g. {B} (seeds 2 missing)"
        in captured.err
    )
    assert captured.out.splitlines()[-1].endswith(
        "read 5 runs: used 3 (1 codes x 3 seeds), rejected 0, superseded 0 duplicates, missing 11902 of 11907; "
        "left out 3968 incomplete codes (2 of their runs read)"
    )
    from nbm_lightning.bench import Benchmark

    assert Benchmark.load(out).archs() == (A,)  # `bench` reads the partial original file (the codes it holds)
    assert "is partial: 1 of 3969 canonical codes" in capsys.readouterr().err


def test_out_inside_a_from_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "results"
    write_records(folder, full([A]))
    for out in (folder / "bench.json", folder / ".." / "results" / "x.json"):
        assert run_export("--from", str(folder), "--format", "original", "--allow-partial", "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"bad --out {str(out)!r}: it is in the --from folder" in err
        assert not out.exists()
    assert (
        run_export("--from", str(folder), "--format", "original", "--allow-partial", "--out", str(tmp_path / "b.json"))
        == 0
    )


def test_unread_subfolders_are_named(tmp_path, capsys):
    results = tmp_path / "results"
    write_records(results / "smoke", full([A]))
    out = tmp_path / "out.json"
    assert run_export("--from", str(results), "--format", "original", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no complete run in the sources (0 runs read)" in err and not out.exists()
    assert f"{str(results)!r} holds no *.json file; its subfolders {results / 'smoke'}/ were not read" in err
    argv = ["--from", str(results), "--from", str(results / "smoke"), "--format", "original", "--allow-partial"]
    assert run_export(*argv, "--out", str(out)) == 0  # exported from the subfolder; the note stays
    assert "note: " in capsys.readouterr().err and out.exists()


def test_recipes_are_never_mixed(tmp_path, capsys):
    other = Recipe(epochs=1)
    folder = tmp_path / "two_recipes"
    write_records(folder, full([A]) + full([B], recipe=other, epochs_completed=1))
    out, base = tmp_path / "out.json", ["--from", str(folder), "--format", "original", "--allow-partial"]
    assert run_export(*base, "--out", str(out)) == 2
    assert "recipes tie for the majority" in capsys.readouterr().err
    assert run_export(*base, "--out", str(out), "--recipe-hash", other.hash()) == 0
    assert {canonical(code) for code in json.loads(out.read_text())} == {B}
    assert (
        f"rejected 3 runs of recipe {Recipe().hash()} (exporting {other.hash()}): not mixed" in capsys.readouterr().err
    )
    write_records(folder, [rec(C, 0)])  # the default recipe is now the majority
    assert run_export(*base, "--out", str(out)) == 0
    assert {canonical(code) for code in json.loads(out.read_text())} == {A}
    assert run_export(*base, "--out", str(out), "--recipe-hash", "abcdef123456") == 2
    assert "no complete run of recipe abcdef123456" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("corrupt.json", "{not json", "corrupt run record"),
        ("foreign.json", json.dumps({"a": 1}), "is not a run record"),
        (
            "malformed.json",
            json.dumps({"schema": "nbm_lightning.run_record", "canonical": A, "seed": "zero"}),
            "field 'seed' bad",
        ),
    ],
)
def test_a_bad_file_is_named_and_fails_the_export(name, text, message, tmp_path, capsys):
    folder = tmp_path / "records"
    write_records(folder, full([A]))
    (folder / name).write_text(text)
    assert (
        run_export("--from", str(folder), "--format", "original", "--out", str(tmp_path / "o.json"), "--allow-partial")
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and message in err and not (tmp_path / "o.json").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--from", "/no/such/dir"], "no such folder"),
        (["--from", "wandb:only-entity"], "expected wandb:ENTITY/PROJECT"),
    ],
)
def test_bad_sources_exit_2(argv, message, tmp_path, capsys):
    assert run_export(*argv, "--format", "original", "--out", str(tmp_path / "o.json")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "csv"],
        ["--format", "original", "--metric", "mean"],
        ["--format", "original", "--recipe-hash", "NOT-HEX"],
    ],
)
def test_bad_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        export.main(["--from", ".", "--out", "o.json", *argv])
    assert exc.value.code == 2 and capsys.readouterr().err.count("\n") == 1


NON_CANONICAL = next(code for code in all_codes() if canonical(code) != code)  # "00000001" -> "00000010"
SMALL = (A, canonical(NON_CANONICAL), C)  # the canonical codes of a small original export


def small_original(tmp_path: Path, edit=lambda data: None) -> Path:
    """An original-format export of three codes (written through bench.published), after `edit` of its JSON."""
    data = published.to_dict(ArchResult.of_seeds(code, [90.0, 91.0, 92.5], 1000, 2000) for code in SMALL)
    data = json.loads(json.dumps(data))  # one object per key, as read from a file
    edit(data)
    (path := tmp_path / "small.json").write_text(json.dumps(data))
    return path


def test_reading_an_export_back_goes_through_the_published_reader(tmp_path):
    path = small_original(tmp_path)
    assert set(json.loads(path.read_text())) == {code for code in all_codes() if canonical(code) in SMALL}
    fmt, rows, provenance = artifact.read_export(path)
    assert (fmt, provenance, [r[0] for r in rows]) == ("original", None, list(SMALL))
    mean, std = statistics.fmean([90.0, 91.0, 92.5]), statistics.pstdev([90.0, 91.0, 92.5])
    assert rows[0][-7:-2] == [1000, 2000, 90.0, 91.0, 92.5] and rows[0][-2:] == pytest.approx([mean, std], abs=1e-12)


@pytest.mark.parametrize(
    "edit, message",
    [  # each of these the old ad hoc reader of the published layout let through
        (lambda d: d[NON_CANONICAL].update(flops=1), f"key {NON_CANONICAL!r} differs from its canonical code"),
        (lambda d: d[A].update(test_acc=[90.0, 91.0, 150.0]), f"record {A!r} has test_acc[2] 150.0: expected"),
        (lambda d: d.update(junk={}), "unexpected key 'junk'"),
        (lambda d: [d[k].update(test_acc=[90.0, 91.0], std=0.5, mean_acc=90.5) for k in d], "hold 2 seeds, not 3"),
    ],
)
def test_log_only_refuses_a_file_the_published_reader_refuses(edit, message, tmp_path, capsys):
    path = small_original(tmp_path, edit)
    assert run_export("--log-only", str(path), "--wandb-artifact", "ent/proj") == 2  # before any W&B call
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err


# ---------------------------------------------------------------- W&B source


class FakeFile(SimpleNamespace):
    """What the exporter reads of a wandb.apis.public.File: name, size, download(root, replace)."""

    def download(self, root=".", replace=False, **kwargs):
        FakeApi.downloads.append(self.name)
        path = Path(root) / self.name
        path.write_text(self.text)
        return open(path)


class FakeRun(SimpleNamespace):
    """What the exporter reads of a wandb.apis.public.Run: config, summary, and files (`saved`: name -> text)."""

    def files(self, names=None, **kwargs):
        saved = getattr(self, "saved", {})
        return [FakeFile(name=n, size=len(t), text=t) for n, t in saved.items() if not names or n in names]


class FakeApi:
    """wandb.Api stand-in: `runs(path, filters=..., per_page=...)` returns the runs given to it."""

    calls: list[dict] = []
    served: list[FakeRun] = []
    downloads: list[str] = []  # names of the files downloaded

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def runs(self, path, filters=None, per_page=50, **kwargs):
        FakeApi.calls.append({"path": path, "filters": filters, "per_page": per_page, **kwargs})
        return iter(FakeApi.served)


def fake_run(record: dict, run_id: str | None = None, current: bool = False, saved: bool = False) -> FakeRun:
    """The W&B view of a record: config = identity + recipe + execution + complexity; summary = headline numbers.

    `current`: as `fit` logs today (runkeys: the architecture keys in the config, the whole summary);
    otherwise as the first release did. `saved`: the run holds its record as a file (runkeys.RECORD_FILE).
    """
    config = {
        k: record[k]
        for k in ("arch", "canonical", "seed", "run_name", "recipe_hash", "params", "flops", "ptflops_macs")
    }
    config.update(record["recipe"], **record["execution"], data=record["data"])  # fit logs the data fingerprint
    summary = {
        k: record[k]
        for k in ("params", "flops", "ptflops_macs", "status", "test_acc_final", "test_acc_best", "best_epoch")
    }
    if current:
        config.update(runkeys.record_config(RunRecord.from_dict(record)))
        summary.update(runkeys.summary(RunRecord.from_dict(record)))
    summary.update({"eval/acc": {"max": record["test_acc_best"], "last": record["test_acc_final"]}, "_runtime": 600})
    run_id = run_id or record["wandb"]["id"]
    return FakeRun(
        id=run_id,
        name=record["run_name"],
        state="finished",
        config=config,
        summary=summary,
        sweep=SimpleNamespace(id="sweep1"),
        url=f"https://wandb.example/ent/proj/runs/{run_id}",
        created_at=FINISHED_AT.replace("+00:00", "Z"),
        saved={runkeys.RECORD_FILE: json.dumps(record)} if saved else {},
    )


@pytest.fixture
def fake_wandb(monkeypatch):
    import wandb

    FakeApi.calls, FakeApi.served, FakeApi.downloads = [], [], []
    monkeypatch.setattr(wandb, "Api", FakeApi)
    return FakeApi


def test_wandb_source(fake_wandb, tmp_path, capsys):
    records = full([A, B]) + [rec(C, 0, recipe=Recipe(epochs=1), epochs_completed=1)]
    fake_wandb.served = [fake_run(r) for r in records] + [
        FakeRun(
            id="x1",
            name="other",
            state="finished",
            config={"lr": 1},
            summary={},
            sweep=None,
            url="u",
            created_at=FINISHED_AT,
        )
    ]
    out = tmp_path / "ext.json"
    argv = ["--from", "wandb:ent/proj/sweep1", "--format", "extended", "--out", str(out), "--allow-partial"]
    assert run_export(*argv) == 0
    assert fake_wandb.calls == [
        {"path": "ent/proj", "filters": {"$and": [{"state": "finished"}, {"sweep": "sweep1"}]}, "per_page": 1000}
    ]
    data = extended.load(out)
    assert list(data["archs"]) == [A, B]
    run = data["archs"][B]["runs"][2]
    assert run["wandb_id"] == f"{B}s2" and run["wandb_url"].endswith(f"/runs/{B}s2") and run["curves"] is None
    assert run["test_acc_best"] == 90.0 and run["finished_at"] == "2026-01-01T00:10:00+00:00"
    assert data["provenance"]["wandb_sweeps"] == ["sweep1"] and data["provenance"]["counts"]["runs_rejected"] == 2
    err = capsys.readouterr().err
    assert "rejected wandb:ent/proj/x1: not an nbm_lightning run" in err and "not mixed" in err


def test_wandb_and_folder_hold_the_same_runs(fake_wandb, tmp_path, capsys):
    folder = tmp_path / "records"
    write_records(folder, full([A]))
    fake_wandb.served = [fake_run(r) for r in full([A])]
    out = tmp_path / "o.json"
    argv = [
        "--from",
        str(folder),
        "--from",
        "wandb:ent/proj",
        "--format",
        "original",
        "--out",
        str(out),
        "--allow-partial",
    ]
    assert run_export(*argv) == 0
    assert fake_wandb.calls[0]["filters"] == {"state": "finished"}
    assert json.loads(out.read_text())[A]["test_acc"] == [90.0] * 3
    captured = capsys.readouterr()
    assert captured.err.count(f"same W&B run {A}s") == 3
    assert "read 6 runs: used 3 (1 codes x 3 seeds), rejected 0, superseded 3 duplicates" in captured.out


def test_wandb_failure_is_one_line(monkeypatch, tmp_path, capsys):
    import wandb

    def broken(**kwargs):
        raise ConnectionError("no route to api.wandb.ai\nsecond line")

    monkeypatch.setattr(wandb, "Api", broken)
    assert run_export("--from", "wandb:ent/proj", "--format", "original", "--out", str(tmp_path / "o.json")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "W&B query of 'ent/proj' failed: ConnectionError: no route to api.wandb.ai" in err


def test_wandb_source_reads_the_saved_record_for_the_extended_format(fake_wandb, tmp_path, capsys):
    records = full([A, B])
    corrupt = fake_run(rec(C, 0), current=True)
    corrupt.saved = {runkeys.RECORD_FILE: "{not json"}
    fake_wandb.served = [fake_run(r, current=True, saved=r["canonical"] == A) for r in records] + [corrupt]
    out = tmp_path / "ext.json"
    argv = ["--from", "wandb:ent/proj", "--format", "extended", "--out", str(out), "--allow-partial"]
    assert run_export(*argv) == 0
    archs = extended.load(out)["archs"]
    for seed, run in enumerate(archs[A]["runs"]):  # saved record: its curves, versions and exact times
        curves = extended.decode_curves(run)
        assert curves["eval_acc"].tolist() == pytest.approx(records[seed]["curves"]["eval_acc"], rel=1e-6)
        assert run["finished_at"] == FINISHED_AT and run["train_time_s"] == pytest.approx(records[seed]["train_time_s"])
    for seed, run in enumerate(archs[B]["runs"]):  # no saved record: config and summary (its train time and end)
        assert run["curves"] is None and run["finished_at"] == FINISHED_AT
        assert run["train_time_s"] == pytest.approx(records[3 + seed]["train_time_s"])  # not the run's _runtime
    assert sorted(FakeApi.downloads) == [runkeys.RECORD_FILE] * 4
    assert f"rejected wandb:ent/proj/{C}s0: not an nbm_lightning run: corrupt run record" in capsys.readouterr().err
    FakeApi.downloads.clear()
    assert run_export("--from", "wandb:ent/proj", "--format", "original", "--out", str(out), "--allow-partial") == 0
    assert FakeApi.downloads == []  # the original format needs no curves: no file is fetched


def test_a_wandb_run_without_the_new_keys_gets_them_derived():
    derived = record_from_wandb(fake_run(rec("10210210", 1, arch="10201201")))  # logged before schema version 3
    assert derived.layers == runkeys.layer_ops("10201201") and derived.n_nonzero == 5
    assert derived.op_counts == {"identity": 3, "mb_k3_e3": 3, "mb_k5_e6": 2}
    assert derived.recipe_name == "published"
