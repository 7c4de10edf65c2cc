"""Class-conditional generation: x is the class label; G and f see it one-hot."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from lsdm.methods.sampling import fixed_noise, sample
from lsdm.tasks import Task


class ClassConditional(Task):
    condition_text = "its label"
    samples_layout = "One row per class, one column per noise draw."

    def condition_spec(self, images: pd.DataFrame) -> dict:
        labels = images.loc[images["label"] >= 0, "label"]
        return {"kind": "label", "n_classes": int(labels.max()) + 1}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def grid(self, ref, sampler: nn.Module, draws: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """`evaluate.grid_per_class` samples of every class, from fresh noise (seed: the first + 1)."""
        p = ref.p
        cond = torch.arange(ref.n_classes, device=ref.device).repeat_interleave(p.grid_per_class)
        return sample(sampler, cond, fixed_noise(len(cond), sampler.noise_dim, p.seeds[0] + 1, ref.device)), p.grid_per_class


TASK = ClassConditional
