"""What the data looks like at each boundary: `RawImages`, what every data source hands to prepare,
and the pandera schemas of the Parquet tables the pipeline writes (every read and write checks them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandera.pandas as pa
import pyarrow

SPLITS = ["train", "val", "test"]  # val: held out from training, for model selection (never test)
UNLABELLED = -1  # label of an image without a class (super-resolution, flat image folders)


@dataclass(frozen=True)
class RawImages:
    """Images of one source, before the train/test split.

    `split_by` says how `prepare` assigns train/test: "stratified" (per class, the lowest-ranked
    ids by a seeded hash go to test: exact proportions), "hash" (an id goes to test when its seeded
    hash falls below `test_fraction`: an image keeps its split when files are added), or "given"
    (the source's own split in `splits`, e.g. MNIST's official train/test files).
    """

    ids: list[str]  # stable across runs and listing orders (file names, dataset indices)
    images: np.ndarray  # uint8 [N, H, W, C]: an array, or rows read by index (lsdm.data.pixels.ScratchImages)
    labels: np.ndarray  # int64 [N]; -1 where a source has no classes
    split_by: str = "stratified"
    splits: np.ndarray | None = None  # "train"/"test" per image when split_by == "given"
    skipped: list[str] = field(default_factory=list)  # unreadable files skipped (data.on_corrupt: skip)
    class_names: list[str] | None = None  # label k's name (an image folder's class folders), for messages

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if self.images.shape[0] != n or self.labels.shape != (n,):
            raise ValueError(f"{n} ids but images {self.images.shape} and labels {self.labels.shape}")
        if self.split_by not in ("stratified", "hash", "given"):
            raise ValueError(f"split_by must be stratified, hash or given, got {self.split_by!r}")
        if self.split_by == "given" and (self.splits is None or len(self.splits) != n):
            raise ValueError("split_by='given' needs one split per image")


@dataclass(frozen=True)
class Census:
    """What a source holds, without its pixels: enough to compute the split and check the data up
    front (`lsdm check`), before DVC deletes any stage's outputs. Fields as in RawImages, plus the
    class names (None where the source has no names: its labels are shown as numbers)."""

    ids: list[str]
    labels: np.ndarray  # int64 [N]; -1 where a source has no classes
    split_by: str = "stratified"
    splits: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)
    class_names: list[str] | None = None


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


# pseudo_label's output: a label and its confidence for each image of the latent pool, learned from the
# pairs alone (lsdm.models.pseudo_labels); empty when the data has no classes
PSEUDO_LABELS = pa.DataFrameSchema(
    {
        "id": pa.Column(str, unique=True),
        "label": pa.Column(np.int64, pa.Check.ge(0)),
        "confidence": pa.Column(np.float64, pa.Check.in_range(0.0, 1.0)),
    },
    strict=True,
    coerce=True,
    name="pseudo_labels",
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
