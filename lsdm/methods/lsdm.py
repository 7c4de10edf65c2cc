"""LSDM: one-step generation y_hat = D(G(x, eta) * std + mean) through the shared autoencoder.
With `sample.candidates` K > 1 (classes only), the sampler draws K noise vectors per sample and
decodes the first code a class model (`sample.filter`: the pseudo-labeller's image classifier on the
decoded code, or a Gaussian model of the latents; both learned from the pairs and the pool's
confident pseudo-labels) gives the asked class with probability >= `sample.accept`.

Fitted by the main pipeline: fit_latent (the autoencoder on the whole latent pool), encode (the
standardised latents), then `fit` here (fit_matcher): the matcher G(x, eta) -> z against a critic
f(x, z) on the paired subset; with `matcher.marginal` pooled also against the pooled latents of every
training image, and with class_aware against the pool latents with confident pseudo-labels too (our
extension; none is the paper's method).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.data.schemas import LATENT_POOL, PSEUDO_LABELS
from lsdm.io import read_table, save_checkpoint
from lsdm.methods.common import (
    Track,
    confident_pseudo_labels,
    latent_classes,
    paired_inputs,
    shared_decoder,
    shared_latents,
)
from lsdm.methods.sampling import LatentSampler
from lsdm.models import load
from lsdm.models.latent_classes import DecodedClasses
from lsdm.models.lenet import LeNet
from lsdm.models.matcher import Matcher, matcher_config, wgan_gp_mlp
from lsdm.models.matching import marginal_terms, train_matcher, variant_name
from lsdm.models.training import seed_everything

FIT_READS = (paths.IMAGES, paths.PAIRED, paths.LATENT_POOL, paths.LATENTS, paths.PSEUDO_LABELS)
SAMPLE_READS = (
    paths.MATCHER,
    paths.AUTOENCODER,
    paths.LATENT_STATS,
    paths.LATENTS,
    paths.PSEUDO_LABELS,
    paths.PSEUDO_CLASSIFIER,
)


class LSDMSampler(LatentSampler):
    """The matcher's generator, un-standardised, then the decoder (`lsdm.methods.sampling.LatentSampler`:
    with a class model and `sample.candidates` K > 1, the filtered draw)."""

    @classmethod
    def from_pipeline(cls, device: torch.device, root: str | Path = ".", params=None) -> LSDMSampler:
        """Assemble from the fit_latent, encode and fit_matcher outputs; with `params` whose
        `sample.candidates` > 1 and data with classes, the class model (`sample.filter`) from
        pseudo_label's outputs too."""
        root = Path(root)
        sampler = (
            cls(load(root / paths.MATCHER, device, Matcher).generator, *shared_decoder(device, root)).to(device).eval()
        )
        if params is not None and params.sample.candidates > 1:
            s = params.sample
            classes = (
                latent_classes(params, device, root) if s.filter == "latent" else image_classes(sampler, device, root)
            )
            if classes is not None:
                sampler = (
                    cls(
                        sampler.generator,
                        sampler.autoencoder,
                        sampler.mean,
                        sampler.std,
                        classes.to(device),
                        s.candidates,
                        s.accept,
                    )
                    .to(device)
                    .eval()
                )
        return sampler


def image_classes(sampler: LSDMSampler, device: torch.device, root: str | Path = ".") -> DecodedClasses | None:
    """The pseudo-labeller's image classifier (stage pseudo_label) on the codes `sampler` decodes; None
    without classes (the pseudo-label table is empty and no classifier was trained)."""
    if read_table(Path(root) / paths.PSEUDO_LABELS, PSEUDO_LABELS).empty:
        return None
    classifier = load(Path(root) / paths.PSEUDO_CLASSIFIER, device, LeNet)
    return DecodedClasses(classifier, sampler.autoencoder, sampler.mean, sampler.std)


@dataclass
class MatcherFit:
    """What fit_matcher trains, assembled from params and a workspace (`prepare`): the matcher (weights
    seeded), its checkpoint config and `train_matcher`'s data. The tuning script trains the same."""

    params: object  # the `matcher` params section
    matcher: Matcher
    config: dict
    cond: torch.Tensor
    z: torch.Tensor
    pool: torch.Tensor | None
    pseudo: tuple | None  # (latents, labels, confidences) of the confident pool images; None without classes
    n_pairs: int

    def train(self, log: Track, **kwargs) -> dict:
        """Train the matcher; its summary (fit_matcher's metrics)."""
        p, terms = self.params, marginal_terms(self.params, has_classes=self.pseudo is not None)
        t0 = time.perf_counter()
        train_matcher(
            self.matcher, p, self.cond, self.z, self.pool, self.pseudo if terms.class_aware else None, log=log, **kwargs
        )
        return {
            "train_seconds": time.perf_counter() - t0,
            "n_pairs": self.n_pairs,
            "variant": variant_name(p, self.pseudo is not None),
            "n_pool": len(self.pool) if terms.pooled else 0,
            "n_pseudo": len(self.pseudo[0]) if terms.class_aware else 0,
        }


def prepare(params, device: torch.device, root: str | Path = ".") -> MatcherFit:
    """The matcher and its training data from the workspace at `root` (the pairs' latents; the pool's,
    for the marginal terms; the confident pseudo-labels, for the class-aware one)."""
    p = params.matcher
    images, paired, _, cond, task = paired_inputs(params, device, root)
    z = shared_latents(paired["id"], device, root)
    pseudo = confident_pseudo_labels(params.pseudo.threshold, device, root) if p.marginal == "class_aware" else None
    terms = marginal_terms(p, has_classes=pseudo is not None)
    pool = (
        shared_latents(read_table(Path(root) / paths.LATENT_POOL, LATENT_POOL)["id"], device, root)
        if terms.pooled
        else None
    )
    config = matcher_config(p, task.condition_spec(images), z.shape[1])
    seed_everything(p.seed)
    return MatcherFit(p, wgan_gp_mlp(**config).to(device), config, cond, z, pool, pseudo, len(paired))


def fit(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    """Train the matcher on the pairs' latents (and the pool's, for the marginal terms); writes matcher.pt."""
    job = prepare(params, device, root)
    summary = job.train(track)
    save_checkpoint(out_dir / paths.MATCHER.name, "wgan_gp_mlp", job.config, job.matcher.state_dict(), task=params.task)
    return summary


def samplers(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    return [("lsdm", LSDMSampler.from_pipeline(device, root, params))]
