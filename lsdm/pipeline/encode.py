"""encode: every image -> its standardised latent. Statistics come from the latent pool only."""

import numpy as np
import pandas as pd

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.tables import to_tensor
from lsdm.io import read_table, write_json, write_table
from lsdm.models import load
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.data.schemas import IMAGES, LATENT_POOL, LATENTS, latents_arrow_schema
from lsdm.models.training import batched


def run(params: Params) -> None:
    device = resolve_device(params.base.device)
    model = load(paths.AUTOENCODER, device, ConvAutoencoder)
    images = read_table(paths.IMAGES, IMAGES)
    z = batched(model.encode, to_tensor(images).to(device)).cpu().double().numpy()
    in_pool = images["id"].isin(read_table(paths.LATENT_POOL, LATENT_POOL)["id"]).to_numpy()
    mean, std = z[in_pool].mean(0), z[in_pool].std(0) + 1e-8
    zs = ((z - mean) / std).astype(np.float32)
    table = pd.DataFrame({"id": images["id"], "split": images["split"], "label": images["label"], "z": list(zs)})
    write_table(table, paths.LATENTS, LATENTS, arrow_schema=latents_arrow_schema(zs.shape[1]))
    write_json({"mean": mean.tolist(), "std": std.tolist(), "n": int(in_pool.sum())}, paths.LATENT_STATS)
    print(f"encode: {len(table)} latents of dim {zs.shape[1]} -> {paths.LATENTS}")
