"""The speed benchmark: every figure of BENCHMARKS.md in one run, each as a ratio against a baseline of the same run.

    python -m benchmarks.run --device cpu|cuda [--size tiny|full] [--out FILE.json] [--data-dir DIR] [--threads N]

Sections: input pipeline images/s (tensor pipeline vs the torchvision DataLoader, same augmentation); training
throughput and projected 50-epoch time of the smallest, a median and the largest architecture (fast path vs
reference path; Lightning vs a plain PyTorch loop on the same batches); on a GPU, aggregate throughput of 1, 2 and 4
concurrent runs; the export and query figures of benchmarks/export.py and benchmarks/query.py. Real CIFAR-10 is used
where --data-dir holds cifar-10-batches-py, else synthetic data of the real size (50,000 + 10,000 images). `--size
tiny` measures the same things on a few hundred images and a few steps (minutes on two CPU cores). The JSON (written
after every section) holds hardware, versions, date and the exact command; the tables are printed last. The pipeline
section records torch's threads and the load average around it, and warns (a `warning` field and a printed line)
where the tensor pipeline measured slower than a DataLoader: other busy processes oversubscribing the cores invert
that ratio (0.04x measured under load, 15-20x with one thread); `--threads N` pins torch's threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks import train_speed as ts
from nbm_lightning.records.recipe import CIFAR10_TEST_SIZE, CIFAR10_TRAIN_SIZE
from nbm_lightning.synthetic.cifar10 import write_cifar10
from nbm_lightning.training.cifar10_files import SKIP_MD5_ENV, missing_files, open_cifar10

ARCHS = ("00000000", "12012012", "22222222")  # the smallest, a median and the largest architecture
SECTIONS = ("pipeline", "training", "overhead", "concurrency", "export", "query", "compile")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Size:
    """What one size measures: training steps, synthetic data, pipeline batches, concurrency window, export grid."""

    steps: ts.Steps
    n_train: int
    n_test: int
    pipeline_warmup: int
    pipeline_batches: int
    concurrency_seconds: float
    export_archs: int
    overhead_steps: int  # timed steps of each Lightning / plain run of the overhead section


SIZES = {
    "tiny": Size(
        ts.TINY,
        n_train=1536,
        n_test=640,
        pipeline_warmup=1,
        pipeline_batches=6,
        concurrency_seconds=3,
        export_archs=40,
        overhead_steps=40,
    ),
    "full": Size(
        ts.FULL,
        n_train=CIFAR10_TRAIN_SIZE,
        n_test=CIFAR10_TEST_SIZE,
        pipeline_warmup=3,
        pipeline_batches=40,
        concurrency_seconds=15,
        export_archs=3969,
        overhead_steps=150,
    ),
}


class Clock:
    """Seconds since the start of the run, against an optional budget for the optional measurements."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        """True once a budget is set and spent: optional measurements are then skipped."""
        return self.budget_s > 0 and self.elapsed() > self.budget_s


# ---------------------------------------------------------------------------------------------------------------
# Environment and data
# ---------------------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    """The CPU's model name (Linux), else platform.processor()."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def _gpu(device: torch.device) -> dict[str, Any] | None:
    """Name, memory, CUDA and cuDNN versions of the GPU (None on the CPU)."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    return {
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def _versions() -> dict[str, str]:
    """Versions of Python and the libraries that set the speed."""
    import numpy
    import pytorch_lightning
    import torchmetrics
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": numpy.__version__,
    }


def _git() -> str:
    """The package's commit, '+dirty' where tracked files changed (the run records' rule: provenance.code_version)."""
    from nbm_lightning.core.provenance import code_version

    version = code_version()
    return (version["git_commit"] or "unknown") + ("+dirty" if version["git_dirty"] else "")


def meta(argv: Sequence[str], device: torch.device, size: str, data: dict[str, Any]) -> dict[str, Any]:
    """Hardware, versions, date, the exact command and the data of this run."""
    return {
        "command": " ".join(["python -m benchmarks.run", *argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type,
        "size": size,
        "data": data,
        "git": _git(),
        "versions": _versions(),
        "hardware": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "gpu": _gpu(device),
        },
        "load_average_at_start": list(os.getloadavg()),
        "tf32": _tf32(device),
    }


def _tf32(device: torch.device) -> dict[str, bool] | None:
    """Whether CUDA convolutions and matmuls may use TF32 (PyTorch's defaults: convolutions yes, matmuls no)."""
    if device.type != "cuda":
        return None
    return {"cudnn_conv": bool(torch.backends.cudnn.allow_tf32), "matmul": bool(torch.backends.cuda.matmul.allow_tf32)}


def prepare_data(data_dir: str | None, size: Size, scratch: Path) -> tuple[Path, dict[str, Any]]:
    """CIFAR-10 where data_dir holds it (md5 checked once unless skipped, then skipped), else synthetic `size` data."""
    if data_dir and not missing_files(data_dir):
        checked = os.environ.get(SKIP_MD5_ENV) != "1"
        open_cifar10(data_dir, train=True), open_cifar10(data_dir, train=False)  # the md5 check, once
        os.environ[SKIP_MD5_ENV] = "1"
        kind = "cifar10" if checked else "cifar10 format, md5 not checked"
        return Path(data_dir), {"kind": kind, "dir": str(Path(data_dir).absolute())}
    os.environ[SKIP_MD5_ENV] = "1"  # also read by the concurrent runs' subprocesses
    write_cifar10(scratch, n_train=size.n_train, n_test=size.n_test, seed=0)
    return scratch, {"kind": "synthetic", "n_train": size.n_train, "n_test": size.n_test}


# ---------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------


def loader_rate(data_dir: Path, path: ts.TrainPath, size: Size, device: torch.device) -> float:
    """Steady-state training images/s of one pipeline, batches delivered on `device`."""
    dm = ts.make_datamodule(data_dir, path, size.steps, device)
    batches = ts.on_device(dm.train_dataloader(), device)
    timed = ts.time_batches(batches, lambda batch: None, size.pipeline_warmup, size.pipeline_batches, device)[1]
    return size.pipeline_batches * size.steps.batch_size() / timed


def worker_counts(device: torch.device) -> tuple[int, ...]:
    """DataLoader workers to try: none and a few (capped by the cores)."""
    cores = os.cpu_count() or 1
    return tuple(sorted({0, *(w for w in (2, 4, 8) if w <= max(2, cores // 2))}))


def pipeline_section(data_dir: Path, size: Size, device: torch.device) -> dict[str, Any]:
    """Images/s of the tensor pipeline and of the torchvision DataLoader at several worker counts; ratios; the
    CPU's threads and load around the measurement, and a warning where the ratio inverts (a busy machine)."""
    before = cpu_conditions()
    tensor = loader_rate(data_dir, ts.TrainPath("tensor"), size, device)
    rows = [{"loader": "tensor", "num_workers": 0, "images_per_s": tensor, "tensor_vs_this": 1.0}]
    for workers in worker_counts(device):
        rate = loader_rate(data_dir, ts.REFERENCE.with_(num_workers=workers), size, device)
        rows.append(
            {"loader": "torchvision", "num_workers": workers, "images_per_s": rate, "tensor_vs_this": tensor / rate}
        )
    section = {"batch_size": size.steps.batch_size(), "rows": rows, "conditions": [before, cpu_conditions()]}
    warning = inversion_warning(rows, section["conditions"])
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return section | ({"warning": warning} if warning else {})


def cpu_conditions() -> dict[str, Any]:
    """What the CPU is doing now: torch's intra-op threads, the logical cores, the load average (1, 5, 15 min)."""
    return {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}


def inversion_warning(rows: Sequence[dict[str, Any]], conditions: Sequence[dict[str, Any]]) -> str | None:
    """A warning where the tensor pipeline measured slower than a DataLoader (an idle CPU gives 20-30x), naming
    the threads and the load: other busy processes oversubscribe the cores its multi-threaded tensor ops use."""
    slower = [row for row in rows if row["loader"] != "tensor" and row["tensor_vs_this"] < 1]
    if not slower:
        return None
    worst = min(slower, key=lambda row: row["tensor_vs_this"])
    loads = " -> ".join(f"{c['load_average'][0]:.2f}" for c in conditions)
    first = conditions[0]
    return (
        f"inverted result: the tensor pipeline ran at {worst['tensor_vs_this']:.2f}x the DataLoader with "
        f"{worst['num_workers']} workers (an idle CPU gives 20-30x); load average {loads} on {first['cpu_count']} "
        f"logical CPUs, {first['torch_threads']} torch threads: the cores were oversubscribed. Rerun on an idle "
        "machine, or pin the threads (--threads 1 or OMP_NUM_THREADS=1)"
    )


CORE_PATHS = (ts.REFERENCE, ts.fast_path(), ts.fast_path(loop="plain"))  # measured for every architecture
BF16 = ts.fast_path(precision="bf16-mixed")
COMPILED = ts.fast_path(compile=True)


def training_section(
    data_dir: Path, size: Size, device: torch.device, archs: Sequence[str], clock: Clock
) -> dict[str, Any]:
    """Training and evaluation rates of every architecture on every core path (+ bf16 while budget lasts); ratios."""
    rows = [ts.measure(code, path, data_dir, size.steps, device) for code in archs for path in CORE_PATHS]
    extra, skipped = budgeted(
        lambda code: ts.measure(code, BF16, data_dir, size.steps, device), extra_archs(archs, device), clock
    )
    rows += extra
    return {
        "steps": vars(size.steps),
        "rows": rows,
        "ratios": [_ratios(code, rows) for code in archs],
        "skipped": [f"{BF16.name} {code}: time budget spent" for code in skipped],
    }


def budgeted(
    measure: Callable[[str], dict[str, Any]], archs: Sequence[str], clock: Clock
) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows measured while the budget lasts, architectures skipped after it ran out)."""
    rows, skipped = [], []
    for code in archs:
        if clock.over():
            skipped.append(code)
        else:
            rows.append(measure(code))
    return rows, skipped


def extra_archs(archs: Sequence[str], device: torch.device) -> list[str]:
    """Architectures for the optional paths: all on a GPU (the median first), the median alone on the CPU."""
    median = [code for code in archs if code == ARCHS[1]] or list(archs[:1])
    return median + [code for code in archs if code not in median] if device.type == "cuda" else median


def _ratios(code: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fast vs reference, Lightning vs plain, bf16 vs fp32 for one architecture (None where a row is missing)."""
    pick = {(r["path"], r["loop"]): r for r in rows if r["arch"] == code}
    ref, fast, plain, bf16 = (pick.get((p.name, p.loop)) for p in (*CORE_PATHS, BF16))
    ratio = lambda a, b, key: a[key] / b[key] if a and b else None  # noqa: E731
    return {
        "arch": code,
        "fast_vs_reference_train": ratio(fast, ref, "train_images_per_s"),
        "fast_vs_reference_eval": ratio(fast, ref, "eval_images_per_s"),
        "reference_vs_fast_50_epochs": ratio(ref, fast, "projected_50_epochs_s"),
        "lightning_vs_plain_train": ratio(fast, plain, "train_images_per_s"),
        "bf16_vs_fp32_train": ratio(bf16, fast, "train_images_per_s"),
    }


def overhead_section(
    data_dir: Path, size: Size, device: torch.device, repeats: int = 3, code: str = ARCHS[0]
) -> dict[str, Any]:
    """Lightning vs the plain loop on the fast path, longer runs alternated `repeats` times: medians and ms per step."""
    steps = dataclasses.replace(size.steps, steps=size.overhead_steps)
    paths = (ts.fast_path(), ts.fast_path(loop="plain"))
    rates = {p.loop: [] for p in paths}
    for _ in range(repeats):
        for path in paths:
            rates[path.loop].append(ts.measure(code, path, data_dir, steps, device)["train_images_per_s"])
    median = {loop: statistics.median(values) for loop, values in rates.items()}
    per_step_ms = 1000 * steps.batch_size() * (1 / median["lightning"] - 1 / median["plain"])
    return {
        "arch": code,
        "steps": size.overhead_steps,
        "repeats": repeats,
        "images_per_s": rates,
        "median_images_per_s": median,
        "lightning_vs_plain": median["lightning"] / median["plain"],
        "lightning_overhead_ms_per_step": per_step_ms,
    }


def compile_section(
    data_dir: Path, size: Size, device: torch.device, archs: Sequence[str], training: dict[str, Any], clock: Clock
) -> dict[str, Any]:
    """The fast path compiled (while the budget lasts): warm-up (compiles) and rates, against the uncompiled one."""
    rows, skipped = budgeted(
        lambda code: ts.measure(code, COMPILED, data_dir, size.steps, device), extra_archs(archs, device), clock
    )
    fast = {r["arch"]: r for r in training.get("rows", []) if (r["path"], r["loop"]) == ("fast", "lightning")}
    for row in rows:
        base = fast.get(row["arch"])
        row["compile_vs_fast_train"] = row["train_images_per_s"] / base["train_images_per_s"] if base else None
        row["projected_50_epochs_with_warmup_s"] = row["projected_50_epochs_s"] + row["warmup_s"] + row["eval_warmup_s"]
    return {"rows": rows, "skipped": [f"{COMPILED.name} {code}: time budget spent" for code in skipped]}


def concurrent(
    data_dir: Path, code: str, parties: int, seconds: float, device: torch.device, size: str, scratch: Path
) -> list[dict[str, Any]]:
    """`parties` training runs as separate processes on one device, timed over the same window."""
    barrier = scratch / f"barrier-{parties}"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_speed",
        "--arch",
        code,
        "--data-dir",
        str(data_dir),
        "--barrier",
        str(barrier),
        "--parties",
        str(parties),
        "--seconds",
        str(seconds),
        "--device",
        device.type,
        "--size",
        size,
    ]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(parties)
    ]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    failed = [err for proc, (_, err) in zip(procs, outputs) if proc.returncode != 0]
    if failed:
        raise RuntimeError(
            f"a concurrent run failed: {failed[0].strip().splitlines()[-1] if failed[0].strip() else 'no output'}"
        )
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def concurrency_section(
    data_dir: Path,
    size_name: str,
    size: Size,
    device: torch.device,
    scratch: Path,
    clock: Clock,
    parties: Sequence[int] = (1, 2, 4),
    code: str = ARCHS[1],
) -> dict[str, Any]:
    """Aggregate training images/s of 1, 2 and 4 concurrent runs of the fast path (no compile) on one device."""
    rows, skipped = [], []
    for k in parties:
        if clock.over():
            skipped.append(f"{k} runs: time budget spent")
            continue
        runs = concurrent(data_dir, code, k, size.concurrency_seconds, device, size_name, scratch)
        total = sum(r["train_images_per_s"] for r in runs)
        rows.append(
            {
                "runs": k,
                "aggregate_images_per_s": total,
                "per_run_images_per_s": total / k,
                "aggregate_vs_one_run": total / rows[0]["aggregate_images_per_s"] if rows else 1.0,
            }
        )
    return {
        "arch": code,
        "path": ts.fast_path().name,
        "window_s": size.concurrency_seconds,
        "rows": rows,
        "skipped": skipped,
    }


def export_section(size: Size) -> dict[str, Any]:
    """benchmarks/export.py's figures for the size's grid, or why they are not available."""
    try:
        from benchmarks import export

        runner = export.run
    except (ImportError, AttributeError) as err:
        return {"status": f"not available ({type(err).__name__}: {err})"}
    return {"n_archs": size.export_archs, **runner(n_archs=size.export_archs)}


def query_section() -> dict[str, Any]:
    """benchmarks/query.py's figures, or why they are not available."""
    from benchmarks import query
    from nbm_lightning.core.errors import UserError

    try:
        return query.run()
    except UserError as err:  # NBM_BENCHMARK not set
        return {"status": f"not available ({err})"}


def guarded(section: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a section of another module; an error becomes the section's status instead of ending the benchmark."""
    try:
        return section()
    except Exception as err:  # noqa: BLE001 - the other sections' figures must still be written
        return {"status": f"error ({type(err).__name__}: {err})"}


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--size", choices=tuple(SIZES), default="full")
    parser.add_argument("--out", default=None, help="JSON file (default: bench_<device>_<size>.json)")
    parser.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py (else synthetic data)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--archs", default=",".join(ARCHS), help="architectures of the training section")
    parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="measure the compiled fast path (auto: on CUDA only; a CPU compile takes minutes per graph)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (torch.set_num_threads; 0: torch's default, one per core); the pipeline "
        "section reports the threads and the load average either way",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="skip optional measurements once this many seconds passed (0: never)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; exit status 2 for unknown sections or CUDA without a GPU."""
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to this torch")
    if args.threads < 0:
        parser.error(f"invalid --threads {args.threads!r}: expected an int >= 0")
    return args


def section_runners(
    args: argparse.Namespace, data_dir: Path, scratch: Path, result: dict[str, Any]
) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each section as a function of nothing (the run's settings bound in)."""
    device, size, clock, archs = (
        torch.device(args.device),
        SIZES[args.size],
        Clock(args.budget_s),
        args.archs.split(","),
    )
    use_compile = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    return {
        "pipeline": lambda: pipeline_section(data_dir, size, device),
        "training": lambda: training_section(data_dir, size, device, archs, clock),
        "overhead": lambda: overhead_section(data_dir, size, device),
        "concurrency": lambda: (
            concurrency_section(data_dir, args.size, size, device, scratch, clock)
            if device.type == "cuda"
            else {"status": "GPU only: not measured on the CPU"}
        ),
        "export": lambda: guarded(lambda: export_section(size)),
        "query": lambda: guarded(query_section),
        "compile": lambda: (
            compile_section(data_dir, size, device, archs, result.get("training", {}), clock)
            if use_compile
            else {"status": "not measured: --compile auto is off on the CPU (--compile on measures it)"}
        ),
    }


def run_sections(argv: Sequence[str], result: dict[str, Any], write: Callable[[], None], scratch: Path) -> None:
    """Each chosen section in order, the JSON rewritten after each."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir, data = prepare_data(args.data_dir, SIZES[args.size], scratch / "data")
    result["meta"] = meta(argv, torch.device(args.device), args.size, data)
    runners = section_runners(args, data_dir, scratch, result)
    for name in (n for n in SECTIONS if n in args.sections.split(",")):
        started = time.perf_counter()
        result[name] = runners[name]()
        result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
        write()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections, write the JSON, print the tables."""
    from benchmarks import tables

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out = Path(args.out or f"bench_{args.device}_{args.size}.json")
    result: dict[str, Any] = {}
    write = lambda: out.write_text(json.dumps(result, indent=1))  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="nbm-bench-") as scratch:
        run_sections(argv, result, write, Path(scratch))
    result["meta"]["load_average_at_end"] = list(os.getloadavg())
    write()
    print(tables.render(result))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
