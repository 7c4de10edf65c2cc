"""The pseudo-labeller's image classifier: a LeNet (the evaluation net's architecture, trained apart
from it) fitted to the pool images whose pseudo-label is confident, the pairs among them repeated.

LSDM's filtered draw asks it which digit a candidate code decodes to (`sample.filter: image`,
`lsdm.models.latent_classes.DecodedClasses`). Trained on the label-spreading labels of confidence >=
0.9 at 3 pairs per class, it labelled the unpaired pool better than those labels did (84-85 % against
78-81 % right, split seeds 0-1; of the validation images it gives >= 0.99, 96-98 % right against 91-94 %
for the Gaussian model of the latents): a convolutional net with shifted copies of each image smooths
over the label noise that the graph leaves (docs/matcher-tuning.md "The image filter"). Self-training
it further on its own labels did not help (the errors it confirmed grew on two split seeds of three).
"""

from __future__ import annotations

import torch

from lsdm.models.lenet import LeNet
from lsdm.models.training import Logger, _no_log, seed_everything, train_classifier

BATCH_SIZE, LR, SHIFT = 64, 2e-3, 0.1  # the evaluation net's defaults (params.yaml `evalnet`)
EPOCH_SIZE = 50_000  # examples an epoch visits at most: the time is bounded at scale, not by the pool


class Rows:
    """Rows `index` of an image store (`PixelFile` or a tensor), read by position as `train_classifier`
    draws its batches: a row repeated in `index` is seen that many times per epoch."""

    def __init__(self, images, index: torch.Tensor, device: torch.device | str):
        self.images, self.index, self.device = images, index, device

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.images[self.index[idx.cpu()]]


def train_image_labeller(
    images,
    labels: torch.Tensor,
    confident: torch.Tensor,
    paired: torch.Tensor,
    config: dict,
    *,
    epochs: int,
    pair_repeats: int,
    seed: int,
    device: torch.device | str = "cpu",
    log: Logger = _no_log,
) -> LeNet:
    """A LeNet(**config) on the rows of `images` (a store of the pool, [N] by position) where
    `confident` [N], with their `labels` [N]; rows where `paired` [N] (their own labels) `pair_repeats`
    times each."""
    index = torch.cat(
        [torch.nonzero(confident & ~paired).squeeze(1), torch.nonzero(paired).squeeze(1).repeat(pair_repeats)]
    )
    seed_everything(seed)
    model = LeNet(**config).to(device)
    return train_classifier(
        model,
        Rows(images, index, device),
        labels[index].to(device),
        epochs=epochs,
        batch_size=BATCH_SIZE,
        lr=LR,
        seed=seed,
        shift=SHIFT,
        epoch_size=EPOCH_SIZE,
        log=log,
        desc="pseudo_label",
    )
