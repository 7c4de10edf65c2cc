"""pseudo_label: a label and a confidence for every image of the latent pool, learned from the pairs
alone (`lsdm.models.pseudo_labels.spread` on the shared latents, then `refine`), for the class-aware marginal term;
their accuracy and coverage, measured against the unpaired pool images' true labels, in
results/pseudo_label/metrics.json. The true labels are read only after the labels are written and
reach no fit. Data without classes gets an empty table."""

import numpy as np
import pandas as pd

from lsdm import paths
from lsdm.config import Params
from lsdm.data.schemas import LATENT_POOL, LATENTS, PAIRED, PSEUDO_LABELS, UNLABELLED
from lsdm.data.tables import codes
from lsdm.io import read_table, write_json, write_table
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
    table = label_pool(params, pool_ids, codes(latents, pool_ids).numpy(), paired) if has_classes else \
        pd.DataFrame({"id": pd.Series(dtype=str), "label": pd.Series(dtype=np.int64), "confidence": pd.Series(dtype=float)})  # fmt: skip
    write_table(table, paths.PSEUDO_LABELS, PSEUDO_LABELS)
    summary: dict = {}  # DVC metrics: `dvc exp show` gives each number a column, so only the measurements
    if has_classes:  # measured on the unpaired pool images: their true labels, after the fact
        truth = latents.set_index("id")["label"]
        unpaired = table[~table["id"].isin(paired["id"])]
        summary["unpaired"] = quality(unpaired["label"].to_numpy(), unpaired["confidence"].to_numpy(),
                                      truth.loc[unpaired["id"]].to_numpy(), params.pseudo.threshold)  # fmt: skip
        q = summary["unpaired"]
        print(f"pseudo_label: {len(unpaired)} unpaired pool images, accuracy {q['accuracy']:.3f}; "
              f"{q['coverage']:.0%} with confidence >= {params.pseudo.threshold} ({q['accuracy_confident']:.3f} right)")
    else:
        print("pseudo_label: the data has no classes: no pseudo-labels (class_aware runs as pooled)")
    write_json({"pseudo": summary}, paths.PSEUDO_METRICS)
