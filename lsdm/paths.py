"""Every file the pipeline reads or writes, relative to the repository root (where DVC runs stages).

`data/` holds DVC-cached artifacts; `results/` and `reports/` hold the small outputs that are
committed to git (metrics, curves, grids, Markdown), so main always shows current numbers.
"""

from __future__ import annotations

from pathlib import Path

DATA, RESULTS, REPORTS = Path("data"), Path("results"), Path("reports")

CHECK_STAMP = RESULTS / "check.json"  # the check stage's output: the same bytes whenever the check passes
IMAGES = DATA / "prepared" / "images.parquet"
PREPARE_METRICS = RESULTS / "prepare" / "metrics.json"  # images kept per split, unreadable files skipped
LATENT_POOL = DATA / "split" / "latent_pool.parquet"
PAIRED = DATA / "split" / "paired.parquet"
PSEUDO_LABELS = DATA / "pseudo" / "labels.parquet"  # the pool's labels learned from the pairs (class-aware marginal)
PSEUDO_CLASSIFIER = (
    DATA / "pseudo" / "classifier.pt"
)  # an image classifier of the confident pseudo-labels (sample.filter: image)
PSEUDO_METRICS = RESULTS / "pseudo_label" / "metrics.json"  # their accuracy and coverage, measured
AUTOENCODER = DATA / "latent" / "autoencoder.pt"
LATENTS = DATA / "encoded" / "latents.parquet"
LATENT_STATS = DATA / "encoded" / "stats.json"
MATCHER = DATA / "matcher" / "matcher.pt"
EVALNET = DATA / "evalnet" / "evalnet.pt"
EVAL_DIR = RESULTS / "evaluate"
EVAL_METRICS = EVAL_DIR / "metrics.json"  # headline scalars only (DVC metrics)
EVAL_DETAILS = EVAL_DIR / "details.json"  # the rest, same keys (lsdm.evaluation.registry)
SAMPLES = EVAL_DIR / "samples.png"
REPORT = REPORTS / "report.md"
REPORT_FIGURES = REPORTS / "figures"
SWEEP_DIR = RESULTS / "sweep"  # a sweep's tidy table (parquet + csv), its metadata and sample grids
SWEEP_TABLE = SWEEP_DIR / "sweep.parquet"
SWEEP_META = SWEEP_DIR / "sweep.json"
COMPARISON = REPORTS / "comparison.md"
COMPARISON_FIGURES = REPORTS / "comparison"  # not under REPORT_FIGURES: the report stage's output, replaced on each run
BASELINE_RESULTS = RESULTS / "baselines"  # each baseline's small results: method_results(method)


def sweep_dir(name: str | None = None) -> Path:
    """Where a sweep's table, metadata and grids go: results/sweep/ for params.yaml's `sweep:`,
    results/sweep-<name>/ for a named one of `sweeps:`."""
    return SWEEP_DIR if name is None else RESULTS / f"sweep-{name}"


def comparison(name: str | None = None) -> tuple[Path, Path]:
    """A sweep's report and its figures folder (reports/comparison.md, or comparison-<name>.md)."""
    if name is None:
        return COMPARISON, COMPARISON_FIGURES
    return REPORTS / f"comparison-{name}.md", REPORTS / f"comparison-{name}"


def live_dir(stage: str) -> Path:
    """Where a training stage's dvclive writes metrics.json (summary) and plots/metrics/*.tsv."""
    return RESULTS / stage


def method_data(method: str, root: str | Path = ".") -> Path:
    """Where fit_baseline@<method> writes its checkpoints (a DVC out)."""
    return Path(root) / DATA / "baselines" / method


def method_results(method: str, root: str | Path = ".") -> Path:
    """A baseline's small results: train/ (dvclive curves and summary), eval/ (metrics, sample grids)."""
    return Path(root) / BASELINE_RESULTS / method
