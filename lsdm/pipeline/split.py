"""split: the latent pool (all training ids, or the pairs plus `split.n_unpaired` others) and the
paired subset, as two separate files. Reads the image table's ids, splits and labels, not its pixels."""

from lsdm import paths
from lsdm.config import Params
from lsdm.data.pixels import image_meta
from lsdm.data.schemas import LATENT_POOL, PAIRED
from lsdm.data.tables import latent_pool, paired_subset
from lsdm.io import write_table


def run(params: Params) -> None:
    images = image_meta(paths.IMAGES)
    paired = paired_subset(images, params.split.n_paired_per_class, params.split.n_paired, params.split.seed)
    pool = latent_pool(images, paired, params.split.n_unpaired, params.split.seed)
    write_table(pool, paths.LATENT_POOL, LATENT_POOL)
    write_table(paired, paths.PAIRED, PAIRED)
    print(f"split: latent pool {len(pool)} images, paired subset {len(paired)} -> {paths.PAIRED.parent}")
