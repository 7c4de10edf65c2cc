"""The comparison report (reports/comparison.md) from a sweep's tidy table (lsdm.orchestration.sweep).

Method (sampler) x paired count, mean ± std over split seeds, for every metric the table holds;
PNG plots (fidelity against the number of pairs; FID against NFE for latent_flow with LSDM's
one-step point; throughput); the sample grids of the smallest count side by side; and a reading
generated from the numbers, which says where LSDM does not win as plainly as where it does.
Methods are compared on the same paired subsets: per split seed the difference of a metric between
LSDM and the other method, then its mean and 95% t-interval over the seeds; a difference is called a
win or a loss only when that interval excludes zero. Density is judged by its distance to the real
reference (≈ 1: samples neither crowd nor thin out), not by "higher is better". The metrics, labels
and directions are the registry's (`lsdm.evaluation.registry`).

`lsdm compare` (or `run(params)`) rebuilds the report from results/sweep/sweep.parquet.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.evaluation import registry
from lsdm.evaluation.registry import DIRECTIONS, Metric



def md_cell(text: Any) -> str:
    """`text` for a Markdown table cell: a label's own pipes (|recall − real recall|) escaped."""
    return str(text).replace("|", "\\|")


def gap_column(m: Metric) -> str:
    """The column judging a metric whose ideal is its real reference: |value − reference|."""
    return f"{m.key.replace('.', '_')}_gap"


def metric_columns() -> list[tuple[str, str, bool | None]]:
    """(column, label, higher is better; None: closer to the real reference) in display order, from the
    registry's compared metrics; each judged against its real reference is followed by its gap column."""
    out: list[tuple[str, str, bool | None]] = []
    for m in registry.METRICS:
        if m.compared:
            out.append((m.column, m.label, m.higher))
            if m.direction == "reference" and m.reference:
                out.append((gap_column(m), f"|{m.label} − real {m.label}|", False))
    return out + [("train_seconds", "training time (s)", False)]


# Only those present in a table are shown (the functions below ask `metric_columns()` afresh).
METRICS: list[tuple[str, str, bool | None]] = metric_columns()
FIDELITY = ["eval.fid_evalnet", "eval.label_accuracy", "eval.recall", "density_gap"]
PAIRED = ["eval.fid_evalnet", "eval.label_accuracy", "recall_gap", "density_gap"]  # judged in the reading
METHOD_ORDER = ["lsdm", "lsdm_paired_only", "pixel_wgan", "latent_flow", "bicubic"]


def _count_col(df: pd.DataFrame) -> str:
    """The paired count the sweep varied: per class when the data has classes (the judge then reports
    label accuracy), else in all; whichever one varies across the experiments wins."""
    varied = [c for c in ("n_paired_per_class", "n_paired") if c in df and df[c].nunique() > 1]
    if varied:
        return varied[0]
    labelled = "eval.label_accuracy" in df and pd.to_numeric(df["eval.label_accuracy"], errors="coerce").notna().any()
    per_class = "n_paired_per_class" in df and df["n_paired_per_class"].notna().any()
    return "n_paired_per_class" if per_class and (labelled or "n_paired" not in df) else "n_paired"


def _sampler_order(df: pd.DataFrame) -> list[str]:
    def key(s: str):
        method = df.loc[df["sampler"] == s, "method"].iloc[0]
        nfe = df.loc[df["sampler"] == s, "nfe"].iloc[0]
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else 0.5  # a sweep variant: LSDM's
        nfe = pd.to_numeric(nfe, errors="coerce")
        return rank, 0 if pd.isna(nfe) else float(nfe), s

    return sorted(df["sampler"].unique(), key=key)


def with_reference_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Add each gap column (`density_gap` = |density − the real reference's density|, ...), the
    reference being the one LSDM's evaluate measured in the same experiment (every method there is
    judged on the same set)."""
    for m in registry.METRICS:
        ref = f"eval.{m.reference}"
        if m.direction != "reference" or not m.reference or m.column not in df or ref not in df:
            continue
        real = pd.to_numeric(df[ref], errors="coerce").groupby(df["experiment"]).transform("first")
        df = df.assign(**{gap_column(m): (pd.to_numeric(df[m.column], errors="coerce") - real).abs()})
    return df


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and number of seeds per (sampler, count) for every metric present."""
    df = with_reference_gaps(df)
    count = _count_col(df)
    cols = [c for c, _, _ in metric_columns() if c in df and pd.to_numeric(df[c], errors="coerce").notna().any()]
    num = df[["sampler", "method", "nfe", count, *cols]].copy()
    for c in cols:
        num[c] = pd.to_numeric(num[c], errors="coerce")
    g = num.groupby(["sampler", "method", "nfe", count], dropna=False)[cols]
    out = g.agg(["mean", "std", "count"])
    out.columns = [f"{c}|{s}" for c, s in out.columns]
    return out.reset_index()


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 3 if abs(mean) < 10 else 2 if abs(mean) < 100 else 1
    s = f"{mean:.{digits}f}"
    if n > 1 and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s if n > 1 else s + " (1 seed)"


def metric_table(summary: pd.DataFrame, col: str, count: str, samplers: list[str]) -> str:
    counts = sorted(summary[count].dropna().unique())
    lines = ["| method | " + " | ".join(f"{int(c)}" for c in counts) + " |", "|---|" + "---|" * len(counts)]
    for s in samplers:
        cells = []
        for c in counts:
            r = summary[(summary["sampler"] == s) & (summary[count] == c)]
            cells.append(
                _fmt(r[f"{col}|mean"].iloc[0], r[f"{col}|std"].iloc[0], int(r[f"{col}|count"].iloc[0])) if len(r) else "–"
            )
        if any(x != "–" for x in cells):
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- plots -----------------------------------------------------------------------------------------


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fidelity(summary: pd.DataFrame, count: str, samplers: list[str], out: Path) -> Path | None:
    cols = [c for c in FIDELITY if f"{c}|mean" in summary]
    if not cols:
        return None
    plt = _plt()
    labels = {c: l for c, l, _ in metric_columns()}
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for s in samplers:
            r = summary[summary["sampler"] == s].sort_values(count)
            r = r[r[f"{col}|mean"].notna()]
            if len(r):
                ax.errorbar(r[count], r[f"{col}|mean"], yerr=r[f"{col}|std"].fillna(0), marker="o", capsize=3, label=s,
                            lw=2.5 if s == "lsdm" else 1.2)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(count.replace("_", " "))
        ax.set_title(labels[col])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fidelity against the number of pairs (mean ± std over seeds)")
    _save(fig, out)
    return out


def plot_fid_vs_nfe(summary: pd.DataFrame, count: str, out: Path) -> Path | None:
    col = "eval.fid_evalnet|mean"
    if col not in summary:
        return None
    flow = summary[(summary["method"] == "latent_flow") & summary[col].notna()]
    if flow.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(sorted(flow[count].unique())):
        r = flow[flow[count] == c].sort_values("nfe")
        color = colors[i % len(colors)]
        ax.errorbar(r["nfe"], r[col], yerr=r["eval.fid_evalnet|std"].fillna(0), marker="o", capsize=3, color=color,
                    label=f"latent_flow, {int(c)} pairs")  # fmt: skip
        one = summary[(summary["sampler"] == "lsdm") & (summary[count] == c) & summary[col].notna()]
        if len(one):
            ax.errorbar([1], one[col], yerr=one["eval.fid_evalnet|std"].fillna(0), marker="*", ms=14, color=color,
                        ls="none", label=f"LSDM one-step, {int(c)} pairs")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("function evaluations per sample (NFE)")
    ax.set_ylabel("FID (evalnet features)")
    ax.set_title("Latent flow: FID against NFE; LSDM at NFE = 1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out)
    return out


BOUND_TERMS = [("eval.bound.w1_pixel_exact", "W1 image joints (left side, measured)"),
               ("eval.bound.rhs", "Lip(D) · W1 latent + recon (right side)"),
               ("eval.bound.lip_times_w1", "Lip(D) · W1 latent joints"),
               ("eval.bound.recon_l2_test", "reconstruction E‖y − D(E(y))‖")]


def plot_bound(df: pd.DataFrame, count: str, out: Path) -> Path | None:
    """LSDM's bound measured (exact W1 on held-out data): both sides and the right side's terms
    against the number of pairs, mean ± std over split seeds."""
    terms = [(c, label) for c, label in BOUND_TERMS if c in df and pd.to_numeric(df[c], errors="coerce").notna().any()]
    lsdm = df[df["sampler"] == "lsdm"]
    if len(terms) < 2 or lsdm.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for col, label in terms:
        g = pd.to_numeric(lsdm[col], errors="coerce").groupby(lsdm[count]).agg(["mean", "std"]).dropna(subset=["mean"])
        ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=label,
                    lw=2.5 if col == "eval.bound.w1_pixel_exact" else 1.2)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(count.replace("_", " "))
    ax.set_title("LSDM's bound on held-out data (exact W1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out)
    return out


def plot_throughput(df: pd.DataFrame, samplers: list[str], out: Path) -> Path | None:
    col = "eval.throughput_images_per_s"
    if col not in df or pd.to_numeric(df[col], errors="coerce").isna().all():
        return None
    plt = _plt()
    vals = pd.to_numeric(df[col], errors="coerce").groupby(df["sampler"]).agg(["mean", "std"])
    vals = vals.loc[[s for s in samplers if s in vals.index and not math.isnan(vals.loc[s, "mean"])]]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(vals)), 3.6))
    ax.bar(range(len(vals)), vals["mean"], yerr=vals["std"].fillna(0), capsize=3,
           color=["C3" if s == "lsdm" else "C0" for s in vals.index])  # fmt: skip
    ax.set_xticks(range(len(vals)), vals.index, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("images / s")
    ax.set_title("Generation throughput (mean over runs)")
    _save(fig, out)
    return out


# --- the reading -------------------------------------------------------------------------------------


def _cell(summary, sampler, count_col, c, col):
    r = summary[(summary["sampler"] == sampler) & (summary[count_col] == c)]
    if r.empty or f"{col}|mean" not in r or pd.isna(r[f"{col}|mean"].iloc[0]):
        return None
    std = r[f"{col}|std"].iloc[0]
    return float(r[f"{col}|mean"].iloc[0]), 0.0 if pd.isna(std) else float(std), int(r[f"{col}|count"].iloc[0])


def pair_keys(df: pd.DataFrame) -> list[str]:
    """What makes two runs a pair: the split seed (the same pairs), and the training seed when a sweep
    had several."""
    trained = "train_seed" in df and df["train_seed"].nunique() > 1
    return ["seed", "train_seed"] if trained else ["seed"]


def paired_difference(df: pd.DataFrame, a: str, b: str, count: str, c, col: str,
                      by_split: bool = False) -> tuple[float, float, int] | None:  # fmt: skip
    """Mean of a − b over the (split seed, training seed) runs both samplers had at count c (the same
    pairs), the half-width of its 95% t-interval (nan for one pair) and the number of pairs; None if
    they share none. `by_split`: the differences are first averaged over the training seeds, so the
    split seeds alone are the unit (the runs of one split share its pairs: the stricter test)."""
    rows, keys = df[df[count] == c], pair_keys(df)
    va, vb = (pd.to_numeric(rows[rows["sampler"] == s].set_index(keys)[col], errors="coerce") for s in (a, b))
    d = (va - vb).dropna()
    if by_split and len(keys) > 1:
        d = d.groupby(level="seed").mean()
    mean, half, n = _t_interval(d)
    return None if n == 0 else (mean, half, n)


def paired_table(df: pd.DataFrame, count: str, samplers: list[str]) -> list[str]:
    """LSDM minus every other sampler, per judged metric and paired count: the mean paired difference,
    its 95% t-interval and verdict in the metric's direction; † marks a verdict that does not survive
    the stricter test over split seeds alone (`paired_difference(by_split=True)`)."""
    df = with_reference_gaps(df)
    labels = {c: (lab, h) for c, lab, h in metric_columns() if c in PAIRED and c in df}
    counts = sorted(df[count].dropna().unique())
    lines = ["| LSDM − | metric | " + " | ".join(f"{int(c)}" for c in counts) + " |", "|---|---|" + "---|" * len(counts)]
    strict = pair_keys(df) != ["seed"]
    for other in [s for s in samplers if s != "lsdm"]:
        for col, (label, higher) in labels.items():
            cells = []
            for c in counts:
                d = paired_difference(df, "lsdm", other, count, c, col)
                if d is None:
                    cells.append("–")
                    continue
                mean, half, n = d
                verdict = paired_verdict(mean, half, bool(higher))
                digits = 3 if abs(mean) < 1 else 2 if abs(mean) < 10 else 1
                cell = f"{mean:+.{digits}f} "
                if not math.isnan(half):
                    cell += f"[{mean - half:+.{digits}f}, {mean + half:+.{digits}f}] "
                cell += f"**{verdict}**" if verdict != "tie" else "tie"
                if strict and verdict != "tie":
                    m2, h2, _ = paired_difference(df, "lsdm", other, count, c, col, by_split=True)
                    cell += "" if paired_verdict(m2, h2, bool(higher)) == verdict else " †"
                cells.append(cell)
            if any(x != "–" for x in cells):
                lines.append(f"| {other} | {md_cell(label)} | " + " | ".join(cells) + " |")
    return lines


def paired_verdict(mean: float, half: float, higher: bool) -> str:
    """'better' / 'worse' when the 95% interval of the paired difference excludes 0, else 'tie'."""
    if math.isnan(half) or abs(mean) <= half:
        return "tie"
    return "better" if (mean > 0) == higher else "worse"


def reading(df: pd.DataFrame, summary: pd.DataFrame, count: str, samplers: list[str]) -> list[str]:
    out: list[str] = []
    df = with_reference_gaps(df)
    primary = [(c, lab, h) for c, lab, h in metric_columns() if f"{c}|mean" in summary and c in PAIRED]
    counts = sorted(summary[count].dropna().unique())
    if not primary:
        out.append("No evaluation metrics were found in these experiments (only training times), so the table "
                   "cannot say which method generates better samples yet.")  # fmt: skip
    if "lsdm" not in samplers:
        out.append("LSDM itself has no rows in this table, so nothing is compared against it.")
        return out
    keys = pair_keys(df)
    n_seeds = int(df.groupby(count)[keys].apply(lambda g: len(g.drop_duplicates())).min()) if "seed" in df else 1
    paired_on = "split seed" if keys == ["seed"] else "split seed and training seed"
    if n_seeds < 2:
        out.append(f"Only {n_seeds} run per paired count: no interval over seeds, so every difference below is a "
                   "single draw and could be noise (called a tie).")  # fmt: skip
    else:
        out.append(f"Each verdict pairs the runs on the same {paired_on} ({n_seeds} pairs per count): "
                   "'better'/'worse' only where the 95% t-interval of the paired differences excludes zero.")  # fmt: skip
    for col, label, higher in primary:
        for other in [s for s in samplers if s != "lsdm"]:
            verdicts = []
            for c in counts:
                a, b = _cell(summary, "lsdm", count, c, col), _cell(summary, other, count, c, col)
                d = paired_difference(df, "lsdm", other, count, c, col)
                if a and b and d:
                    verdicts.append((c, paired_verdict(d[0], d[1], higher), a[0], b[0]))
            if not verdicts:
                continue
            wins = [v for v in verdicts if v[1] == "better"]
            losses = [v for v in verdicts if v[1] == "worse"]
            ties = [v for v in verdicts if v[1] == "tie"]
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
        t = pd.to_numeric(df[tp], errors="coerce").groupby(df["sampler"]).mean().dropna()
        if "lsdm" in t:
            nfe = pd.to_numeric(df.groupby("sampler")["nfe"].first(), errors="coerce")
            flows = sorted((s for s in t.index if s.startswith("latent_flow")), key=lambda s: nfe[s])
            if flows:
                ratios = ", ".join(f"{t['lsdm'] / t[s]:.1f}x {s}" for s in flows)
                out.append(f"Sampling speed: LSDM one-step at {t['lsdm']:.0f} images/s is {ratios} "
                           "(same batch size and device).")  # fmt: skip
            if "pixel_wgan" in t and t["pixel_wgan"] > t["lsdm"]:
                out.append(f"pixel_wgan samples faster than LSDM ({t['pixel_wgan']:.0f} vs {t['lsdm']:.0f} images/s): "
                           "it has no decoder; speed is not where LSDM wins against it.")  # fmt: skip
    if "train_seconds" in df:
        tr = pd.to_numeric(df["train_seconds"], errors="coerce").groupby(df["method"]).mean().dropna()
        shared = float("nan")
        if "train_seconds_shared" in df:
            shared = pd.to_numeric(df["train_seconds_shared"], errors="coerce").mean()
        if len(tr):
            txt = ", ".join(f"{m} {v:.0f}s" for m, v in tr.items())
            note = "."
            if not math.isnan(shared):
                note = (f"; LSDM's autoencoder ({shared:.0f}s on average) is trained once per latent pool and training "
                        "seed, and DVC's cache gives it to every run that shares both (the pool does not depend on "
                        "the pairs unless `split.n_unpaired` is set).")  # fmt: skip
            out.append(f"Training time per run: {txt}{note}")
    return out


# --- the unpaired pool (the paper's first claim) ----------------------------------------------------

POOL_METRICS = ["eval.fid_evalnet", "eval.coverage", "recall_gap", "density_gap", "eval.label_accuracy"]


def pool_rows(df: pd.DataFrame, variants: dict[str, dict] | None = None) -> pd.DataFrame:
    """LSDM's rows that differ only in the size of the latent pool's unpaired part, with `unpaired`:
    how many unpaired images the pool held (the main runs, `n_unpaired` null, hold all the others).

    A row counts when it is LSDM's own or a variant that sets `split.n_unpaired` and nothing else (the
    sweep's metadata says; without it, any sampler with a finite `n_unpaired`)."""
    need = {"pool_size", "n_unpaired", "seed"}
    if not need <= set(df):
        return df.iloc[0:0]
    only_pool = {v for v, ov in (variants or {}).items() if set(ov) == {"split.n_unpaired"}}
    finite = df["n_unpaired"].notna() & (df["sampler"].isin(only_pool) if variants else True)
    rows = df[df["pool_size"].notna() & (((df["sampler"] == "lsdm") & df["n_unpaired"].isna()) | finite)].copy()
    if rows["n_unpaired"].notna().sum() == 0:
        return rows.iloc[0:0]
    count = _count_col(df)
    rows["pool_size"] = pd.to_numeric(rows["pool_size"], errors="coerce")
    given = rows.dropna(subset=["n_unpaired"])
    pairs = (given["pool_size"] - pd.to_numeric(given["n_unpaired"])).groupby([given[count], given["seed"]]).first()
    key = pd.MultiIndex.from_frame(rows[[count, "seed"]])
    rows["unpaired"] = pd.to_numeric(rows["n_unpaired"]).fillna(rows["pool_size"] - pairs.reindex(key).to_numpy())
    return with_reference_gaps(rows.dropna(subset=["unpaired"]))


def _t_interval(d: pd.Series) -> tuple[float, float, int]:
    """Mean, 95% t half-width (nan for one value) and n of paired differences."""
    from scipy import stats

    d = d.dropna()
    n = len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(d.mean()) if n else float("nan"), half, n


def pool_effects(rows: pd.DataFrame, count: str) -> pd.DataFrame:
    """Per paired count and metric: the largest pool minus no unpaired images, paired over split seeds
    (same pairs), its 95% t-interval and verdict in the metric's direction."""
    labels = {c: (lab, h) for c, lab, h in metric_columns()}
    out = []
    for c, at in rows.groupby(count):
        lo, hi = at["unpaired"].min(), at["unpaired"].max()
        if lo != 0 or hi == lo:
            continue
        keys = [at[k] for k in pair_keys(rows)]
        for col in [m for m in POOL_METRICS if m in at]:
            v = pd.to_numeric(at[col], errors="coerce")
            diff = v[at["unpaired"] == hi].groupby(keys).mean() - v[at["unpaired"] == 0].groupby(keys).mean()
            mean, half, n = _t_interval(diff)
            if n:
                out.append({count: c, "metric": col, "label": labels[col][0], "higher": labels[col][1], "unpaired": hi,
                            "diff": mean, "half": half, "n": n, "verdict": paired_verdict(mean, half, labels[col][1]),
                            "per_seed": diff.dropna()})  # fmt: skip
    return pd.DataFrame(out)


def plot_pool(rows: pd.DataFrame, count: str, out: Path) -> Path | None:
    cols = [c for c in POOL_METRICS if c in rows and pd.to_numeric(rows[c], errors="coerce").notna().any()]
    if rows.empty or not cols:
        return None
    plt = _plt()
    labels = {c: l for c, l, _ in metric_columns()}
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for c, at in rows.groupby(count):
            g = pd.to_numeric(at[col], errors="coerce").groupby(at["unpaired"]).agg(["mean", "std"]).dropna(subset=["mean"])
            ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=f"{int(c)} pairs")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("unpaired images in the latent pool")
        ax.set_title(labels.get(col, col), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, title=count.replace("_", " "), title_fontsize=7)
    fig.suptitle("LSDM against the size of the unpaired pool (mean ± std over split seeds; same autoencoder budget)")
    _save(fig, out)
    return out


def pool_section(df: pd.DataFrame, meta: dict, figs: Path, link: str) -> list[str]:
    """The paper's claim 1, tested at fixed pairs: fidelity against the unpaired pool's size, the
    autoencoder's reconstruction error at each size, and the paired effect of all unpaired images."""
    rows, count = pool_rows(df, meta.get("variants")), _count_col(df)
    lines = pool_lines(rows, count)
    if not lines:
        return []
    made = plot_pool(rows, count, figs / "fidelity_vs_unpaired.png")
    if made:
        lines += [f"![Fidelity against the unpaired pool size]({link}/fidelity_vs_unpaired.png)", ""]
    return ["## Claim 1: what the unpaired images buy", "", *lines]


def pool_lines(rows: pd.DataFrame, count: str) -> list[str]:
    """The unpaired-pool table of `pool_rows`, the paired effects of all unpaired images and their
    reading (no figure)."""
    if rows.empty or rows["unpaired"].nunique() < 2:
        return []
    labels = {c: l for c, l, _ in metric_columns()}
    lines = ["LSDM with the latent pool = the pairs plus *n* other training images (`split.n_unpaired`; nested: a "
             "larger pool holds every smaller one), the autoencoder trained for the same steps at every size. "
             "Cells: mean ± std over split seeds; reconstruction error: the autoencoder's MSE on the test images.", ""]  # fmt: skip
    cols = [c for c in ["pool_size", "recon_test_mse", *POOL_METRICS] if c in rows and pd.to_numeric(rows[c], errors="coerce").notna().any()]
    names = {"pool_size": "pool size", "recon_test_mse": "recon MSE (test)", **labels}
    lines += [f"| {count.replace('_', ' ')} | unpaired | " + " | ".join(md_cell(names[c]) for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for (c, u), at in rows.groupby([count, "unpaired"]):
        cells = []
        for col in cols:
            v = pd.to_numeric(at[col], errors="coerce").dropna()
            if col == "pool_size" and v.nunique() == 1:  # a count, the same for every seed
                cells.append(f"{int(v.iloc[0])}")
                continue
            cells.append(_fmt(float(v.mean()), float(v.std()) if len(v) > 1 else float("nan"), len(v)) if len(v) else "–")
        lines.append(f"| {int(c)} | {int(u)} | " + " | ".join(cells) + " |")
    lines.append("")
    effects = pool_effects(rows, count)
    if not effects.empty:
        lines += ["All unpaired images against none, paired by split seed (the same pairs), 95% t-interval:", "",
                  f"| {count.replace('_', ' ')} | metric | all − none | 95% interval | verdict for all |", "|---|---|---|---|---|"]  # fmt: skip
        for _, e in effects.iterrows():
            ci = "–" if math.isnan(e["half"]) else f"[{e['diff'] - e['half']:+.3g}, {e['diff'] + e['half']:+.3g}]"
            lines.append(f"| {int(e[count])} | {md_cell(e['label'])} | {e['diff']:+.3g} | {ci} (n = {e['n']}) | {e['verdict']} |")
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
            few, many = e.iloc[0], e.iloc[-1]
            gain = (lambda r, v: v if r["higher"] else -v)  # improvement, in the metric's direction  # noqa: E731
            mean, half, n = _t_interval(gain(few, few["per_seed"]) - gain(many, many["per_seed"]))
            larger = gain(few, few["diff"]) > gain(many, many["diff"])
            sure = not math.isnan(half) and abs(mean) > half
            out.append(f"The gain is {'larger' if larger else '**not larger**'} with fewer pairs ({gain(few, few['diff']):+.3g} at "
                       f"{int(few[count])} vs {gain(many, many['diff']):+.3g} at {int(many[count])}; difference {mean:+.3g}, 95% "
                       + ("interval excludes 0" if sure else "interval includes 0: not resolved by these seeds")
                       + ").")  # fmt: skip
    return out


# --- the report --------------------------------------------------------------------------------------


def runs_at_once(meta: dict[str, Any]) -> str:
    """How a sweep's record says it ran: one run at a time, N at a time, or fanned out over the work pool."""
    if meta.get("fanout"):
        return f"fanned out as `{meta['fanout']}` flow runs"
    jobs = int(meta.get("jobs") or 1)
    return "one run at a time" if jobs == 1 else f"{jobs} runs at a time"


def write_report(df: pd.DataFrame, meta: dict[str, Any] | None = None, root: str | Path = ".") -> Path:
    from lsdm.io import atomic_path

    root, meta = Path(root), meta or {}
    report_path, figures = paths.comparison(meta.get("name"))
    link = figures.name  # figures are linked relative to reports/
    figs = root / figures
    if figs.exists():
        shutil.rmtree(figs)
    figs.mkdir(parents=True)
    lines = ["# LSDM against the baselines" if meta.get("name") is None else f"# LSDM sweep `{meta['name']}`", ""]
    if df.empty:
        lines += ["No experiments found: run `make sweep` (python -m lsdm.orchestration.sweep) first.", ""]
        with atomic_path(root / report_path) as tmp:
            tmp.write_text("\n".join(lines))
        return root / report_path
    count = _count_col(df)
    samplers = _sampler_order(df)
    summary = summarise(df)
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
            at_once = (f"fanned out over the work pool's workers (`{meta['fanout']}`; shared stages "
                       f"{meta.get('shared_seconds', 0) / 60:.1f} min, points {meta.get('points_seconds', 0) / 60:.1f} min)")
        lines += [f"The sweep took {meta['wall_seconds'] / 60:.1f} minutes of wall time, {at_once} "
                  "(queueing, every stage, collecting).", ""]  # fmt: skip
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
    if "lsdm" in samplers and len(samplers) > 1:
        keys = pair_keys(df)
        unit = "split seed" if keys == ["seed"] else "split seed and training seed"
        lines += ["## Paired differences", "",
                  f"LSDM minus each method on the runs that share a {unit}, mean [95% t-interval]; a verdict in "
                  "bold where the interval excludes zero, read in the metric's direction (lower FID, higher label "
                  "accuracy, smaller gaps to the real recall and density are better for LSDM)."
                  + (" † marks a verdict that does not survive the stricter test, the differences first averaged "
                     "over the training seeds so that the split seeds alone are the unit." if keys != ["seed"] else ""),
                  "", *paired_table(df, count, samplers), ""]  # fmt: skip
    lines += pool_section(df, meta, figs, link)

    lines += ["## Metrics by method and paired count", ""]
    for col, label, higher in metric_columns():
        if f"{col}|mean" not in summary:
            continue
        direction = DIRECTIONS["reference" if higher is None else "higher" if higher else "lower"]
        lines += [f"### {label} ({direction}; `{col}`)", "",
                  metric_table(summary, col, count, samplers), ""]  # fmt: skip
    lines += ["## Plots", ""]
    for fn, name, caption in [
        (lambda p: plot_fidelity(summary, count, samplers, p), "fidelity_vs_pairs.png",
         "Fidelity against the number of pairs"),
        (lambda p: plot_fid_vs_nfe(summary, count, p), "fid_vs_nfe.png",
         "FID against NFE (latent flow) with LSDM's one-step point"),
        (lambda p: plot_throughput(df, samplers, p), "throughput.png", "Generation throughput"),
        (lambda p: plot_bound(df, count, p), "bound_vs_pairs.png", "LSDM's bound, measured, against the number of pairs"),
    ]:
        made = fn(figs / name)
        if made:
            lines += [f"![{caption}]({link}/{name})", ""]
        else:
            lines += [f"- {caption}: not drawn (the metrics it needs are not in the table).", ""]
    grids = [root / g for g in meta.get("grids") or [] if (root / g).exists()]
    if grids:
        smallest = int(df[count].min())
        lines += [f"## Samples at the smallest paired count ({smallest})", ""]
        heads, cells = [], []
        grids.sort(key=lambda g: ("evaluate__samples" not in g.name, g.name))  # LSDM (and its variants) first
        for g in grids:
            shutil.copy(g, figs / g.name)
            # results/evaluate/samples.png is LSDM's (a variant's: `<variant>__evaluate__...`); a
            # baseline's grid is named after its sampler
            lsdm = g.name.split("evaluate__samples")[0].removesuffix("__") or "lsdm"
            heads.append(lsdm if "evaluate__samples" in g.name else g.stem.split("__")[-1])
            cells.append(f"![{g.stem}]({link}/{g.name})")
        lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads), "| " + " | ".join(cells) + " |", ""]
    else:
        lines += ["No sample grids were found in the experiments.", ""]
    table = paths.sweep_dir(meta.get("name")) / "sweep.parquet"
    lines += ["## Data", "", f"The tidy table: `{table}` (and `.csv`), {len(df)} rows.", ""]
    with atomic_path(root / report_path) as tmp:
        tmp.write_text("\n".join(lines))
    return root / report_path


def run(params=None) -> None:
    """`lsdm compare`: the report from results/sweep/ (written by `python -m lsdm.orchestration.sweep`)."""
    from lsdm.io import read_json
    table, meta = paths.SWEEP_TABLE, paths.SWEEP_META
    if not table.exists():
        raise FileNotFoundError(f"{table}: no sweep table (run `make sweep` or `lsdm sweep` first)")
    print(f"compare: {write_report(pd.read_parquet(table), read_json(meta) if meta.exists() else {})}")
