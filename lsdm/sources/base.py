"""What every data source returns: images as uint8 HWC arrays with stable ids and labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawImages:
    ids: list[str]  # stable across runs and listing orders (file names, dataset indices)
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int64 [N]; -1 where a source has no classes

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if self.images.shape[0] != n or self.labels.shape != (n,):
            raise ValueError(f"{n} ids but images {self.images.shape} and labels {self.labels.shape}")
