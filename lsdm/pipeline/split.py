"""split: the latent pool (all training ids, or the pairs plus `split.n_unpaired` others) and the
paired subset, as two separate files."""

from lsdm import paths
from lsdm.config import Params
from lsdm.data.tables import latent_pool, paired_subset
from lsdm.io import read_table, write_table
from lsdm.data.schemas import IMAGES, LATENT_POOL, PAIRED


def run(params: Params) -> None:
    images = read_table(paths.IMAGES, IMAGES)
    paired = paired_subset(images, params.split.n_paired_per_class, params.split.n_paired, params.split.seed)
    pool = latent_pool(images, paired, params.split.n_unpaired, params.split.seed)
    write_table(pool, paths.LATENT_POOL, LATENT_POOL)
    write_table(paired, paths.PAIRED, PAIRED)
    print(f"split: latent pool {len(pool)} images, paired subset {len(paired)} -> {paths.PAIRED.parent}")
