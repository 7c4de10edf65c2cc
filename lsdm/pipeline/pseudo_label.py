"""pseudo_label: a label and a confidence for every image of the latent pool, learned from the pairs
alone (`lsdm.models.pseudo_labels.spread` on the shared latents, then `refine`), for the class-aware
marginal term; with `sample.filter: image` also an image classifier of the confident ones
(`lsdm.models.image_labeller`) for LSDM's filtered draw. Their accuracy and coverage, measured against
the unpaired pool images' true labels, in results/pseudo_label/metrics.json: the true labels are read
only after both are written and reach no fit. Data without classes gets an empty table; the
classifier's checkpoint holds no network where none was trained."""

from pathlib import Path

import numpy as np
import pandas as pd

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.schemas import LATENT_POOL, LATENTS, PAIRED, PSEUDO_LABELS, UNLABELLED
from lsdm.data.tables import codes
from lsdm.io import read_table, save_checkpoint, write_json, write_table
from lsdm.models.pseudo_labels import UNKNOWN, quality, refine, spread


def label_pool(params: Params, pool_ids: pd.Series, z: np.ndarray, paired: pd.DataFrame) -> pd.DataFrame:
    """The pseudo-label table of the pool: only the pairs' labels go in."""
    known = pool_ids.map(paired.set_index("id")["label"]).fillna(UNKNOWN).astype(np.int64).to_numpy()
    p = params.pseudo
    label, confidence = spread(z, known, p.neighbors, p.alpha)
    if p.refine == "gaussian":
        label, confidence = refine(z, label, confidence, known, p.keep, p.reg)
    return pd.DataFrame({"id": pool_ids.to_numpy(), "label": label, "confidence": confidence})


def run(params: Params) -> None:
    paired = read_table(paths.PAIRED, PAIRED)
    pool_ids = read_table(paths.LATENT_POOL, LATENT_POOL)["id"]
    latents = read_table(paths.LATENTS, LATENTS)
    has_classes = bool((paired["label"] != UNLABELLED).all()) and len(paired) > 0
    table = (
        label_pool(params, pool_ids, codes(latents, pool_ids).numpy(), paired)
        if has_classes
        else pd.DataFrame(
            {"id": pd.Series(dtype=str), "label": pd.Series(dtype=np.int64), "confidence": pd.Series(dtype=float)}
        )
    )
    write_table(table, paths.PSEUDO_LABELS, PSEUDO_LABELS)
    labellers = {"unpaired": (table["label"].to_numpy(), table["confidence"].to_numpy())}
    if has_classes and params.sample.filter == "image":  # the filtered draw asks it; else not trained (~10 % of a run)
        labellers["classifier"] = classify_pool(params, table, paired)
    else:
        save_checkpoint(paths.PSEUDO_CLASSIFIER, "none", {}, {})
    summary: dict = {}  # DVC metrics: `dvc exp show` gives each number a column, so only the measurements
    if not has_classes:
        write_json({"pseudo": summary}, paths.PSEUDO_METRICS)
        print("pseudo_label: the data has no classes: no pseudo-labels (class_aware runs as pooled), no classifier")
        return
    # measured on the unpaired pool images: their true labels, after the fact
    truth = latents.set_index("id")["label"]
    unpaired = ~table["id"].isin(paired["id"]).to_numpy()
    for name, (label, confidence) in labellers.items():
        summary[name] = quality(
            label[unpaired], confidence[unpaired], truth.loc[table["id"][unpaired]].to_numpy(), params.pseudo.threshold
        )
        q = summary[name]
        what = "labels" if name == "unpaired" else "image classifier"
        print(
            f"pseudo_label: {what} of {unpaired.sum()} unpaired pool images, accuracy {q['accuracy']:.3f}; "
            f"{q['coverage']:.0%} with confidence >= {params.pseudo.threshold} ({q['accuracy_confident']:.3f} right)"
        )
    write_json({"pseudo": summary}, paths.PSEUDO_METRICS)


def classify_pool(params: Params, table: pd.DataFrame, paired: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Train the image classifier on the pool images with confident pseudo-labels (and the pairs),
    write it, and return its (label, confidence) of every pool image, in `table`'s order."""
    import torch

    model, config, prob = fit_pool_classifier(params, table, paired, resolve_device(params.base.device))
    save_checkpoint(paths.PSEUDO_CLASSIFIER, "lenet", config, model.state_dict())
    return prob.argmax(1).numpy(), prob.max(1).values.to(torch.float64).numpy()


def fit_pool_classifier(params: Params, table: pd.DataFrame, paired: pd.DataFrame, device, root: str | Path = "."):
    """(the LeNet, its config, its class probabilities [N, C] of every pool image in `table`'s order):
    trained on the pool images whose pseudo-label has confidence >= `pseudo.threshold`, the pairs
    `pseudo.pair_repeats` times each (`lsdm.models.image_labeller`)."""
    import torch

    from lsdm.data.pixels import PixelFile, image_meta, image_shape
    from lsdm.models.image_labeller import train_image_labeller

    p, images = params.pseudo, Path(root) / paths.IMAGES
    labels = torch.as_tensor(table["label"].to_numpy())
    confident = torch.as_tensor(table["confidence"].to_numpy() >= p.threshold)
    is_pair = torch.as_tensor(table["id"].isin(paired["id"]).to_numpy())
    channels, size, _ = image_shape(image_meta(images))
    config = dict(image_size=size, in_channels=channels, n_classes=int(labels.max()) + 1)
    with PixelFile.of(images, table["id"], device) as pixels:
        model = train_image_labeller(
            pixels,
            labels,
            confident,
            is_pair,
            config,
            epochs=p.epochs,
            pair_repeats=p.pair_repeats,
            seed=p.seed,
            device=device,
        )
        with torch.no_grad():
            prob = torch.cat([model(x).softmax(1).cpu() for x in pixels.batches()])
    return model, config, prob
