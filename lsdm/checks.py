"""Everything about a run that can be known before any model is fitted, checked at once.

DVC deletes a stage's outputs just before it runs the stage, so a check inside a stage comes too
late: the old outputs are gone by then. `check_all` is therefore the first DVC stage (`check`,
which every other stage depends on) and `lsdm check`: the params (typed in lsdm.config), the device,
and the data, through the source's census (its images and labels, without decoding pixels) and
the split prepare will make of them. What the later stages need of that split is checked here:
training images for the pairs asked for, held-out images for the evaluation's neighbourhoods.

`check_stage` is what each `lsdm <stage>` runs first: the same checks where they are cheap (the
device, the split's sizes read from the prepared table). These checks refuse or pass; they never
change what a stage computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.schemas import UNLABELLED, Census
from lsdm.data.tables import check_classes, check_pairs, class_name, split_frame
from lsdm.errors import ParamsError


@dataclass(frozen=True)
class Summary:
    """What `check_all` found, for its one-line report."""

    source: str
    n_images: int
    n_skipped: int
    splits: dict[str, int]
    classes: list[str]

    def line(self) -> str:
        shown = f"{len(self.classes)} classes" if self.classes else "no classes"
        skipped = f", {self.n_skipped} unreadable files to skip" if self.n_skipped else ""
        return f"{self.n_images} images from {self.source!r} ({shown}; {self.splits}{skipped})"


def check_device(params: Params) -> None:
    """`base.device: cuda` needs CUDA here (torch is imported only then: `auto` and `cpu` always work)."""
    if params.base.device == "cuda":
        resolve_device("cuda")


def census(params: Params) -> Census:
    """The data source's images and labels, without pixels where the source has a census hook."""
    from lsdm.data import sources

    p = params.data
    hook = sources.census(p.source)
    if hook is not None:
        return hook(p)
    raw = sources.loader(p.source)(p)  # no census: load it whole (a slower check, the same answer)
    return Census(raw.ids, raw.labels, raw.split_by, raw.splits, raw.skipped, raw.class_names)


def needed_heldout(params: Params) -> int:
    """Held-out images the evaluation needs: precision/recall and density/coverage look at each
    point's `pr_k`/`dc_k` nearest neighbours among the others (and KID draws subsets of two or more)."""
    e = params.evaluate
    return max(e.pr_k, e.dc_k, 1) + 1


def check_split_sizes(params: Params, images: pd.DataFrame, names: list[str] | None = None) -> None:
    """The split (columns id, label, split) holds the pairs asked for and enough images to judge.

    The judged split (`evaluate.split`, capped at `evaluate.n_samples`) and the training images its
    real reference is drawn from need `needed_heldout` images; the test split needs some even when
    validation is judged (the autoencoder's and the evaluation net's test scores)."""
    check_pairs(images, params.split.n_paired_per_class, params.split.n_paired, names)
    d, e, need = params.data, params.evaluate, needed_heldout(params)
    counts = images["split"].value_counts().to_dict()
    n_train, n_test = counts.get("train", 0), counts.get("test", 0)
    judged = counts.get(e.split, 0)
    fractions = f"data.test_fraction = {d.test_fraction}, data.val_fraction = {d.val_fraction} of {len(images)} images"
    if e.split == "val" and judged < need:
        raise ParamsError(
            f"evaluate.split = 'val': {judged} validation images ({fractions}); the evaluation needs at "
            f"least {need} (more than evaluate.pr_k / dc_k neighbours); raise data.val_fraction or "
            "add images"
        )
    if n_test < (need if e.split == "test" else 1):
        raise ParamsError(
            f"{n_test} test images ({fractions}); the evaluation needs at least "
            f"{need if e.split == 'test' else 1} (more than evaluate.pr_k / dc_k neighbours); raise "
            "data.test_fraction or add images"
        )
    if e.n_samples is not None and e.n_samples < need:
        raise ParamsError(
            f"evaluate.n_samples = {e.n_samples}: the evaluation needs at least {need} images "
            f"(more than evaluate.pr_k = {e.pr_k} / dc_k = {e.dc_k} neighbours)"
        )
    if n_train < need:
        raise ParamsError(
            f"{n_train} training images ({fractions}); the evaluation's real reference draws as many "
            f"as it judges, at least {need}; add images or lower data.test_fraction / val_fraction"
        )
    check_unpaired(params, images)


def check_unpaired(params: Params, images: pd.DataFrame) -> None:
    """`split.n_unpaired` fits beside the pairs in the training split (`tables.latent_pool` draws them)."""
    s, train = params.split, images[images["split"] == "train"]
    if s.n_unpaired is None:
        return
    classes = train.loc[train["label"] != UNLABELLED, "label"].nunique()
    others = len(train) - (s.n_paired_per_class * classes if classes else s.n_paired)
    if s.n_unpaired > others:
        raise ParamsError(
            f"split.n_unpaired = {s.n_unpaired}: only {others} training images are not paired; "
            f"allowed: 0..{others}, or null for all of them"
        )


def check_data(params: Params, images: pd.DataFrame, names: list[str] | None = None) -> None:
    """Everything about the split `images` (columns id, label, split) that a later stage would refuse."""
    from lsdm.tasks import make_task

    check_classes(images, names)
    make_task(params).check_data(images)
    check_split_sizes(params, images, names)


def check_all(params: Params) -> Summary:
    """Params (already typed), device and data, as the pipeline will meet them; a ParamsError or
    DataError (naming the key or file, what was found and what is allowed) on the first problem."""
    check_device(params)
    found = census(params)
    d = params.data
    frame = split_frame(
        found.ids, found.labels, found.split_by, found.splits, d.test_fraction, d.seed, d.limit, d.val_fraction
    )
    check_data(params, frame, found.class_names)
    labelled = frame["label"] != UNLABELLED
    classes = [class_name(k, found.class_names) for k in sorted(frame.loc[labelled, "label"].unique())]
    splits = {s: int(n) for s, n in frame["split"].value_counts().sort_index().items()}
    return Summary(d.source, len(frame), len(found.skipped), splits, classes)


def check_interpolation(params_file: str | Path, dvc_yaml: str | Path = "dvc.yaml") -> None:
    """Every `${key}` of dvc.yaml is in the params file: DVC reads them there, not from lsdm's defaults, and
    without one `dvc repro` stops before any stage with only "Could not find 'key'"."""
    import re

    from lsdm.config import read_params_file

    if not Path(dvc_yaml).exists():
        return
    raw, defaults = read_params_file(params_file), Params().model_dump()
    missing = {}  # dotted key -> its default
    for key in sorted(set(re.findall(r"\$\{\s*([\w.]+)\s*\}", Path(dvc_yaml).read_text())) - {"item"}):
        have, shipped = raw, defaults
        for part in key.split("."):
            have = have.get(part, _MISSING) if isinstance(have, dict) else _MISSING
            shipped = shipped.get(part) if isinstance(shipped, dict) else None
        if have is _MISSING:
            missing[key] = shipped
    if missing:
        raise ParamsError(
            f"{params_file}: dvc.yaml reads {' and '.join(f'`{k}`' for k in missing)} from it and `dvc repro` "
            f"cannot start without them. Write them (the defaults: {', '.join(f'`{k}: {v}`' for k, v in missing.items())}), "
            f"or restore the shipped file with `git checkout {params_file}`"
        )


_MISSING = object()


# Stages that read no prepared images table (or write it): nothing of the split to check before them.
NO_TABLE = {"check", "prepare", "report", "compare"}


def check_stage(params: Params, stage: str, uses_torch: bool) -> None:
    """The cheap part of `check_all`, run by `lsdm <stage>` before it does anything: the device for
    stages that use torch, and the sizes of the split in the prepared table (three columns read)."""
    if uses_torch:
        check_device(params)
    if stage in NO_TABLE or not paths.IMAGES.exists():  # no table: the stage says which input is missing
        return
    try:
        images = pd.read_parquet(paths.IMAGES, columns=["id", "label", "split"])
        images["label"] = images["label"].astype(np.int64)
    except (OSError, ValueError, KeyError, TypeError):  # not a valid table: the stage's own read names the problem
        return
    check_split_sizes(params, images)
