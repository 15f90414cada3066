"""Many runs: the worker, the pair lock, preflight checks, requeue argv, the W&B workspace."""
