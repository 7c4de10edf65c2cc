"""pixel_wgan_pseudo: pixel_wgan given what LSDM's default is given (like against like). It trains on
the pairs plus the pool images whose pseudo-label (stage pseudo_label, learned from the pairs alone) has
confidence >= `pseudo.threshold`, and draws through LSDM's filtered draw: each candidate image is
encoded by the shared autoencoder and judged by the same latent class model, at the same `sample.*`
settings (the image filter's classifier exists only with `sample.filter: image`; the latent model
always). Its budget is its own section, `pixel_wgan_pseudo`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.methods import pixel_wgan
from lsdm.methods.common import Track, latent_classes, shared_decoder
from lsdm.methods.sampling import FilteredSampler
from lsdm.models.latent_classes import EncodedClasses

NAME = "pixel_wgan_pseudo"
FIT_READS = (*pixel_wgan.FIT_READS, paths.PSEUDO_LABELS)
SAMPLE_READS = (paths.AUTOENCODER, paths.LATENT_STATS, paths.LATENTS, paths.PSEUDO_LABELS)  # the filter's


def fit(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    return pixel_wgan.fit(params, device, out_dir, track, root, name=NAME, pseudo=True)


def samplers(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    """The generator, drawing `sample.candidates` images through the latent class model of their codes."""
    [(_, sampler)] = pixel_wgan.samplers(device, params, root, name=NAME)
    classes = latent_classes(params, device, root) if params is not None and params.sample.candidates > 1 else None
    if classes is None:
        return [(NAME, sampler)]
    judge = EncodedClasses(classes, *shared_decoder(device, root)).to(device)
    return [(NAME, FilteredSampler(sampler, judge, params.sample.candidates, params.sample.accept).to(device).eval())]
