"""The blocks of the named sweeps (results/sweep*/): the shipped sweep in full and as the README's verdicts,
the image filter on the test split beside it, and the unpaired pool's effect (the paper's first claim)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from lsdm.evaluation.registry import BY_KEY
from lsdm.paths import SWEEP_META, SWEEP_TABLE, comparison, sweep_dir
from lsdm.reports.blocks.formatting import num
from lsdm.reports.blocks.registry import block, read
from lsdm.reports.comparison import mean_std, paired_table, pool_lines, reading, runs_at_once
from lsdm.reports.stats import (
    count_column,
    judge,
    pair_keys,
    paired_difference,
    paired_verdict,
    pool_rows,
    runs_phrase,
    sampler_order,
    summarise,
)


def sweep_table(root: Path, table: str | Path, meta: str | Path) -> tuple[pd.DataFrame, dict]:
    """A sweep's tidy table and record."""
    return pd.read_parquet(root / table), read(root, meta)


SWEEP_METRICS = ("eval.fid_evalnet", "eval.label_accuracy", "eval.recall", "eval.density")
FLOW_NFE = (1, 10, 100)  # latent flow's rows in the docs (the report has every NFE)
READING_AGAINST = (
    "latent_flow_pseudo_nfe10",  # the strongest fair baseline on validation (docs/claims.md, like against like)
    "latent_flow_pseudo_nfe100",
    "latent_flow_pseudo_nfe1",
    "pixel_wgan_pseudo",
    "lsdm_paper",
    "lsdm_pooled",
    "pixel_wgan",
    "latent_flow_nfe1",
    "latent_flow_nfe10",
    "latent_flow_nfe100",
)


def sweep_samplers(df: pd.DataFrame) -> list[str]:
    keep = df["method"].ne("latent_flow") | pd.to_numeric(df["nfe"], errors="coerce").isin(FLOW_NFE)
    return [s for s in sampler_order(df) if s in set(df.loc[keep, "sampler"])]


def sampler_label(df: pd.DataFrame, s: str) -> str:
    named = df.loc[df["sampler"] == s, "matcher"].dropna() if "matcher" in df else pd.Series(dtype=object)
    if len(named):
        return f"{named.iloc[0]} (`{s}`)"
    nfe = pd.to_numeric(df.loc[df["sampler"] == s, "nfe"], errors="coerce").dropna()
    method = df.loc[df["sampler"] == s, "method"].iloc[0]
    return f"{method.replace('_', ' ')}, NFE {int(nfe.iloc[0])}" if len(nfe) and method != s else f"`{s}`"


@block("sweep", SWEEP_TABLE, SWEEP_META)
def sweep(root: Path) -> list[str]:
    df, meta = sweep_table(root, SWEEP_TABLE, SWEEP_META)
    count, samplers = count_column(df), sweep_samplers(df)
    summary = summarise(df)
    counts = sorted(int(c) for c in summary[count].dropna().unique())
    every = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in (meta.get("overrides") or {}).items())
    seeds = sorted(df["seed"].dropna().unique().tolist())
    trained = pair_keys(df) != ["seed"]
    train_seeds = sorted(df["train_seed"].dropna().unique().tolist()) if trained else []
    over = f"the runs (split × training seeds: {runs_phrase(df, count, 'runs')})" if trained else "the split seeds"
    split = " / ".join(sorted(df["eval.split"].dropna().astype(str).unique())) if "eval.split" in df else "(unrecorded)"
    # a sweep combined from pieces (`lsdm sweep --combine`) has each piece's wall time in its note instead
    wall = (
        f"{meta['wall_seconds'] / 60:.1f} min of wall time, {runs_at_once(meta)}. " if meta.get("wall_seconds") else ""
    )
    lines = [
        f"Sweep `{meta.get('tag')}`: {meta.get('experiments')} experiments ({count.replace('_', ' ')} "
        f"{counts} × split seeds {seeds}{f' × training seeds {train_seeds}' if trained else ''}), every run with {every or 'the shipped params'}. "
        f"{wall}Judged on the {split} split; cells: "
        f"mean ± std over {over}.",
        *([str(meta["note"])] if meta.get("note") else []),
        "",
        "| metric | method | " + " | ".join(str(c) for c in counts) + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for col in SWEEP_METRICS:
        m = BY_KEY[col.removeprefix("eval.")]
        ref = f"eval.{m.reference}" if m.reference else None
        real = pd.to_numeric(df[ref], errors="coerce").mean() if ref in df else float("nan")
        label = m.label + ("" if math.isnan(real) else f", real {real:.2f}")
        for i, s in enumerate(samplers):
            cells = []
            for c in counts:
                r = summary[(summary["sampler"] == s) & (summary[count] == c)]
                cells.append(
                    mean_std(r[f"{col}|mean"].iloc[0], r[f"{col}|std"].iloc[0], int(r[f"{col}|count"].iloc[0]))
                    if len(r) and f"{col}|mean" in r
                    else "–"
                )
            lines.append(f"| {label if i == 0 else ''} | {sampler_label(df, s)} | " + " | ".join(cells) + " |")
    against = ["lsdm", *[s for s in READING_AGAINST if s in samplers]]
    lines += ["", *[f"- {r}" for r in reading(df, summary, count, against)]]
    if len(against) > 1:
        lines += [
            "",
            "Paired differences, LSDM minus each method, mean [95% t-interval] (reports/comparison.md, "
            '"Paired differences", says how they are read):',
            "",
            *paired_table(df, count, against),
        ]
    return lines


VERDICT_METRICS = (("eval.fid_evalnet", False), ("eval.label_accuracy", True))  # the README's columns: (column, higher)


@block("sweep-verdicts", SWEEP_TABLE, SWEEP_META)
def sweep_verdicts(root: Path) -> list[str]:
    """The README's summary of a sweep: LSDM's verdict against each method in FID and label accuracy
    at each count, the verdicts of the paired-differences table the docs show in full (`sweep`)."""
    df, meta = sweep_table(root, SWEEP_TABLE, SWEEP_META)
    count = count_column(df)
    against = [s for s in READING_AGAINST if s in sweep_samplers(df)]
    counts = sorted(df[count].dropna().unique())

    def cell(other: str, col: str, higher: bool) -> str:
        words = []
        for c in counts:
            j = judge(df, other, count, c, col, higher)
            word = "–" if j is None else j.verdict if j.verdict == "tie" else f"**{j.verdict}**"
            words.append(word + ("" if j is None or j.by_split else " †"))
        return " · ".join(words)

    unit = "split and training seed" if len(pair_keys(df)) > 1 else "split seed"
    ours = sampler_label(df, "lsdm").split(" (`")[0]  # the default matcher, as the sweep's runs name it
    lines = [
        f"Sweep `{meta.get('tag')}`, {meta.get('experiments')} experiments judged on the test split: {ours} "
        f"against each method at {' / '.join(str(int(c)) for c in counts)} pairs per class, runs paired on {unit}. "
        "**better** / **worse**: the 95% t-interval of the paired differences excludes zero (lower FID, higher label "
        "accuracy); † the verdict does not survive with the split seeds alone as the unit.",
        "",
        f"| {ours} against | " + " | ".join(BY_KEY[c.removeprefix("eval.")].label for c, _ in VERDICT_METRICS) + " |",
        "|---|" + "---|" * len(VERDICT_METRICS),
    ]
    for other in against:
        lines.append(
            f"| {sampler_label(df, other)} | " + " | ".join(cell(other, c, h) for c, h in VERDICT_METRICS) + " |"
        )
    return lines


#: The named sweep `image_filter` (LSDM with the image filter at accept 0.9, and at 0.99 as `lsdm_strict`, on the
#: cells and matchers of `fair-v3`, kept as the named sweep `fair_v3`: the shipped `fair-v4` reran LSDM on another
#: machine, whose matchers differ in the last digits): its samplers as that table names them beside its own.
IMAGE_FILTER_TABLE, IMAGE_FILTER_META = (sweep_dir("image_filter") / f.name for f in (SWEEP_TABLE, SWEEP_META))
PAIRED_TABLE, PAIRED_META = (sweep_dir("fair_v3") / f.name for f in (SWEEP_TABLE, SWEEP_META))
IMAGE_FILTER_SAMPLERS = {"lsdm": "lsdm_image_filter", "lsdm_strict": "lsdm_image_strict"}
IMAGE_FILTER_AGAINST = ("lsdm", "lsdm_paper", "latent_flow_nfe10")


@block("image-filter-test", PAIRED_TABLE, PAIRED_META, IMAGE_FILTER_TABLE, IMAGE_FILTER_META)
def image_filter_test(root: Path) -> list[str]:
    """The image filter on the test split: its runs (sweep `image_filter`) beside those of the sweep it
    shares its matchers with (`fair_v3`: the same cells, split and training seeds, the same matchers):
    the means per count, then each image-filter sampler minus LSDM (latent filter), the paper's LSDM and
    the flow at NFE 10 in label accuracy, paired on (split seed, training seed)."""
    shipped, meta = sweep_table(root, PAIRED_TABLE, PAIRED_META)
    image, _ = sweep_table(root, IMAGE_FILTER_TABLE, IMAGE_FILTER_META)
    image = image[image["sampler"].isin(IMAGE_FILTER_SAMPLERS)].assign(
        sampler=lambda d: d["sampler"].map(IMAGE_FILTER_SAMPLERS)
    )
    df = pd.concat([shipped, image], ignore_index=True)
    df["density_gap"] = (pd.to_numeric(df["eval.density"]) - pd.to_numeric(df["eval.real_reference.density"])).abs()
    count = count_column(df)
    counts = sorted(int(c) for c in image[count].dropna().unique())
    cols = (
        ("eval.label_accuracy", "label acc", 3),
        ("eval.fid_evalnet", "FID (evalnet)", 2),
        ("eval.recall", "recall", 3),
        ("density_gap", "density gap", 3),
    )
    shown = ["lsdm", *IMAGE_FILTER_SAMPLERS.values(), *IMAGE_FILTER_AGAINST[1:]]
    lines = [
        f"Test split, mean over the runs (split seeds × training seeds) of sweep `image_filter` and sweep "
        f"`{meta.get('tag')}` (LSDM: the latent filter, the default):",
        "",
        "| sampler | pairs/class | " + " | ".join(label for _, label, _ in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for s in shown:
        for c in counts:
            rows = df[(df["sampler"] == s) & (df[count] == c)]
            cells = [num(pd.to_numeric(rows[col]).mean(), d) for col, _, d in cols]
            lines.append(f"| `{s}` | {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Label accuracy, the image filter minus each, mean [95% t-interval] over the paired runs:",
        "",
        "| sampler | against | " + " | ".join(str(c) for c in counts) + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for s in IMAGE_FILTER_SAMPLERS.values():
        for other in IMAGE_FILTER_AGAINST:
            cells = []
            for c in counts:
                mean, half, _ = paired_difference(df, s, other, count, c, "eval.label_accuracy")
                word = paired_verdict(mean, half, higher=True)
                cells.append(
                    f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] {word if word == 'tie' else f'**{word}**'}"
                )
            lines.append(f"| `{s}` | `{other}` | " + " | ".join(cells) + " |")
    return lines


POOL_TABLE, POOL_META = (sweep_dir("unpaired_pool") / f.name for f in (SWEEP_TABLE, SWEEP_META))
POOL_FIGURE = comparison("unpaired_pool")[1] / "fidelity_vs_unpaired.png"


@block("unpaired-pool", POOL_TABLE, POOL_META)
def unpaired_pool(root: Path) -> list[str]:
    """The paper's first claim, from the named sweep `unpaired_pool` (reports/comparison-unpaired_pool.md)."""
    df, meta = sweep_table(root, POOL_TABLE, POOL_META)
    split = " / ".join(sorted(df["eval.split"].dropna().astype(str).unique())) if "eval.split" in df else "(unrecorded)"
    wall = (
        f"; {meta['wall_seconds'] / 60:.0f} min of wall time, {runs_at_once(meta)}" if meta.get("wall_seconds") else ""
    )
    return [
        f"Sweep `{meta.get('tag')}` ({meta.get('experiments')} experiments{wall}), judged on the {split} split.",
        "",
        *pool_lines(pool_rows(df, meta.get("variants")), count_column(df)),
        f"![Fidelity against the unpaired pool size]({POOL_FIGURE.as_posix()})",
    ]
