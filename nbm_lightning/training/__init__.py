"""One run: data, the LightningModule, callbacks, checkpoints, and the run itself (run.py)."""
