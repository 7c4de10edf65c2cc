"""prepare: the configured data source -> the canonical IMAGES table with a train/test split."""

from lsdm import paths
from lsdm.config import Params
from lsdm.data import images_table
from lsdm.io import write_table
from lsdm.schemas import IMAGES
from lsdm.sources import SOURCES


def run(params: Params) -> None:
    p = params.data
    raw = SOURCES[p.source](p)
    table = images_table(raw, test_fraction=p.test_fraction, seed=p.seed, limit=p.limit)
    write_table(table, paths.IMAGES, IMAGES)
    counts = table.groupby("split").size().to_dict()
    print(f"prepare: {len(table)} images from {p.source!r} ({counts}) -> {paths.IMAGES}")
