"""Metrics. Each is what its name says; the feature backbone is part of every distance's name.

FID/KID come from clean-fid (`fid_from_feats`, `kernel_distance`), applied to features we extract
ourselves: the evaluation net's 128-d penultimate layer ("evalnet"), which needs no download.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from cleanfid import fid as cleanfid


def label_accuracy(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[float, dict[str, float]]:
    """Overall accuracy and accuracy per class (keyed by the class as a string, for JSON)."""
    hit = (pred == labels).float()
    per_class = {str(k): hit[labels == k].mean().item() for k in range(n_classes) if (labels == k).any()}
    return hit.mean().item(), per_class


def fid(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (clean-fid's implementation)."""
    with warnings.catch_warnings():  # clean-fid calls scipy's sqrtm with a deprecated argument
        warnings.filterwarnings("ignore", message=".*disp.*")
        return float(cleanfid.fid_from_feats(np.asarray(real_feats, np.float64), np.asarray(fake_feats, np.float64)))


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.mean((a - b) ** 2).item()


def mae(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute error per pixel: the E|y - D(E(y))| term of the LSDM bound."""
    return torch.mean((a - b).abs()).item()
