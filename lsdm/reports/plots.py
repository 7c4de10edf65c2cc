"""The comparison report's figures (PNG), drawn from the statistics of lsdm.reports.stats: fidelity
against the number of pairs, FID against NFE for latent_flow with LSDM's one-step point, throughput,
LSDM's bound against the number of pairs, and fidelity against the unpaired pool's size.

Each `plot_*` returns the file it wrote, or None when the table lacks the metrics it needs;
`draw` writes all of them and says which it drew.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lsdm.reports.stats import POOL_METRICS, Sweep, has_numbers, metric_columns, pool_varies

FIDELITY = ["eval.fid_evalnet", "eval.label_accuracy", "eval.recall", "density_gap"]
BOUND_TERMS = [
    ("eval.bound.w1_pixel_exact", "W1 image joints (left side, measured)"),
    ("eval.bound.rhs", "Lip(D) · W1 latent + recon (right side)"),
    ("eval.bound.lip_times_w1", "Lip(D) · W1 latent joints"),
    ("eval.bound.recon_l2_test", "reconstruction E‖y − D(E(y))‖"),
]
# the figures' file names
FIDELITY_VS_PAIRS, FID_VS_NFE, THROUGHPUT = "fidelity_vs_pairs.png", "fid_vs_nfe.png", "throughput.png"
BOUND_VS_PAIRS, FIDELITY_VS_UNPAIRED = "bound_vs_pairs.png", "fidelity_vs_unpaired.png"


def draw(sweep: Sweep, folder: Path) -> set[str]:
    """Every figure of the report that `sweep`'s table allows, into `folder`; the names of those drawn
    (the pool's only where the pool's size varies)."""
    made = [
        plot_fidelity(sweep.summary, sweep.count, sweep.samplers, folder / FIDELITY_VS_PAIRS),
        plot_fid_vs_nfe(sweep.summary, sweep.count, folder / FID_VS_NFE),
        plot_throughput(sweep.df, sweep.samplers, folder / THROUGHPUT),
        plot_bound(sweep.df, sweep.count, folder / BOUND_VS_PAIRS),
        plot_pool(sweep.pool, sweep.count, folder / FIDELITY_VS_UNPAIRED) if pool_varies(sweep.pool) else None,
    ]
    return {p.name for p in made if p}


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    _plt().close(fig)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_axis(ax, values) -> None:
    """A log x axis ticked at `values` (the counts or NFEs the points sit at), labelled as plain numbers:
    over a short range matplotlib labels its minor log ticks as 3×10⁰, 4×10⁰, 6×10⁰, ..., and they overlap."""
    ticks = sorted({float(v) for v in values if pd.notna(v) and float(v) > 0})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xticks([], minor=True)


def plot_fidelity(summary: pd.DataFrame, count: str, samplers: list[str], out: Path) -> Path | None:
    cols = [c for c in FIDELITY if f"{c}|mean" in summary]
    if not cols:
        return None
    plt = _plt()
    labels = {c: label for c, label, _ in metric_columns()}
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for s in samplers:
            r = summary[summary["sampler"] == s].sort_values(count)
            r = r[r[f"{col}|mean"].notna()]
            if len(r):
                ax.errorbar(
                    r[count],
                    r[f"{col}|mean"],
                    yerr=r[f"{col}|std"].fillna(0),
                    marker="o",
                    capsize=3,
                    label=s,
                    lw=2.5 if s == "lsdm" else 1.2,
                )
        _log_axis(ax, summary.loc[summary["sampler"].isin(samplers), count])
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
        ax.errorbar(
            r["nfe"],
            r[col],
            yerr=r["eval.fid_evalnet|std"].fillna(0),
            marker="o",
            capsize=3,
            color=color,
            label=f"latent_flow, {int(c)} pairs",
        )
        one = summary[(summary["sampler"] == "lsdm") & (summary[count] == c) & summary[col].notna()]
        if len(one):
            ax.errorbar(
                [1],
                one[col],
                yerr=one["eval.fid_evalnet|std"].fillna(0),
                marker="*",
                ms=14,
                color=color,
                ls="none",
                label=f"LSDM one-step, {int(c)} pairs",
            )
    _log_axis(ax, [1, *flow["nfe"]])
    ax.set_xlabel("function evaluations per sample (NFE)")
    ax.set_ylabel("FID (evalnet features)")
    ax.set_title("Latent flow: FID against NFE; LSDM at NFE = 1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out)
    return out


def plot_bound(df: pd.DataFrame, count: str, out: Path) -> Path | None:
    """LSDM's bound measured (exact W1 on held-out data): both sides and the right side's terms
    against the number of pairs, mean ± std over split seeds."""
    terms = [(c, label) for c, label in BOUND_TERMS if has_numbers(df, c)]
    lsdm = df[df["sampler"] == "lsdm"]
    if len(terms) < 2 or lsdm.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for col, label in terms:
        g = pd.to_numeric(lsdm[col], errors="coerce").groupby(lsdm[count]).agg(["mean", "std"]).dropna(subset=["mean"])
        ax.errorbar(
            g.index,
            g["mean"],
            yerr=g["std"].fillna(0),
            marker="o",
            capsize=3,
            label=label,
            lw=2.5 if col == "eval.bound.w1_pixel_exact" else 1.2,
        )
    _log_axis(ax, lsdm[count])
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
    ax.bar(
        range(len(vals)),
        vals["mean"],
        yerr=vals["std"].fillna(0),
        capsize=3,
        color=["C3" if s == "lsdm" else "C0" for s in vals.index],
    )
    ax.set_xticks(range(len(vals)), vals.index, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("images / s")
    ax.set_title("Generation throughput (mean over runs)")
    _save(fig, out)
    return out


def plot_pool(rows: pd.DataFrame, count: str, out: Path) -> Path | None:
    cols = [c for c in POOL_METRICS if has_numbers(rows, c)]
    if rows.empty or not cols:
        return None
    plt = _plt()
    labels = {c: label for c, label, _ in metric_columns()}
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        for c, at in rows.groupby(count):
            g = (
                pd.to_numeric(at[col], errors="coerce")
                .groupby(at["unpaired"])
                .agg(["mean", "std"])
                .dropna(subset=["mean"])
            )
            ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=f"{int(c)} pairs")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("unpaired images in the latent pool")
        ax.set_title(labels.get(col, col), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, title=count.replace("_", " "), title_fontsize=7)
    fig.suptitle("LSDM against the size of the unpaired pool (mean ± std over split seeds; same autoencoder budget)")
    _save(fig, out)
    return out
