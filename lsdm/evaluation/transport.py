"""Exact 1-Wasserstein distances (POT's network simplex) between the real and generated joints of
(condition, point), measured on the held-out split: the two sides of LSDM's bound,

    W1(real joint, generated joint) <= Lip(D) * W1(latent joints) + E||y - D(E(y))||.

Both sets hold one point per held-out condition, so they carry the same conditions. With class
labels the W1 is taken per class and averaged by class size: the joint W1 under a ground metric that
makes points of different labels infinitely far apart. Without labels the condition enters the
ground metric, Euclidean on [condition, point]; the bound then needs max(1, Lip(D)) in place of Lip(D).
The same convention on both sides; Euclidean norms on pixels in [0, 1] and on the standardised latent.
"""

from __future__ import annotations

import numpy as np


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between the uniform laws on the rows of `a` and `b` (Euclidean ground metric)."""
    import ot

    cost = ot.dist(np.asarray(a, np.float64), np.asarray(b, np.float64), metric="euclidean")
    weights_a, weights_b = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    return float(ot.emd2(weights_a, weights_b, cost, numItermax=10_000_000))


def joint_w1(real: np.ndarray, fake: np.ndarray, labels: np.ndarray | None = None,
             cond: np.ndarray | None = None) -> float:  # fmt: skip
    """W1 between {(x_i, real_i)} and {(x_i, fake_i)}: per label, averaged by class size, when `labels`
    are given; else with the flattened conditions `cond` in the ground metric."""
    real, fake = real.reshape(len(real), -1), fake.reshape(len(fake), -1)
    if labels is not None:
        return float(sum((labels == c).sum() * w1(real[labels == c], fake[labels == c]) for c in np.unique(labels)) / len(labels))
    cond = cond.reshape(len(cond), -1)
    return w1(np.concatenate([cond, real], 1), np.concatenate([cond, fake], 1))


def bound_sides(y_real, y_fake, z_real, z_fake, lip: float, recon: float, labels=None, cond=None) -> dict[str, float]:
    """The bound measured: its left side (pixels), the latent W1, and its right side."""
    w1_pixel, w1_latent = joint_w1(y_real, y_fake, labels, cond), joint_w1(z_real, z_fake, labels, cond)
    factor = lip if labels is not None else max(1.0, lip)
    return {"w1_pixel_exact": w1_pixel, "w1_latent_exact": w1_latent, "lip_times_w1": factor * w1_latent,
            "rhs": factor * w1_latent + recon, "holds": bool(w1_pixel <= factor * w1_latent + recon),
            "convention": "per class, averaged" if labels is not None else "condition in the ground metric"}  # fmt: skip
