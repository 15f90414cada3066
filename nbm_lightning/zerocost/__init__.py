"""Zero-cost proxies of every network: the proxies file and its report (no torch), the proxies and scoring (torch).

    python -m nbm_lightning.proxies --proxies synflow,zen,params,flops --seeds 0     # into results/proxies.json
    python -m nbm_lightning.proxies report results/proxies.json                     # against the benchmark

Modules: `proxyfile` (the format: settings, scores, reader, writer) and `report` (each proxy's rank correlation with
the benchmark's mean accuracy, bootstrap intervals, the seed-noise ceiling) load no torch; `scores` (each proxy as
its paper defines it) and `session` (one network, many saved as they go, resumed) do, and are imported by
`python -m nbm_lightning.proxies` only.
"""
