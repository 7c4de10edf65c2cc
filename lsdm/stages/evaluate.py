"""evaluate: one-step samples for every test condition, judged by standard metrics, named honestly.

For each generation seed in `evaluate.seeds`, one sample per real test image (conditioned on its
label), so real and generated sets have equal size. Then:

- conditional accuracy: does the evaluation net recover the conditioning label? (overall, per class)
- FID/KID in the evaluation net's feature space (clean-fid's functions), always; with clean-fid's
  Inception when its weights file is on disk, else `null` plus the reason (`lsdm.features`)
- precision/recall/density/coverage in the evaluation net's feature space (`lsdm.geometry`)
- diversity among samples of one condition: evalnet-feature distance always, LPIPS when its
  weights are on disk; each beside the same figure for real images
- a real-vs-real reference (a training sample vs the test set): what a perfect generator scores
- the bound's three terms (`lsdm.bound`): reconstruction, Lip(D), the critic's held-out W1
- speed: generation throughput (batch size and device stated) and each stage's wall time

The first seed gives the headline numbers; `eval.over_seeds` has mean and std over all seeds, so
a difference between runs can be told from sampling noise. Outputs: results/evaluate/metrics.json
(DVC metrics, nested under `eval.*`), results/evaluate/samples.png (one row per class), and
results/evaluate/plots/*.tsv (DVC plots: PRDC against k, and per-class figures).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchvision.utils import save_image

from lsdm import paths
from lsdm.bound import critic_w1, decoder_lipschitz, lipschitz_probe_points
from lsdm.config import EvaluateParams, Params, resolve_device
from lsdm.data import labels_tensor, to_tensor
from lsdm.features import evalnet_features, load_inception, load_lpips, pairwise_same_condition
from lsdm.generate import LSDMSampler, fixed_noise, sample
from lsdm.geometry import prdc, prdc_many, within_class_diversity
from lsdm.io import atomic_dir, read_json, read_table, write_json
from lsdm.metrics import fid, kid, label_accuracy, mae, mean_l2, mean_std, mse, per_class_fid_kid
from lsdm.models import load
from lsdm.schemas import IMAGES, LATENTS, PAIRED
from lsdm.tasks import make_task
from lsdm.train import batched, timed

PLOTS = paths.EVAL_DIR / "plots"
# Stages whose dvclive summary records a `<section>.train_seconds` (read for the wall-time table).
TIMED_STAGES = ("fit_latent", "fit_matcher", "eval_net")
OVER_SEEDS = ("label_accuracy", "fid_evalnet", "kid_evalnet", "precision", "recall", "density", "coverage",
              "diversity_evalnet", "critic_w1_test")  # fmt: skip


def _latents(ids: pd.Series, device: torch.device) -> torch.Tensor:
    """Standardised latents (the matcher's space) of the given image ids, in that order."""
    table = read_table(paths.LATENTS, LATENTS).set_index("id").loc[ids]
    return torch.from_numpy(np.stack(table["z"].to_numpy())).float().to(device)


@torch.no_grad()
def _generate_codes(generator: torch.nn.Module, cond: torch.Tensor, eta: torch.Tensor, batch_size: int) -> torch.Tensor:
    """G(x, eta) in batches: the standardised latents the decoder turns into samples."""
    out = [generator(cond[i : i + batch_size], eta[i : i + batch_size]) for i in range(0, len(cond), batch_size)]
    return torch.cat(out)


def stage_seconds(results: Path = paths.RESULTS) -> dict[str, float | None]:
    """Training wall time of each timed stage, from its dvclive summary (None if not recorded)."""
    out: dict[str, float | None] = {}
    for stage in TIMED_STAGES:
        f = results / stage / "metrics.json"
        summary = read_json(f) if f.exists() else {}
        found = [v["train_seconds"] for v in summary.values() if isinstance(v, dict) and "train_seconds" in v]
        out[stage] = float(found[0]) if found else None
    return out


def judge(real_feats: np.ndarray, fake_feats: np.ndarray, fake_labels, p: EvaluateParams, seed: int, device) -> dict:
    """The feature-space metrics of one generated (or real reference) set against the real test set."""
    kid_mean, kid_std = kid(real_feats, fake_feats, p.kid_subsets, p.kid_subset_size, seed)
    diversity, diversity_pc = within_class_diversity(fake_feats, fake_labels)
    n = min(len(real_feats), len(fake_feats))  # PRDC on equal-sized sets
    return {
        "fid_evalnet": fid(real_feats, fake_feats),
        "kid_evalnet": kid_mean,
        "kid_evalnet_std": kid_std,
        **prdc(real_feats[:n], fake_feats[:n], p.pr_k, p.dc_k, device=device).as_dict(),
        "diversity_evalnet": diversity,
        "_diversity_per_class": diversity_pc,
    }


def pretrained_metrics(p: EvaluateParams, device, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> dict:
    """Inception FID/KID and LPIPS diversity, only from local weight files; else None plus the reason.
    Headline seed only: these backbones are the slow part on a CPU."""
    seed = p.seeds[0]
    out: dict[str, Any] = {"fid_inception": None, "kid_inception": None, "kid_inception_std": None}
    inception, weights, out["inception_reason"] = load_inception(p.inception_weights, device)
    out["inception_weights"] = str(weights) if weights else None
    if inception is not None:
        real_i, fake_i = inception(real), inception(fake)
        out["kid_inception"], out["kid_inception_std"] = kid(real_i, fake_i, p.kid_subsets, p.kid_subset_size, seed)
        out["fid_inception"] = fid(real_i, fake_i)
    out.update(lpips_diversity=None, lpips_diversity_real=None)
    lpips_fn, out["lpips_reason"] = load_lpips(p.lpips_net, device, p.lpips_size)
    out["lpips_net"] = p.lpips_net
    if lpips_fn is not None:
        out["lpips_diversity"] = pairwise_same_condition(lpips_fn, fake, labels, p.diversity_pairs, seed)[0]
        out["lpips_diversity_real"] = pairwise_same_condition(lpips_fn, real, labels, p.diversity_pairs, seed)[0]
    return out


def bound_terms(sampler: LSDMSampler, critic, task, images: pd.DataFrame, y_test, z_test, z_fake, w1_test, p, device):
    """The bound's three terms on held-out data, plus the critic's value on its own training pairs."""
    seed = p.seeds[0]
    ae, std, mean = sampler.autoencoder, sampler.std, sampler.mean
    recon_l2 = mean_l2(batched(ae, y_test), y_test)
    probe = lipschitz_probe_points(z_test, z_fake, p.lipschitz_samples, seed)
    lip = decoder_lipschitz(lambda zs: ae.decode(zs * std + mean), probe)
    paired = read_table(paths.PAIRED, PAIRED)
    pair_images = to_tensor(images.set_index("id").loc[paired["id"]]).to(device)
    pair_cond = task.conditions(pair_images, labels_tensor(paired).to(device))
    pair_eta = fixed_noise(len(paired), sampler.noise_dim, seed, device)
    pair_fake = _generate_codes(sampler.generator, pair_cond, pair_eta, p.batch_size)
    w1_train = critic_w1(critic, pair_cond, _latents(paired["id"], device), pair_fake)
    lip_w1 = lip["decoder_lipschitz_spectral_max"] * w1_test
    return {
        "recon_l2_test": recon_l2,
        **lip,
        "critic_w1_test": w1_test,
        "critic_w1_train_pairs": w1_train,
        "lip_times_w1": lip_w1,
        "rhs": lip_w1 + recon_l2,
    }


def curves(real_feats, fake_feats, head: dict, real_div_pc: dict, acc_pc: list[dict], device) -> dict:
    """Tables for `dvc plots`: PRDC against k (headline seed) and per-class figures."""
    ks = [k for k in range(1, 11) if k < min(len(real_feats), len(fake_feats))]
    sweep = prdc_many(real_feats, fake_feats, [(k, k) for k in ks], device=device)
    classes = sorted(acc_pc[0], key=int)
    spread = [np.std([a.get(c, np.nan) for a in acc_pc], ddof=1) if len(acc_pc) > 1 else 0.0 for c in classes]
    per_class = {
        "class": [int(c) for c in classes],
        "label_accuracy": [acc_pc[0][c] for c in classes],
        "label_accuracy_std": spread,
        "diversity_evalnet": [head["_diversity_per_class"].get(c, np.nan) for c in classes],
        "diversity_evalnet_real": [real_div_pc.get(c, np.nan) for c in classes],
    }
    return {
        "prdc_vs_k.tsv": pd.DataFrame([{"k": k, **r.as_dict()} for k, r in zip(ks, sweep)]),
        "per_class.tsv": pd.DataFrame(per_class),
    }


def run(params: Params) -> None:
    t_start = time.perf_counter()
    p, device, task = params.evaluate, resolve_device(params.base.device), make_task(params)
    seed0 = p.seeds[0]
    images = read_table(paths.IMAGES, IMAGES)
    test, train = images[images["split"] == "test"], images[images["split"] == "train"]
    if p.n_samples is not None and p.n_samples < len(test):
        test = test.sample(p.n_samples, random_state=seed0).sort_values("id")
    y_test, labels = to_tensor(test).to(device), labels_tensor(test).to(device)
    sampler, evalnet = LSDMSampler.from_pipeline(device), load(paths.EVALNET, device)
    critic = load(paths.MATCHER, device).critic
    n_classes = evalnet.head.out_features
    cond = task.conditions(y_test, labels).to(device)
    z_test = _latents(test["id"], device)
    labels_np = labels.cpu().numpy()

    def classify(feats: np.ndarray) -> tuple[float, dict[str, float]]:
        return label_accuracy(evalnet.head(torch.from_numpy(feats).float().to(device)).argmax(1), labels, n_classes)

    # Real reference: a same-sized sample of real training images against the test set.
    real_feats = evalnet_features(evalnet, y_test)
    reference = train.sample(min(len(test), len(train)), random_state=seed0)
    ref_feats = evalnet_features(evalnet, to_tensor(reference).to(device))
    real_acc, _ = classify(real_feats)
    real_reference = judge(real_feats, ref_feats, reference["label"].to_numpy(), p, seed0, device)
    real_reference.pop("_diversity_per_class")
    real_div, real_div_pc = within_class_diversity(real_feats, labels_np)  # the test set's own diversity
    real_reference.update(diversity_evalnet=real_div, n=len(ref_feats))

    # One generated set per seed, one sample per test image; the first seed is the headline.
    per_seed, acc_per_class = [], []
    for seed in p.seeds:
        eta = fixed_noise(len(cond), sampler.noise_dim, seed, device)
        z_fake = _generate_codes(sampler.generator, cond, eta, p.batch_size)
        fake = sample(sampler, cond, eta, p.batch_size)
        fake_feats = evalnet_features(evalnet, fake)
        acc, acc_pc = classify(fake_feats)
        m = {"label_accuracy": acc, **judge(real_feats, fake_feats, labels_np, p, seed, device)}
        m["critic_w1_test"] = critic_w1(critic, cond, z_test, z_fake)
        per_seed.append(m)
        acc_per_class.append(acc_pc)
        if seed == seed0:
            fake0, fake_feats0, z_fake0 = fake, fake_feats, z_fake
    head = per_seed[0]

    fid_pc, kid_pc, per_class_note = per_class_fid_kid(
        real_feats, labels_np, fake_feats0, labels_np, min_samples=p.per_class_min_samples,
        kid_subsets=p.kid_subsets, kid_subset_size=p.kid_subset_size, seed=seed0,
    )  # fmt: skip
    pretrained = pretrained_metrics(p, device, y_test, fake0, labels)
    bound = bound_terms(sampler, critic, task, images, y_test, z_test, z_fake0, head["critic_w1_test"], p, device)
    rec = batched(sampler.autoencoder, y_test)

    bs = min(p.batch_size, len(cond))
    _, seconds = timed(lambda: sampler(cond[:bs], fixed_noise(bs, sampler.noise_dim, seed0, device)), device)
    times = stage_seconds()
    headline = ("label_accuracy", "fid_evalnet", "kid_evalnet", "kid_evalnet_std", "precision", "recall", "density",
                "coverage", "diversity_evalnet")  # fmt: skip
    metrics = {
        "eval": {
            "device": device.type,
            "n_samples": len(fake0),
            "seeds": list(p.seeds),
            **{k: head[k] for k in headline},
            "label_accuracy_per_class": acc_per_class[0],
            "evalnet_accuracy_real_test": real_acc,
            "fid_evalnet_train_vs_test": real_reference["fid_evalnet"],
            "diversity_evalnet_real": real_div,
            **pretrained,
            "per_class": {"fid_evalnet": fid_pc, "kid_evalnet": kid_pc, "note": per_class_note},
            "real_reference": real_reference,
            "over_seeds": {k: mean_std([m[k] for m in per_seed]) for k in OVER_SEEDS},
            "bound": bound,
            "recon_mse_test": mse(rec, y_test),
            "recon_mae_test": mae(rec, y_test),
            "throughput_images_per_s": bs / seconds,
            "throughput_batch_size": bs,
            "stage_seconds": times,
        }
    }

    tables = curves(real_feats, fake_feats0, head, real_div_pc, acc_per_class, device)
    grid_cond = torch.arange(n_classes, device=device).repeat_interleave(p.grid_per_class)
    grid = sample(sampler, grid_cond, fixed_noise(len(grid_cond), sampler.noise_dim, seed0 + 1, device))
    with atomic_dir(paths.EVAL_DIR) as out:
        (out / "plots").mkdir()
        for name, table in tables.items():
            table.to_csv(out / "plots" / name, sep="\t", index=False)
        save_image(grid, out / paths.SAMPLES.name, nrow=p.grid_per_class, padding=2, pad_value=1.0)
        times["evaluate"] = time.perf_counter() - t_start
        write_json(metrics, out / paths.EVAL_METRICS.name)
    e = metrics["eval"]
    print(
        f"evaluate: label accuracy {e['label_accuracy']:.3f} (real {real_acc:.3f}), "
        f"FID(evalnet) {e['fid_evalnet']:.2f}, precision {e['precision']:.3f}, recall {e['recall']:.3f}, "
        f"density {e['density']:.3f}, coverage {e['coverage']:.3f}; {times['evaluate']:.1f}s"
    )
    for what, reason in (("Inception FID/KID", e["inception_reason"]), ("LPIPS", e["lpips_reason"])):
        if reason:
            print(f"evaluate: no {what}: {reason}")
