"""torchvision's MNIST and FashionMNIST, read from local files under `data.root` (never downloaded).

Expects torchvision's layout: `<root>/MNIST/raw/train-images-idx3-ubyte` (and the labels and
t10k files), as left by `torchvision.datasets.MNIST(root, download=True)` on an online machine.
Keeps the official train/test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsdm.errors import DataError
from lsdm.data.schemas import RawImages

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _load(name: str, params) -> RawImages:
    from torchvision.datasets import mnist

    if not params.root:
        raise DataError(f"data.source = {name!r} reads local files: set data.root to the folder holding {name}/raw/")
    raw = Path(params.root) / name / "raw"
    missing = [f for f in FILES if not (raw / f).exists()]
    if missing:
        raise DataError(
            f"data.source = {name!r}: missing {', '.join(missing)} in {raw} "
            f"(nothing is downloaded; copy torchvision's {name}/raw files there, uncompressed)"
        )
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
