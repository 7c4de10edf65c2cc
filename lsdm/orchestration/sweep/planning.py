"""A sweep's grid: the paired counts the data can supply, one DVC experiment per count x split seed (x
training seed) and LSDM-only variant runs beside them, named so that the table can tell them apart, and
every setting checked by the typed config before anything runs.

The variant a run is lives in its name, `TAG-nN-sS[-tT]--NAME`: an experiment reaches the table with
only its name and params (`dvc exp show`), and a variant's name is in no param. `run_name` and
`variant_run` write it, `variant_of` reads it back; nothing else parses the names.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.config import PARAMS_FILE, load_params
from lsdm.errors import ParamsError
from lsdm.orchestration.dvc import dvc
from lsdm.orchestration.tools import run_tool

#: a variant's run: its cell's main run, then --NAME (`variant_run`)
VARIANT_RE = re.compile(r"-n\d+-s-?\d+(?:-t-?\d+)?--(?P<variant>[a-z][a-z0-9_]*)$")


def run_name(tag: str, n: int, seed: int, train_seed: int | None = None) -> str:
    """A cell's main run: TAG-nCOUNT-sSEED, then -tSEED when the sweep has several training seeds."""
    return f"{tag}-n{n}-s{seed}" + ("" if train_seed is None else f"-t{train_seed}")


def variant_run(run: str, variant: str) -> str:
    """A variant's run in the cell of main run `run`: RUN--VARIANT."""
    return f"{run}--{variant}"


def variant_of(experiment: str) -> str | None:
    """The variant an experiment ran (`variant_run`), None for a cell's main run."""
    hit = VARIANT_RE.search(str(experiment))
    return hit["variant"] if hit else None


def class_counts(root: Path) -> pd.Series | None:
    """Training images per class (None when the data has no classes); prepares the data if needed."""
    from lsdm.data.pixels import image_meta
    from lsdm.data.schemas import UNLABELLED

    images_path = root / paths.IMAGES
    if not images_path.exists():
        dvc(["repro", "prepare"], root)
    images = image_meta(images_path)
    train = images[(images["split"] == "train")]
    labelled = train[train["label"] != UNLABELLED]
    if labelled.empty:
        return None if len(train) else pd.Series(dtype=int)
    return labelled.groupby("label").size()


def plan(counts: Iterable[int], seeds: Iterable[int], per_class: pd.Series | None, n_train: int | None = None):
    """(runs [(param, count, seed)], skipped [(count, reason)]): counts the data cannot supply are skipped."""
    key = "split.n_paired_per_class" if per_class is not None else "split.n_paired"
    limit = int(per_class.min()) if per_class is not None else n_train
    runs, skipped = [], []
    for n in sorted(set(counts)):
        if limit is not None and n > limit:
            what = f"{limit} training images"
            if per_class is not None:
                what = f"smallest class has {what}"
            skipped.append({"count": n, "reason": f"{key} = {n} skipped: {what}"})
            continue
        runs += [(key, n, s) for s in seeds]
    return runs, skipped


def grid(
    runs, tag: str, overrides: dict[str, Any], variants: dict[str, dict[str, Any]], train_seeds: Iterable[int] = (0,)
) -> list[tuple[str, dict]]:
    """(experiment name, its overrides) of every run: TAG-nCOUNT-sSEED with the cell's paired count and
    split seed (and -tSEED, every training seed of `train_seed_keys`, when there are several training
    seeds), then `overrides`; each of `variants` adds TAG-nCOUNT-sSEED--NAME, LSDM alone with its keys.
    Every cell's main run comes first, then the variants cell by cell: a variant that changes only how
    LSDM draws (`sample.*`) then finds its cell's matcher in DVC's run cache instead of training it
    again beside it."""
    from lsdm.config import train_seed_keys

    train_seeds = list(train_seeds)
    several = train_seeds != [0]
    cells = []
    for key, n, seed in runs:
        for t in train_seeds:
            cell = {key: n, "split.seed": seed, **overrides}
            if several:
                cell.update({k: t for k in train_seed_keys()})
            cells.append((run_name(tag, n, seed, t if several else None), cell))
    return cells + [
        (variant_run(name, v), {**cell, **variant_overrides(extra)})
        for v, extra in variants.items()
        for name, cell in cells
    ]


def variant_overrides(extra: dict[str, Any]) -> dict[str, Any]:
    """A variant run's own overrides: LSDM alone (no baselines), then the variant's keys."""
    return {"methods": [], **extra}


def spec(root: Path, name: str | None = None):
    """The sweep to run: params.yaml's `sweep:`, or `sweeps.<name>`, and its dotted key there."""
    params = load_params(root / PARAMS_FILE)
    if name is None:
        return params.sweep, "sweep"
    if name not in params.sweeps:
        raise ParamsError(
            f"sweep --name {name!r}: not in params.yaml's `sweeps:` section; defined: {sorted(params.sweeps)}"
        )
    return params.sweeps[name], f"sweeps.{name}"


def check(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
) -> tuple[list[int], list[int], dict[str, Any]]:
    """The sweep's counts, seeds and per-run overrides (its section's unless given), checked by the
    typed config as every run will see them: a bad key or value is a ParamsError, now."""
    sweep, key = spec(root, name)
    counts, seeds = list(counts or sweep.counts), list(seeds if seeds is not None else sweep.seeds)
    overrides = {**sweep.set, **(overrides or {})}
    # one check, as params.yaml's: the sweep section as it will run, and every run's params
    load_params(
        root / PARAMS_FILE, {f"{key}.counts": counts, f"{key}.seeds": seeds, f"{key}.set": overrides, **overrides}
    )
    for variant, extra in sweep.variants.items():
        try:
            load_params(root / PARAMS_FILE, {**overrides, **variant_overrides(extra)})
        except ParamsError as e:
            raise ParamsError(f"{key}.variants.{variant}: {e}") from None
    return counts, seeds, overrides


def check_tag(tag: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", tag):
        raise ParamsError(f"sweep tag {tag!r}: use letters, digits, '-', '_' and '.' (it names DVC experiments)")
    return tag


def plan_sweep(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> tuple[list[tuple[str, dict]], dict]:
    """The sweep's points (name, overrides) and its metadata: `sweep.counts` x `sweep.seeds` of
    params.yaml (or of `sweeps.<name>`) unless given, every run with its `set` and then `overrides`,
    all checked first."""
    counts, seeds, overrides = check(root, counts, seeds, overrides, name)
    tag = check_tag(tag or "sweep-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S"))
    per_class = class_counts(root)
    n_train = None
    if per_class is None:
        from lsdm.data.pixels import image_meta

        n_train = int((image_meta(root / paths.IMAGES)["split"] == "train").sum())
    runs, skipped = plan(counts, seeds, per_class, n_train)
    for s in skipped:
        print(f"warning: {s['reason']}", file=sys.stderr)
    baseline = run_tool(["git", "rev-parse", "HEAD"], root).stdout.strip()
    sweep = spec(root, name)[0]
    meta = {
        "name": name,
        "tag": tag,
        "baseline": baseline,
        "counts": sorted(set(counts)),
        "seeds": seeds,
        "train_seeds": sweep.train_seeds,
        "overrides": overrides,
        "variants": sweep.variants,
        "skipped": skipped,
    }
    return grid(runs, tag, overrides, sweep.variants, sweep.train_seeds), meta
