"""`python -m nbm_lightning.arch CODE [--plot arch.png]`: the canonical code, a per-layer table and the complexity
counts; `--plot` draws the network (nbm_lightning.arch.picture; extra [plots]) into a PNG."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli import ArgParser, arch_code, run_main, write_failed
from ..core.errors import UserError
from ..core.validate import shown
from .codes import ArchSpec, LayerSpec, parse

PROG = "python -m nbm_lightning.arch"


IDENTITY_CONV = (
    "conv1x1+bn"  # the op column of an identity where the shape changes (nbm_lightning.arch.network.build_layer)
)


def op_label(layer: LayerSpec) -> str:
    """The op as built: an identity whose stride or width changes is a 1x1 convolution + BatchNorm."""
    reshapes = layer.stride != 1 or layer.in_channels != layer.out_channels
    return IDENTITY_CONV if layer.is_identity and reshapes else layer.op.name


def layer_table(spec: ArchSpec) -> list[str]:
    """Rows describing each searchable layer of a spec, and a line explaining conv1x1+bn where one occurs."""
    rows = [
        f"{'layer':>5} {'stage':>5} {'digit':>5} {'op':<10} {'in':>4} {'out':>4} {'stride':>6} {'size':>7} {'res':>4}"
    ]
    for layer in spec.layers:
        size = f"{layer.out_size}x{layer.out_size}"
        rows.append(
            f"{layer.index:>5} {layer.stage:>5} {layer.op.digit:>5} {op_label(layer):<10} {layer.in_channels:>4} "
            f"{layer.out_channels:>4} {layer.stride:>6} {size:>7} {'yes' if layer.residual else '-':>4}"
        )
    if any(op_label(layer) == IDENTITY_CONV for layer in spec.layers):
        rows.append(f"{IDENTITY_CONV}: digit 0 (identity) where the shape changes is a 1x1 convolution + BatchNorm")
    return rows


def _is_dir(path: str) -> bool:
    """True where `path` is a folder; a path the system refuses (a name too long) is no file path either."""
    try:
        return Path(path).is_dir()
    except OSError:
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Print a code's canonical form, layers, params, FLOPs and ptflops MACs."""
    parser = ArgParser(prog=PROG, description=__doc__)
    parser.add_argument("code", type=arch_code, help="8 digits over {0,1,2}, e.g. 12012012")
    parser.add_argument("--plot", metavar="PATH", default=None, help="also draw the network into this PNG file")
    args = parser.parse_args(argv)
    if args.plot is not None and (not args.plot or _is_dir(args.plot)):
        raise UserError(f"invalid --plot {shown(args.plot)}: expected a PNG file path, e.g. arch.png")
    from .complexity import complexity  # torch loads only once the input is known to be good

    spec = parse(args.code)
    counts = complexity(spec.code, with_ptflops=True)
    print(f"code        {spec.code}")
    print(f"canonical   {spec.canonical}{'' if spec.code == spec.canonical else '  (non-canonical input)'}")
    print("\n".join(layer_table(spec)))
    print(f"params      {counts.params:,}")
    print(f"flops       {counts.flops:,}  (conv+linear weight MACs, one 3x32x32 image)")
    print(f"ptflops     {counts.ptflops_macs:,}  (ptflops backend=aten MACs)")
    if args.plot is not None:
        from .picture import save_png

        try:
            print(f"wrote {save_png(spec.code, args.plot, counts.params, counts.flops)}")
        except OSError as err:
            raise write_failed("--plot", args.plot, err) from None
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
