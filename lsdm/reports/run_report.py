"""The Markdown report: metrics with a plain-language reading, the sample grid, training curves
and the parameters of the run. Everything here reads files the stages wrote; nothing is recomputed.
Which metrics, their labels, readings and directions: `lsdm.evaluation.registry`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import yaml

from lsdm.evaluation.registry import BY_KEY, Metric, get, section
from lsdm.tasks import Task

# The curves each training stage logs, and what they show.
CURVES = {
    "fit_latent": (["train/mse"], "Autoencoder reconstruction MSE (training batches)"),
    "fit_matcher": (
        ["critic/w1", "critic/w1_marginal", "generator/loss"],
        "Matcher: the critic's W1 estimates (joint; marginal, when weighted) and generator loss",
    ),
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


def plot_prdc_vs_k(tsv: Path, out: Path) -> bool:
    """Precision/recall/density/coverage against the neighbourhood size k (evaluate's plots TSV)."""
    if not tsv.exists():
        return False
    df = pd.read_csv(tsv, sep="\t")
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for col in ("precision", "recall", "density", "coverage"):
        ax.plot(df["k"], df[col], marker="o", ms=3, lw=1.2, label=col)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="k (nearest neighbours defining each ball)", title="Geometric fidelity vs k (evalnet features)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def _pm(spread: dict | None) -> str:
    """'mean ± std (n)' of a metric over evaluation seeds, or '—'."""
    if not spread or spread.get("mean") is None:
        return "—"
    if spread.get("std") is None:
        return f"{spread['mean']:.4g} (1 seed)"
    return f"{spread['mean']:.4g} ± {spread['std']:.2g} ({spread['n']} seeds)"


def _with_std(e: dict, m: Metric) -> Any:
    v, std = get(e, m.key), e.get(m.std_key) if m.std_key else None
    if isinstance(v, float) and isinstance(std, float):
        return f"{v:.4g} ± {std:.2g}"
    return _fmt(v)


def _reading(m: Metric) -> str:
    """The registry's reading and its direction, for the tables that judge samples."""
    return f"{m.reading}; {m.direction_text}"


def distribution_rows(e: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(metric, headline value, mean ± std over seeds, real reference, reading) rows, one per registry
    metric of the distribution section that the run recorded."""
    spread = e.get("over_seeds", {})
    rows = []
    for m in section("distribution"):
        if get(e, m.key, KeyError) is KeyError:
            continue
        value = "not computed" if get(e, m.key) is None else _with_std(e, m)
        real = get(e, m.reference) if m.reference else None
        rows.append((m.column, value, _pm(spread.get(m.key)), _fmt(real), _reading(m)))
    return rows


def skipped_notes(metrics: dict[str, Any]) -> list[str]:
    """What `prepare` left out of the data (`results/prepare/metrics.json`)."""
    n = (metrics.get("prepare") or {}).get("n_skipped")
    if not n:
        return []
    return [
        f"**{n} unreadable image files were skipped** by `prepare` (`data.on_corrupt: skip`; the console "
        "output names them): every number here is on the images that could be read."
    ]


def unavailable_notes(e: dict[str, Any]) -> list[str]:
    """Plain sentences for each metric that could not be computed, and why."""
    notes = []
    rerun = "then rerun `dvc repro -f -s evaluate` (DVC does not watch weight files)"
    if e.get("fid_inception") is None and "inception_reason" in e:
        notes.append(
            f"**Inception FID/KID were not computed**: {e.get('inception_reason')}. No number is shown rather than "
            "one from another network: the FID and KID above use the evaluation net's features and say so in "
            "their names. To get the standard Inception FID, run `lsdm weights fetch inception` (it downloads "
            "clean-fid's `inception-2015-12-05.pt`, checked, into `$XDG_CACHE_HOME/lsdm`, `~/.cache/lsdm` by "
            "default; `--from FILE` installs a copy downloaded elsewhere), or point `evaluate.inception_weights` "
            f"at the file, {rerun}."
        )
    if e.get("lpips_diversity") is None and "lpips_reason" in e:
        notes.append(
            f"**LPIPS was not computed**: {e.get('lpips_reason')}. The evaluation-net feature diversity above "
            "measures the same thing without pretrained weights. To get LPIPS, run `lsdm weights fetch lpips` "
            "(torchvision's ImageNet weights for `evaluate.lpips_net`, checked, into `$TORCH_HOME/hub/checkpoints`), "
            f"{rerun}."
        )
    if e.get("fid_note"):
        notes.append(f"**FID on a small set**: {e['fid_note']}.")
    pc_note = (e.get("per_class") or {}).get("note")
    if pc_note:
        notes.append(f"Per-class distances: {pc_note}.")
    return notes


def _sampling(e: dict[str, Any], side: str) -> str:
    std = get(e, f"bound.{side}_std")
    return (
        ""
        if std is None
        else f"; ± {_fmt(std)} (std over {get(e, 'bound.bootstrap')} bootstrap resamplings of the test points)"
    )


def _held(e: dict[str, Any]) -> str:
    frac = get(e, "bound.holds_fraction")
    return (
        ""
        if frac is None
        else f"; it held in {frac:.0%} of the resamplings, the right side {_fmt(get(e, 'bound.rhs') / get(e, 'bound.w1_pixel_exact'))}x the left"
    )


# What a reading cannot say in advance: figures of the run, appended to a metric's registry reading.
NOTES = {
    "bound.decoder_lipschitz_spectral_max": lambda e: (
        f"{get(e, 'bound.decoder_lipschitz_n_points')} latents probed; median "
        f"{_fmt(get(e, 'bound.decoder_jacobian_spectral_median'))}, largest Frobenius norm "
        f"{_fmt(get(e, 'bound.decoder_jacobian_frobenius_max'))}"
    ),
    "bound.rhs": lambda e: (
        f"= {_fmt(get(e, 'bound.lip_times_w1'))} + {_fmt(get(e, 'bound.recon_l2_test'))}; "
        f"W1 {get(e, 'bound.convention')}{_sampling(e, 'rhs')}"
    ),
    "bound.w1_pixel_exact": lambda e: (
        (
            "**the bound holds here**"
            if get(e, "bound.holds")
            else "**the bound does not hold here**: Lip(D) is estimated from below"
        )
        + _sampling(e, "w1_pixel_exact")
        + _held(e)
    ),
    "throughput_images_per_s": lambda e: f"batch {e.get('throughput_batch_size')} on device {e.get('device')}",
}


def _rows(e: dict[str, Any], metrics, fallback: dict[str, Any] | None = None, missing: str | None = None):
    """(name, value, reading) rows for registry metrics; a missing value is skipped, or shown as `missing`."""
    rows = []
    for m in metrics:
        v = get(e, m.key)
        if v is None and fallback:
            v = fallback.get(m.key)
        if v is None and missing is None:
            continue
        note = f" ({NOTES[m.key](e)})" if m.key in NOTES else ""
        rows.append((m.column, missing if v is None else _fmt(v), m.reading + note))
    return rows


def bound_rows(e: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The three terms of the LSDM bound (DESIGN.md) side by side, with readings."""
    if not e.get("bound"):
        return []
    return _rows(e, [m for m in section("bound") if m.key.startswith("bound.")])


def speed_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    e, lat, net, mat = (metrics.get(k, {}) for k in ("eval", "latent", "evalnet", "matcher"))
    # a stage's time comes from evaluate's collection, else from the stage's own summary; else "not recorded"
    own = {
        f"stage_seconds.{s}": d.get("train_seconds")
        for s, d in (("fit_latent", lat), ("fit_matcher", mat), ("eval_net", net))
    }
    return _rows(e, section("speed"), fallback=own, missing="not recorded")


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, reading) rows for the other figures: the registry's, then the training stages' own."""
    e, lat, net = (metrics.get(k, {}) for k in ("eval", "latent", "evalnet"))
    stages = [
        ("latent.test_mse", lat.get("test_mse"), "reconstruction MSE reported by fit_latent"),
        (
            "evalnet.test_accuracy",
            net.get("test_accuracy"),
            "evaluation net accuracy on real test images (eval_net stage)",
        ),
    ]
    return _rows(e, section("other")) + [(k, _fmt(v), why) for k, v, why in stages if v is not None]


def _table(header: list[str], rows: list[tuple]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join([f"`{r[0]}`", *map(str, r[1:])]) + " |" for r in rows],
        "",
    ]


def per_class_lines(e: dict[str, Any]) -> list[str]:
    acc = e.get("label_accuracy_per_class") or {}
    if not acc:
        return []
    pc = e.get("per_class") or {}
    fids, kids = pc.get("fid_evalnet") or {}, pc.get("kid_evalnet") or {}
    rows = [("label accuracy", *(_fmt(acc[c]) for c in acc))]
    if any(v is not None for v in kids.values()):
        rows.append(("KID (evalnet)", *(_fmt(kids.get(c)) for c in acc)))
    if any(v is not None for v in fids.values()):
        rows.append(("FID (evalnet)", *(_fmt(fids.get(c)) for c in acc)))
    return [
        "Per class (headline seed; — = too few images for that metric):",
        "",
        "| class | " + " | ".join(acc) + " |",
        "|---|" + "---|" * len(acc),
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def task_lines(e: dict[str, Any], task: Task) -> list[str]:
    """The task's own section: LSDM beside its reference baselines (and any columns the task adds),
    all judged on the same test set in the same run, over the metrics the task names."""
    refs = e.get("references") or {}
    if not task.title or not refs:
        return []
    columns = {"LSDM": e, **task.report_columns(e), **refs}
    metrics = [BY_KEY[k] for k in task.report_metrics if any(k in c for c in columns.values())]
    rows = [(m.key, *(_fmt(c.get(m.key)) for c in columns.values()), _reading(m)) for m in metrics]
    return [
        f"### {task.title}: LSDM vs {', '.join(refs)}",
        "",
        task.report_note(e),
        "",
        *_table(["metric", *columns, "what it means"], rows),
    ]


#: How each `pseudo.refine` labels the pool, in the reports' words.
PSEUDO_METHODS = {
    "none": "label spreading from the pairs alone",
    "gaussian": "label spreading from the pairs alone, then a Gaussian model per class fitted to the confident labels",
}


def sampling_lines(sample: dict, has_classes: bool) -> list[str]:
    """How LSDM drew its samples, where it was not the plain one-step draw (`sample.candidates` > 1)."""
    k = sample.get("candidates", 1)
    if k <= 1 or not has_classes:
        return []
    judge = (
        "the pseudo-labeller's image classifier (a LeNet trained on the pool images with confident "
        "pseudo-labels) says decodes to the asked class"
        if sample.get("filter", "image") == "image"
        else "a Gaussian class model of the latents (fitted to the pairs and the confident pseudo-labels) gives the "
        "asked class"
    )
    return [
        f"Sampling: **filtered draw** — of {k} noise vectors per sample, the first whose code {judge} with "
        f"probability ≥ {sample.get('accept')} is decoded, else the likeliest (`sample.candidates`, "
        f"`sample.accept`, `sample.filter: {sample.get('filter', 'image')}`; 1 candidate = the plain one-step "
        "draw). A sample stops drawing once one is accepted.",
        "",
    ]


def pseudo_label_lines(pseudo: dict | None, matcher: dict, settings: dict) -> list[str]:
    """The pseudo-labeller's measured quality, where the class-aware term used it (`settings`: the
    run's `pseudo` params)."""
    q = (pseudo or {}).get("unpaired")
    if not q or not matcher.get("n_pseudo"):
        return []
    threshold, method = settings.get("threshold"), PSEUDO_METHODS[settings.get("refine", "none")]
    return [
        f"Pseudo-labels (stage `pseudo_label`, {method}): on the {q['n']} unpaired "
        f"pool images, accuracy {q['accuracy']:.3f}; {q['coverage']:.0%} have confidence >= "
        f"{threshold} and are {q['accuracy_confident']:.3f} right ({matcher['n_pseudo']} pool latents, "
        "pairs included, enter the class-aware term). Measured with the pool's true labels, which reach no fit.",
        "",
    ] + classifier_lines(pseudo.get("classifier"), threshold)


def classifier_lines(q: dict | None, threshold: float) -> list[str]:
    """The pseudo-labeller's image classifier (the image filter's judge), measured as its labels are."""
    if not q:
        return []
    return [
        f"Its image classifier (trained on the confident ones): accuracy {q['accuracy']:.3f} on the same images; "
        f"{q['coverage']:.0%} at confidence >= {threshold}, {q['accuracy_confident']:.3f} right.",
        "",
    ]


def render(
    metrics: dict[str, Any], params: dict[str, Any], figures: dict[str, str], samples: str | None, task: Task
) -> str:
    """The report as Markdown; `figures` maps a title to an image path relative to the report."""
    e = metrics.get("eval", {})
    split, data = params.get("split", {}), params.get("data", {})
    seeds = e.get("seeds") or params.get("evaluate", {}).get("seeds") or []
    matcher = metrics.get("matcher", {})
    held_out = e.get("split", "test")
    lines = [
        "# LSDM run report",
        "",
        f'Matcher: **{matcher.get("variant", "LSDM")}** — "LSDM" is the paper\'s method (the matching stage '
        'sees the pairs only), "LSDM + marginal" ours (G\'s codes pooled over conditions also match the '
        f"latents of all {matcher.get('n_pool') or 'the'} pool images; weight `matcher.marginal_weight`), "
        '"LSDM + class-aware marginal" also matches (y, G(y)) to the pool latents whose pseudo-label y is '
        "confident (weight `matcher.class_weight`).",
        "",
        *sampling_lines(params.get("sample", {}), e.get("label_accuracy") is not None),
        *pseudo_label_lines(metrics.get("pseudo"), matcher, params.get("pseudo", {})),
        f"Task **{params.get('task', 'class_conditional')}** on data source **{data.get('source')}**, "
        + (
            f"{split.get('n_paired_per_class')} paired images per class"
            if e.get("label_accuracy") is not None
            else f"{metrics.get('matcher', {}).get('n_pairs')} pairs"
        )
        + f" (split seed {split.get('seed')}); "
        f"the latent space is fitted on all {metrics.get('latent', {}).get('n_images')} training images, "
        f"the matcher on the {metrics.get('matcher', {}).get('n_pairs')} pairs only.",
        "",
        "## Metrics",
        "",
        f"Every number below is computed on the **{held_out}** split"
        + (
            " (held-out images never used to choose any setting; judged once)."
            if held_out == "test"
            else " (held out of every fit; used to choose settings, so not a final score)."
        )
        + f" One generated sample per real {held_out} image ({e.get('n_samples')} images), conditioned on "
        f"{task.condition_text}. "
        f"Values are for noise seed {seeds[0] if seeds else '?'}; the next column repeats the metric over "
        f"{len(seeds)} seeds (mean ± std), so a difference between two runs smaller than the std is noise. "
        "The real reference is the same metric between two sets of real images (a training sample vs the test "
        "set): what a perfect generator would score.",
        "",
        *_table(["metric", "value", "over seeds", "real reference", "what it means"], distribution_rows(e)),
        *[f"{n}\n" for n in unavailable_notes(e) + skipped_notes(metrics)],
        *per_class_lines(e),
        *task_lines(e, task),
        "### The bound, measured",
        "",
        "LSDM's guarantee: W1(real joint, generated joint) ≤ Lip(D) · W1(latent joints) + E‖y − D(E(y))‖. "
        "Both W1 are exact (optimal transport on the held-out images, one generated sample each, "
        f"{get(e, 'bound.convention') or 'per class, averaged'}), in the same norms (Euclidean on pixels in "
        "[0, 1] and on the standardised latent); the left side is measured, not assumed. The critic's own "
        "W1 estimates follow as a diagnostic:",
        "",
        *_table(["term", "value", "what it means"], bound_rows(e)),
        "### Speed",
        "",
        *_table(["metric", "value", "what it means"], speed_rows(metrics)),
        "### Other figures",
        "",
        *_table(["metric", "value", "what it means"], metric_rows(metrics)),
    ]
    if samples:
        lines += ["## Samples", "", task.samples_layout, "", f"![samples]({samples})", ""]
    if figures:
        lines += ["## Curves", ""]
        lines += [f"**{title}**\n\n![{title}]({path})\n" for title, path in figures.items()]
    lines += ["## Parameters", "", "```yaml", yaml.safe_dump(params, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)
