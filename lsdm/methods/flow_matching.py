"""Conditional flow matching (rectified flow, linear path) and fixed-NFE ODE samplers.

Training: z0 ~ N(0, I), z1 = a data latent paired with condition x, t ~ U(0, 1),
z_t = (1 - t) z0 + t z1; regress v(x, z_t, t) on the path's velocity z1 - z0 (MSE).
Sampling: integrate dz/dt = v(x, z, t) from t = 0 (z = eta) to t = 1 with a fixed budget of
function evaluations (NFE): Euler spends 1 per step (NFE steps); Heun spends 2 per step
(NFE / 2 steps, no evaluation is skipped). `integrate` returns the number it really spent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lsdm.models.training import Logger, _no_log, minimise

SOLVERS = ("euler", "heun")


def flow_matching_loss(velocity: nn.Module, x: torch.Tensor, z1: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """MSE between v(x, z_t, t) and z1 - z0 on the straight path from noise z0 to the data z1."""
    z0 = torch.randn(z1.shape, generator=gen).to(z1.device)
    t = torch.rand(z1.shape[0], generator=gen).to(z1.device)
    zt = (1 - t[:, None]) * z0 + t[:, None] * z1
    return nn.functional.mse_loss(velocity(x, zt, t), z1 - z0)


def train_flow_matching(
    velocity: nn.Module,
    cond: torch.Tensor,
    z: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Logger = _no_log,
    log_every: int = 25,
) -> nn.Module:
    """Fit v on the pairs (cond[i], z[i]); Adam with a cosine schedule. Deterministic given `seed`."""

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        idx = idx.to(z.device)
        return flow_matching_loss(velocity, cond[idx], z[idx], gen)

    return minimise(
        velocity,
        loss,
        len(z),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        desc="latent_flow",
        metric="train/fm_loss",
        log=log,
        log_every=log_every,
    )


def solver_steps(nfe: int, solver: str) -> int:
    """Integration steps that spend exactly `nfe` evaluations."""
    if solver == "euler":
        return nfe
    if solver == "heun":
        if nfe < 2 or nfe % 2:
            raise ValueError(f"heun spends 2 evaluations per step: nfe must be even and >= 2, got {nfe}")
        return nfe // 2
    raise ValueError(f"unknown solver {solver!r}; allowed: {list(SOLVERS)}")


@torch.no_grad()
def integrate(
    v: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z0: torch.Tensor, nfe: int, solver: str = "euler"
) -> tuple[torch.Tensor, int]:
    """Solve dz/dt = v(z, t) from t = 0 to 1 on a uniform grid; return z(1) and the evaluations spent."""
    n = solver_steps(nfe, solver)
    h, z, spent = 1.0 / n, z0, 0
    for i in range(n):
        t = torch.full((z.shape[0],), i * h, device=z.device, dtype=z.dtype)
        k1 = v(z, t)
        spent += 1
        if solver == "euler":
            z = z + h * k1
        else:
            k2 = v(z + h * k1, t + h)
            spent += 1
            z = z + 0.5 * h * (k1 + k2)
    return z, spent
