"""nbm_lightning: NAS-Bench-Macro, reproducibly regenerated with PyTorch Lightning and Weights & Biases."""

__version__ = "0.1.0"
