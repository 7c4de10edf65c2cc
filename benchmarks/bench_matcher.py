"""The matching stage's training time, this checkout's code against an earlier commit's, side by side.

fit_matcher's cost is the number of network passes per generator step, not the data: each version
trains `train_wgan_gp` at its own shipped `matcher` params (its commit's params.yaml) on synthetic
latents of the default run's shapes (100 pairs, 10 classes, a pool of 3,500 16-d codes, all of them
pseudo-labelled for the class-aware term where a version has it), in its own
process, one version after the other, `--repeats` times alternating (so a change of machine load
hits both). The earlier version's `lsdm/` and params.yaml are unpacked from git (`git archive REF lsdm
params.yaml`) into a temporary folder and imported from there; nothing else differs.

    python benchmarks/bench_matcher.py --ref 7dfbc8b              # each version's own steps, 2 repeats
    python benchmarks/bench_matcher.py --ref HEAD~1 --steps 400   # quicker: 400 steps each, scaled to their own

Figures: results/benchmarks/bench_matcher.json (seconds per version and repeat, the ratio).

`--profile` instead times this checkout's matcher at its shipped params for `--steps` (default 200)
steps and counts the matrix-product FLOPs of a step: at this machine's own rate on the same shapes,
the products alone take a share of the step; the rest is what any exact speed-up (same maths, fewer
kernels) could still remove.

    python benchmarks/bench_matcher.py --profile --out results/benchmarks/bench_matcher-profile.json

`--device cuda` runs either on the GPU. `--graph` (CUDA only) times what `matcher.cuda_graph` buys:
the step is a fixed sequence of small kernels, so on a GPU its cost is launching them, which a
captured graph replays in one launch. It trains this checkout's matcher eagerly and with the step
captured (`lsdm.models.matching._replayed`), from the same weights, and reports both times.

    python benchmarks/bench_matcher.py --device cuda --graph --out results/benchmarks/bench_matcher-cuda-graph.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n_pairs: int, n_pool: int, n_classes: int, dim: int, seed: int = 0):
    """Latents of the default run's shapes: one Gaussian blob per class, standardised scale."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g)
    pool_y = torch.arange(n_pool) % n_classes
    pool = centres[pool_y] + 0.5 * torch.randn(n_pool, dim, generator=g)
    cond = torch.arange(n_pairs) % n_classes
    return cond, centres[cond] + 0.5 * torch.randn(n_pairs, dim, generator=g), pool, pool_y


def setup(code: str | Path, steps: int, threads: int, sets: dict, device: str = "cpu"):
    """Import lsdm from `code` and build its matcher on synthetic latents, at that version's own
    params.yaml matcher section with `sets` applied (keeping the keys the version knows) and `steps`
    steps (0: its own), all on `device`: (its training module, the params, its shipped steps, the
    matcher, `train_matcher`'s positional and keyword arguments after the two)."""
    sys.path.insert(0, str(code))
    import importlib.util
    import inspect

    import torch

    torch.set_num_threads(threads)
    from lsdm.config import MatcherParams

    # the matching loop's module: lsdm.models.matching since 2026-12-08, lsdm.models.training before
    training = importlib.import_module(
        "lsdm.models.matching" if importlib.util.find_spec("lsdm.models.matching") else "lsdm.models.training"
    )
    from lsdm.models.matcher import matcher_config, wgan_gp_mlp

    shipped = {**yaml.safe_load((Path(code) / "params.yaml").read_text())["matcher"], **sets}
    raw = {**shipped, "steps": steps or shipped["steps"]}
    p = MatcherParams(**{k: v for k, v in raw.items() if k in MatcherParams.model_fields})
    cond, z, pool, pool_y = (t.to(device) for t in synthetic(100, 3500, 10, 16))
    torch.manual_seed(p.seed)
    m = wgan_gp_mlp(**matcher_config(p, {"kind": "label", "n_classes": 10}, 16)).to(device)
    extra = {}
    if "pseudo" in inspect.signature(training.train_matcher).parameters:  # the class-aware term's labels
        extra["pseudo"] = (pool, pool_y, torch.full((len(pool),), 0.95, device=device))
    return training, p, shipped["steps"], m, (cond, z, pool), extra


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def inner(code: str, steps: int, threads: int, sets: dict, device: str) -> None:
    """In a child process: `setup` the version in `code`, train once, print the seconds as JSON: a
    schedule change (n_critic, critic_width, ...) is timed as each commit ships it."""
    training, p, shipped_steps, m, data, extra = setup(code, steps, threads, sets, device)
    synchronize(device)
    t0 = time.perf_counter()
    training.train_matcher(m, p, *data, **extra)
    synchronize(device)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "as_shipped": seconds * shipped_steps / p.steps,
                "module": training.__file__,
                "matcher": p.model_dump(),
            }
        )
    )


def peak_matmul_gflops(rows: int, width: int, repeats: int = 2000) -> float:
    """This machine's rate (GFLOP/s) on the matcher's own product shape, [rows, width] @ [width, width]."""
    import torch

    a, w = torch.randn(rows, width), torch.randn(width, width)
    for _ in range(50):
        a @ w
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ w
    return 2 * rows * width * width * repeats / (time.perf_counter() - t0) / 1e9


def profile(steps: int, threads: int, sets: dict) -> dict:
    """This checkout's matcher: its step time over `steps` steps, the matrix-product FLOPs of a step
    (counted by torch.profiler over a few more), and the time those products take at this machine's
    own rate on the batch's shape: the step time over that is the most any exact speed-up (same
    products, less of everything else) could buy. The profiler's own overhead stays out of the times."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    training, p, _, m, data, extra = setup(ROOT, steps, threads, sets)
    counted = 10
    with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        training.train_matcher(m, p.model_copy(update={"steps": counted}), *data, **extra)
    products = [e for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
    gflop = sum(e.flops for e in products) / counted / 1e9
    t0 = time.perf_counter()
    training.train_matcher(m, p, *data, **extra)
    per_step = (time.perf_counter() - t0) / steps
    peak = {f"{r}x{p.width}": peak_matmul_gflops(r, p.width) for r in (p.batch_size, 2 * p.batch_size)}
    at_peak = gflop / max(peak.values())
    return {
        "steps": steps,
        "threads": threads,
        "matcher": p.model_dump(),
        "seconds_per_step": per_step,
        "products_gflop_per_step": gflop,
        "products_calls_per_step": sum(e.count for e in products) / counted,
        "peak_gflops": peak,
        "products_seconds_per_step_at_peak": at_peak,
        "achieved_gflops": gflop / per_step,
        "exact_speedup_bound": per_step / at_peak,
    }


def graph_trial(steps: int, sets: dict, device: str) -> dict:
    """Seconds of this checkout's `train_matcher` on a GPU over `steps` generator steps (0: the shipped
    number), with `cuda_graph` off (eager) and on (the step captured once, then replayed), each from
    the same initial weights after a 20-step run that warms CUDA up; and how far apart the two runs'
    weights end (the same kernels on the same draws; a GAN drifts from rounding over many steps)."""
    import torch

    seconds, weights = {}, {}
    for mode, graphed in (("eager", False), ("graph", True)):
        case = {**sets, "cuda_graph": graphed}
        training, p, _, m, data, extra = setup(ROOT, 20, 1, case, device)
        training.train_matcher(m, p, *data, **extra)
        training, p, shipped, m, data, extra = setup(ROOT, steps, 1, case, device)
        synchronize(device)
        t0 = time.perf_counter()
        training.train_matcher(m, p, *data, **extra)
        synchronize(device)
        seconds[mode] = time.perf_counter() - t0
        weights[mode] = torch.cat([q.detach().flatten() for q in m.parameters()])
    return {
        "device": torch.cuda.get_device_name(),
        "matcher": p.model_dump(exclude={"cuda_graph"}),
        "steps": p.steps,
        "shipped_steps": shipped,
        "seconds": seconds,
        "ms_per_step": {k: 1e3 * v / p.steps for k, v in seconds.items()},
        "graph_speedup": seconds["eager"] / seconds["graph"],
        "max_abs_weight_difference": (weights["eager"] - weights["graph"]).abs().max().item(),
    }


def unpack(ref: str, dest: Path) -> Path:
    tar = subprocess.run(
        ["git", "archive", ref, "lsdm", "params.yaml"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default="HEAD", help="the earlier commit to compare with (default: %(default)s)")
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="generator steps of both (default: each version's own "
        "matcher.steps); the ratio is taken at each version's own steps, scaled from these",
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LSDM_THREADS", "2")))
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/bench_matcher.json")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a matcher param for both versions, e.g. --set marginal=class_aware (where a version has it)",
    )
    ap.add_argument("--profile", action="store_true", help="profile this checkout's matcher instead (see above)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    ap.add_argument("--graph", action="store_true", help="CUDA graphs: time the step eager and replayed (see above)")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--inner-sets", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    steps = args.steps
    if args.inner:  # the parent parsed --set: importing this checkout's lsdm here would shadow the version timed
        inner(args.inner, steps, args.threads, json.loads(args.inner_sets), args.device)
        return 0
    from lsdm.config import parse_assignments

    sets = parse_assignments(args.set)
    if args.graph:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from record import Run

        run, figures = Run(), graph_trial(steps, sets, args.device)
        t = figures["ms_per_step"]
        print(
            f"train_matcher, {figures['steps']} steps: {t['eager']:.2f} ms a step eager, {t['graph']:.2f} replayed as a "
            f"CUDA graph ({figures['graph_speedup']:.1f}x); weights apart by at most {figures['max_abs_weight_difference']:.2g}"
        )
        run.write(args.out, figures)
        return 0
    if args.profile:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from record import Run

        run, figures = Run(), profile(steps or 200, args.threads, sets)
        print(json.dumps(figures, indent=1))
        print(
            f"{figures['seconds_per_step'] * 1000:.1f} ms a step, {figures['products_gflop_per_step']:.2f} GFLOP of matrix "
            f"products in it ({figures['achieved_gflops']:.0f} GFLOP/s over the whole step; this machine's products "
            f"run at {max(figures['peak_gflops'].values()):.0f}): an exact speed-up that kept every product could buy "
            f"at most {figures['exact_speedup_bound']:.2f}x"
        )
        run.write(args.out, figures)
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from record import Run

    run = Run()
    ref = subprocess.run(
        ["git", "rev-parse", args.ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    as_shipped: dict[str, list[float]] = {"before": [], "after": []}  # scaled to the version's own steps
    matchers: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-matcher-") as tmp:
        versions = {"before": str(unpack(ref, Path(tmp))), "after": str(ROOT)}
        for r in range(args.repeats):
            for name, code in versions.items():
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--inner",
                        code,
                        "--steps",
                        str(steps),
                        "--threads",
                        str(args.threads),
                        "--device",
                        args.device,
                        "--inner-sets",
                        json.dumps(sets),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                doc = json.loads(out.stdout.strip().splitlines()[-1])
                assert doc["module"].startswith(code), doc  # the version it claims to time
                seconds[name].append(round(doc["seconds"], 2))
                as_shipped[name].append(round(doc["as_shipped"], 2))
                matchers[name] = doc["matcher"]
                print(
                    f"repeat {r}: {name:6s} {doc['seconds']:7.1f} s ({doc['matcher']['steps']} steps, "
                    f"{args.threads} threads; {doc['as_shipped']:.1f} s at its shipped steps)",
                    flush=True,
                )
    best = {k: min(v) for k, v in as_shipped.items()}
    figures = {
        "ref": ref,
        "steps": steps or "each version's own",
        "threads": args.threads,
        "device": args.device,
        "seconds": seconds,
        "seconds_as_shipped": as_shipped,
        "matcher": matchers,
        "speedup": round(best["before"] / best["after"], 2),
        "best_seconds_as_shipped": {k: round(v, 1) for k, v in best.items()},
    }
    print(f"speed-up (best of {args.repeats}): {figures['speedup']}x")
    run.write(args.out, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
