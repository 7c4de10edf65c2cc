"""The metric registry: every metric `evaluate` and `evaluate_baseline` record, declared once.

The judge, the run report, the comparison report and the split between the DVC metrics file and
its details file all read `METRICS`, so adding a metric is one function and one entry here. No torch
at import: the reports read this module without loading the models.

Where each value lives: `metrics.json` (DVC `metrics:`, shown by `dvc exp show`) holds only the
headline scalars (`headline=True`), so experiments stay comparable at a glance; `details.json` beside
it (a plain `cache: false` output) holds everything else under the same keys: per class, per seed
(`over_seeds`), the real reference, the bound, the pretrained backbones' details and diagnostics.
`read_results` merges the two back into one dict.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Direction = Literal["higher", "lower", "reference"]
DIRECTIONS: dict[str, str] = {
    "higher": "higher is better",
    "lower": "lower is better",
    "reference": "closest to its real reference is better",
}
Section = Literal["distribution", "super_resolution", "bound", "speed", "other"]
METRICS_FILE, DETAILS_FILE = "metrics.json", "details.json"


@dataclass(frozen=True)
class Metric:
    """One metric: `key` under `eval.` (dots for nested keys), how it is judged and read.

    `compute` names the function computing it (`module:function`, resolved lazily), where one does;
    with `per_draw`, that function takes one `lsdm.evaluation.judge.Draw` (a generated set and the real
    one, images and evaluation-net features) and returns the value: the judge computes it for every
    generation seed, and for the real reference when `reference` is "real_reference.<key>", with no
    code of its own — a new metric is that function and its entry here;
    `reference` is the key of the same quantity between two real sets (what a perfect generator
    scores); `std_key` the key of its own spread (KID's std over subsets); `over_seeds` whether its
    mean ± std over the generation seeds is recorded; `headline` whether it goes to the DVC metrics
    file; `compared` whether the comparison report tables it across methods."""

    key: str
    label: str
    direction: Direction
    reading: str
    section: Section = "distribution"
    compute: str | None = None
    reference: str | None = None
    std_key: str | None = None
    over_seeds: bool = False
    headline: bool = False
    compared: bool = True
    per_draw: bool = False  # the judge calls `function()(draw)` itself (lsdm.evaluation.judge.Draw)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.key}: direction {self.direction!r} not one of {list(DIRECTIONS)}")

    @property
    def column(self) -> str:
        """Its column in the sweep's tidy table (and its name in `dvc exp show`)."""
        return f"eval.{self.key}"

    @property
    def higher(self) -> bool | None:
        """True / False for higher / lower is better; None when the ideal is the real reference's value."""
        return None if self.direction == "reference" else self.direction == "higher"

    @property
    def direction_text(self) -> str:
        return DIRECTIONS[self.direction]

    def function(self) -> Callable | None:
        if self.compute is None:
            return None
        module, name = self.compute.split(":")
        return getattr(importlib.import_module(module), name)


_M, _G, _F, _SR = (
    "lsdm.evaluation.metrics",
    "lsdm.evaluation.geometry",
    "lsdm.evaluation.features",
    "lsdm.tasks.super_resolution",
)

# In reading order: the report shows them in this order, the comparison too.
METRICS: tuple[Metric, ...] = (
    Metric(
        "label_accuracy",
        "label accuracy",
        "higher",
        "share of generated samples the evaluation net classifies as their conditioning label (conditional "
        "accuracy; the ceiling is the net's accuracy on real test images)",
        compute=f"{_M}:label_accuracy",
        reference="evalnet_accuracy_real_test",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "fid_evalnet",
        "FID (evalnet features)",
        "lower",
        "Fréchet distance (clean-fid) between real test and generated images in the evaluation net's 128-d "
        "feature space — not Inception, so not comparable with published FIDs",
        compute=f"{_M}:fid",
        reference="real_reference.fid_evalnet",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "kid_evalnet",
        "KID (evalnet features)",
        "lower",
        "kernel distance (clean-fid's KID, polynomial kernel) in the same space; unbiased, so about 0 for two "
        "sets from one law; ± is the std over KID subsets; its scale follows the features', so compare runs, "
        "not absolute values",
        compute=f"{_M}:kid",
        reference="real_reference.kid_evalnet",
        std_key="kid_evalnet_std",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "precision",
        "precision",
        "reference",
        "share of generated samples that fall inside the real data's manifold (k-NN balls): are samples on "
        "the image manifold? (Kynkäänniemi et al. 2019); judged against the real reference: samples crowded "
        "into the data's middle score above it",
        compute=f"{_G}:prdc",
        reference="real_reference.precision",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "recall",
        "recall",
        "reference",
        "share of real test images that fall inside the generated samples' manifold: does the generator "
        "cover the data? (Kynkäänniemi et al. 2019); judged against the real reference: scattered, noisy "
        "samples inflate the k-NN balls and score above it",
        compute=f"{_G}:prdc",
        reference="real_reference.recall",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "density",
        "density",
        "reference",
        "how many real neighbourhoods each sample sits in, normalised so that about 1 means 'as packed as "
        "real data'; above 1 = samples crowd the dense middle of the data (Naeem et al. 2020)",
        compute=f"{_G}:prdc",
        reference="real_reference.density",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "coverage",
        "coverage",
        "higher",
        "share of real images with a generated sample in their neighbourhood; robust to outlier samples "
        "(Naeem et al. 2020)",
        compute=f"{_G}:prdc",
        reference="real_reference.coverage",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "diversity_evalnet",
        "diversity (evalnet)",
        "higher",
        "mean feature distance between two samples of the same condition (0 = mode collapse); compare with "
        "the real reference",
        compute=f"{_G}:within_class_diversity",
        reference="real_reference.diversity_evalnet",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "lpips_diversity",
        "diversity (LPIPS)",
        "higher",
        "mean LPIPS between two samples of the same condition (lpips package; perceptual diversity); compare "
        "with the real reference",
        compute=f"{_F}:pairwise_same_condition",
        reference="lpips_diversity_real",
    ),
    Metric(
        "fid_inception",
        "FID (Inception)",
        "lower",
        "Fréchet distance with clean-fid's Inception-V3 features (the standard FID)",
        compute=f"{_M}:fid",
        headline=True,
    ),
    Metric(
        "kid_inception",
        "KID (Inception)",
        "lower",
        "KID with clean-fid's Inception-V3 features",
        compute=f"{_M}:kid",
        std_key="kid_inception_std",
        compared=False,
    ),
    Metric(
        "psnr",
        "PSNR",
        "higher",
        "PSNR to the ground truth, dB (higher: closer pixel by pixel; favours blurry averages)",
        section="super_resolution",
        compute=f"{_SR}:fidelity",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "ssim",
        "SSIM",
        "higher",
        "SSIM to the ground truth (1 = same local structure)",
        section="super_resolution",
        compute=f"{_SR}:fidelity",
        over_seeds=True,
        headline=True,
    ),
    Metric(
        "consistency_psnr",
        "consistency PSNR",
        "higher",
        "PSNR of the output downsampled again vs the input, dB: does the output explain x?",
        section="super_resolution",
        compute=f"{_SR}:fidelity",
        over_seeds=True,
        headline=True,
        compared=False,
    ),
    Metric(
        "lpips_to_truth",
        "LPIPS to truth",
        "lower",
        "LPIPS to the ground truth (perceptual; lower is closer)",
        section="super_resolution",
        compared=False,
    ),
    Metric(
        "diversity_draws_pixel_std",
        "spread across draws",
        "higher",
        "per-pixel std across noise draws of one input (0 for a deterministic method)",
        section="super_resolution",
        compute=f"{_SR}:draw_spread",
        compared=False,
    ),
    Metric(
        "critic_w1_test",
        "critic W1 (held out)",
        "lower",
        "the matcher critic's W1 estimate between held-out real and generated latent joints, per seed",
        section="bound",
        compute="lsdm.evaluation.bound:critic_w1",
        over_seeds=True,
        compared=False,
    ),
    Metric(
        "bound.recon_l2_test",
        "reconstruction term",
        "lower",
        "E‖y − D(E(y))‖₂ per test image (pixels in [0, 1]): the reconstruction term, paid once with all unpaired data",
        section="bound",
        compute=f"{_M}:reconstruction_errors",
        compared=False,
    ),
    Metric(
        "bound.decoder_lipschitz_spectral_max",
        "Lip(D) estimate",
        "lower",
        "Lip(D) estimate: the largest spectral norm of the decoder's Jacobian (w.r.t. the standardised latent) "
        "over latents — real test codes, generated codes and points between them; a lower estimate of the "
        "global constant",
        section="bound",
        compute="lsdm.evaluation.bound:decoder_lipschitz",
        compared=False,
    ),
    Metric(
        "bound.w1_latent_exact",
        "W1, latent joints",
        "lower",
        "exact W1 (optimal transport) between the held-out images' (condition, E(y)) and (condition, G(x, η)) "
        "in the standardised latent: the term the matcher minimises",
        section="bound",
        compute="lsdm.evaluation.transport:joint_w1",
        compared=False,
    ),
    Metric(
        "bound.rhs",
        "bound's right-hand side",
        "lower",
        "Lip(D) × W1(latent joints) + reconstruction: what the bound promises (Lip(D) is estimated from below, "
        "so this is too)",
        section="bound",
        compute="lsdm.evaluation.transport:bound_sides",
        compared=False,
    ),
    Metric(
        "bound.w1_pixel_exact",
        "W1, image joints (left side)",
        "lower",
        "exact W1 between the held-out images' (condition, y) and (condition, D(G(x, η))) in pixels: the "
        "left side of the bound, measured",
        section="bound",
        compute="lsdm.evaluation.transport:joint_w1",
        compared=False,
    ),
    Metric(
        "bound.w1_pixel_exact_std",
        "W1, image joints: sampling std",
        "lower",
        "std of the left side over bootstrap resamplings of the held-out points (within each class)",
        section="bound",
        compute="lsdm.evaluation.transport:bound_sides",
        compared=False,
    ),
    Metric(
        "bound.rhs_std",
        "right-hand side: sampling std",
        "lower",
        "std of the right side over the same resamplings (latent W1 and reconstruction error; Lip(D) held fixed)",
        section="bound",
        compute="lsdm.evaluation.transport:bound_sides",
        compared=False,
    ),
    Metric(
        "bound.critic_w1_test",
        "critic W1 (held out; diagnostic)",
        "lower",
        "the trained critic's estimate of the latent W1 on held-out (condition, latent) vs (condition, "
        "G(x, η)), a memorisation diagnostic, not a term of the bound: near 0 or negative means the critic, "
        "fitted on the few pairs, does not tell held-out real codes from generated ones",
        section="bound",
        compute="lsdm.evaluation.bound:critic_w1",
        compared=False,
    ),
    Metric(
        "bound.critic_w1_train_pairs",
        "critic W1 (training pairs; diagnostic)",
        "lower",
        "the same estimate on the paired training subset the critic was fitted on; a large gap to the "
        "held-out value means the critic memorised the pairs",
        section="bound",
        compute="lsdm.evaluation.bound:critic_w1",
        compared=False,
    ),
    Metric(
        "throughput_images_per_s",
        "images/s",
        "higher",
        "one-step generation speed (best of 3 timed batches after a warm-up)",
        section="speed",
        compute="lsdm.models.training:timed",
        headline=True,
    ),
    Metric(
        "stage_seconds.fit_latent",
        "fit_latent time (s)",
        "lower",
        "autoencoder training wall time (s)",
        section="speed",
        compared=False,
    ),
    Metric(
        "stage_seconds.fit_matcher",
        "fit_matcher time (s)",
        "lower",
        "matcher training wall time (s)",
        section="speed",
        compared=False,
    ),
    Metric(
        "stage_seconds.eval_net",
        "eval_net time (s)",
        "lower",
        "evaluation net training wall time (s)",
        section="speed",
        compared=False,
    ),
    Metric(
        "stage_seconds.evaluate",
        "evaluate time (s)",
        "lower",
        "this evaluation's wall time (s), all seeds included",
        section="speed",
        compared=False,
    ),
    Metric(
        "evalnet_accuracy_real_test",
        "evalnet accuracy (real test)",
        "higher",
        "the evaluation net's accuracy on real test images: the ceiling it can certify",
        section="other",
        compute=f"{_M}:label_accuracy",
        compared=False,
    ),
    Metric(
        "fid_evalnet_train_vs_test",
        "FID (evalnet), real vs real",
        "lower",
        "FID (evalnet) between two real sets (a training sample vs test): the floor a perfect generator would reach",
        section="other",
        compute=f"{_M}:fid",
        compared=False,
    ),
    Metric(
        "recon_mse_test",
        "reconstruction MSE",
        "lower",
        "autoencoder reconstruction MSE per pixel on test images",
        section="other",
        compute=f"{_M}:reconstruction_errors",
        compared=False,
    ),
    Metric(
        "recon_mae_test",
        "reconstruction MAE",
        "lower",
        "E\\|y − D(E(y))\\| per pixel on test images (mean absolute error)",
        section="other",
        compute=f"{_M}:reconstruction_errors",
        compared=False,
    ),
)

BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
HEADLINE: tuple[str, ...] = tuple(m.key for m in METRICS if m.headline)


def section(name: Section) -> tuple[Metric, ...]:
    return tuple(m for m in METRICS if m.section == name)


def get(d: dict, key: str, default: Any = None) -> Any:
    """`d[a][b]` for key "a.b" (the registry's dotted keys), or `default`."""
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def split_results(e: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One sampler's `eval` dict -> (headline scalars for the DVC metrics file, everything else)."""
    headline = {m.key for m in METRICS if m.headline}
    head = {k: v for k, v in e.items() if k in headline and not isinstance(v, (dict, list))}
    return head, {k: v for k, v in e.items() if k not in head}


def merge(a: dict, b: dict) -> dict:
    """`a` with `b` laid over it, nested dicts merged key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_results(directory: str | Path) -> dict[str, Any]:
    """A stage's metrics and details files merged back into one dict (`{"eval": ...}`)."""
    from lsdm.io import read_json

    directory = Path(directory)
    out: dict[str, Any] = {}
    for name in (METRICS_FILE, DETAILS_FILE):
        if (directory / name).exists():
            out = merge(out, read_json(directory / name))
    return out
