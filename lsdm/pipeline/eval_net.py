"""eval_net: the evaluation network, trained on all training images, used only to judge samples.

With classes it is a classifier of the labels (label accuracy of samples, and its features for
FID/KID/precision/recall). Without classes (a flat image folder) it learns to tell how an image
was rotated (0/90/180/270 degrees), a pretext task that needs no labels, and only its features
are used. Either way it never touches the generator's training.
"""

import time

import torch

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.tables import labels_tensor, to_tensor
from lsdm.io import read_table, save_checkpoint
from lsdm.models.lenet import LeNet
from lsdm.data.schemas import IMAGES
from lsdm.tracking import tracked
from lsdm.models.training import batched, seed_everything, train_classifier


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image four times, rotated by k * 90 degrees, with k as its target."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    return rotated, torch.arange(4, device=x.device).repeat_interleave(len(x))


def run(params: Params) -> None:
    p, device = params.evalnet, resolve_device(params.base.device)
    images = read_table(paths.IMAGES, IMAGES)
    labelled = bool((images["label"] >= 0).any())
    if labelled:
        images = images[images["label"] >= 0]
    train, test = images[images["split"] == "train"], images[images["split"] == "test"]
    x, x_test = to_tensor(train).to(device), to_tensor(test).to(device)
    if labelled:
        y, y_test = labels_tensor(train).to(device), labels_tensor(test).to(device)
    else:
        (x, y), (x_test, y_test) = rotations(x), rotations(x_test)
    config = dict(image_size=x.shape[-1], in_channels=x.shape[1], n_classes=int(y.max()) + 1)
    seed_everything(p.seed)
    model = LeNet(**config).to(device)

    with tracked(paths.live_dir("eval_net")) as track:
        t0 = time.perf_counter()
        train_classifier(
            model, x, y, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=p.seed, shift=p.shift, log=track
        )
        seconds = time.perf_counter() - t0
        accuracy = (batched(model, x_test).argmax(1) == y_test).float().mean().item()
        target = "labels" if labelled else "rotation"
        track.summary["evalnet"] = {"test_accuracy": accuracy, "target": target, "train_seconds": seconds}
        save_checkpoint(paths.EVALNET, "lenet", config, model.state_dict(), target=target)
    print(f"eval_net: {target} accuracy {accuracy:.4f} on {len(test)} real test images, {seconds:.0f}s")
