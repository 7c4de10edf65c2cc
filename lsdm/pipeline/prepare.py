"""prepare: the configured data source -> the canonical IMAGES table with a train/val/test split.

The split is decided from ids and labels alone; the table is then written a chunk of ~64 MB of
pixels at a time (`image_chunks`, `write_table_chunks`). An image folder's decoded pixels wait in a
scratch file (`lsdm.data.pixels.ScratchImages`: 2.5 GB of disk for 200,000 images of 64x64x3), so
the stage holds one chunk of them; the built-in datasets are small arrays held as they are.
"""

from lsdm import paths
from lsdm.config import Params
from lsdm.data.schemas import IMAGES
from lsdm.data.sources import loader
from lsdm.data.tables import image_chunks, split_rows
from lsdm.io import write_json, write_table_chunks
from lsdm.tasks import make_task


def run(params: Params) -> None:
    p = params.data
    raw = loader(p.source)(p)
    rows = split_rows(raw, test_fraction=p.test_fraction, seed=p.seed, limit=p.limit, val_fraction=p.val_fraction)
    make_task(params).check_data(rows)  # data the task cannot use fails here, not stages later
    n = write_table_chunks(image_chunks(raw, rows, p.image_size, p.channels), paths.IMAGES, IMAGES)
    counts = rows.groupby("split").size().to_dict()
    write_json({"prepare": {"n_images": n, "n_skipped": len(raw.skipped)}}, paths.PREPARE_METRICS)
    skipped = f", {len(raw.skipped)} unreadable files skipped" if raw.skipped else ""
    print(f"prepare: {n} images from {p.source!r} ({counts}{skipped}) -> {paths.IMAGES}")
