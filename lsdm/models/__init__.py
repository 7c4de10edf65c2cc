"""Model registry: name -> constructor. A checkpoint stores the name and the constructor's
arguments, so `build(name, config)` rebuilds exactly the network that was trained."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from lsdm.io import load_checkpoint

from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.models.baselines import flow_mlp, pixel_wgan
from lsdm.models.evalnet import LeNet
from lsdm.models.matcher import Matcher, wgan_gp_mlp

MODELS: dict[str, Callable[..., nn.Module]] = {
    "conv_ae": ConvAutoencoder,  # latent stage
    "wgan_gp_mlp": wgan_gp_mlp,  # matching stage
    "lenet": LeNet,  # evaluation net
    "pixel_wgan": pixel_wgan,  # baseline: conditional WGAN-GP in pixel space
    "flow_mlp": flow_mlp,  # baseline: velocity field of latent flow matching
}


def build(name: str, config: dict[str, Any]) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {sorted(MODELS)}")
    return MODELS[name](**config)


def load(path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a checkpointed network (see `lsdm.io.save_checkpoint`) in eval mode on `device`."""
    ckpt = load_checkpoint(path, map_location=device)
    model = build(ckpt["name"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()


__all__ = ["MODELS", "build", "load", "ConvAutoencoder", "LeNet", "Matcher"]
