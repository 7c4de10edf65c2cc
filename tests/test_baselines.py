"""The methods beside LSDM: network shapes, a pixel WGAN that learns toy data, flow-matching samplers that
land where the exact answer is, and each baseline's fit -> load -> sample round trip on toy files."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from lsdm.config import METHOD_NAMES, Params, load_params, parse_params
from lsdm.data.schemas import IMAGES, LATENT_POOL, LATENTS, PAIRED, PSEUDO_LABELS, latents_arrow_schema
from lsdm.errors import ParamsError
from lsdm.io import read_table, save_checkpoint, write_json, write_table
from lsdm.methods import METHODS, method, samplers
from lsdm.methods.flow_matching import integrate, solver_steps, train_flow_matching
from lsdm.methods.latent_flow import FlowSampler
from lsdm.models import build
from lsdm.models.matching import gradient_penalty, train_wgan_gp
from lsdm.pipeline.pseudo_label import label_pool

LABEL = {"kind": "label", "n_classes": 3}


def test_pixel_wgan_shapes_for_both_condition_kinds():
    for cond, x in [
        (LABEL, torch.tensor([0, 1, 2, 1])),
        ({"kind": "image", "channels": 1, "size": 7}, torch.rand(4, 1, 7, 7)),
    ]:
        m = build("pixel_wgan", dict(condition=cond, image_size=28, channels=1, noise_dim=8, width=4))
        y = m.generator(x, torch.randn(4, 8))
        assert y.shape == (4, 1, 28, 28) and 0 <= y.min() and y.max() <= 1
        assert m.critic(x, y).shape == (4,)
    with pytest.raises(ValueError, match="divisible by 4"):
        build("pixel_wgan", dict(condition=LABEL, image_size=30, channels=1, noise_dim=8, width=4))


def test_velocity_field_shapes():
    v = build("flow_mlp", dict(condition=LABEL, z_dim=5, width=16, depth=2))
    x, z = torch.tensor([0, 2]), torch.randn(2, 5)
    assert v(x, z, torch.rand(2)).shape == (2, 5)
    assert v(x, z, torch.tensor(0.3)).shape == (2, 5)  # a scalar time is broadcast


def test_gradient_penalty_takes_any_shape_and_is_unchanged_on_vectors():
    torch.manual_seed(0)
    critic = build("pixel_wgan", dict(condition=LABEL, image_size=8, channels=1, noise_dim=2, width=2)).critic
    x = torch.tensor([0, 1, 2])
    gp = gradient_penalty(critic, x, torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8))
    assert gp.ndim == 0 and torch.isfinite(gp)
    f = build("wgan_gp_mlp", dict(condition=LABEL, z_dim=4, noise_dim=2, width=8, depth=1)).critic
    zr, zf = torch.randn(3, 4), torch.randn(3, 4)
    torch.manual_seed(1)
    new = gradient_penalty(f, x, zr, zf)
    torch.manual_seed(1)  # the formula before the generalisation: [B, 1] alpha, norm over dim 1
    alpha = torch.rand(3, 1)
    zh = (alpha * zr + (1 - alpha) * zf).requires_grad_(True)
    (g,) = torch.autograd.grad(f(x, zh).sum(), zh)
    assert torch.allclose(new, ((g.norm(dim=1) - 1) ** 2).mean())


def _toy_images(n: int = 24, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of toy images: a bright square in one of three places."""
    labels = torch.arange(n) % 3
    y = torch.zeros(n, 1, size, size)
    for i, c in enumerate(labels.tolist()):
        y[i, 0, 2 * c : 2 * c + 3, 2 * c : 2 * c + 3] = 1.0
    return (y + 0.05 * torch.rand(n, 1, size, size)).clamp(0, 1), labels


def test_pixel_wgan_learns_the_toy_data():
    """The critic learns to score real images above fakes (its W1 estimate climbs well above 0), the
    generator follows (each class's mean sample moves most of the way to that class's mean image) and
    the estimate falls back as it does. A sign flip in either loss, or a skipped optimiser step, fails."""
    y, labels = _toy_images()
    torch.manual_seed(0)
    m = build("pixel_wgan", dict(condition=LABEL, image_size=8, channels=1, noise_dim=4, width=4))

    def gap() -> float:  # the largest distance between a class's mean sample and its mean image
        x = torch.arange(3).repeat_interleave(10)
        with torch.no_grad():
            g = m.generator(x, torch.randn(30, 4, generator=torch.Generator().manual_seed(1)))
        return max((g[x == c].mean(0) - y[labels == c].mean(0)).norm().item() for c in range(3))

    before, gap0 = {n: p.detach().clone() for n, p in m.named_parameters()}, gap()
    logs = []
    train_wgan_gp(
        m,
        labels,
        y,
        steps=150,
        n_critic=2,
        batch_size=8,
        lr=1e-2,
        gp_weight=10.0,
        seed=0,
        log=lambda s, d: logs.append(d),
        log_every=1,
    )
    w1 = np.array([d["critic/w1"] for d in logs])
    assert len(w1) == 150 and np.isfinite(w1).all()
    # seeds 0-3: gap 3.5-4.2 -> 0.2-0.7, W1 peaks at 3-3.6, last 40 steps average 0.2-0.5. Broken: a
    # flipped generator loss runs away (gap ~7, W1 ~10 to the end), a flipped critic loss gives W1 < 0,
    # no generator step leaves the gap as it was, no critic step or a flipped penalty keeps W1 near 0
    assert gap() < 0.35 * gap0, (gap0, gap())
    assert w1.max() > 1.0 and w1[-40:].mean() < 0.4 * w1.max(), (w1.max(), w1[-40:].mean())
    unchanged = [n for n, p in m.named_parameters() if torch.equal(before[n], p)]
    assert unchanged == ["critic.out.bias"]  # the critic's last bias cancels out of E f(real) - E f(fake)


def test_flow_matching_loss_falls_on_toy_latents():
    torch.manual_seed(0)
    labels = torch.arange(60) % 3
    z = torch.nn.functional.one_hot(labels, 3).float() * 3 + 0.1 * torch.randn(60, 3)
    v = build("flow_mlp", dict(condition=LABEL, z_dim=3, width=32, depth=2))
    logs = []
    train_flow_matching(
        v,
        labels,
        z,
        steps=150,
        batch_size=30,
        lr=3e-3,
        seed=0,
        log=lambda s, d: logs.append(d["train/fm_loss"]),
        log_every=10,
    )
    assert np.mean(logs[-3:]) < 0.6 * np.mean(logs[:2])


def test_euler_and_heun_count_evaluations_and_land_on_the_exact_answer():
    """The straight path of rectified flow, dz/dt = a - z0 (constant): exact z(1) = a at any NFE.
    And the linear field dz/dt = z: exact z(1) = e * z0; Heun is second order, Euler first."""
    z0 = torch.randn(5, 2)
    a = torch.tensor([2.0, -1.0])
    calls = []

    def straight(z, t):
        calls.append(1)
        return a - z0

    for solver, nfe in [("euler", 10), ("heun", 10), ("euler", 100)]:
        calls.clear()
        z1, spent = integrate(straight, z0, nfe, solver)
        assert spent == nfe == len(calls)
        assert torch.allclose(z1, a.expand(5, 2), atol=1e-3), solver
    exact = z0 * np.e
    err = {}
    for solver, nfe in [("euler", 10), ("euler", 100), ("euler", 1000), ("heun", 10), ("heun", 100)]:
        z1, spent = integrate(lambda z, t: z, z0, nfe, solver)
        err[solver, nfe] = (z1 - exact).abs().max().item()
    assert err["euler", 1000] < err["euler", 100] < err["euler", 10]
    assert err["euler", 1000] < 0.01 * z0.abs().max().item() + 1e-3
    assert err["heun", 10] < err["euler", 10] / 5  # second order at the same NFE
    assert solver_steps(10, "heun") == 5
    with pytest.raises(ValueError, match="even"):
        solver_steps(5, "heun")


def test_trained_flow_sampler_reaches_the_class_means():
    """2-D toy: class c's latents sit at a point; Euler at high NFE lands near it."""
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]])
    labels = torch.arange(90) % 3
    z = centres[labels] + 0.05 * torch.randn(90, 2)
    v = build("flow_mlp", dict(condition=LABEL, z_dim=2, width=64, depth=2))
    train_flow_matching(v, labels, z, steps=600, batch_size=90, lr=3e-3, seed=0)

    class Identity(torch.nn.Module):
        def decode(self, z):
            return z

    s = FlowSampler(v, Identity(), torch.zeros(2), torch.ones(2), nfe=100)
    x = torch.arange(3).repeat_interleave(40)
    out = s(x, torch.randn(120, 2, generator=torch.Generator().manual_seed(1)))
    for c in range(3):
        assert (out[x == c].mean(0) - centres[c]).norm() < 0.3, (c, out[x == c].mean(0))


def test_params_sections_and_methods_validated():
    assert Params().methods == [] and METHOD_NAMES == (
        "pixel_wgan",
        "latent_flow",
        "pixel_wgan_pseudo",
        "latent_flow_pseudo",
    )  # LSDM alone unless asked
    params = load_params()  # the shipped sweeps: every method (the fair baselines too) at its budget, the paper's
    for sweep in (params.sweep, params.sweeps["full"]):  # variant, >= 2 training seeds
        assert sorted(sweep.set["methods"]) == sorted(METHOD_NAMES) and len(sweep.train_seeds) >= 2
        assert (
            sweep.variants["lsdm_paper"] == {"matcher.marginal": "none", "sample.candidates": 1}
            and len(sweep.seeds) >= 3
        )
        assert not any(k.endswith("steps") for k in sweep.set if k != "latent_flow.steps")  # no method below its budget
    assert params.sweeps["full"].variants["lsdm_paired_only"] == {"split.n_unpaired": 0}
    with pytest.raises(ParamsError, match="methods"):
        parse_params({"methods": ["pixel_wgan", "diffusion"]})
    with pytest.raises(ParamsError, match="even"):
        parse_params({"latent_flow": {"solver": "heun", "nfe": [5]}})
    with pytest.raises(ParamsError, match="latent_flow.steps"):
        parse_params({"latent_flow": {"steps": 0}})


def _toy_pipeline(root, size: int = 8) -> None:
    """The files the methods read: images, the paired subset, a shared autoencoder, its latents, the
    pool's pseudo-labels."""
    y, labels = _toy_images(30, size)
    ids = [f"img{i:03d}" for i in range(len(y))]
    pixels = (y * 255).round().byte().permute(0, 2, 3, 1).numpy()
    images = pd.DataFrame(
        {
            "id": ids,
            "split": ["train"] * 24 + ["test"] * 6,
            "label": labels.numpy(),
            "height": size,
            "width": size,
            "channels": 1,
            "image": [p.tobytes() for p in pixels],
        }
    )
    write_table(images, root / "data/prepared/images.parquet", IMAGES)
    write_table(images[["id", "label"]].iloc[:9], root / "data/split/paired.parquet", PAIRED)
    write_table(images[["id"]].iloc[:24], root / "data/split/latent_pool.parquet", LATENT_POOL)
    torch.manual_seed(0)
    config = dict(image_size=size, in_channels=1, dim=4, channels=[4], noise=0.0)
    ae = build("conv_ae", config)
    save_checkpoint(root / "data/latent/autoencoder.pt", "conv_ae", config, ae.state_dict())
    z = ae.encode(y).detach().numpy()
    mean, std = z.mean(0), z.std(0) + 1e-8
    latents = pd.DataFrame(
        {
            "id": ids,
            "split": images["split"],
            "label": images["label"],
            "z": list(((z - mean) / std).astype(np.float32)),
        }
    )
    write_table(latents, root / "data/encoded/latents.parquet", LATENTS, arrow_schema=latents_arrow_schema(4))
    write_json({"mean": mean.tolist(), "std": std.tolist(), "n": len(z)}, root / "data/encoded/stats.json")
    # the pool's pseudo-labels, as stage pseudo_label makes them (the default matcher's class-aware term)
    pool = latents.iloc[:24]
    table = label_pool(Params(), pool["id"], np.stack(pool["z"]), images[["id", "label"]].iloc[:9])
    write_table(table, root / "data/pseudo/labels.parquet", PSEUDO_LABELS)


def test_every_method_fits_loads_and_samples(tmp_path):
    _toy_pipeline(tmp_path)
    params = parse_params(
        {
            "base": {"device": "cpu"},
            "matcher": {"steps": 3, "n_critic": 1, "width": 16, "depth": 1, "batch_size": 8},
            "pixel_wgan": {"steps": 3, "n_critic": 1, "width": 4, "batch_size": 8},
            "latent_flow": {"steps": 10, "width": 16, "depth": 1, "nfe": [2, 5], "batch_size": 8},
            "pixel_wgan_pseudo": {"steps": 3, "n_critic": 1, "width": 4, "batch_size": 8},
            "latent_flow_pseudo": {"steps": 10, "width": 16, "depth": 1, "nfe": [2], "batch_size": 8},
            "pseudo": {"threshold": 0.5},
        }
    )
    device = torch.device("cpu")
    names = []
    for m in METHODS:  # LSDM's fit is fit_matcher's; its sampler reads the pipeline's paths
        logs: list[dict] = []
        out = tmp_path / ("data/matcher" if m == "lsdm" else f"data/baselines/{m}")
        out.mkdir(parents=True)
        t0 = time.perf_counter()
        summary = method(m).fit(params, device, out, lambda s, d, logs=logs: logs.append(d), root=tmp_path)
        elapsed = time.perf_counter() - t0
        assert summary["n_pairs"] == 9 and 0 < summary["train_seconds"] <= elapsed and logs, (m, summary, elapsed)
        for name, sampler in samplers(m, device, root=tmp_path):
            names.append((name, sampler.nfe))
            x = torch.tensor([0, 1, 2, 0])
            y = sampler(x, torch.randn(4, sampler.noise_dim))
            assert y.shape == (4, 1, 8, 8) and 0 <= y.min() and y.max() <= 1, name
    # one network evaluation per sample for the one-step methods, the NFE its name says for the flow
    assert names == [
        ("lsdm", 1),
        ("pixel_wgan", 1),
        ("latent_flow_nfe2", 2),
        ("latent_flow_nfe5", 5),
        ("pixel_wgan_pseudo", 1),
        ("latent_flow_pseudo_nfe2", 2),
    ]
    # like against like: the *_pseudo methods trained on the pairs and the confident pseudo-pairs, and with
    # sample.candidates > 1 drawing through the same latent class model as LSDM's filtered draw
    for m in ("pixel_wgan_pseudo", "latent_flow_pseudo"):
        n_pseudo = method(m).fit(params, device, tmp_path / "scratch" / m, lambda s, d: None, root=tmp_path)["n_pseudo"]
        confident = read_table(tmp_path / "data/pseudo/labels.parquet", PSEUDO_LABELS).query("confidence >= 0.5")
        assert (
            n_pseudo
            == (~confident["id"].isin(read_table(tmp_path / "data/split/paired.parquet", PAIRED)["id"])).sum()
            > 0
        )
        [(name, drawn), *_] = samplers(m, device, params=params, root=tmp_path)
        assert drawn.noise_dim == params.sample.candidates * samplers(m, device, root=tmp_path)[0][1].noise_dim, name
        y = drawn(torch.tensor([0, 1, 2, 0]), torch.randn(4, drawn.noise_dim))
        assert y.shape == (4, 1, 8, 8) and 0 <= y.min() and y.max() <= 1, name
    flows = samplers("latent_flow", device, params=parse_params({"latent_flow": {"nfe": [3]}}), root=tmp_path)
    assert [(n, s.nfe) for n, s in flows] == [("latent_flow_nfe3", 3)]  # NFE from params, no refit
    with pytest.raises(ValueError, match="unknown method"):
        samplers("diffusion", device)
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)  # from_pipeline reads the pipeline's paths, relative to the repository root
    try:
        assert FlowSampler.from_pipeline(device, nfe=7).nfe == 7
        [(_, pixel)] = samplers("pixel_wgan", device)
        assert pixel(torch.tensor([1]), torch.randn(1, pixel.noise_dim)).shape == (1, 1, 8, 8)
    finally:
        os.chdir(cwd)


@pytest.mark.slow
def test_the_fair_baselines_run_as_dvc_stages(tiny_repro, tmp_path):
    """`methods: [latent_flow_pseudo, pixel_wgan_pseudo]` adds their fit_baseline and evaluate_baseline
    stages: they train on the pairs plus the confident pseudo-pairs and are judged drawing through the
    filtered draw; a change of the filter's acceptance reruns their evaluation, not their training."""
    import json

    import yaml
    from support.processes import run
    from support.repos import copy_repo

    repo = copy_repo(tiny_repro, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["methods"] = ["latent_flow_pseudo", "pixel_wgan_pseudo"]
    params["pseudo"]["threshold"] = 0.5  # the tiny run's 30-step latents label few pool images confidently
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = ["fit_baseline", "evaluate_baseline"]  # and what they need: not LSDM's own fit and evaluation
    out = run(["dvc", "repro", *stages], repo).stdout
    for m in params["methods"]:
        assert f"Running stage 'fit_baseline@{m}'" in out and f"Running stage 'evaluate_baseline@{m}'" in out, out
        train = json.loads((repo / f"results/baselines/{m}/train/metrics.json").read_text())["baseline"]
        assert train["n_pseudo"] > 0 and train["n_pairs"] == 30, train
    evaluated = json.loads((repo / "results/baselines/latent_flow_pseudo/eval/metrics.json").read_text())["eval"]
    assert (
        set(evaluated) == {"latent_flow_pseudo_nfe2"}
        and 0 <= evaluated["latent_flow_pseudo_nfe2"]["label_accuracy"] <= 1
    )
    assert (
        "pixel_wgan_pseudo"
        in json.loads((repo / "results/baselines/pixel_wgan_pseudo/eval/metrics.json").read_text())["eval"]
    )

    params["sample"]["accept"] = 0.9
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro", *stages], repo).stdout
    for m in params["methods"]:
        assert f"Stage 'fit_baseline@{m}' didn't change" in out and f"Running stage 'evaluate_baseline@{m}'" in out, out
