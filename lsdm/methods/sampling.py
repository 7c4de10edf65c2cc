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
    return torch.cat([sampler(cond[i : i + batch_size], eta[i : i + batch_size]) for i in range(0, len(cond), batch_size)])
