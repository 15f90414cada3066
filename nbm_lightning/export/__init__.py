"""Turn run records (folders) and W&B runs into the benchmark file, in the published or the extended format.

Modules: `sources` (folders and W&B, as RunRecords), `rules` (which runs are used), `formats` (what an export
writes: provenance, report lines; the file formats themselves are the reader's, `nbm_lightning.bench.published`
and `nbm_lightning.bench.extended`), `artifact` (the benchmark as a W&B artifact and Table) and `__main__`
(`python -m nbm_lightning.export`).
"""

from .formats import FORMATS
from .rules import Selection, choose_recipe, dedupe, select
from .sources import Rejected, Run, Source, parse_source, read_folder, read_wandb

__all__ = [
    "FORMATS", "Rejected", "Run", "Selection", "Source", "choose_recipe", "dedupe", "parse_source",
    "read_folder", "read_wandb", "select",
]  # fmt: skip
