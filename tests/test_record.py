"""The run record, the one owner of its schema: written by a real `fit` run, read back by RunRecord and by the
exporter; versions; "complete for this recipe"; provenance of the code version."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbm_lightning.cli import run_main
from nbm_lightning.config import SEEDS, Recipe
from nbm_lightning.export import __main__ as export_cli
from nbm_lightning.export import extended
from nbm_lightning.provenance import code_version
from nbm_lightning.record import CURVES, SCHEMA_VERSION, RecordError, RunRecord
from nbm_lightning.synthetic import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
CODE = "00000000"


@pytest.fixture(scope="module")
def real_record(tmp_path_factory) -> tuple[Path, dict]:
    """A record written by a real tiny `fit` run (W&B off, 2 epochs on 96 images), and its JSON object."""
    base = tmp_path_factory.mktemp("fit")
    write_cifar10(base / "data", n_train=96, n_test=40, seed=0)
    argv = [f"--arch={CODE}", f"--data-dir={base / 'data'}", "--download=false", "--epochs=2", "--batch-size=32",
            "--eval-batch-size=64", "--progress=false", "--accelerator=cpu", "--wandb-mode=disabled"]  # fmt: skip
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1")
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=base, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = base / "results" / f"{CODE}-s0.json"
    return path, json.loads(path.read_text())


def test_a_real_record_round_trips(real_record):
    path, data = real_record
    record = RunRecord.read(path)
    assert record.to_dict() == data  # every field the writer wrote, the reader reads back
    assert RunRecord.from_json(record.to_json()) == record
    assert data["schema_version"] == SCHEMA_VERSION and set(record.curves) == set(CURVES)
    assert record.is_complete_for(Recipe(epochs=2, batch_size=32).hash())
    assert not record.is_complete_for(Recipe().hash())
    assert record.init_sha256 and record.recipe["tf32"] is False and "tf32" not in record.execution


def test_the_exporter_reads_what_fit_wrote(real_record, tmp_path):
    path, data = real_record
    folder = tmp_path / "records"
    for seed in SEEDS:  # the real record, and two seeds made from it through RunRecord
        record = dataclasses.replace(RunRecord.read(path), seed=seed)
        record.write(folder / f"{record.run_name}.json")
    out = tmp_path / "ext.json"
    argv = ["--from", str(folder), "--format", "extended", "--out", str(out), "--allow-partial"]
    assert run_main(export_cli.main, argv, prog=export_cli.PROG) == 0
    exported = extended.load(out)["archs"][CODE]
    run = exported["runs"][0]
    assert (exported["params"], exported["flops"], exported["ptflops_macs"]) == (
        data["params"], data["flops"], data["ptflops_macs"])  # fmt: skip
    for name in ("test_acc_best", "test_acc_final", "best_epoch", "finished_at"):
        assert run[name] == data[name], name
    assert run["epochs"] == data["epochs_completed"] and run["train_time_s"] == pytest.approx(data["train_time_s"])
    curves = extended.decode_curves(run)
    for name in CURVES:
        assert curves[name].tolist() == pytest.approx(data["curves"][name], rel=1e-6), name
    numerics = extended.load(out)["provenance"]["numerics"]
    assert numerics == [{"pipeline": "tensor", "channels_last": False, "compile": False, "sgd_impl": "auto",
                         "device": data["device"]["name"], "runs": 3}]  # fmt: skip


def test_a_version_1_record_is_upgraded(real_record):
    _, data = real_record
    old = json.loads(json.dumps(data))
    old["schema_version"] = 1
    tf32 = old["recipe"].pop("tf32")
    old["execution"]["tf32"] = tf32
    for key in ("init_sha256", "upgraded_from", "run_name"):
        old.pop(key)
    old["recipe_hash"] = "0123456789ab"  # a v1 hash: computed without tf32
    record = RunRecord.from_dict(old, "v1.json")
    assert record.recipe == data["recipe"] and record.recipe_hash == Recipe(**data["recipe"]).hash()
    assert "tf32" not in record.execution and record.upgraded_from == {
        "schema_version": 1,
        "recipe_hash": "0123456789ab",
    }
    assert record.to_dict()["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": 99}, "version 99"),
        ({"schema": "other"}, "is not a run record"),
        ({"status": "done"}, "field 'status' bad"),
        ({"run_name": "x-s0"}, "run_name 'x-s0'"),
        ({"curves": {"a": [1], "b": [1, 2]}}, "field 'curves' bad"),
    ],
)
def test_bad_records_are_refused_in_one_line(real_record, change, message):
    _, data = real_record
    with pytest.raises(RecordError, match=message) as err:
        RunRecord.from_dict({**data, **change}, "bad.json")
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_complete_for_a_recipe_is_every_rule_of_the_export(real_record):
    path, _ = real_record
    record, recipe_hash = RunRecord.read(path), Recipe(epochs=2, batch_size=32).hash()
    broken = {
        "identity": dict(arch="10000000"), "status": dict(status="failed", error="boom"),
        "recipe": dict(recipe_hash="abc"), "truncated": dict(epochs_completed=1),
        "accuracy": dict(test_acc_final=float("nan")), "complexity": dict(params=1),
    }  # fmt: skip
    for rule, change in broken.items():
        assert dataclasses.replace(record, **change).problem(recipe_hash)[0] == rule, rule
    assert record.problem(recipe_hash) is None


def test_this_checkout_records_its_commit():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout (an unpacked archive): there is no commit to record")
    assert code_version.__wrapped__()["git_commit"] == head.stdout.strip()


def test_an_installed_copy_inside_another_repository_records_no_commit(tmp_path):
    repo = tmp_path / "project"
    site = repo / ".venv" / "lib" / "site-packages"
    shutil.copytree(ROOT / "nbm_lightning", site / "nbm_lightning", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "unrelated"], check=True)
    probe = "import json, nbm_lightning.provenance as p; print(json.dumps([p.__file__, p.code_version()]))"
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    where, version = json.loads(out.stdout)
    assert Path(where).is_relative_to(site), where  # the copy, not this checkout
    assert version == {"git_commit": None, "git_dirty": None}, out.stderr
