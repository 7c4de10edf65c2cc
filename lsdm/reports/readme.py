"""The figures of the README and the docs site, rendered from the committed files that hold them.

A part of README.md or of a page under docs/ between `<!-- generated: NAME -->` and
`<!-- /generated: NAME -->` belongs to this module: `BLOCKS[NAME]` names its source files and renders
its Markdown from them, ending with a line that names those files. Each block lives in exactly one of
those pages. A figure in such a block therefore always says where it comes from, and cannot drift from
it unnoticed: `python -m lsdm.reports.readme --check` (run by tests/test_readme.py) exits 1 listing
every block whose text is not what its files give. Without `--check` the blocks are rewritten in place
(`make readme`); text outside them is never touched. An image a block shows is linked relative to its
page (`reports/...` from README.md, `../reports/...` from docs/), so GitHub and the MkDocs site
(docs/hooks.py) both find it.

Numbers are formatted here, never typed into a page: to change a figure, change (rerun) what writes
its file, then `make readme`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm.evaluation.registry import BY_KEY, get, read_results
from lsdm.io import atomic_path
from lsdm.reports import ladder
from lsdm.reports.comparison import mean_std, paired_table, pool_lines, reading, runs_at_once
from lsdm.reports.stats import count_column, judge, pair_keys, pool_rows, runs_phrase, sampler_order, summarise

README = Path("README.md")
DOCS = Path("docs")
OPEN, CLOSE = "<!-- generated: {} -->", "<!-- /generated: {} -->"
_BLOCK = re.compile(r"<!-- generated: (?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /generated: (?P=name) -->", re.S)
_MARKER = re.compile(r"<!-- /?generated: ([\w.-]+) -->")
_RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)")  # a Markdown link target relative to the page


@dataclass(frozen=True)
class Block:
    """One generated part of a page: the files it is rendered from, and how."""

    sources: tuple[str, ...]
    render: Callable[[Path], list[str]]  # the repository root -> Markdown lines (without the source line)


# --- formatting --------------------------------------------------------------------------------------


def num(x: float | None, digits: int) -> str:
    """A figure with `digits` decimals and thousands separators; '–' where there is none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def duration(seconds: float) -> str:
    """'4 min 07 s' above a minute, else '47 s'."""
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def short(commit: str | None) -> str:
    return f"`{commit[:7]}`" if commit else "an unrecorded commit"


def provenance(doc: dict[str, Any]) -> str:
    """Where a benchmark's figures were measured: command, commit, date, machine, load."""
    m = doc.get("machine") or {}
    dirty = " with uncommitted changes" if doc.get("dirty") else ""
    parts = [
        f"`{doc['command']}`" if doc.get("command") else None,
        f"at commit {short(doc.get('commit'))}{dirty}",
        (doc.get("date") or "")[:10] or None,
    ]
    if m.get("cores"):
        parts.append(f"{m['cores']} cores")
    if m.get("load_average_at_start"):
        parts.append(f"load average {m['load_average_at_start'][0]:.1f} at the start")
    if m.get("threads_env"):
        parts.append(f"`LSDM_THREADS={m['threads_env']}`")
    return ", ".join(p for p in parts if p)


def transcribed(doc: dict[str, Any]) -> str | None:
    """The warning a transcribed (not re-measured) figure file carries into a page."""
    if not doc.get("transcribed_from"):
        return None
    what = f"`{doc['command']}`" if doc.get("command") else "the run"
    at = f" at commit {short(doc.get('measured_at_commit'))}" if doc.get("measured_at_commit") else ""
    note = f" {doc['note']}" if doc.get("note") else ""
    return (
        f"*Transcribed, not re-measured:* the figures the {doc['transcribed_from']} stated for {what}{at}"
        f" ({doc.get('date', 'date not recorded')}).{note}"
    )


def listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def read(root: Path, rel: str) -> Any:
    path = root / rel
    if not path.exists():
        raise FileNotFoundError(f"{rel}: a generated block's source file is missing")
    return json.loads(path.read_text())


def better(metric: str, a: float, b: float, reference: float | None = None, digits: int | None = None) -> bool | None:
    """Whether `a` is better than `b` in the registry's direction for `metric` (None: equal, or equal
    at the `digits` a page shows them with)."""
    m = BY_KEY[metric]
    if digits is not None:
        a, b = round(a, digits), round(b, digits)
    if m.direction == "reference":
        a, b = -abs(a - reference), -abs(b - reference)
    elif m.direction == "lower":
        a, b = -a, -b
    return None if a == b else a > b


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


# --- the shipped sweep -------------------------------------------------------------------------------

SWEEP_TABLE, SWEEP_META = "results/sweep/sweep.parquet", "results/sweep/sweep.json"


def sweep_table(root: Path, table: str, meta: str) -> tuple[pd.DataFrame, dict]:
    """A sweep's tidy table and record, or FileNotFoundError naming the missing one."""
    if not (root / table).exists():
        raise FileNotFoundError(f"{table}: a generated block's source file is missing")
    return pd.read_parquet(root / table), read(root, meta)


SWEEP_METRICS = ("eval.fid_evalnet", "eval.label_accuracy", "eval.recall", "eval.density")
FLOW_NFE = (1, 10, 100)  # latent flow's rows in the docs (the report has every NFE)
READING_AGAINST = (
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
#: shipped sweep's cells and matchers): its samplers as the shipped sweep's table names them beside its own.
IMAGE_FILTER_TABLE, IMAGE_FILTER_META = (
    "results/sweep-image_filter/sweep.parquet",
    "results/sweep-image_filter/sweep.json",
)
IMAGE_FILTER_SAMPLERS = {"lsdm": "lsdm_image_filter", "lsdm_strict": "lsdm_image_strict"}
IMAGE_FILTER_AGAINST = ("lsdm", "lsdm_paper", "latent_flow_nfe10")


def image_filter_test(root: Path) -> list[str]:
    """The image filter on the test split: its runs (sweep `image_filter`) beside the shipped sweep's, the
    same cells, split and training seeds, and matchers trained alike: the means per count, then each
    image-filter sampler minus LSDM (latent filter), the paper's LSDM and the flow at NFE 10 in label
    accuracy, paired on (split seed, training seed)."""
    from lsdm.reports.stats import paired_difference, paired_verdict

    shipped, meta = sweep_table(root, SWEEP_TABLE, SWEEP_META)
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
        f"Test split, mean over the runs (split seeds × training seeds) of sweep `image_filter` and the shipped sweep "
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


POOL_TABLE, POOL_META = "results/sweep-unpaired_pool/sweep.parquet", "results/sweep-unpaired_pool/sweep.json"


def unpaired_pool(root: Path) -> list[str]:
    """The paper's first claim, from the named sweep `unpaired_pool` (reports/comparison-unpaired_pool.md)."""
    path = root / POOL_TABLE
    if not path.exists():
        raise FileNotFoundError(f"{POOL_TABLE}: a generated block's source file is missing")
    df, meta = pd.read_parquet(path), read(root, POOL_META)
    split = " / ".join(sorted(df["eval.split"].dropna().astype(str).unique())) if "eval.split" in df else "(unrecorded)"
    wall = (
        f"; {meta['wall_seconds'] / 60:.0f} min of wall time, {runs_at_once(meta)}" if meta.get("wall_seconds") else ""
    )
    return [
        f"Sweep `{meta.get('tag')}` ({meta.get('experiments')} experiments{wall}), judged on the {split} split.",
        "",
        *pool_lines(pool_rows(df, meta.get("variants")), count_column(df)),
        "![Fidelity against the unpaired pool size](reports/comparison-unpaired_pool/fidelity_vs_unpaired.png)",
    ]


# --- the default run ---------------------------------------------------------------------------------

EVAL_FILES = ("results/evaluate/metrics.json", "results/evaluate/details.json")
DEFAULT_METRICS = (
    ("label_accuracy", 3),
    ("fid_evalnet", 2),
    ("precision", 3),
    ("recall", 3),
    ("density", 3),
    ("coverage", 3),
)


def default_run(root: Path) -> list[str]:
    for f in EVAL_FILES:
        read(root, f)  # each must exist
    e = read_results(root / Path(EVAL_FILES[0]).parent)["eval"]
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


def bound(root: Path) -> list[str]:
    """The paper's bound, both sides measured on the default run's test images."""
    for f in EVAL_FILES:
        read(root, f)  # each must exist
    b = read_results(root / Path(EVAL_FILES[0]).parent)["eval"]["bound"]
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


# --- benchmarks --------------------------------------------------------------------------------------

BENCH_PIPELINE = "results/benchmarks/bench_pipeline-shipped.json"
BENCH_FANOUT = "results/benchmarks/bench_fanout-tiny.json"
BENCH_FANOUT_SHIPPED = "results/benchmarks/bench_fanout-shipped.json"


def bench_pipeline(root: Path, path: str = BENCH_PIPELINE) -> list[str]:
    d = read(root, path)
    device = d.get("device") or {}
    on = f", on an {device.get('name')}" if device.get("type") == "cuda" else ""
    lines = [
        transcribed(d)
        or f"One run ({provenance(d)}{on}, {d['params']} params, methods: {', '.join(d.get('methods') or []) or 'none'}):",
        "",
    ]
    top = sorted(d["stages"], key=lambda r: -r["seconds"])[:3]
    tp = d.get("throughput") or []
    lsdm = next((t for t in tp if t["sampler"] == "lsdm"), None)
    flows = [t for t in tp if t["sampler"] != "lsdm"]
    rss = d["peak_rss_mb"]
    text = (
        f"full `dvc repro` {d['full_seconds']:.0f} s ("
        + ", ".join(f"{r['stage']} {r['seconds']:.0f} s" for r in top)
        + f"), incremental after a change of `{d['incremental_change']}` {d['incremental_seconds']:.0f} s (ran: "
        f"{', '.join(d['incremental_ran'])}): full / incremental = {d['full_seconds'] / d['incremental_seconds']:.1f}x."
    )
    if lsdm and flows:
        text += (
            f" Sampling at batch {lsdm['batch_size']}: LSDM {num(lsdm['images_per_s'], 0)} images/s, "
            + ", ".join(f"{t['sampler']} {num(t['images_per_s'], 0)}" for t in flows)
            + "; LSDM is "
            + " / ".join(f"{lsdm['images_per_s'] / t['images_per_s']:.1f}x" for t in flows)
            + " faster."
        )
    text += (
        f" Peak RSS per stage (DVC included) {rss['min'] / 1000:.2f}-{rss['max'] / 1000:.2f} GB, the largest "
        f"{rss['max_stage']}."
    )
    if d.get("peak_cuda_mb"):
        text += f" Peak GPU memory allocated {d['peak_cuda_mb']['max']:.0f} MiB, in {d['peak_cuda_mb']['max_stage']}."
    return lines + [text[0].upper() + text[1:]]


BENCH_PIPELINE_GPU = "results/benchmarks/bench_pipeline-shipped-cuda.json"
#: `bench_matcher.py --graph`: the first trial (a step rewritten for capture), then `train_matcher` off and on.
BENCH_GRAPH = (
    "results/benchmarks/bench_matcher-cuda-graph-trial.json",
    "results/benchmarks/bench_matcher-cuda-graph.json",
)


def gpu_graph(root: Path) -> list[str]:
    """The matcher's step on a GPU, eager and replayed as a CUDA graph, one paragraph per run."""
    runs = [read(root, path) for path in BENCH_GRAPH]
    return [line for d in runs for line in ("", f"One run ({provenance(d)}, {d['device']}):", "", graph_run(d))][1:]


def graph_run(d: dict) -> str:
    """One `bench_matcher.py --graph` run: `train_matcher` with `cuda_graph` off and on, or (the first
    trial's file) the step rewritten for capture beside the loop as it shipped then."""
    if "ms_per_step" in d:
        t = d["ms_per_step"]
        return (
            f"`train_matcher` (the shipped matcher) over {d['steps']} steps: {t['eager']:.2f} ms a step eager, "
            f"{t['graph']:.2f} ms replayed as a CUDA graph ({d['graph_speedup']:.1f}x); the two runs' weights "
            f"end at most {d['max_abs_weight_difference']:.2f} apart (the same draws; float rounding, grown "
            f"over {d['steps']} adversarial steps)."
        )
    t = {k: 1e3 * v for k, v in d["seconds_per_step"].items()}
    return (
        f"`train_wgan_gp` as it shipped then {t['train_wgan_gp']:.2f} ms a step; the step rewritten for "
        f"capture {t['eager']:.2f} ms eager and {t['graph']:.2f} ms replayed as a CUDA graph: the graph "
        f"{d['graph_speedup_over_eager_step']:.1f}x the same step eager, {d['graph_speedup_over_shipped']:.1f}x "
        f"the loop as it shipped ({d['timed_steps']} timed steps each, after {d['shipped_steps']} of the loop)."
    )


#: The scale benchmark's runs (benchmarks/bench_scale.py), smallest first.
SCALE_FILES = tuple(f"results/benchmarks/scale-{n}.json" for n in (20_000, 100_000, 200_000))


def scale(root: Path) -> list[str]:
    """Each stage's wall time and peak RSS against the number of images, one column pair per run."""
    runs = [read(root, f) for f in SCALE_FILES]

    def name(r: dict) -> str:  # which run a column is: its size, and tiny budgets where it had them
        return f"{r['n_images']:,} images{', tiny budgets' if r.get('params') == 'tiny' else ''}, `{r['commit'][:7]}`"

    head = " | ".join(f"{name(r)}: s | GB" for r in runs)
    lines = [f"| stage | {head} |", "|---|" + "---|---|" * len(runs)]
    for i, stage in enumerate(r["stage"] for r in runs[0]["stages"]):
        cells = " | ".join(f"{r['stages'][i]['seconds']:.0f} | {r['stages'][i]['max_rss_mb'] / 1024:.1f}" for r in runs)
        lines.append(f"| {stage} | {cells} |")
    total = " | ".join(f"**{r['total_seconds']:.0f}** | **{r['peak_rss_mb']['max'] / 1024:.1f}**" for r in runs)
    lines += [
        f"| all stages | {total} |",
        "",
        "; ".join(f"{name(r)}: {provenance(r)}, {r['n_test']:,} test images judged" for r in runs) + ".",
    ]
    return lines


def fanout(root: Path) -> list[str]:
    tiny, shipped = read(root, BENCH_FANOUT), read(root, BENCH_FANOUT_SHIPPED)
    t = sorted(tiny["timings"].items(), key=lambda kv: int(kv[0]))
    per = listed([f"{v['points']:.0f} s on {n} worker{'s' * (int(n) > 1)}" for n, v in t])
    lines = [
        transcribed(tiny) or f"One run ({provenance(tiny)}):",
        "",
        f"The tiny sweep's {t[0][1]['n_points']} points took {per}: **{tiny['speedup_points']:.2f}x** on the points.",
        "",
    ]
    lines += [transcribed(shipped) or f"One run ({provenance(shipped)}):", ""]
    for n, v in sorted(shipped["timings"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"The sweep `{shipped.get('tag', 'shipped')}` at its own budget over {n} worker{'s' * (int(n) > 1)} "
            f"({v['n_points']} points): {v['points'] / 60:.1f} min of points after {v['shared'] / 60:.1f} min of "
            f"shared stages, {v['wall'] / 60:.1f} min in all."
        )
    return lines


# --- matcher tuning ----------------------------------------------------------------------------------

TUNING = "results/tuning/matcher_val.csv"
#: The class-aware marginal against the pooled one, paired over split seeds (variant, baseline, counts).
TUNING_PAIRED = (("class_aware_m0.3",), "own_m1_closed_form", (3, 10, 30))
#: The class-aware marginal with the pooled term at full weight (the default since 2026-12) against
#: the pooled default it replaced, both on the same latents.
CLASS_AWARE_M1_PAIRED = (("class_aware_m1",), "own_m1_rerun", (3, 10, 30))
#: The refined pseudo-labels (spreading, then a Gaussian class model) at the threshold 0.99, against
#: the class-aware default they were tried on; then the runs stopped before 10 pairs per class: the
#: threshold 0.9, and 0.99 with the class model's covariances shrunk by 0.03 instead of 0.1.
PSEUDO_REFINE_PAIRED = (("refined_t0.99",), "class_aware_m1", (3, 10, 30))
PSEUDO_REFINE_MORE_PAIRED = (("refined_t0.9", "refined_reg0.03_t0.99"), "class_aware_m1", (3, 30))
#: Label spreading pushed further (alpha 0.8: fewer, surer labels at threshold 0.9; and a 20-NN graph)
#: against the class-aware default, at 3 pairs per class.
PSEUDO_ALPHA_PAIRED = (("spread_alpha0.8", "spread_alpha0.8_k20"), "class_aware_m1", (3,))
#: The filtered draw (`sample.candidates` K, `sample.accept` P: the first of K codes the latent class model
#: gives the asked class with p >= P) against the plain draw of the same trained matchers.
SAMPLE_PAIRED = (("draw_c4_a0.9", "draw_c8_a0.9", "draw_c8_a0.99", "draw_c16_a0.99"), "draw_plain", (3, 10, 30))
#: The image filter (`sample.filter: image`: the pseudo-labeller's image classifier on the decoded candidates,
#: at accept P) and the plain draw against the latent filter it replaced (16 candidates at 0.99), on the
#: same trained matchers.
IMAGE_FILTER_PAIRED = (
    ("filter_image_c16_a0.5", "filter_image_c16_a0.9", "filter_image_c16_a0.99", "filter_plain"),
    "filter_latent_c16_a0.99",
    (3, 10, 30),
)
#: The pseudo-labellers' settings on validation (benchmarks/tune_pseudo.py) and the thresholds shown.
PSEUDO_TUNING, PSEUDO_THRESHOLDS = "results/tuning/pseudo_val.csv", (0.9, 0.99)
#: Cheaper training schedules against the default rerun in the same batch (the speed issue).
#: The same levers on the class-aware default (2026-12-04), against it rerun in the same batch.
SCHEDULE_CLASS_AWARE_PAIRED = (
    ("sched2_cw128", "sched2_bs64", "sched2_s1000", "sched2_cw128_s1000", "sched2_cw128_s1000_bs64"),
    "sched2_shipped",
    (3, 10, 30),
)
SCHEDULE_PAIRED = (
    (
        "sched_nc2_gp2",
        "sched_nc1",
        "sched_nc1_clr2",
        "sched_nc1_clr2_gp4",
        "sched_cw128",
        "sched_cw64",
        "sched_nc2_cw128",
    ),
    "own_m1_rerun",
    (3, 10, 30),
)
#: The tuning table's rows: a label and the runs it shows, each (variant, pairs per class, split seed);
#: a cell lists the runs' values separated by " / "; a tuple of split seeds shows their runs' mean.
TUNING_ROWS: tuple[tuple[str, tuple[tuple[str, int, int | tuple[int, ...]], ...]], ...] = (
    ("before: concat critic, lr 2e-4", (("concat", 10, 0), ("concat", 100, 0))),
    ("projection critic, lr 2e-4", (("proj", 10, 0), ("proj", 100, 0))),
    (
        "projection, lr 2e-4, + marginal 0.5 / 1 / 2, critic body shared",
        (("proj_m0.5", 10, 0), ("proj_m1", 10, 0), ("proj_m2", 10, 0)),
    ),
    ("projection, lr 5e-4", (("proj_lr5e-4", 10, 0), ("proj_lr5e-4", 100, 0))),
    ('projection, lr 1e-3 (= "LSDM", the paper\'s method)', (("proj_lr1e-3", 10, 0), ("proj_lr1e-3", 100, 0))),
    ("projection, lr 2e-3", (("proj_lr2e-3", 10, 0), ("proj_lr2e-3", 100, 0))),
    (
        "projection, lr 1e-3, 1,000 steps, marginal 1 (shared body)",
        (("proj_lr1e-3_m1_s1000", 10, 0), ("proj_lr1e-3_m1_s1000", 100, 0)),
    ),
    (
        "+ marginal 0.3 / 0.7 / 1, critic body shared",
        (("proj_lr1e-3_m0.3", 10, 0), ("proj_lr1e-3_m0.7", 10, 0), ("proj_lr1e-3_m1", 10, 0)),
    ),
    (
        "+ marginal 0.3 / 0.7 / 1, critic body shared",
        (("proj_lr1e-3_m0.3", 100, 0), ("proj_lr1e-3_m0.7", 100, 0), ("proj_lr1e-3_m1", 100, 0)),
    ),
    (
        '**+ marginal 1, its own critic network (default, "LSDM + marginal")**',
        (("proj_lr1e-3_m1_own", 10, 0), ("proj_lr1e-3_m1_own", 100, 0)),
    ),
    ("latent_flow, NFE 10 / 100, 12,000 steps (the old default)", (("flow_nfe10", 10, 0), ("flow_nfe100", 10, 0))),
    ("latent_flow, NFE 10 / 100, 12,000 steps", (("flow_nfe10", 100, 0), ("flow_nfe100", 100, 0))),
    (
        "latent_flow, NFE 10 / 100, 76,000 steps (LSDM's training time)",
        (("flow76k_nfe10", 10, 0), ("flow76k_nfe100", 10, 0)),
    ),
    (
        "latent_flow, NFE 10 / 100, 76,000 steps (LSDM's training time)",
        (("flow76k_nfe10", 100, 0), ("flow76k_nfe100", 100, 0)),
    ),
    (
        "3 pairs/class: LSDM / latent_flow NFE 10 / + marginal 1 (shared body)",
        (("proj_lr1e-3_m0", 3, 0), ("flow_nfe10", 3, 0), ("proj_lr1e-3_m1", 3, 0)),
    ),
    (
        "split seed 1: LSDM / latent_flow NFE 10 / + marginal 1 (shared body)",
        (("proj_lr1e-3_m0", 10, 1), ("flow_nfe10", 10, 1), ("proj_lr1e-3_m1", 10, 1)),
    ),
    (
        "own critic, marginal 0.5 / 1 (default), mean of split seeds 0, 1, 2",
        (("proj_lr1e-3_m0.5_own", 3, (0, 1, 2)), ("proj_lr1e-3_m1_own", 3, (0, 1, 2))),
    ),
    (
        "own critic, marginal 0.5 / 1 (default), mean of split seeds 0, 1, 2",
        (("proj_lr1e-3_m0.5_own", 10, (0, 1, 2)), ("proj_lr1e-3_m1_own", 10, (0, 1, 2))),
    ),
    *(
        (
            "pooled marginal 1 / class-aware marginal + pooled 0.3, mean of split seeds 0, 1, 2",
            ((TUNING_PAIRED[1], n, (0, 1, 2)), (TUNING_PAIRED[0][0], n, (0, 1, 2))),
        )
        for n in TUNING_PAIRED[2]
    ),
)
TUNING_COLS = (
    ("label_accuracy", "label acc", 3),
    ("fid_evalnet", "FID (evalnet)", 1),
    ("recall", "recall", 2),
    ("density", "density", 2),
    ("coverage", "coverage", 2),
)


def tuning(root: Path) -> list[str]:
    path = root / TUNING
    if not path.exists():
        raise FileNotFoundError(f"{TUNING}: a generated block's source file is missing")
    df = pd.read_csv(path).set_index(["variant", "n_per_class", "seed"]).sort_index()
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


def image_filter_val(root: Path) -> list[str]:
    """The filters on validation: each variant's mean per count over the split seeds, then each minus the
    latent filter, paired (`tuning_paired`)."""
    variants, base, counts = IMAGE_FILTER_PAIRED
    df = pd.read_csv(root / TUNING)
    df["density"] = (df["density"] - df["density_real"]).abs()
    head = [label if key != "density" else "density gap" for key, label, _ in TUNING_COLS]
    lines = [
        "| filter (validation, mean of the split seeds) | pairs/class | " + " | ".join(head) + " |",
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
    return lines + ["", *tuning_paired(root, IMAGE_FILTER_PAIRED)]


def tuning_paired(
    root: Path, comparison: tuple[tuple[str, ...], str, tuple[int, ...]], speed: bool = False
) -> list[str]:
    """Each variant − the baseline on validation per count, `comparison` = (variants, baseline, counts):
    the mean over the split seeds both ran and its 95% t-interval (the density column is
    |density − real density|: closer to the real data's is better). `speed`: a last column with the
    baseline's training time over the variant's on those runs (meaningful only for runs of one batch,
    under one load)."""
    from lsdm.reports.stats import paired_cells

    variants, base, counts = comparison
    df = pd.read_csv(root / TUNING)
    df["density"] = (df["density"] - df["density_real"]).abs()
    head = [label if key != "density" else "density gap" for key, label, _ in TUNING_COLS]
    head += ["training time ÷"] if speed else []
    lines = [
        f"| variant − `{base}` (validation) | pairs/class | split seeds | " + " | ".join(head) + " |",
        "|---|---|---|" + "---|" * len(head),
    ]
    for variant in variants:
        for n in counts:
            at = df[df["n_per_class"] == n]
            a, b = (at[at["variant"] == v].set_index("seed") for v in (variant, base))
            seeds = sorted(set(a.index) & set(b.index))
            if len(seeds) < 2:
                raise KeyError(
                    f"{TUNING}: fewer than two split seeds with both {variant!r} and {base!r} at {n} pairs/class"
                )
            cells = paired_cells(a, b, seeds, TUNING_COLS)
            if speed:
                cells.append(f"{b.loc[seeds, 'train_seconds'].mean() / a.loc[seeds, 'train_seconds'].mean():.1f}")
            lines.append(f"| `{variant}` | {n} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return lines


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


# --- the blocks --------------------------------------------------------------------------------------

BLOCKS: dict[str, Block] = {
    "superres": Block(SR_FILES, superres),
    "sweep": Block((SWEEP_TABLE, SWEEP_META), sweep),
    "default-run": Block(EVAL_FILES, default_run),
    "bound": Block(EVAL_FILES, bound),
    "bench-pipeline": Block((BENCH_PIPELINE,), bench_pipeline),
    "bench-pipeline-gpu": Block((BENCH_PIPELINE_GPU,), partial(bench_pipeline, path=BENCH_PIPELINE_GPU)),
    "gpu-graph": Block(BENCH_GRAPH, gpu_graph),
    "fanout": Block((BENCH_FANOUT, BENCH_FANOUT_SHIPPED), fanout),
    "scale": Block(SCALE_FILES, scale),
    "matcher-tuning": Block((TUNING,), tuning),
    "class-aware-paired": Block((TUNING,), partial(tuning_paired, comparison=TUNING_PAIRED)),
    "class-aware-m1-paired": Block((TUNING,), partial(tuning_paired, comparison=CLASS_AWARE_M1_PAIRED)),
    "schedule-paired": Block((TUNING,), partial(tuning_paired, comparison=SCHEDULE_PAIRED, speed=True)),
    "schedule-class-aware-paired": Block(
        (TUNING,), partial(tuning_paired, comparison=SCHEDULE_CLASS_AWARE_PAIRED, speed=True)
    ),
    "sample-paired": Block((TUNING,), partial(tuning_paired, comparison=SAMPLE_PAIRED)),
    "image-filter-paired": Block((TUNING,), image_filter_val),
    "pseudo-tuning": Block((PSEUDO_TUNING,), pseudo_tuning),
    "pseudo-alpha-paired": Block((TUNING,), partial(tuning_paired, comparison=PSEUDO_ALPHA_PAIRED)),
    "pseudo-refine-paired": Block((TUNING,), partial(tuning_paired, comparison=PSEUDO_REFINE_PAIRED)),
    "pseudo-refine-more-paired": Block((TUNING,), partial(tuning_paired, comparison=PSEUDO_REFINE_MORE_PAIRED)),
    "unpaired-pool": Block((POOL_TABLE, POOL_META), unpaired_pool),
    "sweep-verdicts": Block((SWEEP_TABLE, SWEEP_META), sweep_verdicts),
    "image-filter-test": Block((SWEEP_TABLE, SWEEP_META, IMAGE_FILTER_TABLE, IMAGE_FILTER_META), image_filter_test),
    "like-against-like": Block(ladder.SOURCES, ladder.levels),
    "like-against-like-steps": Block(ladder.SOURCES, ladder.steps),
    "estimator-paired": Block((*ladder.SOURCES, ladder.ESTIMATOR), ladder.estimators),
}


def render(name: str, root: Path = Path("."), up: int = 0) -> str:
    """A block's text between its markers: a blank line, its Markdown, the line naming its sources.
    `up`: how many folders below the repository root its page lies (1 for docs/*.md): the block's
    links, written from the root, are made relative to the page."""
    block = BLOCKS[name]
    src = ", ".join(f"`{s}`" for s in block.sources)
    lines = [*block.render(root), "", f"<sub>Generated from {src} by `make readme`.</sub>"]
    if up:
        lines = [_RELATIVE_LINK.sub("](" + "../" * up, line) for line in lines]
    return "\n" + "\n".join(lines) + "\n\n"


def names_in(text: str) -> list[str]:
    """The blocks a page holds, in order; an unknown name or an unmatched marker is an error."""
    found = [m.group("name") for m in _BLOCK.finditer(text)]
    markers = _MARKER.findall(text)
    if len(markers) != 2 * len(found):
        raise ValueError(f"unmatched generated-block markers: {sorted(set(markers) - set(found)) or markers}")
    unknown = [n for n in found if n not in BLOCKS]
    if unknown:
        raise ValueError(f"unknown generated blocks {unknown}; known: {sorted(BLOCKS)}")
    return found


def refresh(text: str, root: Path = Path("."), up: int = 0) -> tuple[str, list[str]]:
    """`text` with every block rendered afresh, and the names of those whose text changed."""
    names_in(text)
    stale: list[str] = []

    def sub(m: re.Match) -> str:
        name, body = m.group("name"), render(m.group("name"), root, up)
        if body != m.group("body"):
            stale.append(name)
        return OPEN.format(name) + "\n" + body + CLOSE.format(name)

    return _BLOCK.sub(sub, text), stale


def pages(checkout: Path) -> list[Path]:
    """The Markdown pages that may hold blocks: README.md and every page of the docs site."""
    return [p for p in [checkout / README, *sorted((checkout / DOCS).rglob("*.md"))] if p.is_file()]


def placed(checkout: Path) -> dict[str, Path]:
    """Each block's page; a block in two places, or in the same page twice, is an error."""
    where: dict[str, Path] = {}
    for page in pages(checkout):
        for name in names_in(page.read_text()):
            if name in where:
                raise ValueError(f"block `{name}` is in both {where[name]} and {page}: each block lives in one page")
            where[name] = page
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 listing the stale blocks")
    ap.add_argument(
        "--checkout",
        type=Path,
        default=Path("."),
        help="the folder holding README.md and docs/, whose pages' blocks are checked or rewritten",
    )
    ap.add_argument(
        "--root", type=Path, default=None, help="the repository root the sources are read from (default: --checkout)"
    )
    args = ap.parse_args(argv)
    root = args.root or args.checkout
    try:
        placed(args.checkout)
        results = []
        for page in pages(args.checkout):
            text = page.read_text()
            up = len(page.relative_to(args.checkout).parts) - 1
            results.append((page, text, *refresh(text, root, up)))
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"{args.checkout}: {e}", file=sys.stderr)
        return 2
    n = sum(len(names_in(text)) for _, text, _, _ in results)
    stale = [(page, name) for page, _, _, names in results for name in names]
    if args.check:
        for page, name in stale:
            print(f"{page}: block `{name}` is stale (sources: {', '.join(BLOCKS[name].sources)})")
        if not stale:
            print(f"{args.checkout}: {n} generated blocks in {len(results)} pages match their files")
        return 1 if stale else 0
    for page, text, new, _ in results:
        if new != text:
            with atomic_path(page) as tmp:
                tmp.write_text(new)
    names = [name for _, name in stale]
    print(
        f"{args.checkout}: {n} generated blocks, {len(names)} rewritten" + (f" ({', '.join(names)})" if names else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
