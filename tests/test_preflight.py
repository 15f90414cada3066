"""Input found before any work (one line, exit 2, nothing written), warnings for settings that mislead, and a run's
output holding only the project's own lines."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbm_lightning import fit
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.cli import run_main
from nbm_lightning.records.recipe import Recipe
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.synthetic.records import make_record, write_records

ROOT = Path(__file__).resolve().parents[1]

TINY = ["--arch=00000000", "--download=false", "--epochs=2", "--batch-size=32", "--eval-batch-size=64",
        "--progress=false", "--accelerator=cpu", "--num-workers=0", "--wandb-mode=disabled"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=2000, n_test=40, learnable=True, seed=0)
    return root


@pytest.fixture
def in_tmp(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    """A clean working folder with synthetic data accepted and no W&B credentials."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBM_CIFAR_SKIP_MD5", "1")
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no ~/.netrc credentials either
    return tmp_path


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--precision=16-mixed"], "bad --precision '16-mixed' on a CPU"),
        (["--accelerator=gpu"], "bad --accelerator 'gpu': no CUDA GPU"),
        (["--val-size=5000"], "invalid val_size 5000: expected an int below the 2000 training images"),
        (["--wandb-mode=online"], "bad --wandb-mode 'online': no W&B credentials"),
        (["--results-dir=" + "r" * 260], "bad --results-dir"),
        (["--ckpt-dir=" + "c" * 260], "bad --ckpt-dir"),
        (["--results-dir="], "invalid results_dir ''"),
    ],
    ids=["fp16-on-cpu", "gpu-absent", "val-size", "online-no-key", "long-results-dir", "long-ckpt-dir", "empty-dir"],
)
def test_bad_settings_exit_2_in_one_line_before_any_work(in_tmp, data, capsys, extra, fragment):
    argv = [*TINY, f"--data-dir={data}", *extra]
    if extra[0].startswith("--accelerator"):
        argv.remove("--accelerator=cpu")
    try:
        status = run_main(fit.main, argv, prog=fit.PROG)
    except SystemExit as exc:  # argument errors exit from the parser
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, err
    assert sorted(p.name for p in in_tmp.iterdir()) == [], "nothing may be written"


def test_a_complete_record_without_its_final_accuracy_is_trained_over(in_tmp, data, capsys):
    counts = complexity("00000000")
    record = make_record("00000000", 0, (counts.params, counts.flops), 50.0, 40.0, curve_epochs=2,
                         recipe=Recipe(epochs=2, batch_size=32, train_limit=64))  # fmt: skip
    del record["test_acc_final"]  # passes the schema check (an optional field), but is not a complete run
    write_records(in_tmp / "results", [record])
    assert run_main(fit.main, [*TINY, f"--data-dir={data}", "--train-limit=64"], prog=fit.PROG) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err
    assert json.loads((in_tmp / "results" / "00000000-s0.json").read_text())["test_acc_final"] is not None


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--epochs=1", "--schedule=published"], "epoch(s) 1 of 1 train at learning rate 0"),
        (["--channels-last=true"], "--channels-last on a CPU"),
    ],  # fmt: skip
    ids=["zero-lr", "channels-last-on-cpu"],
)
def test_misleading_settings_warn_in_one_line(in_tmp, data, capsys, extra, fragment):
    assert run_main(fit.main, [*TINY, f"--data-dir={data}", "--train-limit=64", *extra], prog=fit.PROG) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and fragment in warnings[0]


PROJECT_LINES = [
    r"^W&B offline \(WANDB_MODE=offline\): upload later with `wandb sync \S+`$",
    r"^epoch \d+/\d+ lr [\d.]+ train loss [\d.]+ acc [\d.]+% \| eval loss [\d.]+ acc [\d.]+% \| [\d.]+s$",
    r"^\d{8}-s\d+: test acc final [\d.]+% best [\d.]+%; record: \S+$",
    r"^\d{8}-s\d+: complete in [\d.]+ s \(training [\d.]+ s, fixed cost [\d.]+ s\)$",
]


def test_a_runs_output_is_the_projects_own_lines(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(NBM_CIFAR_SKIP_MD5="1", WANDB_MODE="offline", HOME=str(tmp_path))  # W&B not silenced
    argv = [a for a in TINY if not a.startswith("--wandb-mode")] + [f"--data-dir={data}", "--train-limit=64"]
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    foreign = [line for line in lines if not any(re.match(p, line) for p in PROJECT_LINES)]
    assert foreign == [] and len(lines) == 5, lines


def test_an_unreachable_server_with_credentials_is_not_called_no_credentials(monkeypatch, capsys):
    from nbm_lightning.records import tracking
    from nbm_lightning.runner import preflight

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # restored after the test: the fallback sets it
    monkeypatch.setattr(tracking, "_FALLBACK", {})
    monkeypatch.setattr(preflight, "_reachable", lambda url: False)
    preflight.wandb_usable("auto")
    run = SimpleNamespace(dir="/tmp/wandb/offline-run-x/files")
    note = tracking.offline_note(run, "auto")
    assert note.startswith("W&B offline (W&B server https://api.wandb.ai unreachable, credentials found)"), note
    assert tracking.offline_note(run, "offline").startswith("W&B offline (--wandb-mode offline)")
    assert "unreachable within 5 s: logging offline" in capsys.readouterr().err


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _export_argv(tmp_path: Path, out: Path) -> list[str]:
    counts = complexity("00000000")
    records = [make_record("00000000", seed, (counts.params, counts.flops), 50.0, 40.0, curve_epochs=2,
                           recipe=Recipe(epochs=2)) for seed in range(3)]  # fmt: skip
    write_records(tmp_path / "results", records)
    return ["--from", str(tmp_path / "results"), "--format", "original", "--allow-partial", "--out", str(out)]


@pytest.mark.parametrize("failure", ["file-as-folder", "disk-full"])
@pytest.mark.parametrize("command", ["export", "sweep-make", "arch-plot"])
def test_a_failed_write_is_one_line_and_leaves_nothing(command, failure, tmp_path, monkeypatch, capsys):
    from nbm_lightning import sweep
    from nbm_lightning.arch import __main__ as arch
    from nbm_lightning.export import __main__ as export

    (tmp_path / "afile").write_text("")
    folder = tmp_path / ("afile" if failure == "file-as-folder" else "out")
    if failure == "disk-full":
        folder.mkdir()
        monkeypatch.setattr(os, "fsync", _enospc)  # what a full disk raises while the temporary file is written
    main, prog, argv = {
        "export": (export.main, export.PROG, lambda: _export_argv(tmp_path, folder / "bench.json")),
        "sweep-make": (sweep.main, sweep.PROG, lambda: ["make", f"--out={folder / 'all.yaml'}"]),
        "arch-plot": (arch.main, arch.PROG, lambda: ["00000000", f"--plot={folder / 'arch.png'}"]),
    }[command]
    assert run_main(main, argv(), prog=prog) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write --" in err and "nothing written" in err and "Traceback" not in err
    assert ("No space left on device" if failure == "disk-full" else "afile") in err, err
    assert (tmp_path / "afile").read_text() == "" and (failure == "file-as-folder" or list(folder.iterdir()) == [])


def test_a_truncated_data_file_is_one_line_naming_it(in_tmp, data, tmp_path_factory, capsys):
    broken = tmp_path_factory.mktemp("broken")
    shutil.copytree(data, broken, dirs_exist_ok=True)
    batch = broken / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:1000])
    assert run_main(fit.main, [*TINY, f"--data-dir={broken}"], prog=fit.PROG) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"CIFAR-10 file {batch} cannot be decoded" in err and "truncated" in err, err
    assert not (in_tmp / "results").exists()


class _Crafted:
    """Unpickling it would create the file `path` (a pickle may name any callable)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_data_file_runs_nothing_and_is_one_line(in_tmp, data, tmp_path_factory, capsys):
    """The CIFAR-10 files are unpickled as numpy arrays only: unchecked data (NBM_CIFAR_SKIP_MD5) can run no code."""
    crafted = tmp_path_factory.mktemp("crafted")
    shutil.copytree(data, crafted, dirs_exist_ok=True)
    batch, ran = crafted / "cifar-10-batches-py" / "data_batch_1", crafted / "code-ran"
    batch.write_bytes(pickle.dumps({"data": _Crafted(str(ran)), "labels": [0]}))
    assert run_main(fit.main, [*TINY, f"--data-dir={crafted}"], prog=fit.PROG) == 2
    err = capsys.readouterr().err
    assert not ran.exists()
    assert err.count("\n") == 1 and "cannot be decoded" in err and "is not plain data" in err, err
    assert not (in_tmp / "results").exists()
