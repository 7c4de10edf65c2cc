"""Tasks: what the condition x of a pair is, and how the matcher encodes it.

A task turns a batch of images and labels into conditions, and names the condition encoder
(`lsdm.models.matcher.condition_encoder`) that G and f use. Add a task by registering a class
with the same three members in TASKS; `task:` in params.yaml then accepts its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pandas as pd

if TYPE_CHECKING:  # not imported at run time: params validation reads TASKS without torch
    import torch


class Task(Protocol):
    def condition_spec(self, images: pd.DataFrame) -> dict: ...

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...


class ClassConditional:
    """x is the class label; G and f see it one-hot."""

    def condition_spec(self, images: pd.DataFrame) -> dict:
        labels = images.loc[images["label"] >= 0, "label"]
        return {"kind": "label", "n_classes": int(labels.max()) + 1}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labels


class SuperResolution:
    """x is the image downsampled by `factor` (area); G and f see it through a small conv net
    `encoder_width` channels wide."""

    def __init__(self, factor: int = 4, encoder_width: int = 8):
        self.factor, self.encoder_width = factor, encoder_width

    def condition_spec(self, images: pd.DataFrame) -> dict:
        size, channels = int(images["height"].iloc[0]), int(images["channels"].iloc[0])
        return {"kind": "image", "channels": channels, "size": size // self.factor, "width": self.encoder_width}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from lsdm.tasks.superres import downsample

        return downsample(images, self.factor)


TASKS: dict[str, type] = {"class_conditional": ClassConditional, "super_resolution": SuperResolution}


def make_task(params) -> Task:
    """The task named by `params.task`, configured by its own params section where it has one."""
    if params.task == "super_resolution":
        return SuperResolution(params.sr.factor, params.sr.encoder_width)
    return TASKS[params.task]()
