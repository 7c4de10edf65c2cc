"""latent_flow_pseudo: latent_flow given what LSDM's default is given (like against like). It trains
on the pairs plus the pool images whose pseudo-label (stage pseudo_label, learned from the pairs alone)
has confidence >= `pseudo.threshold`, the set LSDM's class-aware term trains on, and draws through
LSDM's filtered draw: the same latent class model and `sample.*` settings, at each NFE. Its budget is
its own section, `latent_flow_pseudo`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.methods import latent_flow
from lsdm.methods.common import Track, latent_classes

NAME = "latent_flow_pseudo"
FIT_READS = (*latent_flow.FIT_READS, paths.PSEUDO_LABELS)
SAMPLE_READS = (*latent_flow.SAMPLE_READS, paths.LATENTS, paths.PSEUDO_LABELS)  # the class model's fit


def fit(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    return latent_flow.fit(params, device, out_dir, track, root, name=NAME, pseudo=True)


def samplers(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    """One sampler per NFE, each drawing `sample.candidates` codes through the latent class model."""
    draws = params is not None and params.sample.candidates > 1
    classes = latent_classes(params, device, root) if draws else None
    return latent_flow.samplers(device, params, root, name=NAME, classes=classes)
