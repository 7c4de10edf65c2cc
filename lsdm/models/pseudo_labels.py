"""Pseudo-labels for the latent pool, learned from the pairs alone.

Label spreading (Zhou et al. 2004; scikit-learn's `LabelSpreading`) on a k-nearest-neighbour graph
of the pool's standardised latents: each pair's label diffuses along the graph to the unpaired
codes near it, and the spread distribution's largest value is the code's confidence. Then one round
of self-training (`refine`): a Gaussian model of each class (quadratic discriminant analysis) fitted
to the pairs and the most confident spread labels relabels every code, with its posterior as the
confidence. The graph only sees neighbours; the class model sees each class's whole shape, and
halved the error of the labels a threshold keeps (docs/matcher-tuning.md). The class-aware
marginal term (`lsdm.models.training.ClassTerm`) uses only the confident codes, weighted by that
confidence, the way S3GAN, Triple-GAN and DPT let unlabelled images into conditional generation
through a classifier's labels.

Why on the latents: the matcher works in this space, the graph over 3,500 16-d codes takes a
second, and it labelled the pool as well as a LeNet self-trained on the images with shift
augmentation at 3 pairs per class (0.75-0.81 vs 0.77-0.83 accuracy on the pool, split seeds 0-2
vs 0-1), which took minutes on this CPU.

The pool's own labels never enter: `spread` takes the codes and the pairs' labels only.
"""

from __future__ import annotations

import numpy as np
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.semi_supervised import LabelSpreading

UNKNOWN = -1  # scikit-learn's marker of an unlabelled row


def spread(z: np.ndarray, known: np.ndarray, neighbors: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(label [N], confidence [N]) of every row of `z` [N, d], given `known` [N]: the pair's label,
    or -1. Rows with a known label keep it, with confidence 1."""
    labelled = known != UNKNOWN
    if not labelled.any():
        raise ValueError("no labelled rows: pseudo-labels need pairs with classes")
    k = min(neighbors, len(z) - 1)
    model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=alpha, max_iter=100).fit(z, known)
    prob = model.label_distributions_  # [N, n_classes seen], rows sum to 1
    label = model.classes_[prob.argmax(1)].astype(np.int64)
    confidence = np.clip(prob.max(1).astype(np.float64), 0.0, 1.0)
    label[labelled], confidence[labelled] = known[labelled], 1.0
    return label, np.nan_to_num(confidence, nan=0.0)


def refine(
    z: np.ndarray, label: np.ndarray, confidence: np.ndarray, known: np.ndarray, keep: float, reg: float
) -> tuple[np.ndarray, np.ndarray]:
    """(label [N], confidence [N]) from a Gaussian model per class (scikit-learn's
    `QuadraticDiscriminantAnalysis`, covariances shrunk by `reg`) fitted to the labelled rows of
    `known` and the `keep` share of the others with the highest `confidence` under their `label`;
    every row gets the model's most probable class and its posterior. Rows with a known label keep
    it, with confidence 1. Where a class has fewer than two rows to fit, `label` and `confidence`
    come back unchanged (a covariance needs two points)."""
    labelled = known != UNKNOWN
    cut = np.quantile(confidence[~labelled], 1 - keep) if (~labelled).any() else np.inf
    fit = labelled | (confidence >= cut)
    _, counts = np.unique(label[fit], return_counts=True)
    if counts.min() < 2:
        return label, confidence
    model = QuadraticDiscriminantAnalysis(reg_param=reg).fit(z[fit], label[fit])
    prob = model.predict_proba(z)
    label, confidence = model.classes_[prob.argmax(1)].astype(np.int64), prob.max(1).astype(np.float64)
    label[labelled], confidence[labelled] = known[labelled], 1.0
    return label, np.nan_to_num(confidence, nan=0.0)


def quality(label: np.ndarray, confidence: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, float]:
    """How good the labels are where the truth is known (measurement only: it reaches no fit):
    accuracy over all rows, the share with confidence >= threshold, and their accuracy."""
    confident = confidence >= threshold
    return {
        "accuracy": float(np.mean(label == truth)) if len(truth) else float("nan"),
        "coverage": float(np.mean(confident)) if len(truth) else float("nan"),
        "accuracy_confident": float(np.mean(label[confident] == truth[confident])) if confident.any() else float("nan"),
        "n": int(len(truth)),
    }
