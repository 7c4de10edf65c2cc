"""The velocity field of conditional flow matching (the `latent_flow` method): v(x, z_t, t) -> dz/dt
on the standardised latents."""

from __future__ import annotations

import math

import torch
from torch import nn

from lsdm.models.matcher import condition_encoder, mlp


def time_features(t: torch.Tensor, n: int = 8) -> torch.Tensor:
    """t in [0, 1], [B] -> [B, 2n + 1]: t itself and sin/cos at n octave frequencies."""
    freqs = math.pi * 2.0 ** torch.arange(n, device=t.device, dtype=t.dtype)
    a = t[:, None] * freqs
    return torch.cat([t[:, None], a.sin(), a.cos()], dim=1)


class VelocityField(nn.Module):
    """v(x, z_t, t) -> dz/dt: an MLP over [condition features, z_t, time features]."""

    n_freqs = 8

    def __init__(self, condition: dict, z_dim: int, width: int, depth: int):
        super().__init__()
        self.cond, c_dim = condition_encoder(**condition)
        self.z_dim = z_dim
        self.net = mlp(c_dim + z_dim + 2 * self.n_freqs + 1, width, depth, z_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0:
            t = t.expand(z.shape[0])
        return self.net(torch.cat([self.cond(x), z, time_features(t.to(z.dtype), self.n_freqs)], dim=1))


def flow_mlp(condition: dict, z_dim: int, width: int, depth: int) -> VelocityField:
    return VelocityField(condition, z_dim, width, depth)
