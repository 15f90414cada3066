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

from nbm_lightning.bench import extended
from nbm_lightning.cli import run_main
from nbm_lightning.core.provenance import code_version
from nbm_lightning.export import __main__ as export_cli
from nbm_lightning.records import record_schema, runkeys
from nbm_lightning.records.outcome import Outcome
from nbm_lightning.records.recipe import SEEDS, Recipe
from nbm_lightning.records.run_record import CURVES, RULES, SCHEMA_VERSION, RecordError, RunRecord
from nbm_lightning.synthetic.cifar10 import write_cifar10

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
        ({"status": "done"}, "field 'status' bad \\(expected one of complete, failed, preempted, got 'done'\\)"),
        ({"schema_version": 1, "recipe": {"lr": -1.0}}, "its recipe is not valid"),
        ({"run_name": "x-s0"}, "run_name 'x-s0'"),
        ({"curves": {"a": [1], "b": [1, 2]}}, "field 'curves' bad"),
    ],
)
def test_bad_records_are_refused_in_one_line(real_record, change, message):
    _, data = real_record
    with pytest.raises(RecordError, match=message) as err:
        RunRecord.from_dict({**data, **change}, "bad.json")
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_every_stored_field_is_checked_on_reading_in_the_record_s_order(real_record):
    stored = [f.name for f in dataclasses.fields(RunRecord) if f.compare]  # not file_name, from_summary
    assert list(record_schema.TYPES) == stored
    _, data = real_record
    with pytest.raises(RecordError, match="field 'recipe_hash' missing"):
        RunRecord.from_dict({k: v for k, v in data.items() if k != "recipe_hash"}, "short.json")


def test_a_record_holds_its_status_as_text_for_w_and_b(real_record):
    record = dataclasses.replace(RunRecord.read(real_record[0]), status=Outcome.PREEMPTED)  # as the trainer builds it
    sent = runkeys.summary(record)["status"]
    assert type(record.status) is str and type(sent) is str and sent == "preempted"  # W&B writes an enum by name


def test_complete_for_a_recipe_is_every_rule_of_the_export(real_record):
    path, _ = real_record
    record, recipe_hash = RunRecord.read(path), Recipe(epochs=2, batch_size=32).hash()
    other = {**record.recipe, "lr": 0.05}  # a sound record of another recipe
    broken = {
        "identity": dict(arch="10000000"), "status": dict(status="failed", error="boom"),
        "recipe": dict(recipe=other, recipe_hash=Recipe(**other).hash()),
        "truncated": dict(epochs_completed=1), "accuracy": dict(test_acc_final=float("nan")), "data": dict(data={}),
        "complexity": dict(params=1), "values": dict(train_time_s=-1.0),
    }  # fmt: skip
    assert tuple(broken) == RULES
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
    probe = "import json, nbm_lightning.core.provenance as p; print(json.dumps([p.__file__, p.code_version()]))"
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    where, version = json.loads(out.stdout)
    assert Path(where).is_relative_to(site), where  # the copy, not this checkout
    assert version == {"git_commit": None, "git_dirty": None}, out.stderr


# ---------------------------------------------------------------- trust nothing that is read (issue 17)


def _sound(tmp_path: Path, seed: int = 0, code: str = CODE) -> dict:
    """A sound complete record of (code, seed) under a 2-epoch recipe, written to tmp_path/results."""
    from nbm_lightning.arch.complexity import complexity
    from nbm_lightning.synthetic.records import make_record, write_records

    counts = complexity(code)
    record = make_record(code, seed, (counts.params, counts.flops), 60.0, 55.0, recipe=Recipe(epochs=2))
    write_records(tmp_path / "results", [record])
    return record


def test_a_record_copied_to_another_seed_is_not_done_and_its_checkpoint_stays(tmp_path, capsys):
    from nbm_lightning.arch.codes import unique_codes
    from nbm_lightning.records.job import resolve_job
    from nbm_lightning.runner.worker import Worker

    code = unique_codes()[4]  # fit --index 14 is (code, seed 2)
    _sound(tmp_path, 0, code)
    results = tmp_path / "results"
    shutil.copy(results / f"{code}-s0.json", results / f"{code}-s2.json")
    job = resolve_job({"epochs": 2, "results_dir": str(results), "ckpt_dir": str(tmp_path / "ckpt")}, index=14)
    job.ckpt_dir.mkdir(parents=True)
    (job.ckpt_dir / "last.ckpt").write_bytes(b"progress")
    assert (
        Worker.__new__(Worker)._skip_done(job) is False
    )  # (no data cache needed) landed main: skipped, reporting s0's accuracy, checkpoint deleted
    assert (job.ckpt_dir / "last.ckpt").exists()
    assert f"{code}-s2.json' does not match the run it holds, {code}-s0" in capsys.readouterr().err


def test_a_newer_record_is_refused_never_trained_or_written_over(tmp_path, capsys):
    from nbm_lightning import fit, sweep
    from nbm_lightning.export import __main__ as export_cli

    data = _sound(tmp_path)
    path = tmp_path / "results" / f"{CODE}-s0.json"
    path.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    before = path.read_bytes()
    argv = [f"--arch={CODE}", "--epochs=2", f"--results-dir={tmp_path / 'results'}", f"--data-dir={tmp_path}"]
    for force in ([], ["--force"]):  # landed main: retrained over it (with or without --force)
        assert run_main(fit.main, [*argv, *force], prog=fit.PROG) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"run record version {SCHEMA_VERSION + 1}" in err and "not trained" in err
    out = tmp_path / "missing.yaml"
    assert run_main(sweep.main, ["make", "--missing", str(tmp_path / "results"), "--out", str(out)], prog="sweep") == 2
    argv = ["--from", str(tmp_path / "results"), "--format", "original", "--out", str(out), "--allow-partial"]
    assert run_main(export_cli.main, argv, prog=export_cli.PROG) == 2
    assert capsys.readouterr().err.count("newer nbm_lightning") == 2
    assert path.read_bytes() == before and not out.exists()


def test_a_failed_or_preempted_run_never_replaces_a_complete_record(tmp_path, capsys):
    from types import SimpleNamespace

    from nbm_lightning.records.recipe import Execution
    from nbm_lightning.training.callbacks import RunPreempted, RunRecorder

    data = _sound(tmp_path)
    path = tmp_path / "results" / f"{CODE}-s0.json"
    before = path.read_bytes()
    complete = RunRecord.from_dict(data)
    recorder = RunRecorder(path, {}, Recipe(epochs=2), Execution())
    trainer = SimpleNamespace(logger=None)
    for status, ending in (("preempted", RunPreempted("preempted by SIGTERM")), ("failed", RuntimeError("boom"))):
        recorder.build = lambda *args, status=status: dataclasses.replace(complete, status=status, error="stopped")
        recorder.on_exception(trainer, None, ending)  # landed main: the complete record is replaced
        assert path.read_bytes() == before and recorder.kept
        assert f"kept the complete record there; this run ended {status} (stopped)" in capsys.readouterr().err
    recorder.build = lambda *args: dataclasses.replace(complete, test_acc_final=56.0)
    recorder.write(trainer, None, "complete")  # a run that completes replaces it
    assert RunRecord.read(path).test_acc_final == 56.0 and not recorder.kept


def test_record_folders_read_regular_files_only(tmp_path, capsys):
    import threading

    from nbm_lightning.export.sources import read_folder
    from nbm_lightning.runner.missing import done_pairs

    _sound(tmp_path)
    results = tmp_path / "results"
    os.mkfifo(results / "00000001-s0.json")  # landed main: export and sweep make --missing hang on it
    (results / "folder.json").mkdir()
    found: dict = {}
    thread = threading.Thread(
        target=lambda: found.update(runs=read_folder(results), done=done_pairs([results], Recipe(epochs=2).hash())),
        daemon=True,
    )
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "a reader hangs on a FIFO"
    assert [run.pair for run in found["runs"]] == [(CODE, 0)] and found["done"] == {(CODE, 0)}
    err = capsys.readouterr().err
    for name in ("00000001-s0.json", "folder.json"):
        assert err.count(f"skipped {results / name}: not a regular file") == 2


def test_the_data_fingerprint_hashes_whole_files_once_per_size_and_mtime(tmp_path):
    from nbm_lightning.training.cifar10_files import fingerprint

    for name in ("a", "b"):
        write_cifar10(tmp_path / name, n_train=150, n_test=10, seed=0)  # data_batch_* files of ~92 KB
    batch = tmp_path / "b" / "cifar-10-batches-py" / "data_batch_1"
    assert batch.stat().st_size > 70_000
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")
    stat = batch.stat()
    with open(batch, "r+b") as handle:  # a byte past the first 64 KiB, size and mtime kept
        handle.seek(70_000)
        byte = handle.read(1)
        handle.seek(70_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprint(tmp_path / "b") == fingerprint(tmp_path / "a")  # cached by (path, size, mtime): not reread
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = fingerprint(tmp_path / "b")  # landed main: equal (it hashed the first 64 KiB only)
    assert changed["files_sha256"] != fingerprint(tmp_path / "a")["files_sha256"]
    assert changed["kind"] == "sha256/whole-files" and len(changed["files_sha256"]) == 64


def test_old_and_new_data_fingerprints_never_compare_equal(tmp_path):
    from nbm_lightning.core.errors import UserError
    from nbm_lightning.export.rules import one_dataset
    from nbm_lightning.export.sources import Run

    new = RunRecord.from_dict(_sound(tmp_path))
    old = dataclasses.replace(new, seed=1, data={k: v for k, v in new.data.items() if k != "kind"})
    one_dataset([Run("a", new), Run("b", dataclasses.replace(new, seed=2))])
    with pytest.raises(UserError, match="sha256/first-64KiB, an older fingerprint: retrain or export these runs apart"):
        one_dataset([Run("a", new), Run("b", old)])


def test_only_a_wandb_summary_may_leave_epochs_completed_unknown(tmp_path):
    record = dataclasses.replace(RunRecord.from_dict(_sound(tmp_path)), epochs_completed=None, curves=None)
    recipe_hash = Recipe(epochs=2).hash()
    assert record.problem(recipe_hash) == ("truncated", "truncated: epochs_completed unknown (null) of 2 epochs")
    assert dataclasses.replace(record, from_summary=True).problem(recipe_hash) is None
    no_data = dataclasses.replace(record, from_summary=True, data=None)  # a W&B run still needs its fingerprint
    assert no_data.problem(recipe_hash)[0] == "data"
