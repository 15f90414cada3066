"""Many runs: the worker, the pair lock, preflight checks, requeue argv, sweep files, missing pairs, sweep agents,
the W&B workspace."""
