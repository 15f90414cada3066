"""HFTA fusion probe: is training 3 seeds of one network as one fused network faster than training them one by one?

The idea (HFTA, Wang et al., MLSys 2021): the seeds' networks have the same architecture, so they can be stacked
into one wider network. `fuse(nets)` walks the MacroNets' modules in parallel and builds it from their weights:
every Conv2d(cin, cout, k, groups=g) becomes Conv2d(n*cin, n*cout, k, groups=n*g) with the weights concatenated
along the output channels (model-major), every BatchNorm2d(c) a BatchNorm2d(n*c) (per-channel statistics, so each
model's statistics are over its own batch), Identity/ReLU/pooling and the residual adds stay as they are, and the
Linear classifier becomes a grouped product (einsum) with weight [n, classes, 1280] and bias [n, classes]: logits
[B, n, classes]. Model i's batch x_i [B, 3, H, W] enters as channels 3i..3i+2 of one [B, 3n, H, W] input, and the
loss is the sum of the n models' mean cross-entropies, so each model's gradient is its separate gradient.

1. Equality check (always on the CPU; on CUDA also on the device in float64): from the seeds' initial weights,
   split back the fused weights (exactly equal), and in train mode (batch statistics) and then eval mode (the
   running statistics the train step left) each model's logits, every parameter gradient and (train mode) the
   running statistics equal the separate models' (`tolerance`): in float64 allclose(1e-10, 1e-10), everything; in
   float32 allclose(1e-4, 1e-5) for logits and running statistics, and for gradients a relative L2 error of at
   most F32_GRAD_L2 per model (ReLU masks that rounding flips make float32 gradients ill-conditioned).
2. Throughput of training steps (forward, cross-entropy, zero_grad, backward, the published SGD via make_sgd) at
   `--batch` images per model, on synthetic random inputs already on the device (no data pipeline, one fixed
   batch per model): (a) 1 model, (b) the 3 models stepped one after another, (c) the fused network on 3 x batch
   images. Each case is built and warmed up (`--warmup` steps, excluded: cuDNN autotuning, oneDNN JIT), then
   `--rounds` rounds of `--steps` steps are timed, the cases alternating so that a change in machine load hits
   all of them; the median round counts. The device is synchronised only at the two ends of a timed region.
   Arithmetic as the fit CLI's (check too): the recipe's TF32 setting (off), cudnn.benchmark on, contiguous tensors.

    python -m benchmarks.fusion_probe --device cpu|cuda [--batch 256] [--steps N] [--warmup N] [--rounds N]
                                      [--check-only] [--json OUT]

Prints one JSON (hardware, versions, date, command, load average, check, figures); exit status 1 when the check
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.run import meta
from benchmarks.train_speed import Batch, synchronize
from nbm_lightning.arch.network import InvertedResidual, MacroNet
from nbm_lightning.records.recipe import SEEDS, Execution, Recipe
from nbm_lightning.training.module import make_sgd
from nbm_lightning.training.run import apply_numerics, build_network, seed_run

CODE = "12012012"  # the median network (the README's example code)
NUM_CLASSES = 10  # CIFAR-10
IMAGE = (3, 32, 32)  # one input image: channels, height, width
DTYPES = (torch.float32, torch.float64)  # the check's arithmetic
# float32 gradients: a ReLU whose pre-activation rounding moves across 0 takes another path in the backward pass, so
# two float32 summation orders (grouped vs separate convolutions) give gradients that differ by up to ~1e-2 (L2,
# relative) at small batches; float64 (allclose 1e-10) is the exact test. See BENCHMARKS.md, "HFTA fusion probe".
F32_GRAD_L2 = 2e-2
STATELESS = (nn.Identity, nn.ReLU, nn.AdaptiveAvgPool2d)  # the same module works on stacked channels
CONTAINERS = (nn.Sequential, InvertedResidual, MacroNet)  # forward only routes through children (and adds)
Tensors = dict[str, Tensor]
PROG = "python -m benchmarks.fusion_probe"
CASES = ("single", "sequential", "fused")  # (a) 1 model, (b) the 3 one after another, (c) the 3 fused

# ---------------------------------------------------------------------------------------------------------------
# Fusion
# ---------------------------------------------------------------------------------------------------------------


class GroupedLinear(nn.Module):
    """n Linear layers as one grouped product: [B, n * in] -> [B, n, out]."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)  # [n, out, in]
        self.bias = nn.Parameter(bias)  # [n, out]

    def forward(self, x: Tensor) -> Tensor:
        x = x.unflatten(1, (self.weight.shape[0], self.weight.shape[2]))
        return torch.einsum("bni,noi->bno", x, self.weight) + self.bias


def _same(modules: Sequence[nn.Module], attrs: Sequence[str]) -> None:
    """Raise ValueError unless the modules agree on every attribute in `attrs`."""
    for attr in attrs:
        values = {repr(getattr(m, attr)) for m in modules}
        if len(values) > 1:
            raise ValueError(f"cannot fuse {type(modules[0]).__name__}s with different {attr}: {sorted(values)}")


def _cat(tensors: Sequence[Tensor | None]) -> Tensor | None:
    """The tensors concatenated along dim 0 (None where the module has none)."""
    return None if tensors[0] is None else torch.cat([t.detach() for t in tensors])


def fuse_conv(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """Conv2d(cin, cout, k, groups=g) x n -> Conv2d(n*cin, n*cout, k, groups=n*g), weights stacked on dim 0."""
    c, n = convs[0], len(convs)
    _same(convs, ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"))
    _same(convs, ("padding_mode", "transposed", "output_padding"))
    if len({m.bias is None for m in convs}) > 1:
        raise ValueError("cannot fuse Conv2ds with and without bias")
    fused = nn.Conv2d(
        n * c.in_channels, n * c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation, n * c.groups,
        bias=c.bias is not None, padding_mode=c.padding_mode, device=c.weight.device, dtype=c.weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(_cat([m.weight for m in convs]))
        if c.bias is not None:
            fused.bias.copy_(_cat([m.bias for m in convs]))
    return fused


def fuse_bn(bns: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """BatchNorm2d(c) x n -> BatchNorm2d(n*c): affine weights and running statistics stacked, same eps/momentum."""
    b, n = bns[0], len(bns)
    _same(bns, ("num_features", "eps", "momentum", "affine", "track_running_stats"))
    if not (b.affine and b.track_running_stats):
        raise ValueError("fuse_bn expects affine BatchNorm2d with running statistics (as MacroNet's)")
    fused = nn.BatchNorm2d(n * b.num_features, b.eps, b.momentum, device=b.weight.device, dtype=b.weight.dtype)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(fused, name).copy_(_cat([getattr(m, name) for m in bns]))
        fused.num_batches_tracked.copy_(b.num_batches_tracked)
    return fused


def fuse_linear(linears: Sequence[nn.Linear]) -> GroupedLinear:
    """Linear(in, out) x n -> GroupedLinear with weight [n, out, in] and bias [n, out]."""
    _same(linears, ("in_features", "out_features"))
    if any(m.bias is None for m in linears):
        raise ValueError("the fused classifier needs every Linear to have a bias")
    weight = torch.stack([m.weight.detach() for m in linears]).clone()
    return GroupedLinear(weight, torch.stack([m.bias.detach() for m in linears]).clone())


LEAVES: dict[type, Callable[[Sequence[Any]], nn.Module]] = {
    nn.Conv2d: fuse_conv,
    nn.BatchNorm2d: fuse_bn,
    nn.Linear: fuse_linear,
}


def fuse(nets: Sequence[nn.Module]) -> nn.Module:
    """One network computing all of `nets` on channel-stacked inputs (see the module docstring), from their weights."""
    kind = type(nets[0])
    if any(type(m) is not kind for m in nets):
        raise ValueError(f"cannot fuse different module types: {sorted({type(m).__name__ for m in nets})}")
    if kind in LEAVES:
        return LEAVES[kind](nets)
    if isinstance(nets[0], STATELESS):
        return copy.deepcopy(nets[0])  # stateless: any of them will do
    if not isinstance(nets[0], CONTAINERS):
        raise TypeError(f"fuse does not know how to fuse {kind.__name__}")
    fused = copy.deepcopy(nets[0])  # the container's own attributes (e.g. `residual`); children replaced below
    for name, _ in nets[0].named_children():
        setattr(fused, name, fuse([getattr(m, name) for m in nets]))
    return fused


def stack_inputs(xs: Sequence[Tensor]) -> Tensor:
    """Model i's batch [B, 3, H, W] as channels 3i..3i+2 of one [B, 3n, H, W] input."""
    return torch.cat(list(xs), dim=1)


def fused_loss(logits: Tensor, ys: Sequence[Tensor]) -> Tensor:
    """The sum of the n models' mean cross-entropies (logits [B, n, classes]): each model gets its own gradient."""
    return sum((F.cross_entropy(logits[:, i], y) for i, y in enumerate(ys)), logits.new_zeros(()))


def split_like(fused: Mapping[str, Tensor], separate: Sequence[Mapping[str, Tensor]]) -> list[Tensors]:
    """The fused network's tensors (parameters, gradients, buffers) cut into each model's, shaped like `separate`."""
    n, parts = len(separate), [{} for _ in separate]
    for name, tensor in fused.items():
        for i, part in enumerate(parts):
            if name in separate[i]:
                piece = tensor if tensor.dim() == 0 else tensor.chunk(n)[i]
                part[name] = piece.reshape(separate[i][name].shape)
    return parts


# ---------------------------------------------------------------------------------------------------------------
# The equality check
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """When fused tensors count as equal to the separate ones: element-wise allclose, or a relative L2 bound."""

    rtol: float = 0.0  # torch.allclose, element-wise
    atol: float = 0.0  # torch.allclose, element-wise
    l2: float | None = None  # if set, instead: per model ||fused - separate|| / ||separate|| over the group <= l2

    def __str__(self) -> str:
        if self.l2 is not None:
            return f"l2 error <= {self.l2:g}"
        return f"allclose(rtol={self.rtol:g}, atol={self.atol:g})"


def tolerance(dtype: torch.dtype, what: str) -> Tolerance:
    """The verdict's tolerance for one kind of tensor in one dtype (see F32_GRAD_L2 for float32 gradients)."""
    if what == "weights":
        return Tolerance()  # copied, so bit-equal
    if dtype == torch.float64:
        return Tolerance(1e-10, 1e-10)
    return Tolerance(l2=F32_GRAD_L2) if what == "gradients" else Tolerance(1e-4, 1e-5)


@dataclass(frozen=True)
class Agreement:
    """How far one kind of the fused network's tensors is from the separate models' (all models, all tensors)."""

    what: str  # "weights", "logits", "gradients" or "running stats"
    mode: str  # "init", "train" (batch statistics) or "eval" (running statistics)
    dtype: str  # "float32" or "float64"
    device: str  # where it was computed
    tensors: int  # tensor pairs compared, over all models
    max_abs_diff: float  # largest |fused - separate| over all elements
    l2_error: float  # largest over models of ||fused - separate|| / ||separate|| (the group's tensors as one vector)
    allclose: bool  # every pair torch.allclose with the dtype's element-wise tolerance
    criterion: str  # the verdict's rule (Tolerance)
    passed: bool  # same tensor names, and the criterion met

    def line(self) -> str:
        """One human-readable line."""
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.device} {self.dtype} {self.mode:5} {self.what:13} {self.tensors:3} tensors: max abs diff "
            f"{self.max_abs_diff:.1e}, l2 error {self.l2_error:.1e}, allclose {self.allclose} ({self.criterion})"
        )


def _l2_error(fused: Tensors, separate: Tensors) -> float:
    """||fused - separate|| / ||separate|| over all tensors of one model, as one vector (float64 sums)."""
    num = sum(((fused[k].double() - t.double()) ** 2).sum().item() for k, t in separate.items() if k in fused)
    den = sum((t.double() ** 2).sum().item() for t in separate.values())
    return math.sqrt(num / den) if den > 0 else math.sqrt(num)


def agreement(what: str, mode: str, fused: Sequence[Tensors], separate: Sequence[Tensors]) -> Agreement:
    """Compare each model's tensors from the fused network with its separate ones."""
    same = len(fused) == len(separate) and all(f.keys() == s.keys() for f, s in zip(fused, separate))
    same = same and all(f[k].shape == t.shape for f, s in zip(fused, separate) for k, t in s.items())
    if not same or not separate[0]:
        return Agreement(what, mode, "?", "?", 0, math.inf, math.inf, False, "same names and shapes", False)
    ref = next(iter(separate[0].values()))
    tol, pairs = tolerance(ref.dtype, what), [(f[k], t) for f, s in zip(fused, separate) for k, t in s.items()]
    elementwise = tolerance(ref.dtype, "logits") if tol.l2 is not None else tol
    close = all(torch.allclose(a, b, rtol=elementwise.rtol, atol=elementwise.atol) for a, b in pairs)
    l2 = max(_l2_error(f, s) for f, s in zip(fused, separate))
    max_abs = max(((a - b).abs().max().item() for a, b in pairs if b.numel()), default=0.0)
    passed = close if tol.l2 is None else l2 <= tol.l2
    dtype = str(ref.dtype).removeprefix("torch.")
    return Agreement(what, mode, dtype, str(ref.device), len(pairs), max_abs, l2, close, str(tol), passed)


def build_nets(code: str, seeds: Sequence[int], dtype: torch.dtype, device: torch.device) -> list[nn.Module]:
    """Each seed's network as the project builds a run's (seed_run, then build_network), in `dtype` on `device`."""
    nets = []
    for seed in seeds:
        seed_run(seed)
        nets.append(build_network(code, NUM_CLASSES, Execution()).to(device=device, dtype=dtype))
    return nets


def random_batches(n: int, batch: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> list[Batch]:
    """n synthetic batches (normal images, uniform labels), one per model, made on the CPU from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    images = [torch.randn((batch, *IMAGE), generator=gen, dtype=dtype).to(device) for _ in range(n)]
    return [(x, torch.randint(0, NUM_CLASSES, (batch,), generator=gen).to(device)) for x in images]


def _grads(net: nn.Module) -> Tensors:
    """Parameter name -> gradient, for the parameters that have one."""
    return {name: p.grad for name, p in net.named_parameters() if p.grad is not None}


def _buffers(net: nn.Module) -> Tensors:
    """Buffer name -> value (BatchNorm running statistics and batch counters)."""
    return dict(net.named_buffers())


def separate_pass(nets: Sequence[nn.Module], data: Sequence[Batch], train: bool) -> tuple[list[Tensor], list[Tensors]]:
    """Each model on its own batch: logits and parameter gradients of its mean cross-entropy."""
    logits, grads = [], []
    for net, (x, y) in zip(nets, data):
        net.train(train)
        net.zero_grad(set_to_none=True)
        out = net(x)
        F.cross_entropy(out, y).backward()
        logits.append(out.detach())
        grads.append(_grads(net))
    return logits, grads


def fused_pass(fused: nn.Module, data: Sequence[Batch], train: bool) -> tuple[Tensor, Tensors]:
    """The fused network on the stacked batches: logits [B, n, classes] and gradients of `fused_loss`."""
    fused.train(train)
    fused.zero_grad(set_to_none=True)
    logits = fused(stack_inputs([x for x, _ in data]))
    fused_loss(logits, [y for _, y in data]).backward()
    return logits.detach(), _grads(fused)


def mode_agreements(nets: Sequence[nn.Module], fused: nn.Module, data: Sequence[Batch], train: bool) -> list[Agreement]:
    """Logits, gradients (and after a train pass the running statistics) of one pass in one mode."""
    mode = "train" if train else "eval"
    logits, grads = separate_pass(nets, data, train)
    fused_logits, fused_grads = fused_pass(fused, data, train)
    split_logits = [{"logits": fused_logits[:, i]} for i in range(len(nets))]
    rows = [agreement("logits", mode, split_logits, [{"logits": t} for t in logits])]
    rows.append(agreement("gradients", mode, split_like(fused_grads, grads), grads))
    if train:
        buffers = [_buffers(net) for net in nets]
        rows.append(agreement("running stats", mode, split_like(_buffers(fused), buffers), buffers))
    return rows


def check_fusion(nets: Sequence[nn.Module], fused: nn.Module, batch: int, seed: int = 0) -> list[Agreement]:
    """Does `fused` compute `nets`? Weights (exactly), then a train pass and an eval pass on random batches."""
    param = next(nets[0].parameters())
    params = [dict(net.named_parameters()) for net in nets]
    rows = [agreement("weights", "init", split_like(dict(fused.named_parameters()), params), params)]
    data = random_batches(len(nets), batch, param.dtype, param.device, seed)
    return rows + mode_agreements(nets, fused, data, True) + mode_agreements(nets, fused, data, False)


def check(code: str, batch: int, dtype: torch.dtype, device: torch.device) -> list[Agreement]:
    """check_fusion of fuse(nets) for the seeds' networks of `code`, in `dtype` on `device`."""
    nets = build_nets(code, SEEDS, dtype, device)
    return check_fusion(nets, fuse(nets), batch)


# ---------------------------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """One timed training configuration: its warm-up and its timed rounds."""

    case: str  # "single", "sequential" or "fused"
    models: int  # models trained per step
    batch: int  # images per model per step
    steps: int  # timed steps per round (each trains every model once)
    warmup_s: float  # seconds of the warm-up steps (excluded)
    round_s: list[float]  # seconds of each round's `steps` steps
    images_per_s: float  # all models' images per second, in the median round
    step_ms_per_model: float  # milliseconds per step in the median round, divided by the number of models

    @classmethod
    def of(cls, case: str, models: int, batch: int, steps: int, warmup_s: float, round_s: list[float]) -> Throughput:
        """The figures of the median round."""
        seconds = statistics.median(round_s)
        ips, ms = models * batch * steps / seconds, 1000 * seconds / steps / models
        return cls(case, models, batch, steps, warmup_s, round_s, ips, ms)


def sgd_stepper(net: nn.Module, loss: Callable[[Tensor], Tensor], x: Tensor, sgd_impl: str) -> Callable[[], None]:
    """One training step of `net` on the fixed input x: forward, loss, zero_grad, backward, the recipe's SGD."""
    optimizer = make_sgd(net.parameters(), Recipe(), sgd_impl)
    net.train()

    def step() -> None:
        out = loss(net(x))
        optimizer.zero_grad(set_to_none=True)
        out.backward()
        optimizer.step()

    return step


def time_steps(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds of `steps` steps, the device synchronised only before the first and after the last."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def case_step(case: str, code: str, batch: int, device: torch.device, sgd_impl: str) -> Callable[[], None]:
    """One step of a case: 1 model, the 3 seeds' models one after another, or their fused network."""
    nets = build_nets(code, SEEDS[:1] if case == "single" else SEEDS, torch.float32, device)
    data = random_batches(len(nets), batch, torch.float32, device)
    if case == "fused":
        ys = [y for _, y in data]
        return sgd_stepper(fuse(nets), lambda out: fused_loss(out, ys), stack_inputs([x for x, _ in data]), sgd_impl)
    calls = [sgd_stepper(net, lambda out, y=y: F.cross_entropy(out, y), x, sgd_impl) for net, (x, y) in zip(nets, data)]

    def one_after_another() -> None:
        for call in calls:
            call()

    return one_after_another


def measure(args: argparse.Namespace, device: torch.device) -> list[Throughput]:
    """Steady-state images/s of each case: warm-up, then `rounds` rounds of `steps` steps, the cases alternating."""
    step_of = {case: case_step(case, args.arch, args.batch, device, args.sgd_impl) for case in CASES}
    warm = {case: time_steps(step, args.warmup, device) for case, step in step_of.items()}
    rounds: dict[str, list[float]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for case, step in step_of.items():
            rounds[case].append(time_steps(step, args.steps, device))
    models = {"single": 1, "sequential": len(SEEDS), "fused": len(SEEDS)}
    return [Throughput.of(c, models[c], args.batch, args.steps, warm[c], rounds[c]) for c in CASES]


def ratios(single: Throughput, sequential: Throughput, fused: Throughput) -> dict[str, float]:
    """(b)/(a): cost per model-step of sequential vs single; (c)/(b): fused vs sequential images/s (>1: faster)."""
    return {
        "sequential_over_single_cost_per_model": sequential.step_ms_per_model / single.step_ms_per_model,
        "fused_over_sequential_images_per_s": fused.images_per_s / sequential.images_per_s,
        "fused_over_single_images_per_s": fused.images_per_s / single.images_per_s,
    }


# ---------------------------------------------------------------------------------------------------------------
# The probe
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to n inside the block (float64 convolutions run one call per group: many tiny
    calls, which several threads only slow down)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_checks(code: str, batch: int, device: torch.device) -> tuple[list[Agreement], list[Agreement], str | None]:
    """On CUDA: the float64 check (gated), the float32 one (reported only), and an error that stopped them."""
    if device.type != "cuda":
        return [], [], None
    try:
        return check(code, batch, torch.float64, device), check(code, batch, torch.float32, device), None
    except RuntimeError as err:  # e.g. a float64 kernel missing: a failed check, but the throughput still runs
        return [], [], f"{type(err).__name__}: {err}"


def run_checks(code: str, batch: int, device: torch.device) -> dict[str, Any]:
    """The CPU check in float32 and float64; on CUDA also the device's in float64 (float32 there: reported only)."""
    with cpu_threads(1):
        rows = [row for dtype in DTYPES for row in check(code, batch, dtype, torch.device("cpu"))]
    device_rows, info, error = device_checks(code, batch, device)
    rows += device_rows
    for row in rows + info:
        print(row.line(), file=sys.stderr)
    if error:
        print(f"FAIL {device} check: {error}", file=sys.stderr)
    passed = error is None and all(row.passed for row in rows)
    return {
        "batch": batch, "passed": passed, "rows": [asdict(r) for r in rows], "info": [asdict(r) for r in info],
        "device_error": error,
    }  # fmt: skip


def run_throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Cases (a) single, (b) sequential and (c) fused, and their ratios."""
    rows = measure(args, device)
    for row in rows:
        print(f"{row.case}: {row.images_per_s:.1f} images/s (rounds {row.round_s})", file=sys.stderr)
    return {"cases": {row.case: asdict(row) for row in rows}, "ratios": ratios(*rows)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--arch", default=CODE, help="the code (default: the median network 12012012)")
    parser.add_argument("--batch", type=int, default=256, help="images per model per training step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, the cases alternating (median kept)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps per case (excluded)")
    parser.add_argument("--check-batch", type=int, default=16, help="images per model in the equality check")
    parser.add_argument("--sgd-impl", choices=("auto", "foreach", "fused"), default="auto")
    parser.add_argument("--check-only", action="store_true", help="run the equality check only")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    return parser


def write(result: dict[str, Any], path: str | None) -> str:
    """The result as JSON text, also written to `path` when given."""
    text = json.dumps(result, indent=1)
    if path:
        Path(path).write_text(text + "\n")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Check the fusion, time the three cases, print (and optionally write) the JSON; 1 when the check fails."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    apply_numerics(Recipe(), Execution())  # the fit CLI's arithmetic: TF32 off (recipe), cudnn.benchmark on
    data = {"kind": "synthetic random inputs on the device, one fixed batch per model; no data pipeline"}
    result = {**meta(argv, device, f"batch {args.batch}", data), "command": " ".join([PROG, *argv])}
    result.update(arch=args.arch, seeds=list(SEEDS), check=run_checks(args.arch, args.check_batch, device))
    write(result, args.json)  # the check's result survives a throughput run that is cut short
    if not args.check_only:
        result["throughput"] = run_throughput(args, device)
    result["load_average_at_end"] = list(os.getloadavg())
    print(write(result, args.json))
    print("fusion_probe check:", "PASS" if result["check"]["passed"] else "FAIL", file=sys.stderr)
    return 0 if result["check"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
