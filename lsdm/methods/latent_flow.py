"""latent_flow: conditional flow matching on the shared standardised latents and the pairs, sampled
by a fixed-NFE Euler/Heun solver (`lsdm.methods.flow_matching`), then the shared decoder.
`latent_flow_pseudo` trains the same model on the pairs plus the pool's confident pseudo-pairs."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.io import load_checkpoint, save_checkpoint
from lsdm.methods.common import Track, paired_inputs, shared_decoder, shared_latents, with_pseudo_pairs
from lsdm.methods.flow_matching import integrate, solver_steps, train_flow_matching
from lsdm.methods.sampling import LatentSampler
from lsdm.models import load
from lsdm.models.training import seed_everything
from lsdm.models.velocity import VelocityField

FIT_READS = (paths.IMAGES, paths.PAIRED, paths.LATENTS)
SAMPLE_READS = (paths.AUTOENCODER, paths.LATENT_STATS)  # the shared decoder and its latent scale


class FlowGenerator(nn.Module):
    """The flow at a fixed NFE as a latent generator: eta (the ODE's starting point) -> z(1), standardised."""

    def __init__(self, velocity: nn.Module, nfe: int, solver: str = "euler"):
        super().__init__()
        solver_steps(nfe, solver)  # validates the budget
        self.velocity, self.nfe, self.solver = velocity, nfe, solver

    @property
    def noise_dim(self) -> int:
        return self.velocity.z_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        if eta is None:
            eta = torch.randn(x.shape[0], self.noise_dim, device=x.device)
        return integrate(lambda z, t: self.velocity(x, z, t), eta, self.nfe, self.solver)[0]


class FlowSampler(LatentSampler):
    """latent_flow at a fixed NFE through the shared decoder; with a class model and K candidates, the
    filtered draw of `lsdm.methods.sampling.LatentSampler` (latent_flow_pseudo)."""

    def __init__(
        self,
        velocity: nn.Module,
        autoencoder: nn.Module,
        mean: torch.Tensor,
        std: torch.Tensor,
        nfe: int,
        solver: str = "euler",
        classes: nn.Module | None = None,
        candidates: int = 1,
        accept: float = 1.0,
    ):
        super().__init__(FlowGenerator(velocity, nfe, solver), autoencoder, mean, std, classes, candidates, accept)

    @property
    def velocity(self) -> nn.Module:
        return self.generator.velocity

    @property
    def solver(self) -> str:
        return self.generator.solver

    @classmethod
    def from_pipeline(
        cls, device: torch.device, nfe: int | None = None, solver: str | None = None, root: str | Path = "."
    ) -> FlowSampler:
        """The fitted flow at `nfe` (default: the first NFE recorded at fit time) through the shared decoder."""
        s = samplers(device, root=root)[0][1]
        return cls(s.velocity, s.autoencoder, s.mean, s.std, nfe or s.nfe, solver or s.solver).to(device).eval()


def fit(
    params,
    device: torch.device,
    out_dir: Path,
    track: Track,
    root: str | Path = ".",
    name: str = "latent_flow",
    pseudo: bool = False,
) -> dict:
    """Train on the pairs or, with `pseudo`, on the pairs plus the pool's confident pseudo-pairs
    (`latent_flow_pseudo`), with the budget of `params.<name>`; writes flow.pt."""
    p = getattr(params, name)
    images, paired, _, cond, task = paired_inputs(params, device, root)
    ids, cond = with_pseudo_pairs(params, paired, cond, task, device, root) if pseudo else (paired["id"], cond)
    z = shared_latents(ids, device, root)
    config = dict(condition=task.condition_spec(images), z_dim=z.shape[1], width=p.width, depth=p.depth)
    seed_everything(p.seed)
    velocity = VelocityField(**config).to(device)
    t0 = time.perf_counter()
    train_flow_matching(velocity, cond, z, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=p.seed, log=track)
    seconds = time.perf_counter() - t0
    save_checkpoint(
        out_dir / "flow.pt",
        "flow_mlp",
        config,
        velocity.state_dict(),
        task=params.task,
        nfe=list(p.nfe),
        solver=p.solver,
    )
    return {"train_seconds": seconds, "n_pairs": len(paired), "n_pseudo": len(ids) - len(paired)}


def samplers(
    device: torch.device,
    params=None,
    root: str | Path = ".",
    name: str = "latent_flow",
    classes: nn.Module | None = None,
) -> list[tuple[str, nn.Module]]:
    """One sampler per NFE: from `params.<name>` when given, else as recorded at fit time; with
    `classes`, each drawing through it at `params.sample`'s candidates and acceptance."""
    root = Path(root)
    path = paths.method_data(name, root) / "flow.pt"
    ckpt = load_checkpoint(path)
    nfes = list(getattr(params, name).nfe) if params is not None else ckpt["nfe"]
    solver = getattr(params, name).solver if params is not None else ckpt["solver"]
    velocity, (ae, mean, std) = load(path, device, VelocityField), shared_decoder(device, root)
    draw = (
        dict(classes=classes, candidates=params.sample.candidates, accept=params.sample.accept)
        if classes is not None
        else {}
    )
    return [(f"{name}_nfe{n}", FlowSampler(velocity, ae, mean, std, n, solver, **draw).to(device).eval()) for n in nfes]
