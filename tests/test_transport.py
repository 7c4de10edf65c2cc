"""Exact W1 (POT) where the answer is known, and the bound measured on a decoder whose Lipschitz
constant is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from lsdm.evaluation.transport import bound_sides, joint_w1, w1


def test_w1_is_exact_where_the_answer_is_known():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 3))
    assert w1(a, a[rng.permutation(40)]) == pytest.approx(0.0, abs=1e-6)  # the same law
    assert w1(a, a + [3.0, 4.0, 0.0]) == pytest.approx(5.0)  # a translation moves every point by its norm
    x, y = rng.normal(size=(50, 1)), rng.exponential(size=(50, 1))
    assert w1(x, y) == pytest.approx(wasserstein_distance(x[:, 0], y[:, 0]))  # 1-D: the quantile formula


def test_joint_w1_keeps_the_conditions_apart():
    """Swapping two classes' points leaves the pooled law unchanged but not the joint one."""
    real = np.concatenate([np.zeros((10, 2)), np.ones((10, 2)) * 4])
    labels = np.repeat([0, 1], 10)
    swapped = real[::-1].copy()
    assert w1(real, swapped) == pytest.approx(0.0, abs=1e-6)
    assert joint_w1(real, swapped, labels) == pytest.approx(np.sqrt(32))  # every point crosses to the other class
    cond = labels[:, None].astype(float) * 100  # without labels: the condition in the ground metric
    assert joint_w1(real, swapped, cond=cond) == pytest.approx(np.sqrt(32))


def test_the_bound_holds_for_a_linear_decoder():
    """D(z) = A z: W1(pixels) <= ||A|| W1(latents) exactly (recon 0); the measured sides say so."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 3))
    lip = float(np.linalg.norm(a, 2))
    z_real, z_fake, labels = rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 0.5, np.arange(60) % 3
    sides = bound_sides(z_real @ a.T, z_fake @ a.T, z_real, z_fake, lip, 0.0, labels)
    assert sides["holds"] and 0 < sides["w1_pixel_exact"] <= sides["rhs"] == pytest.approx(lip * sides["w1_latent_exact"])
    assert sides["convention"] == "per class, averaged"
    lower = bound_sides(z_real @ a.T, z_fake @ a.T, z_real, z_fake, 0.1 * lip, 0.0, labels)  # an underestimated Lip(D)
    assert not lower["holds"]


def test_bootstrap_gives_each_side_a_sampling_error():
    """Resampling the held-out points: a spread > 0 that shrinks with more points; the bound of a linear
    decoder holds in every resampling (it holds for any empirical law)."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 3))
    lip = float(np.linalg.norm(a, 2))

    def sides(n: int) -> dict:
        z_real, z_fake, labels = rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) + 0.5, np.arange(n) % 3
        recon = rng.uniform(0.0, 0.2, size=n)
        return bound_sides(z_real @ a.T, z_fake @ a.T, z_real, z_fake, lip, recon, labels, bootstrap=30, seed=0)

    small, large = sides(30), sides(300)
    assert small["bootstrap"] == 30 and small["holds_fraction"] == 1.0
    assert 0 < large["w1_pixel_exact_std"] < small["w1_pixel_exact_std"]
    assert 0 < large["rhs_std"] < small["rhs_std"]
    assert "w1_pixel_exact_std" not in bound_sides(np.ones((4, 2)), np.zeros((4, 2)), np.ones((4, 1)), np.zeros((4, 1)), 1.0,
                                                   0.0, np.zeros(4, int))  # no bootstrap asked: no std
