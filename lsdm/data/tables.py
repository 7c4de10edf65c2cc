"""Image tables and the subsets cut from them. Pure functions: tables in, tables or tensors out.

Every random choice here is made by ranking ids by a seeded hash, not by shuffling a list, so
it does not depend on the order a source lists its images in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lsdm.data.schemas import UNLABELLED, RawImages
from lsdm.errors import DataError, ParamsError
from lsdm.io import ROW_GROUP_BYTES

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that make tensors: prepare and split, which only move
# tables, then start without its ~3 s import (8 stages pay it otherwise).


def hash_rank(ids: pd.Series, seed: int) -> pd.Series:
    """A deterministic pseudo-random key per id (same id and seed -> same key, on every machine)."""
    return ids.map(lambda i: int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big"))


def conform(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> [N, size, size, channels]: area/bicubic resize, gray <-> RGB."""
    n, h, w, c = images.shape
    if (h, w, c) == (size, size, channels):
        return images
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if c != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, 3, -1, -1)
    if (h, w) != (size, size):
        mode = "area" if size < min(h, w) else "bicubic"
        x = torch.nn.functional.interpolate(x, size=(size, size), mode=mode)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous().numpy()


def assign_split(df: pd.DataFrame, split_by: str, test_fraction: float, val_fraction: float = 0.0) -> np.ndarray:
    """train/val/test per row of `df` (columns id, label, rank, pos, size, and `given` for a source's
    own split); see RawImages.split_by.

    Test is cut first and does not depend on `val_fraction`: adding a validation split moves
    images from train to val, never into or out of test. Validation is the next band of the same
    ranking (the next `val_fraction` of each class, or of the hash range); with a given split it is
    the lowest `val_fraction` of the hash range among the given training images.
    """
    rank = df["rank"] / 2.0**64  # uniform in [0, 1)
    if split_by == "given":
        return np.where((df["given"] == "train") & (rank < val_fraction), "val", df["given"])
    if split_by == "hash":  # threshold on the hash: an image keeps its split when others are added
        return np.select([rank < test_fraction, rank < test_fraction + val_fraction], ["test", "val"], "train")
    n_test = np.round(df["size"] * test_fraction)
    n_val = np.round(df["size"] * (test_fraction + val_fraction)) - n_test
    return np.select([df["pos"] < n_test, df["pos"] < n_test + n_val], ["test", "val"], "train")


def split_frame(
    ids: list[str],
    labels: np.ndarray,
    split_by: str,
    splits: np.ndarray | None,
    test_fraction: float,
    seed: int,
    limit: int | None = None,
    val_fraction: float = 0.0,
) -> pd.DataFrame:
    """The images' train/val/test split from their ids and labels alone (no pixels): columns id, label,
    split and `row` (the position in `ids`). `limit` keeps that many images, stratified: per class,
    the lowest-ranked ids by a seeded hash. Both `prepare` and the up-front check (`lsdm check`)
    compute the split here, so the check sees exactly the split prepare will write."""
    n = len(ids)
    df = pd.DataFrame({"id": ids, "label": np.asarray(labels).astype(np.int64), "row": np.arange(n)})
    duplicated = df["id"][df["id"].duplicated()]
    if len(duplicated):
        raise DataError(f"image ids must be unique; {len(duplicated)} repeated, e.g. {sorted(set(duplicated))[:3]}")
    if splits is not None:
        df["given"] = splits
    df["rank"] = hash_rank(df["id"], seed)
    df = df.sort_values(["label", "rank"])
    df["pos"] = df.groupby("label").cumcount()
    df["size"] = df.groupby("label")["id"].transform("size")
    if limit is not None and limit < n:
        keep = df["size"] * limit / n  # per-class quota, proportional to class size
        df = df[df["pos"] < np.maximum(1, np.round(keep))]
        df["size"] = df.groupby("label")["id"].transform("size")
    df["split"] = assign_split(df, split_by, test_fraction, val_fraction)
    return df[["id", "label", "split", "row"]].sort_values("id")


def split_rows(
    raw: RawImages, test_fraction: float, seed: int, limit: int | None = None, val_fraction: float = 0.0
) -> pd.DataFrame:
    """The IMAGES table's rows without their pixels (id, label, split, `row` in `raw`), in its order:
    the train/val/test split (`raw.split_by`, `split_frame`), the classes checked."""
    df = split_frame(raw.ids, raw.labels, raw.split_by, raw.splits, test_fraction, seed, limit, val_fraction)
    check_classes(df, raw.class_names)
    return df


def image_chunks(
    raw: RawImages,
    rows: pd.DataFrame,
    size: int | None = None,
    channels: int | None = None,
    chunk_bytes: int = ROW_GROUP_BYTES,
) -> Iterator[pd.DataFrame]:
    """The IMAGES table of `rows` (`split_rows`) about `chunk_bytes` of pixels at a time, each chunk's
    images read from `raw.images` (an array, or an image folder's scratch file) and `conform`ed to
    size x size x channels (None: as they are). prepare writes them as they come
    (`lsdm.io.write_table_chunks`): memory holds one chunk, never the set as one Python table."""
    _, h, w, c = raw.images.shape
    per_chunk = max(1, chunk_bytes // ((size or h) * (size or w) * (channels or c)))
    for start in range(0, max(len(rows), 1), per_chunk):
        part = rows.iloc[start : start + per_chunk]
        images = raw.images[part["row"].to_numpy()]
        if size and channels:
            images = conform(images, size, channels)
        yield pd.DataFrame(
            {
                "id": part["id"].to_numpy(),
                "split": part["split"].to_numpy(),
                "label": part["label"].to_numpy(),
                "height": images.shape[1],
                "width": images.shape[2],
                "channels": images.shape[3],
                "image": [image.tobytes() for image in images],
            }
        )


def images_table(
    raw: RawImages, test_fraction: float, seed: int, limit: int | None = None, val_fraction: float = 0.0
) -> pd.DataFrame:
    """The whole IMAGES table in memory, split (`split_rows`): for small sources and tests; prepare
    writes `image_chunks` as they come."""
    rows = split_rows(raw, test_fraction, seed, limit, val_fraction)
    return pd.concat(image_chunks(raw, rows), ignore_index=True)


def class_name(label: int, names: list[str] | None) -> str:
    """How messages name a class: its folder's name where the source has names, else its label."""
    return f"{int(label)} ({names[int(label)]!r})" if names and 0 <= label < len(names) else str(int(label))


def check_classes(df: pd.DataFrame, names: list[str] | None = None) -> None:
    """Labelled data must have two classes or more, each with training images: with one class every
    sample has the right label (accuracy 1 by construction), and a class absent from training can be
    neither paired nor learned, yet would be judged. A DataError now, before any model is fitted."""
    labelled = df[df["label"] != UNLABELLED]
    if labelled.empty:
        return
    classes = sorted(labelled["label"].unique())
    if len(classes) < 2:
        raise DataError(
            f"the images have one class only (class {class_name(classes[0], names)}): class-conditional "
            "generation needs two or more (one subfolder per class), or use a flat folder and "
            "task: super_resolution"
        )
    trained = set(labelled.loc[labelled["split"] == "train", "label"])
    missing = [int(c) for c in classes if c not in trained]
    if missing:
        held = labelled[labelled["label"].isin(missing)].groupby("label")["split"].agg(lambda s: sorted(set(s)))
        shown = ", ".join(f"{class_name(k, names)}: {v}" for k, v in held.items())
        raise DataError(
            f"classes [{', '.join(class_name(c, names) for c in missing)}] have no training images (all "
            f"of theirs fell in {{{shown}}}): they cannot be paired or learned; add images to them, or lower "
            "data.test_fraction / val_fraction"
        )


def to_tensor(df: pd.DataFrame) -> torch.Tensor:
    """IMAGES rows -> float tensor [N, C, H, W] in [0, 1] (a whole set at once: `lsdm.data.pixels`
    reads large tables in batches)."""
    from lsdm.data.pixels import as_float, chw_bytes

    return as_float(chw_bytes(df))


def labels_tensor(df: pd.DataFrame) -> torch.Tensor:
    """The `label` column as an int64 tensor (a copy: Parquet-backed arrays are read-only)."""
    import torch

    return torch.tensor(df["label"].to_numpy(), dtype=torch.int64)


def codes(latents: pd.DataFrame, ids: pd.Series) -> torch.Tensor:
    """The `z` column of LATENTS rows for `ids`, in that order, as a float tensor [len(ids), d]."""
    import torch

    z = latents.set_index("id").loc[ids, "z"].to_numpy()
    return torch.from_numpy(np.stack(z)).float()


def latent_pool(
    images: pd.DataFrame, paired: pd.DataFrame | None = None, n_unpaired: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Ids of the images the latent space is fitted on: every training image when `n_unpaired` is
    None, else the pairs plus the first `n_unpaired` other training images in the hash order of
    `seed` (nested: a larger pool holds every smaller one). Validation and test images are held
    out of it, as out of every fit.

    With `n_unpaired` None the pool depends on the images table alone, never on the paired subset,
    so its file is byte-identical when only the pairs change and DVC skips fit_latent and encode.
    """
    train = images.loc[images["split"] == "train", "id"]
    if n_unpaired is not None:
        assert paired is not None, "a pool of the pairs plus n_unpaired others needs the pairs"
        others = train[~train.isin(paired["id"])]
        if n_unpaired > len(others):
            raise ParamsError(
                f"split.n_unpaired = {n_unpaired}: only {len(others)} training images are not "
                f"paired; allowed: 0..{len(others)}, or null for all of them"
            )
        ranked = others.iloc[np.argsort(hash_rank(others, seed).to_numpy(), kind="stable")]
        train = pd.concat([paired["id"], ranked.head(n_unpaired)])
    return pd.DataFrame({"id": train.sort_values().to_numpy()})


def check_pairs(images: pd.DataFrame, n_per_class: int, n_paired: int, names: list[str] | None = None) -> None:
    """A ParamsError unless the training split holds the pairs asked for: `n_per_class` in every class
    (with classes), `n_paired` in all (without)."""
    train = images[images["split"] == "train"]
    labelled = train[train["label"] != UNLABELLED]
    if labelled.empty:
        if n_paired > len(train):
            raise ParamsError(
                f"split.n_paired = {n_paired}: larger than the {len(train)} training images; allowed: 1..{len(train)}"
            )
        return
    counts = labelled.groupby("label").size()
    if n_per_class > counts.min():
        raise ParamsError(
            f"split.n_paired_per_class = {n_per_class}: larger than class {class_name(counts.idxmin(), names)} has "
            f"({counts.min()} training images); allowed: 1..{counts.min()}"
        )


def paired_subset(images: pd.DataFrame, n_per_class: int, n_paired: int, seed: int) -> pd.DataFrame:
    """The pairs the matcher sees: with classes, the `n_per_class` lowest-ranked training images
    of each class; without classes (label -1 everywhere), the `n_paired` lowest-ranked ones."""
    check_pairs(images, n_per_class, n_paired)
    train = images[images["split"] == "train"]
    labelled = train[train["label"] != UNLABELLED]
    if labelled.empty:
        chosen = train.assign(rank=hash_rank(train["id"], seed)).sort_values("rank").head(n_paired)
    else:
        ranked = labelled.assign(rank=hash_rank(labelled["id"], seed)).sort_values(["label", "rank"])
        chosen = ranked.groupby("label").head(n_per_class)
    chosen = chosen.sort_values("id")
    return pd.DataFrame({"id": chosen["id"].to_numpy(), "label": chosen["label"].to_numpy()})
