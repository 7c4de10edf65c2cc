"""One-step generation: y_hat = D(G(x, eta) * std + mean), the whole of LSDM at sampling time."""

from __future__ import annotations

import torch
from torch import nn

from lsdm import paths
from lsdm.io import read_json
from lsdm.models import load


class LSDMSampler(nn.Module):
    """The matcher's generator, un-standardised, then the decoder: one forward pass per batch."""

    def __init__(self, generator: nn.Module, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.generator, self.autoencoder = generator, autoencoder
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @property
    def noise_dim(self) -> int:
        return self.generator.noise_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        z = self.generator(x, eta) * self.std + self.mean  # [B, d], back to the decoder's scale
        return self.autoencoder.decode(z)  # [B, C, H, W] in [0, 1]

    @classmethod
    def from_pipeline(cls, device: torch.device) -> "LSDMSampler":
        """Assemble from the fit_latent, encode and fit_matcher outputs."""
        stats = read_json(paths.LATENT_STATS)
        matcher = load(paths.MATCHER, device)
        ae = load(paths.AUTOENCODER, device)
        return cls(matcher.generator, ae, torch.tensor(stats["mean"]), torch.tensor(stats["std"])).to(device).eval()


def fixed_noise(n: int, dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """Noise drawn on the CPU from a seeded generator, so samples match across devices and runs."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)


@torch.no_grad()
def sample(sampler: nn.Module, cond: torch.Tensor, eta: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """`sampler(cond, eta)` in batches: images from a sampler, or standardised codes from a generator."""
    return torch.cat([sampler(cond[i : i + batch_size], eta[i : i + batch_size]) for i in range(0, len(cond), batch_size)])
