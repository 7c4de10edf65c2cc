"""report: reports/report.md (and its figures) from the metrics (and their details), curves and sample grid."""

import shutil

from lsdm import paths
from lsdm.config import Params
from lsdm.evaluation.registry import read_results
from lsdm.io import atomic_dir, atomic_path, read_json
from lsdm.reports.run_report import CURVES, plot_curves, plot_prdc_vs_k, render
from lsdm.tasks import make_task


def run(params: Params) -> None:
    metrics: dict = read_json(paths.PREPARE_METRICS)
    for stage in ("fit_latent", "eval_net", "fit_matcher"):
        metrics.update({k: v for k, v in read_json(paths.live_dir(stage) / "metrics.json").items() if k != "step"})
    metrics.update(read_json(paths.PSEUDO_METRICS))
    metrics.update(read_results(paths.EVAL_DIR))  # the headline metrics and their details, merged

    figures, rel = {}, paths.REPORT_FIGURES.relative_to(paths.REPORT.parent)
    with atomic_dir(paths.REPORT_FIGURES) as out:
        shutil.copyfile(paths.SAMPLES, out / "samples.png")
        for stage, (names, title) in CURVES.items():
            if plot_curves(paths.live_dir(stage), names, title, out / f"{stage}.png"):
                figures[title] = f"{rel}/{stage}.png"
        if plot_prdc_vs_k(paths.EVAL_DIR / "plots" / "prdc_vs_k.tsv", out / "prdc_vs_k.png"):
            figures["Precision, recall, density and coverage against k"] = f"{rel}/prdc_vs_k.png"
        text = render(metrics, params.model_dump(), figures, samples=f"{rel}/samples.png", task=make_task(params))
        with atomic_path(paths.REPORT) as tmp:
            tmp.write_text(text)
    print(f"report: {paths.REPORT}")
