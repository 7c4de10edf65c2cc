"""Choose the pseudo-labeller's settings on the validation split: how many of the validation images
each setting labels right, and how many reach a confidence threshold, from the pairs alone.

The validation images join the latent pool as unlabelled codes (label spreading is transductive: it
labels the codes of its graph), the pairs of each split seed give the only labels, and the validation
images' true labels measure the result; nothing else is read. Run from a workspace where
`dvc repro encode` has run.

    python benchmarks/tune_pseudo.py --counts 3 10 30 --seeds 0 1 2 \
        --setting spread: --setting gaussian:refine=gaussian --setting gaussian_k05:refine=gaussian,keep=0.5

Each row: setting, pairs per class, split seed, threshold, coverage (share of the validation images
at or above it) and the accuracy of those; `accuracy_all` is over every validation image.
Figures: --out (CSV), and the mean over split seeds on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsdm.config import parse_variant  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", action="append", required=True, help="name:key=value,... (keys of the pseudo section)")
    ap.add_argument("--counts", type=int, nargs="+", default=[3, 10, 30], help="split.n_paired_per_class values")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split.seed values")
    ap.add_argument("--out", default="tune_pseudo.csv", help="CSV of every row")
    args = ap.parse_args(argv)

    from lsdm import paths
    from lsdm.config import load_params
    from lsdm.data.schemas import IMAGES, LATENTS
    from lsdm.data.tables import codes, latent_pool, paired_subset
    from lsdm.io import read_table
    from lsdm.pipeline.pseudo_label import label_pool

    images, latents = read_table(paths.IMAGES, IMAGES), read_table(paths.LATENTS, LATENTS)
    val = images.loc[images["split"] == "val", "id"]
    ids = pd.concat([latent_pool(images)["id"], val], ignore_index=True)
    z = codes(latents, ids).numpy()
    truth = latents.set_index("id").loc[val, "label"].to_numpy()
    rows = []
    for name, sets in map(parse_variant, args.setting):
        params = load_params(overrides={f"pseudo.{k}": v for k, v in sets.items()})
        for count in args.counts:
            for seed in args.seeds:
                paired = paired_subset(images, count, params.split.n_paired, seed)
                table = label_pool(params, ids, z, paired).set_index("id").loc[val]
                label, confidence = table["label"].to_numpy(), table["confidence"].to_numpy()
                for t in THRESHOLDS:
                    kept = confidence >= t
                    rows.append(
                        {
                            "setting": name,
                            "pseudo": str(params.pseudo.model_dump()),
                            "n_per_class": count,
                            "seed": seed,
                            "threshold": t,
                            "coverage": kept.mean(),
                            "accuracy": (label[kept] == truth[kept]).mean() if kept.any() else np.nan,
                            "accuracy_all": (label == truth).mean(),
                        }
                    )
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    mean = table.groupby(["setting", "n_per_class", "threshold"])[["coverage", "accuracy", "accuracy_all"]].mean()
    print(mean.round(3).to_string())
    print(f"{len(table)} rows; table: {args.out}")


if __name__ == "__main__":
    main()
