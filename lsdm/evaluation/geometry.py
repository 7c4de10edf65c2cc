"""Geometric fidelity in a feature space: improved precision/recall and density/coverage.

LSDM's claim is that unpaired data puts samples *on the image manifold*. FID mixes that with
diversity into one number; these four separate the two questions:

- precision (Kynkäänniemi et al. 2019): share of generated points inside the real manifold, the
  union of balls around each real point with radius its distance to its k-th nearest real
  neighbour. Low precision = samples off the manifold.
- recall (same paper): share of real points inside the generated manifold (balls around the
  generated points). Low recall = the generator misses parts of the data.
- density (Naeem et al. 2020): how many real balls contain a generated point, divided by k and
  averaged; about 1 when the two sets come from the same law, and unlike precision not fooled by
  real outliers with huge balls.
- coverage (same paper): share of real points whose ball contains at least one generated point;
  about 1 - 2**-k for identical laws, and robust to generated outliers.

The definitions follow the reference implementation (the `prdc` package; a test compares the two):
strict `<` against the radius, and the k-th neighbour radius counts the point itself as its own
0-th neighbour (so it is the (k+1)-th smallest distance in its own set).

Everything is computed from row blocks of the pairwise distance matrix in torch, so 10,000 x 10,000
sets never hold more than `chunk` x N distances at once (about 40 MB for the defaults at N = 10,000).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


def _as_tensor(x, device: torch.device | str | None = None) -> torch.Tensor:
    """Features as float64 (distances near the k-NN radius must not flip on rounding)."""
    t = torch.as_tensor(x)
    return t.to(device=device if device is not None else t.device, dtype=torch.float64)


def knn_distances(feats, k_max: int, chunk: int = 1024) -> torch.Tensor:
    """[N, k_max]: distance of every point to its 1st..k_max-th nearest neighbour in the same set
    (itself excluded; a duplicate point counts as a neighbour at distance 0, as in `prdc`)."""
    x = _as_tensor(feats)
    if not 1 <= k_max < len(x):
        raise ValueError(f"k = {k_max}: needs 1 <= k < number of points ({len(x)})")
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)  # [b, N]
        out.append(torch.topk(d, k_max + 1, dim=1, largest=False).values[:, 1:])  # drop the 0-th: the point itself
    return torch.cat(out)


def knn_radii(feats, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of every point to its k-th nearest neighbour in the same set (itself excluded)."""
    return knn_distances(feats, k, chunk)[:, k - 1]


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def prdc_many(real, fake, ks: list[tuple[int, int]], chunk: int = 1024, device=None) -> list[PRDC]:
    """PRDC for several (pr_k, dc_k) pairs from one pass over the distance matrices (on `device`,
    default: where `real` is)."""
    real = _as_tensor(real, device)
    fake = _as_tensor(fake, real.device)
    k_max = max(max(a, b) for a, b in ks)
    r_knn, f_knn = knn_distances(real, k_max, chunk), knn_distances(fake, k_max, chunk)
    n_real, n_fake, dev = len(real), len(fake), real.device
    acc = [
        {
            "in_real_ball": torch.zeros(n_fake, dtype=torch.bool, device=dev),  # precision, per fake point
            "density_count": torch.zeros(n_fake, dtype=torch.float64, device=dev),
            "recalled": [],
            "covered": [],
        }
        for _ in ks
    ]
    for i in range(0, n_real, chunk):
        d = torch.cdist(real[i : i + chunk], fake)  # [b, M]: real rows, fake columns
        d_min = d.min(1).values
        for (pr_k, dc_k), a in zip(ks, acc):
            r_pr, r_dc, f_pr = r_knn[i : i + chunk, pr_k - 1], r_knn[i : i + chunk, dc_k - 1], f_knn[:, pr_k - 1]
            a["in_real_ball"] |= (d < r_pr[:, None]).any(0)
            a["density_count"] += (d < r_dc[:, None]).sum(0)
            a["recalled"].append((d < f_pr[None, :]).any(1))
            a["covered"].append(d_min < r_dc)
    return [
        PRDC(
            precision=a["in_real_ball"].double().mean().item(),
            recall=torch.cat(a["recalled"]).double().mean().item(),
            density=(a["density_count"] / dc_k).mean().item(),
            coverage=torch.cat(a["covered"]).double().mean().item(),
        )
        for (_, dc_k), a in zip(ks, acc)
    ]


def prdc(real, fake, pr_k: int = 3, dc_k: int = 5, chunk: int = 1024, device=None) -> PRDC:
    """Precision and recall with `pr_k`-NN balls, density and coverage with `dc_k`-NN balls.

    `real` and `fake` are [N, D] and [M, D] feature arrays (numpy or torch, any device). The
    papers use equal-sized sets; so does the evaluate stage. The two k are separate because each
    paper recommends its own (3 and 5).
    """
    return prdc_many(real, fake, [(pr_k, dc_k)], chunk, device)[0]


def mean_pairwise_distance(feats, chunk: int = 1024) -> float:
    """Mean Euclidean distance over all pairs i != j: a diversity measure that needs no weights.
    `chunk` rows against all at a time: without classes the set is the whole held-out split."""
    x = _as_tensor(feats)
    n = len(x)
    if n < 2:
        return float("nan")
    return sum(torch.cdist(x[i : i + chunk], x).sum().item() for i in range(0, n, chunk)) / (n * (n - 1))


def within_class_diversity(feats, labels) -> tuple[float, dict[str, float]]:
    """Mean pairwise feature distance among points of the same class, averaged over classes.

    For a conditional generator this asks: given one condition, do the samples differ? (Mode
    collapse gives 0.) Compare with the same figure on real images of the class.
    """
    x, y = _as_tensor(feats), torch.as_tensor(np.array(labels)).cpu()  # a copy: Parquet arrays are read-only
    per_class = {str(int(c)): mean_pairwise_distance(x[(y == c).to(x.device)]) for c in torch.unique(y)}
    per_class = {c: v for c, v in per_class.items() if v == v}  # drop classes with < 2 points
    return (sum(per_class.values()) / len(per_class) if per_class else float("nan")), per_class
