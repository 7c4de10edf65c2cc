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
    assert sides["holds"] and 0 < sides["w1_pixel_exact"] <= sides["rhs"] == pytest.approx(
        lip * sides["w1_latent_exact"]
    )
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
    assert "w1_pixel_exact_std" not in bound_sides(
        np.ones((4, 2)), np.zeros((4, 2)), np.ones((4, 1)), np.zeros((4, 1)), 1.0, 0.0, np.zeros(4, int)
    )  # no bootstrap asked: no std


def test_the_capped_bound_keeps_each_class_share_and_stays_within_its_sampling_error():
    """Over the cap the bound is measured on a class-stratified subset: as many points as asked, each
    class in proportion (a rare class keeps a point); its value is the full set's within a few of its
    own bootstrap stds. Under the cap nothing changes."""
    from lsdm.evaluation.transport import capped

    labels = np.repeat([0, 1, 2], [1200, 790, 10])
    keep = capped(len(labels), 400, labels, seed=0)
    assert len(np.unique(keep)) == len(keep) == 400 and np.bincount(labels[keep]).tolist() == [240, 158, 2]
    assert len(capped(300, None, None, 0)) == 300 and capped(300, 500, None, 0).tolist() == list(range(300))

    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 3))
    z_real, z_fake = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3)) + 0.5
    recon, lip = rng.uniform(0.0, 0.2, size=2000), float(np.linalg.norm(a, 2))
    full = bound_sides(z_real @ a.T, z_fake @ a.T, z_real, z_fake, lip, recon, labels)
    cap = bound_sides(
        z_real @ a.T, z_fake @ a.T, z_real, z_fake, lip, recon, labels, bootstrap=20, seed=0, max_points=400
    )
    assert (cap["points"], cap["points_held_out"], full["points"]) == (400, 2000, 2000)
    for k in ("w1_pixel_exact", "w1_latent_exact", "rhs"):
        assert abs(cap[k] - full[k]) < 4 * cap[f"{k}_std"], k
        assert cap[k] != full[k]  # a subset, not the full set
    same = bound_sides(z_real @ a.T, z_fake @ a.T, z_real, z_fake, lip, recon, labels, max_points=5000)
    assert same["w1_pixel_exact"] == full["w1_pixel_exact"] and same["rhs"] == full["rhs"]
