"""Malformed inputs of every reader of outside files, in one table: each is refused with one line naming the problem.

Rows are (case name, file content or mutation of a valid document, expected message fragment). A mutation edits a
deep copy of a small valid document in place; raw bytes replace the file. Each row is read through the reader's
Python API (one error type, a ValueError that the command line reports) and through its command line (exit 2,
one line on stderr, nothing on stdout).

RECORD_CASES (at the end): run records, through each reader that decides something with them: the skip of
`fit` and the worker (`job.done_record`), `sweep make --missing` (`runner.missing.done_pairs`) and the exporter
(`sources.read_folder` and `rules.rejection`). Each case is a sound record changed one way; it must count as
done for none of them, and each must name the file and say what is wrong.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbm_lightning.arch.codes import all_codes, canonical
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.bench import Benchmark, BenchmarkError, extended
from nbm_lightning.bench import __main__ as bench_cli
from nbm_lightning.bench.formats import SUMMARY_TOLERANCE
from nbm_lightning.cli import run_main
from nbm_lightning.core.errors import UserError
from nbm_lightning.export import rules, sources
from nbm_lightning.records.job import done_record, resolve_job
from nbm_lightning.records.recipe import Recipe
from nbm_lightning.runner.missing import done_pairs
from nbm_lightning.search import __main__ as search_cli
from nbm_lightning.search.runs import FORMAT as RUNS_FORMAT
from nbm_lightning.search.runs import RunsFileError, read_runs
from nbm_lightning.synthetic.records import make_record

ROOT = Path(__file__).resolve().parents[1]

Mutation = Callable[[Any], Any] | bytes  # edits a valid document in place (returns None) or returns another; or bytes
KEPT = ("00000000", "10210210")  # canonical codes of the small published-format file
DEEP = b"[" * 200_000 + b"]" * 200_000  # nesting that overflows a recursive parser


def _published() -> dict[str, Any]:
    """A small valid file of the published format: every key of two canonical codes (a partial file)."""
    records = {}
    for i, code in enumerate(KEPT):
        acc = [90.0 + i, 91.5 + i, 89.25 + i]
        records[code] = {"test_acc": acc, "mean_acc": float(np.mean(acc)), "std": float(np.std(acc)),
                         "params": 1_000_000 + i, "flops": 50_000_000 + i}  # fmt: skip
    return {key: copy.deepcopy(records[canonical(key)]) for key in _kept_keys()}


@functools.cache
def _kept_keys() -> tuple[str, ...]:
    """Every code whose canonical form is in KEPT."""
    return tuple(key for key in all_codes() if canonical(key) in KEPT)


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Set fields of the record of KEPT[0] under every key that resolves to it (the published invariant holds)."""

    def mutate(doc: dict[str, Any]) -> None:
        for key in _kept_keys():
            if canonical(key) == KEPT[0]:
                doc[key].update(copy.deepcopy(fields))

    return mutate


def _extended() -> dict[str, Any]:
    """A small valid extended export: two codes, 4-epoch eval_acc curves, best 1 point above final."""
    archs = {}
    for i, code in enumerate(KEPT):
        runs = [
            {"seed": s, "test_acc_best": 60.0 + i + s, "test_acc_final": 59.0 + i + s, "best_epoch": 2, "epochs": 4,
             "val_acc_best": None, "val_acc_final": None,
             "train_time_s": 100.0 + s, "run_name": f"{code}-s{s}", "wandb_id": None, "wandb_url": None,
             "finished_at": None, "curves": {"eval_acc": extended.encode_curve([50, 55, 60 + i + s, 59 + i + s])}}
            for s in range(3)
        ]  # fmt: skip
        archs[code] = {"params": 1000 + i, "flops": 10_000 + i, "ptflops_macs": None, "runs": runs}
    provenance = {key: {} for key in extended.PROVENANCE_KEYS}
    provenance |= {"metric": "final", "sources": [], "curves": extended.CURVE_ENCODING, "eval_split": "test"}
    return {"format": extended.FORMAT, "version": extended.VERSION, "created_at": "", "provenance": provenance,
            "archs": archs}  # fmt: skip


def _run(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Set fields of seed 1's run of KEPT[0] in an extended document."""
    return lambda doc: doc["archs"][KEPT[0]]["runs"][1].update(fields)


def _arch(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Set fields of KEPT[0]'s entry in an extended document."""
    return lambda doc: doc["archs"][KEPT[0]].update(fields)


def _as_val(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Make an extended document a validation-split one (val best 1 point above val final = test final), then set
    fields of seed 1's run of KEPT[0]."""

    def mutate(doc: dict[str, Any]) -> None:
        doc["provenance"]["eval_split"] = "val"
        for run in (run for arch in doc["archs"].values() for run in arch["runs"]):
            run.update(test_acc_best=None, val_acc_best=run["test_acc_final"] + 1, val_acc_final=run["test_acc_final"])
        _run(**fields)(doc)

    return mutate


def _runs() -> dict[str, Any]:
    """A small valid search runs file: two trials of budget 3."""
    trials = [
        {"seed": s, "incumbent_mean_acc": [90.0, 91.0 + s, 91.0 + s], "incumbent_rank": [400, 120 - s, 120 - s],
         "incumbent": ["00000000", "10210210", "10210210"], "seconds": [10.0, 20.5, 31.0]}
        for s in range(2)
    ]  # fmt: skip
    benchmark = {"path": "bench.json", "sha256": "0" * 64, "archs": 3969, "best_mean_acc": 93.13}
    return {"format": RUNS_FORMAT, "version": 1, "algo": "rs", "config": {}, "budget": 3, "observe": "seed",
            "metric": "best", "epoch": None, "benchmark": benchmark, "trials": trials}  # fmt: skip


def _trial(**fields: Any) -> Callable[[dict[str, Any]], None]:
    """Set fields of trial 1 of a runs document."""
    return lambda doc: doc["trials"][1].update(fields)


def _drop(*path: Any) -> Callable[[Any], None]:
    """Delete doc[path[0]]...[path[-1]]."""

    def mutate(doc: Any) -> None:
        for key in path[:-1]:
            doc = doc[key]
        del doc[path[-1]]

    return mutate


PUBLISHED_CASES: list[tuple[str, Mutation, str]] = [
    ("not JSON", b"{not json", "is not valid JSON"),
    ("not UTF-8", b"\xff\xfe\x00", "is not valid JSON"),
    ("nested 200,000 deep", DEEP, "is nested more than 64 deep"),
    ("top level a list", lambda doc: [1, 2], "top level is a JSON list"),
    ("unknown key", lambda doc: doc.update(a=1), "unexpected key 'a'"),
    ("no architectures", lambda doc: {}, "holds no architectures"),
    ("extra field", _set(extra=1), "record '00000000' has ['extra', 'flops'"),
    ("test_acc empty", _set(test_acc=[]), "has test_acc [], expected a non-empty list"),
    ("test_acc a string", _set(test_acc="90"), "has test_acc '90', expected a non-empty list"),
    (
        "accuracy 150",
        _set(test_acc=[150.0, 90.0, 90.0], mean_acc=110.0),
        "test_acc[0] 150.0: expected a finite number in 0..100",
    ),
    ("accuracy -5", _set(test_acc=[90.0, -5.0, 90.0]), "test_acc[1] -5.0: expected a finite number in 0..100"),
    ("accuracy 1e308", _set(test_acc=[1e308] * 3, mean_acc=1e308, std=0.0), "test_acc[0] 1e+308: expected a finite"),
    ("accuracy NaN", _set(test_acc=[90.0, 90.0, math.nan]), "test_acc[2] nan: expected a finite number"),
    ("accuracy a bool", _set(test_acc=[True, 90.0, 90.0]), "test_acc[0] True: expected a finite number"),
    ("mean_acc 99.9 (seeds average 90.25)", _set(mean_acc=99.9), "has mean_acc 99.9, expected 90.25, the mean of its"),
    ("mean_acc off by 1e-5", _set(mean_acc=90.25001), "has mean_acc 90.25001, expected 90.25, the mean"),
    ("mean_acc infinite", _set(mean_acc=math.inf), "mean_acc inf: expected a finite number in 0..100"),
    (
        "std of ddof=1",
        _set(std=float(np.std([90.0, 91.5, 89.25], ddof=1))),
        "expected 0.9354143466934853, the population std",
    ),
    ("std negative", _set(std=-0.5), "std -0.5: expected a finite number in 0..100"),
    ("params 2**70", _set(params=2**70), "params 1180591620717411303424: expected an int in 0..9007199254740992"),
    ("params null", _set(params=None), "params None: expected an int"),
    ("params a string", _set(params="1000000"), "params '1000000': expected an int"),
    ("params a float", _set(params=1.5), "params 1.5: expected an int"),
    ("params a bool", _set(params=True), "params True: expected an int"),
    ("flops negative", _set(flops=-1), "flops -1: expected an int in 0..9007199254740992"),
    ("seed counts differ", _set(test_acc=[90.0, 90.5], mean_acc=90.25, std=0.25), "different numbers of seeds"),
    ("key differs from its canonical", lambda doc: doc["10201201"].update(params=7), "key '10201201' differs"),
]

EXTENDED_CASES: list[tuple[str, Mutation, str]] = [
    ("version 99", lambda doc: doc.update(version=99), "version 99 (this reader knows 1, 2)"),
    ("version true", lambda doc: doc.update(version=True), "version True (this reader knows 1, 2)"),
    ("no provenance", _drop("provenance"), "missing key(s) ['provenance']"),
    ("v2 without eval_split", _drop("provenance", "eval_split"), "missing key(s) ['eval_split']"),
    ("eval_split train", lambda doc: doc["provenance"].update(eval_split="train"), "eval_split 'train': expected one"),
    ("v2 run without val_acc_final", _drop("archs", KEPT[0], "runs", 1, "val_acc_final"), "seed 1: expected keys"),
    ("val accuracy in a test file", _run(val_acc_final=50.0), "val_acc_final 50.0 with eval_split 'test'"),
    ("test best in a val file", _as_val(test_acc_best=70.0), "seed 1: test_acc_best 70.0 with eval_split 'val'"),
    ("val accuracy 101", _as_val(val_acc_final=101.0), "val_acc_final 101.0: expected a finite number in 0..100"),
    ("val best below final", _as_val(val_acc_best=10.0), "val_acc_best 10.0 is below val_acc_final 60.0"),
    (
        "unknown metric",
        lambda doc: doc["provenance"].update(metric="top5"),
        "unknown metric 'top5': expected one of best, final",
    ),
    ("metric a list", lambda doc: doc["provenance"].update(metric=["best"]), "unknown metric ['best']"),
    (
        "curves of float64",
        lambda doc: doc["provenance"].update(curves={"encoding": "base64", "dtype": "<f8"}),
        "curves stored as",
    ),
    ("key not a code", lambda doc: doc["archs"].update(abc=doc["archs"][KEPT[0]]), "key 'abc' is not a canonical code"),
    (
        "key not canonical",
        lambda doc: doc["archs"].update({"00000001": doc["archs"][KEPT[0]]}),
        "key '00000001' is not a canonical",
    ),
    ("params null", _arch(params=None), "00000000: params None: expected an int in 0..9007199254740992"),
    ("params a string", _arch(params="1000"), "00000000: params '1000': expected an int"),
    ("params 2**70", _arch(params=2**70), "params 1180591620717411303424: expected an int"),
    ("flops negative", _arch(flops=-3), "flops -3: expected an int"),
    (
        "ptflops_macs a float",
        _arch(ptflops_macs=1.5),
        "ptflops_macs 1.5: expected an int in 0..9007199254740992 or null",
    ),
    (
        "runs out of order",
        lambda doc: doc["archs"][KEPT[0]]["runs"].reverse(),
        "runs must be one per seed in order [0, 1, 2]",
    ),
    ("seed a bool", _run(seed=True), "runs must be one per seed in order"),
    ("run lacks a key", _drop("archs", KEPT[0], "runs", 1, "curves"), "00000000 seed 1: expected keys"),
    (
        "final accuracy 1e308",
        _run(test_acc_final=1e308),
        "00000000 seed 1: test_acc_final 1e+308: expected a finite number in 0..100",
    ),
    ("final accuracy NaN", _run(test_acc_final=math.nan), "test_acc_final nan: expected a finite number"),
    ("final accuracy null", _run(test_acc_final=None), "test_acc_final None: expected a finite number"),
    ("best accuracy 150", _run(test_acc_best=150.0), "test_acc_best 150.0: expected a finite number in 0..100 or null"),
    ("best below final", _run(test_acc_best=50.0), "test_acc_best 50.0 is below test_acc_final 60.0"),
    ("epochs a string", _run(epochs="4"), "epochs '4': expected an int in 0..100000 or null"),
    ("best_epoch past the epochs", _run(best_epoch=4), "best_epoch 4: expected an int in 0..3 or null"),
    ("train time negative", _run(train_time_s=-1.0), "train_time_s -1.0: expected a finite number in 0..inf"),
    ("run_name a number", _run(run_name=5), "run_name 5: expected a string or null"),
    ("curves a list", _run(curves=[1, 2]), "curves [1, 2]: expected an object of base64 texts or null"),
    ("curve not base64", _run(curves={"eval_acc": "not base64!"}), "curve 'eval_acc' is not base64 of <f4 values"),
    ("curve a number", _run(curves={"eval_acc": 5}), "curve 'eval_acc' is not base64 of <f4 values"),
    ("curve of 5 bytes", _run(curves={"eval_acc": "AAAAAAA="}), "5 bytes are not whole <f4 values"),
    (
        "curve cut to 1 of 4 epochs",
        _run(curves={"eval_acc": extended.encode_curve([59.0])}),
        "holds 1 values (curves of [1, 4] epochs in one file)",
    ),
    ("curve longer than the epochs", _run(epochs=3), "holds 4 values (3 epochs)"),
    (
        "curve value 150",
        _run(curves={"eval_acc": extended.encode_curve([50.0, 55.0, 150.0, 60.0])}),
        "curve 'eval_acc' holds values outside 0..100",
    ),
]

RUNS_CASES: list[tuple[str, Mutation, str]] = [
    ("not JSON", b"[1, 2", "is not valid JSON"),
    ("nested 200,000 deep", DEEP, "is nested more than 64 deep"),
    ("empty object", lambda doc: {}, "no 'format': 'nbm_lightning.search-runs' and 'version': 2"),
    ("version 3", lambda doc: doc.update(version=3), "version 3 (this reader knows 1, 2)"),
    ("v2 without splits", lambda doc: doc.update(version=2), "missing key(s) ['observed_split', 'reported_split']"),
    (
        "observed split 'train'",
        lambda doc: doc.update(version=2, observed_split="train", reported_split="test"),
        "observed_split 'train': expected one of test, val",
    ),
    (
        "reported on val",
        lambda doc: doc.update(version=2, observed_split="test", reported_split="val"),
        "reported_split 'val': expected one of test",
    ),
    ("version a string", lambda doc: doc.update(version="1"), "no 'format'"),
    ("missing trials", _drop("trials"), "missing key(s) ['trials']"),
    (
        "missing metric and epoch",
        lambda doc: _drop("metric")(doc) or _drop("epoch")(doc),
        "missing key(s) ['metric', 'epoch']",
    ),
    ("unknown algo", lambda doc: doc.update(algo="ga"), "algo 'ga': expected one of rs, re, ls, mcts"),
    ("algo a list", lambda doc: doc.update(algo=["rs"]), "algo ['rs']: expected one of"),
    ("unknown observe", lambda doc: doc.update(observe="oracle"), "observe 'oracle': expected one of seed, mean"),
    ("unknown metric", lambda doc: doc.update(metric="top5"), "metric 'top5': expected one of best, final"),
    ("budget a string", lambda doc: doc.update(budget="3"), "budget '3': expected an int in 1..3969"),
    ("budget negative", lambda doc: doc.update(budget=-3), "budget -3: expected an int in 1..3969"),
    ("budget huge", lambda doc: doc.update(budget=10**30), "budget 1000000000000000000000000000000: expected an int"),
    ("budget NaN", lambda doc: doc.update(budget=math.nan), "budget nan: expected an int"),
    ("epoch negative", lambda doc: doc.update(epoch=-1), "epoch -1: expected an int in 0..100000 or null"),
    ("benchmark null", lambda doc: doc.update(benchmark=None), "benchmark None: expected an object with keys"),
    ("benchmark lacks sha256", _drop("benchmark", "sha256"), "expected an object with keys ['path', 'sha256'"),
    ("sha256 a number", lambda doc: doc["benchmark"].update(sha256=5), "benchmark sha256 5: expected a string"),
    (
        "best_mean_acc huge",
        lambda doc: doc["benchmark"].update(best_mean_acc=1e308),
        "benchmark best_mean_acc 1e+308: expected",
    ),
    ("archs zero", lambda doc: doc["benchmark"].update(archs=0), "benchmark archs 0: expected an int in 1..3969"),
    ("no trials", lambda doc: doc.update(trials=[]), "trials []: expected a non-empty list"),
    ("trial a list", lambda doc: doc["trials"].append([1]), "trial 2: expected an object with keys"),
    ("trial lacks seconds", _drop("trials", 1, "seconds"), "trial 1: expected an object with keys"),
    (
        "list shorter than the budget",
        _trial(incumbent_rank=[1, 1]),
        "trial 1: incumbent_rank [1, 1]: expected a list of 3 values",
    ),
    (
        "accuracy NaN",
        _trial(incumbent_mean_acc=[90.0, math.nan, 91.0]),
        "trial 1: incumbent_mean_acc[1] nan: expected a finite number in 0..93.13",
    ),
    ("accuracy a string", _trial(incumbent_mean_acc=[90.0, "91", 91.0]), "incumbent_mean_acc[1] '91': expected"),
    (
        "accuracy above the best",
        _trial(incumbent_mean_acc=[90.0, 95.0, 95.0]),
        "incumbent_mean_acc[1] 95.0: expected a finite number in 0..93.13",
    ),
    ("accuracy 1e308", _trial(incumbent_mean_acc=[1e308] * 3), "incumbent_mean_acc[0] 1e+308"),
    ("rank zero", _trial(incumbent_rank=[0, 1, 1]), "incumbent_rank[0] 0: expected an int in 1..3969"),
    ("rank a float", _trial(incumbent_rank=[3, 2.5, 1]), "incumbent_rank[1] 2.5: expected an int"),
    ("seed negative", _trial(seed=-1), "trial 1: seed -1: expected an int in 0..9007199254740992"),
    ("seconds negative", _trial(seconds=[-1.0, 2.0, 3.0]), "seconds[0] -1.0: expected a finite number in 0..inf"),
    ("seconds decrease", _trial(seconds=[5.0, 2.0, 3.0]), "seconds decrease: expected cumulative seconds"),
    ("incumbent not a code", _trial(incumbent=["00000000", "abc", "abc"]), "incumbent 'abc': expected canonical codes"),
]


def _write(path: Path, valid: Callable[[], Any], mutation: Mutation) -> Path:
    """Write the valid document after `mutation` (or raw bytes) to `path`."""
    if isinstance(mutation, bytes):
        path.write_bytes(mutation)
        return path
    doc = valid()
    replaced = mutation(doc)  # None: edited in place
    path.write_text(json.dumps(doc if replaced is None else replaced))
    return path


def _one_line_exit_2(capsys, main: Callable, argv: list[str], prog: str, fragment: str) -> None:
    """The command line refuses: exit status 2, one line on stderr naming the problem, nothing on stdout."""
    assert run_main(main, argv, prog=prog) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert fragment in err and "Traceback" not in err


def test_the_valid_documents_are_read(tmp_path):
    assert len(Benchmark.load(_write(tmp_path / "p.json", _published, lambda doc: None), quiet=True)) == 2
    assert Benchmark.load(_write(tmp_path / "e.json", _extended, lambda doc: None)).metric == "final"
    assert read_runs(_write(tmp_path / "r.json", _runs, lambda doc: None))["budget"] == 3


@pytest.mark.parametrize("case, mutation, fragment", PUBLISHED_CASES, ids=[c[0] for c in PUBLISHED_CASES])
def test_published_format_reader_refuses(tmp_path, capsys, case, mutation, fragment):
    path = _write(tmp_path / "bench.json", _published, mutation)
    with pytest.raises(BenchmarkError) as info:
        Benchmark.load(path, quiet=True)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert fragment in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)
    _one_line_exit_2(capsys, bench_cli.main, ["top", "1", "--file", str(path)], bench_cli.PROG, fragment)


@pytest.mark.parametrize("case, mutation, fragment", EXTENDED_CASES, ids=[c[0] for c in EXTENDED_CASES])
def test_extended_format_readers_refuse(tmp_path, capsys, case, mutation, fragment):
    path = _write(tmp_path / "ext.json", _extended, mutation)
    for read in (Benchmark.load, extended.load):  # the benchmark's reader and the export's
        with pytest.raises(ValueError) as info:
            read(path)
        assert fragment in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)
    _one_line_exit_2(capsys, bench_cli.main, ["query", "10201201", "--file", str(path)], bench_cli.PROG, fragment)


@pytest.mark.parametrize("case, mutation, fragment", RUNS_CASES, ids=[c[0] for c in RUNS_CASES])
def test_search_runs_reader_refuses(tmp_path, capsys, case, mutation, fragment):
    path = _write(tmp_path / "runs.json", _runs, mutation)
    with pytest.raises(RunsFileError) as info:
        read_runs(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert fragment in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)
    good = _write(tmp_path / "good.json", _runs, lambda doc: None)
    _one_line_exit_2(capsys, search_cli.main, ["table", str(good), str(path)], search_cli.PROG, fragment)
    png = tmp_path / "any.png"
    _one_line_exit_2(capsys, search_cli.main, ["plot", str(path), "--out", str(png)], search_cli.PROG, fragment)
    assert not png.exists()


def test_readers_take_regular_files_only(tmp_path, capsys):
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # a FIFO with no writer: opening it plainly would block for ever
    with pytest.raises(BenchmarkError, match="fifo.json': not a regular file"):
        Benchmark.load(fifo)
    with pytest.raises(RunsFileError, match="fifo.json': not a regular file"):
        read_runs(fifo)
    with pytest.raises(ValueError, match="fifo.json': not a regular file"):
        extended.load(fifo)
    _one_line_exit_2(capsys, search_cli.main, ["table", str(tmp_path)], search_cli.PROG, "not a regular file")


def test_the_whole_published_file_passes_and_fixes_the_tolerance(published_path, published):
    """The published file stores mean_acc and std unrounded: numpy's float64 mean and population std of test_acc,
    to the last bit; the sample std would be far outside SUMMARY_TOLERANCE, so a file using it is refused."""
    bench = Benchmark.load(published_path)
    assert len(bench) == 3969 and bench.notes == ()
    acc = np.array([v["test_acc"] for v in published.values()])
    mean, std = np.array([v["mean_acc"] for v in published.values()]), np.array([v["std"] for v in published.values()])
    assert np.abs(mean - acc.mean(axis=1)).max() == 0.0 and np.abs(std - acc.std(axis=1)).max() == 0.0
    assert np.abs(std - acc.std(axis=1, ddof=1)).max() > 1000 * SUMMARY_TOLERANCE
    assert acc.min() >= 0 and acc.max() <= 100


# ---------------------------------------------------------------- run records

CODE, SEED, EPOCHS = "00000000", 0, 2
RECIPE = Recipe(epochs=EPOCHS)  # a 2-epoch recipe: not the published one
FILE = "__file__"  # a mutation may set it: the file name the record is written under


def sound_record() -> dict[str, Any]:
    """A complete, sound record of (CODE, SEED) under RECIPE, as the JSON object on disk."""
    counts = complexity(CODE)
    return make_record(CODE, SEED, (counts.params, counts.flops), 60.0, 55.0, recipe=RECIPE)


def cut_curves(record: dict, epochs: int) -> dict:
    return {**record, "curves": {name: values[:epochs] for name, values in record["curves"].items()}}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


RecordMutation = Callable[[dict], "dict | str"]  # the sound record -> a changed one, or the file's text
RECORD_CASES: list[tuple[str, RecordMutation, str]] = [
    ("accuracy 150", lambda r: {**r, "test_acc_best": 150.0}, "accuracy outside [0, 100] percent"),
    ("accuracy -5", lambda r: {**r, "test_acc_final": -5.0}, "accuracy outside [0, 100] percent"),
    ("accuracy 1e308", lambda r: {**r, "test_acc_best": 1e308}, "accuracy outside [0, 100] percent"),
    ("accuracy infinite", lambda r: {**r, "test_acc_final": math.inf}, "non-finite accuracy"),
    ("accuracy a huge integer", lambda r: {**r, "test_acc_best": 10**400}, "field 'test_acc_best' bad"),
    ("best below final", lambda r: {**r, "test_acc_best": 50.0}, "test_acc_best 50.0 is below test_acc_final 55.0"),
    ("best_epoch past the epochs", lambda r: {**r, "best_epoch": EPOCHS}, "best_epoch 2 is not one of the 2 epochs"),
    ("best_epoch negative", lambda r: {**r, "best_epoch": -1}, "best_epoch -1 is not one of the 2 epochs"),
    (
        "epochs_completed null, curves cut to 1 of 2",
        lambda r: {**cut_curves(r, 1), "epochs_completed": None},
        "epochs_completed unknown (null) of 2 epochs",
    ),
    ("curves cut to 1 of 2", lambda r: cut_curves(r, 1), "truncated: curves of"),
    (
        "recipe_hash edited to the published one",
        lambda r: {**r, "recipe_hash": Recipe().hash()},
        f"recipe_hash '{Recipe().hash()}' is not the hash of its recipe fields ({RECIPE.hash()})",
    ),
    ("recipe unbuildable", lambda r: {**r, "recipe": {**r["recipe"], "lr": "fast"}}, "its recipe is not valid"),
    ("recipe with an unknown field", lambda r: {**r, "recipe": {**r["recipe"], "x": 1}}, "its recipe is not valid"),
    ("recipe holding a list", lambda r: {**r, "recipe": {**r["recipe"], "lr": [0.1]}}, "its recipe is not valid"),
    ("data null", lambda r: {**r, "data": None}, "no data fingerprint (data is null)"),
    ("data {}", lambda r: {**r, "data": {}}, "no data fingerprint (data is {})"),
    ("data malformed", lambda r: {**r, "data": {"files_sha256": 7}}, "malformed data fingerprint"),
    ("data of an unknown kind", lambda r: {**r, "data": {**r["data"], "kind": "crc"}}, "malformed data fingerprint"),
    ("copied to another seed's file", lambda r: {**r, FILE: f"{CODE}-s2.json"}, "does not match the run it holds"),
    ("params 2**70", lambda r: {**r, "params": 2**70}, "params/flops 1180591620717411303424/"),
    ("ptflops_macs negative", lambda r: {**r, "ptflops_macs": -1}, "{'ptflops_macs': '-1'} outside 0.."),
    ("train time NaN", lambda r: {**r, "train_time_s": math.nan}, "{'train_time_s': 'nan'} outside 0.."),
    ("arch of another code", lambda r: {**r, "arch": "10000000"}, "arch '10000000' is not a form of 00000000"),
    ("status unknown", lambda r: {**r, "status": "done"}, "field 'status' bad"),
    ("not JSON", lambda r: "{not json", "corrupt run record"),
    ("nested 10,000 deep", lambda r: nested(10_000), "nested more than 64 deep"),
    ("not a record", lambda r: json.dumps([1, 2]), "is not a run record"),
]


def write_case(folder: Path, mutation: RecordMutation) -> Path:
    """The sound record changed by `mutation`, written to `folder` (under its own name unless FILE says)."""
    changed = mutation(sound_record())
    name = f"{CODE}-s{SEED}.json"
    if isinstance(changed, dict):
        name = changed.pop(FILE, name)
        changed = json.dumps(changed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(changed)
    return path


def export_verdict(folder: Path) -> str | None:
    """What the exporter says of the folder's one file: why it is rejected or unreadable, None where it is used."""
    try:
        runs = sources.read_folder(folder)
    except UserError as err:
        return str(err)
    counts = complexity(CODE)
    expected = {CODE: (counts.params, counts.flops)}
    found = rules.rejection(runs[0], RECIPE.hash(), "best", expected)
    return None if found is None else f"{found.source}: {found.reason}"


@pytest.fixture
def one_code_table(monkeypatch):
    """`sweep make --missing` looks up the true complexity of CODE only (the table of all 3969 codes takes 1 s)."""
    counts = complexity(CODE)
    monkeypatch.setattr(
        "nbm_lightning.arch.complexity.complexity_table", lambda codes: {CODE: (counts.params, counts.flops)}
    )


def test_a_sound_record_counts_for_every_reader(tmp_path, capsys, one_code_table):
    path = write_case(tmp_path, lambda r: r)
    job = resolve_job({"epochs": EPOCHS, "results_dir": str(tmp_path)}, arch=CODE, seed=SEED)
    assert done_record(job) is not None
    assert done_pairs([tmp_path], RECIPE.hash()) == {(CODE, SEED)}
    assert export_verdict(tmp_path) is None
    assert capsys.readouterr().err == "" and path.exists()


@pytest.mark.parametrize("mutation, fragment", [case[1:] for case in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_a_bad_record_counts_for_no_reader_and_is_named(tmp_path, capsys, mutation, fragment, one_code_table):
    path = write_case(tmp_path, mutation)
    seed = int(path.stem.rpartition("-s")[2]) if path.stem.startswith(CODE) else SEED
    job = resolve_job({"epochs": EPOCHS, "results_dir": str(tmp_path)}, arch=CODE, seed=seed)
    verdicts = {}
    if job.record_path == path:  # fit's skip reads the pair's own path
        assert done_record(job) is None
        verdicts["fit"] = capsys.readouterr().err
    assert done_pairs([tmp_path], RECIPE.hash()) == set()
    verdicts["sweep make --missing"] = capsys.readouterr().err
    verdicts["export"] = export_verdict(tmp_path) or ""
    for reader, said in verdicts.items():
        assert fragment in said and str(path) in said and said.count("\n") <= 1, (reader, said)
    assert path.exists()  # nothing is deleted on the strength of a record
