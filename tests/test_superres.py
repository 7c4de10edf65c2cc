"""Super-resolution: the degradation, the bicubic baseline, PSNR/SSIM against reference
implementations, and the conv condition encoder feeding the matcher."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lsdm.models import build
from lsdm.tasks.super_resolution import SuperResolution, bicubic_upsample, consistency_psnr, downsample, psnr, ssim


def test_downsample_is_block_average_and_bicubic_keeps_range():
    y = torch.arange(16.0).view(1, 1, 4, 4) / 15
    x = downsample(y, 2)
    assert x.shape == (1, 1, 2, 2) and torch.isclose(x[0, 0, 0, 0], y[0, 0, :2, :2].mean())
    up = bicubic_upsample(x, 2)
    assert up.shape == y.shape and up.min() >= 0 and up.max() <= 1


def test_psnr_matches_skimage():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 16, 16)), rng.random((2, 1, 16, 16))
    ours = psnr(torch.tensor(a), torch.tensor(b))
    for i in range(2):
        assert ours[i].item() == pytest.approx(peak_signal_noise_ratio(a[i, 0], b[i, 0], data_range=1.0), rel=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_gaussian_variant(channels):
    rng = np.random.default_rng(1)
    a = rng.random((1, channels, 28, 28))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ours = ssim(torch.tensor(a).float(), torch.tensor(b).float()).item()
    ref = structural_similarity(
        a[0].transpose(1, 2, 0),
        b[0].transpose(1, 2, 0),
        data_range=1.0,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        win_size=7,
        use_sample_covariance=False,
    )
    assert ours == pytest.approx(ref, abs=2e-3)
    assert ssim(torch.tensor(a).float(), torch.tensor(a).float()).item() == pytest.approx(1.0, abs=1e-5)


def test_consistency_is_high_for_a_consistent_output():
    y = torch.rand(4, 1, 28, 28)
    x = downsample(y, 4)
    assert consistency_psnr(y, x, 4).min() > 60  # the ground truth explains its own input exactly
    assert consistency_psnr(torch.rand(4, 1, 28, 28), x, 4).mean() < 25


def test_sr_task_conditions_feed_the_matcher():
    import pandas as pd

    task = SuperResolution(factor=4, encoder_width=6)
    spec = task.condition_spec(pd.DataFrame({"height": [28], "channels": [1]}))
    assert spec == {"kind": "image", "channels": 1, "size": 7, "width": 6}
    y = torch.rand(5, 1, 28, 28)
    x = task.conditions(y, torch.zeros(5))
    m = build("wgan_gp_mlp", dict(condition=spec, z_dim=8, noise_dim=4, width=32, depth=2))
    z = m(x)
    assert x.shape == (5, 1, 7, 7) and z.shape == (5, 8) and m.critic(x, z).shape == (5,)
    assert [c.out_channels for c in m.critic.cond.modules() if isinstance(c, torch.nn.Conv2d)] == [6, 12]


def test_fidelity_spread_and_grid():
    from lsdm.tasks.super_resolution import comparison_grid, draw_spread, fidelity

    y = torch.rand(3, 1, 28, 28)
    x = downsample(y, 4)
    perfect = fidelity(y, y, x, 4)
    assert perfect["ssim"] == pytest.approx(1.0, abs=1e-5) and perfect["psnr"] > 60 and perfect["consistency_psnr"] > 60
    draws = torch.stack([y, y + 0.1])
    assert draw_spread([[y, y]]) == 0.0
    # the per-pixel sample std over the draws, averaged: 0.1 for draws y - 0.1, y, y + 0.1
    assert draw_spread([[y - 0.1, y, y + 0.1]]) == pytest.approx(0.1, rel=1e-4)
    # in batches, as evaluate computes them at scale: the same figures as the whole set at once
    noisy = [(y + 0.05 * torch.randn_like(y)).clamp(0, 1) for _ in range(3)]
    whole = {"psnr": psnr(noisy[0], y).mean().item(), "ssim": ssim(noisy[0], y).mean().item()}
    assert {k: v for k, v in fidelity(noisy[0], y, x, 4, batch_size=2).items() if k in whole} == pytest.approx(
        whole, rel=1e-6
    )
    in_batches = ([d[i : i + 2] for d in noisy] for i in range(0, len(y), 2))
    assert draw_spread(in_batches) == pytest.approx(torch.stack(noisy).std(dim=0).mean().item(), rel=1e-6)
    grid = comparison_grid(x, bicubic_upsample(x, 4), draws, y)
    assert grid.shape == (3 * 5, 1, 28, 28)
    assert torch.equal(grid[4], y[0]) and torch.equal(grid[5 + 4], y[1])  # last column of each row is the truth


def test_back_projection_makes_outputs_consistent():
    from lsdm.tasks.super_resolution import BackProjected, back_project

    torch.manual_seed(0)
    y = torch.rand(4, 1, 28, 28) * 0.8 + 0.1
    x = downsample(y, 4)
    guess = torch.rand(4, 1, 28, 28)
    before = consistency_psnr(guess, x, 4).mean()
    after = consistency_psnr(back_project(guess, x, 4, 10), x, 4).mean()
    assert after > before + 10, (before, after)
    assert torch.allclose(back_project(y, x, 4, 5), y, atol=1e-5)  # a consistent output is left alone

    class Fixed(torch.nn.Module):  # any sampler
        noise_dim = 1

        def forward(self, c, eta=None):
            return guess

    wrapped = BackProjected(Fixed(), 4, 10)
    assert consistency_psnr(wrapped(x), x, 4).mean() > before + 10


def test_report_puts_raw_lsdm_beside_back_projected_and_bicubic():
    from lsdm.reports.run_report import task_lines
    from lsdm.tasks.class_conditional import ClassConditional

    task = SuperResolution(4, 8, back_projection=5)
    e = {
        "psnr": 16.5,
        "consistency_psnr": 38.1,
        "back_projection": 5,
        "raw": {"psnr": 15.9, "consistency_psnr": 20.2},
        "references": {"bicubic": {"psnr": 14.6, "consistency_psnr": 26.4}},
    }
    text = "\n".join(task_lines(e, task))
    assert "| metric | LSDM | LSDM raw | bicubic |" in text and "5 iterations of back-projection" in text
    assert "| `consistency_psnr` | 38.1" in text and "| 20.2" in text and "| 26.4" in text
    text = "\n".join(task_lines({"psnr": 16.0, "back_projection": 0, "references": {"bicubic": {"psnr": 14.6}}}, task))
    assert "LSDM raw" not in text and "as they come" in text
    assert task_lines(e, ClassConditional()) == []  # a task without a section of its own adds none


def test_tasks_are_found_and_built_from_their_params():
    from lsdm.config import parse_params
    from lsdm.tasks import TASKS, make_task

    assert TASKS == ("class_conditional", "super_resolution")
    task = make_task(parse_params({"task": "super_resolution", "sr": {"factor": 2, "back_projection": 3}}))
    assert (task.factor, task.back_projection) == (2, 3)
    [(name, bicubic)] = task.reference_samplers(torch.device("cpu"))
    y = bicubic(torch.rand(3, 1, 7, 7), torch.randn(3, bicubic.noise_dim))
    assert name == "bicubic" and y.shape == (3, 1, 14, 14) and 0 <= y.min() and y.max() <= 1
    assert make_task(parse_params({})).reference_samplers(torch.device("cpu")) == []
