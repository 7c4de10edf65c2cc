"""evaluate: LSDM's one-step samples for every test condition, judged by `lsdm.evaluation.judge`.

Besides the metrics every method gets (`judge_sampler`), LSDM's run records what only it has:
the bound's three terms (`lsdm.evaluation.bound`: reconstruction, Lip(D), the critic's held-out W1), the
autoencoder's reconstruction error, a real-vs-real reference (what a perfect generator scores),
each stage's wall time and the task's reference baselines on the same test set (super-resolution:
bicubic, `eval.references.bicubic.*`). Outputs: results/evaluate/metrics.json (DVC metrics, under `eval.*`: the
registry's headline scalars only, so `dvc exp show` stays readable), results/evaluate/details.json
(everything else, same keys; `registry.read_results` merges the two), results/evaluate/samples.png
(one row per class; for super-resolution input | bicubic | LSDM draws | truth), and
results/evaluate/plots/*.tsv (DVC plots: PRDC against k, per-class figures).
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time

import numpy as np
from torchvision.utils import save_image

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.pixels import load_images
from lsdm.data.schemas import PAIRED
from lsdm.data.tables import labels_tensor
from lsdm.evaluation import registry
from lsdm.evaluation.bound import critic_w1, decoder_lipschitz, lipschitz_probe_points
from lsdm.evaluation.judge import (
    Judgement,
    Reference,
    as_evaluated,
    brief,
    curves,
    judge_sampler,
    latents_of,
    stage_seconds,
)
from lsdm.evaluation.metrics import reconstruction_errors
from lsdm.evaluation.transport import bound_sides, capped
from lsdm.io import atomic_dir, read_table, write_json
from lsdm.methods.lsdm import LSDMSampler
from lsdm.methods.sampling import fixed_noise, sample
from lsdm.models import load
from lsdm.models.matcher import Matcher
from lsdm.models.training import batched


@contextlib.contextmanager
def phase(what: str):
    """A line (stderr) as a part of evaluate starts and one with its wall time and the process's
    peak memory so far as it ends: at scale each part takes minutes, and a stage that prints nothing
    looks hung; the peaks say which part sets the stage's memory."""
    t0 = time.perf_counter()
    print(f"evaluate: {what} ...", file=sys.stderr, flush=True)
    yield
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    print(
        f"evaluate: {what}: {time.perf_counter() - t0:.1f}s (peak RSS so far {peak_gb:.2f} GB)",
        file=sys.stderr,
        flush=True,
    )


def bound_terms(
    ref: Reference, sampler: LSDMSampler, critic, judgement: Judgement, z_test, recon_each: np.ndarray
) -> dict:
    """The bound on held-out data, measured: exact W1 of the pixel and latent joints
    (`lsdm.evaluation.transport`), Lip(D), the reconstruction term; and the critic's W1 estimates, on
    held-out and on its own training pairs, as a diagnostic of memorisation (not a term of the bound).
    `recon_each`: ||y - D(E(y))|| of each held-out image."""
    p, device, seed = ref.p, ref.device, ref.p.seeds[0]
    ae, std, mean = sampler.autoencoder, sampler.std, sampler.mean
    probe = lipschitz_probe_points(z_test, judgement.z_fake0, p.lipschitz_samples, seed)
    lip = decoder_lipschitz(lambda zs: ae.decode(zs * std + mean), probe)
    paired = read_table(paths.PAIRED, PAIRED)
    pair_images = load_images(paths.IMAGES, paired["id"], device)
    pair_cond = ref.task.conditions(pair_images, labels_tensor(paired).to(device))
    pair_eta = fixed_noise(len(paired), sampler.noise_dim, seed, device)
    pair_fake = sample(sampler.codes, pair_cond, pair_eta, p.batch_size)
    w1_train = critic_w1(critic, pair_cond, latents_of(paired["id"], device), pair_fake)
    labels = ref.labels_np if ref.judges_labels else None
    # the capped held-out points (`capped`, the draw bound_sides would make): D(G(x, eta)), what the
    # bound is about, is decoded at those alone, and bound_sides gets them uncapped
    keep = capped(len(ref.cond), p.bound_max_points, labels, seed)
    raw = batched(lambda z: ae.decode(z * std + mean), judgement.z_fake0[keep])
    with phase(f"the bound: exact W1 on {len(keep)} held-out points, {p.bound_bootstrap} bootstrap draws"):
        measured = bound_sides(
            ref.y_test[keep].cpu().numpy(),
            raw.cpu().numpy(),
            z_test[keep].cpu().numpy(),
            judgement.z_fake0[keep].cpu().numpy(),
            lip["decoder_lipschitz_spectral_max"],
            recon_each[keep],
            None if labels is None else labels[keep],
            ref.cond[keep].float().cpu().numpy(),
            bootstrap=p.bound_bootstrap,
            seed=seed,
        )
    measured["points_held_out"] = len(ref.cond)
    return {
        "recon_l2_test": float(recon_each.mean()),
        **lip,
        **measured,
        "critic_w1_test": judgement.metrics["critic_w1_test"],
        "critic_w1_train_pairs": w1_train,
    }


def run(params: Params) -> None:
    t_start = time.perf_counter()
    device = resolve_device(params.base.device)
    with phase(f"the {params.evaluate.split} images and their features"):
        ref = Reference.load(params, device)
    sampler, critic = LSDMSampler.from_pipeline(device, params=params), load(paths.MATCHER, device, Matcher).critic
    z_test = latents_of(ref.test["id"], device)
    with phase(f"LSDM on {len(ref.cond)} held-out conditions x {len(params.evaluate.seeds)} generation seeds"):
        judgement = judge_sampler(
            ref, as_evaluated(ref, sampler), critic=critic, generator=sampler.codes, z_test=z_test
        )
    with phase("the real data's own reference scores"):
        real_reference = ref.real_reference()
    real_div_pc = real_reference.pop("_diversity_per_class")
    real_acc, _ = ref.classify(ref.real_feats)
    with phase("reconstructions of the held-out images"):
        rec = reconstruction_errors(
            sampler.autoencoder, (ref.y_test[i : i + 512] for i in range(0, len(ref.y_test), 512))
        )
    times = stage_seconds()
    bound = bound_terms(ref, sampler, critic, judgement, z_test, rec["l2_each"])
    metrics = {
        "eval": {
            **judgement.metrics,
            "evalnet_accuracy_real_test": real_acc,
            "fid_evalnet_train_vs_test": real_reference["fid_evalnet"],
            "diversity_evalnet_real": real_reference["diversity_evalnet"],
            "real_reference": real_reference,
            "bound": bound,
            "recon_mse_test": rec["mse"],
            "recon_mae_test": rec["mae"],
            "stage_seconds": times,
        }
    }
    judge = lambda s: brief(judge_sampler(ref, s).metrics)  # noqa: E731  (a sampler judged beside LSDM)
    references = {}
    for name, s in ref.task.reference_samplers(device):
        with phase(f"reference sampler {name}"):
            references[name] = judge(s)
    if references:  # the task's classical baselines, on the same test set in the same run
        metrics["eval"]["references"] = references
    metrics["eval"].update(ref.task.extra_results(ref, sampler, judge))

    tables = curves(ref, judgement, real_div_pc)
    with atomic_dir(paths.EVAL_DIR) as out:
        (out / "plots").mkdir()
        for name, table in tables.items():
            table.to_csv(out / "plots" / name, sep="\t", index=False)
        save_image(judgement.grid, out / paths.SAMPLES.name, nrow=judgement.grid_nrow, padding=2, pad_value=1.0)
        times["evaluate"] = time.perf_counter() - t_start
        headline, details = registry.split_results(metrics["eval"])
        write_json({"eval": headline}, out / paths.EVAL_METRICS.name)
        write_json({"eval": details}, out / paths.EVAL_DETAILS.name)
    print(summary_line(metrics["eval"], times["evaluate"]))


def summary_line(e: dict, seconds: float) -> str:
    parts = [
        f"{k} {e[k]:.3f}"
        for k in (
            "label_accuracy",
            "fid_evalnet",
            "precision",
            "recall",
            "density",
            "coverage",
            "psnr",
            "consistency_psnr",
        )
        if e.get(k) is not None
    ]
    if e.get("evalnet_accuracy_real_test") is not None:
        parts.append(f"(evalnet on real test {e['evalnet_accuracy_real_test']:.3f})")
    for name, r in (e.get("references") or {}).items():
        shown = ", ".join(
            f"{k} {r[k]:.3f}" for k in ("fid_evalnet", "psnr", "consistency_psnr") if r.get(k) is not None
        )
        parts.append(f"| {name}: {shown}")
    lines = [f"evaluate: {', '.join(parts)}; {seconds:.1f}s"]
    for what, reason in (("Inception FID/KID", e["inception_reason"]), ("LPIPS", e["lpips_reason"])):
        if reason:
            lines.append(f"evaluate: no {what}: {reason}")
    if e.get("fid_note"):
        lines.append(f"evaluate: warning: {e['fid_note']}")
    return "\n".join(lines)
