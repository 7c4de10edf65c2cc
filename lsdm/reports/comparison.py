"""The comparison report (reports/comparison.md) from a sweep's tidy table (lsdm.orchestration.sweep).

Method (sampler) x paired count, mean ± std over split seeds, for every metric the table holds;
PNG plots (lsdm.reports.plots); the sample grids of the smallest count side by side; and a reading
generated from the numbers, which says where LSDM does not win as plainly as where it does. The
statistics behind every cell and verdict (paired differences over the same split seeds, 95%
t-intervals) are lsdm.reports.stats'; this module only writes them as Markdown.

`render` builds the Markdown from the table, the sweep's record and the names of the figures drawn;
`write_report` draws the figures, copies the grids and writes the file. `lsdm compare` (or
`run(params)`) rebuilds the report from results/sweep/sweep.parquet.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.evaluation.registry import DIRECTIONS
from lsdm.reports import plots
from lsdm.reports.stats import (
    PAIRED,
    POOL_METRICS,
    Sweep,
    gain_trend,
    has_numbers,
    judge,
    mean_by,
    metric_columns,
    pair_keys,
    pairs_per_count,
    pool_effects,
    pool_varies,
    runs_phrase,
    spread,
    verdicts,
    with_reference_gaps,
)

PLOTS = [  # the Plots section: (file, caption), in order
    (plots.FIDELITY_VS_PAIRS, "Fidelity against the number of pairs"),
    (plots.FID_VS_NFE, "FID against NFE (latent flow) with LSDM's one-step point"),
    (plots.THROUGHPUT, "Generation throughput"),
    (plots.BOUND_VS_PAIRS, "LSDM's bound, measured, against the number of pairs"),
]


def md_cell(text: Any) -> str:
    """`text` for a Markdown table cell: a label's own pipes (|recall − real recall|) escaped."""
    return str(text).replace("|", "\\|")


def mean_std(mean: float, std: float, n: int) -> str:
    """'12.3 ± 0.4' with digits by size; '(1 seed)' where there is no spread, '–' where there is no value."""
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 3 if abs(mean) < 10 else 2 if abs(mean) < 100 else 1
    s = f"{mean:.{digits}f}"
    if n > 1 and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s if n > 1 else s + " (1 seed)"


PSEUDO_COLUMNS = (
    ("accuracy", "right, of the unpaired pool"),
    ("coverage", "confident"),
    ("accuracy_confident", "right, of the confident"),
)
#: What labels the pool: stage pseudo_label's labels (column prefix `pseudo_`), then its image classifier.
PSEUDO_LABELLERS = (("pseudo_", "labels"), ("pseudo_classifier_", "image classifier"))


def pseudo_section(df: pd.DataFrame, count: str) -> list[str]:
    """The pseudo-labeller's quality per paired count, on LSDM's own runs (the class-aware marginal
    trains on its labels, the image filter asks its classifier): what the report's label-accuracy
    figures rest on."""
    if "pseudo_accuracy" not in df:
        return []
    rows = df[(df["sampler"] == "lsdm")].dropna(subset=["pseudo_accuracy"])
    if rows.empty:
        return []
    lines = [
        "## Pseudo-labels",
        "",
        "The class-aware marginal's labels for the unpaired pool (stage `pseudo_label`, from the pairs alone: "
        "label spreading, and with `pseudo.refine: gaussian` a Gaussian class model over it) and the image "
        "classifier trained on the confident ones (`sample.filter: image` asks it about LSDM's candidates), "
        "measured against the pool's true labels, which no stage trains on; mean ± std over LSDM's runs. "
        "Confident: at or above `pseudo.threshold`, the rows the class-aware critic sees.",
        "",
        f"| {count} | labeller | " + " | ".join(label for _, label in PSEUDO_COLUMNS) + " |",
        "|---|---|---|---|---|",
    ]
    for c, group in rows.groupby(count):
        for prefix, who in PSEUDO_LABELLERS:
            if group.get(f"{prefix}accuracy", pd.Series(dtype=float)).notna().any():
                cells = [
                    mean_std(group[prefix + col].mean(), group[prefix + col].std(), group[prefix + col].notna().sum())
                    for col, _ in PSEUDO_COLUMNS
                ]
                lines.append(f"| {int(c)} | {who} | " + " | ".join(cells) + " |")
    return lines + [""]


def metric_table(summary: pd.DataFrame, col: str, count: str, samplers: list[str]) -> str:
    counts = sorted(summary[count].dropna().unique())
    lines = ["| method | " + " | ".join(f"{int(c)}" for c in counts) + " |", "|---|" + "---|" * len(counts)]
    for s in samplers:
        cells = []
        for c in counts:
            r = summary[(summary["sampler"] == s) & (summary[count] == c)]
            cells.append(
                mean_std(r[f"{col}|mean"].iloc[0], r[f"{col}|std"].iloc[0], int(r[f"{col}|count"].iloc[0]))
                if len(r)
                else "–"
            )
        if any(x != "–" for x in cells):
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(df: pd.DataFrame, count: str, samplers: list[str]) -> list[str]:
    """LSDM minus every other sampler, per judged metric and paired count: the mean paired difference,
    its 95% t-interval and verdict in the metric's direction; † marks a verdict that does not survive
    the stricter test over split seeds alone (`stats.judge`)."""
    df = with_reference_gaps(df)
    labels = {c: (lab, h) for c, lab, h in metric_columns() if c in PAIRED and c in df}
    counts = sorted(df[count].dropna().unique())
    lines = [
        "| LSDM − | metric | " + " | ".join(f"{int(c)}" for c in counts) + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for other in [s for s in samplers if s != "lsdm"]:
        for col, (label, higher) in labels.items():
            cells = []
            for c in counts:
                j = judge(df, other, count, c, col, bool(higher))
                if j is None:
                    cells.append("–")
                    continue
                digits = 3 if abs(j.mean) < 1 else 2 if abs(j.mean) < 10 else 1
                cell = f"{j.mean:+.{digits}f} "
                if not math.isnan(j.half):
                    cell += f"[{j.mean - j.half:+.{digits}f}, {j.mean + j.half:+.{digits}f}] "
                cell += f"**{j.verdict}**" if j.verdict != "tie" else "tie"
                cells.append(cell + ("" if j.by_split else " †"))
            if any(x != "–" for x in cells):
                lines.append(f"| {other} | {md_cell(label)} | " + " | ".join(cells) + " |")
    return lines


# --- the reading -------------------------------------------------------------------------------------


def reading(df: pd.DataFrame, summary: pd.DataFrame, count: str, samplers: list[str]) -> list[str]:
    out: list[str] = []
    df = with_reference_gaps(df)
    primary = [(c, lab, h) for c, lab, h in metric_columns() if f"{c}|mean" in summary and c in PAIRED]
    if not primary:
        out.append(
            "No evaluation metrics were found in these experiments (only training times), so the table "
            "cannot say which method generates better samples yet."
        )
    if "lsdm" not in samplers:
        out.append("LSDM itself has no rows in this table, so nothing is compared against it.")
        return out
    n_seeds = pairs_per_count(df, count)
    paired_on = "split seed" if pair_keys(df) == ["seed"] else "split seed and training seed"
    if n_seeds < 2:
        out.append(
            f"Only {n_seeds} run per paired count: no interval over seeds, so every difference below is a "
            "single draw and could be noise (called a tie)."
        )
    else:
        out.append(
            f"Each verdict pairs the runs on the same {paired_on} ({runs_phrase(df, count)}): "
            "'better'/'worse' only where the 95% t-interval of the paired differences excludes zero."
        )
    for col, label, higher in primary:
        for other in [s for s in samplers if s != "lsdm"]:
            judged = verdicts(df, summary, count, other, col, higher)
            if not judged:
                continue
            wins = [v for v in judged if v[1] == "better"]
            losses = [v for v in judged if v[1] == "worse"]
            ties = [v for v in judged if v[1] == "tie"]
            parts = []
            if wins:
                parts.append("better at " + ", ".join(f"{int(c)} ({x:.3g} vs {y:.3g})" for c, _, x, y in wins))
            if losses:
                parts.append("**worse** at " + ", ".join(f"{int(c)} ({x:.3g} vs {y:.3g})" for c, _, x, y in losses))
            if ties:
                parts.append("within the seeds' spread at " + ", ".join(f"{int(c)}" for c, *_ in ties))
            out.append(f"{label}: LSDM vs {other}: " + "; ".join(parts) + ".")
    tp = "eval.throughput_images_per_s"
    if tp in df:
        t = mean_by(df, tp, "sampler")
        if "lsdm" in t:
            nfe = pd.to_numeric(df.groupby("sampler")["nfe"].first(), errors="coerce")
            flows = sorted((s for s in t.index if s.startswith("latent_flow")), key=lambda s: nfe[s])
            if flows:
                ratios = ", ".join(f"{t['lsdm'] / t[s]:.1f}x {s}" for s in flows)
                out.append(
                    f"Sampling speed: LSDM one-step at {t['lsdm']:.0f} images/s is {ratios} "
                    "(same batch size and device)."
                )
            if "pixel_wgan" in t and t["pixel_wgan"] > t["lsdm"]:
                out.append(
                    f"pixel_wgan samples faster than LSDM ({t['pixel_wgan']:.0f} vs {t['lsdm']:.0f} images/s): "
                    "it has no decoder; speed is not where LSDM wins against it."
                )
    if "train_seconds" in df:
        tr = mean_by(df, "train_seconds", "method")
        shared = float("nan")
        if "train_seconds_shared" in df:
            shared = pd.to_numeric(df["train_seconds_shared"], errors="coerce").mean()
        if len(tr):
            txt = ", ".join(f"{m} {v:.0f}s" for m, v in tr.items())
            note = "."
            if not math.isnan(shared):
                note = (
                    f"; LSDM's autoencoder ({shared:.0f}s on average) is trained once per latent pool and training "
                    "seed, and DVC's cache gives it to every run that shares both (the pool does not depend on "
                    "the pairs unless `split.n_unpaired` is set)."
                )
            out.append(f"Training time per run: {txt}{note}")
    return out


# --- the unpaired pool (the paper's first claim) ----------------------------------------------------


def pool_section(rows: pd.DataFrame, count: str, figures: set[str], link: str) -> list[str]:
    """The paper's claim 1, tested at fixed pairs: fidelity against the unpaired pool's size, the
    autoencoder's reconstruction error at each size, and the paired effect of all unpaired images."""
    lines = pool_lines(rows, count)
    if not lines:
        return []
    if plots.FIDELITY_VS_UNPAIRED in figures:
        lines += [f"![Fidelity against the unpaired pool size]({link}/{plots.FIDELITY_VS_UNPAIRED})", ""]
    return ["## Claim 1: what the unpaired images buy", "", *lines]


def pool_lines(rows: pd.DataFrame, count: str) -> list[str]:
    """The unpaired-pool table of `pool_rows`, the paired effects of all unpaired images and their
    reading (no figure)."""
    if not pool_varies(rows):
        return []
    labels = {c: label for c, label, _ in metric_columns()}
    lines = [
        "LSDM with the latent pool = the pairs plus *n* other training images (`split.n_unpaired`; nested: a "
        "larger pool holds every smaller one), the autoencoder trained for the same steps at every size. "
        "Cells: mean ± std over split seeds; reconstruction error: the autoencoder's MSE on the test images.",
        "",
    ]
    cols = [c for c in ["pool_size", "recon_test_mse", *POOL_METRICS] if has_numbers(rows, c)]
    names = {"pool_size": "pool size", "recon_test_mse": "recon MSE (test)", **labels}
    lines += [
        f"| {count.replace('_', ' ')} | unpaired | " + " | ".join(md_cell(names[c]) for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for (c, u), at in rows.groupby([count, "unpaired"]):
        cells = []
        for col in cols:
            v = pd.to_numeric(at[col], errors="coerce").dropna()
            if col == "pool_size" and v.nunique() == 1:  # a count, the same for every seed
                cells.append(f"{int(v.iloc[0])}")
                continue
            cells.append(mean_std(*spread(v)) if len(v) else "–")
        lines.append(f"| {int(c)} | {int(u)} | " + " | ".join(cells) + " |")
    lines.append("")
    effects = pool_effects(rows, count)
    if not effects.empty:
        lines += [
            "All unpaired images against none, paired by split seed (the same pairs), 95% t-interval:",
            "",
            f"| {count.replace('_', ' ')} | metric | all − none | 95% interval | verdict for all |",
            "|---|---|---|---|---|",
        ]
        for _, e in effects.iterrows():
            ci = "–" if math.isnan(e["half"]) else f"[{e['diff'] - e['half']:+.3g}, {e['diff'] + e['half']:+.3g}]"
            lines.append(
                f"| {int(e[count])} | {md_cell(e['label'])} | {e['diff']:+.3g} | {ci} (n = {e['n']}) | {e['verdict']} |"
            )
        lines += ["", "**Reading.** " + " ".join(pool_reading(effects, count)), ""]
    return lines


def pool_reading(effects: pd.DataFrame, count: str) -> list[str]:
    """Does the claim hold here: all unpaired images better than none, and by more when pairs are fewer?"""
    out = []
    for col in ["eval.fid_evalnet", "eval.coverage"]:
        e = effects[effects["metric"] == col].sort_values(count)
        if e.empty:
            continue
        label = e["label"].iloc[0]
        better = e[e["verdict"] == "better"]
        where = ", ".join(f"{int(c)}" for c in better[count]) or "no paired count"
        out.append(f"{label}: all unpaired images beat none at {where} ({len(e)} tested).")
        if len(e) > 1:
            g = gain_trend(e)
            out.append(
                f"The gain is {'larger' if g.larger else '**not larger**'} with fewer pairs ({g.few_gain:+.3g} at "
                f"{int(g.few[count])} vs {g.many_gain:+.3g} at {int(g.many[count])}; difference {g.mean:+.3g}, 95% "
                + ("interval excludes 0" if g.resolved else "interval includes 0: not resolved by these seeds")
                + ")."
            )
    return out


# --- the report --------------------------------------------------------------------------------------


def runs_at_once(meta: dict[str, Any]) -> str:
    """How a sweep's record says it ran: one run at a time, N at a time, or fanned out over the work pool."""
    if meta.get("fanout"):
        return f"fanned out as `{meta['fanout']}` flow runs"
    jobs = int(meta.get("jobs") or 1)
    return "one run at a time" if jobs == 1 else f"{jobs} runs at a time"


def grid_order(name: str) -> tuple[bool, str]:
    """Sample grids sort LSDM's (and its variants') first, then by file name."""
    return "evaluate__samples" not in name, name


def render(sweep: Sweep | None, meta: dict[str, Any], figures: set[str], grids: list[str], link: str) -> str:
    """The report's Markdown: `sweep` (None: no experiments), the sweep's record `meta`, the names of
    the figures drawn and of the sample grids copied, both linked under the folder `link`."""
    lines = ["# LSDM against the baselines" if meta.get("name") is None else f"# LSDM sweep `{meta['name']}`", ""]
    if sweep is None:
        return "\n".join(
            lines + ["No experiments found: run `make sweep` (python -m lsdm.orchestration.sweep) first.", ""]
        )
    df, count, samplers, summary = sweep.df, sweep.count, sweep.samplers, sweep.summary
    seeds = sorted(df["seed"].dropna().unique().tolist())
    lines += [
        f"Sweep `{meta.get('tag') or 'all experiments'}`: {df['experiment'].nunique()} experiments, "
        f"{count} ∈ {sorted(int(c) for c in df[count].dropna().unique())}, split seeds {seeds}; "
        f"methods: {', '.join(samplers)}. Every method is trained on the same paired subset of each run "
        "and judged by the same evaluation. Cells: mean ± std over "
        + ("split seeds." if pair_keys(df) == ["seed"] else "the runs (split seeds × training seeds)."),
        "",
    ]
    if "matcher" in df:  # which LSDM each row is: "LSDM" (the paper's) or "LSDM + marginal" (ours)
        named = df.dropna(subset=["matcher"]).groupby("sampler")["matcher"].first()
        if len(named):
            lines += ["LSDM matchers: " + "; ".join(f"`{s}` = {v}" for s, v in named.items()) + ".", ""]
    if meta.get("overrides"):
        every = ", ".join(f"`{k}={v}`" for k, v in meta["overrides"].items())
        lines += [f"Every run, beside the paired count and seed (params.yaml's `sweep.set`): {every}.", ""]
    if isinstance(meta.get("wall_seconds"), (int, float)):
        at_once = runs_at_once(meta)
        if meta.get("fanout"):
            at_once = (
                f"fanned out over the work pool's workers (`{meta['fanout']}`; shared stages "
                f"{meta.get('shared_seconds', 0) / 60:.1f} min, points {meta.get('points_seconds', 0) / 60:.1f} min)"
            )
        lines += [
            f"The sweep took {meta['wall_seconds'] / 60:.1f} minutes of wall time, {at_once} "
            "(queueing, every stage, collecting).",
            "",
        ]
    if meta.get("note"):  # what its record adds by hand: how it was run, if not by one `lsdm sweep`
        lines += [str(meta["note"]), ""]
    for s in meta.get("skipped") or []:
        lines.append(f"- **Skipped:** {s['reason']}.")
    failed = {n: s for n, s in (meta.get("status") or {}).items() if s not in ("Success", "COMPLETED")}
    for n, s in failed.items():
        where = "its flow run's logs" if meta.get("fanout") else f"`dvc queue logs {n}`"
        lines.append(f"- **Failed run:** `{n}` ({s}); see {where}.")
    if meta.get("skipped") or failed:
        lines.append("")
    lines += ["## Reading", ""] + [f"- {r}" for r in reading(df, summary, count, samplers)] + [""]
    lines += pseudo_section(df, count)
    if "lsdm" in samplers and len(samplers) > 1:
        keys = pair_keys(df)
        unit = "split seed" if keys == ["seed"] else "split seed and training seed"
        lines += [
            "## Paired differences",
            "",
            f"LSDM minus each method on the runs that share a {unit}, mean [95% t-interval]; a verdict in "
            "bold where the interval excludes zero, read in the metric's direction (lower FID, higher label "
            "accuracy, smaller gaps to the real recall and density are better for LSDM)."
            + (
                " † marks a verdict that does not survive the stricter test, the differences first averaged "
                "over the training seeds so that the split seeds alone are the unit."
                if keys != ["seed"]
                else ""
            ),
            "",
            *paired_table(df, count, samplers),
            "",
        ]
    lines += pool_section(sweep.pool, count, figures, link)

    lines += ["## Metrics by method and paired count", ""]
    for col, label, higher in metric_columns():
        if f"{col}|mean" not in summary:
            continue
        direction = DIRECTIONS["reference" if higher is None else "higher" if higher else "lower"]
        lines += [f"### {label} ({direction}; `{col}`)", "", metric_table(summary, col, count, samplers), ""]
    lines += ["## Plots", ""]
    for name, caption in PLOTS:
        if name in figures:
            lines += [f"![{caption}]({link}/{name})", ""]
        else:
            lines += [f"- {caption}: not drawn (the metrics it needs are not in the table).", ""]
    if grids:
        smallest = int(df[count].min())
        lines += [f"## Samples at the smallest paired count ({smallest})", ""]
        heads, cells = [], []
        for g in sorted(grids, key=grid_order):
            # results/evaluate/samples.png is LSDM's (a variant's: `<variant>__evaluate__...`); a
            # baseline's grid is named after its sampler
            lsdm = g.split("evaluate__samples")[0].removesuffix("__") or "lsdm"
            heads.append(lsdm if "evaluate__samples" in g else Path(g).stem.split("__")[-1])
            cells.append(f"![{Path(g).stem}]({link}/{g})")
        lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads), "| " + " | ".join(cells) + " |", ""]
    else:
        lines += ["No sample grids were found in the experiments.", ""]
    table = paths.sweep_dir(meta.get("name")) / "sweep.parquet"
    lines += ["## Data", "", f"The tidy table: `{table}` (and `.csv`), {len(df)} rows.", ""]
    return "\n".join(lines)


def write_report(df: pd.DataFrame, meta: dict[str, Any] | None = None, root: str | Path = ".") -> Path:
    """reports/comparison.md (or comparison-<name>.md) under `root`, with its figures folder drawn
    afresh and the sweep's sample grids (`meta["grids"]`, paths under `root`) copied into it."""
    from lsdm.io import atomic_path

    root, meta = Path(root), meta or {}
    report_path, figures = paths.comparison(meta.get("name"))
    folder = root / figures
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    sweep, drawn, grids = None, set(), []
    if not df.empty:
        sweep = Sweep.of(df, meta.get("variants"))
        drawn = plots.draw(sweep, folder)
        for g in [root / g for g in meta.get("grids") or [] if (root / g).exists()]:
            shutil.copy(g, folder / g.name)
            grids.append(g.name)
    with atomic_path(root / report_path) as tmp:
        tmp.write_text(render(sweep, meta, drawn, grids, figures.name))  # figures are linked relative to reports/
    return root / report_path


def run(params=None) -> None:
    """`lsdm compare`: the report from results/sweep/ (written by `python -m lsdm.orchestration.sweep`)."""
    from lsdm.io import read_json

    table, meta = paths.SWEEP_TABLE, paths.SWEEP_META
    if not table.exists():
        raise FileNotFoundError(f"{table}: no sweep table (run `make sweep` or `lsdm sweep` first)")
    print(f"compare: {write_report(pd.read_parquet(table), read_json(meta) if meta.exists() else {})}")
