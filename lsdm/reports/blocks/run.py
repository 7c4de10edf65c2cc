"""The blocks of single runs: the default run's metrics and the paper's bound (results/evaluate/), and
the super-resolution task at two encoder widths (results/superres/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsdm.evaluation.registry import BY_KEY, get, read_results
from lsdm.paths import EVAL_DETAILS, EVAL_DIR, EVAL_METRICS
from lsdm.reports.blocks.formatting import better, duration, listed, num, provenance
from lsdm.reports.blocks.registry import block, read

# --- the default run ---------------------------------------------------------------------------------

DEFAULT_METRICS = (
    ("label_accuracy", 3),
    ("fid_evalnet", 2),
    ("precision", 3),
    ("recall", 3),
    ("density", 3),
    ("coverage", 3),
)


@block("default-run", EVAL_METRICS, EVAL_DETAILS)
def default_run(root: Path) -> list[str]:
    e = read_results(root / EVAL_DIR)["eval"]
    seeds = e.get("seeds") or []
    lines = [
        f"{str(e.get('split')).capitalize()} split, {e['n_samples']:,} images; the headline at generation seed {seeds[0]}, beside it the mean "
        f"± std over the seeds {seeds}:",
        "",
        "| metric | headline | over seeds | real data |",
        "|---|---|---|---|",
    ]
    for key, digits in DEFAULT_METRICS:
        m, over = BY_KEY[key], get(e, f"over_seeds.{key}") or {}
        spread = f"{num(over.get('mean'), digits)} ± {num(over.get('std'), digits)}" if over else "–"
        real = get(e, m.reference) if m.reference else None
        lines.append(f"| {m.label} | {num(e.get(key), digits)} | {spread} | {num(real, digits)} |")
    times = e.get("stage_seconds") or {}
    if times:
        lines += [
            "",
            "Stage compute times of this run: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(times.items(), key=lambda kv: -kv[1]))
            + ".",
        ]
    return lines


@block("bound", EVAL_METRICS, EVAL_DETAILS)
def bound(root: Path) -> list[str]:
    """The paper's bound, both sides measured on the default run's test images."""
    b = read_results(root / EVAL_DIR)["eval"]["bound"]
    holds = "it holds" if b["holds"] else "**it does not hold**"
    pm = lambda k: f" ± {b[k + '_std']:.2f}" if b.get(k + "_std") is not None else ""  # noqa: E731
    sampled = (
        (
            f" (± std over {b['bootstrap']} bootstrap resamplings of the test points; the bound held in "
            f"{b['holds_fraction']:.0%} of them)"
        )
        if b.get("bootstrap")
        else ""
    )
    return [
        f"The bound on the test images, exact W1 ({b['convention']}): left side W1(image joints) = "
        f"{b['w1_pixel_exact']:.2f}{pm('w1_pixel_exact')}; right side {b['rhs']:.2f}{pm('rhs')} = Lip(D) "
        f"{b['decoder_lipschitz_spectral_max']:.2f} × W1(latent joints) {b['w1_latent_exact']:.2f}"
        f"{pm('w1_latent_exact')} + reconstruction {b['recon_l2_test']:.2f} — {holds}{sampled}, "
        f"the left side at {b['w1_pixel_exact'] / b['rhs']:.2f} of the right (Lip(D) is a lower estimate). The "
        f"critic's own W1 estimate, a memorisation diagnostic and no term of the bound: "
        f"{b['critic_w1_test']:.2f} held out vs {b['critic_w1_train_pairs']:.2f} on its training pairs."
    ]


# --- super-resolution --------------------------------------------------------------------------------

SR_FILES = ("results/superres/encoder_width_8.json", "results/superres/encoder_width_16.json")
SR_COLUMNS = {
    "lsdm": "LSDM back-projected onto its input ({})",
    "lsdm_raw": "LSDM raw D(G(x, eta))",
    "bicubic": "bicubic",
}
SR_ROWS = (
    ("fid_evalnet", "FID (evalnet)", 1),
    ("psnr", "PSNR (dB)", 1),
    ("ssim", "SSIM", 3),
    ("consistency_psnr", "consistency PSNR (dB)", 1),
    ("label_accuracy", "label accuracy of outputs", 3),
)


@block("superres", *SR_FILES)
def superres(root: Path) -> list[str]:
    runs = [read(root, f) for f in SR_FILES]
    first = runs[0]
    real = first.get("real_reference") or {}
    cols = [c for c in SR_COLUMNS if all(c in r["columns"] for r in runs)]  # no raw column without back-projection
    bp = f"`sr.back_projection: {first['sr']['back_projection']}`"
    lines = [
        "Cells: "
        + " | ".join(SR_COLUMNS[c].format(bp) for c in cols)
        + f"; on the {first['n_test']:,} test images, generation seed {first['generation_seed']}, "
        f"{first['n_paired_per_class']} pairs per class, `sr.factor: {first['sr']['factor']}`:",
        "",
        "| metric | " + " | ".join(f"`sr.encoder_width: {r['sr']['encoder_width']}`" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for key, label, digits in SR_ROWS:
        cells = [" \\| ".join(num(r["columns"][c][key], digits) for c in cols) for r in runs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    dc = [
        " \\| ".join(f"{num(r['columns'][c]['density'], 2)} / {num(r['columns'][c]['coverage'], 2)}" for c in cols)
        for r in runs
    ]
    lines += [
        f"| density / coverage (real: {num(real.get('density'), 2)} / {num(real.get('coverage'), 2)}) | "
        + " | ".join(dc)
        + " |",
        "",
    ]
    lines.append(" ".join(sr_reading(runs)))
    lines.append("")
    for r in runs:
        lines.append(f"- `sr.encoder_width: {r['sr']['encoder_width']}`: {sr_timing(r)}")
    return lines


def sr_timing(r: dict[str, Any]) -> str:
    stages = [s for s in r["stages"] if s["status"] == "ran"]  # in graph order
    ran = ", ".join(f"{s['stage']} {s['seconds']:.0f} s" for s in stages)
    what = (
        "a fresh copy (empty DVC cache), every stage"
        if r.get("fresh")
        else "after the previous width in the same copy, DVC reran only " + ", ".join(s["stage"] for s in stages)
    )
    return f"{what}: {duration(r['wall_seconds'])} ({ran}); {provenance(r)}."


def sr_reading(runs: list[dict[str, Any]]) -> list[str]:
    """What the table says, in words: back-projection and raw against bicubic at the first width,
    then each further width against the first (LSDM back-projected)."""
    out = []
    real_density = (runs[0].get("real_reference") or {}).get("density")
    c = runs[0]["columns"]
    lsdm, raw, bic = c["lsdm"], c.get("lsdm_raw"), c["bicubic"]
    beats = [BY_KEY[k].label for k, _, d in SR_ROWS[:3] if raw and better(k, raw[k], bic[k], digits=d)]
    cons = raw["consistency_psnr"] - bic["consistency_psnr"] if raw else 0.0
    if raw:
        out.append(
            f"At `sr.encoder_width: {runs[0]['sr']['encoder_width']}`, raw samples beat bicubic on "
            f"{listed(beats) or 'none of FID, PSNR and SSIM'}, and are {abs(cons):.1f} dB "
            f"{'more' if cons > 0 else 'less'} consistent with their input; back-projection changes "
            f"consistency by {lsdm['consistency_psnr'] - raw['consistency_psnr']:+.1f} dB, PSNR by "
            f"{lsdm['psnr'] - raw['psnr']:+.1f} dB and FID by {lsdm['fid_evalnet'] - raw['fid_evalnet']:+.1f}."
        )
    shown = {k: digits for k, _, digits in SR_ROWS} | {"density": 2, "coverage": 2}
    for r in runs[1:]:
        w = r["columns"]["lsdm"]
        verdicts = {k: better(k, w[k], lsdm[k], real_density, d) for k, d in shown.items()}
        up = [BY_KEY[k].label for k, v in verdicts.items() if v]
        down = [BY_KEY[k].label for k, v in verdicts.items() if v is False]
        out.append(
            f"`sr.encoder_width: {r['sr']['encoder_width']}` against {runs[0]['sr']['encoder_width']}, "
            f"back-projected (one training run and one generation seed each, so small differences may be "
            f"noise): better on {listed(up) or 'nothing'}" + (f"; worse on {listed(down)}" if down else "") + "."
        )
    return out
