"""Pandera schemas, one per Parquet table the pipeline writes. Every read and write goes through them."""

from __future__ import annotations

import numpy as np
import pandera.pandas as pa
import pyarrow

SPLITS = ["train", "val", "test"]  # val: held out from training, for model selection (never test)
UNLABELLED = -1  # label of an image without a class (super-resolution, flat image folders)


def _image_bytes_match_shape(df) -> bool:
    sizes = df["image"].map(len)
    return bool((sizes == df["height"] * df["width"] * df["channels"]).all())


# prepare: one row per image; raw uint8 pixels in HWC order, so any source maps onto it.
IMAGES = pa.DataFrameSchema(
    {
        "id": pa.Column(str, unique=True),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
        "label": pa.Column(np.int64, pa.Check.ge(UNLABELLED)),
        "height": pa.Column(np.int64, pa.Check.gt(0)),
        "width": pa.Column(np.int64, pa.Check.gt(0)),
        "channels": pa.Column(np.int64, pa.Check.isin([1, 3])),
        "image": pa.Column(object),
    },
    checks=[pa.Check(_image_bytes_match_shape, error="image bytes != height*width*channels")],
    strict=True,
    coerce=True,
    name="images",
)

# split: ids of the training images the latent space is fitted on (paired and unpaired alike).
LATENT_POOL = pa.DataFrameSchema({"id": pa.Column(str, unique=True)}, strict=True, name="latent_pool")

# split: the paired subset; the condition of a pair is derived from its image by the task
# (the label for class-conditional generation, the downsampled image for super-resolution).
PAIRED = pa.DataFrameSchema(
    {"id": pa.Column(str, unique=True), "label": pa.Column(np.int64, pa.Check.ge(UNLABELLED))},
    strict=True,
    coerce=True,
    name="paired",
)


def _z_fixed_size(df) -> bool:
    lengths = df["z"].map(len)
    return bool(len(df) == 0 or (lengths == lengths.iloc[0]).all())


# encode: standardised latents of every image.
LATENTS = pa.DataFrameSchema(
    {
        "id": pa.Column(str, unique=True),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
        "label": pa.Column(np.int64, pa.Check.ge(UNLABELLED)),
        "z": pa.Column(object),
    },
    checks=[pa.Check(_z_fixed_size, error="z vectors differ in length")],
    strict=True,
    coerce=True,
    name="latents",
)


def latents_arrow_schema(dim: int) -> pyarrow.Schema:
    """Arrow types for LATENTS: z as a fixed-size float32 list of length `dim`."""
    return pyarrow.schema(
        [
            ("id", pyarrow.string()),
            ("split", pyarrow.string()),
            ("label", pyarrow.int64()),
            ("z", pyarrow.list_(pyarrow.float32(), dim)),
        ]
    )
