"""The blocks of the matcher's validation runs (results/tuning/matcher_val.csv, benchmarks/tune_matcher.py)
and the pseudo-labellers' (results/tuning/pseudo_val.csv, benchmarks/tune_pseudo.py).

Which runs the docs compare is data, not code: tuning.yaml beside this module holds the tuning table's
rows and one entry per paired comparison, each rendered by `paired` as the block its key names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import yaml

from lsdm.reports.blocks.formatting import num
from lsdm.reports.blocks.registry import block
from lsdm.reports.stats import paired_cells, paired_runs

TUNING = "results/tuning/matcher_val.csv"
#: The pseudo-labellers' settings on validation (benchmarks/tune_pseudo.py) and the thresholds shown.
PSEUDO_TUNING, PSEUDO_THRESHOLDS = "results/tuning/pseudo_val.csv", (0.9, 0.99)
TUNING_COLS = (
    ("label_accuracy", "label acc", 3),
    ("fid_evalnet", "FID (evalnet)", 1),
    ("recall", "recall", 2),
    ("density", "density", 2),
    ("coverage", "coverage", 2),
)


@dataclass(frozen=True)
class Comparison:
    """One entry of tuning.yaml's `paired`: each variant − the baseline on validation, per count."""

    variants: tuple[str, ...]
    baseline: str
    counts: tuple[int, ...]
    speed: bool = False  # a last column: the baseline's training time over the variant's
    means: str | None = None  # first a table of means per count, its first column named so


NOTEBOOK = yaml.safe_load(Path(__file__).with_name("tuning.yaml").read_text())
#: The tuning table's rows: a label and the runs it shows, each (variant, pairs per class, split seed);
#: a cell lists the runs' values separated by " / "; a tuple of split seeds shows their runs' mean.
TUNING_ROWS: tuple[tuple[str, tuple[tuple[str, int, int | tuple[int, ...]], ...]], ...] = tuple(
    (row["label"], tuple((v, n, tuple(s) if isinstance(s, list) else s) for v, n, s in row["runs"]))
    for row in NOTEBOOK["table"]
)
COMPARISONS = {
    name: Comparison(**{**c, "variants": tuple(c["variants"]), "counts": tuple(c["counts"])})
    for name, c in NOTEBOOK["paired"].items()
}


@block("matcher-tuning", TUNING)
def tuning(root: Path) -> list[str]:
    """The tuning table: a row per entry of tuning.yaml's `table`."""
    df = pd.read_csv(root / TUNING).set_index(["variant", "n_per_class", "seed"]).sort_index()
    if not df.index.is_unique:
        raise ValueError(f"{TUNING}: more than one row for a (variant, n_per_class, seed)")
    real = df["density_real"].mean()
    head = [label if key != "density" else f"density (real {real:.2f})" for key, label, _ in TUNING_COLS]
    lines = ["| matcher (validation) | pairs/class | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for label, runs in TUNING_ROWS:
        keys = {
            (v, n, seeds): [(v, n, seed) for seed in (seeds if isinstance(seeds, tuple) else (seeds,))]
            for v, n, seeds in runs
        }
        missing = [k for ks in keys.values() for k in ks if k not in df.index]
        if missing:
            raise KeyError(f"{TUNING}: no row for {missing} (tuning row {label!r})")
        counts = list(dict.fromkeys(n for _, n, _ in runs))
        cells = [" / ".join(num(df.loc[keys[r], key].mean(), digits) for r in runs) for key, _, digits in TUNING_COLS]
        lines.append(f"| {label} | {' / '.join(map(str, counts))} | " + " | ".join(cells) + " |")
    return lines


def paired(root: Path, comparison: Comparison) -> list[str]:
    """Each variant − the baseline on validation per count: the mean over the split seeds both ran and
    its 95% t-interval (the density column is |density − real density|: closer to the real data's is
    better); after the means of each run per count where the comparison asks for them."""
    variants, base, counts = comparison.variants, comparison.baseline, comparison.counts
    df = pd.read_csv(root / TUNING)
    df["density"] = (df["density"] - df["density_real"]).abs()
    head = [label if key != "density" else "density gap" for key, label, _ in TUNING_COLS]
    lines = []
    if comparison.means:
        lines += [
            f"| {comparison.means} (validation, mean of the split seeds) | pairs/class | " + " | ".join(head) + " |",
            "|---|---|" + "---|" * len(head),
        ]
        for variant in (base, *variants):
            for n in counts:
                rows = df[(df["variant"] == variant) & (df["n_per_class"] == n)]
                lines.append(
                    f"| `{variant}` | {n} | "
                    + " | ".join(f"{rows[key].mean():.{max(d, 2)}f}" for key, _, d in TUNING_COLS)
                    + " |"
                )
        lines.append("")
    head += ["training time ÷"] if comparison.speed else []
    lines += [
        f"| variant − `{base}` (validation) | pairs/class | split seeds | " + " | ".join(head) + " |",
        "|---|---|---|" + "---|" * len(head),
    ]
    for variant in variants:
        for n in counts:
            a, b, seeds = paired_runs(df, variant, base, n, TUNING)
            cells = paired_cells(a, b, seeds, TUNING_COLS)
            if comparison.speed:  # meaningful only for runs of one batch, under one load
                cells.append(f"{b.loc[seeds, 'train_seconds'].mean() / a.loc[seeds, 'train_seconds'].mean():.1f}")
            lines.append(f"| `{variant}` | {n} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return lines


for _name, _comparison in COMPARISONS.items():
    block(_name, TUNING)(partial(paired, comparison=_comparison))


@block("pseudo-tuning", PSEUDO_TUNING)
def pseudo_tuning(root: Path) -> list[str]:
    """Each pseudo-labeller setting per count: how many validation images it labels right, and at each
    threshold the share at or above it (coverage) and how many of those are right; means over the
    split seeds."""
    df = pd.read_csv(root / PSEUDO_TUNING)
    mean = df.groupby(["setting", "n_per_class", "threshold"], sort=False)[
        ["coverage", "accuracy", "accuracy_all"]
    ].mean()
    seeds = ", ".join(map(str, sorted(df["seed"].unique())))
    head = " | ".join(f"coverage / right at {t:g}" for t in PSEUDO_THRESHOLDS)
    lines = [
        f"| setting (validation, mean of split seeds {seeds}) | pairs/class | right, of all | {head} |",
        "|---|---|---|" + "---|" * len(PSEUDO_THRESHOLDS),
    ]
    for (setting, n), at in mean.groupby(level=[0, 1], sort=False):
        at = at.droplevel([0, 1])
        cells = " | ".join(f"{at.loc[t, 'coverage']:.2f} / {at.loc[t, 'accuracy']:.3f}" for t in PSEUDO_THRESHOLDS)
        lines.append(f"| `{setting}` | {n} | {at['accuracy_all'].iloc[0]:.3f} | {cells} |")
    return lines
