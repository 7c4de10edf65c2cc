"""Image tables and the subsets cut from them. Pure functions: tables in, tables or tensors out.

Every random choice here is made by ranking ids by a seeded hash, not by shuffling a list, so
it does not depend on the order a source lists its images in.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch

from lsdm.errors import ParamsError
from lsdm.schemas import UNLABELLED
from lsdm.sources.base import RawImages


def hash_rank(ids: pd.Series, seed: int) -> pd.Series:
    """A deterministic pseudo-random key per id (same id and seed -> same key, on every machine)."""
    return ids.map(lambda i: int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big"))


def images_table(raw: RawImages, test_fraction: float, seed: int, limit: int | None = None) -> pd.DataFrame:
    """Build the IMAGES table: a stratified train/test split (per class, the lowest-ranked
    `test_fraction` of ids go to test), optionally keeping only `limit` images, stratified too."""
    n, h, w, c = raw.images.shape
    df = pd.DataFrame({"id": raw.ids, "label": raw.labels.astype(np.int64), "row": np.arange(n)})
    df["rank"] = hash_rank(df["id"], seed)
    df = df.sort_values(["label", "rank"])
    df["pos"] = df.groupby("label").cumcount()
    df["size"] = df.groupby("label")["id"].transform("size")
    if limit is not None and limit < n:
        keep = df["size"] * limit / n  # per-class quota, proportional to class size
        df = df[df["pos"] < np.maximum(1, np.round(keep))]
        df["size"] = df.groupby("label")["id"].transform("size")
    df["split"] = np.where(df["pos"] < np.round(df["size"] * test_fraction), "test", "train")
    df = df.sort_values("id")
    return pd.DataFrame(
        {
            "id": df["id"].to_numpy(),
            "split": df["split"].to_numpy(),
            "label": df["label"].to_numpy(),
            "height": h,
            "width": w,
            "channels": c,
            "image": [raw.images[r].tobytes() for r in df["row"]],
        }
    )


def to_tensor(df: pd.DataFrame) -> torch.Tensor:
    """IMAGES rows -> float tensor [N, C, H, W] in [0, 1]."""
    h, w, c = (int(df[k].iloc[0]) for k in ("height", "width", "channels"))
    buf = np.frombuffer(b"".join(df["image"]), dtype=np.uint8).reshape(len(df), h, w, c)
    return torch.from_numpy(buf.transpose(0, 3, 1, 2).copy()).float().div_(255.0)


def labels_tensor(df: pd.DataFrame) -> torch.Tensor:
    """The `label` column as an int64 tensor (a copy: Parquet-backed arrays are read-only)."""
    return torch.tensor(df["label"].to_numpy(), dtype=torch.int64)


def latent_pool(images: pd.DataFrame) -> pd.DataFrame:
    """Ids of every training image, paired or not: the data the latent space is fitted on.

    Depends on the images table alone, never on the paired-subset parameters, so its file is
    byte-identical when only those change and DVC skips fit_latent and encode.
    """
    train = images.loc[images["split"] == "train", "id"]
    return pd.DataFrame({"id": train.sort_values().to_numpy()})


def paired_subset(images: pd.DataFrame, n_per_class: int, seed: int) -> pd.DataFrame:
    """The `n_per_class` lowest-ranked training images of each class: the only pairs the matcher sees."""
    train = images[images["split"] == "train"]
    labelled = train[train["label"] != UNLABELLED]
    if labelled.empty:
        raise ParamsError("split.n_paired_per_class needs labelled training images; the data has none")
    counts = labelled.groupby("label").size()
    if n_per_class > counts.min():
        raise ParamsError(
            f"split.n_paired_per_class = {n_per_class}: larger than class {counts.idxmin()} has "
            f"({counts.min()} training images); allowed: 1..{counts.min()}"
        )
    ranked = labelled.assign(rank=hash_rank(labelled["id"], seed)).sort_values(["label", "rank"])
    chosen = ranked.groupby("label").head(n_per_class).sort_values("id")
    return pd.DataFrame({"id": chosen["id"].to_numpy(), "label": chosen["label"].to_numpy()})
