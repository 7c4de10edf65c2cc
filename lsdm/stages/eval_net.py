"""eval_net: the evaluation classifier on the full labelled training set (judges samples only)."""

import time

import torch

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data import labels_tensor, to_tensor
from lsdm.io import read_table, save_checkpoint
from lsdm.models import build
from lsdm.schemas import IMAGES
from lsdm.tracking import tracked
from lsdm.train import seed_everything, batched, train_classifier


def run(params: Params) -> None:
    p, device = params.evalnet, resolve_device(params.base.device)
    images = read_table(paths.IMAGES, IMAGES)
    images = images[images["label"] >= 0]
    train, test = images[images["split"] == "train"], images[images["split"] == "test"]
    x, y = to_tensor(train).to(device), labels_tensor(train).to(device)
    config = dict(image_size=x.shape[-1], in_channels=x.shape[1], n_classes=int(images["label"].max()) + 1)
    seed_everything(p.seed)
    model = build("lenet", config).to(device)

    with tracked(paths.live_dir("eval_net")) as track:
        t0 = time.perf_counter()
        train_classifier(
            model, x, y, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=p.seed, shift=p.shift, log=track
        )
        seconds = time.perf_counter() - t0
        pred = batched(model, to_tensor(test).to(device)).argmax(1).cpu()
        accuracy = (pred == labels_tensor(test)).float().mean().item()
        track.summary["evalnet"] = {"test_accuracy": accuracy, "train_seconds": seconds}
        save_checkpoint(paths.EVALNET, "lenet", config, model.state_dict())
    print(f"eval_net: test accuracy {accuracy:.4f} ({len(test)} real test images), {seconds:.0f}s")
