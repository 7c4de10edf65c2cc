"""Benchmark (not a test): the pipeline on a folder of N synthetic images, each stage's wall time and
peak memory, so a user can tell what machine a CelebA-sized run needs.

    python benchmarks/bench_scale.py --n 20000                  # 64x64x3, flat folder, super-resolution
    python benchmarks/bench_scale.py --n 100000 --n 200000      # one JSON per N
    python benchmarks/bench_scale.py --n 600 --tiny             # a few dozen steps: checks the script
    python benchmarks/bench_scale.py                            # only redraw the curves (scale.png)

For each N it writes N PNG images (smooth random colour fields: structure an autoencoder can learn, at
CelebA-64's size) into a temporary flat folder, makes a throwaway git + DVC copy of the repository
(`bench_pipeline.make_clone`) with the README's super-resolution settings (`SR`) and `data.root` at
that folder, and runs every stage through DVC one at a time in graph order, measuring each as
`bench_pipeline.full_repro` does (wall time; peak RSS of the stage's process tree). Figures:
results/benchmarks/scale-<N>.json (with the machine, date and commit), and the curves of time and
memory against N over every full-budget run there: results/benchmarks/scale.png.

Run it alone, with `LSDM_THREADS` set to the cores it may take: its wall times are its figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml
from bench_pipeline import ROOT, full_repro, make_clone
from PIL import Image
from record import RESULTS, Run, scratch

from lsdm.evaluation.registry import merge, read_results
from lsdm.paths import EVAL_DIR
from lsdm.presets import tiny

#: The README's super-resolution run on a folder of 64-px RGB faces, as a new user would start it.
SR = {
    "task": "super_resolution",
    "methods": [],
    "data": {"source": "image_folder", "image_size": 64, "channels": 3},
    "sr": {"factor": 4, "encoder_width": 16},
    "split": {"n_paired": 500},
    "latent": {"channels": [32, 64, 128], "dim": 64},
}


def write_folder(root: Path, n: int, size: int = 64, seed: int = 0, chunk: int = 1000) -> float:
    """`n` RGB PNGs of `size` px in `root` (flat): each a sum of four random low-frequency cosine
    fields per channel. Returns the seconds it took."""
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    grid = np.linspace(0, 2 * np.pi, size, dtype=np.float32)
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        freq = rng.uniform(0.3, 2.0, (k, 3, 4, 2)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, (k, 3, 4)).astype(np.float32)
        field = np.cos(
            freq[..., 0, None, None] * grid[:, None] + freq[..., 1, None, None] * grid[None, :] + phase[..., None, None]
        ).sum(2)  # [k, 3, size, size]
        pixels = ((field / 8 + 0.5).clip(0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        for i, img in enumerate(pixels):
            Image.fromarray(img).save(root / f"{start + i:06d}.png", compress_level=1)
    return time.perf_counter() - t


def scale_run(n: int, tiny_params: bool, work: Path) -> dict:
    """Every stage of the SR pipeline on `n` synthetic images: the figures of scale-<n>.json."""
    folder = work / "images"
    write_seconds = write_folder(folder, n)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), SR)
    if tiny_params:  # tiny budgets on every image of the folder, and a pair count a few hundred images allow
        params = tiny(
            params, {k: v for k, v in SR.items() if k != "latent"}, {"data": {"limit": None}, "split": {"n_paired": 50}}
        )
    params = merge(params, {"data": {"root": str(folder)}})
    repo = make_clone(work / "repo", params)
    print(f"N = {n}: {write_seconds:.0f} s to write the folder; repository copy {repo}", flush=True)
    stages = full_repro(repo)
    e = read_results(repo / EVAL_DIR)["eval"]
    top = max(stages, key=lambda r: r["max_rss_mb"])
    return {
        "n_images": n,
        "image": {"size": 64, "channels": 3, "format": "png"},
        "params": "tiny" if tiny_params else "shipped",
        "overrides": SR,
        "write_folder_seconds": round(write_seconds, 1),
        "stages": stages,
        "total_seconds": round(sum(r["seconds"] for r in stages), 1),
        "peak_rss_mb": {"max": top["max_rss_mb"], "max_stage": top["stage"]},
        "n_test": e.get("n_samples"),
        "bound": e.get("bound"),
        "stage_seconds": e.get("stage_seconds"),
    }


def plot(files: list[Path], out: Path) -> None:
    """Each stage's wall time and peak RSS against N (log-log), one line per stage, from the
    scale-<N>.json of full-budget runs: where a CelebA-sized run spends its time and memory."""
    import json

    from lsdm.reports.plots import _log_axis, _plt

    runs = sorted((json.loads(f.read_text()) for f in files), key=lambda r: r["n_images"])
    if len(runs) < 2:
        return
    ns = [r["n_images"] for r in runs]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, scale, label) in zip(
        axes, [("seconds", 1, "wall time (s)"), ("max_rss_mb", 1 / 1024, "peak RSS (GB)")]
    ):
        for stage in [s["stage"] for s in runs[0]["stages"]]:
            ys = [next(s[key] for s in r["stages"] if s["stage"] == stage) * scale for r in runs]
            ax.plot(ns, ys, marker="o", label=stage)
        _log_axis(ax, ns)
        ax.set_yscale("log")
        ax.set_xlabel("images (64x64x3, super-resolution)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, ncol=2)
    fig.suptitle(f"bench_scale.py per stage, at commits {', '.join(sorted({r['commit'][:7] for r in runs}))}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, action="append", default=[], help="images in the folder (repeatable)")
    ap.add_argument("--tiny", action="store_true", help="tiny training budgets (checks the script)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the scale-<N>.json files")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    for n in args.n:
        run = Run()
        with scratch(f"lsdm-scale-{n}-", args.keep) as work:
            figures = scale_run(n, args.tiny, work)
            run.write(args.out / f"scale-{n}{'-tiny' if args.tiny else ''}.json", figures)
    # the curves over every full-budget run in --out (without --n: only redraw them)
    plot([f for f in sorted(args.out.glob("scale-*.json")) if not f.stem.endswith("-tiny")], args.out / "scale.png")


if __name__ == "__main__":
    main()
