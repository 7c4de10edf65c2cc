"""LSDM's bound, measured on held-out data: its Lipschitz factor, and the critic's diagnostic.

    W1(joint of (x, y), joint of (x, y_hat)) <= Lip(D) * W1(latent joints) + E|y - D(E(y))|

The evaluate stage (`lsdm.pipeline.evaluate.bound_terms`) measures each term on the test images:

- reconstruction: E ||y - D(E(y))||_2 over test images (`lsdm.evaluation.metrics.reconstruction_errors`);
- Lip(D): the largest spectral norm of the decoder's Jacobian over sampled latents (this module);
- W1 of the latent joints, and the left side W1 of the image joints: exact optimal transport between
  the held-out (condition, E(y)) and (condition, G(x, eta)), and between (condition, y) and
  (condition, D(G(x, eta))) (`lsdm.evaluation.transport`), not a critic's estimate.

The critic's own value E f(x, z) - E f(x, G(x, eta)) (`critic_w1`, this module) is no term of the
bound: it is reported beside it, on held-out codes and on the critic's training pairs, as a
diagnostic of memorisation (a critic fitted on a few pairs need not tell held-out real codes from
generated ones).

All terms use the same geometry: Euclidean norm on flattened pixels in [0, 1] for images, and on
the *standardised* latent (the space G and f work in) for codes, so the decoder is taken as
z_std -> D(z_std * std + mean). The Jacobian maximum over samples is a lower estimate of the global
Lipschitz constant, so the right side measured is an estimate from below, not a certified bound.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def decoder_jacobian_norms(
    decode, z: torch.Tensor, batch_size: int = 64, max_entries: int = 1 << 22
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral and Frobenius norms of d decode(z) / dz at each row of z ([N, d]).

    Forward mode, d columns per point (d is small): each point repeated d times, row j of its
    copies pushed along e_j, all in one `torch.func.jvp` of the batch (the decoder treats rows
    independently). Up to `batch_size` points at once, fewer where their Jacobians would pass
    `max_entries`, and under no_grad: forward mode needs no graph, and with the decoder's weights
    recording one, every batch's stayed alive through its norms (`vmap(jacfwd)` held 6 GB for 96
    points of a 64x64x3 decoder with d = 64; now 0.6 GB above the model).
    """
    from torch.func import jvp

    n, d = z.shape
    with torch.no_grad():
        outputs = decode(z[:1].detach()).numel()
    batch_size = max(1, min(batch_size, max_entries // max(1, outputs * d)))
    eye = torch.eye(d, device=z.device, dtype=z.dtype)
    spec, frob = [], []
    with warnings.catch_warnings():
        # forward-mode AD loads torch's jvp decompositions on first use, and torch compiles them with
        # its own deprecated `torch.jit.script` (torch/_decomp/decompositions_for_jvp.py): a notice
        # about torch's internals that every `lsdm evaluate` printed; other warnings still show
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        for i in range(0, n, batch_size):
            zb = z[i : i + batch_size].detach()
            b = len(zb)
            with torch.no_grad():  # forward mode needs no graph for a backward pass: none is kept
                _, cols = jvp(decode, (zb.repeat_interleave(d, 0),), (eye.repeat(b, 1),))  # [b*d, ...]
            J = cols.reshape(b, d, -1).mT  # [b, P, d]
            # spectral norm = sqrt of the largest eigenvalue of J^T J ([d, d]: cheaper than an SVD of J)
            spec.append(torch.linalg.eigvalsh(J.mT @ J)[:, -1].clamp_min(0).sqrt().cpu())
            frob.append(torch.linalg.matrix_norm(J, ord="fro").cpu())
    return torch.cat(spec), torch.cat(frob)


def lipschitz_probe_points(z_real: torch.Tensor, z_fake: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Where to probe D: real test codes, generated codes and random points between them (the
    segments the bound's transport moves along), about n/3 of each."""
    gen = torch.Generator().manual_seed(seed)
    k = max(1, n // 3)
    ir = torch.randint(0, len(z_real), (k,), generator=gen)
    jf = torch.randint(0, len(z_fake), (k,), generator=gen)
    a = torch.rand(n - 2 * k if n > 2 * k else k, 1, generator=gen)
    im = torch.randint(0, min(len(z_real), len(z_fake)), (len(a),), generator=gen)
    dev = z_real.device
    mix = a.to(dev) * z_real[im.to(dev)] + (1 - a.to(dev)) * z_fake[im.to(dev)]
    return torch.cat([z_real[ir.to(dev)], z_fake[jf.to(dev)], mix])


def decoder_lipschitz(decode, z: torch.Tensor) -> dict[str, float]:
    """Largest Jacobian spectral norm over the points z (the Lip(D) estimate), plus the largest
    Frobenius norm (an upper bound on the spectral norm at the same point) and the median spectral."""
    spec, frob = decoder_jacobian_norms(decode, z)
    return {
        "decoder_lipschitz_spectral_max": spec.max().item(),
        "decoder_jacobian_spectral_median": spec.median().item(),
        "decoder_jacobian_frobenius_max": frob.max().item(),
        "decoder_lipschitz_n_points": int(len(z)),
    }


@torch.no_grad()
def critic_w1(
    critic: nn.Module, cond: torch.Tensor, z_real: torch.Tensor, z_fake: torch.Tensor, batch_size: int = 1024
) -> float:
    """The critic's W1 estimate E f(x, z_real) - E f(x, z_fake), conditions paired row by row."""

    def mean_f(z: torch.Tensor) -> torch.Tensor:
        steps = range(0, len(cond), batch_size)
        return torch.cat([critic(cond[i : i + batch_size], z[i : i + batch_size]) for i in steps]).mean()

    return (mean_f(z_real) - mean_f(z_fake)).item()
