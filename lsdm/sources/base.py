"""What every data source returns: images as uint8 HWC arrays with stable ids and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RawImages:
    """Images of one source, before the train/test split.

    `split_by` says how `prepare` assigns train/test: "stratified" (per class, the lowest-ranked
    ids by a seeded hash go to test: exact proportions), "hash" (an id goes to test when its seeded
    hash falls below `test_fraction`: an image keeps its split when files are added), or "given"
    (the source's own split in `splits`, e.g. MNIST's official train/test files).
    """

    ids: list[str]  # stable across runs and listing orders (file names, dataset indices)
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int64 [N]; -1 where a source has no classes
    split_by: str = "stratified"
    splits: np.ndarray | None = None  # "train"/"test" per image when split_by == "given"
    skipped: list[str] = field(default_factory=list)  # unreadable files skipped (data.on_corrupt: skip)

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
