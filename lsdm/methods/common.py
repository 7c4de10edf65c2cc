"""What the methods' fit functions share: the paired subset as tensors and the shared latents."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from lsdm import paths
from lsdm.data.schemas import IMAGES, LATENTS, PAIRED
from lsdm.data.tables import codes, labels_tensor, to_tensor
from lsdm.io import read_table
from lsdm.tasks import make_task

#: `track(step, {name: value})`: a training curve point (lsdm.tracking.Tracker, or a list's append)
Track = Callable[[int, dict[str, float]], None]


def paired_inputs(params, device: torch.device, root: str | Path = "."):
    """(images table, paired table, paired images [N, C, H, W], their conditions, the task)."""
    root, task = Path(root), make_task(params)
    images = read_table(root / paths.IMAGES, IMAGES)
    paired = read_table(root / paths.PAIRED, PAIRED)
    pair_images = to_tensor(images.set_index("id").loc[paired["id"]])
    cond = task.conditions(pair_images, labels_tensor(paired)).to(device)
    return images, paired, pair_images.to(device), cond, task


def shared_latents(ids, device: torch.device, root: str | Path = ".") -> torch.Tensor:
    """The shared (fit_latent/encode) standardised latents of the given ids, in that order."""
    return codes(read_table(Path(root) / paths.LATENTS, LATENTS), ids).to(device)
