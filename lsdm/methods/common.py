"""What the methods share: the paired subset as tensors, the shared latents, and what the pseudo_label
stage offers every method alike: the pool's confident pseudo-pairs and the class model of the filtered
draw (learned from the pairs and those pseudo-labels; the pool's true labels never enter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from lsdm import paths
from lsdm.data.pixels import image_meta, load_images
from lsdm.data.schemas import LATENTS, PAIRED, PSEUDO_LABELS
from lsdm.data.tables import codes, labels_tensor
from lsdm.io import read_json, read_table
from lsdm.models import load
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.models.latent_classes import GaussianClasses
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


def shared_decoder(device: torch.device, root: str | Path = ".") -> tuple[ConvAutoencoder, torch.Tensor, torch.Tensor]:
    """The shared autoencoder (fit_latent) and the latents' mean and std (encode): what every latent
    method decodes its standardised codes with."""
    stats = read_json(Path(root) / paths.LATENT_STATS)
    autoencoder = load(Path(root) / paths.AUTOENCODER, device, ConvAutoencoder)
    return autoencoder, torch.tensor(stats["mean"]), torch.tensor(stats["std"])


def confident_pseudo_labels(threshold: float, device: torch.device, root: str | Path = "."):
    """(latents, labels, confidences) of the pool images whose pseudo-label has confidence >=
    `threshold` (stage pseudo_label); None when the data has no classes (an empty table)."""
    table = confident_pseudo_table(threshold, root)
    if table is None:
        return None
    z = shared_latents(table["id"], device, root)
    return (
        z,
        torch.tensor(table["label"].to_numpy(), device=device),  # copies: Parquet arrays are read-only
        torch.tensor(table["confidence"].to_numpy(), dtype=torch.float32, device=device),
    )


def confident_pseudo_table(threshold: float, root: str | Path = "."):
    """The rows (id, label, confidence) of pseudo_label's table with confidence >= `threshold`; None
    when the data has no classes (an empty table)."""
    table = read_table(Path(root) / paths.PSEUDO_LABELS, PSEUDO_LABELS)
    if table.empty:
        return None
    table = table[table["confidence"] >= threshold]
    if table.empty:
        raise ValueError(
            f"no pool image has a pseudo-label with confidence >= pseudo.threshold = {threshold}; "
            "lower it (results/pseudo_label/metrics.json shows the coverage)"
        )
    return table


def latent_classes(params, device: torch.device, root: str | Path = ".") -> GaussianClasses | None:
    """The Gaussian class model of the latents, fitted to the codes with pseudo-labels of confidence
    >= `pseudo.threshold` (the pairs among them), shrunk by `pseudo.reg`; None without classes."""
    pseudo = confident_pseudo_labels(params.pseudo.threshold, device, root)
    if pseudo is None:
        return None
    z, labels, _ = pseudo
    return GaussianClasses.fit(z, labels, int(labels.max()) + 1, params.pseudo.reg).to(device)


def with_pseudo_pairs(params, paired, cond: torch.Tensor, task, device: torch.device, root: str | Path = "."):
    """The training rows of a method given the pseudo-pairs: the pairs' ids and conditions, then the
    pool images' with a confident pseudo-label (pseudo.threshold) that are not pairs, their pseudo-label
    as the class. Data without classes (no pseudo-labels) gives the pairs alone."""
    table = confident_pseudo_table(params.pseudo.threshold, root)
    if table is None:
        return paired["id"], cond
    extra = table[~table["id"].isin(paired["id"])]
    labels = torch.tensor(extra["label"].to_numpy(), device=device)
    return (
        pd.concat([paired["id"], extra["id"]], ignore_index=True),
        torch.cat([cond, task.conditions(None, labels).to(cond.dtype)]),
    )
