"""The evaluation network: a classifier trained on the full labelled training set, used only to
judge samples (label accuracy, and the feature space of FID/KID and precision/recall). It never
touches the generator's training.
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet(nn.Module):
    feature_dim = 128

    def __init__(self, image_size: int, in_channels: int, n_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7),
            nn.Flatten(),  # identity at 28 px; larger images are pooled to 7x7
            nn.Linear(64 * 49, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, n_classes)

    def features(self, y: torch.Tensor) -> torch.Tensor:
        return self.body(y)  # [B, C, H, W] -> [B, 128], the "evalnet" feature space

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(y))  # [B, n_classes] logits
