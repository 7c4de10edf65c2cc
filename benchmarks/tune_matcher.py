"""Choose the matcher's settings on the validation split: train each variant on the
pipeline's own latents and judge it with the pipeline's own evaluation, on `val` images only.

Run from a workspace where `dvc repro encode eval_net` has run (the shared stages: images with their
train/val/test split, autoencoder, latents, evaluation net). Every (variant x paired count x split
seed) runs in a scratch workspace holding the shared files, the job's paired subset and the job's own
pseudo-labels (as stage pseudo_label makes them): LSDM by fit_matcher's own `lsdm.methods.lsdm.prepare`
and `MatcherFit.train`, any other method (`method=<name>`) by its own `fit` and samplers, except
`method=latent_flow`, which trains `lsdm.methods.flow_matching.train_flow_matching` as
fit_baseline@latent_flow does so that its curve can be judged along training (one row per NFE), and
is judged by
`lsdm.evaluation.judge.judge_sampler` with `evaluate.split: val` and generation seed 0; `--curve-every K`
also records label accuracy, FID and PRDC on val every K steps (the `curve` column, JSON); `--sample K:P`
also judges each trained LSDM matcher drawing as `sample.candidates: K`, `sample.accept: P` would (a row
`<variant>_cK_aP`: the same weights, the class model of the job's own pseudo-labels), with the latent
Gaussian model; `--sample K:P:image` with the image classifier stage pseudo_label would train (a row
`<variant>_imgK_aP`). `--matchers DIR` keeps each trained LSDM matcher there (`<variant>_n<count>_s<seed>.pt`)
and loads it instead of training when it is there (its `train_seconds` then empty): more draws judged
later on the same weights. Nothing under data/ or results/ is written: the table goes to --out (CSV)
and to stdout.

    python benchmarks/tune_matcher.py --counts 10 100 --jobs 2 \
        --variant base: --variant proj:matcher.critic=projection \
        --variant proj_m1:matcher.critic=projection,matcher.marginal_weight=1 \
        --variant flow:method=latent_flow
    python benchmarks/tune_matcher.py --counts 10 --variant w32:method=pixel_wgan,pixel_wgan.width=32

Test metrics are never computed here: the test split is judged once, by the default run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lsdm.config import parse_variant  # noqa: E402

COLUMNS = ["label_accuracy", "fid_evalnet", "precision", "recall", "density", "coverage"]


def quick_judge(ref, sampler, batch_size: int = 500) -> dict:
    """Label accuracy, FID and PRDC (evalnet features) of one sample per validation image, noise seed 0:
    the cheap part of `judge_sampler`, for curves along training."""
    from lsdm.evaluation.geometry import prdc
    from lsdm.evaluation.judge import evalnet_features
    from lsdm.evaluation.metrics import fid
    from lsdm.methods.sampling import fixed_noise, sample

    was_training = sampler.training
    sampler.eval()
    fake = sample(sampler, ref.cond, fixed_noise(len(ref.cond), sampler.noise_dim, 0, ref.device), batch_size)
    sampler.train(was_training)
    feats = evalnet_features(ref.evalnet, fake)
    return {
        "label_accuracy": ref.classify(feats)[0],
        "fid_evalnet": fid(ref.real_feats, feats),
        **prdc(ref.real_feats, feats, ref.p.pr_k, ref.p.dc_k).as_dict(),
    }


def one_run(job: tuple[str, dict, int, int, int | None, int | None, list[tuple[int, float]]]) -> dict:
    """Train one variant (the LSDM matcher, or latent_flow with `method: latent_flow`) on one paired
    subset; judge it on the validation split, every `curve_every` steps too when given."""
    import torch

    torch.set_num_threads(int(os.environ.get("TUNE_THREADS", "1")))
    from lsdm import paths
    from lsdm.config import load_params
    from lsdm.data.schemas import IMAGES, LATENTS
    from lsdm.data.tables import codes, labels_tensor, latent_pool, paired_subset, to_tensor
    from lsdm.evaluation.judge import Reference, judge_sampler
    from lsdm.io import read_json, read_table
    from lsdm.methods.flow_matching import train_flow_matching
    from lsdm.methods.latent_flow import FlowSampler
    from lsdm.methods.lsdm import LSDMSampler
    from lsdm.models import build, load
    from lsdm.models.matching import variant_name
    from lsdm.models.training import seed_everything
    from lsdm.tasks import make_task

    name, overrides, count, seed, steps, curve_every, draws, matchers = job
    overrides = dict(overrides)
    method = overrides.pop("method", "lsdm")
    sets = {
        **overrides,
        "split.n_paired_per_class": count,
        "split.seed": seed,
        "evaluate.split": "val",
        "evaluate.seeds": [0],
        "base.device": "cpu",
    }
    if steps:
        sets[f"{method}.steps" if method != "lsdm" else "matcher.steps"] = steps
    params = load_params(overrides=sets)
    device, task = torch.device("cpu"), make_task(params)
    images = read_table(paths.IMAGES, IMAGES)
    latents = read_table(paths.LATENTS, LATENTS)
    paired = paired_subset(images, count, params.split.n_paired, seed)
    z = codes(latents, paired["id"])
    cond = task.conditions(to_tensor(images.set_index("id").loc[paired["id"]]), labels_tensor(paired))
    stats = read_json(paths.LATENT_STATS)
    ae, mean, std = load(paths.AUTOENCODER, device), torch.tensor(stats["mean"]), torch.tensor(stats["std"])
    ref = Reference.load(params, device)
    curve: list[dict] = []
    spec = task.condition_spec(images)
    scratch = kept = None
    if method != "latent_flow":  # LSDM or any other method of the registry, by its own fit and samplers
        import tempfile

        from lsdm.data.schemas import LATENT_POOL, PAIRED
        from lsdm.io import write_table
        from lsdm.methods import method as method_module

        if curve_every and method != "lsdm":
            raise SystemExit(f"--curve-every: {method} samples from its checkpoint, written when training ends")
        module = method_module(method)
        scratch = tempfile.TemporaryDirectory(prefix="tune-")
        root = Path(scratch.name)
        for shared in (paths.IMAGES.parent, paths.AUTOENCODER.parent, paths.LATENTS.parent, paths.EVALNET.parent):
            (root / shared).parent.mkdir(parents=True, exist_ok=True)
            (root / shared).symlink_to(Path.cwd() / shared)
        write_table(paired, root / paths.PAIRED, PAIRED)  # the split stage's two tables for this job
        pool_ids = latent_pool(images, paired, params.split.n_unpaired, params.split.seed)["id"]
        write_table(pool_ids.to_frame(), root / paths.LATENT_POOL, LATENT_POOL)
        table = None
        if paths.PSEUDO_LABELS in (
            *module.FIT_READS,
            *module.SAMPLE_READS,
        ):  # the job's own, as pseudo_label makes them
            from lsdm.data.schemas import PSEUDO_LABELS
            from lsdm.pipeline.pseudo_label import label_pool

            table = label_pool(params, pool_ids, codes(latents, pool_ids).numpy(), paired)
            write_table(table, root / paths.PSEUDO_LABELS, PSEUDO_LABELS)
        out = paths.method_data(method, root)
        out.mkdir(parents=True)
    if method == "lsdm":  # fit_matcher's own `prepare` and `train`; the sampler on the live generator (curves, draws)
        from lsdm.methods.common import latent_classes
        from lsdm.models.latent_classes import DecodedClasses
        from lsdm.pipeline.pseudo_label import fit_pool_classifier

        job = module.prepare(params, device, root)
        matcher, p = job.matcher, params.matcher
        classes = {}
        if any(f == "latent" for *_, f in draws):
            classes["latent"] = latent_classes(params, device, root)
        if any(f == "image" for *_, f in draws):
            classes["image"] = DecodedClasses(fit_pool_classifier(params, table, paired, device)[0], ae, mean, std)
        kept = Path(matchers) / f"{name}_n{count}_s{seed}.pt" if matchers else None

        def samplers():
            return [
                ("", LSDMSampler(matcher.generator, ae, mean, std)),
                *(
                    (
                        f"{'img' if f == 'image' else 'c'}{k}_a{a:g}",
                        LSDMSampler(matcher.generator, ae, mean, std, classes[f], k, a),
                    )
                    for k, a, f in draws
                ),
            ]

        probe = lambda: samplers()[0][1]  # noqa: E731

        def train(log):
            if kept is not None and kept.exists():
                return matcher.load_state_dict(torch.load(kept, weights_only=True))
            job.train(log, log_every=curve_every or 10, desc=f"{name} n{count} s{seed}")
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                torch.save(matcher.state_dict(), kept)

        label, n_steps = variant_name(p, job.pseudo is not None), p.steps
    elif method != "latent_flow":
        p = getattr(params, method)
        samplers = lambda: module.samplers(device, params, root)  # noqa: E731
        train = lambda log: module.fit(params, device, out, log, root=root)  # noqa: E731
        label, n_steps = f"{method} ({', '.join(f'{k}={v}' for k, v in p.model_dump().items())})", p.steps
    else:
        p = params.latent_flow
        seed_everything(p.seed)
        velocity = build("flow_mlp", dict(condition=spec, z_dim=z.shape[1], width=p.width, depth=p.depth))
        samplers = lambda: [(f"nfe{n}", FlowSampler(velocity, ae, mean, std, n, p.solver)) for n in p.nfe]  # noqa: E731
        probe = lambda: FlowSampler(velocity, ae, mean, std, 10, p.solver)  # noqa: E731

        def train(log):
            return train_flow_matching(
                velocity,
                cond,
                z,
                steps=p.steps,
                batch_size=p.batch_size,
                lr=p.lr,
                seed=p.seed,
                log=log,
                log_every=curve_every or 25,
            )

        label, n_steps = f"latent_flow (lr {p.lr}, {p.steps} steps)", p.steps

    judge_seconds = 0.0

    def log(step: int, _: dict) -> None:  # validation curve; its time is kept out of train_seconds
        nonlocal judge_seconds
        if curve_every and (step % curve_every == 0 or step == n_steps):
            t = time.perf_counter()
            with torch.no_grad():
                curve.append({"step": step, **quick_judge(ref, probe())})
            judge_seconds += time.perf_counter() - t

    t0 = time.perf_counter()
    loaded = kept is not None and kept.exists()
    train(log)
    seconds = float("nan") if loaded else time.perf_counter() - t0 - judge_seconds
    real = ref.real_reference()
    rows = []
    for suffix, sampler in samplers():
        m = judge_sampler(ref, sampler.eval()).metrics
        suffix = "" if suffix == method else suffix
        rows.append(
            {
                "variant": name + (f"_{suffix}" if suffix else ""),
                "matcher": label,
                "overrides": json.dumps(overrides),
                "n_per_class": count,
                "seed": seed,
                "steps": n_steps,
                **{k: m.get(k) for k in COLUMNS},
                "density_real": real["density"],
                "recall_real": real["recall"],
                "train_seconds": seconds,
                "curve": json.dumps(curve),
                "sampler_parameters": sum(x.numel() for x in sampler.parameters()),
            }
        )
    if scratch is not None:
        scratch.cleanup()
    return rows


def plot_curves(table: pd.DataFrame, out: Path, variants: list[str] | None = None) -> None:
    """Validation metrics against training step, one column per paired count, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table[table["curve"].fillna("[]") != "[]"].drop_duplicates(["variant", "n_per_class", "seed"])
    rows = rows[rows["variant"].isin(variants)] if variants else rows
    rows = rows.drop_duplicates(["matcher", "n_per_class", "seed"])  # latent_flow: one curve (NFE 10)
    counts = sorted(rows["n_per_class"].unique())
    names = ["label_accuracy", "fid_evalnet", "recall", "density"]
    fig, axes = plt.subplots(len(names), len(counts), figsize=(5 * len(counts), 2.6 * len(names)), squeeze=False)
    for j, count in enumerate(counts):
        for _, r in rows[rows["n_per_class"] == count].iterrows():
            curve = pd.DataFrame(json.loads(r["curve"]))
            label = r["variant"].removesuffix("_nfe1") if "latent_flow" not in r["matcher"] else "latent_flow (NFE 10)"
            for i, name in enumerate(names):
                axes[i, j].plot(curve["step"] / curve["step"].max(), curve[name], lw=1.2, label=label)
        for i, name in enumerate(names):
            axes[i, j].set(title=f"{name}, {count} pairs/class (val)", xlabel="fraction of training")
            axes[i, j].grid(alpha=0.3)
            if name == "fid_evalnet":
                axes[i, j].set_yscale("log")
        if "density_real" in rows:
            axes[3, j].axhline(rows["density_real"].iloc[0], color="k", ls=":", lw=1, label="real")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", action="append", required=True, help="name:key=value,... (dotted params keys)")
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 100], help="split.n_paired_per_class values")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="split.seed values")
    ap.add_argument("--steps", type=int, default=None, help="training steps of every run (default: params.yaml)")
    ap.add_argument("--curve-every", type=int, default=None, help="judge on val every this many steps (curves)")
    ap.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="K:P[:FILTER]",
        help="also judge each LSDM matcher with sample.candidates K, sample.accept P and sample.filter "
        "FILTER (latent, the default, or image)",
    )
    ap.add_argument(
        "--matchers", default=None, metavar="DIR", help="keep trained LSDM matchers here; load them if there"
    )
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    ap.add_argument("--out", default="tune_matcher.csv", help="CSV of every run")
    ap.add_argument("--plot", nargs="+", metavar="CSV", help="only draw the curves of these tables into --out (PNG)")
    args = ap.parse_args(argv)
    if args.plot:  # --variant names the variants to draw
        table = pd.concat([pd.read_csv(f) for f in args.plot])
        plot_curves(table, Path(args.out), [parse_variant(v)[0] for v in args.variant])
        return
    draws = [(int(k), float(a), (f or ["latent"])[0]) for k, a, *f in (d.split(":") for d in args.sample)]
    if bad := [f for *_, f in draws if f not in ("latent", "image")]:
        raise SystemExit(f"--sample: filter {bad[0]!r} is not latent or image")
    jobs = [
        (name, ov, c, s, args.steps, args.curve_every, draws, args.matchers)
        for name, ov in map(parse_variant, args.variant)
        for c in args.counts
        for s in args.seeds
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = []
        for result in pool.map(one_run, jobs):
            rows += result
            for row in result:
                print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    summary = table.groupby(["variant", "n_per_class"])[COLUMNS + ["density_real", "train_seconds"]].mean()
    print(summary.round(3).to_string())
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f}s ({args.jobs} in parallel); table: {args.out}")


if __name__ == "__main__":
    main()
