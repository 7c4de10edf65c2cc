"""check: validate params, device and data before any stage runs (`lsdm check`; the first DVC stage).

DVC deletes a stage's outputs before running it; this stage, which every other one depends on,
has one output that DVC keeps (`persist`) and whose content never changes, so a bad input stops
`dvc repro` here with every output intact, and a pass reruns nothing downstream.
"""

from lsdm import paths
from lsdm.checks import check_all
from lsdm.config import Params
from lsdm.io import write_json

#: The stamp's whole content: the same on every pass, so stages that depend on it rerun only for
#: their own reasons.
STAMP = {"check": "passed"}


def run(params: Params, stamp: bool = False) -> None:
    summary = check_all(params)
    print(f"check: ok: {summary.line()}")
    if stamp:
        write_json(STAMP, paths.CHECK_STAMP)
