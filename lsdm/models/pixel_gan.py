"""A conditional WGAN-GP in pixel space (the `pixel_wgan` method): G(x, eta) -> image and
f(x, image), small conv nets with the same condition encoders as the LSDM matcher."""

from __future__ import annotations

import torch
from torch import nn

from lsdm.models.matcher import Matcher, Projection, condition_encoder


class PixelGenerator(nn.Module):
    """[cond, eta] -> linear -> (2w, s, s) -> two stride-2 transposed convs -> sigmoid image (s = size / 4)."""

    def __init__(self, cond: nn.Module, cond_dim: int, noise_dim: int, image_size: int, channels: int, width: int):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"pixel_wgan needs image_size divisible by 4, got {image_size}")
        self.cond, self.noise_dim, self.s, self.w = cond, noise_dim, image_size // 4, width
        self.fc = nn.Sequential(nn.Linear(cond_dim + noise_dim, 2 * width * self.s**2), nn.LeakyReLU(0.2))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        c = self.cond(x)
        if eta is None:
            eta = torch.randn(c.shape[0], self.noise_dim, device=c.device)
        h = self.fc(torch.cat([c, eta], dim=1)).view(-1, 2 * self.w, self.s, self.s)
        return torch.sigmoid(self.net(h))  # [B, C, H, W] in [0, 1]


class PixelCritic(Projection):
    """f(x, y): two stride-2 convs of the image to features h, then the projection head of
    `lsdm.models.matcher.Projection`, f = w.h + <embed(cond(x)), h>.

    Why projection: with the condition concatenated beside the image's many features, the critic
    ignored it and so did the generator (label accuracy at chance); one head per class cannot.
    """

    def __init__(self, cond: nn.Module, cond_dim: int, image_size: int, channels: int, width: int):
        s = image_size // 4
        body = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * s * s, 4 * width),
            nn.LeakyReLU(0.2),
        )
        super().__init__(cond, cond_dim, body, 4 * width)


def pixel_wgan(condition: dict, image_size: int, channels: int, noise_dim: int, width: int) -> Matcher:
    """Generator and critic in one module (as the LSDM matcher), so `train_wgan_gp` trains it unchanged."""
    g_cond, c_dim = condition_encoder(**condition)
    f_cond, _ = condition_encoder(**condition)
    return Matcher(
        PixelGenerator(g_cond, c_dim, noise_dim, image_size, channels, width),
        PixelCritic(f_cond, c_dim, image_size, channels, width),
    )
