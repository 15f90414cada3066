"""Every reader of a file from outside refuses what is malformed or impossible, in one line: one table per format.

RECORD_CASES: run records, through each reader that decides something with them: the skip of `fit` and the
worker (`job.done_record`), `sweep make --missing` (`sweep.done_pairs`) and the exporter (`sources.read_folder`
and `rules.rejection`). Each case is a sound record changed one way; it must count as done for none of them, and
each must name the file and say what is wrong.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbm_lightning.complexity import complexity
from nbm_lightning.config import Recipe
from nbm_lightning.errors import UserError
from nbm_lightning.export import rules, sources
from nbm_lightning.job import done_record, resolve_job
from nbm_lightning.sweep import done_pairs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ (already there under `python -m pytest`)
from benchmarks.export import make_record  # noqa: E402

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


Mutation = Callable[[dict], "dict | str"]  # the sound record -> a changed one, or the file's text
RECORD_CASES: list[tuple[str, Mutation, str]] = [
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


def write_case(folder: Path, mutation: Mutation) -> Path:
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


@pytest.fixture(autouse=True)
def one_code_table(monkeypatch):
    """`sweep make --missing` looks up the true complexity of CODE only (the table of all 3969 codes takes 1 s)."""
    counts = complexity(CODE)
    monkeypatch.setattr(
        "nbm_lightning.complexity.complexity_table", lambda codes: {CODE: (counts.params, counts.flops)}
    )


def test_a_sound_record_counts_for_every_reader(tmp_path, capsys):
    path = write_case(tmp_path, lambda r: r)
    job = resolve_job({"epochs": EPOCHS, "results_dir": str(tmp_path)}, arch=CODE, seed=SEED)
    assert done_record(job) is not None
    assert done_pairs([tmp_path], RECIPE.hash()) == {(CODE, SEED)}
    assert export_verdict(tmp_path) is None
    assert capsys.readouterr().err == "" and path.exists()


@pytest.mark.parametrize("mutation, fragment", [case[1:] for case in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_a_bad_record_counts_for_no_reader_and_is_named(tmp_path, capsys, mutation, fragment):
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
