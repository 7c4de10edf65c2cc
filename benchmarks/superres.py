"""Benchmark (not a test): the super-resolution task on the shipped params, for each `sr.encoder_width`.

    python benchmarks/superres.py                        # widths 8 (default) and 16 -> results/superres/
    python benchmarks/superres.py --tiny --out /tmp/sr   # 300 images, a few dozen steps: checks the script

In a throwaway copy of the repository (git + DVC, made as benchmarks/bench_pipeline.py makes it) with
`task: super_resolution`, the stages run through DVC one at a time in graph order (`dvc repro
--single-item`), each timed. The first width runs every stage from an empty DVC cache, as a fresh
clone would; each further width changes only `sr.encoder_width`, so DVC reruns only the stages that
read it (each file lists what ran and what was skipped). `encoder_width_<w>.json` holds the README's
super-resolution table — LSDM back-projected onto its input, LSDM raw D(G(x, eta)) and bicubic
upsampling, judged on the same test images — with the stages' wall times and the machine.

Run it alone, with `LSDM_THREADS` set to the cores it may take: its wall times are part of its figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from bench_pipeline import ROOT, make_clone
from record import Run, commit, scratch

from lsdm.evaluation.registry import merge, read_results
from lsdm.orchestration.dvc import RAN, repro_stage
from lsdm.orchestration.experiments import read_pipeline
from lsdm.paths import EVAL_DIR
from lsdm.presets import tiny

OUT = ROOT / "results" / "superres"
#: The figures of each column; the raw and bicubic columns are judged by the same code as LSDM's.
METRICS = (
    "fid_evalnet",
    "psnr",
    "ssim",
    "consistency_psnr",
    "label_accuracy",
    "density",
    "coverage",
    "precision",
    "recall",
    "lpips_to_truth",
)


def columns(e: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """LSDM as judged (back-projected when `sr.back_projection` > 0), LSDM raw, bicubic: where
    evaluate writes each (`eval.*`, `eval.raw.*`, `eval.references.bicubic.*`)."""
    sources = {"lsdm": e, "lsdm_raw": e.get("raw"), "bicubic": (e.get("references") or {}).get("bicubic")}
    return {name: {k: m.get(k) for k in METRICS} for name, m in sources.items() if m}


def run_width(repo: Path, params: dict, width: int) -> dict[str, Any]:
    """Set `sr.encoder_width` in the copy, run every stage through DVC, and collect the figures."""
    params = merge(params, {"sr": {"encoder_width": width}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = []
    for name in read_pipeline(repo).stages:
        r = repro_stage(repo, name)
        stages.append(r.as_dict())
        print(f"  {name:<14} {r.status:<8} {r.seconds:7.1f} s", flush=True)
    e = read_results(repo / EVAL_DIR)["eval"]
    return {
        "task": params["task"],
        "sr": params["sr"],
        "n_paired_per_class": params["split"]["n_paired_per_class"],
        "n_test": e.get("n_samples"),
        "generation_seed": (e.get("seeds") or [None])[0],
        "columns": columns(e),
        "real_reference": {
            k: (e.get("real_reference") or {}).get(k) for k in ("density", "coverage", "precision", "recall")
        },
        "stages": stages,
        "ran": [s["stage"] for s in stages if s["status"] == RAN],
        "wall_seconds": round(sum(s["seconds"] for s in stages), 1),
        "stage_seconds": e.get("stage_seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16], help="sr.encoder_width values, in order")
    ap.add_argument("--tiny", action="store_true", help="tiny params (300 images, a few dozen steps)")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the encoder_width_<w>.json files")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = ap.parse_args()
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), {"task": "super_resolution"})
    if args.tiny:
        params = tiny(params)
    with scratch("lsdm-superres-", args.keep) as tmp:
        code = commit()  # what the copy holds, whatever changes here while it runs
        repo = make_clone(tmp / "repo", params)
        for i, width in enumerate(args.widths):
            run = Run(code=code)
            print(
                f"sr.encoder_width={width} in {repo} ({'tiny' if args.tiny else 'shipped'} params, "
                f"{'fresh: empty DVC cache' if i == 0 else 'after the previous width'})",
                flush=True,
            )
            figures = run_width(repo, params, width)
            figures["fresh"] = i == 0
            figures["tiny"] = args.tiny
            run.write(args.out / f"encoder_width_{width}.json", figures)


if __name__ == "__main__":
    main()
