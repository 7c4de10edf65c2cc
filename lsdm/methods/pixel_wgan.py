"""pixel_wgan: a conditional WGAN-GP in pixel space, trained on the pairs only (no latent space, no
unpaired data); the generator is the sampler, one forward pass per batch. `pixel_wgan_pseudo` trains
the same model on the pairs plus the pool's confident pseudo-pairs."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.data.pixels import load_images
from lsdm.io import save_checkpoint
from lsdm.methods.common import Track, paired_inputs, with_pseudo_pairs
from lsdm.models import load
from lsdm.models.matcher import Matcher
from lsdm.models.matching import train_wgan_gp
from lsdm.models.pixel_gan import pixel_wgan
from lsdm.models.training import seed_everything

FIT_READS = (paths.IMAGES, paths.PAIRED)
SAMPLE_READS = ()  # its own checkpoint only


class PixelSampler(nn.Module):
    nfe = 1

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    @property
    def noise_dim(self) -> int:
        return self.generator.noise_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(x, eta)


def fit(
    params,
    device: torch.device,
    out_dir: Path,
    track: Track,
    root: str | Path = ".",
    name: str = "pixel_wgan",
    pseudo: bool = False,
) -> dict:
    """Train on the pairs or, with `pseudo`, on the pairs plus the pool's confident pseudo-pairs
    (`pixel_wgan_pseudo`), with the budget of `params.<name>`; writes model.pt."""
    p = getattr(params, name)
    images, paired, y, cond, task = paired_inputs(params, device, root)
    if pseudo:
        ids, cond = with_pseudo_pairs(params, paired, cond, task, device, root)
        y = (
            torch.cat([y, load_images(Path(root) / paths.IMAGES, ids[len(paired) :], device)])
            if len(ids) > len(paired)
            else y
        )
    config = dict(
        condition=task.condition_spec(images),
        image_size=y.shape[-1],
        channels=y.shape[1],
        noise_dim=p.noise_dim,
        width=p.width,
    )
    seed_everything(p.seed)
    model = pixel_wgan(**config).to(device)
    t0 = time.perf_counter()
    train_wgan_gp(
        model,
        cond,
        y,
        steps=p.steps,
        n_critic=p.n_critic,
        batch_size=p.batch_size,
        lr=p.lr,
        gp_weight=p.gp_weight,
        seed=p.seed,
        log=track,
        desc="pixel_wgan",
    )
    seconds = time.perf_counter() - t0
    save_checkpoint(out_dir / "model.pt", "pixel_wgan", config, model.state_dict(), task=params.task)
    return {"train_seconds": seconds, "n_pairs": len(paired), "n_pseudo": len(y) - len(paired)}


def samplers(
    device: torch.device, params=None, root: str | Path = ".", name: str = "pixel_wgan"
) -> list[tuple[str, nn.Module]]:
    model = load(paths.method_data(name, root) / "model.pt", device, Matcher)
    return [(name, PixelSampler(model.generator).to(device).eval())]
