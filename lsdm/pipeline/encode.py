"""encode: every image -> its standardised latent. Statistics come from the latent pool only.

The images stream through the encoder in chunks (`lsdm.data.pixels.image_batches`); only the
latents (16 floats an image) are held whole.
"""

import numpy as np
import pandas as pd
import torch

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.pixels import image_batches
from lsdm.data.schemas import LATENT_POOL, LATENTS, latents_arrow_schema
from lsdm.io import read_table, write_json, write_table
from lsdm.models import load
from lsdm.models.autoencoder import ConvAutoencoder


def run(params: Params) -> None:
    device = resolve_device(params.base.device)
    model = load(paths.AUTOENCODER, device, ConvAutoencoder)
    metas, codes = [], []
    with torch.no_grad():
        for meta, y in image_batches(paths.IMAGES, device=device):
            metas.append(meta[["id", "split", "label"]])
            codes.append(model.encode(y).cpu().double().numpy())
    images, z = pd.concat(metas, ignore_index=True), np.concatenate(codes)
    in_pool = images["id"].isin(read_table(paths.LATENT_POOL, LATENT_POOL)["id"]).to_numpy()
    mean, std = z[in_pool].mean(0), z[in_pool].std(0) + 1e-8
    zs = ((z - mean) / std).astype(np.float32)
    table = pd.DataFrame({"id": images["id"], "split": images["split"], "label": images["label"], "z": list(zs)})
    write_table(table, paths.LATENTS, LATENTS, arrow_schema=latents_arrow_schema(zs.shape[1]))
    write_json({"mean": mean.tolist(), "std": std.tolist(), "n": int(in_pool.sum())}, paths.LATENT_STATS)
    print(f"encode: {len(table)} latents of dim {zs.shape[1]} -> {paths.LATENTS}")
