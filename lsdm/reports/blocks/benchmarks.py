"""The blocks of the benchmarks (results/benchmarks/, benchmarks/*.py): the pipeline's repro times and
memory on a CPU and a GPU, the matcher's step as a CUDA graph, the sweep's fan-out over workers, and
each stage against the number of images. Each says where its figures were measured, or that they were
transcribed."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from lsdm.reports.blocks.formatting import listed, num, provenance, transcribed
from lsdm.reports.blocks.registry import block, read

BENCH_PIPELINE = "results/benchmarks/bench_pipeline-shipped.json"
BENCH_FANOUT = "results/benchmarks/bench_fanout-tiny.json"
BENCH_FANOUT_SHIPPED = "results/benchmarks/bench_fanout-shipped.json"
BENCH_PIPELINE_GPU = "results/benchmarks/bench_pipeline-shipped-cuda.json"


@block("bench-pipeline", BENCH_PIPELINE)
def bench_pipeline(root: Path, path: str = BENCH_PIPELINE) -> list[str]:
    """One `bench_pipeline.py` run (`path`: on a CPU, or on a GPU): repro times, throughput, peak memory."""
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


block("bench-pipeline-gpu", BENCH_PIPELINE_GPU)(partial(bench_pipeline, path=BENCH_PIPELINE_GPU))


#: `bench_matcher.py --graph`: the first trial (a step rewritten for capture), then `train_matcher` off and on.
BENCH_GRAPH = (
    "results/benchmarks/bench_matcher-cuda-graph-trial.json",
    "results/benchmarks/bench_matcher-cuda-graph.json",
)


@block("gpu-graph", *BENCH_GRAPH)
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


@block("scale", *SCALE_FILES)
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


@block("fanout", BENCH_FANOUT, BENCH_FANOUT_SHIPPED)
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
