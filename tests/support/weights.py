"""Stand-ins for the pretrained networks the metrics load (clean-fid's Inception, torchvision's
SqueezeNet): right interface, random or trivial weights, no download."""

from __future__ import annotations

import torch


class _StandInLayers(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # checks what clean-fid feeds Inception: 3 channels, 299 x 299, normalised to [-1, 1]
        assert x.shape[1] == 3 and x.shape[2] == 299 and x.shape[3] == 299
        assert float(x.min()) >= -1.001 and float(x.max()) <= 1.001
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # [B, 48]
        return pooled.repeat(1, 43)[:, :2048]


class _StandInInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _StandInLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def write_stand_in_inception(path) -> None:
    """A small TorchScript file with the interface of clean-fid's inception-2015-12-05.pt."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        torch.jit.save(torch.jit.script(_StandInInception()), str(path))


def write_stand_in_squeezenet(torch_home) -> None:
    """Randomly initialised SqueezeNet 1.1 weights where torchvision looks for the pretrained ones."""
    from torchvision.models import squeezenet1_1

    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.save(squeezenet1_1().state_dict(), ckpt / "squeezenet1_1-b8a52dc0.pth")
