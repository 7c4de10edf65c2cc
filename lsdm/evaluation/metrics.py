"""Metrics. Each is what its name says; the feature backbone is part of every distance's name.

FID and KID are clean-fid's (`fid_from_feats`, written out in `fid` for newer scipy, and
`kernel_distance`), applied to features extracted in `lsdm.evaluation.features`. That is what
`cleanfid.fid.compute_fid(..., custom_feat_extractor=...)` does after reading images from folders;
a test checks that both give the same FID on the same images, without the PNG round trip here.

KID's spread: clean-fid's `kernel_distance` averages the unbiased MMD^2 estimate over
`num_subsets` random subsets but returns only the mean. Calling it once per subset
(`num_subsets=1`) with the same seeded random draws gives exactly the same mean (a test checks)
and also the per-subset values, whose standard deviation is the "KID std" that KID's authors and
torch-fidelity report. Subsets smaller than the sets are needed for a spread at all: with
subset size = set size every subset is the whole set.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from scipy import linalg


def _cleanfid():
    """clean-fid's `fid` module, imported on first use: it imports torchvision (about 3 s), which
    fit_latent, needing only `reconstruction_errors` from here, would pay on every run."""
    from cleanfid import fid

    return fid


def label_accuracy(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[float, dict[str, float]]:
    """Overall accuracy and accuracy per class (keyed by the class as a string, for JSON)."""
    pred, labels = pred.cpu(), labels.cpu()
    hit = (pred == labels).float()
    per_class = {str(k): hit[labels == k].mean().item() for k in range(n_classes) if (labels == k).any()}
    return hit.mean().item(), per_class


def fid(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets: clean-fid's `fid_from_feats`,
    step for step, written out because clean-fid passes scipy's `sqrtm` a `disp` argument that
    scipy 1.18 removed (its FID raises TypeError there); `sqrtm` without it is the same product."""
    real, fake = np.asarray(real_feats, np.float64), np.asarray(fake_feats, np.float64)
    mu1, sigma1 = real.mean(axis=0), np.atleast_2d(np.cov(real, rowvar=False))
    mu2, sigma2 = fake.mean(axis=0), np.atleast_2d(np.cov(fake, rowvar=False))
    with warnings.catch_warnings():
        # evalnet features are ReLU outputs and a few never fire, so covariances can be singular and
        # scipy's sqrtm warns; the number is clean-fid's as is, as compute_fid would report it
        warnings.filterwarnings("ignore", message=".*singular.*")
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():  # clean-fid's fallback: a small ridge on both covariances
            offset = np.eye(sigma1.shape[0]) * 1e-6
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):  # rounding can leave a small imaginary part
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in the covariance root")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@contextlib.contextmanager
def _numpy_seed(seed: int):
    """clean-fid draws KID subsets from numpy's global RNG: seed it for this block, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def kid(
    real_feats: np.ndarray, fake_feats: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float | None]:
    """KID (clean-fid's `kernel_distance`): mean and standard deviation over random subsets.

    `subset_size` is capped at half the smaller set, so that the subsets differ and their std says
    something (KID is unbiased at any subset size; clean-fid caps at the whole set, where every
    subset of two equal sets is the same draw). Sets too small to halve give one value and std None.
    Deterministic in `seed`.
    """
    # float32, as clean-fid's own feature extractors return (and twice as fast as float64)
    real, fake = np.asarray(real_feats, np.float32), np.asarray(fake_feats, np.float32)
    if min(len(real), len(fake)) < 2:
        raise ValueError("KID needs at least 2 points in each set")
    half = min(len(real), len(fake)) // 2
    if half >= 2:
        subset_size = min(subset_size, half)
    elif subset_size >= max(len(real), len(fake)):
        subsets = 1  # every "subset" would be both whole sets: the same value each time
    with _numpy_seed(seed):
        values = [
            _cleanfid().kernel_distance(real, fake, num_subsets=1, max_subset_size=subset_size) for _ in range(subsets)
        ]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if subsets > 1 else None


def per_class_fid_kid(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    *,
    min_samples: int,
    kid_subsets: int,
    kid_subset_size: int,
    seed: int = 0,
) -> tuple[dict[str, float | None], dict[str, float | None], str | None]:
    """FID and KID between the real and generated features of each class.

    KID is unbiased at any size, so it is computed for every class with at least `min_samples`
    points on both sides. FID's covariance is rank-deficient (and the number meaningless) unless a
    class has more points than feature dimensions, so it is only computed then. Classes that miss
    a bar get None; the returned note says why, in words.
    """
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    dim = real.shape[1]
    fids: dict[str, float | None] = {}
    kids: dict[str, float | None] = {}
    smallest = None
    for c in np.unique(real_labels):
        r, f = real[real_labels == c], fake[fake_labels == c]
        n = min(len(r), len(f))
        smallest = n if smallest is None else min(smallest, n)
        kids[str(int(c))] = kid(r, f, kid_subsets, kid_subset_size, seed)[0] if n >= max(min_samples, 2) else None
        fids[str(int(c))] = fid(r, f) if n > dim else None
    notes = []
    if any(v is None for v in fids.values()):
        notes.append(
            f"per-class FID needs more than {dim} images per class on each side (the feature dimension) "
            f"for a full-rank covariance; the smallest class has {smallest}"
        )
    if any(v is None for v in kids.values()):
        notes.append(f"per-class KID needs at least {min_samples} images per class (evaluate.per_class_min_samples)")
    return fids, kids, "; ".join(notes) or None


@torch.no_grad()
def reconstruction_errors(
    model: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[torch.Tensor]
) -> dict[str, Any]:
    """`mse` and `mae` of y against model(y) over every pixel of every batch, and `l2_each`, each
    image's ||y - model(y)||_2 (float64 numpy), accumulated batch by batch: a set larger than memory
    streams through, and no reconstruction is kept."""
    sq = ab = 0.0
    n, l2 = 0, []
    for y in batches:
        d = (model(y) - y).flatten(1)  # no reconstruction outlives its difference: a pass's peak is one batch
        l2.append(d.norm(dim=1).double().cpu())  # l2_each(model(y), y)
        d = d.double()
        sq, ab, n = sq + (d**2).sum().item(), ab + d.abs().sum().item(), n + d.numel()
    if n == 0:
        raise ValueError("reconstruction_errors: no images")
    return {"mse": sq / n, "mae": ab / n, "l2_each": torch.cat(l2).numpy()}


def l2_each(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||_2 of each image (pixels flattened): the norm the bound's Lip(D) is measured in."""
    return (a - b).flatten(1).norm(dim=1)


def mean_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """E ||a - b||_2 per image."""
    return l2_each(a, b).mean().item()


def mean_std(values: list[float]) -> dict[str, float | int | None]:
    """{"mean", "std", "n"} of a metric over evaluation seeds (std with ddof=1; None for one seed)."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    if len(v) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None, "n": int(len(v))}
