"""The Markdown report: metrics with a plain-language reading, the sample grid, training curves
and the parameters of the run. Everything here reads files the stages wrote; nothing is recomputed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

# The curves each training stage logs, and what they show.
CURVES = {
    "fit_latent": (["train/mse"], "Autoencoder reconstruction MSE (training batches)"),
    "fit_matcher": (["critic/w1", "generator/loss"], "Matcher: critic's W1 estimate and generator loss"),
    "eval_net": (["train/loss", "train/accuracy"], "Evaluation net: loss and accuracy per epoch"),
}


def read_curve(live_dir: Path, name: str) -> pd.DataFrame | None:
    """A dvclive curve (`plots/metrics/<name>.tsv`: step and value), or None if not logged."""
    f = live_dir / "plots" / "metrics" / f"{name}.tsv"
    return pd.read_csv(f, sep="\t") if f.exists() else None


def plot_curves(live_dir: Path, names: list[str], title: str, out: Path) -> bool:
    curves = {n: c for n in names if (c := read_curve(live_dir, n)) is not None}
    if not curves:
        return False
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.2), squeeze=False)
    for ax, (name, df) in zip(axes[0], curves.items()):
        ax.plot(df["step"], df[name.split("/")[-1]], lw=1.2)
        ax.set(xlabel="step", title=name)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, reading) rows for the headline metrics, in reading order."""
    e, lat, net, mat = (metrics.get(k, {}) for k in ("eval", "latent", "evalnet", "matcher"))
    rows = [
        ("eval.label_accuracy", e.get("label_accuracy"),
         "share of generated samples the evaluation net classifies as their conditioning label"),
        ("eval.evalnet_accuracy_real_test", e.get("evalnet_accuracy_real_test"),
         "the evaluation net's accuracy on real test images: the ceiling it can certify"),
        ("eval.fid_evalnet", e.get("fid_evalnet"),
         "Fréchet distance, real test vs generated, in the evaluation net's 128-d feature space "
         "(not Inception; lower is better)"),
        ("eval.fid_evalnet_train_vs_test", e.get("fid_evalnet_train_vs_test"),
         "the same distance between two real sets (train vs test): the floor a perfect generator would reach"),
        ("eval.recon_mse_test", e.get("recon_mse_test"), "autoencoder reconstruction MSE per pixel on test images"),
        ("eval.recon_mae_test", e.get("recon_mae_test"), "E|y - D(E(y))| per pixel: the reconstruction term of the bound"),
        ("eval.throughput_images_per_s", e.get("throughput_images_per_s"),
         f"one-step generation speed (batch {e.get('throughput_batch_size')}, device {e.get('device')})"),
        ("latent.train_seconds", lat.get("train_seconds"), "autoencoder training time (s)"),
        ("matcher.train_seconds", mat.get("train_seconds"), f"matcher training time (s) on {mat.get('n_pairs')} pairs"),
        ("evalnet.test_accuracy", net.get("test_accuracy"), "evaluation net accuracy on real test images"),
    ]  # fmt: skip
    return [(k, _fmt(v), why) for k, v, why in rows if v is not None]


def render(metrics: dict[str, Any], params: dict[str, Any], figures: dict[str, str], samples: str | None) -> str:
    """The report as Markdown; `figures` maps a title to an image path relative to the report."""
    e = metrics.get("eval", {})
    split, data = params.get("split", {}), params.get("data", {})
    lines = [
        "# LSDM run report",
        "",
        f"Task **{params.get('task', 'class_conditional')}** on data source **{data.get('source')}**, "
        f"{split.get('n_paired_per_class')} paired images per class (split seed {split.get('seed')}); "
        f"the latent space is fitted on all {metrics.get('latent', {}).get('n_images')} training images, "
        f"the matcher on the {metrics.get('matcher', {}).get('n_pairs')} pairs only.",
        "",
        "## Metrics",
        "",
        "| metric | value | what it means |",
        "|---|---|---|",
        *[f"| `{k}` | {v} | {why} |" for k, v, why in metric_rows(metrics)],
        "",
    ]
    per_class = e.get("label_accuracy_per_class") or {}
    if per_class:
        lines += [
            "Label accuracy of generated samples per class:",
            "",
            "| " + " | ".join(per_class) + " |",
            "|" + "---|" * len(per_class),
            "| " + " | ".join(f"{v:.3f}" for v in per_class.values()) + " |",
            "",
        ]
    if samples:
        lines += ["## Samples", "", "One row per class, one column per noise draw.", "", f"![samples]({samples})", ""]
    if figures:
        lines += ["## Training curves", ""]
        lines += [f"**{title}**\n\n![{title}]({path})\n" for title, path in figures.items()]
    lines += ["## Parameters", "", "```yaml", yaml.safe_dump(params, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)
