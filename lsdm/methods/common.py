"""What the methods' fit functions share: the paired subset as tensors and the shared latents."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from lsdm import paths
from lsdm.data.pixels import image_meta, load_images
from lsdm.data.schemas import LATENTS, PAIRED
from lsdm.data.tables import codes, labels_tensor
from lsdm.io import read_table
from lsdm.tasks import make_task

#: `track(step, {name: value})`: a training curve point (lsdm.tracking.Tracker, or a list's append)
Track = Callable[[int, dict[str, float]], None]


def paired_inputs(params, device: torch.device, root: str | Path = "."):
    """(images' metadata, paired table, paired images [N, C, H, W], their conditions, the task); the
    table's pixels stream past, only the pairs' are kept."""
    root, task = Path(root), make_task(params)
    images = image_meta(root / paths.IMAGES)
    paired = read_table(root / paths.PAIRED, PAIRED)
    pair_images = load_images(root / paths.IMAGES, paired["id"], device)
    cond = task.conditions(pair_images, labels_tensor(paired).to(device))
    return images, paired, pair_images, cond, task


def shared_latents(ids, device: torch.device, root: str | Path = ".") -> torch.Tensor:
    """The shared (fit_latent/encode) standardised latents of the given ids, in that order."""
    return codes(read_table(Path(root) / paths.LATENTS, LATENTS), ids).to(device)
