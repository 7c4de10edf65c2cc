"""Exact 1-Wasserstein distances (POT's network simplex) between the real and generated joints of
(condition, point), measured on the held-out split: the two sides of LSDM's bound,

    W1(real joint, generated joint) <= Lip(D) * W1(latent joints) + E||y - D(E(y))||.

Both sets hold one point per held-out condition, so they carry the same conditions. With class
labels the W1 is taken per class and averaged by class size: the joint W1 under a ground metric that
makes points of different labels infinitely far apart. Without labels the condition enters the
ground metric, Euclidean on [condition, point]; the bound then needs max(1, Lip(D)) in place of Lip(D).
The same convention on both sides; Euclidean norms on pixels in [0, 1] and on the standardised latent.

Scale: an exact W1 costs superlinear time in its points (POT's network simplex: ~0.2 s at 1,000
points, ~6 s at 4,000) and a quadratic cost matrix, so the bound is measured on at most `max_points`
held-out points (`evaluate.bound_max_points`), drawn once, stratified by class; its bootstrap
resamples that subset, so the reported std is the sampling error at the cap: what the cap costs.
An empirical W1 also shrinks as its points grow (its bias, which no bootstrap shows): compare bounds
measured on equal numbers of points (`points` in the results).

Sampling error: a bootstrap over the held-out conditions (each drawn point keeps its real image, its
generated image, both codes and its reconstruction error; resampled within each class), whose spread
is the std reported beside each side. Lip(D) is held fixed: it is an estimate from below, not a mean.
"""

from __future__ import annotations

import numpy as np


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between the uniform laws on the rows of `a` and `b` (Euclidean ground metric)."""
    import ot

    cost = ot.dist(np.asarray(a, np.float64), np.asarray(b, np.float64), metric="euclidean")
    weights_a, weights_b = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    return float(ot.emd2(weights_a, weights_b, cost, numItermax=10_000_000))


def joint_w1(
    real: np.ndarray, fake: np.ndarray, labels: np.ndarray | None = None, cond: np.ndarray | None = None
) -> float:
    """W1 between {(x_i, real_i)} and {(x_i, fake_i)}: per label, averaged by class size, when `labels`
    are given; else with the flattened conditions `cond` in the ground metric."""
    real, fake = real.reshape(len(real), -1), fake.reshape(len(fake), -1)
    if labels is not None:
        return float(
            sum((labels == c).sum() * w1(real[labels == c], fake[labels == c]) for c in np.unique(labels)) / len(labels)
        )
    cond = cond.reshape(len(cond), -1)
    return w1(np.concatenate([cond, real], 1), np.concatenate([cond, fake], 1))


def capped(n: int, max_points: int | None, labels: np.ndarray | None, seed: int) -> np.ndarray:
    """Indices of at most `max_points` of `n` held-out points, each class keeping its share (at least
    one point); all of them, in order, under the cap."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, max_points, replace=False))
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    return np.sort(
        np.concatenate([rng.choice(g, max(1, round(max_points * len(g) / n)), replace=False) for g in groups])
    )


def bound_sides(
    y_real,
    y_fake,
    z_real,
    z_fake,
    lip: float,
    recon,
    labels=None,
    cond=None,
    bootstrap: int = 0,
    seed: int = 0,
    max_points: int | None = None,
) -> dict[str, float]:
    """The bound measured: its left side (pixels), the latent W1, and its right side. `recon`: the
    reconstruction error of each held-out image (or their mean); with `bootstrap` > 0, the std of
    each side over that many resamplings of the held-out points, and how often the bound held.
    `max_points`: the held-out points it is measured on at most (`capped`)."""
    recon = np.asarray(recon, np.float64).reshape(-1)
    factor = lip if labels is not None else max(1.0, lip)
    n_total = len(y_real)
    keep = capped(n_total, max_points, labels, seed)
    y_real, y_fake, z_real, z_fake = y_real[keep], y_fake[keep], z_real[keep], z_fake[keep]
    labels = None if labels is None else labels[keep]
    cond = None if cond is None else cond[keep]
    recon = recon[keep] if len(recon) == n_total and n_total > 1 else recon

    def sides(i: np.ndarray | slice) -> dict:
        w1_pixel = joint_w1(
            y_real[i], y_fake[i], None if labels is None else labels[i], None if cond is None else cond[i]
        )
        w1_latent = joint_w1(
            z_real[i], z_fake[i], None if labels is None else labels[i], None if cond is None else cond[i]
        )
        rhs = factor * w1_latent + float(recon[i].mean() if len(recon) > 1 else recon[0])
        return {
            "w1_pixel_exact": w1_pixel,
            "w1_latent_exact": w1_latent,
            "lip_times_w1": factor * w1_latent,
            "rhs": rhs,
            "holds": bool(w1_pixel <= rhs),
        }

    out = {
        **sides(slice(None)),
        "convention": "per class, averaged" if labels is not None else "condition in the ground metric",
        "points": len(keep),
        "points_held_out": n_total,
    }
    if bootstrap:
        rng, n = np.random.default_rng(seed), len(y_real)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels is not None else [np.arange(n)]
        draws = [sides(np.concatenate([rng.choice(g, len(g)) for g in groups])) for _ in range(bootstrap)]
        for k in ("w1_pixel_exact", "w1_latent_exact", "rhs"):
            out[f"{k}_std"] = float(np.std([d[k] for d in draws], ddof=1))
        out["holds_fraction"] = float(np.mean([d["holds"] for d in draws]))
        out["bootstrap"] = bootstrap
    return out
