"""Super-resolution helpers: the degradation (downsampling), the bicubic baseline, and the
fidelity metrics to ground truth (PSNR, SSIM) and to the input (consistency).

Images are float tensors [B, C, H, W] in [0, 1]. PSNR and SSIM are per image, then averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def fidelity(output: torch.Tensor, truth: torch.Tensor, condition: torch.Tensor, factor: int) -> dict[str, float]:
    """Mean PSNR and SSIM to the ground truth, and consistency PSNR to the input, over a test set."""
    return {
        "psnr": psnr(output, truth).mean().item(),
        "ssim": ssim(output, truth).mean().item(),
        "consistency_psnr": consistency_psnr(output, condition, factor).mean().item(),
    }


def draw_spread(draws: torch.Tensor) -> float:
    """Diversity across noise draws for the same input: the mean per-pixel standard deviation over
    the draws ([K, B, C, H, W] -> scalar). 0 for a deterministic method such as bicubic."""
    return draws.std(dim=0).mean().item()


def comparison_grid(condition: torch.Tensor, bicubic: torch.Tensor, draws: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
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
