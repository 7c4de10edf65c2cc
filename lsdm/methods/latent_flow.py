"""latent_flow: conditional flow matching on the shared standardised latents and the pairs, sampled
by a fixed-NFE Euler/Heun solver (`lsdm.methods.flow_matching`), then the shared decoder."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.io import load_checkpoint, read_json, save_checkpoint
from lsdm.methods.common import Track, paired_inputs, shared_latents
from lsdm.methods.flow_matching import integrate, solver_steps, train_flow_matching
from lsdm.models import load
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.models.velocity import VelocityField
from lsdm.models.training import seed_everything

FIT_READS = (paths.IMAGES, paths.PAIRED, paths.LATENTS)
SAMPLE_READS = (paths.AUTOENCODER, paths.LATENT_STATS)  # the shared decoder and its latent scale


class FlowSampler(nn.Module):
    """latent_flow at a fixed NFE: eta (the ODE's starting point, dim = latent dim) -> z(1) -> decoder."""

    def __init__(self, velocity: nn.Module, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 nfe: int, solver: str = "euler"):  # fmt: skip
        super().__init__()
        solver_steps(nfe, solver)  # validates the budget
        self.velocity, self.autoencoder, self.nfe, self.solver = velocity, autoencoder, nfe, solver
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @property
    def noise_dim(self) -> int:
        return self.velocity.z_dim

    @torch.no_grad()
    def codes(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised latents (the space the flow lives in)."""
        if eta is None:
            eta = torch.randn(x.shape[0], self.noise_dim, device=self.mean.device)
        z, _ = integrate(lambda z, t: self.velocity(x, z, t), eta, self.nfe, self.solver)
        return z

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return self.autoencoder.decode(self.codes(x, eta) * self.std + self.mean)

    @classmethod
    def from_pipeline(cls, device: torch.device, nfe: int | None = None, solver: str | None = None,
                      root: str | Path = ".") -> "FlowSampler":  # fmt: skip
        """The fitted flow at `nfe` (default: the first NFE recorded at fit time) through the shared decoder."""
        s = samplers(device, root=root)[0][1]
        return cls(s.velocity, s.autoencoder, s.mean, s.std, nfe or s.nfe, solver or s.solver).to(device).eval()


def fit(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    p = params.latent_flow
    images, paired, _, cond, task = paired_inputs(params, device, root)
    z = shared_latents(paired["id"], device, root)
    config = dict(condition=task.condition_spec(images), z_dim=z.shape[1], width=p.width, depth=p.depth)
    seed_everything(p.seed)
    velocity = VelocityField(**config).to(device)
    t0 = time.perf_counter()
    train_flow_matching(velocity, cond, z, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=p.seed, log=track)
    seconds = time.perf_counter() - t0
    save_checkpoint(out_dir / "flow.pt", "flow_mlp", config, velocity.state_dict(), task=params.task,
                    nfe=list(p.nfe), solver=p.solver)  # fmt: skip
    return {"train_seconds": seconds, "n_pairs": len(paired)}


def samplers(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    """One sampler per NFE: from `params.latent_flow` when given, else as recorded at fit time."""
    root = Path(root)
    path = paths.method_data("latent_flow", root) / "flow.pt"
    ckpt = load_checkpoint(path)
    nfes = list(params.latent_flow.nfe) if params is not None else ckpt["nfe"]
    solver = params.latent_flow.solver if params is not None else ckpt["solver"]
    velocity, ae = load(path, device, VelocityField), load(root / paths.AUTOENCODER, device, ConvAutoencoder)
    stats = read_json(root / paths.LATENT_STATS)
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    return [(f"latent_flow_nfe{n}", FlowSampler(velocity, ae, mean, std, n, solver).to(device).eval()) for n in nfes]
