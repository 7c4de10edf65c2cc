"""Class-conditional generation: x is the class label; G and f see it one-hot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from lsdm.errors import DataError
from lsdm.tasks import Task

if TYPE_CHECKING:  # torch only where tensors are made: `prepare` checks the data without it
    import torch


class ClassConditional(Task):
    condition_text = "its label"
    samples_layout = "One row per class, one column per noise draw."

    def check_data(self, images: pd.DataFrame) -> None:
        if not (images["label"] >= 0).any():
            raise DataError(
                "task: class_conditional needs class labels, and these images have none (a flat folder): "
                "put them in one subfolder per class, or set task: super_resolution"
            )

    def condition_spec(self, images: pd.DataFrame) -> dict:
        labels = images.loc[images["label"] >= 0, "label"]
        return {"kind": "label", "n_classes": int(labels.max()) + 1}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def grid(self, ref, draw, heads: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """`evaluate.grid_per_class` samples of every class, from fresh noise (seed: the first + 1)."""
        import torch

        p = ref.p
        cond = torch.arange(ref.n_classes, device=ref.device).repeat_interleave(p.grid_per_class)
        return draw(cond, p.seeds[0] + 1), p.grid_per_class


TASK = ClassConditional
