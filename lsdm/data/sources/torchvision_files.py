"""torchvision's MNIST and FashionMNIST, read from local files under `data.root` (never downloaded).

Expects torchvision's layout: `<root>/MNIST/raw/train-images-idx3-ubyte` (and the labels and
t10k files), as left by `torchvision.datasets.MNIST(root, download=True)` on an online machine.
Keeps the official train/test split.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from lsdm.data.schemas import Census, RawImages
from lsdm.errors import DataError

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _raw_folder(name: str, params) -> Path:
    if not params.root:
        raise DataError(f"data.source = {name!r} reads local files: set data.root to the folder holding {name}/raw/")
    raw = Path(params.root) / name / "raw"
    missing = [f for f in FILES if not (raw / f).exists()]
    if missing:
        raise DataError(
            f"data.source = {name!r}: missing {', '.join(missing)} in {raw} "
            f"(nothing is downloaded; copy torchvision's {name}/raw files there, uncompressed)"
        )
    return raw


def _idx_count(path: Path, magic: int, dims: tuple[int, ...] = ()) -> int:
    """The item count in an IDX file's header, after checking its magic number, shape and size."""
    with open(path, "rb") as fh:
        head = fh.read(8 + 4 * len(dims))
    if len(head) < 8 + 4 * len(dims) or struct.unpack(">I", head[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file of torchvision's {'images' if dims else 'labels'} (bad header)")
    n, *shape = struct.unpack(f">{1 + len(dims)}I", head[4:])
    expected = 8 + 4 * len(dims) + n * int(np.prod(shape or [1]))
    if tuple(shape) != dims or path.stat().st_size != expected:
        raise DataError(
            f"{path}: header says {n} items of shape {tuple(shape)}, but the file has "
            f"{path.stat().st_size} bytes (expected {expected} for {dims}-pixel items): truncated or foreign"
        )
    return n


def _census(name: str, params) -> Census:
    """Labels and the official split, from the label files; the image files' headers only."""
    raw = _raw_folder(name, params)
    ids, labels, splits = [], [], []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        n_images = _idx_count(raw / f"{prefix}-images-idx3-ubyte", 2051, (28, 28))
        n_labels = _idx_count(raw / f"{prefix}-labels-idx1-ubyte", 2049)
        if n_images != n_labels:
            raise DataError(f"{raw}: {prefix} has {n_images} images but {n_labels} labels")
        y = np.frombuffer((raw / f"{prefix}-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
        ids += [f"{name.lower()}-{split}-{i:05d}" for i in range(n_labels)]
        labels.append(y.astype(np.int64))
        splits += [split] * n_labels
    return Census(ids=ids, labels=np.concatenate(labels), split_by="given", splits=np.array(splits))


def _load(name: str, params) -> RawImages:
    from torchvision.datasets import mnist

    raw = _raw_folder(name, params)
    parts = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = mnist.read_image_file(str(raw / f"{prefix}-images-idx3-ubyte")).numpy()
        labels = mnist.read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte")).numpy()
        if len(images) != len(labels):
            raise DataError(f"{raw}: {prefix} has {len(images)} images but {len(labels)} labels")
        ids = [f"{name.lower()}-{split}-{i:05d}" for i in range(len(images))]
        parts.append((ids, images, labels, [split] * len(images)))
    return RawImages(
        ids=[i for p in parts for i in p[0]],
        images=np.concatenate([p[1] for p in parts])[..., None].astype(np.uint8),
        labels=np.concatenate([p[2] for p in parts]).astype(np.int64),
        split_by="given",
        splits=np.array([s for p in parts for s in p[3]]),
    )


def load_mnist(params) -> RawImages:
    return _load("MNIST", params)


def load_fashion_mnist(params) -> RawImages:
    return _load("FashionMNIST", params)


def census_mnist(params) -> Census:
    return _census("MNIST", params)


def census_fashion_mnist(params) -> Census:
    return _census("FashionMNIST", params)
