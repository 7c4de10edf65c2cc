"""Models of p(class | z) for the codes of the latent space, learned from the pairs and the pool's
pseudo-labels (stage pseudo_label): the pool's true labels never enter.

LSDM's sampler may draw several noise vectors per sample and keep the first code such a model gives
the asked class with probability >= `sample.accept` (`lsdm.methods.lsdm.LSDMSampler`,
`sample.candidates`): the class-blind marginal term spreads G's codes over the whole pool and some
land in another class's region, which the evaluation net then reads as the wrong digit
(docs/matcher-tuning.md). Two models (`sample.filter`):

- `GaussianClasses` (latent): a Gaussian per class on the codes, fitted to the pairs and the pool's
  confident pseudo-labels; the pseudo-labeller's refinement (`lsdm.models.pseudo_labels.refine`,
  scikit-learn's QDA) in torch: a mean and a covariance per class, shrunk towards the identity by
  `reg`, and the class's share of the fitted codes as its prior.
- `DecodedClasses` (image): decode the code, then ask the pseudo-labeller's image classifier (a
  LeNet trained on the pool images with confident pseudo-labels). The latent model's classes overlap
  where the codes do (right for 91-94 % of the validation codes it gives >= 0.99 at 3 pairs per
  class, 98 % even with the pool's true labels); the image classifier sees the digit as the
  evaluation net will.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ClassModel(nn.Module):
    """log p(c | z) for standardised codes z: `forward` [B, d] -> [B, C]."""

    def posterior(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """p(labels | z): [B]."""
        return self(z).gather(1, labels.long()[:, None]).squeeze(1).exp()


class GaussianClasses(ClassModel):
    """log p(c | z) under one Gaussian per class: buffers `means` [C, d], `precision_chol` [C, d, d]
    (a Cholesky factor L of each inverse covariance: the Mahalanobis distance is |L^T (z - mean)|^2)
    and `log_norm` [C] (the log prior minus half the log determinant)."""

    def __init__(self, means: torch.Tensor, precision_chol: torch.Tensor, log_norm: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means)
        self.register_buffer("precision_chol", precision_chol)
        self.register_buffer("log_norm", log_norm)

    @classmethod
    def fit(cls, z: torch.Tensor, labels: torch.Tensor, n_classes: int, reg: float) -> GaussianClasses:
        """Fitted to the codes `z` [N, d] with `labels` [N]. A class with fewer than two codes (no
        covariance to estimate) gets the identity; one with none, no weight (prior 0)."""
        z, labels = z.double(), labels.long()
        d = z.shape[1]
        eye = torch.eye(d, dtype=z.dtype, device=z.device)
        means, chols, log_norm = [], [], []
        for c in range(n_classes):
            zc = z[labels == c]
            mean = zc.mean(0) if len(zc) else torch.zeros(d, dtype=z.dtype, device=z.device)
            cov = torch.cov(zc.T, correction=0).reshape(d, d) if len(zc) >= 2 else eye  # as QDA: divided by n
            cov = (1 - reg) * cov + reg * eye  # QDA's reg_param
            chol = torch.linalg.cholesky(torch.linalg.inv(cov))
            prior = len(zc) / len(z)
            means.append(mean)
            chols.append(chol)
            log_norm.append((math.log(prior) if prior > 0 else -math.inf) + torch.log(torch.diagonal(chol)).sum())
        return cls(torch.stack(means).float(), torch.stack(chols).float(), torch.stack(log_norm).float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """log p(c | z): [B, C]."""
        diff = z[:, None, :] - self.means[None]  # [B, C, d]
        maha = torch.einsum("bcd,cde->bce", diff, self.precision_chol).pow(2).sum(-1)  # [B, C]
        return torch.log_softmax(self.log_norm[None] - 0.5 * maha, dim=1)


class DecodedClasses(ClassModel):
    """log p(c | z) of the image the code decodes to, under an image `classifier` (logits [B, C]): the
    decoder sees the codes un-standardised (`z * std + mean`), as the sampler decodes them."""

    def __init__(self, classifier: nn.Module, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.classifier, self.autoencoder = classifier, autoencoder
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.classifier(self.autoencoder.decode(z * self.std + self.mean)), dim=1)


class EncodedClasses(ClassModel):
    """p(c | image) of a class model of codes, on the image's standardised code (`(encode(y) - mean) /
    std`): the latent class model judging an image-space method's samples as it judges codes."""

    def __init__(self, classes: ClassModel, autoencoder: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.classes, self.autoencoder = classes, autoencoder
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classes((self.autoencoder.encode(images) - self.mean) / self.std)
