"""Synthetic complete run records for tests, benchmarks and one's own benchmarks (via RunRecord).

`make_record` builds one (code, seed) record as the JSON object on disk, `make_val_record` one of a recipe holding
out a validation split, `grid_records` every seed of many codes (accuracies from the code, counts from
`complexity`), `write_records` writes them to a results folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..records.recipe import SEEDS, Execution, Recipe
from ..records.run_record import COMPLETE, CURVES, WHOLE_FILES, RunRecord, run_name

RECIPE = Recipe()  # the published recipe: 50 epochs
VAL_RECIPE = Recipe(val_size=5000)  # the published recipe with 5,000 training images held out for validation

FINISHED_AT = "2026-01-01T00:00:00+00:00"  # default end time of a synthetic run

DATA = {"kind": WHOLE_FILES, "files_sha256": "0" * 64, "bytes": 186_214_114, "md5_checked": True}  # a fingerprint


def curves(epochs: int, final_acc: float, rng: np.random.Generator) -> dict[str, list]:
    """Plausible per-epoch curves (every name of record.CURVES) ending at `final_acc` (percent)."""
    t = np.arange(epochs)
    rise = 1 - np.exp(-(t + 1) / max(epochs / 5, 1))
    noise = rng.normal(0, 0.3, (3, epochs))
    values = {
        "epoch": t.tolist(), "lr": [RECIPE.lr_at(int(e) * RECIPE.epochs // epochs) for e in t],
        "train_loss": (2.3 * (1 - rise) + 0.05 + noise[0] * 0.01).tolist(), "train_acc": (100 * rise).tolist(),
        "eval_loss": (2.3 * (1 - rise) + 0.3 + noise[1] * 0.01).tolist(),
        "eval_acc": (final_acc * rise + noise[2]).tolist()[:-1] + [final_acc], "epoch_time_s": (10 + noise[0]).tolist(),
    }  # fmt: skip
    return {name: values[name] for name in CURVES}


def make_record(
    code: str,
    seed: int,
    counts: tuple[int, int],
    best: float,
    final: float,
    curve_epochs: int | None = None,
    recipe: Recipe = RECIPE,
    **fields: Any,
) -> dict[str, Any]:
    """A complete run record of (canonical code, seed), built through RunRecord, as the JSON object on disk.

    Curves of `curve_epochs` epochs (default: the recipe's; a complete record's curves span every epoch).
    `fields` override any RunRecord field (e.g. status="failed", params=..., epochs_completed=..., curves=None).
    """
    curve = curves(recipe.epochs if curve_epochs is None else curve_epochs, final, _rng(code, seed))
    record = RunRecord(
        canonical=code, seed=seed, arch=code, recipe=dataclasses.asdict(recipe), recipe_hash=recipe.hash(),
        status=COMPLETE, eval_split="test", epochs_completed=recipe.epochs, test_acc_final=final,
        test_acc_best=best, best_epoch=recipe.epochs - 1, params=counts[0], flops=counts[1],
        ptflops_macs=counts[1] + 10, curves=curve, train_time_s=float(sum(curve["epoch_time_s"])), wall_time_s=600.0,
        execution=dataclasses.asdict(Execution()), versions={"torch": "2.4.1", "git_commit": "0" * 40},
        device={"type": "cuda", "name": "NVIDIA H100", "count": 1, "host": "node1"},
        wandb={"id": f"{code}s{seed}", "url": None, "project": "nas-bench-macro", "mode": "offline", "sweep_id": None},
        started_at=FINISHED_AT, finished_at=FINISHED_AT, resumed=False, data=DATA,
    )  # fmt: skip
    return dataclasses.replace(record, **fields).to_dict()


def make_val_record(
    code: str,
    seed: int,
    counts: tuple[int, int],
    val_final: float,
    test_final: float,
    val_peak: float | None = None,
    recipe: Recipe = VAL_RECIPE,
    **fields: Any,
) -> dict[str, Any]:
    """A complete record of a validation-split recipe, as the trainer writes it (training.callbacks): the per-epoch
    curves are validation ones ending at `val_final` (and `val_peak` at three quarters of the epochs, if given),
    val_acc_best and best_epoch the curve's maximum and its first epoch, the test set evaluated once (`test_final`;
    no test_acc_best). val_indices are left out (not exported)."""
    if recipe.val_size <= 0:
        raise ValueError(f"make_val_record needs a recipe with val_size > 0, got {recipe.val_size}")
    curve = curves(recipe.epochs, val_final, _rng(code, seed))
    val = curve["eval_acc"]
    if val_peak is not None:
        val[recipe.epochs * 3 // 4] = val_peak
    best_epoch = int(np.argmax(val))
    accs = {"eval_split": "val", "test_acc_final": test_final, "test_acc_best": None, "val_acc_final": val[-1],
            "val_acc_best": val[best_epoch], "best_epoch": best_epoch, "curves": curve}  # fmt: skip
    return make_record(code, seed, counts, val[best_epoch], val_final, recipe=recipe, **{**accs, **fields})


def _rng(code: str, seed: int) -> np.random.Generator:
    """The noise of a synthetic run's curves: one stream per (code, seed)."""
    return np.random.default_rng(seed * 10_000 + int(code, 3))


def write_records(folder: Path, items: Iterable[dict[str, Any]]) -> int:
    """Write records to folder/<canonical>-s<seed>.json (plain writes: fast, for tests and benchmarks)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for record in items:
        (folder / f"{run_name(record['canonical'], record['seed'])}.json").write_text(json.dumps(record))
        count += 1
    return count


def grid_records(codes: Iterable[str]) -> Iterable[dict[str, Any]]:
    """Synthetic complete records of every (code, seed): accuracies from the code, counts from complexity()."""
    from ..arch.complexity import complexity

    for code in codes:
        c = complexity(code)
        for seed in SEEDS:
            final = 80 + int(code, 3) % 1500 / 100 + seed / 10
            yield make_record(code, seed, (c.params, c.flops), final + 0.2, final)
