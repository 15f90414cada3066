"""The zero-cost proxies (issue 21, points 1, 3, 4): each proxy against a hand computation on a tiny network, the
data-based ones on a batch of synthetic CIFAR-10 through the DataModule, the file resumed after an interrupt without
scoring a code twice, bad input and tampered files refused in one line, the report against the published file.

Tiny networks, cheap MacroNets (mostly identity ops), batches of 8: 11-28 s on 2 shared cores (one subprocess).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nbm_lightning import proxies as proxies_cli
from nbm_lightning.arch.complexity import complexity
from nbm_lightning.bench import Benchmark
from nbm_lightning.bench.rankstats import kendall_tau, spearman_rho
from nbm_lightning.cli import run_main
from nbm_lightning.core.errors import UserError
from nbm_lightning.zerocost import proxyfile, scores, session
from nbm_lightning.zerocost.proxyfile import ProxyFile, ProxyFileError, Score, Settings, load
from nbm_lightning.zerocost.report import correlations, report_lines

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = "00000000"  # the cheapest network (all identity ops)
CHEAP = ("00000000", "00000100", "00100000", "10000000", "00000200")  # canonical codes of cheap networks


def _linear(n_in: int, n_out: int, seed: int, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out, bias=bias).double()


def _batch(n: int = 6, dim: int = 4, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def test_synflow_is_the_path_sum_of_absolute_weights():
    one = nn.Sequential(_linear(4, 3, 0))
    assert scores.synflow(one, (4,)) == pytest.approx(float(_np(one[0].weight).__abs__().sum()))  # dR/dW = 1
    two = nn.Sequential(_linear(4, 3, 1, bias=False), nn.BatchNorm1d(3), _linear(3, 2, 2, bias=False))
    w1, w2 = np.abs(_np(two[0].weight)), np.abs(_np(two[2].weight))  # R = 1^T |W2| |W1| 1, BatchNorm removed
    hand = (w1 * w2.sum(0)[:, None]).sum() + (w2 * w1.sum(1)[None, :]).sum()
    assert scores.synflow(two, (4,)) == pytest.approx(hand, rel=1e-12)
    assert two[0].weight.min() < 0  # the caller's network keeps its signs


def _ce_grad(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/dW of the mean cross-entropy of a linear classifier: (softmax - onehot)^T x / N."""
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


def test_snip_and_grad_norm_of_a_linear_classifier():
    net = nn.Sequential(_linear(4, 3, 3))
    x, y = _batch()
    grad = _ce_grad(_np(net[0].weight), _np(net[0].bias), _np(x), y.numpy())
    assert scores.snip(net, x, y) == pytest.approx(np.abs(grad * _np(net[0].weight)).sum(), rel=1e-10)
    assert scores.grad_norm(net, x, y) == pytest.approx(np.linalg.norm(grad), rel=1e-10)


def test_grasp_is_minus_w_times_hessian_gradient():
    net = nn.Sequential(_linear(4, 3, 4))
    x, y = _batch(seed=1)
    w0, b = net[0].weight.detach().clone(), net[0].bias.detach()

    def loss(w: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(x @ w.reshape(3, 4).T + b, y)

    flat = w0.reshape(-1)
    hessian = torch.autograd.functional.hessian(loss, flat)  # the full 12 x 12 Hessian, then H g
    g = torch.autograd.functional.jacobian(loss, flat)
    assert scores.grasp(net, x, y) == pytest.approx(float(-(flat * (hessian @ g)).sum()), rel=1e-8)


def test_naswot_and_jacov_of_a_one_hidden_layer_relu_net():
    net = nn.Sequential(_linear(4, 5, 5), nn.ReLU(), _linear(5, 1, 6))
    x, _ = _batch(n=5, seed=2)
    w1, b1, w2 = _np(net[0].weight), _np(net[0].bias), _np(net[2].weight)
    c = (_np(x) @ w1.T + b1 > 0).astype(np.float64)  # which ReLUs each image turns on
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    assert scores.naswot(net, x) == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-12)
    jac = (c * w2[0]) @ w1  # d(sum of outputs)/dx_i = W1^T diag(c_i) w2
    eig = np.linalg.eigvalsh(np.corrcoef(jac))
    hand = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert scores.jacov(net, x) == pytest.approx(hand, rel=1e-9)


def test_zen_score_of_a_conv_and_batchnorm():
    net = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3)).double()
    g = torch.Generator().manual_seed(3)
    x, eps = (torch.randn(4, 2, 5, 5, generator=g, dtype=torch.float64) for _ in range(2))
    torch.manual_seed(7)
    zen = scores.zen_score(net, lambda n, t: n(t), x, eps)
    torch.manual_seed(7)
    w = torch.randn(3, 2, dtype=torch.float64).numpy()  # gaussian_init draws the weight N(0, 1) from the same stream

    def f(t: np.ndarray) -> tuple[np.ndarray, float]:  # BatchNorm on batch statistics, weight 1, bias 0
        z = np.einsum("oc,nchw->nohw", w, t)
        var = z.var(axis=(0, 2, 3))
        return (z - z.mean(axis=(0, 2, 3))[None, :, None, None]) / np.sqrt(var + 1e-5)[None, :, None, None], var

    clean, var = f(x.numpy())
    mixed, _ = f(x.numpy() + 0.01 * eps.numpy())
    delta = np.linalg.norm((clean - mixed).reshape(4, -1), axis=1).mean()
    assert zen == pytest.approx(math.log(delta) + 0.5 * math.log(var.mean()), rel=1e-9)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    from nbm_lightning.synthetic.cifar10 import write_cifar10

    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=40, n_test=10)
    return root


def test_data_based_proxies_read_the_datamodules_seeded_batch(cifar, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBM_CIFAR_SKIP_MD5", "1")
    out = tmp_path / "p.json"
    argv = ["--proxies", "snip,grad_norm,grasp,jacov,naswot,params", "--codes", IDENTITY, "--seeds", "0,1",
            "--batch-size", "8", "--threads", "1", "--data-dir", str(cifar), "--out", str(out)]  # fmt: skip
    assert run_main(proxies_cli.main, argv) == 0
    file = load(out)
    assert file.settings.data["md5_checked"] is False and file.settings.seeds == (0, 1)
    entry = file.scores[IDENTITY]
    assert all(len(entry[p].values) == 2 and None not in entry[p].values for p in proxyfile.DATA_BASED)
    assert entry["snip"].values[0] != entry["snip"].values[1]  # another seed: another network and batch
    batches = session.data_batches(cifar, 8, (0, 1))
    assert batches[0][0].shape == (8, 3, 32, 32) and not torch.equal(batches[0][0], batches[1][0])
    from nbm_lightning.arch.network import MacroNet

    torch.manual_seed(1)
    assert entry["naswot"].values[1] == pytest.approx(scores.naswot(MacroNet(IDENTITY), *batches[1]), rel=1e-9)
    assert entry["params"].values == (complexity(IDENTITY).params,)


def test_an_interrupt_saves_and_a_rerun_scores_no_code_twice(tmp_path, monkeypatch):
    out, settings = tmp_path / "p.json", Settings(("synflow", "params", "flops"), 4, (0,), 1)
    scored, real = [], session.score_code

    def counting(code, *args):
        scored.append(code)
        if len(scored) == 3:
            raise KeyboardInterrupt  # a kill while the third code is scored
        return real(code, *args)

    monkeypatch.setattr(session, "score_code", counting)
    with pytest.raises(KeyboardInterrupt):
        session.run(CHEAP, settings, out, ["test"], save_every_s=0, log=lambda _: None)
    first = load(out)
    assert sorted(first.scores) == sorted(CHEAP[:2])
    lines = []
    monkeypatch.setattr(session, "score_code", real)
    done = session.run(CHEAP, settings, out, ["again"], save_every_s=0, log=lines.append)
    assert sorted(done.scores) == sorted(CHEAP) and len(done.runs) == 2
    assert "2 already in" in lines[0] and sum(f"] {c} " in " ".join(lines) for c in CHEAP[:2]) == 0
    assert done.scores[CHEAP[0]]["synflow"] == first.scores[CHEAP[0]]["synflow"]  # kept, not scored again
    with pytest.raises(Exception, match="cannot resume .*seeds"):
        session.run(CHEAP, Settings(("synflow", "params", "flops"), 4, (0, 1), 1), out, ["x"], log=lambda _: None)


def test_resume_after_a_kill_scores_no_code_twice(tmp_path, capsys):
    out, env = tmp_path / "p.json", {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["--proxies", "synflow,params", "--codes", ",".join(CHEAP), "--seeds", "0", "--threads", "1",
            "--save-every-s", "0", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "nbm_lightning.proxies", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("proxies: [1/"):
            proc.send_signal(signal.SIGKILL)  # no handler runs: only what was saved survives
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, lines
    first = load(out)
    assert 1 <= len(first.scores) < len(CHEAP)
    assert run_main(proxies_cli.main, argv) == 0  # the same command again, in this process
    again = capsys.readouterr().out.splitlines()
    scored_again = [line.split()[2] for line in again if line.startswith("proxies: [")]
    assert sorted(scored_again) == sorted(set(CHEAP) - set(first.scores)) and "already in" in again[0]
    final = load(out)
    assert sorted(final.scores) == sorted(CHEAP) and len(final.runs) == 2
    assert all(final.scores[code] == entry for code, entry in first.scores.items())  # kept as scored first


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--proxies", "synflow,magic"], "invalid --proxies 'synflow,magic'"),
        (["--seeds", "0,-1"], "seed"),
        (["--codes", "12345678"], "argument --codes: invalid arch code"),
        (["--batch-size", "1"], "--batch-size"),
        (["--proxies", "snip"], "needs --data-dir"),
        (["report", "no/such/file.json"], "no/such/file.json"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, fragment, capsys, tmp_path):
    argv = argv if argv[0] == "report" else [*argv, "--out", str(tmp_path / "o.json")]
    try:
        status = run_main(proxies_cli.main, argv, prog="proxies")
    except SystemExit as exit:  # argparse's errors (cli.ArgParser: one line, status 2)
        status = exit.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proxies") / "p.json"
    session.run(CHEAP[:3], Settings(("synflow", "params", "flops"), 4, (0, 1), 1), out, ["t"], log=lambda _: None)
    return out


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d["scores"].update({"00000001": d["scores"]["00000000"]}), "'00000001': expected a canonical"),
        (
            lambda d: d["scores"]["00000000"]["synflow"].update(values=[1.0], seconds=[0.1]),
            "synflow has 1 values, expected 2",
        ),
        (lambda d: d["scores"]["00000000"]["flops"].update(values=["1"]), "value '1'"),
        (lambda d: d["scores"]["00000000"]["flops"].update(seconds=[-1.0]), "seconds -1.0"),
        (lambda d: d["definitions"].update(synflow="mine"), "definitions"),
        (lambda d: d["settings"].update(proxies=["flops", "synflow", "params"]), "invalid proxies"),
        (lambda d: d["scores"]["00000000"].pop("params"), "proxies ['flops', 'synflow']"),
    ],
)
def test_a_tampered_file_is_refused_in_one_line(written, tmp_path, edit, fragment, capsys):
    data = json.loads(written.read_text())
    edit(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ProxyFileError) as err:
        load(bad)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert run_main(proxies_cli.main, ["report", str(bad)], prog="proxies") == 2
    assert fragment in capsys.readouterr().err


def test_report_flops_against_the_published_file(published_path):
    bench = Benchmark.load(published_path, quiet=True)
    flops = {c: Score((float(f),), (0.0,)) for c, f in zip(bench.codes, bench.flops)}
    noise = {c: Score((float(i % 7),), (0.0,)) for i, c in enumerate(bench.codes)}
    entries = {c: {"params": noise[c], "flops": flops[c]} for c in bench.codes}
    file = ProxyFile(Settings(("params", "flops"), 4, (0,), 1), {"type": "cpu"}, {}, ({},), entries, "mem")
    rows = correlations(file, bench, resamples=30)
    everything, top = rows["all"], rows["top 10%"]
    flops_row = everything[1]
    assert flops_row.n == 3969 and flops_row.spearman.value == pytest.approx(spearman_rho(bench.flops, bench.mean_acc))
    assert 0.7 < flops_row.spearman.value < 0.8  # the 0.74
    assert flops_row.spearman.low < flops_row.spearman.value < flops_row.spearman.high
    assert flops_row.kendall.value == pytest.approx(kendall_tau(bench.flops, bench.mean_acc))
    ceiling = everything[-1]
    pairs = [(0, 1), (0, 2), (1, 2)]
    assert ceiling.name == "seed noise" and ceiling.spearman.value == pytest.approx(
        np.mean([spearman_rho(bench.test_acc[:, i], bench.test_acc[:, j]) for i, j in pairs])
    )
    assert top[0].n == 397 and abs(top[0].spearman.value) < 0.2  # a proxy of noise does not predict accuracy
    best = np.argsort(-bench.mean_acc, kind="stable")[:397]
    assert top[1].spearman.value == pytest.approx(spearman_rho(bench.flops[best], bench.mean_acc[best]))
    lines = report_lines(file, bench, resamples=10)
    assert any(line.startswith("| flops | 3969 |") for line in lines) and any("seed noise" in ln for ln in lines)
    two = ProxyFile(file.settings, {"type": "cpu"}, {}, ({},), dict(list(entries.items())[:2]), "two")
    with pytest.raises(UserError, match="two: 2 networks: a rank correlation needs at least 3"):
        correlations(two, bench)
    partial = Benchmark.from_records([bench.record(i) for i in range(10)], "ten")
    with pytest.raises(UserError, match="3959 of its 3969 networks are not in the benchmark ten, e.g. "):
        correlations(file, partial)
