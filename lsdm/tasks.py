"""Tasks: what the condition x of a pair is, and how the matcher encodes it.

A task turns a batch of images and labels into conditions, and names the condition encoder
(`lsdm.models.matcher.condition_encoder`) that G and f use. Add a task by registering a class
with the same three members in TASKS; `task:` in params.yaml then accepts its name.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd
import torch


class Task(Protocol):
    name: str

    def condition_spec(self, images: pd.DataFrame) -> dict: ...

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...


class ClassConditional:
    """x is the class label; G and f see it one-hot."""

    name = "class_conditional"

    def condition_spec(self, images: pd.DataFrame) -> dict:
        labels = images.loc[images["label"] >= 0, "label"]
        return {"kind": "label", "n_classes": int(labels.max()) + 1}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels


TASKS: dict[str, Task] = {"class_conditional": ClassConditional()}
