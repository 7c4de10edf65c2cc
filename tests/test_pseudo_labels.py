"""The pseudo-labeller of the latent pool (lsdm/models/pseudo_labels.py): label spreading from the
pairs, then a Gaussian class model fitted to the confident labels. Synthetic codes with known truth."""

import numpy as np

from lsdm.models.pseudo_labels import UNKNOWN, quality, refine, spread


def blobs(n_per_class: int = 150, seed: int = 0):
    """Three elongated Gaussian classes in 4-d (long along different axes), 3 known labels each."""
    rng = np.random.default_rng(seed)
    scales = np.array([[3.0, 0.3, 0.3, 0.3], [0.3, 3.0, 0.3, 0.3], [0.3, 0.3, 3.0, 0.3]])
    centres = np.array([[0, 0, 0, 0], [4, 4, 0, 0], [0, 4, 4, 0.0]])
    truth = np.repeat(np.arange(3), n_per_class)
    z = centres[truth] + rng.standard_normal((len(truth), 4)) * scales[truth]
    known = np.full(len(truth), UNKNOWN)
    for c in range(3):
        known[np.flatnonzero(truth == c)[:3]] = c
    return z, truth, known


def test_refine_keeps_the_pairs_and_relabels_by_the_class_model():
    """Rows labelled wrong with low confidence are taken back by their class's Gaussian; the pairs'
    labels stay, with confidence 1; nothing outside [0, 1]."""
    z, truth, known = blobs()
    label, confidence = truth.copy(), np.full(len(truth), 0.95)
    wrong = np.flatnonzero(known == UNKNOWN)[::10]  # one row in ten mislabelled, with low confidence
    label[wrong], confidence[wrong] = (truth[wrong] + 1) % 3, 0.4
    new, conf = refine(z, label, confidence, known, keep=0.7, reg=0.1)
    assert np.mean(new[wrong] == truth[wrong]) > 0.9
    assert np.mean(new == truth) > 0.97
    assert (new[known != UNKNOWN] == known[known != UNKNOWN]).all() and (conf[known != UNKNOWN] == 1).all()
    assert ((conf >= 0) & (conf <= 1)).all()


def test_refine_fits_only_the_most_confident_rows():
    """The labels of rows below the `keep` cut do not reach the class model: scrambling them leaves
    the output unchanged; scrambling confident rows changes it."""
    z, truth, known = blobs(seed=1)
    confidence = np.linspace(0.3, 1.0, len(truth))[np.random.default_rng(1).permutation(len(truth))]
    label = truth.copy()
    out = refine(z, label, confidence, known, keep=0.5, reg=0.1)
    low = (known == UNKNOWN) & (confidence < np.quantile(confidence[known == UNKNOWN], 0.5))
    scrambled = label.copy()
    scrambled[low] = np.random.default_rng(2).integers(0, 3, low.sum())
    again = refine(z, scrambled, confidence, known, keep=0.5, reg=0.1)
    assert np.array_equal(out[0], again[0]) and np.array_equal(out[1], again[1])
    high = (known == UNKNOWN) & ~low
    scrambled[high] = (truth[high] + 1) % 3
    assert not np.array_equal(out[0], refine(z, scrambled, confidence, known, keep=0.5, reg=0.1)[0])


def test_refine_leaves_the_labels_when_a_class_has_too_few_rows():
    """A covariance needs two points: with one class held by a single row the spread labels stand."""
    z, truth, known = blobs()
    label = np.where(truth == 2, 0, truth)
    label[np.flatnonzero(truth == 2)[0]] = 2
    confidence = np.ones(len(truth))
    new, conf = refine(z, label, confidence, np.full(len(truth), UNKNOWN), keep=1.0, reg=0.1)
    assert new is label and conf is confidence


def test_spreading_then_refining_labels_the_pool_better_than_spreading_alone():
    """On classes a k-NN graph links along their long axes, the class model labels more of the pool
    right than the graph, at the same three known labels per class."""
    z, truth, known = blobs(seed=3)
    label, confidence = spread(z, known, neighbors=10, alpha=0.2)
    refined, conf = refine(z, label, confidence, known, keep=0.7, reg=0.1)
    unknown = known == UNKNOWN
    before = quality(label[unknown], confidence[unknown], truth[unknown], 0.0)["accuracy"]
    after = quality(refined[unknown], conf[unknown], truth[unknown], 0.0)["accuracy"]
    assert after > before, (before, after)
