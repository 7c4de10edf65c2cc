"""The latent stage: a convolutional autoencoder E: y -> z in R^d, D: z -> y."""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """Each entry of `channels` is one stride-2 conv (so image_size must divide by 2**len(channels)).

    Pixels are in [0, 1]; the decoder ends in a sigmoid. `noise` is the std of Gaussian noise added
    to z in training mode: a cheap regulariser that makes D smooth around the codes it has seen,
    which keeps Lip(D) (a factor of the LSDM bound) small.
    """

    def __init__(self, image_size: int, in_channels: int, dim: int, channels: list[int], noise: float = 0.0):
        super().__init__()
        if image_size % 2 ** len(channels):
            raise ValueError(f"image_size {image_size} must be divisible by 2**len(channels) = {2 ** len(channels)}")
        self.noise = noise
        self.feat = image_size // 2 ** len(channels)
        enc, c = [], in_channels
        for ch in channels:
            enc += [nn.Conv2d(c, ch, 4, stride=2, padding=1), nn.SiLU()]
            c = ch
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c * self.feat**2, dim))
        dec = []
        for ch in [*reversed(channels[:-1]), in_channels]:
            dec += [nn.SiLU(), nn.ConvTranspose2d(c, ch, 4, stride=2, padding=1)]
            c = ch
        self.decoder_fc = nn.Linear(dim, channels[-1] * self.feat**2)
        self.decoder_conv = nn.Sequential(*dec)
        self.top_channels = channels[-1]

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        return self.encoder(y)  # [B, C, H, W] -> [B, d]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_fc(z).view(-1, self.top_channels, self.feat, self.feat)
        return torch.sigmoid(self.decoder_conv(h))  # [B, d] -> [B, C, H, W]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = self.encode(y)
        if self.training and self.noise > 0:
            z = z + self.noise * torch.randn_like(z)
        return self.decode(z)
