"""Super-resolution: x is the image downsampled by `sr.factor`; samples are judged against their
ground truth too. The task (`SuperResolution`) and its helpers: the degradation (downsampling), the
bicubic reference baseline, back-projection, and the fidelity metrics to ground truth (PSNR, SSIM)
and to the input (consistency).

Images are float tensors [B, C, H, W] in [0, 1]. PSNR and SSIM are per image, then averaged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from lsdm.tasks import Task


def downsample(y: torch.Tensor, factor: int) -> torch.Tensor:
    """The degradation that makes a condition: average over factor x factor blocks (area)."""
    return F.avg_pool2d(y, factor)


def bicubic_upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The classical baseline: bicubic interpolation, clipped to [0, 1]."""
    return bicubic_upsample_raw(x, factor).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1.0)."""
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + eps))


def _gaussian_window(size: int, sigma: float, channels: int, device) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, device=device) - size // 2) ** 2).float() / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004: Gaussian window, K1=0.01, K2=0.03,
    data range 1), averaged over valid window positions and channels. The window is 7 rather than
    11 so that 28-px images keep enough valid positions."""
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a.device)
    conv = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731  (valid positions only)
    mu_a, mu_b = conv(a), conv(b)
    var_a = conv(a * a) - mu_a**2
    var_b = conv(b * b) - mu_b**2
    cov = conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def consistency_psnr(output: torch.Tensor, condition: torch.Tensor, factor: int) -> torch.Tensor:
    """PSNR of downsample(output) against the low-resolution input: does the output explain x?"""
    return psnr(downsample(output, factor), condition)


def fidelity(
    output: torch.Tensor, truth: torch.Tensor, condition: torch.Tensor, factor: int, batch_size: int = 256
) -> dict[str, float]:
    """Mean PSNR and SSIM to the ground truth, and consistency PSNR to the input, over a test set.
    Per image, `batch_size` images at a time: SSIM's temporaries are a dozen copies of its input."""
    each: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "consistency_psnr": []}
    for i in range(0, len(truth), batch_size):
        out, true, cond = output[i : i + batch_size], truth[i : i + batch_size], condition[i : i + batch_size]
        each["psnr"].append(psnr(out, true))
        each["ssim"].append(ssim(out, true))
        each["consistency_psnr"].append(consistency_psnr(out, cond, factor))
    return {k: torch.cat(v).mean().item() for k, v in each.items()}


def draw_spread(batches: Iterable[Sequence[torch.Tensor]]) -> float:
    """Diversity across noise draws for the same input: the mean per-pixel standard deviation over
    the K draws -> scalar; 0 for a deterministic method such as bicubic. `batches` yields, one batch
    of inputs at a time, the K draws of those inputs (each [B, C, H, W]), so the K draws of the whole
    held-out set are never held at once."""
    total, count = 0.0, 0
    for draws in batches:
        total += torch.stack(list(draws)).std(dim=0).double().sum().item()
        count += draws[0].numel()
    return total / count


def comparison_grid(
    condition: torch.Tensor, bicubic: torch.Tensor, draws: torch.Tensor, truth: torch.Tensor
) -> torch.Tensor:
    """Rows of input | bicubic | LSDM draws ... | ground truth, for `save_image(nrow=3 + K)`.

    The input is shown enlarged with nearest-neighbour so its pixels stay visible."""
    size = truth.shape[-1]
    shown = F.interpolate(condition, size=(size, size), mode="nearest")
    cols = [shown, bicubic, *draws, truth]  # each [B, C, H, W]
    return torch.stack(cols, dim=1).flatten(0, 1)  # [B * (3 + K), C, H, W], row-major


class BicubicSampler(torch.nn.Module):
    """Bicubic upsampling of the condition as a sampler (same interface as LSDM's): the classical
    baseline, judged by the same code on the same test set. No training; `eta` is ignored."""

    noise_dim, nfe = 1, 0

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return bicubic_upsample(x, self.factor)


def back_project(y: torch.Tensor, x: torch.Tensor, factor: int, iterations: int) -> torch.Tensor:
    """Iterative back-projection (Irani & Peleg 1991): add the bicubic upsampling of the residual
    x - downsample(y) until the output explains its input. Changes only what the downsampling
    sees (low frequencies); the generated detail stays."""
    for _ in range(iterations):
        y = (y + bicubic_upsample_raw(x - downsample(y, factor), factor)).clamp(0, 1)
    return y


def bicubic_upsample_raw(r: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic upsampling without clipping (for residuals, which may be negative)."""
    return F.interpolate(r, scale_factor=factor, mode="bicubic", align_corners=False)


class BackProjected(torch.nn.Module):
    """A super-resolution sampler followed by `back_project`: `sr.back_projection` iterations."""

    def __init__(self, sampler: torch.nn.Module, factor: int, iterations: int):
        super().__init__()
        self.sampler, self.factor, self.iterations = sampler, factor, iterations
        self.noise_dim = sampler.noise_dim
        self.nfe = getattr(sampler, "nfe", 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return back_project(self.sampler(x, eta), x, self.factor, self.iterations)


class SuperResolution(Task):
    """x is the image downsampled by `factor` (area); G and f see it through a small conv net
    `encoder_width` channels wide. With `back_projection` > 0 every method's outputs are
    back-projected onto their input before they are judged; bicubic upsampling is judged beside."""

    title = "Super-resolution"
    condition_text = "its downsampled self"
    samples_layout = "One row per test input: the input (enlarged), bicubic, LSDM draws, the ground truth."
    report_metrics = (
        "psnr",
        "ssim",
        "consistency_psnr",
        "lpips_to_truth",
        "diversity_draws_pixel_std",
        "fid_evalnet",
        "density",
        "coverage",
        "label_accuracy",
    )
    grid_rows, grid_draws = 8, 3

    def __init__(self, factor: int = 4, encoder_width: int = 8, back_projection: int = 0):
        self.factor, self.encoder_width, self.back_projection = factor, encoder_width, back_projection

    @classmethod
    def from_params(cls, params) -> SuperResolution:
        return cls(params.sr.factor, params.sr.encoder_width, params.sr.back_projection)

    def condition_spec(self, images: pd.DataFrame) -> dict:
        size, channels = int(images["height"].iloc[0]), int(images["channels"].iloc[0])
        return {"kind": "image", "channels": channels, "size": size // self.factor, "width": self.encoder_width}

    def conditions(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return downsample(images, self.factor)

    def as_evaluated(self, sampler: torch.nn.Module) -> torch.nn.Module:
        return BackProjected(sampler, self.factor, self.back_projection) if self.back_projection else sampler

    def draw_metrics(self, fake: torch.Tensor, truth: torch.Tensor, cond: torch.Tensor) -> dict[str, float]:
        return fidelity(fake, truth, cond, self.factor)

    def across_draws(self, n_draws: int, draw_batches) -> dict[str, Any]:
        return {"diversity_draws_pixel_std": draw_spread(draw_batches()) if n_draws > 1 else None}

    def to_truth(self, lpips_fn, fake: torch.Tensor, truth: torch.Tensor) -> dict[str, Any]:
        if lpips_fn is None:
            return {"lpips_to_truth": None}
        dists = [lpips_fn(fake[i : i + 256], truth[i : i + 256]) for i in range(0, len(truth), 256)]
        return {"lpips_to_truth": torch.cat(dists).mean().item()}

    def grid(self, ref, draw, heads: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Rows of input | bicubic | the first draws | ground truth, for the first test inputs."""
        n, k = self.grid_rows, min(self.grid_draws, len(heads))
        cond = ref.cond[:n]
        shown = torch.stack([d[:n] for d in heads[:k]])
        return comparison_grid(cond, BicubicSampler(self.factor)(cond), shown, ref.y_test[:n]), 3 + k

    def reference_samplers(self, device) -> list[tuple[str, torch.nn.Module]]:
        return [("bicubic", BicubicSampler(self.factor).to(device))]

    def extra_results(self, ref, sampler: torch.nn.Module, judge) -> dict[str, Any]:
        """The headline is back-projected; D(G(x, eta)) as it comes is judged too (`raw`)."""
        out: dict[str, Any] = {"back_projection": self.back_projection}
        if self.back_projection:
            out["raw"] = judge(sampler)
        return out

    def report_columns(self, e: dict[str, Any]) -> dict[str, dict]:
        return {"LSDM raw": e["raw"]} if e.get("raw") else {}

    def report_note(self, e: dict[str, Any]) -> str:
        where = "All judged on the same test images (input = ground truth downsampled by `sr.factor`). "
        if e.get("raw"):
            return where + (
                f"LSDM's outputs pass through {e.get('back_projection')} iterations of back-projection "
                "(`sr.back_projection`), which makes them explain their input; the column *LSDM raw* is "
                "D(G(x, eta)) as it comes."
            )
        return where + "LSDM's outputs are D(G(x, eta)) as they come (`sr.back_projection: 0`)."


TASK = SuperResolution
