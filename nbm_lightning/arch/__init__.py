"""The architecture: codes (no torch), the network, its complexity and picture; `python -m nbm_lightning.arch`
(__main__.py).
"""
