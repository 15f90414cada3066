"""Does the fast path compute the same function as the reference path? PASS/FAIL with the largest difference.

Both paths are float32 approximations of one function, so each is judged against the exact one (float64, contiguous,
default SGD). From identical weights and identical batches (the tensor pipeline's augmented batches, fed to every
path), each fast-path variant (channels_last, fused or foreach SGD, cudnn.benchmark on, optionally compiled) is
compared with the reference path (contiguous, PyTorch's default SGD, cudnn.benchmark off):
  1. gradients of the first batch: the variant's error against float64 (L2 norm of the difference over the L2 norm
     of the gradient) at most the tolerance or NOISE_FACTOR x the reference's own error;
  2. the optimizer: from identical weights and gradients, two steps of the variant's SGD equal the default SGD's;
  3. the loss at each of a few SGD steps of the recipe, and after the last: its difference from the reference's at
     most the tolerance (relative) or NOISE_FACTOR x the reference's largest distance from float64 over the steps.
Why tolerances of 1e-3 and not 1e-6: single ops agree to ~1e-7, but gradients of a ReLU/BatchNorm network at
initialisation are ill-conditioned (a pre-activation that rounding moves across 0 flips its ReLU mask; with a smooth
activation instead of ReLU both paths agree to 1e-6), so two float32 summation orders give gradients that differ by
1e-4..1e-2, and the first steps at lr 0.1 amplify that chaotically. On the CPU, the channels_last BatchNorm kernel
is far less accurate than the contiguous one (~100x the error at 256 x 32 x 32 values per channel): there the
gradient check fails at the full batch of 256 while the losses still agree to ~1e-4. TF32 is switched off on
CUDA (it is the same on both paths; `--tf32` keeps PyTorch's defaults, tolerance 1e-2). Exit status 1 on any FAIL
but an expected one: on a CPU, channels_last's gradient check is expected to fail (EXPECTED FAIL, with the reason);
on CUDA nothing is.

    python -m benchmarks.fastpath_check --device cuda [--arch 12012012] [--steps 5] [--compile auto|on|off]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.train_speed import Batch, PlainLoop, TrainPath, make_net
from nbm_lightning.records.recipe import Recipe
from nbm_lightning.training.module import make_sgd
from nbm_lightning.training.tensor_loader import TensorLoader

REFERENCE = TrainPath("reference", sgd_impl="auto", cudnn_benchmark=False)
TOLERANCE = {"fp32": 1e-3, "tf32": 1e-2}  # relative: gradients (L2) and losses
UPDATE_TOLERANCE = 1e-6  # relative: fused / foreach SGD against the default on identical gradients
NOISE_FACTOR = 10.0  # a variant may be this many times further from float64 than the reference is
CPU_CHANNELS_LAST = (  # why a channels_last variant's gradient check fails on a CPU (and only there)
    "expected on a CPU: PyTorch's CPU channels_last BatchNorm kernel is ~100x less accurate than the contiguous one "
    "at 256 x 32 x 32 values per channel (the losses still agree): channels_last is a GPU option"
)


@dataclass(frozen=True)
class Outcome:
    """One variant against the reference: gradient, optimizer and loss differences, the float noise, the verdict."""

    variant: str
    grad_error: float  # step 1: |grad - float64 grad| / |float64 grad| (L2 norms over all parameters), this variant
    reference_grad_error: float  # the same for the reference path
    update_diff: float  # two SGD steps on identical gradients: max |param diff| / max |param|
    loss_diffs: list[float]  # per step (and after the last): |loss - reference loss| / max(1, |reference loss|)
    noise: float  # the reference's largest |loss - float64 loss| / max(1, |loss|) over the steps
    tolerance: float
    expected: dict[str, str] = field(default_factory=dict)  # failure -> why it is expected on this device (CPU only)

    @property
    def loss_limit(self) -> float:
        return max(self.tolerance, NOISE_FACTOR * self.noise)

    def failures(self) -> list[str]:
        """What failed, as short phrases (empty when the variant passes)."""
        grad_limit = max(self.tolerance, NOISE_FACTOR * self.reference_grad_error)
        failed = ["gradients"] if self.grad_error > grad_limit else []
        failed += ["optimizer"] if self.update_diff > UPDATE_TOLERANCE else []
        steps = [i + 1 for i, diff in enumerate(self.loss_diffs) if diff > self.loss_limit]
        return failed + ([f"loss at steps {steps}"] if steps else [])

    @property
    def passed(self) -> bool:
        return not self.failures()

    def unexpected(self) -> list[str]:
        """The failures not expected on this device (on CUDA: every failure)."""
        return [failure for failure in self.failures() if failure not in self.expected]

    @property
    def acceptable(self) -> bool:
        """Passed, or failed only where this device is expected to fail."""
        return not self.unexpected()

    def verdict(self) -> str:
        """PASS, FAIL (what), or EXPECTED FAIL (what; why it is expected here)."""
        if self.passed:
            return "PASS"
        if self.acceptable:
            return f"EXPECTED FAIL ({'; '.join(f'{f}: {self.expected[f]}' for f in self.failures())})"
        return f"FAIL ({', '.join(self.failures())})"

    def line(self) -> str:
        verdict = self.verdict()
        return (
            f"{verdict} {self.variant}: grad error vs float64 {self.grad_error:.1e} "
            f"(reference {self.reference_grad_error:.1e}); "
            f"SGD update diff {self.update_diff:.1e}; max loss diff {max(self.loss_diffs):.1e} "
            f"(limit {self.loss_limit:.1e}; "
            f"reference vs float64 {self.noise:.1e})"
        )


def variants(device: torch.device, compile: str) -> list[TrainPath]:
    """The fast-path variants to check: fused and foreach SGD, and the compiled one where asked (auto: on CUDA)."""
    fast = TrainPath("channels_last+fused+benchmark", channels_last=True, sgd_impl="fused")
    chosen = [fast, fast.with_(name="channels_last+foreach+benchmark", sgd_impl="foreach")]
    if compile == "on" or (compile == "auto" and device.type == "cuda"):
        chosen.append(fast.with_(name="channels_last+fused+compile", compile=True))
    return chosen


def batches(steps: int, batch_size: int, device: torch.device, seed: int = 0) -> list[Batch]:
    """`steps` augmented training batches of random images, from the tensor pipeline's loader."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (steps * batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (steps * batch_size,), generator=generator)
    loader = TensorLoader(images.to(device), labels.to(device), batch_size, train=True, seed=seed)
    return list(itertools.islice(loader, steps))


def plain_loop(code: str, path: TrainPath, device: torch.device, dtype: torch.dtype) -> PlainLoop:
    """The benchmark's plain loop over MacroNet(code) from seed 0's weights, in `dtype`."""
    return PlainLoop(make_net(code, path, device).to(dtype), path, device)


def gradients(
    code: str, path: TrainPath, batch: Batch, device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """All parameter gradients of the first batch's loss at the initial weights, flat, float64 on the CPU."""
    loop = plain_loop(code, path, device, dtype)
    loop.forward((batch[0].to(dtype), batch[1]))[1].mean().backward()
    return torch.cat([p.grad.flatten() for p in loop.net.parameters()]).double().cpu()


def trajectory(
    code: str, path: TrainPath, data: list[Batch], device: torch.device, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The loss of each SGD step, then the loss on the first batch after the last step."""
    loop = plain_loop(code, path, device, dtype)
    data = [(x.to(dtype), y) for x, y in data]
    losses = [loop.train_step(batch) for batch in data]
    loop.net.eval()
    with torch.no_grad():
        losses.append(loop.forward(data[0])[1].mean())
    return torch.stack(losses).double().cpu()


def update_diff(sgd_impl: str, device: torch.device, seed: int = 0) -> float:
    """Two steps of the recipe's SGD (`sgd_impl`) against the default on identical weights and gradients."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(64, 32, 1, 1), (64, 1, 5, 5), (64,), (10, 1280)]
    weights = [torch.randn(s, generator=generator).to(device) for s in shapes]
    grads = [[torch.randn(s, generator=generator).to(device) for s in shapes] for _ in range(2)]
    finals = []
    for impl in ("auto", sgd_impl):
        params = [nn.Parameter(w.clone()) for w in weights]
        optimizer = make_sgd(params, Recipe(), impl)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            optimizer.step()
        finals.append(torch.cat([p.detach().flatten() for p in params]))
    return ((finals[1] - finals[0]).abs().max() / finals[0].abs().max()).item()


def reference_run(code: str, data: list[Batch], device: torch.device) -> dict[str, Tensor]:
    """The reference's gradients and trajectory, float64's gradients, and the reference's largest relative loss
    distance from float64."""
    exact = {
        "grads": gradients(code, REFERENCE, data[0], device, torch.float64),
        "losses": trajectory(code, REFERENCE, data, device, torch.float64),
    }
    grads, losses = gradients(code, REFERENCE, data[0], device), trajectory(code, REFERENCE, data, device)
    noise = ((losses - exact["losses"]).abs() / losses.abs().clamp_min(1.0)).max()
    return {"grads": grads, "losses": losses, "noise": noise, "exact_grads": exact["grads"]}


def expected_failures(path: TrainPath, device: torch.device) -> dict[str, str]:
    """Failures expected of a variant on a device, with why: channels_last's gradients on a CPU; none on CUDA."""
    return {"gradients": CPU_CHANNELS_LAST} if device.type == "cpu" and path.channels_last else {}


def compare(
    code: str, path: TrainPath, reference: dict[str, Tensor], data: list[Batch], device: torch.device, tolerance: float
) -> Outcome:
    """Gradients, optimizer and trajectory of `path` on the same weights and batches, against the reference."""
    exact = reference["exact_grads"]
    error = lambda grads: ((grads - exact).norm() / exact.norm()).item()  # noqa: E731
    loss_diffs = (trajectory(code, path, data, device) - reference["losses"]).abs() / reference[
        "losses"
    ].abs().clamp_min(1.0)
    return Outcome(
        path.name,
        error(gradients(code, path, data[0], device)),
        error(reference["grads"]),
        update_diff(path.sgd_impl, device),
        loss_diffs.tolist(),
        reference["noise"].item(),
        tolerance,
        expected_failures(path, device),
    )


def check(
    code: str, device: torch.device, steps: int = 5, batch_size: int = 256, compile: str = "auto", tf32: bool = False
) -> list[Outcome]:
    """Every variant of `variants` against the reference path, on the same weights and batches."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    data = batches(steps, batch_size, device)
    reference = reference_run(code, data, device)
    tolerance = TOLERANCE["tf32" if tf32 and device.type == "cuda" else "fp32"]
    return [compare(code, path, reference, data, device, tolerance) for path in variants(device, compile)]


def main(argv: list[str] | None = None) -> int:
    """Run the check, print one PASS/FAIL line per variant, optionally write them as JSON; 1 on any FAIL."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fastpath_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", default="12012012")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--tf32", action="store_true", help="keep PyTorch's TF32 defaults (looser tolerance)")
    parser.add_argument("--json", default=None, help="also write the outcomes to this file")
    args = parser.parse_args(argv)
    outcomes = check(args.arch, torch.device(args.device), args.steps, args.batch_size, args.compile, args.tf32)
    for outcome in outcomes:
        print(outcome.line())
    if args.json:
        rows = [
            {**vars(o), "loss_limit": o.loss_limit, "failures": o.failures(), "passed": o.passed,
             "acceptable": o.acceptable}
            for o in outcomes
        ]  # fmt: skip
        Path(args.json).write_text(
            json.dumps({"arch": args.arch, "device": args.device, "steps": args.steps, "outcomes": rows}, indent=1)
        )
    print("fastpath_check:", summary(outcomes))
    return 0 if all(o.acceptable for o in outcomes) else 1


def summary(outcomes: list[Outcome]) -> str:
    """The last line: PASS, PASS with the expected failures named, or FAIL."""
    if all(o.passed for o in outcomes):
        return "PASS"
    if all(o.acceptable for o in outcomes):
        failed = sorted({f for o in outcomes for f in o.failures()})
        return f"PASS (every failure is expected on this device: {', '.join(failed)}; see the EXPECTED FAIL lines)"
    return "FAIL"


if __name__ == "__main__":
    sys.exit(main())
