"""Judging a sampler: the metrics `evaluate` (LSDM) and `evaluate_baseline` (every baseline) compute,
identically, for anything with the sampler interface `sampler(cond, eta) -> images in [0, 1]`.

For each generation seed in `evaluate.seeds`, one sample per real test image (conditioned on its
label or on its downsampled self), so real and generated sets have equal size. Then:

- conditional accuracy, where the evaluation net judges labels (overall, per class)
- FID/KID in the evaluation net's feature space (clean-fid's functions), always; with clean-fid's
  Inception when its weights file is on disk, else `null` plus the reason (`lsdm.evaluation.features`)
- precision/recall/density/coverage in the evaluation net's feature space (`lsdm.evaluation.geometry`)
- diversity among samples of one condition: evalnet-feature distance always, LPIPS when its
  weights are on disk; for super-resolution also the spread across noise draws of one input
- super-resolution: PSNR/SSIM to ground truth, consistency with the input, LPIPS to ground truth
- speed: generation throughput (batch size and device stated)

The first seed gives the headline numbers; `over_seeds` has mean and std over all seeds, so a
difference between runs can be told from sampling noise. Each metric's key, direction, reading and
whether it is averaged over seeds are declared in `lsdm.evaluation.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lsdm import paths
from lsdm.config import EvaluateParams, Params
from lsdm.data.pixels import image_meta, load_images
from lsdm.data.schemas import LATENTS
from lsdm.data.tables import codes, labels_tensor
from lsdm.errors import ParamsError
from lsdm.evaluation import registry
from lsdm.evaluation.bound import critic_w1
from lsdm.evaluation.features import evalnet_features, load_inception, load_lpips, pairwise_same_condition
from lsdm.evaluation.geometry import prdc, prdc_many, within_class_diversity
from lsdm.evaluation.metrics import fid, kid, label_accuracy, mean_std, per_class_fid_kid
from lsdm.io import read_json, read_table
from lsdm.methods.sampling import fixed_noise, sample
from lsdm.models import load
from lsdm.models.lenet import LeNet
from lsdm.models.training import timed
from lsdm.tasks import Task, make_task

# Stages whose dvclive summary records a `<section>.train_seconds` (read for the wall-time table).
TIMED_STAGES = ("fit_latent", "fit_matcher", "eval_net")


# Per-seed metrics (the registry's `over_seeds`): the first seed's value is reported, with its own spread
# where it has one (KID's std over subsets), and mean ± std over all seeds under `over_seeds`.
def over_seeds_keys() -> tuple[str, ...]:
    """The metrics recorded as mean ± std over the generation seeds (the registry's `over_seeds`)."""
    return tuple(m.key for m in registry.METRICS if m.over_seeds)


def headline_keys() -> tuple[str, ...]:
    """The first seed's values put at the top of `eval.*`: those metrics and their own spreads."""
    return tuple(k for m in registry.METRICS if m.over_seeds for k in (m.key, m.std_key) if k)


def latents_of(ids: pd.Series, device: torch.device) -> torch.Tensor:
    """Standardised latents (the matcher's space) of the given image ids, in that order."""
    return codes(read_table(paths.LATENTS, LATENTS), ids).to(device)


def stage_seconds(results: Path = paths.RESULTS) -> dict[str, float | None]:
    """Training wall time of each timed stage, from its dvclive summary (None if not recorded)."""
    out: dict[str, float | None] = {}
    for stage in TIMED_STAGES:
        f = results / stage / "metrics.json"
        summary = read_json(f) if f.exists() else {}
        found = [v["train_seconds"] for v in summary.values() if isinstance(v, dict) and "train_seconds" in v]
        out[stage] = float(found[0]) if found else None
    return out


@dataclass(frozen=True)
class Draw:
    """One generated set against the real held-out set: what a `per_draw` metric of the registry sees."""

    real: torch.Tensor  # [N, C, H, W] in [0, 1]
    fake: torch.Tensor  # [N, C, H, W], one per real image, same conditions
    real_feats: np.ndarray  # evaluation-net features, [N, 128]
    fake_feats: np.ndarray
    labels: np.ndarray  # the real images' labels (-1 without classes)


def per_draw_metrics(draw: Draw, keys: set[str] | None = None) -> dict[str, Any]:
    """Every `per_draw` metric of the registry (read now, so an entry added at run time counts too)."""
    return {m.key: m.function()(draw) for m in registry.METRICS if m.per_draw and (keys is None or m.key in keys)}


def feature_metrics(
    real_feats: np.ndarray, fake_feats: np.ndarray, fake_labels, p: EvaluateParams, seed: int, device
) -> dict:
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


@dataclass
class Reference:
    """The real side of every comparison, loaded once per stage: the test images, their conditions,
    and the evaluation net with its features of them."""

    params: Params
    device: torch.device
    task: Task
    test: pd.DataFrame
    train: pd.DataFrame
    y_test: torch.Tensor
    labels: torch.Tensor
    cond: torch.Tensor
    evalnet: nn.Module
    judges_labels: bool  # the evaluation net was trained on this data's labels (not a pretext)
    real_feats: np.ndarray

    @property
    def p(self) -> EvaluateParams:
        return self.params.evaluate

    @property
    def labels_np(self) -> np.ndarray:
        return self.labels.cpu().numpy()

    @classmethod
    def load(cls, params: Params, device: torch.device) -> Reference:
        p, task = params.evaluate, make_task(params)
        images = image_meta(paths.IMAGES)  # the pixels are read for the judged rows only
        # the held-out set judged: `val` while choosing settings, `test` once at the end
        test, train = images[images["split"] == p.split], images[images["split"] == "train"]
        if test.empty:
            raise ParamsError(
                f"evaluate.split = {p.split!r}: the prepared data has no {p.split} images "
                f"(data.val_fraction / data.test_fraction)"
            )
        if p.n_samples is not None and p.n_samples < len(test):
            test = test.sample(p.n_samples, random_state=p.seeds[0]).sort_values("id")
        y_test, labels = load_images(paths.IMAGES, test["id"], device), labels_tensor(test).to(device)
        evalnet = load(paths.EVALNET, device, LeNet)
        judges_labels = bool((test["label"] >= 0).all())
        cond = task.conditions(y_test, labels).to(device)
        return cls(
            params,
            device,
            task,
            test,
            train,
            y_test,
            labels,
            cond,
            evalnet,
            judges_labels,
            evalnet_features(evalnet, y_test),
        )

    @property
    def n_classes(self) -> int:
        return self.evalnet.head.out_features

    def classify(self, feats: np.ndarray) -> tuple[float | None, dict[str, float]]:
        if not self.judges_labels:
            return None, {}
        logits = self.evalnet.head(torch.from_numpy(feats).float().to(self.device))
        return label_accuracy(logits.argmax(1), self.labels, self.n_classes)

    def real_reference(self) -> dict:
        """A same-sized sample of real training images judged against the test set: the scores a
        perfect generator would reach (and the test set's own diversity)."""
        seed0 = self.p.seeds[0]
        reference = self.train.sample(min(len(self.test), len(self.train)), random_state=seed0)
        ref_images = load_images(paths.IMAGES, reference["id"], self.device)
        ref_feats = evalnet_features(self.evalnet, ref_images)
        out = feature_metrics(self.real_feats, ref_feats, reference["label"].to_numpy(), self.p, seed0, self.device)
        own = {m.key for m in registry.METRICS if m.per_draw and m.reference == f"real_reference.{m.key}"}
        out.update(per_draw_metrics(Draw(self.y_test, ref_images, self.real_feats, ref_feats, self.labels_np), own))
        out.pop("_diversity_per_class")
        real_div, real_div_pc = within_class_diversity(self.real_feats, self.labels_np)
        out.update(diversity_evalnet=real_div, n=len(ref_feats), _diversity_per_class=real_div_pc)
        return out


def pretrained_metrics(ref: Reference, fake: torch.Tensor) -> dict:
    """Inception FID/KID and LPIPS (diversity; distance to ground truth for super-resolution), only
    from local weight files, else None plus the reason. Headline seed only: these backbones are
    the slow part on a CPU."""
    p, device, real, seed = ref.p, ref.device, ref.y_test, ref.p.seeds[0]
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
        out["lpips_diversity"] = pairwise_same_condition(lpips_fn, fake, ref.labels, p.diversity_pairs, seed)[0]
        out["lpips_diversity_real"] = pairwise_same_condition(lpips_fn, real, ref.labels, p.diversity_pairs, seed)[0]
    out.update(ref.task.to_truth(lpips_fn, fake, real))
    return out


@dataclass
class Judgement:
    metrics: dict[str, Any]  # everything under `eval.*` (metrics.json and details.json: `registry.split_results`)
    grid: torch.Tensor  # the sample grid to save
    grid_nrow: int
    per_seed: list[dict]
    acc_per_class: list[dict]
    fake0: torch.Tensor
    fake_feats0: np.ndarray
    z_fake0: torch.Tensor | None


def as_evaluated(ref: Reference, sampler: nn.Module) -> nn.Module:
    """The sampler as every generative method is judged (the task may post-process its outputs)."""
    return ref.task.as_evaluated(sampler)


def brief(metrics: dict[str, Any]) -> dict[str, Any]:
    """A judgement's metrics without the per-class and per-seed tables (for samplers judged beside)."""
    return {k: v for k, v in metrics.items() if k not in ("per_class", "over_seeds")}


def judge_sampler(
    ref: Reference,
    sampler: nn.Module,
    critic: nn.Module | None = None,
    generator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    z_test: torch.Tensor | None = None,
) -> Judgement:
    """All metrics of one sampler against `ref`. With LSDM's latent `critic` and `generator` (the codes
    the sampler decodes: `LSDMSampler.codes`, given the same noise), also the critic's W1 estimate between
    held-out real (x, z) and generated (x, G(x, eta)) per seed."""
    p, device, cond = ref.p, ref.device, ref.cond
    seed0, task = p.seeds[0], ref.task
    etas = [fixed_noise(len(cond), sampler.noise_dim, seed, device) for seed in p.seeds]
    per_seed, acc_per_class, heads = [], [], []
    for seed, eta in zip(p.seeds, etas):
        fake = sample(sampler, cond, eta, p.batch_size)
        fake_feats = evalnet_features(ref.evalnet, fake)
        acc, acc_pc = ref.classify(fake_feats)
        m = {"label_accuracy": acc, **feature_metrics(ref.real_feats, fake_feats, ref.labels_np, p, seed, device)}
        z_fake = None
        if critic is not None:
            z_fake = sample(generator, cond, eta, p.batch_size)
            m["critic_w1_test"] = critic_w1(critic, cond, z_test, z_fake)
        m.update(task.draw_metrics(fake, ref.y_test, cond))
        m.update(per_draw_metrics(Draw(ref.y_test, fake, ref.real_feats, fake_feats, ref.labels_np)))
        heads.append(fake[: task.grid_rows])  # the rest of a later seed's draw is let go: memory is one draw
        per_seed.append(m)
        acc_per_class.append(acc_pc)
        if seed == seed0:
            fake0, fake_feats0, z_fake0 = fake, fake_feats, z_fake
        del fake
    head = per_seed[0]

    fid_pc, kid_pc, per_class_note = per_class_fid_kid(
        ref.real_feats,
        ref.labels_np,
        fake_feats0,
        ref.labels_np,
        min_samples=p.per_class_min_samples,
        kid_subsets=p.kid_subsets,
        kid_subset_size=p.kid_subset_size,
        seed=seed0,
    )
    bs = min(p.batch_size, len(cond))
    eta_bs = fixed_noise(bs, sampler.noise_dim, seed0, device)
    _, seconds = timed(lambda: sampler(cond[:bs], eta_bs), device)
    metrics = {
        "split": p.split,  # which held-out images every number here is computed on
        "device": device.type,
        "n_samples": len(fake0),
        "seeds": list(p.seeds),
        **{k: head[k] for k in headline_keys() if k in head and head[k] is not None},
        "label_accuracy_per_class": acc_per_class[0],
        **pretrained_metrics(ref, fake0),
        "per_class": {"fid_evalnet": fid_pc, "kid_evalnet": kid_pc, "note": per_class_note},
        "over_seeds": {
            k: mean_std([m[k] for m in per_seed]) for k in over_seeds_keys() if per_seed[0].get(k) is not None
        },
        "throughput_images_per_s": bs / seconds,
        "throughput_batch_size": bs,
    }
    if len(fake0) <= ref.real_feats.shape[1]:  # FID's covariances are rank-deficient: say so beside the number
        metrics["fid_note"] = (
            f"FID on {len(fake0)} samples in {ref.real_feats.shape[1]}-d features: fewer samples "
            "than dimensions, so the covariances are rank-deficient and FID is biased upward; "
            "compare FIDs only at equal sample counts"
        )

    @torch.no_grad()
    def draw_batches():  # every seed's draw again, batch by batch as `sample` drew it (same rows, same noise)
        for i in range(0, len(cond), p.batch_size):
            yield [sampler(cond[i : i + p.batch_size], eta[i : i + p.batch_size]) for eta in etas]

    metrics.update(task.across_draws(len(etas), draw_batches))
    grid, nrow = task.grid(
        ref, lambda c, s: sample(sampler, c, fixed_noise(len(c), sampler.noise_dim, s, device), p.batch_size), heads
    )
    return Judgement(metrics, grid, nrow, per_seed, acc_per_class, fake0, fake_feats0, z_fake0)


def curves(ref: Reference, judgement: Judgement, real_div_pc: dict) -> dict[str, pd.DataFrame]:
    """Tables for `dvc plots`: PRDC against k (headline seed) and per-class figures."""
    real_feats, fake_feats = ref.real_feats, judgement.fake_feats0
    ks = [k for k in range(1, 11) if k < min(len(real_feats), len(fake_feats))]
    sweep = prdc_many(real_feats, fake_feats, [(k, k) for k in ks], device=ref.device)
    tables = {"prdc_vs_k.tsv": pd.DataFrame([{"k": k, **r.as_dict()} for k, r in zip(ks, sweep)])}
    acc_pc = judgement.acc_per_class
    classes = sorted(acc_pc[0], key=int) if acc_pc and acc_pc[0] else []  # none: the header alone
    spread = [np.std([a.get(c, np.nan) for a in acc_pc], ddof=1) if len(acc_pc) > 1 else 0.0 for c in classes]
    div_pc = judgement.per_seed[0].get("_diversity_per_class") or {}
    tables["per_class.tsv"] = pd.DataFrame(
        {
            "class": [int(c) for c in classes],
            "label_accuracy": [acc_pc[0][c] for c in classes],
            "label_accuracy_std": spread,
            "diversity_evalnet": [div_pc.get(c, np.nan) for c in classes],
            "diversity_evalnet_real": [real_div_pc.get(c, np.nan) for c in classes],
        }
    )
    return tables
