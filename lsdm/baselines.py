"""Baselines beside LSDM (issue 7), trained on the same split and judged by the same evaluation.

`BASELINES[name] = Baseline(fit, load)`:
- `fit(params, device, out_dir, track) -> summary`: train on the paired subset (plus the shared
  latents where the method uses them) and write its checkpoints into `out_dir`;
- `load(device, params=None, root=".") -> [(sampler name, sampler)]`: the trained samplers, each
  with LSDMSampler's interface: `sampler(cond, eta) -> images [B, C, H, W] in [0, 1]`,
  `.noise_dim`, `.nfe` (network evaluations per sample, 1 for one-step methods).

`samplers(method, device)` is what an evaluation stage calls: latent_flow gives one sampler per
NFE (`latent_flow_nfe10`, ...), the others one each, named after the method.

- pixel_wgan: conditional WGAN-GP in pixel space, pairs only (no latent, no unpaired data).
- lsdm_paired_only: LSDM whose autoencoder is fitted on the paired images only: isolates what the
  unpaired data buys. Its latents are standardised with the pairs' own statistics.
- latent_flow: conditional flow matching on the shared standardised latents and the pairs, sampled
  by a fixed-NFE Euler/Heun solver, then the shared decoder (`lsdm.flow`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from lsdm import paths
from lsdm.config import METHOD_NAMES

BASELINE_DATA = paths.DATA / "baselines"
BASELINE_RESULTS = paths.RESULTS / "baselines"


def data_dir(method: str, root: str | Path = ".") -> Path:
    """Where fit_baseline@<method> writes its checkpoints (a DVC out)."""
    return Path(root) / BASELINE_DATA / method


def live_dir(method: str, root: str | Path = ".") -> Path:
    """fit_baseline@<method>'s dvclive directory (training curves, summary with train_seconds)."""
    return Path(root) / BASELINE_RESULTS / method / "train"


# --- samplers ----------------------------------------------------------------------------------


class PixelSampler(nn.Module):
    """pixel_wgan: the generator itself is the sampler (one forward pass)."""

    nfe = 1

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    @property
    def noise_dim(self) -> int:
        return self.generator.noise_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(x, eta)

    @classmethod
    def from_pipeline(cls, device: torch.device) -> "PixelSampler":
        return load_pixel_wgan(device)[0][1]


class FlowSampler(nn.Module):
    """latent_flow at a fixed NFE: eta (the ODE's starting point, dim = latent dim) -> z(1) -> decoder."""

    def __init__(self, velocity: nn.Module, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 nfe: int, solver: str = "euler"):  # fmt: skip
        super().__init__()
        from lsdm.flow import solver_steps

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
        from lsdm.flow import integrate

        if eta is None:
            eta = torch.randn(x.shape[0], self.noise_dim, device=self.mean.device)
        z, _ = integrate(lambda z, t: self.velocity(x, z, t), eta, self.nfe, self.solver)
        return z

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return self.autoencoder.decode(self.codes(x, eta) * self.std + self.mean)

    @classmethod
    def from_pipeline(cls, device: torch.device, nfe: int | None = None, solver: str | None = None) -> "FlowSampler":
        """The fitted flow at `nfe` (default: the first NFE recorded at fit time) through the shared decoder."""
        s = load_latent_flow(device)[0][1]
        return cls(s.velocity, s.autoencoder, s.mean, s.std, nfe or s.nfe, solver or s.solver).to(device).eval()


# --- shared inputs -------------------------------------------------------------------------------


def paired_inputs(params, device: torch.device, root: str | Path = "."):
    """(images table, paired table, paired images [N, C, H, W], their conditions, the task)."""
    from lsdm.data import labels_tensor, to_tensor
    from lsdm.io import read_table
    from lsdm.schemas import IMAGES, PAIRED
    from lsdm.tasks import make_task

    root, task = Path(root), make_task(params)
    images = read_table(root / paths.IMAGES, IMAGES)
    paired = read_table(root / paths.PAIRED, PAIRED)
    pair_images = to_tensor(images.set_index("id").loc[paired["id"]])
    cond = task.conditions(pair_images, labels_tensor(paired)).to(device)
    return images, paired, pair_images.to(device), cond, task


def shared_latents(ids, device: torch.device, root: str | Path = ".") -> torch.Tensor:
    """The shared (fit_latent/encode) standardised latents of the given ids, in that order."""
    from lsdm.data import codes
    from lsdm.io import read_table
    from lsdm.schemas import LATENTS

    return codes(read_table(Path(root) / paths.LATENTS, LATENTS), ids).to(device)


# --- fit functions ---------------------------------------------------------------------------------

Track = Callable[[int, dict[str, float]], None]


def fit_pixel_wgan(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    from lsdm.io import save_checkpoint
    from lsdm.models import build
    from lsdm.train import seed_everything, train_wgan_gp

    p = params.pixel_wgan
    images, paired, y, cond, task = paired_inputs(params, device, root)
    config = dict(condition=task.condition_spec(images), image_size=y.shape[-1], channels=y.shape[1],
                  noise_dim=p.noise_dim, width=p.width)  # fmt: skip
    seed_everything(p.seed)
    model = build("pixel_wgan", config).to(device)
    t0 = time.perf_counter()
    train_wgan_gp(model, cond, y, steps=p.steps, n_critic=p.n_critic, batch_size=p.batch_size, lr=p.lr,
                  gp_weight=p.gp_weight, seed=p.seed, log=track, desc="pixel_wgan")  # fmt: skip
    seconds = time.perf_counter() - t0
    save_checkpoint(out_dir / "model.pt", "pixel_wgan", config, model.state_dict(), task=params.task)
    return {"train_seconds": seconds, "n_pairs": len(paired)}


def fit_lsdm_paired_only(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    from lsdm.io import save_checkpoint, write_json
    from lsdm.models import build
    from lsdm.train import batched, seed_everything, train_autoencoder, train_wgan_gp

    p = params.lsdm_paired_only
    images, paired, y, cond, task = paired_inputs(params, device, root)
    ae_config = dict(image_size=y.shape[-1], in_channels=y.shape[1], dim=p.dim, channels=p.channels, noise=p.noise)
    seed_everything(p.seed)
    ae = build("conv_ae", ae_config).to(device)
    t0 = time.perf_counter()
    train_autoencoder(ae, y, steps=p.ae_steps, batch_size=p.ae_batch_size, lr=p.ae_lr, seed=p.seed,
                      log=lambda s, m: track(s, {f"ae/{k}": v for k, v in m.items()}), desc="lsdm_paired_only/ae")  # fmt: skip
    ae_seconds = time.perf_counter() - t0
    z = batched(ae.encode, y).double()
    mean, std = z.mean(0), z.std(0, unbiased=False) + 1e-8
    zs = ((z - mean) / std).float()
    m_config = dict(condition=task.condition_spec(images), z_dim=p.dim, noise_dim=p.noise_dim, width=p.width,
                    depth=p.depth, critic=p.critic)  # fmt: skip
    seed_everything(p.seed)
    matcher = build("wgan_gp_mlp", m_config).to(device)
    t1 = time.perf_counter()
    train_wgan_gp(matcher, cond, zs, steps=p.steps, n_critic=p.n_critic, batch_size=p.batch_size, lr=p.lr,
                  gp_weight=p.gp_weight, seed=p.seed, log=track, desc="lsdm_paired_only")  # fmt: skip
    matcher_seconds = time.perf_counter() - t1
    save_checkpoint(out_dir / "autoencoder.pt", "conv_ae", ae_config, ae.state_dict())
    save_checkpoint(out_dir / "matcher.pt", "wgan_gp_mlp", m_config, matcher.state_dict(), task=params.task)
    write_json({"mean": mean.tolist(), "std": std.tolist(), "n": len(zs)}, out_dir / "stats.json")
    return {"train_seconds": ae_seconds + matcher_seconds, "ae_train_seconds": ae_seconds,
            "matcher_train_seconds": matcher_seconds, "n_pairs": len(paired)}  # fmt: skip


def fit_latent_flow(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    from lsdm.flow import train_flow_matching
    from lsdm.io import save_checkpoint
    from lsdm.models import build
    from lsdm.train import seed_everything

    p = params.latent_flow
    images, paired, _, cond, task = paired_inputs(params, device, root)
    z = shared_latents(paired["id"], device, root)
    config = dict(condition=task.condition_spec(images), z_dim=z.shape[1], width=p.width, depth=p.depth)
    seed_everything(p.seed)
    velocity = build("flow_mlp", config).to(device)
    t0 = time.perf_counter()
    train_flow_matching(velocity, cond, z, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=p.seed, log=track)
    seconds = time.perf_counter() - t0
    save_checkpoint(out_dir / "flow.pt", "flow_mlp", config, velocity.state_dict(), task=params.task,
                    nfe=list(p.nfe), solver=p.solver)  # fmt: skip
    return {"train_seconds": seconds, "n_pairs": len(paired)}


# --- sampler loaders -----------------------------------------------------------------------------


def load_pixel_wgan(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    from lsdm.models import load

    model = load(data_dir("pixel_wgan", root) / "model.pt", device)
    return [("pixel_wgan", PixelSampler(model.generator).to(device).eval())]


def load_lsdm_paired_only(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    from lsdm.generate import LSDMSampler
    from lsdm.io import read_json
    from lsdm.models import load

    d = data_dir("lsdm_paired_only", root)
    stats = read_json(d / "stats.json")
    matcher, ae = load(d / "matcher.pt", device), load(d / "autoencoder.pt", device)
    sampler = LSDMSampler(matcher.generator, ae, torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
    sampler.nfe = 1
    return [("lsdm_paired_only", sampler.to(device).eval())]


def load_latent_flow(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    """One sampler per NFE: from `params.latent_flow` when given, else as recorded at fit time."""
    from lsdm.io import load_checkpoint, read_json
    from lsdm.models import load

    root = Path(root)
    path = data_dir("latent_flow", root) / "flow.pt"
    ckpt = load_checkpoint(path)
    nfes = list(params.latent_flow.nfe) if params is not None else ckpt["nfe"]
    solver = params.latent_flow.solver if params is not None else ckpt["solver"]
    velocity, ae = load(path, device), load(root / paths.AUTOENCODER, device)
    stats = read_json(root / paths.LATENT_STATS)
    mean, std = torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    return [(f"latent_flow_nfe{n}", FlowSampler(velocity, ae, mean, std, n, solver).to(device).eval()) for n in nfes]


class Baseline(NamedTuple):
    fit: Callable[..., dict[str, Any]]
    load: Callable[..., list[tuple[str, nn.Module]]]
    uses_shared_latent: bool  # reads data/latent + data/encoded (the shared autoencoder)


BASELINES: dict[str, Baseline] = {
    "pixel_wgan": Baseline(fit_pixel_wgan, load_pixel_wgan, False),
    "lsdm_paired_only": Baseline(fit_lsdm_paired_only, load_lsdm_paired_only, False),
    "latent_flow": Baseline(fit_latent_flow, load_latent_flow, True),
}
assert tuple(BASELINES) == METHOD_NAMES


def samplers(method: str, device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    """The (name, sampler) pairs to evaluate for a method: `lsdm` (the main pipeline), a baseline of
    BASELINES, or `bicubic` (super-resolution only, needs `params` for sr.factor)."""
    if method == "bicubic":
        if params is None or params.task != "super_resolution":
            raise ValueError("bicubic is a super-resolution baseline: pass params with task super_resolution")
        from lsdm.superres import BicubicSampler

        return [("bicubic", BicubicSampler(params.sr.factor).to(device))]
    if method == "lsdm":
        from lsdm.generate import LSDMSampler

        s = LSDMSampler.from_pipeline(device)
        s.nfe = 1
        return [("lsdm", s)]
    if method not in BASELINES:
        raise ValueError(f"unknown method {method!r}; allowed: {['lsdm', *BASELINES, 'bicubic']}")
    return BASELINES[method].load(device, params, root)
