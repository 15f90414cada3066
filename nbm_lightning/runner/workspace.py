"""The benchmark's W&B workspace, built from code with `wandb-workspaces` (the optional extra `workspace`).

`panels()` describes every panel and the keys it reads (all from `nbm_lightning.records.runkeys`): where the runs'
config, summary and history keys, and the benchmark Table's columns, are defined. `build(target)` turns the
description into a `wandb_workspaces` Workspace filtered to the sweep (with the export runs that log the
benchmark Table) or to the whole project, its runs table grouped by canonical code (a code's three seeds
under one row) with the useful columns pinned; `save` creates it on the server (`sweep workspace`).
`describe` lists the panels and their keys without the extra and without the network (`--dry-run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import UserError, require
from ..records import runkeys as rk
from ..records.tracking import WandbPath, has_credentials, parse_wandb_path

DEFAULT_NAME = "NAS-Bench-Macro"  # the workspace's name (the sweep id is appended)
SOURCES = ("config", "summary", "history", "table")  # where a key lives: run config, summary, history, Table column


@dataclass(frozen=True)
class Key:
    """One key a panel reads, and where it lives."""

    source: str  # one of SOURCES
    name: str  # the key

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its section, kind, title and the keys it reads (in the order its builder uses them)."""

    section: str
    kind: str  # parallel, scatter, importance, media, line, bar, histogram
    title: str
    keys: tuple[Key, ...]


ACC = Key("summary", "test_acc_final")  # the accuracy every panel charts: the honest, final-epoch one
CANONICAL = Key("config", "canonical")  # the grouping of runs: a code's seeds together
PINNED = (
    CANONICAL, Key("config", "arch"), Key("config", "seed"), Key("config", "recipe_name"), Key("config", "params"),
    Key("config", "flops"), Key("config", "n_nonzero"), ACC, Key("summary", "test_acc_best"),
    Key("summary", "best_epoch"), Key("summary", "train_time_s"), Key("summary", "status"),
)  # fmt: skip  # the runs table's columns


def panels() -> list[PanelSpec]:
    """Every panel of the workspace, section by section."""
    arch, curves, bench = "Architecture and accuracy", "Learning curves (mean and range of the seeds)", "Benchmark"
    epoch, table = Key("history", rk.EPOCH_KEY), (Key("summary", rk.BENCHMARK_TABLE), Key("table", rk.MEAN_KEY))
    return [
        PanelSpec(arch, "parallel", "Op per layer -> test accuracy", (*(Key("config", k) for k in rk.LAYER_KEYS), ACC)),
        PanelSpec(arch, "scatter", "Test accuracy vs FLOPs", (Key("config", "flops"), ACC)),
        PanelSpec(arch, "scatter", "Test accuracy vs params", (Key("config", "params"), ACC)),
        PanelSpec(arch, "importance", "Parameter importance for test accuracy", (ACC,)),
        PanelSpec(arch, "bar", "Test accuracy per canonical code: spread of the seeds", (ACC, CANONICAL)),
        PanelSpec(arch, "media", "The network as trained", (Key("history", rk.ARCH_IMAGE_KEY),)),
        PanelSpec(curves, "line", "Evaluation accuracy per epoch", (epoch, Key("history", rk.EVAL_ACC_KEY), CANONICAL)),
        PanelSpec(curves, "line", "Training loss per epoch", (epoch, Key("history", rk.TRAIN_LOSS_KEY), CANONICAL)),
        PanelSpec(bench, "histogram", "Mean accuracy over the benchmark Table", table),
    ]


def parse_target(text: str) -> WandbPath:
    """ENTITY/PROJECT or ENTITY/PROJECT/SWEEP_ID (UserError otherwise)."""
    return parse_wandb_path(text, "ENTITY/PROJECT[/SWEEP_ID]", sweep=True)


def workspace_name(target: WandbPath, name: str | None = None) -> str:
    """The workspace's name: `name`, else DEFAULT_NAME with the sweep id."""
    return name or DEFAULT_NAME + (f" sweep {target.sweep_id}" if target.sweep_id else "")


def describe(target: WandbPath, name: str | None = None) -> list[str]:
    """The workspace in lines: name, run set (filter, grouping, pinned columns), each panel and its keys."""
    scope = f"sweep {target.sweep_id} and the '{rk.EXPORT_JOB_TYPE}' runs" if target.sweep_id else "every run"
    lines = [f"workspace '{workspace_name(target, name)}' in {target.entity}/{target.project}: {scope}",
             f"runs grouped by {CANONICAL}; pinned columns: {', '.join(map(str, PINNED))}"]  # fmt: skip
    for panel in panels():
        lines.append(f"[{panel.section}] {panel.kind}: {panel.title}: reads {', '.join(map(str, panel.keys))}")
    return lines


def build(target: WandbPath, name: str | None = None) -> Any:
    """The wandb_workspaces Workspace of `panels()` (nothing sent; MissingDependency without the extra)."""
    ws = require("wandb_workspaces.workspaces", "workspace", "building the W&B workspace")
    sections: dict[str, list[Any]] = {}
    for panel in panels():
        sections.setdefault(panel.section, []).append(_panel(panel))
    runset = ws.RunsetSettings(
        filters=_filters(ws, target), groupby=[ws.Config(CANONICAL.name)], pinned_columns=[str(k) for k in PINNED]
    )
    return ws.Workspace(
        entity=target.entity, project=target.project, name=workspace_name(target, name), runset_settings=runset,
        sections=[ws.Section(name=title, panels=items, is_open=True) for title, items in sections.items()],
    )  # fmt: skip


def _filters(ws: Any, target: WandbPath) -> Any:
    """The sweep's runs and the export runs (their benchmark Table), or no filter for a whole project."""
    if not target.sweep_id:
        return ""
    return ws.Or(ws.Metric("Sweep") == target.sweep_id, ws.Metric("JobType") == rk.EXPORT_JOB_TYPE)


def _panel(panel: PanelSpec) -> Any:
    """One wandb_workspaces panel from its description."""
    wr = require("wandb_workspaces.reports.v2", "workspace", "building the W&B workspace")
    keys = [_metric(wr, key) for key in panel.keys]
    builders = {
        "parallel": lambda: wr.ParallelCoordinatesPlot(
            title=panel.title, columns=[wr.ParallelCoordinatesPlotColumn(metric=k) for k in keys]
        ),
        "scatter": lambda: wr.ScatterPlot(title=panel.title, x=keys[0], y=keys[1]),
        "importance": lambda: wr.ParameterImportancePlot(with_respect_to=panel.keys[0].name),
        "media": lambda: wr.MediaBrowser(title=panel.title, media_keys=[k.name for k in panel.keys]),
        "line": lambda: wr.LinePlot(
            title=panel.title,
            x=panel.keys[0].name,
            y=[panel.keys[1].name],
            groupby=keys[2],
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
        ),  # fmt: skip
        "bar": lambda: wr.BarPlot(
            title=panel.title,
            metrics=[keys[0]],
            groupby=keys[1],
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
            orientation="v",
        ),  # fmt: skip
        "histogram": lambda: wr.CustomChart(
            query={"summaryTable": {"tableKey": panel.keys[0].name}},
            chart_name="wandb/histogram/v0",
            chart_fields={"value": panel.keys[1].name},
            chart_strings={"title": panel.title},
        ),  # fmt: skip
    }
    return builders[panel.kind]()


def _metric(wr: Any, key: Key) -> Any:
    """A key as wandb_workspaces names it: Config, SummaryMetric, or a plain (history) name."""
    return {"config": wr.Config, "summary": wr.SummaryMetric}.get(key.source, str)(key.name)


def save(workspace: Any) -> str:
    """Create the workspace on the W&B server; its URL (UserError in one line without credentials or on refusal)."""
    if not has_credentials():
        raise UserError("no W&B credentials (WANDB_API_KEY or ~/.netrc): run `wandb login` first, or use --dry-run")
    try:
        return str(workspace.save().url)
    except Exception as err:  # noqa: BLE001 (network, auth, unknown project: one line, not a traceback)
        first = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"saving the workspace to {workspace.entity}/{workspace.project} failed: "
                        f"{type(err).__name__}: {first}") from None  # fmt: skip
