"""The zero-cost proxies, each as its paper defines it, on any torch network (torch here).

Every function takes a network at initialisation and returns one float; none changes the caller's network (each
works on a deep copy). "Prunable" weights are those of Conv2d and Linear modules, as in the papers' code (biases and
BatchNorm parameters excluded). Data-based proxies take a batch (images, labels); data-free ones none.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ZEN_ALPHA = 0.01  # Zen-score's perturbation scale alpha (Lin et al. 2021)
JACOV_K = 1e-5  # jacov's eigenvalue offset k (Mellor et al. 2021, v1)


def prunable(net: nn.Module) -> Iterator[nn.Module]:
    """The Conv2d and Linear modules of a network (whose weights the proxies score)."""
    return (m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _loss_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Cross-entropy of the batch, backpropagated into the weights' .grad (train mode: BatchNorm on batch stats)."""
    net.train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()


def snip(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP (Lee, Ajanthan, Torr, ICLR 2019, "SNIP: single-shot network pruning based on connection sensitivity"):
    sum over prunable weights of |dL/dw * w|, L the cross-entropy of one batch."""
    net = copy.deepcopy(net)
    _loss_grads(net, x, y)
    return float(sum((m.weight.grad * m.weight.detach()).abs().sum() for m in prunable(net)))


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """grad_norm (Abdelfattah, Mehrotra, Dudziak, Lane, ICLR 2021, "Zero-cost proxies for lightweight NAS"): sum
    over prunable layers of the Euclidean norm of dL/dW, L the cross-entropy of one batch."""
    net = copy.deepcopy(net)
    _loss_grads(net, x, y)
    return float(sum(m.weight.grad.norm() for m in prunable(net)))


def grasp(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """GraSP (Wang, Zhang, Grosse, ICLR 2020, "Picking winning tickets before training by preserving gradient
    flow"): sum over prunable weights of -w * (H g), g = dL/dw and H the Hessian of L, L the cross-entropy of one
    batch (the Hessian-gradient product by double backpropagation; the sum, as Abdelfattah et al. 2021 rank it)."""
    net = copy.deepcopy(net)
    net.train()
    weights = [m.weight for m in prunable(net)]
    loss = F.cross_entropy(net(x), y)
    g = [t.detach() for t in torch.autograd.grad(loss, weights)]
    loss = F.cross_entropy(net(x), y)
    g_graph = torch.autograd.grad(loss, weights, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g_graph, g)), weights)
    return float(sum((-w.detach() * h).sum() for w, h in zip(weights, hg)))


def jacov(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """jacov (Mellor, Turner, Storkey, Crowley, arXiv:2006.04647 v1, 2020, "Neural architecture search without
    training"): the Jacobians J_i = d(sum of outputs)/dx_i of the batch's images, C their correlation matrix with
    eigenvalues l; score -sum(log(l + k) + 1 / (l + k)), k = 1e-5 (higher: less correlated, better)."""
    net = copy.deepcopy(net)
    net.train()
    x = x.detach().clone().requires_grad_(True)
    net(x).sum().backward()
    jac = x.grad.reshape(len(x), -1).double().numpy()
    eig = np.linalg.eigvalsh(np.corrcoef(jac))
    return float(-np.sum(np.log(eig + JACOV_K) + 1.0 / (eig + JACOV_K)))


def naswot(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """NASWOT (Mellor, Turner, Storkey, Crowley, ICML 2021, "Neural architecture search without training"): the
    binary codes c_i of which ReLUs are active for each image of the batch; K_H[i, j] = number of units where c_i
    and c_j agree (N_A - Hamming distance); score log|det K_H|."""
    net = copy.deepcopy(net)
    net.train()
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64)

    def hook(_module: nn.Module, _inputs: object, out: torch.Tensor) -> None:
        c = (out.detach().reshape(len(out), -1) > 0).double()
        kernel.add_(c @ c.T + (1 - c) @ (1 - c).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def _without_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of `net` with every BatchNorm replaced by the identity."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    return net


def synflow(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow (Tanaka, Kunin, Yamins, Ganguli, NeurIPS 2020, "Pruning neural networks without any data by
    iteratively conserving synaptic flow"): R = 1^T (prod |W|) 1, the sum of the outputs of the network with every
    parameter replaced by its absolute value on an all-ones input (float64, BatchNorm removed, as Abdelfattah et al.
    2021); score sum over prunable weights of |dR/dw * w|. Data-free."""
    net = _without_batchnorm(net).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    return float(sum((m.weight.grad * m.weight.detach()).abs().sum() for m in prunable(net)))


def gaussian_init(net: nn.Module) -> nn.Module:
    """Zen-score's initialisation, in place: Conv2d and Linear weights N(0, 1), biases 0, BatchNorm weight 1 bias 0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return net


def zen_score(
    net: nn.Module, features: Callable[[nn.Module, torch.Tensor], torch.Tensor], x: torch.Tensor, eps: torch.Tensor
) -> float:
    """Zen-score (Lin, Wang, Sun, Chen, Sun, Qian, Li, Jin, ICCV 2021, "Zen-NAS: a zero-shot NAS for
    high-performance image recognition"): weights N(0, 1) (`gaussian_init`), x and eps ~ N(0, 1), f the pre-pooling
    feature map (`features`); log E ||f(x) - f(x + alpha eps)||_F + sum over BatchNorm layers of log sqrt(mean over
    channels of the batch variance of its input in the f(x) pass), alpha = 0.01. Data-free (Gaussian input). The
    authors' code sums |differences| (L1) and reads BatchNorm's running variance instead: the paper's norm here."""
    net = gaussian_init(copy.deepcopy(net)).train()
    variances: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: object) -> None:
        variances.append(inputs[0].detach().double().var(dim=(0, 2, 3), unbiased=False).mean())

    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        handles = [m.register_forward_hook(hook) for m in norms]
        try:
            clean = features(net, x)
        finally:
            for h in handles:
                h.remove()
        mixed = features(net, x + ZEN_ALPHA * eps)
    delta = (clean - mixed).double().reshape(len(x), -1).norm(dim=1).mean()
    return float(torch.log(delta) + sum(0.5 * torch.log(v) for v in variances)) if delta > 0 else -math.inf
