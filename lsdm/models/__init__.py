"""Model registry: name -> constructor ("module:attribute", imported on first use, so building one
network never imports the others). A checkpoint stores the name and the constructor's arguments,
so `build(name, config)` rebuilds exactly the network that was trained. Importing this package
imports no torch: label spreading (`lsdm.models.pseudo_labels`, numpy and scikit-learn) lives here too,
and what only needs it should not pay torch's import (about 2 s)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lsdm.errors import DataError
from lsdm.io import load_checkpoint

if TYPE_CHECKING:
    import torch
    from torch import nn

MODELS: dict[str, str] = {
    "conv_ae": "lsdm.models.autoencoder:ConvAutoencoder",  # the latent space (fit_latent)
    "wgan_gp_mlp": "lsdm.models.matcher:wgan_gp_mlp",  # LSDM's matcher (fit_matcher)
    "lenet": "lsdm.models.lenet:LeNet",  # the evaluation net (eval_net), the pseudo-labels' image classifier
    "pixel_wgan": "lsdm.models.pixel_gan:pixel_wgan",  # method pixel_wgan
    "flow_mlp": "lsdm.models.velocity:flow_mlp",  # method latent_flow
}


def constructor(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {sorted(MODELS)}")
    module, attr = MODELS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, config: dict[str, Any]) -> nn.Module:
    return constructor(name)(**config)


def load(path, device: str | torch.device = "cpu", expect: type[nn.Module] | None = None) -> nn.Module:
    """Rebuild a checkpointed network (see `lsdm.io.save_checkpoint`) in eval mode on `device`.
    With `expect`, a checkpoint of another kind of network is an error naming the file."""
    ckpt = load_checkpoint(path, map_location=device)
    model = build(ckpt["name"], ckpt["config"])
    if expect is not None and not isinstance(model, expect):
        raise DataError(f"{path}: holds a {type(model).__name__} ({ckpt['name']!r}), expected a {expect.__name__}")
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()
