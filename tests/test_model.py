"""MacroNet and its complexity, pinned to the published file."""

import struct
import subprocess
import sys

import pytest
import torch

from nbm_lightning.arch import codes as ss
from nbm_lightning.arch.complexity import complexity, count_flops, count_params, ptflops_macs
from nbm_lightning.arch.network import MacroNet

SMALLEST, LARGEST = "00000000", "22222222"


def test_every_published_key_matches_canonical_record_params_and_flops(published):
    assert sorted(published) == list(ss.all_codes())
    canon = {code: ss.canonical(code) for code in published}
    assert len(set(canon.values())) == 3969
    mismatched_records = [c for c, k in canon.items() if published[c] != published[k]]
    assert mismatched_records == []
    mismatches = []
    for code in ss.all_codes():
        got = complexity(code)
        want = published[code]
        if (got.params, got.flops) != (want["params"], want["flops"]):
            mismatches.append((code, got, want["params"], want["flops"]))
    assert mismatches == [], f"{len(mismatches)} mismatches, first: {mismatches[:3]}"


def test_published_extremes(published):
    params = [r["params"] for r in published.values()]
    flops = [r["flops"] for r in published.values()]
    assert (min(params), max(params), min(flops), max(flops)) == (387882, 2932586, 7713280, 105660928)
    assert complexity(SMALLEST).params == 387882 and complexity(LARGEST).flops == 105660928


@pytest.mark.parametrize("code", [SMALLEST, "12012012", "20000000", "01020010", LARGEST])
def test_ptflops_is_flops_plus_linear_bias(code, published):
    model = MacroNet(code)
    assert ptflops_macs(model) == count_flops(model) + 10 == published[code]["flops"] + 10


def test_ptflops_on_sample_of_unique_codes(published):
    for code in ss.unique_codes()[::397]:  # 10 codes spread over the space
        assert complexity(code, with_ptflops=True).ptflops_macs == published[code]["flops"] + 10


def test_ptflops_and_count_flops_leave_model_unchanged():
    torch.manual_seed(0)
    model = MacroNet("12012012").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    ptflops_macs(model)
    count_flops(model)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks_before
    assert not any(hasattr(m, "__flops__") for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_counts_from_first_principles_for_smallest():
    # stem 3*32*9 conv + 2*32 BN; identity downsamples 1x1 conv + BN; head 256*1280 + BN; linear 1280*10+10
    convs = [(3, 32, 9), (32, 64, 1), (64, 128, 1), (128, 256, 1), (256, 1280, 1)]
    params = sum(i * o * k + 2 * o for i, o, k in convs) + 1280 * 10 + 10
    sizes = [32, 16, 8, 4, 4]
    flops = sum(i * o * k * s * s for (i, o, k), s in zip(convs, sizes)) + 1280 * 10
    model = MacroNet(SMALLEST)
    assert count_params(model) == params and count_flops(model) == flops


@pytest.mark.parametrize("code", [SMALLEST, LARGEST])
def test_forward_shape_and_gradients(code):
    torch.manual_seed(0)
    model = MacroNet(code)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_residual_only_where_shape_allows():
    model = MacroNet("12012012")
    flags = [getattr(layer, "residual", None) for layer in model.layers]
    assert flags == [False, True, None, True, True, None, True, True]
    assert isinstance(model.layers[2][0], torch.nn.Conv2d) and model.layers[2][0].stride == (2, 2)


def test_num_classes_injected():
    assert MacroNet("12012012", num_classes=100)(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ValueError, match="num_classes"):
        MacroNet("12012012", num_classes=1)


def test_arch_cli_prints_table_and_counts(published):
    out = subprocess.run(
        [sys.executable, "-m", "nbm_lightning.arch", "10201201"], capture_output=True, text=True, check=True
    ).stdout
    record = published["10201201"]
    assert "canonical   10210210" in out
    assert f"{record['params']:,}" in out and f"{record['flops']:,}" in out and f"{record['flops'] + 10:,}" in out
    assert out.count("mb_k3_e3") == 3 and "4x4" in out


def test_arch_table_names_what_each_identity_builds():
    from nbm_lightning.arch.__main__ import IDENTITY_CONV, layer_table
    from nbm_lightning.arch.codes import parse
    from nbm_lightning.arch.network import build_layer

    spec = parse("01000000")  # stage starts: identities that downsample and widen; the rest: true identities
    rows = layer_table(spec)
    ops = [row.split()[3] for row in rows[1:9]]
    assert ops == [
        IDENTITY_CONV,
        "mb_k3_e3",
        IDENTITY_CONV,
        "identity",
        "identity",
        IDENTITY_CONV,
        "identity",
        "identity",
    ]
    for op, layer in zip(ops, spec.layers):  # the label is what the model builds
        built = build_layer(layer)
        convs = [m for m in built.modules() if isinstance(m, torch.nn.Conv2d)]
        assert (op == IDENTITY_CONV) == (len(convs) == 1 and convs[0].kernel_size == (1, 1))
        assert (op == "identity") == isinstance(built, torch.nn.Identity)
    assert rows[-1].startswith(f"{IDENTITY_CONV}: digit 0 (identity) where the shape changes is a 1x1 convolution")
    assert not any(IDENTITY_CONV in row for row in layer_table(parse("10201201")))


@pytest.mark.parametrize("bad", ["1201201", "12012013", "abcdefgh"])
def test_arch_cli_bad_code_exit_2_one_line(bad):
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.arch", bad], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(bad) in lines[0] and "{0, 1, 2}" in lines[0] and "Traceback" not in proc.stderr


def test_arch_cli_plots_the_network(tmp_path):
    out = tmp_path / "pics" / "arch.png"
    proc = subprocess.run([sys.executable, "-m", "nbm_lightning.arch", "10201201", "--plot", str(out)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert f"wrote {out}" in proc.stdout and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", out.read_bytes()[16:24])  # the IHDR chunk: the figure's size in pixels
    assert width > 3 * height > 0 and not list(out.parent.glob(".*.tmp"))  # left to right; written atomically


@pytest.mark.parametrize(
    "argv, hide, message",
    [(["10201201", "--plot", "."], None, "invalid --plot '.'"),
     (["10201201", "--plot", "a.png"], "matplotlib", 'pip install "nbm_lightning[plots]"')],
)  # fmt: skip
def test_arch_cli_plot_errors_exit_2_one_line(argv, hide, message, monkeypatch, tmp_path, capsys):
    from nbm_lightning.arch import __main__ as arch
    from nbm_lightning.cli import run_main

    monkeypatch.chdir(tmp_path)
    if hide:
        monkeypatch.setitem(sys.modules, hide, None)
    assert run_main(arch.main, argv, prog=arch.PROG) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("code", [SMALLEST, "10201201", "01002010", "21120102", LARGEST])
def test_memoized_complexity_equals_whole_model_counts(code):
    # complexity() sums MacroNet's parts; the whole network, counted in one piece, must agree.
    with torch.device("meta"):
        model = MacroNet(code)
    got = complexity(code)
    assert (got.params, got.flops) == (count_params(model), count_flops(model))
    assert [name for name, _ in model.named_children()] == ["stem", "layers", "head", "pool", "classifier"]


def test_whole_model_counts_on_sample_of_all_codes(published):
    for code in ss.all_codes()[::331]:  # 20 codes, canonical and not
        with torch.device("meta"):
            model = MacroNet(code)
        assert (count_params(model), count_flops(model)) == (published[code]["params"], published[code]["flops"])
