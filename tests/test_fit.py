"""The training job: CLI parsing, schedule, end-to-end runs, records, resume, skip and failure paths."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nbm_lightning.arch import codes as ss
from nbm_lightning.fit import build_parser, resolve
from nbm_lightning.records.job import GRID_SIZE, index_to_pair
from nbm_lightning.records.recipe import Execution, Recipe
from nbm_lightning.synthetic.cifar10 import write_cifar10

ROOT = Path(__file__).resolve().parents[1]
RECORD_FIELDS = {
    "schema",
    "status",
    "arch",
    "canonical",
    "seed",
    "recipe",
    "recipe_hash",
    "execution",
    "params",
    "flops",
    "ptflops_macs",
    "test_acc_final",
    "test_acc_best",
    "best_epoch",
    "curves",
    "wall_time_s",
    "train_time_s",
    "versions",
    "device",
    "wandb",
    "started_at",
    "finished_at",
    "eval_split",
    "epochs_completed",
}
CURVES = {"epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "epoch_time_s"}


def _resolve(*argv: str):
    return resolve(build_parser().parse_args(list(argv)))


# ---------------------------------------------------------------- schedule, config, CLI parsing
def test_published_schedule_values():
    r = Recipe()
    assert r.lr_at(0) == pytest.approx(0.05 * (1 + math.cos(math.pi / 50)), abs=1e-15)
    assert r.lr_at(24) == pytest.approx(0.05 * (1 + math.cos(math.pi * 25 / 50)), abs=1e-15)
    assert r.lr_at(49) == pytest.approx(0.0, abs=1e-15)
    lrs = [r.lr_at(e) for e in range(50)]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and max(lrs) < 0.1


def test_standard_schedule_values():
    r = Recipe(schedule="standard", epochs=4, lr=0.2)
    assert [r.lr_at(e) for e in range(4)] == pytest.approx(
        [0.2, 0.1 * (1 + math.cos(math.pi / 4)), 0.1, 0.1 * (1 + math.cos(3 * math.pi / 4))]
    )
    with pytest.raises(ValueError, match="epoch 4"):
        r.lr_at(4)


def test_default_yaml_is_the_builtin_default():
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    recipe = Recipe(**{k: v for k, v in data.items() if k in Recipe.__dataclass_fields__})
    execution = Execution(**{k: v for k, v in data.items() if k in Execution.__dataclass_fields__})
    assert recipe == Recipe() and execution == Execution()
    assert set(data) == set(Recipe.__dataclass_fields__) | set(Execution.__dataclass_fields__)
    assert (
        _resolve("--arch=12012012", "--config", str(ROOT / "configs" / "default.yaml")).recipe.hash() == Recipe().hash()
    )


def test_smoke_yaml_is_short():
    job = _resolve("--arch", "12012012", "--config", str(ROOT / "configs" / "smoke.yaml"))
    assert job.recipe.epochs <= 3 and 0 < job.recipe.train_limit <= 1024 and job.execution.results_dir != "results"


def test_agent_style_args_keep_leading_zeros_and_override_config():
    job = _resolve(
        "--arch=01201201",
        "--seed=2",
        "--config",
        str(ROOT / "configs" / "smoke.yaml"),
        "--epochs=3",
        "--batch_size=32",
        "--download=false",
    )
    assert (job.arch, job.seed, job.canonical) == ("01201201", 2, "01210210")
    assert job.recipe.epochs == 3 and job.recipe.batch_size == 32 and job.execution.download is False
    assert job.record_path == Path("results/smoke/01210210-s2.json")
    assert _resolve("--arch", "10201201", "--batch-size", "64").recipe.batch_size == 64


def test_index_mapping_first_and_last():
    first, last = _resolve("--index=0"), _resolve("--index", str(GRID_SIZE - 1))
    assert GRID_SIZE == 11907
    assert (first.arch, first.seed) == (ss.unique_codes()[0], 0) == ("00000000", 0)
    assert (last.arch, last.seed) == (ss.unique_codes()[-1], 2)
    assert index_to_pair(3 * 100 + 1) == (ss.unique_codes()[100], 1)
    assert {index_to_pair(i) for i in range(GRID_SIZE)} == {(c, s) for c in ss.unique_codes() for s in (0, 1, 2)}


def test_recipe_hash_tracks_recipe_not_execution():
    a = _resolve("--arch=12012012")
    assert a.recipe.hash() == _resolve("--arch=12012012", "--pipeline=torchvision", "--results-dir=x").recipe.hash()
    assert a.recipe.hash() != _resolve("--arch=12012012", "--epochs=49").recipe.hash()


def _cli(
    *argv: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbm_lightning.fit", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_every_option_with_default():
    out = _cli("--help").stdout
    for name in list(Recipe.__dataclass_fields__) + list(Execution.__dataclass_fields__):
        assert f"--{name.replace('_', '-')}" in out, name
    for flag in ("--arch", "--seed", "--index", "--config", "--force"):
        assert flag in out
    assert "(default: 50)" in out and "(default: 'tensor')" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--arch", "1201201"], "'1201201'"),
        (["--arch=12012013"], "'12012013'"),
        (["--arch=12012012", "--epochs=0"], "epochs 0"),
        (["--arch=12012012", "--pipeline=fast"], "pipeline 'fast'"),
        (["--arch=12012012", "--lr=abc"], "lr 'abc'"),
        (["--index=11907"], "index 11907"),
        (["--index=5", "--arch=12012012"], "--index"),
        ([], "--arch"),
        (["--arch=12012012", "--config=nope.yaml"], "nope.yaml"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, argv, fragment):
    proc = _cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no record, no W&B run, no checkpoint


def test_unknown_config_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 1\nlearning_rate: 0.1\n")
    proc = _cli("--arch=12012012", f"--config={bad}", cwd=tmp_path)
    assert proc.returncode == 2 and "learning_rate" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- end to end on a tiny CIFAR-10
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=96, n_test=40, seed=0)
    return root


@pytest.fixture(scope="module")
def learnable_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar_learnable")
    write_cifar10(root, n_train=512, n_test=256, learnable=True, seed=1)
    return root


def _env(wandb_mode: str = "offline") -> dict:
    env = dict(os.environ, NBM_CIFAR_SKIP_MD5="1", WANDB_MODE=wandb_mode, WANDB_SILENT="true")
    env.pop("WANDB_API_KEY", None)
    return env


def _train(
    tmp_path: Path, data: Path, *extra: str, epochs: int = 2, wandb_mode: str = "offline", **kw
) -> subprocess.CompletedProcess:
    argv = [
        f"--data-dir={data}",
        "--download=false",
        f"--epochs={epochs}",
        "--batch-size=32",
        "--eval-batch-size=64",
        "--progress=false",
        "--accelerator=cpu",
        "--num-workers=0",
        *extra,
    ]
    return _cli(*argv, cwd=tmp_path, env=_env(wandb_mode), **kw)


@pytest.mark.parametrize("pipeline, code", [("tensor", "10000000"), ("torchvision", "00010000")])
def test_end_to_end_record_and_offline_wandb(tmp_path, tiny_data, published, pipeline, code):
    proc = _train(tmp_path, tiny_data, f"--arch={code}", "--seed=1", f"--pipeline={pipeline}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = tmp_path / "results" / f"{code}-s1.json"
    assert str(Path("results") / f"{code}-s1.json") in proc.stdout
    record = json.loads(path.read_text())
    assert RECORD_FIELDS <= set(record) and set(record["curves"]) == CURVES
    assert record["status"] == "complete" and record["error"] is None
    assert (record["arch"], record["canonical"], record["seed"]) == (code, code, 1)
    assert (record["params"], record["flops"]) == (published[code]["params"], published[code]["flops"])
    assert record["ptflops_macs"] == record["flops"] + 10
    assert record["recipe"]["epochs"] == 2 and record["recipe_hash"] == Recipe(epochs=2, batch_size=32).hash()
    assert record["execution"]["pipeline"] == pipeline and record["epochs_completed"] == 2
    acc = record["curves"]["eval_acc"]
    assert (
        record["test_acc_final"] == acc[-1]
        and record["test_acc_best"] == max(acc)
        and acc[record["best_epoch"]] == max(acc)
    )
    assert all(0 <= a <= 100 and a * 40 / 100 == pytest.approx(round(a * 40 / 100)) for a in acc)  # k/40 in percent
    assert record["curves"]["lr"] == pytest.approx([Recipe(epochs=2).lr_at(e) for e in range(2)])
    assert record["versions"]["torch"] and record["device"]["type"] == "cpu"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and record["wandb"]["id"] in runs[0].name and list(runs[0].glob("*.wandb"))
    assert "wandb sync" in proc.stdout
    assert not (tmp_path / "checkpoints" / f"{code}-s1-{record['recipe_hash']}" / "last.ckpt").exists()


def test_noncanonical_code_recorded_under_canonical_name_and_skip(tmp_path, tiny_data):
    proc = _train(tmp_path, tiny_data, "--arch=00001000", epochs=1, wandb_mode="disabled")
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = tmp_path / "results" / "00010000-s0.json"
    record = json.loads(path.read_text())
    assert (record["arch"], record["canonical"]) == ("00001000", "00010000") and record["wandb"] is None
    assert not (tmp_path / "wandb").exists()
    mtime = path.stat().st_mtime_ns
    again = _train(tmp_path, tiny_data, "--arch=00010000", epochs=1, wandb_mode="disabled")  # same canonical key
    assert again.returncode == 0 and "nothing to do" in again.stdout and path.stat().st_mtime_ns == mtime
    other = _train(tmp_path, tiny_data, "--arch=00010000", epochs=2, wandb_mode="disabled")  # another recipe
    assert other.returncode == 2 and "another recipe" in other.stderr and path.stat().st_mtime_ns == mtime
    forced = _train(tmp_path, tiny_data, "--arch=00001000", "--force", epochs=1, wandb_mode="disabled")
    assert forced.returncode == 0 and path.stat().st_mtime_ns != mtime


def test_missing_data_is_a_clear_error(tmp_path):
    empty = tmp_path / "nodata"
    proc = _train(tmp_path, empty, "--arch=12012012")
    assert proc.returncode == 2 and str(empty) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and not (tmp_path / "wandb").exists()


def test_nan_loss_fails_the_run(tmp_path, tiny_data):
    proc = _train(tmp_path, tiny_data, "--arch=00000000", "--lr=1e30", wandb_mode="disabled")
    assert proc.returncode == 1 and "loss" in proc.stderr and "FAILED" in proc.stderr
    record = json.loads((tmp_path / "results" / "00000000-s0.json").read_text())
    assert record["status"] == "failed" and "NonFiniteLossError" in record["error"]


KILL_AFTER_EPOCH = """
import os, signal, sys
from nbm_lightning.training import callbacks
from nbm_lightning import fit
save = callbacks.EpochCheckpoint.on_validation_end
def save_then_die(self, trainer, module):
    save(self, trainer, module)
    if not trainer.sanity_checking and trainer.current_epoch == int(os.environ["KILL_AFTER_EPOCH"]):
        os.kill(os.getpid(), signal.SIGKILL)  # right after that epoch's checkpoint, as a crash would
callbacks.EpochCheckpoint.on_validation_end = save_then_die
sys.exit(fit.main(sys.argv[1:]))
"""


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny_data):
    argv = ["--arch=00000000", "--seed=3", "--batch-size=32", "--keep-checkpoint=true"]
    (tmp_path / "a").mkdir()
    straight = _train(tmp_path / "a", tiny_data, *argv, epochs=3, wandb_mode="disabled")
    assert straight.returncode == 0, straight.stderr[-3000:]
    base = tmp_path / "b"
    base.mkdir()
    fit_argv = [f"--data-dir={tiny_data}", "--download=false", "--epochs=3", "--progress=false",
                "--accelerator=cpu", "--num-workers=0", "--eval-batch-size=64", *argv]  # fmt: skip
    env = dict(_env("disabled"), KILL_AFTER_EPOCH="0")  # killed after epoch 1 of 3, deterministically
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_EPOCH, *fit_argv], cwd=base, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert list((base / "checkpoints").glob("*/last.ckpt")) and not (base / "results" / "00000000-s3.json").exists()
    resumed = _cli(*fit_argv, cwd=base, env=_env("disabled"))
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "a" / "results" / "00000000-s3.json").read_text())
    b = json.loads((base / "results" / "00000000-s3.json").read_text())
    assert b["status"] == "complete" and b["resumed"] is True and b["epochs_completed"] == 3
    assert b["curves"]["epoch"] == [0, 1, 2]
    for name in ("train_loss", "eval_acc", "lr"):
        assert b["curves"][name] == pytest.approx(a["curves"][name], rel=1e-5), name


def test_training_learns(tmp_path, learnable_data):
    proc = _train(
        tmp_path, learnable_data, "--arch=00000000", "--batch-size=32", "--lr=0.05", epochs=4, wandb_mode="disabled"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "00000000-s0.json").read_text())
    losses = record["curves"]["train_loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert record["test_acc_final"] > 40.0  # chance is 10%


# ---------------------------------------------------------------- W&B mode: never a prompt
def test_wandb_mode_resolution(tmp_path, monkeypatch):
    from nbm_lightning.records.tracking import has_credentials, resolve_mode

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert not has_credentials() and resolve_mode("auto") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert has_credentials() and resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_credentials()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled" and resolve_mode("offline") == "offline"
