"""Scoring networks: every proxy of the settings for one code (`score_code`), and many codes into a proxies file,
saved as it goes and resumed (`run`, through core.session like the cost command)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import torch

from ..arch.codes import INPUT_CHANNELS, INPUT_SIZE, canonical
from ..arch.complexity import complexity
from ..arch.network import MacroNet
from ..core.atomic import atomic_write_text
from ..core.provenance import device_info
from ..core.session import check_resumable, run_saving
from ..hwcost.measure import cpu_name, now
from . import scores
from .proxyfile import COUNTS, ProxyFile, Score, Settings, dumps, finite_or_none, load

INPUT_SHAPE = (INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)  # one CIFAR-10 image
Batch = tuple[torch.Tensor, torch.Tensor]  # images [B, 3, 32, 32] normalised, labels [B]


def features(net: MacroNet, x: torch.Tensor) -> torch.Tensor:
    """MacroNet's feature map before global average pooling (Zen-score's f)."""
    return net.head(net.layers(net.stem(x)))


def data_batches(data_dir: str | os.PathLike[str], batch_size: int, seeds: Sequence[int]) -> dict[int, Batch]:
    """Seed -> the first training batch of the project's DataModule with that seed (shuffled, augmented as in
    training: the tensor pipeline, on the CPU)."""
    from ..training.datamodule import CIFAR10DataModule, DataCache

    cache, batches = DataCache(), {}
    for seed in seeds:
        dm = CIFAR10DataModule(data_dir, batch_size=batch_size, download=False, seed=seed, device="cpu", cache=cache)
        dm.setup("fit")
        batches[seed] = next(iter(dm.train_dataloader()))
    return batches


def gaussian_inputs(batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zen-score's x and eps: two N(0, 1) batches from a generator seeded by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch_size, *INPUT_SHAPE, generator=generator) for _ in range(2))


def _timed(fn: Callable[[], float]) -> tuple[float | None, float]:
    """(value or None where not finite, seconds) of one call."""
    start = time.perf_counter()
    value = fn()
    return finite_or_none(value), time.perf_counter() - start


def seeded_call(proxy: str, net: MacroNet, batch_size: int, seed: int, batches: Mapping[int, Batch]):
    """The call that computes a seeded proxy on `net` (initialised with `seed`) and the seed's batch or input."""
    if proxy == "synflow":
        return lambda: scores.synflow(net, INPUT_SHAPE)
    if proxy == "zen":
        x, eps = gaussian_inputs(batch_size, seed)
        return lambda: scores.zen_score(net, features, x, eps)
    fn = getattr(scores, proxy)
    return lambda: fn(net, *batches[seed])


def score_code(code: str, settings: Settings, batches: Mapping[int, Batch]) -> dict[str, Score]:
    """Every proxy of `settings` for the network of `code`: seeded ones on the network initialised with each seed."""
    values: dict[str, list[tuple[float | None, float]]] = {p: [] for p in settings.proxies}
    for proxy in COUNTS:
        if proxy in values:
            values[proxy].append(_timed(lambda p=proxy: getattr(complexity(code, settings.num_classes), p)))
    for seed in settings.seeds:
        torch.manual_seed(seed)
        net = MacroNet(code, settings.num_classes)
        for proxy in settings.proxies:
            if proxy not in COUNTS:
                values[proxy].append(_timed(seeded_call(proxy, net, settings.batch_size, seed, batches)))
    return {p: Score(tuple(v for v, _ in pairs), tuple(s for _, s in pairs)) for p, pairs in values.items()}


def entry_line(entry: Mapping[str, Score]) -> str:
    """One network's scores in a progress line."""
    return ", ".join(f"{p} {s.mean():.4g}" if s.mean() is not None else f"{p} -" for p, s in entry.items())


def run(
    codes: Sequence[str],
    settings: Settings,
    out: str | os.PathLike[str],
    command: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    save_every_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> ProxyFile:
    """Score the canonical network of every code of `codes` that the file `out` lacks; return the file as saved."""
    from ..core.provenance import library_versions

    out = Path(out)
    codes = list(dict.fromkeys(canonical(code) for code in codes))
    torch.set_num_threads(settings.threads)
    device = {**device_info(torch.device("cpu")), "name": cpu_name()}
    run_info = {"command": list(command), "started": now(), "host": device.get("host")}
    fresh = ProxyFile(settings, device, library_versions(), (run_info,), MappingProxyType({}), str(out))
    existing = load(out) if os.path.lexists(out) else None
    if existing is not None:
        check_resumable(existing.identity(), fresh.identity(), out, "scored")
    base = existing or fresh
    runs = (*existing.runs, run_info) if existing else fresh.runs
    results: dict[str, Mapping[str, Score]] = dict(base.scores)
    todo = [code for code in codes if code not in results]
    needs_data = settings.data is not None and todo
    batches = data_batches(data_dir, settings.batch_size, settings.seeds) if needs_data else {}

    def current() -> ProxyFile:
        return ProxyFile(settings, base.device, base.versions, runs, MappingProxyType(dict(results)), str(out))

    log(f"proxies: {len(codes)} codes selected, {len(codes) - len(todo)} already in {out}, {len(todo)} to score "
        f"({', '.join(settings.proxies)}), seeds {', '.join(map(str, settings.seeds))}, batch {settings.batch_size}, "
        f"{settings.threads} threads")  # fmt: skip
    save = lambda: atomic_write_text(out, dumps(current()))  # noqa: E731
    run_saving(todo, lambda code: MappingProxyType(score_code(code, settings, batches)), results, save,
               lambda _code, entry: entry_line(entry), "proxies", out, save_every_s, log)  # fmt: skip
    return current()
