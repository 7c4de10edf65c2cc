"""eval_net: the evaluation network, trained on all training images, used only to judge samples.

With classes it is a classifier of the labels (label accuracy of samples, and its features for
FID/KID/precision/recall). Without classes (a flat image folder) it learns to tell how an image
was rotated (0/90/180/270 degrees), a pretext task that needs no labels, and only its features
are used. Either way it never touches the generator's training.

The training images stream from the table into a uint8 scratch file (`lsdm.data.pixels.PixelFile`)
and each batch is read, converted and (without classes) rotated on its own; the test images are
judged chunk by chunk. Memory: one batch and the LeNet, not the set (the four rotations of 200,000
images of 64x64x3 would be 39 GB as floats).
"""

import time
from collections.abc import Iterator

import torch
from torch import nn

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.pixels import PixelFile, image_batches, image_meta, image_shape
from lsdm.data.tables import labels_tensor
from lsdm.io import save_checkpoint
from lsdm.models.lenet import LeNet
from lsdm.models.training import seed_everything, train_classifier
from lsdm.tracking import tracked


class Rotations:
    """The images of a store (`PixelFile`) four times, rotated by k * 90 degrees: index j is image
    j % n turned k = j // n times, the order of `cat([rot90(x, k) for k in range(4)])`; `targets`
    holds the k of every index. Read by index, as `train_classifier` draws its batches."""

    def __init__(self, images: PixelFile):
        self.images, self.n, self.device = images, len(images), images.device

    def __len__(self) -> int:
        return 4 * self.n

    def targets(self) -> torch.Tensor:
        return torch.arange(4, device=self.device).repeat_interleave(self.n)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        x, k = self.images[idx % self.n], idx // self.n
        for turns in range(1, 4):
            at = k == turns
            if at.any():
                x[at] = torch.rot90(x[at], turns, dims=(2, 3))
        return x


def rotated(x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x turned k times, k) for k = 0..3: the rotation task's targets for one chunk of images."""
    for k in range(4):
        yield torch.rot90(x, k, dims=(2, 3)), torch.full((len(x),), k, device=x.device)


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Fraction of (images, targets) batches the model classifies right, over all of them."""
    right = total = 0
    for x, y in batches:
        right += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return right / total


def run(params: Params) -> None:
    p, device = params.evalnet, resolve_device(params.base.device)
    meta = image_meta(paths.IMAGES)
    labelled = bool((meta["label"] >= 0).any())
    if labelled:
        meta = meta[meta["label"] >= 0]
    train, test = meta[meta["split"] == "train"], meta[meta["split"] == "test"]
    channels, size, _ = image_shape(meta)

    def test_batches():  # (images, targets) of the real test images, chunk by chunk
        for rows, x in image_batches(paths.IMAGES, test["id"], device):
            yield from [(x, labels_tensor(rows).to(device))] if labelled else rotated(x)

    with tracked(paths.live_dir("eval_net")) as track, PixelFile.of(paths.IMAGES, train["id"], device) as pixels:
        x = pixels if labelled else Rotations(pixels)
        y = labels_tensor(train).to(device) if labelled else x.targets()
        config = dict(image_size=size, in_channels=channels, n_classes=int(y.max()) + 1)
        seed_everything(p.seed)
        model = LeNet(**config).to(device)
        t0 = time.perf_counter()
        train_classifier(
            model,
            x,
            y,
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            seed=p.seed,
            shift=p.shift,
            epoch_size=p.epoch_size,
            log=track,
        )
        seconds = time.perf_counter() - t0
        test_accuracy = accuracy(model, test_batches())
        target = "labels" if labelled else "rotation"
        track.summary["evalnet"] = {"test_accuracy": test_accuracy, "target": target, "train_seconds": seconds}
        save_checkpoint(paths.EVALNET, "lenet", config, model.state_dict(), target=target)
    print(f"eval_net: {target} accuracy {test_accuracy:.4f} on {len(test)} real test images, {seconds:.0f}s")
