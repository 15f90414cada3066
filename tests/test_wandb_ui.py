"""Browsing the benchmark in W&B: the architecture keys a real offline `fit` sends (config at wandb.init, summary,
history, the saved record and the picture), the workspace's panels against those keys, the benchmark artifact and
its Table, the architecture picture's content, and the one-line errors of the new options.

What W&B received is read back from the offline runs' `.wandb` files with tests/helpers/wandb_offline.py (W&B 0.31 ships
no Python reader for them: it reads the file's framing and parses each record with W&B's own protobuf).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.wandb_offline import Sent, sent_by

from nbm_lightning.arch import picture
from nbm_lightning.arch.codes import parse, unique_codes
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.bench import extended
from nbm_lightning.cli import run_main
from nbm_lightning.export import __main__ as export_cli
from nbm_lightning.records import runkeys
from nbm_lightning.records.recipe import SEEDS, Recipe
from nbm_lightning.records.run_record import SCHEMA_VERSION, RecordError, RunRecord
from nbm_lightning.runner import workspace
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.synthetic.records import grid_records, write_records

ROOT = Path(__file__).resolve().parents[1]


CODE, CANONICAL = "10201201", "10210210"  # non-canonical: its layout (as given) is what trains and is logged
LAYOUT = ["mb_k3_e3", "identity", "mb_k5_e6", "identity", "mb_k3_e3", "mb_k5_e6", "identity", "mb_k3_e3"]  # CODE
EXPORT_CODES = [unique_codes()[i] for i in (0, 1234, 3968)]
COLUMNS = ["code", *(f"layer_{i}" for i in range(1, 9)), "params", "flops", "acc_seed_0", "acc_seed_1", "acc_seed_2",
           "mean_acc", "std"]  # fmt: skip  # the benchmark Table, as the issue states it


def wandb_env(base: Path) -> dict[str, str]:
    """Offline W&B with every folder of its own (runs, data and staging, cache, config) under `base`."""
    folders = {name: base / name.lower() for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR",
                                                       "WANDB_CONFIG_DIR")}  # fmt: skip
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {**{k: str(v) for k, v in folders.items()}, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def log_in_process(argv: list[str], base: Path) -> int:
    """Run the export CLI in this process with W&B's folders under `base`; W&B's service is shut down around it.

    Before: the settings of an earlier run in this process would keep its folders. After: the service writes
    the .wandb file after `finish` returns; shutting it down waits for the file to be complete.
    """
    import wandb

    wandb.teardown()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in wandb_env(base).items():
            patch.setenv(name, value)
        patch.delenv("WANDB_API_KEY", raising=False)
        try:
            return run_main(export_cli.main, argv, prog=export_cli.PROG)
        finally:
            wandb.teardown()


def offline_run(base: Path) -> Path:
    """The one offline run folder under `base`."""
    (run_dir,) = base.rglob("offline-run-*")
    return run_dir


# ---------------------------------------------------------------- fixtures: one real fit, one artifact logged


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory) -> SimpleNamespace:
    """A real tiny `fit` of the non-canonical CODE (seed 1, 2 epochs of 96 images), W&B offline; what it sent."""
    base = tmp_path_factory.mktemp("fit")
    write_cifar10(base / "data", n_train=96, n_test=40, seed=0)
    argv = [f"--arch={CODE}", "--seed=1", f"--data-dir={base / 'data'}", "--download=false", "--epochs=2",
            "--batch-size=32", "--eval-batch-size=64", "--progress=false", "--accelerator=cpu",
            "--num-workers=0"]  # fmt: skip
    env = {**os.environ, **wandb_env(base), "NBM_CIFAR_SKIP_MD5": "1"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.fit", *argv], cwd=base, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = offline_run(base)
    record_path = base / "results" / f"{CANONICAL}-s1.json"
    return SimpleNamespace(base=base, run_dir=run_dir, sent=sent_by(run_dir), record_path=record_path,
                           record=RunRecord.read(record_path))  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> SimpleNamespace:
    """An original-format export of synthetic records of 3 codes, logged offline as the benchmark artifact."""
    base = tmp_path_factory.mktemp("export")
    write_records(base / "records", grid_records(EXPORT_CODES))
    out = base / "nbm.json"
    argv = ["--from", str(base / "records"), "--format", "original", "--out", str(out), "--allow-partial",
            "--wandb-artifact", "ent/nas-bench-macro"]  # fmt: skip
    assert log_in_process(argv, base) == 0
    run_dir = offline_run(base)
    return SimpleNamespace(base=base, out=out, data=json.loads(out.read_text()), run_dir=run_dir, sent=sent_by(run_dir))


def staged(artifact: Any, path: str) -> Path:
    """The local file an offline artifact staged for one of its entries."""
    (entry,) = [c for c in artifact.manifest.contents if c.path == path]
    return Path(entry.local_path)


def benchmark_artifact(sent: Sent) -> Any:
    """The one artifact of type benchmark an export run logged."""
    (artifact,) = [a for a in sent.artifacts if a.type == "benchmark"]
    return artifact


# ---------------------------------------------------------------- 1. architecture as config; 4. the record travels


def test_the_config_at_wandb_init_holds_the_architecture_as_given(fit_run):
    config, counts = fit_run.sent.init_config, complexity(CODE)
    assert [config[f"layer_{i}"] for i in range(1, 9)] == LAYOUT  # the code as given, not 10210210's layout
    assert (config["n_identity"], config["n_mb_k3_e3"], config["n_mb_k5_e6"], config["n_nonzero"]) == (3, 3, 2, 5)
    assert (config["arch"], config["canonical"], config["seed"]) == (CODE, CANONICAL, 1)
    assert (config["params"], config["flops"]) == (counts.params, counts.flops)
    recipe_hash = Recipe(epochs=2, batch_size=32).hash()
    assert (config["recipe_hash"], config["recipe_name"]) == (
        recipe_hash,
        f"epochs=2,batch_size=32 ({recipe_hash[:6]})",
    )
    assert set(fit_run.sent.config) - {"_wandb"} == set(runkeys.config_keys())  # config_keys() is what fit sends
    assert set(runkeys.config_keys()) - set(config) == set(runkeys.MEASURED_KEYS)  # all else at wandb.init


def test_the_record_states_the_same_values_and_the_summary_mirrors_it(fit_run):
    record, sent = fit_run.record, fit_run.sent
    assert runkeys.record_config(record).items() <= sent.config.items()
    assert (list(record.layers), record.n_nonzero, record.recipe_name) == (LAYOUT, 5, sent.config["recipe_name"])
    for key in ("test_acc_final", "test_acc_best", "best_epoch", "train_time_s"):
        assert sent.summary[key] == pytest.approx(getattr(record, key)), key
    assert sent.summary["status"] == record.status == "complete"
    assert json.loads(fit_run.record_path.read_text())["schema_version"] == SCHEMA_VERSION >= 3


def test_the_run_saves_its_record_with_curves(fit_run):
    assert runkeys.RECORD_FILE in fit_run.sent.files
    saved = RunRecord.read(fit_run.run_dir / "files" / runkeys.RECORD_FILE)
    assert saved == fit_run.record and len(saved.curves["eval_acc"]) == 2 and saved.wandb["id"] in fit_run.run_dir.name


def test_the_offline_run_holds_the_picture(fit_run):
    image = fit_run.sent.summary[runkeys.ARCH_IMAGE_KEY]
    assert (image["_type"], image["caption"]) == ("image-file", CODE) and runkeys.ARCH_IMAGE_KEY in fit_run.sent.history
    png = fit_run.run_dir / "files" / image["path"]
    assert image["path"] in fit_run.sent.files and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.read_bytes() == (fit_run.base / "checkpoints" / "architectures" / f"{CODE}.png").read_bytes()  # cache


# ---------------------------------------------------------------- record versions


def test_older_records_get_the_new_fields_derived(fit_run):
    old = fit_run.record.to_dict()
    for name in ("layers", "op_counts", "n_nonzero", "recipe_name"):
        old.pop(name)
    old["schema_version"] = 2
    upgraded = RunRecord.from_dict(old, "v2.json")
    assert upgraded == fit_run.record and upgraded.to_dict()["schema_version"] == SCHEMA_VERSION
    with pytest.raises(RecordError, match="field 'layers' bad"):
        RunRecord.from_dict({**fit_run.record.to_dict(), "layers": "mb_k3_e3"}, "bad.json")


# ---------------------------------------------------------------- 2. the workspace


def panel_keys(model: dict[str, Any]) -> list[tuple[str, set[tuple[str, str]]]]:
    """(view type, {(source, key)}) of every panel of a built workspace's model, read from W&B's own encoding."""
    found = []
    for section in model["spec"]["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            found.append((panel["viewType"], set(_keys_of(panel["viewType"], panel["config"]))))
    return found


def _accessor(text: str) -> tuple[str, str]:
    """'config:flops.value' / 'config.flops.value' / 'summary:x' / 'summary_metrics.x' / 'x' -> (source, key)."""
    for prefix, source in (("config:", "config"), ("config.", "config"), ("summary:", "summary"),
                           ("summary_metrics.", "summary")):  # fmt: skip
        if text.startswith(prefix):
            return source, text[len(prefix) :].removesuffix(".value")
    return "history", text


def _keys_of(view: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """The keys one panel reads, by its view type."""
    if view == "Parallel Coordinates Plot":
        return [_accessor(c["accessor"]) for c in config["columns"]]
    if view == "Scatter Plot":
        return [_accessor(config["xAxis"]), _accessor(config["yAxis"])]
    if view == "Parameter Importance":
        return [("summary", config["targetKey"])]
    if view in ("Run History Line Plot", "Bar Chart"):
        group = [("config", config["groupBy"].removesuffix(".value"))]
        x = [_accessor(config["xAxis"])] if "xAxis" in config else []
        return x + [_accessor(m) for m in config["metrics"]] + group
    if view == "Media Browser":
        return [("history", key) for key in config["mediaKeys"]]
    if view == "Vega2":
        (table,) = [f for f in config["userQuery"]["queryFields"][0]["fields"] if f["name"] == "summaryTable"]
        return [("export-summary", table["args"][0]["value"]), ("table", config["fieldSettings"]["value"])]
    raise AssertionError(f"a panel this test cannot read: {view}")


def test_every_key_a_panel_reads_was_sent_by_a_real_run(fit_run, exported):
    built = workspace.build(workspace.parse_target("ent/nas-bench-macro/sw1"))
    model = built._to_model().model_dump(by_alias=True, exclude_none=True)
    table = json.loads(staged(benchmark_artifact(exported.sent), "benchmark.table.json").read_text())
    sent = {"config": set(fit_run.sent.config), "summary": set(fit_run.sent.summary), "history": fit_run.sent.history,
            "export-summary": set(exported.sent.summary), "table": set(table["columns"])}  # fmt: skip
    panels = panel_keys(model)
    assert len(panels) == len(workspace.panels()) == 9 and all(keys for _, keys in panels)
    unsent = [(view, source, key) for view, keys in panels for source, key in keys if key not in sent[source]]
    assert unsent == []
    assert {f"layer_{i}" for i in range(1, 9)} | {"test_acc_final"} == {k for _, k in panels[0][1]}
    runset = model["spec"]["section"]["runSets"][0]
    pinned = [_accessor(c) for c in runset["runFeed"]["columnOrder"] if not c.startswith("run:")]
    assert len(pinned) >= 10 and [k for s, k in pinned if k not in sent[s]] == []
    assert runset["grouping"] == [{"section": "config", "name": "canonical.value"}]
    assert {f["value"] for f in runset["filters"]["filters"]} == {"sw1", runkeys.EXPORT_JOB_TYPE}


def test_workspace_dry_run_and_bad_input(capsys, monkeypatch, tmp_path):
    from nbm_lightning import sweep

    assert run_main(sweep.main, ["workspace", "ent/proj", "--dry-run"], prog=sweep.PROG) == 0
    out = capsys.readouterr().out
    assert "every run" in out and "config:layer_8, summary:test_acc_final" in out
    assert out.count("\n") == 2 + len(workspace.panels())
    for bad in ("ent", "ent/proj/sweep/extra", "ent/pr oj"):
        assert run_main(sweep.main, ["workspace", bad, "--dry-run"], prog=sweep.PROG) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and repr(bad) in err and "expected ENTITY/PROJECT[/SWEEP_ID]" in err
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: saving is refused before any request
    assert run_main(sweep.main, ["workspace", "ent/proj/sw1"], prog=sweep.PROG) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no W&B credentials" in err
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)  # the extra missing
    monkeypatch.setitem(sys.modules, "wandb_workspaces.workspaces", None)
    assert run_main(sweep.main, ["workspace", "ent/proj"], prog=sweep.PROG) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "nbm_lightning[workspace]"' in err


# ---------------------------------------------------------------- 3. the benchmark artifact


def test_the_artifact_holds_the_export_and_its_table(exported):
    artifact = benchmark_artifact(exported.sent)
    assert artifact.name.startswith("nas-bench-macro-original-best-") and "latest" in artifact.aliases
    assert staged(artifact, exported.out.name).read_bytes() == exported.out.read_bytes()
    table = json.loads(staged(artifact, "benchmark.table.json").read_text())
    assert table["columns"] == COLUMNS
    assert [row[0] for row in table["data"]] == EXPORT_CODES
    for row in table["data"]:
        want = exported.data[row[0]]
        assert row[1:9] == [parse(row[0]).layers[i].op.name for i in range(8)]
        assert row[9:] == [want["params"], want["flops"], *want["test_acc"], want["mean_acc"], want["std"]]
    meta = json.loads(artifact.metadata)
    assert meta["metric"] == "best" and meta["recipe_hash"] == Recipe().hash() and meta["codes"] == 3
    assert meta["counts"]["codes"] == 3 and meta["format"] == "original"
    assert exported.sent.summary["benchmark"]["_type"] == "table-file"  # for the workspace's histogram


def test_log_only_an_existing_extended_export(exported, tmp_path):
    out = tmp_path / "ext.json"
    argv = ["--from", str(exported.base / "records"), "--format", "extended", "--out", str(out), "--allow-partial"]
    assert run_main(export_cli.main, argv, prog=export_cli.PROG) == 0
    assert log_in_process(["--log-only", str(out), "--wandb-artifact", "ent/nas-bench-macro"], tmp_path) == 0
    artifact = benchmark_artifact(sent_by(offline_run(tmp_path)))
    table = json.loads(staged(artifact, "benchmark.table.json").read_text())
    archs = extended.load(out)["archs"]
    for row in table["data"]:
        acc = [run["test_acc_final"] for run in archs[row[0]]["runs"]]  # the extended file's primary metric
        assert row[11:14] == acc and row[14] == pytest.approx(sum(acc) / 3)
    assert json.loads(artifact.metadata)["metric"] == "final" and artifact.name.endswith(Recipe().hash())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--from", ".", "--format", "original", "--out", "o.json", "--wandb-artifact", "only-entity"],
         "invalid --wandb-artifact 'only-entity': expected ENTITY/PROJECT"),
        (["--log-only", "/no/such/export.json", "--wandb-artifact", "ent/proj"], "cannot read export file"),
        (["--log-only", "/no/such/export.json"], "--log-only FILE needs --wandb-artifact"),
        (["--format", "original", "--out", "o.json"], "the following arguments are required: --from"),
    ],
)  # fmt: skip
def test_bad_artifact_options_exit_2_in_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = run_main(export_cli.main, argv, prog=export_cli.PROG)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err and not (tmp_path / "o.json").exists()


# ---------------------------------------------------------------- 5. the architecture picture


def test_the_picture_draws_one_labelled_block_per_layer_and_the_stages():
    figure = picture.draw(parse(CODE))
    (axes,) = figure.axes
    blocks = {p.get_gid(): p for p in axes.patches}
    labels = {t.get_gid(): t.get_text() for t in axes.texts}
    assert list(blocks) == ["stem", *(f"layer_{i}" for i in range(1, 9)), "head"]
    xs = [blocks[f"layer_{i}"].get_x() for i in range(1, 9)]
    assert xs == sorted(xs)
    words = {"identity": "identity", "mb_k3_e3": "MB k3 e3", "mb_k5_e6": "MB k5 e6"}
    for layer, op in zip(parse(CODE).layers, LAYOUT):
        text = labels[f"layer_{layer.index + 1}_label"]
        assert words[op] in text and f"{layer.out_channels} ch" in text and f"{layer.out_size}x{layer.out_size}" in text
    colors = {op: {blocks[f"layer_{i + 1}"].get_facecolor() for i, o in enumerate(LAYOUT) if o == op} for op in words}
    assert all(len(c) == 1 for c in colors.values()) and len(set.union(*colors.values())) == 3  # a colour per op
    assert "s2" in labels["layer_3_label"] and "+x" in labels["layer_5_label"] and "32 ch" in labels["stem_label"]
    assert "1280 ch" in labels["head_label"] and "stage 3: 256 ch, 4x4" == labels["stage_3"]
    bounds = sorted(line.get_xdata()[0] for line in axes.lines if line.get_gid() == "stage_boundary")
    right = {i: blocks[f"layer_{i}"].get_x() + blocks[f"layer_{i}"].get_width() for i in (2, 5)}
    assert len(bounds) == 2 and right[2] < bounds[0] < xs[2] and right[5] < bounds[1] < xs[5]


def test_without_matplotlib_a_run_gets_a_notice_and_no_picture(tmp_path, monkeypatch, capsys):
    from nbm_lightning.training.callbacks import log_architecture

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    logged = []
    log_architecture(SimpleNamespace(log=logged.append), CODE, tmp_path, {"params": 1, "flops": 2})
    err = capsys.readouterr().err
    assert logged == [] and err.count("\n") == 1 and 'pip install "nbm_lightning[plots]"' in err
    assert not list(tmp_path.iterdir())


def test_runkeys_are_unique_and_the_summary_keys_are_record_fields():
    keys = runkeys.config_keys()
    assert len(keys) == len(set(keys)) and set(runkeys.ARCH_KEYS) <= set(keys)
    fields = set(RunRecord.__dataclass_fields__)
    assert set(runkeys.SUMMARY_KEYS) <= fields and set(runkeys.IDENTITY_KEYS) - {"run_name"} <= fields
    assert runkeys.recipe_name({"epochs": 50}, "x") == "published" and SEEDS == (0, 1, 2)
