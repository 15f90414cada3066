"""Markdown tables of a benchmarks.run result (printed last by the run, pasted into BENCHMARKS.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown pipe table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def rate(value: float | None) -> str:
    """Images/s with thousands separators (three significant digits below 100)."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def duration(seconds: float | None) -> str:
    """Seconds as s, min or h."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def header(meta: dict[str, Any]) -> str:
    """Command, date, hardware and versions in a few lines."""
    hw, v = meta["hardware"], meta["versions"]
    gpu = hw["gpu"]["name"] if hw.get("gpu") else "none"
    return "\n".join(
        [
            f"`{meta['command']}` ({meta['date']}, commit {meta['git']})",
            f"- hardware: {hw['cpu']}, {hw['cpu_count']} logical CPUs ({hw['torch_threads']} torch threads); "
            f"GPU: {gpu}",
            f"- versions: torch {v['torch']}, torchvision {v['torchvision']}, "
            f"pytorch_lightning {v['pytorch_lightning']}, "
            f"torchmetrics {v['torchmetrics']}, Python {v['python']}",
            f"- data: {meta['data']['kind']}; load average at start / end: "
            f"{_load(meta.get('load_average_at_start'))} / "
            f"{_load(meta.get('load_average_at_end'))}",
        ]
    )


def _load(values: Sequence[float] | None) -> str:
    return "-" if not values else " ".join(f"{v:.2f}" for v in values)


def pipeline(section: dict[str, Any]) -> str:
    rows = [
        (r["loader"], r["num_workers"], rate(r["images_per_s"]), ratio(r["tensor_vs_this"])) for r in section["rows"]
    ]
    head = f"Input pipeline, training batches of {section['batch_size']} delivered on the device"
    conditions = section.get("conditions")
    if conditions:
        loads = " -> ".join(_load(c["load_average"]) for c in conditions)
        head += f" ({conditions[0]['torch_threads']} torch threads; load average {loads})"
    warning = f"\n\n**warning**: {section['warning']}" if section.get("warning") else ""
    return f"{head}\n\n" + table(("loader", "workers", "images/s", "tensor pipeline ÷ this"), rows) + warning


def training(section: dict[str, Any]) -> str:
    rows = [
        (
            r["arch"],
            r["path"],
            r["loop"],
            rate(r["train_images_per_s"]),
            rate(r["eval_images_per_s"]),
            duration(r["warmup_s"]),
            duration(r["projected_50_epochs_s"]),
        )
        for r in section["rows"]
    ]
    ratios = [
        (
            r["arch"],
            ratio(r["fast_vs_reference_train"]),
            ratio(r["fast_vs_reference_eval"]),
            ratio(r["reference_vs_fast_50_epochs"]),
            ratio(r["lightning_vs_plain_train"]),
            ratio(r["bf16_vs_fp32_train"]),
        )
        for r in section["ratios"]
    ]
    skipped = "".join(f"\n- skipped: {s}" for s in section.get("skipped", []))
    return (
        "Training (steady state, warm-up excluded; "
        "projected 50 epochs = 50 x (50,000 training + 10,000 evaluation images))\n\n"
        + table(("arch", "path", "loop", "train img/s", "eval img/s", "warm-up", "projected 50 epochs"), rows)
        + "\n\n"
        + table(
            (
                "arch",
                "fast ÷ reference (train)",
                "fast ÷ reference (eval)",
                "reference ÷ fast (50-epoch time)",
                "Lightning ÷ plain (train)",
                "bf16 ÷ fp32 (fast, train)",
            ),
            ratios,
        )
        + skipped
    )


def compiled(section: dict[str, Any]) -> str:
    rows = [
        (
            r["arch"],
            duration(r["warmup_s"]),
            duration(r["eval_warmup_s"]),
            rate(r["train_images_per_s"]),
            ratio(r["compile_vs_fast_train"]),
            duration(r["projected_50_epochs_with_warmup_s"]),
        )
        for r in section["rows"]
    ]
    skipped = "".join(f"\n- skipped: {s}" for s in section.get("skipped", []))
    return (
        "The fast path compiled (warm-up = the first training / evaluation batches, compiles included)\n\n"
        + table(
            (
                "arch",
                "train warm-up",
                "eval warm-up",
                "train img/s",
                "compile ÷ no compile (train)",
                "projected 50 epochs + warm-ups",
            ),
            rows,
        )
        + skipped
    )


def overhead(section: dict[str, Any]) -> str:
    m = section["median_images_per_s"]
    rows = [
        (
            section["arch"],
            section["steps"],
            section["repeats"],
            rate(m["lightning"]),
            rate(m["plain"]),
            ratio(section["lightning_vs_plain"]),
            f"{section['lightning_overhead_ms_per_step']:.2f} ms",
        )
    ]
    return (
        "Lightning vs the plain loop (fast path, same batches and optimizer; medians of alternated runs)\n\n"
        + table(
            (
                "arch",
                "timed steps",
                "runs each",
                "Lightning img/s",
                "plain img/s",
                "Lightning ÷ plain",
                "Lightning cost per step",
            ),
            rows,
        )
    )


def concurrency(section: dict[str, Any]) -> str:
    rows = [
        (
            r["runs"],
            rate(r["aggregate_images_per_s"]),
            rate(r["per_run_images_per_s"]),
            ratio(r["aggregate_vs_one_run"]),
        )
        for r in section["rows"]
    ]
    skipped = "".join(f"\n- skipped: {s}" for s in section.get("skipped", []))
    return (
        f"Concurrent runs on one device ({section['arch']}, {section['path']} path, {section['window_s']} s window)\n\n"
        + table(("runs", "aggregate train img/s", "per run", "aggregate ÷ one run"), rows)
        + skipped
    )


def figures(title: str, section: dict[str, Any]) -> str:
    """A flat section (export, query) as a figure | value table."""
    rows = [(key, f"{value:.3f}" if isinstance(value, float) else value) for key, value in section.items()]
    return f"{title}\n\n" + table(("figure", "value"), rows)


def render(result: dict[str, Any]) -> str:
    """Every section of a result that is present, in order, after the header."""
    parts = [header(result["meta"])]
    renderers = {
        "pipeline": pipeline,
        "training": training,
        "overhead": overhead,
        "concurrency": concurrency,
        "compile": compiled,
        "export": lambda s: figures("Export (benchmarks/export.py)", s),
        "query": lambda s: figures("Query (benchmarks/query.py)", s),
    }
    for name, render_section in renderers.items():
        if name in result:
            section = result[name]
            parts.append(
                f"{name}: {section['status']}"
                if "status" in section and name not in ("export", "query")
                else render_section(section)
            )
    return "\n\n".join(parts)


if __name__ == "__main__":
    import json
    import sys

    print(render(json.loads(open(sys.argv[1]).read())))  # python -m benchmarks.tables FILE.json: a (partial) result
