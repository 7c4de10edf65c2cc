"""The generated blocks of README.md and docs/, one module per subject, each registering its renderers
with `@block(name, *sources)` (registry.py): run.py (the default run, the bound, super-resolution),
sweep.py (the named sweeps), benchmarks.py, tuning.py (the validation runs, compared as tuning.yaml
lists them) and ladder.py (like against like, the estimators). Importing this package registers them
all in `BLOCKS`; lsdm.reports.readme renders them into the pages.
"""

from lsdm.reports.blocks import benchmarks, ladder, run, sweep, tuning  # noqa: F401 (imported to register)
from lsdm.reports.blocks.registry import BLOCKS, Block, block

__all__ = ["BLOCKS", "Block", "block"]
