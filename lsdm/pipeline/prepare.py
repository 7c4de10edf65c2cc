"""prepare: the configured data source -> the canonical IMAGES table with a train/val/test split."""

import dataclasses

from lsdm import paths
from lsdm.config import Params
from lsdm.data.tables import conform, images_table
from lsdm.io import write_json, write_table
from lsdm.data.schemas import IMAGES
from lsdm.data.sources import loader
from lsdm.tasks import make_task


def run(params: Params) -> None:
    p = params.data
    raw = loader(p.source)(p)
    raw = dataclasses.replace(raw, images=conform(raw.images, p.image_size, p.channels))
    table = images_table(raw, test_fraction=p.test_fraction, seed=p.seed, limit=p.limit, val_fraction=p.val_fraction)
    make_task(params).check_data(table)  # data the task cannot use fails here, not stages later
    write_table(table, paths.IMAGES, IMAGES)
    counts = table.groupby("split").size().to_dict()
    write_json({"prepare": {"n_images": len(table), "n_skipped": len(raw.skipped)}}, paths.PREPARE_METRICS)
    skipped = f", {len(raw.skipped)} unreadable files skipped" if raw.skipped else ""
    print(f"prepare: {len(table)} images from {p.source!r} ({counts}{skipped}) -> {paths.IMAGES}")
