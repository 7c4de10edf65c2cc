"""The sampler interface every method's samplers share, and sampling with fixed noise.

A sampler is an `nn.Module` with `sampler(cond, eta) -> images [B, C, H, W] in [0, 1]`, `.noise_dim`
(the width of eta) and `.nfe` (network evaluations per sample: 1 for one-step methods).
"""

from __future__ import annotations

import torch
from torch import nn


def fixed_noise(n: int, dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """Noise drawn on the CPU from a seeded generator, so samples match across devices and runs."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)


@torch.no_grad()
def sample(sampler: nn.Module, cond: torch.Tensor, eta: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """`sampler(cond, eta)` in batches: images from a sampler, or standardised codes from a generator."""
    return torch.cat(
        [sampler(cond[i : i + batch_size], eta[i : i + batch_size]) for i in range(0, len(cond), batch_size)]
    )


def filtered_draw(draw, posterior, x: torch.Tensor, eta: torch.Tensor, candidates: int, accept: float) -> torch.Tensor:
    """Per row of `x`, the first of `candidates` draws that a class model accepts.

    `eta` holds the candidates' noise side by side ([B, K x noise]); `draw(x, e)` maps one noise
    vector per row to an output (codes, images), `posterior(out, x)` gives p(row's class | out) [B].
    The first draw with posterior >= `accept` is kept (the most probable one where none is). A row
    leaves the draw once accepted, so the class model runs about once per row when most first
    draws pass, at most K times."""
    draws = eta.view(len(x), candidates, -1).unbind(1)  # K x [B, noise]
    todo = torch.arange(len(x), device=x.device)  # rows with no draw accepted yet
    best = torch.full((len(x),), -1.0, device=x.device)  # the best posterior seen per row
    out = None
    for e in draws:
        s = draw(x[todo], e[todo])
        p = posterior(s, x[todo])
        if out is None:
            out = torch.empty(len(x), *s.shape[1:], device=x.device, dtype=s.dtype)
        better = p > best[todo]  # strictly: the first of equals stays, the first accepted is kept
        out[todo[better]], best[todo[better]] = s[better], p[better]
        todo = todo[p < accept]
        if not len(todo):
            break
    return out


class LatentSampler(nn.Module):
    """A latent generator (`generator(x, eta) -> standardised codes`, `.noise_dim`, `.nfe`), un-standardised,
    then the shared decoder: one decoder pass per batch.

    With a class model `classes` (of codes) and `candidates` K > 1, `eta` holds K noise vectors per
    row and the codes are drawn by `filtered_draw` (`sample.*`): LSDM's filtered draw, and the same
    draw for every latent method given the same class model (like against like)."""

    def __init__(
        self,
        generator: nn.Module,
        autoencoder: nn.Module,
        mean: torch.Tensor,
        std: torch.Tensor,
        classes: nn.Module | None = None,
        candidates: int = 1,
        accept: float = 1.0,
    ):
        super().__init__()
        self.generator, self.autoencoder, self.classes = generator, autoencoder, classes
        self.candidates, self.accept = (candidates, accept) if classes is not None else (1, accept)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @property
    def nfe(self) -> int:
        return getattr(self.generator, "nfe", 1)

    @property
    def noise_dim(self) -> int:
        return self.generator.noise_dim * self.candidates

    def codes(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        """The standardised codes decoded for conditions `x`: [B, d]."""
        if self.candidates == 1:
            return self.generator(x, eta)
        if eta is None:
            eta = torch.randn(len(x), self.noise_dim, device=x.device)
        return filtered_draw(self.generator, self.classes.posterior, x, eta, self.candidates, self.accept)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        z = self.codes(x, eta) * self.std + self.mean  # [B, d], back to the decoder's scale
        return self.autoencoder.decode(z)  # [B, C, H, W] in [0, 1]


class FilteredSampler(nn.Module):
    """An image sampler drawn through `filtered_draw`, judged by a class model of images (e.g. the
    latent class model on the images' codes: lsdm.models.latent_classes.EncodedClasses)."""

    def __init__(self, sampler: nn.Module, classes: nn.Module, candidates: int, accept: float):
        super().__init__()
        self.sampler, self.classes, self.candidates, self.accept = sampler, classes, candidates, accept
        self.nfe = getattr(sampler, "nfe", 1)

    @property
    def noise_dim(self) -> int:
        return self.sampler.noise_dim * self.candidates

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        if eta is None:
            eta = torch.randn(len(x), self.noise_dim, device=x.device)
        return filtered_draw(self.sampler, self.classes.posterior, x, eta, self.candidates, self.accept)
