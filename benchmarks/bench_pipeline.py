"""Benchmark (not a test): what DVC's caching and one-step sampling buy, measured on this machine.

    python benchmarks/bench_pipeline.py            # the shipped params.yaml, as `make repro` runs it (methods: [])
    python benchmarks/bench_pipeline.py --methods latent_flow   # + the flow: its NFE 10/50/100 throughput
    python benchmarks/bench_pipeline.py --tiny     # 300 images, a few dozen steps: checks the script

In a throwaway copy of the repository (git + DVC, like the tests' repos) it prints:

1. full vs incremental `dvc repro` wall time and their ratio: the full run reproduces every stage
   from nothing; the incremental one follows a change of `split.n_paired_per_class` only, so DVC
   skips prepare, fit_latent, encode and eval_net (the caching contract);
2. LSDM one-step (and, with `--methods latent_flow`, the flow at NFE 10 / 50 / 100): images/s at
   the same batch size (evaluate.batch_size) and device;
3. peak memory per stage: max RSS of each stage's process tree (`dvc repro --single-item STAGE`,
   measured with getrusage(RUSAGE_CHILDREN) in a fresh wrapper process per stage; DVC's own
   process is part of the tree, so ~150-250 MB is the floor); on a GPU also the most GPU memory
   each stage allocated (the line `lsdm <stage>` prints last, `lsdm.pipeline.cli.report_cuda_peak`).

`base.device: auto` (the shipped params) runs every stage on CUDA where a GPU is present: the
figures then go to bench_pipeline-<shipped|tiny>-cuda.json, with the GPU's name.

The full run is the stages one at a time in graph order (`read_pipeline`), each timed; its
wall time is their sum. The figures are also written, with the machine, date and commit, to
results/benchmarks/bench_pipeline-<shipped|tiny>[-cuda].json (`--json` elsewhere), which the README's
benchmark paragraph is rendered from (`python -m lsdm.reports.readme`); nothing else is written here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from record import RESULTS, Run, scratch

from lsdm.orchestration.tools import tool
from lsdm.pipeline.cli import CUDA_PEAK
from lsdm.presets import tiny

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Runs `cmd` and prints its wall time and the peak RSS (KiB on Linux) of its finished process tree.
WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def env() -> dict[str, str]:
    e = dict(os.environ, DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def sh(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def make_clone(path: Path, params: dict) -> Path:
    """The pipeline (dvc.yaml, the package, inputs/) and `params` in a fresh git + DVC repo."""
    path.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copytree(ROOT / "lsdm", path / "lsdm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "inputs", path / "inputs")
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (path / ".gitignore").write_text("__pycache__/\n")
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "bench@lsdm.invalid"],
        ["git", "config", "user.name", "bench"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "bench"],
    ):
        tool(cmd, path)
    return path


def full_repro(repo: Path) -> list[dict]:
    from lsdm.orchestration.experiments import read_pipeline

    rows = []
    for name in read_pipeline(repo).stages:  # graph order (dvc.yaml declares `evaluate` first)
        p = sh([sys.executable, "-c", WRAPPER, "dvc", "repro", "--single-item", name], repo)
        rc, seconds, maxrss = (f(x) for f, x in zip((int, float, int), p.stdout.split()))
        if rc != 0:
            raise SystemExit(f"dvc repro --single-item {name} failed (rc {rc}); run it in {repo} to see why")
        row = {"stage": name, "seconds": seconds, "max_rss_mb": maxrss / 1024}
        if gpu := re.search(rf"{re.escape(CUDA_PEAK)} ([\d.]+) MiB", p.stderr):
            row["max_cuda_mb"] = float(gpu.group(1)) * 2**20 / 1e6
        rows.append(row)
        print(
            f"  {name:<32} {seconds:8.1f} s   {maxrss / 1024:8.0f} MB"
            + (f"   GPU {row['max_cuda_mb']:8.0f} MB" if gpu else ""),
            flush=True,
        )
    status = sh(["dvc", "status"], repo).stdout
    if "up to date" not in status:
        print(f"  warning: after the stage-by-stage run, dvc status is not clean:\n{status}")
    return rows


def incremental_repro(repo: Path) -> tuple[float, list[str]]:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    n = params["split"]["n_paired_per_class"]
    params["split"]["n_paired_per_class"] = n - 1 if n > 1 else n + 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t = time.perf_counter()
    out = sh(["dvc", "repro"], repo).stdout
    return time.perf_counter() - t, re.findall(r"Running stage '([^']+)'", out)


def throughput(repo: Path, nfes=(10, 50, 100)) -> list[dict]:
    """images/s of LSDM (one step) and latent_flow at each NFE: same batch, same device, same timer."""
    sys.path.insert(0, str(repo))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        import torch

        from lsdm.config import load_params, resolve_device
        from lsdm.methods import samplers
        from lsdm.methods.latent_flow import FlowSampler
        from lsdm.methods.sampling import fixed_noise
        from lsdm.models.training import timed

        params = load_params()
        device = resolve_device(params.base.device)
        bs = params.evaluate.batch_size
        cond = torch.arange(bs, device=device) % 10 if params.task == "class_conditional" else None
        if cond is None:
            print("  (throughput: class-conditional task only in this script)")
            return []
        runs = [("lsdm", samplers("lsdm", device)[0][1])]
        if "latent_flow" in params.methods:
            (_, flow), *_ = samplers("latent_flow", device, params)
            runs += [
                (
                    f"latent_flow_nfe{n}",
                    FlowSampler(flow.velocity, flow.autoencoder, flow.mean, flow.std, n, "euler").to(device),
                )
                for n in nfes
            ]
        rows = []
        for name, s in runs:
            eta = fixed_noise(bs, s.noise_dim, 0, device)
            _, seconds = timed(lambda s=s, eta=eta: s(cond, eta), device)
            rows.append({"sampler": name, "batch_size": bs, "device": device.type, "images_per_s": bs / seconds})
        base = rows[0]["images_per_s"]
        for r in rows:
            r["lsdm_speedup"] = base / r["images_per_s"]
            print(
                f"  {r['sampler']:<22} {r['images_per_s']:10.0f} images/s   LSDM is {r['lsdm_speedup']:6.1f}x faster"
                f"   (batch {bs}, {device.type})"
            )
        return rows
    finally:
        os.chdir(cwd)


def device_of(params: dict) -> dict:
    """The device the stages run on (`base.device` resolved here, as each stage resolves it) and its name."""
    import torch

    from lsdm.config import resolve_device

    device = resolve_device(params["base"]["device"])
    return {"type": device.type, "name": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def figures(
    mode: str, methods: list[str], device: dict, stages: list[dict], inc: float, ran: list[str], tp: list[dict]
) -> dict:
    """What the script prints, as the JSON the README is rendered from."""
    full = sum(r["seconds"] for r in stages)
    top = max(stages, key=lambda r: r["max_rss_mb"])
    doc = {
        "params": mode,
        "methods": methods,
        "device": device,
        "stages": stages,
        "full_seconds": full,
        "incremental_seconds": inc,
        "incremental_ran": ran,
        "incremental_change": "split.n_paired_per_class",
        "ratio": full / inc,
        "throughput": tp,
        "peak_rss_mb": {
            "min": min(r["max_rss_mb"] for r in stages),
            "max": top["max_rss_mb"],
            "max_stage": top["stage"],
        },
    }
    if gpu := [r for r in stages if "max_cuda_mb" in r]:
        top = max(gpu, key=lambda r: r["max_cuda_mb"])
        doc["peak_cuda_mb"] = {"max": top["max_cuda_mb"], "max_stage": top["stage"]}
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny params (300 images, a few dozen steps)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repository")
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the figures go (default: results/benchmarks/bench_pipeline-<shipped|tiny>.json)",
    )
    ap.add_argument(
        "--methods",
        nargs="*",
        default=[],
        help="baselines in the pipeline (default: none, as `make repro`; latent_flow adds its throughput)",
    )
    args = ap.parse_args()
    params = {**yaml.safe_load((ROOT / "params.yaml").read_text()), "methods": args.methods}
    if args.tiny:
        params = tiny(params)
    mode = "tiny" if args.tiny else "shipped"
    device = device_of(params)
    run = Run()
    with scratch("lsdm-bench-", args.keep) as tmp:
        repo = make_clone(tmp / "repo", params)
        print(
            f"repository copy: {repo}  ({mode} params, {os.cpu_count()} CPUs, device {device['name'] or device['type']})"
        )
        print("\n1. full dvc repro, stage by stage (wall time, peak RSS of the stage's process tree):")
        stages = full_repro(repo)
        full = sum(r["seconds"] for r in stages)
        inc, ran = incremental_repro(repo)
        print(f"\n   full repro:        {full:8.1f} s")
        print(f"   incremental repro: {inc:8.1f} s  (after split.n_paired_per_class changed; ran: {', '.join(ran)})")
        print(f"   ratio full / incremental: {full / inc:.1f}x")
        print("\n2. sampling throughput, LSDM one-step vs latent flow:")
        tp = throughput(repo)
        print("\n3. peak memory per stage (MB):")
        for r in sorted(stages, key=lambda r: -r["max_rss_mb"]):
            print(f"  {r['stage']:<32} {r['max_rss_mb']:8.0f}")
        suffix = "-cuda" if device["type"] == "cuda" else ""
        run.write(
            args.json or RESULTS / f"bench_pipeline-{mode}{suffix}.json",
            figures(mode, args.methods, device, stages, inc, ran, tp),
        )


if __name__ == "__main__":
    main()
